"""``run_explain_dataset``: the study end to end (compute or resume, then figures and reports), for its command and for Python.

The study is described in :mod:`smoothsal.studies.explain_dataset`, which exports these names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from smoothsal.studies.explain_dataset.config import ExplainDatasetConfig
from smoothsal.studies.options import RunOptions

if TYPE_CHECKING:
    from smoothsal.studies.explain_dataset.compute import DistContext, JobResult

__all__ = ["run_explain_dataset"]


def run_explain_dataset(
    config: ExplainDatasetConfig,
    options: RunOptions | None = None,
    *,
    echo: Callable[[str], Any] | None = print,
    ctx: DistContext | None = None,
) -> JobResult:
    """Run (or resume) the job of ``config`` as ``options`` say; returns
    :class:`~smoothsal.studies.explain_dataset.compute.JobResult` (see
    :func:`smoothsal.studies.explain_dataset.compute.compute_dataset`)."""
    if not isinstance(config, ExplainDatasetConfig):
        raise TypeError(f"`config` must be an ExplainDatasetConfig, got {type(config).__name__}")
    from smoothsal.studies.explain_dataset.compute import compute_dataset

    return compute_dataset(config, options, ctx=ctx, echo=echo)
