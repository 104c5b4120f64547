"""Mixed precision for the forward pass: :class:`MixedPrecision` wraps a model in ``torch.autocast``.

Why: a saliency map is a gradient, and on hardware with fast low-precision matrix units (GPU
tensor cores; CPUs with AVX-512 BF16 or AMX) the forward and backward passes of a convolutional
network run 1.3–2× faster in bfloat16/float16. The price is precision: bfloat16 keeps 8 bits of
mantissa, so one gradient differs from the float32 gradient by far more than rounding of the
inputs would suggest (every layer's rounding is propagated and amplified through the backward
pass). What a user gets is stated, not assumed:

* **One gradient** of EfficientNet-Lite0 in bfloat16 differs from the float32 gradient by a
  relative L2 error of up to 0.82 on the bundled photos (``benchmarks/bench_precision.py``).
* **A smoothed map** averages n such gradients; much of the rounding error behaves like extra
  noise and averages out, so its error against the float32 smoothed map (same draws) is far
  smaller (0.28 at n = 64 on the same photos, where the map's own relative standard error is
  0.73). The benchmark reports it beside the map's own relative standard error; on this
  AVX512-BF16 CPU bfloat16 ran 1.67× faster, but 0.28 > 0.5 × tol, so it is not acceptable by
  the rule below at n = 64.

The rule (fixed before measuring): mixed precision is *acceptable* for a map when its relative L2
error against float32 (same noise draws) is at most half of the map's own relative standard error
``tol`` — the rounding then changes the map by less than the Monte-Carlo error the user already
accepted. It is never the default; ``--precision bf16`` on the command line opts in.

The inputs, their gradient and the logits stay float32: autocast lowers the precision of the
matrix products and convolutions inside the model only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["PRECISIONS", "MixedPrecision", "parse_precision", "with_precision"]

#: The names ``--precision`` accepts -> the autocast dtype (``None`` = float32, no autocast).
PRECISIONS: dict[str, torch.dtype | None] = {
    "float32": None,
    "fp32": None,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def parse_precision(name: str | torch.dtype | None) -> torch.dtype | None:
    """The autocast dtype a precision name stands for; ``None`` (and ``"float32"``) = full precision."""
    if name is None or name == torch.float32:
        return None
    if isinstance(name, torch.dtype):
        if name in (torch.bfloat16, torch.float16):
            return name
        raise ValueError(f"`precision` must be float32, bfloat16 or float16, got {name}")
    key = str(name).strip().lower()
    if key not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {sorted(set(PRECISIONS))}, got {name!r}")
    return PRECISIONS[key]


class MixedPrecision(nn.Module):
    """``model`` with its forward pass under ``torch.autocast(dtype)``; logits returned as float32.

    Every smoothsal method works on the wrapped model unchanged (hooks reach the inner modules;
    the wrapper adds the prefix ``model.`` to layer names). The autocast device is the inputs'.

    Args:
        model: the classifier.
        dtype: ``torch.bfloat16`` (CPU and recent GPUs) or ``torch.float16`` (GPU), or a name
            accepted by :func:`parse_precision`.

    Example:
        >>> import torch
        >>> net = MixedPrecision(torch.nn.Linear(4, 2), "bf16")
        >>> net(torch.ones(1, 4)).dtype
        torch.float32
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype | str = torch.bfloat16) -> None:
        super().__init__()
        resolved = parse_precision(dtype)
        if resolved is None:
            raise ValueError("`dtype` must be a reduced precision (bfloat16 or float16); float32 needs no wrapper")
        self.model = model
        self.dtype = resolved
        self.train(model.training)  # the wrapper is in the mode the model was in
        # forward what the zoo attaches to its models (image size, class names), for the CLI
        for name in ("image_size", "class_names"):
            if hasattr(model, name):
                setattr(self, name, getattr(model, name))

    def forward(self, inputs: Tensor) -> Tensor:
        with torch.autocast(device_type=inputs.device.type, dtype=self.dtype):
            out = self.model(inputs)
        return out.float()

    def extra_repr(self) -> str:
        return f"dtype={self.dtype}"


def with_precision(model: nn.Module, precision: str | torch.dtype | None) -> nn.Module:
    """``model`` itself for float32, else ``MixedPrecision(model, precision)``."""
    dtype = parse_precision(precision)
    return model if dtype is None else MixedPrecision(model, dtype)
