"""Where the work runs: the model's device, a ``--device`` value, and inputs moved to the model.

Inputs follow the model (results go back to the inputs' device); moving them is also where CPU
work gets the allocator setting that keeps freed memory for reuse
(:func:`smoothsal.execution.allocator.prepare`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from smoothsal.execution.allocator import prepare as prepare_allocator

__all__ = ["model_device", "resolve_device", "to_model_device"]


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
    for reuse (:func:`smoothsal.execution.allocator.prepare`, once per process).
    """
    device = model_device(model)
    out = inputs if device is None or inputs.device == device else inputs.to(device)
    prepare_allocator(out.device)
    return out
