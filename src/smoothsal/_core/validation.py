"""Argument checks shared by every method, metric and experiment.

Each check raises an exception that names the argument and says what was expected, so a
user sees ``inputs must be finite`` instead of a NaN map three modules later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
from torch import Tensor

TargetSpec = Union[None, int, Sequence[int], Tensor]


def check_inputs(inputs: Tensor, name: str = "inputs", ndim: int | None = None) -> Tensor:
    """Check that ``inputs`` is a finite floating tensor ``[B, ...]`` (``[B, C, H, W]`` if ``ndim=4``)."""
    if not isinstance(inputs, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape [B, ...], got {type(inputs).__name__}")
    if not inputs.is_floating_point():
        raise TypeError(f"`{name}` must be a floating-point tensor, got dtype {inputs.dtype}")
    if ndim is not None and inputs.dim() != ndim:
        layout = "[B, C, H, W]" if ndim == 4 else f"{ndim} dimensions"
        raise ValueError(f"`{name}` must have shape {layout}, got shape {tuple(inputs.shape)}")
    if inputs.dim() < 2:
        raise ValueError(
            f"`{name}` must have a batch dimension, shape [B, ...]; got shape {tuple(inputs.shape)}"
            " (use inputs.unsqueeze(0) for one sample)"
        )
    if inputs.shape[0] == 0:
        raise ValueError(f"`{name}` is an empty batch (shape {tuple(inputs.shape)})")
    if not torch.isfinite(inputs).all():
        raise ValueError(f"`{name}` must be finite; it contains NaN or Inf values")
    return inputs


def check_logits(logits: object, batch_size: int) -> Tensor:
    """Check that the model returned class scores shaped ``[B, classes]``."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"model output must be a tensor of logits [B, classes], got {type(logits).__name__}")
    if logits.dim() != 2 or logits.shape[0] != batch_size:
        raise ValueError(
            f"model output must have shape [B, classes] = [{batch_size}, classes], got {tuple(logits.shape)}"
        )
    return logits


def resolve_targets(target: TargetSpec, logits: Tensor) -> Tensor:
    """Turn a target spec into a LongTensor ``[B]`` of class indices.

    ``None`` picks each sample's predicted class (argmax of ``logits``); an int applies to every
    sample; a sequence or tensor gives one class per sample.
    """
    batch_size, num_classes = logits.shape
    if target is None:
        return logits.detach().argmax(dim=1)
    if isinstance(target, bool):
        raise TypeError("`target` must be None, an int, or a sequence of B ints, got a bool")
    if isinstance(target, int):
        t = torch.full((batch_size,), target, dtype=torch.long, device=logits.device)
    else:
        try:
            t = torch.as_tensor(target, device=logits.device)
        except (TypeError, ValueError) as err:
            raise TypeError(f"`target` must be None, an int, or a sequence of B ints, got {target!r}") from err
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"`target` must hold integers, got dtype {t.dtype}")
        t = t.long().reshape(-1)
        if t.numel() == 1:
            t = t.expand(batch_size).clone()
        if t.numel() != batch_size:
            raise ValueError(f"`target` must hold one class per sample ({batch_size}), got {t.numel()}")
    if (t < 0).any() or (t >= num_classes).any():
        raise ValueError(
            f"`target` must lie in [0, {num_classes - 1}] (the model has {num_classes} classes), "
            f"got {t.tolist() if t.numel() <= 8 else t}"
        )
    return t


def check_nonnegative(value: float, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__}")
    if not (value >= 0) or value != value or value == float("inf"):
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value}")
    return float(value)


def check_positive_int(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}")
    return value


def check_choice(value: str, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}, got {value!r}")
    return value
