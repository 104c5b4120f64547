"""What every metric shares: its metadata (kind, direction) as data, and the method-factory checks.

A metric is registered with :func:`metric`, which records a :class:`MetricInfo` in
:data:`METRICS` and sets ``higher_is_better`` and ``kind`` on the function itself (as torchmetrics
carries ``higher_is_better``), so a report reads its arrows from the metric, never from a
hand-written table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor

from smoothsal._core.validation import TargetSpec, check_positive_int
from smoothsal.execution.memory import MemorySpec
from smoothsal.execution.policy import FixedRows, RowContext
from smoothsal.execution.runner import policy_for, run_rows
from smoothsal.interop import accept_captum, as_attributions, as_method, as_method_factory, is_captum_method

__all__ = ["KINDS", "METRICS", "MetricInfo", "attribution_maps", "check_method_factory", "metric"]

#: The metric kinds of the convention (see :mod:`smoothsal.metrics`).
KINDS = ("map", "map_pair", "model", "sensitivity", "comparison", "curve")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class MetricInfo:
    """A metric's metadata.

    Attributes:
        name: the function's name.
        kind: one of :data:`KINDS`.
        higher_is_better: ``True``/``False``, or ``None`` where neither direction is better
            (a description such as entropy of a map, or a result object with several numbers).
        function: the metric itself.
    """

    name: str
    kind: str
    higher_is_better: bool | None
    function: Callable[..., Any]

    @property
    def arrow(self) -> str:
        """``"↑"``, ``"↓"`` or ``""``."""
        return {True: "↑", False: "↓", None: ""}[self.higher_is_better]


#: name -> :class:`MetricInfo` of every public metric.
METRICS: dict[str, MetricInfo] = {}


def metric(kind: str, higher_is_better: bool | None) -> Callable[[F], F]:
    """Register a metric function (decorator)."""
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}")

    def wrap(fn: F) -> F:
        fn = accept_captum(fn, kind)  # type: ignore[assignment]  # Captum's tuples and objects (smoothsal.interop)
        fn.higher_is_better = higher_is_better  # type: ignore[attr-defined]
        fn.kind = kind  # type: ignore[attr-defined]
        METRICS[fn.__name__] = MetricInfo(fn.__name__, kind, higher_is_better, fn)
        return fn

    return wrap


def check_method_factory(method: Any, name: str = "method") -> Callable[[Any], Any]:
    """Check ``method`` is a factory ``model -> attribution method`` (a class or a callable), not a
    method already bound to one model. A Captum attribution object is accepted: it is rebuilt for each
    model (:func:`smoothsal.interop.rebind_captum`)."""
    if is_captum_method(method):
        return as_method_factory(method)
    example = "VanillaGradient, lambda m: Smooth(VanillaGradient(m)) or smoothsal.method_factory('ig')"
    if not isinstance(method, type) and hasattr(method, "attribute"):
        raise TypeError(
            f"`{name}` must be a factory model -> attribution method (e.g. {example}), got an instance of "
            f"{type(method).__name__} already bound to a model; pass its class or a factory so that it can "
            "be built for each model"
        )
    if not callable(method):
        raise TypeError(f"`{name}` must be a factory model -> attribution method (e.g. {example}), "
                        f"got {type(method).__name__}")
    return method


def attribution_maps(
    method: Any,
    inputs: Tensor,
    targets: TargetSpec = None,
    *,
    batch_size: int | None = None,
    max_memory: MemorySpec = None,
) -> Tensor:
    """``method.attribute(inputs, targets)`` for many inputs, in calls the one runner sizes.

    Args:
        method: an attribution method (a Captum attribution object is adapted,
            :func:`smoothsal.interop.from_captum`).
        inputs: ``[N, ...]``.
        targets: ``None`` (the method resolves it) or a LongTensor ``[N]``, split alongside.
        batch_size: most model rows per call (a row: one forward(+backward) pass of one input-shaped
            tensor); ``None``: learned from the calls' timings under the memory budget. Never changes the
            result. An input costs the method's ``rows_per_input`` rows (IG's ``steps``).
        max_memory: the memory budget when ``batch_size`` is ``None`` (bytes, ``"4GB"``, ``"25%"``;
            ``None``: the default of :func:`smoothsal.execution.memory.memory_budget`).

    A method with ``attribute_rows`` (every smoothsal method, the Captum adapter) runs under this
    function's policy (:class:`~smoothsal.execution.policy.RowContext`: IG's path rows too). A method
    without it runs its own rows (``Smooth``, which batches its noisy samples and holds the
    running sums of as many images as its budget allows; a user's method): it is called once with
    all the inputs, or on chunks of ``batch_size`` rows (``rows_per_input`` each) when given.
    """
    method = as_method(method)
    if not callable(getattr(method, "attribute", None)):
        raise TypeError(f"`method` must have .attribute(inputs, target), got {type(method).__name__}")
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    n = inputs.shape[0]
    unit = max(1, int(getattr(method, "rows_per_input", 1)))
    nested = getattr(method, "attribute_rows", None)
    split = isinstance(targets, Tensor) and targets.dim() == 1

    if nested is None:
        def whole(lo: int, hi: int) -> Tensor:
            return as_attributions(method.attribute(inputs[lo:hi], targets[lo:hi] if split else targets)).detach()

        return run_rows(FixedRows(batch_size if batch_size is not None else n * unit), n, whole, unit=unit)

    def rows(lo: int, hi: int, per_call: int) -> Tensor:
        t = targets[lo:hi] if split else targets
        return as_attributions(nested(inputs[lo:hi], t, RowContext(per_call))).detach()

    model = getattr(method, "model", None)
    policy = policy_for(model if isinstance(model, torch.nn.Module) else None, inputs[0],
                        ("maps", type(method).__name__, unit), batch_size=batch_size, max_memory=max_memory)  # fmt: skip
    return run_rows(policy, n, rows, unit=unit, sized=True)
