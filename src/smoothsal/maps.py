r"""Per-pixel views of attribution maps, written once for render, metrics and studies.

* :func:`reduce_channels`: one value per pixel, ``[B, C, H, W] -> [B, H, W]``;
* :func:`percentile`: per-map percentile with linear interpolation (numpy's default), by sorting
  (:func:`torch.quantile` refuses inputs over :math:`2^{24}` elements);
* :func:`cap`: the SmoothGrad outlier cap (Smilkov et al. 2017, arXiv:1706.03825, §3.1): the
  ``p``-th percentile of ``|m|``, or its maximum when that percentile is 0 (sparse maps);
* :func:`prepare_map`: ``|m|`` summed over channels, capped, scaled to [0, 1] per map — the form
  SSIM and the rendered pictures use (our SSIM definition: Gaussian window σ = 1.5, data range 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from smoothsal._core.validation import check_choice

__all__ = ["REDUCE_MODES", "cap", "check_percentile", "percentile", "prepare_map", "reduce_channels"]

#: ``abs_sum`` Σ_c|m_c|, ``sum`` Σ_c m_c (keeps the sign), ``max_abs`` max_c|m_c|, ``l2`` √(Σ_c m_c²).
REDUCE_MODES = ("abs_sum", "sum", "max_abs", "l2")


def reduce_channels(maps: Tensor, mode: str = "abs_sum") -> Tensor:
    r"""One value per pixel: ``[B, C, H, W] -> [B, H, W]``; ``[B, H, W]`` maps pass through
    (``|.|`` applied for the absolute modes).

    .. math:: \text{abs\_sum}: \sum_c |m_c|, \quad \text{sum}: \sum_c m_c, \quad
              \text{max\_abs}: \max_c |m_c|, \quad \text{l2}: \sqrt{\textstyle\sum_c m_c^2}

    Example:
        >>> reduce_channels(torch.tensor([3.0, -4.0]).reshape(1, 2, 1, 1), "l2")
        tensor([[[5.]]])
    """
    check_choice(mode, "mode", REDUCE_MODES)
    if maps.dim() == 3:
        return maps if mode == "sum" else maps.abs()
    if maps.dim() != 4:
        raise ValueError(f"`maps` must have shape [B, C, H, W] or [B, H, W], got shape {tuple(maps.shape)}")
    if mode == "abs_sum":
        return maps.abs().sum(dim=1)
    if mode == "sum":
        return maps.sum(dim=1)
    if mode == "max_abs":
        return maps.abs().amax(dim=1)
    return maps.pow(2).sum(dim=1).sqrt()


def check_percentile(value: float, name: str = "percentile") -> float:
    """A number in (0, 100]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number in (0, 100], got {type(value).__name__}")
    if not 0.0 < value <= 100.0:
        raise ValueError(f"`{name}` must lie in (0, 100], got {value}")
    return float(value)


def percentile(values: Tensor, q: float) -> Tensor:
    """Per-row ``q``-th percentile of ``values`` ``[B, N] -> [B]``, linear interpolation (as numpy)."""
    n = values.shape[1]
    ordered = values.sort(dim=1).values  # [B, N]
    pos = q / 100.0 * (n - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return ordered[:, lo] + frac * (ordered[:, hi] - ordered[:, lo])


def cap(magnitudes: Tensor, q: float = 99.0) -> Tensor:
    """Outlier cap per map ``[B, ...] -> [B]``: the ``q``-th percentile of the (non-negative)
    ``magnitudes``, or their maximum where that percentile is 0; 0 only for an all-zero map."""
    q = check_percentile(q)
    flat = magnitudes.reshape(magnitudes.shape[0], -1)
    c = percentile(flat, q)
    return torch.where(c > 0, c, flat.amax(dim=1))


def prepare_map(maps: Tensor, percentile: float = 99.0) -> Tensor:
    r"""``[B, C, H, W]`` or ``[B, H, W]`` -> ``[B, H, W]`` in [0, 1]:

    .. math:: \hat m = \min\Big(\sum_c |m_c|,\; q\Big) / q, \qquad q = \text{cap}(\textstyle\sum_c |m_c|)

    An all-zero map gives zeros.
    """
    pixel = reduce_channels(maps, "abs_sum")  # [B, H, W]
    c = cap(pixel, percentile)  # [B]
    c = c.view(-1, *([1] * (pixel.dim() - 1)))
    return torch.where(c > 0, torch.minimum(pixel, c) / c.clamp_min(torch.finfo(pixel.dtype).tiny), torch.zeros_like(pixel))
