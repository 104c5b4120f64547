"""``run_explain``: the study end to end (compute or resume, then figures and reports), for its command and for Python.

The study is described in :mod:`smoothsal.studies.explain`, which exports these names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smoothsal._core.jsontypes import JSONObject
from smoothsal.studies.explain.compute import compute_explain
from smoothsal.studies.explain.config import DEFAULT_OUT, ExplainConfig
from smoothsal.studies.options import RunOptions

__all__ = ["run_explain"]


def run_explain(
    config: ExplainConfig | None = None,
    options: RunOptions | None = None,
    *,
    echo: Callable[[str], object] | None = print,
    **settings: Any,
) -> JSONObject:
    """Run the study: compute (or resume), draw the figures, write ``maps.npz`` and ``summary.json``.

    Args:
        config: what to compute; ``None`` = :class:`ExplainConfig` defaults.
        options: how it runs (output folder, device, batch size, memory budget, noise seed,
            progress bars); ``None`` = :class:`~smoothsal.studies.options.RunOptions` defaults
            (output in ``out/explain``).
        echo: receives the top-5 line of each image and the closing line (``None``: silent).
        settings: :class:`ExplainConfig` fields replacing those of ``config`` (the keyword form:
            ``run_explain(images=("chelsea",), methods="grad")``).
    Returns:
        the summary dictionary also written to ``summary.json``.
    """
    from smoothsal.studies.explain import plots, report

    if config is None:
        config = ExplainConfig(**settings)
    elif settings:
        config = config.replace(**settings)
    options = options if options is not None else RunOptions()
    if echo is not None:
        from smoothsal.execution.memory import memory_budget

        echo(report.settings_line(config, options, memory_budget(options.torch_device(), options.max_memory)))
    results = compute_explain(config, options, echo=echo)
    out = options.out_dir(DEFAULT_OUT)
    figures = plots.save_figures(results, out)
    report.write_maps(results, out / "maps.npz")
    summary = report.write_summary(results, figures, out / "summary.json")
    if echo is not None:
        echo(f"wrote {', '.join(figures)}, maps.npz and summary.json to {out}/ in {results.seconds:.1f} s")
    return summary
