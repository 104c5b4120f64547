"""Calling the model, written once: predictions in batches and ``target``/``targets`` resolution.

Every method, metric and study that needs the model's prediction goes through :func:`predict`
(model guarded by :func:`~smoothsal.execution.guard.preserve_model`, no gradient, output checked
to be ``[B, classes]``) and :func:`resolve_model_targets`; how many rows one call takes without a
measured choice is :func:`rows_per_call`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from smoothsal._core.validation import TargetSpec, check_logits, resolve_targets
from smoothsal.execution.devices import to_model_device
from smoothsal.execution.folding import folded
from smoothsal.execution.guard import preserve_model

__all__ = ["predict", "resolve_model_targets", "row_chunks", "rows_per_call"]

#: Without a measured choice, one call holds at most this many input elements (16 MiB of float32:
#: 27 rows of 3×224×224, 4,096 rows of 1×32×32), and at least one row.
DEFAULT_MAX_ELEMENTS = 2**22


def rows_per_call(example: Tensor, total_rows: int, batch_size: int | None = None) -> int:
    """How many rows like ``example`` (one row, ``[...]``) one model call takes.

    A given ``batch_size`` is obeyed. ``None`` is the automatic choice: every method, metric and
    study that runs many rows asks here, so the rule lives in one place.
    """
    if batch_size is not None:
        return max(1, int(batch_size))
    per_row = max(1, example.numel())
    return max(1, min(total_rows, DEFAULT_MAX_ELEMENTS // per_row))


def row_chunks(n_rows: int, batch_size: int | None) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n_rows)`` in chunks of ``batch_size`` (one chunk if ``None``)."""
    size = n_rows if batch_size is None else max(1, int(batch_size))
    return [(s, min(s + size, n_rows)) for s in range(0, n_rows, max(1, size))]


def predict(model: nn.Module, inputs: Tensor, *, batch_size: int | None = None) -> Tensor:
    """Logits ``[B, classes]`` of ``model`` on ``inputs`` in eval mode, without gradient, in chunks of
    ``batch_size`` rows (``None``: :func:`rows_per_call`'s automatic rule).

    The model's train/eval state is restored afterwards (see ``preserve_model``). The forward
    passes run the model's BatchNorm-folded copy where there is one (:func:`smoothsal.execution.folding.folded`:
    the same function; this is how deletion/insertion, faithfulness correlation and pruning call it).
    """
    x = to_model_device(model, inputs)
    size = rows_per_call(x[0], x.shape[0], batch_size)
    with preserve_model(model, warn_training=False), torch.no_grad():
        run = folded(model, x)
        parts = [check_logits(run(x[a:b]), b - a) for a, b in row_chunks(x.shape[0], size)]
    return torch.cat(parts).to(inputs.device)


def resolve_model_targets(
    model: nn.Module, inputs: Tensor, targets: TargetSpec, *, batch_size: int | None = None
) -> Tensor:
    """``targets`` as a LongTensor ``[B]``; ``None`` = the model's predicted class (one forward pass).

    Explicit targets are checked against the model's number of classes (the forward pass is then
    made on the first sample only).
    """
    probe = inputs if targets is None else inputs[:1]
    logits = predict(model, probe, batch_size=batch_size)
    if targets is None:
        return resolve_targets(None, logits)
    return resolve_targets(targets, logits.expand(inputs.shape[0], -1))
