r"""Complexity: how concentrated is a map? Sparseness (Gini) and entropy, batched in torch.

Both work on the magnitudes :math:`v = |a|` of each map ``[B, ...]``, flattened over all its
features (``[B, C, H, W]`` maps count every channel; pass ``reduce_channels=True`` to first sum
:math:`|a_c|` over ``C`` and score pixels).

* :func:`sparseness` -- the Gini index (Chalasani et al. 2020, "Concise explanations of neural
  networks using adversarial training", ICML, arXiv:1810.06583): 0 for a uniform map,
  :math:`(d - 1)/d \to 1` for a one-hot map. Higher = sparser.
* :func:`entropy` -- Shannon entropy of the normalised magnitudes (Bhatt et al. 2020,
  arXiv:2005.00631, "complexity"): :math:`\log d` for a uniform map, 0 for a one-hot map.
  Lower = simpler.

An all-zero map is scored as the limit of a uniform map (nothing stands out): sparseness 0 and
entropy :math:`\log d`, never NaN.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from smoothsal._core.validation import check_inputs
from smoothsal.maps import reduce_channels as _reduce_channels
from smoothsal.metrics._base import metric

__all__ = ["entropy", "sparseness"]


def _magnitudes(attributions: Tensor, reduce_channels: bool) -> Tensor:
    """``[B, ...]`` -> ``[B, d]`` magnitudes."""
    check_inputs(attributions, name="attributions")
    v = attributions.detach().abs()
    if reduce_channels:
        if v.dim() != 4:
            raise ValueError(
                f"`reduce_channels=True` needs maps of shape [B, C, H, W], got {tuple(attributions.shape)}"
            )
        v = _reduce_channels(v, "abs_sum")
    return v.reshape(v.shape[0], -1)


@metric("map", higher_is_better=True)
def sparseness(attributions: Tensor, *, reduce_channels: bool = False) -> Tensor:
    r"""Gini index of the map's magnitudes (Chalasani et al. 2020, arXiv:1810.06583).

    With :math:`v_{(1)} \le \dots \le v_{(d)}` the sorted magnitudes,

    .. math:: G(v) = \frac{\sum_{i=1}^{d} (2i - d - 1)\, v_{(i)}}{d \sum_{i=1}^{d} v_{(i)}}

    Args:
        attributions: ``[B, ...]`` maps.
        reduce_channels: score pixels (:math:`\sum_c |a_c|`) instead of all features.
    Returns:
        ``[B]`` in :math:`[0, (d-1)/d]`; ``0`` for a uniform or all-zero map.

    Example:
        >>> sparseness(torch.tensor([[0.0, 1.0, 2.0, 3.0]]))  # (−1 + 2 + 9) / (4 · 6)
        tensor([0.4167])
    """
    v = _magnitudes(attributions, reduce_channels)
    d = v.shape[1]
    ordered = v.sort(dim=1).values  # [B, d] ascending
    weights = 2 * torch.arange(1, d + 1, dtype=v.dtype, device=v.device) - d - 1  # [d]
    total = ordered.sum(dim=1)
    num = (ordered * weights).sum(dim=1)
    gini = num / (d * torch.where(total > 0, total, torch.ones_like(total)))
    return torch.where(total > 0, gini, torch.zeros_like(gini))


@metric("map", higher_is_better=False)
def entropy(attributions: Tensor, *, reduce_channels: bool = False) -> Tensor:
    r"""Shannon entropy of the normalised magnitudes (Bhatt et al. 2020, arXiv:2005.00631).

    .. math:: H = -\sum_{i=1}^{d} p_i \log p_i, \qquad p_i = \frac{|a_i|}{\sum_j |a_j|},
              \quad 0 \log 0 = 0

    Args:
        attributions: ``[B, ...]`` maps.
        reduce_channels: score pixels (:math:`\sum_c |a_c|`) instead of all features.
    Returns:
        ``[B]`` in :math:`[0, \log d]` (nats); :math:`\log d` for a uniform or all-zero map.

    Example:
        >>> entropy(torch.tensor([[1.0, -1.0, 1.0, 1.0], [0.0, 0.0, 2.0, 0.0]]))  # log 4, 0
        tensor([1.3863, 0.0000])
    """
    v = _magnitudes(attributions, reduce_channels)
    d = v.shape[1]
    total = v.sum(dim=1, keepdim=True)
    p = v / torch.where(total > 0, total, torch.ones_like(total))
    h = 0.0 - torch.xlogy(p, p).sum(dim=1)  # 0.0 - 0.0 = +0.0 for a one-hot map (no "-0.")
    return torch.where(total[:, 0] > 0, h, torch.full_like(h, math.log(d)))
