r"""Baselines (reference inputs) for path and difference-from-reference methods.

Integrated Gradients (Sundararajan et al. 2017, arXiv:1703.01365) and DeepLIFT (Shrikumar et al.
2017, arXiv:1704.02685) explain the change of the score between a baseline :math:`x'` and the
input :math:`x`. The attributions sum to :math:`F(x) - F(x')`, so the baseline decides what
"absence of signal" means. The specs understood by :func:`make_baseline`:

* ``"black"`` / ``"zeros"``: :math:`x' = 0` (black in smoothsal's [0, 1] pixel space);
* a number ``c``: :math:`x' = c` everywhere;
* ``"blur"``: the input blurred by a Gaussian of standard deviation :math:`\sigma`
  (default :math:`\max(H, W) / 10` pixels), images ``[B, C, H, W]`` only;
* ``"uniform"``: noise :math:`x'_i \sim U(\min x, \max x)`, the range taken per sample, seeded;
* a tensor broadcastable to the inputs (e.g. ``[C, H, W]`` or ``[1, C, H, W]``);
* a callable ``inputs -> tensor`` (e.g. ``lambda x: gaussian_blur(x, 3.0)``).

:func:`gaussian_blur` is the separable blur used by ``"blur"``, exported for reuse:

.. math:: (G_\sigma * x)_{h,w} = \sum_{u,v} g_u\, g_v\, x_{h-u,\,w-v}, \qquad
          g_u = e^{-u^2 / 2\sigma^2} / \textstyle\sum_{u'} e^{-u'^2 / 2\sigma^2}

with the kernel truncated at :math:`|u| \le \lceil 3\sigma \rceil` and reflect padding at the border.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor

from smoothsal.noise import make_generator

BaselineSpec = Union[str, float, int, Tensor, Callable[[Tensor], Tensor]]

#: the string specs :func:`make_baseline` accepts.
BASELINE_NAMES: tuple[str, ...] = ("black", "zeros", "blur", "uniform")


def _gaussian_kernel1d(sigma: float, radius: int, like: Tensor) -> Tensor:
    """Normalised 1-D Gaussian ``[2 * radius + 1]`` with the dtype/device of ``like``."""
    u = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(u**2) / (2.0 * sigma**2))
    return (g / g.sum()).to(dtype=like.dtype, device=like.device)


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Blur each channel of ``images`` ``[B, C, H, W]`` with a Gaussian of std ``sigma`` pixels.

    Separable (one pass along H, one along W), kernel truncated at ``ceil(3 * sigma)`` pixels
    (and at ``H - 1`` / ``W - 1``, the most reflect padding allows), reflect padding, so a constant
    image stays constant. ``sigma = 0`` returns a copy.

    Args:
        images: float tensor ``[B, C, H, W]``.
        sigma: standard deviation in pixels, ``>= 0``.
    Returns:
        float tensor ``[B, C, H, W]``.

    Example:
        >>> x = torch.zeros(1, 1, 9, 9); x[0, 0, 4, 4] = 1.0
        >>> y = gaussian_blur(x, 1.0)
        >>> round(float(y.sum()), 4), bool(y[0, 0, 4, 4] < 1.0)
        (1.0, True)
    """
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"`images` must be a tensor of shape [B, C, H, W], got {shape}")
    if not images.is_floating_point():
        raise TypeError(f"`images` must be a floating-point tensor, got dtype {images.dtype}")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"`sigma` must be a finite number >= 0, got {sigma!r}")
    if sigma == 0:
        return images.clone()
    b, c, h, w = images.shape
    x = images.reshape(b * c, 1, h, w)  # [B*C, 1, H, W]: one depthwise channel per image channel
    for axis, size in ((2, h), (3, w)):
        radius = min(math.ceil(3.0 * sigma), size - 1)
        if radius == 0:
            continue
        g = _gaussian_kernel1d(float(sigma), radius, x)
        if axis == 2:
            x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), g.view(1, 1, -1, 1))
        else:
            x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), g.view(1, 1, 1, -1))
    return x.reshape(b, c, h, w)


def _uniform_baseline(inputs: Tensor, seed: int | torch.Generator) -> Tensor:
    """``U(min x, max x)`` noise, the range taken per sample."""
    gen = make_generator(seed)
    flat = inputs.detach().flatten(1)  # [B, D]
    view = (-1,) + (1,) * (inputs.dim() - 1)
    lo, hi = flat.min(dim=1).values.view(view), flat.max(dim=1).values.view(view)
    u = torch.rand(inputs.shape, generator=gen, dtype=inputs.dtype, device=gen.device).to(inputs.device)
    return lo + (hi - lo) * u


def _tensor_baseline(baseline: Tensor, inputs: Tensor, source: str) -> Tensor:
    if not isinstance(baseline, Tensor):
        raise TypeError(f"`baseline` {source} must be a tensor, got {type(baseline).__name__}")
    try:
        shape = torch.broadcast_shapes(baseline.shape, inputs.shape)
    except RuntimeError:
        shape = None
    if shape != inputs.shape:
        raise ValueError(
            f"`baseline` {source} must be broadcastable to the inputs' shape {tuple(inputs.shape)}, "
            f"got shape {tuple(baseline.shape)}"
        )
    if baseline.is_complex() or not torch.isfinite(baseline).all():
        raise ValueError(f"`baseline` {source} must be finite real values; it contains NaN, Inf or complex values")
    return baseline.detach().to(dtype=inputs.dtype, device=inputs.device).expand_as(inputs).clone()


def check_baseline_spec(spec: BaselineSpec) -> BaselineSpec:
    """Validate a baseline spec without inputs (shape checks happen in :func:`make_baseline`)."""
    if isinstance(spec, str):
        if spec not in BASELINE_NAMES:
            raise ValueError(
                f"`baseline` must be one of {list(BASELINE_NAMES)}, a number, a tensor or a callable, got {spec!r}"
            )
    elif isinstance(spec, bool):
        raise TypeError("`baseline` must be a string, a number, a tensor or a callable, got a bool")
    elif isinstance(spec, (int, float)):
        if not math.isfinite(spec):
            raise ValueError(f"`baseline` constant must be finite, got {spec}")
    elif isinstance(spec, Tensor):
        if spec.is_complex() or not torch.isfinite(spec).all():
            raise ValueError("`baseline` tensor must be finite real values; it contains NaN, Inf or complex values")
    elif not callable(spec):
        raise TypeError(f"`baseline` must be a string, a number, a tensor or a callable, got {type(spec).__name__}")
    return spec


def make_baseline(
    spec: BaselineSpec,
    inputs: Tensor,
    *,
    seed: int | torch.Generator = 0,
    blur_sigma: float | None = None,
) -> Tensor:
    """Build the baseline :math:`x'` for ``inputs`` from a spec (see the module docstring).

    Args:
        spec: ``"black"``/``"zeros"``, a number, ``"blur"``, ``"uniform"``, a tensor broadcastable
            to ``inputs``, or a callable ``inputs -> tensor``.
        inputs: float tensor ``[B, ...]`` (``[B, C, H, W]`` for ``"blur"``).
        seed: int or ``torch.Generator`` for ``"uniform"``; the same int gives the same baseline.
        blur_sigma: Gaussian std in pixels for ``"blur"``; ``None`` = ``max(H, W) / 10``.
    Returns:
        float tensor shaped like ``inputs`` (a new tensor; ``inputs`` is not modified).

    Example:
        >>> make_baseline(0.5, torch.zeros(2, 3)).tolist()
        [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]
    """
    check_baseline_spec(spec)
    inputs = inputs.detach()
    if isinstance(spec, str):
        if spec in ("black", "zeros"):
            return torch.zeros_like(inputs)
        if spec == "uniform":
            return _uniform_baseline(inputs, seed)
        # "blur"
        if inputs.dim() != 4:
            raise ValueError(
                f'`baseline="blur"` needs images of shape [B, C, H, W], got inputs of shape {tuple(inputs.shape)}'
            )
        sigma = max(inputs.shape[-2:]) / 10.0 if blur_sigma is None else blur_sigma
        return gaussian_blur(inputs, sigma)
    if isinstance(spec, (int, float)):
        return torch.full_like(inputs, float(spec))
    if isinstance(spec, Tensor):
        return _tensor_baseline(spec, inputs, "tensor")
    return _tensor_baseline(spec(inputs), inputs, "callable result")
