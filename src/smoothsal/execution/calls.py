"""Calling the model, written once: predictions in batches and ``target``/``targets`` resolution.

Every method, metric and study that needs the model's prediction goes through :func:`predict`
(model guarded by :func:`~smoothsal.methods.base.preserve_model`, no gradient, output checked
to be ``[B, classes]``) and :func:`resolve_model_targets`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from smoothsal.allocator import prepare as prepare_allocator
from smoothsal._core.validation import TargetSpec, check_logits, resolve_targets

#: the ``nn.Module`` attributes that hold hooks (what ``preserve_model`` restores and what makes
#: :func:`smoothsal.fusion.folded` leave a model unfolded)
MODULE_HOOK_DICTS: tuple[str, ...] = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
)

__all__ = ["model_device", "predict", "resolve_device", "resolve_model_targets", "row_chunks", "rows_per_call", "to_model_device"]

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


def model_device(model: nn.Module | None) -> torch.device | None:
    """The device of the model's first parameter (or buffer); ``None`` for a model without either."""
    if model is None:
        return None
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return None


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The device a ``--device`` value names: ``"auto"`` (or ``None``) is CUDA when present, else CPU;
    ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` are taken as given, after checking they exist.
    """
    if isinstance(name, torch.device):
        return name
    text = "auto" if name is None else str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError as err:
        raise ValueError(f"device: expected auto, cpu, cuda, cuda:N or mps, got {name!r}") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {name!r} asked for CUDA, but torch sees no CUDA device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device: {name!r}, but only {torch.cuda.device_count()} CUDA device(s) exist")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device: {name!r} asked for MPS, which this torch build cannot use")
    return device


def to_model_device(model: nn.Module | None, inputs: Tensor) -> Tensor:
    """``inputs`` on the model's device: inputs follow the model (results go back to the inputs' device).

    Every method, ``Smooth`` and forward-only metric passes its inputs through here before it runs
    the model, so this is also where CPU work gets the allocator setting that keeps freed memory
    for reuse (:func:`smoothsal.allocator.prepare`, once per process).
    """
    device = model_device(model)
    out = inputs if device is None or inputs.device == device else inputs.to(device)
    prepare_allocator(out.device)
    return out


def row_chunks(n_rows: int, batch_size: int | None) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n_rows)`` in chunks of ``batch_size`` (one chunk if ``None``)."""
    size = n_rows if batch_size is None else max(1, int(batch_size))
    return [(s, min(s + size, n_rows)) for s in range(0, n_rows, max(1, size))]


def predict(model: nn.Module, inputs: Tensor, *, batch_size: int | None = None) -> Tensor:
    """Logits ``[B, classes]`` of ``model`` on ``inputs`` in eval mode, without gradient, in chunks of
    ``batch_size`` rows (``None``: :func:`rows_per_call`'s automatic rule).

    The model's train/eval state is restored afterwards (see ``preserve_model``). The forward
    passes run the model's BatchNorm-folded copy where there is one (:func:`smoothsal.fusion.folded`:
    the same function; this is how deletion/insertion, faithfulness correlation and pruning call it).
    """
    from smoothsal.fusion import folded
    from smoothsal.methods.base import preserve_model

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
