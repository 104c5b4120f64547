"""Calling the model, written once: forward passes in batches and ``target``/``targets`` resolution.

Every method, metric and study that needs the model's prediction goes through :func:`predict`
or, for rows it builds on demand (masked or perturbed copies), :func:`forward_rows`: model guarded
by :func:`~smoothsal.execution.guard.preserve_model`, no gradient, output checked to be
``[B, classes]``, rows per call from the one runner (:mod:`smoothsal.execution.runner`);
``target=None`` is resolved by :func:`resolve_model_targets`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import torch
from torch import Tensor, nn

from smoothsal._core.validation import TargetSpec, check_logits, check_positive_int, resolve_targets
from smoothsal.execution.devices import to_model_device
from smoothsal.execution.folding import folded
from smoothsal.execution.guard import preserve_model
from smoothsal.execution.memory import MemorySpec
from smoothsal.execution.policy import FORWARD_CALL_SHARE, RowPolicy
from smoothsal.execution.runner import policy_for, run_rows

__all__ = ["forward_rows", "predict", "resolve_model_targets"]


def forward_rows(
    model: nn.Module,
    n_rows: int,
    build: Callable[[int, int], Tensor],
    *,
    example: Tensor,
    batch_size: int | None = None,
    max_memory: MemorySpec = None,
    policy: RowPolicy | None = None,
    fold: bool = True,
    what: Hashable = "forward",
) -> Tensor:
    """Logits ``[n_rows, classes]`` of rows built on demand, ``build(lo, hi) -> [hi - lo, ...]``.

    Args:
        model: the classifier; run in eval mode (restored afterwards), without gradient, as its
            BatchNorm-folded copy where there is one (:func:`smoothsal.execution.folding.folded`:
            the same function).
        n_rows: rows to run.
        build: makes rows ``lo..hi-1`` on the model's device (so memory holds one call's rows).
        example: one row ``[...]`` like the real ones (the policy's key, the folding probe).
        batch_size: most model rows per call (a row: one forward(+backward) pass of one input-shaped
            tensor); ``None``: learned from the calls' timings under the memory budget. Never changes the
            result. Here a row is one forward pass of one input.
        max_memory: the memory budget when ``batch_size`` is ``None`` (bytes, ``"4GB"``, ``"25%"``;
            ``None``: the default of :func:`smoothsal.execution.memory.memory_budget`).
        policy: the rows-per-call policy to use instead (e.g. a caller's :class:`~smoothsal.execution.policy.RowContext`).
        fold: run the BatchNorm-folded copy where there is one (``False``: the model as given).
        what: what is run (learned apart from other work on the same rows).
    """
    if policy is None:
        share = FORWARD_CALL_SHARE if example.device.type == "cpu" else 1.0  # flat beyond a few rows on a CPU
        policy = policy_for(model, example, ("forward", what), batch_size=batch_size, max_memory=max_memory,
                            call_share=share)  # fmt: skip
    with preserve_model(model, warn_training=False), torch.no_grad():
        run = folded(model, example[None]) if fold else model

        def work(lo: int, hi: int) -> Tensor:
            return check_logits(run(build(lo, hi)), hi - lo)

        return run_rows(policy, n_rows, work)


def predict(
    model: nn.Module, inputs: Tensor, *, batch_size: int | None = None, max_memory: MemorySpec = None
) -> Tensor:
    """Logits ``[B, classes]`` of ``model`` on ``inputs`` in eval mode, without gradient.

    Args:
        model: the classifier (its train/eval state is restored afterwards, see ``preserve_model``).
        inputs: ``[B, ...]``.
        batch_size: most model rows per call (a row: one forward(+backward) pass of one input-shaped
            tensor); ``None``: learned from the calls' timings under the memory budget. Never changes the
            result. Here a row is one forward pass of one input.
        max_memory: the memory budget when ``batch_size`` is ``None`` (bytes, ``"4GB"``, ``"25%"``;
            ``None``: the default of :func:`smoothsal.execution.memory.memory_budget`).

    The forward passes run the model's BatchNorm-folded copy where there is one
    (:func:`smoothsal.execution.folding.folded`: the same function; this is how deletion/insertion,
    faithfulness correlation and pruning call it).
    """
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    x = to_model_device(model, inputs)
    if x.shape[0] == 0:
        raise ValueError("`inputs` must hold at least one row")
    logits = forward_rows(model, x.shape[0], lambda lo, hi: x[lo:hi], example=x[0], batch_size=batch_size,
                          max_memory=max_memory)  # fmt: skip
    return logits.to(inputs.device)


def resolve_model_targets(
    model: nn.Module,
    inputs: Tensor,
    targets: TargetSpec,
    *,
    batch_size: int | None = None,
    max_memory: MemorySpec = None,
) -> Tensor:
    """``targets`` as a LongTensor ``[B]``; ``None`` = the model's predicted class (one forward pass).

    Explicit targets are checked against the model's number of classes (the forward pass is then
    made on the first sample only). ``batch_size``, ``max_memory``: as for :func:`predict`.
    """
    probe = inputs if targets is None else inputs[:1]
    logits = predict(model, probe, batch_size=batch_size, max_memory=max_memory)
    if targets is None:
        return resolve_targets(None, logits)
    return resolve_targets(targets, logits.expand(inputs.shape[0], -1))
