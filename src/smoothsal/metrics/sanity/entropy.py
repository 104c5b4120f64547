r"""The complexity of a map for eMPRT (Hedström et al. 2023, arXiv:2401.06465): the discrete entropy of its
magnitudes' histogram."""

from __future__ import annotations

import torch
from torch import Tensor

from smoothsal._core.validation import check_positive_int

__all__ = ["ENTROPY_BINS", "discrete_entropy"]

#: histogram bins of :func:`discrete_entropy` (Quantus' default for eMPRT)
ENTROPY_BINS = 100


def discrete_entropy(attributions: Tensor, n_bins: int = ENTROPY_BINS) -> Tensor:
    r"""Discrete entropy of the histogram of a map's magnitudes, eMPRT's complexity (Hedström et al. 2023).

    .. math:: H = -\sum_{k=1}^{K} p_k \log p_k, \qquad p_k = \frac{\#\{i : |a_i| \in \text{bin}_k\}}{d}

    with :math:`K` equal bins over :math:`[0, \max_i |a_i|]` (so the value is scale-free), after
    summing :math:`|a|` over channels for ``[B, C, H, W]`` maps. A constant map has :math:`H = 0`;
    values spread evenly over the bins give :math:`\log K`.

    Args:
        attributions: ``[B, ...]`` maps. n_bins: :math:`K` (>= 2).
    Returns:
        ``[B]`` entropies in nats.

    Example:
        >>> discrete_entropy(torch.tensor([[0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0]]), n_bins=4)
        tensor([1.3863, 0.0000])
    """
    check_positive_int(n_bins, "n_bins", minimum=2)
    a = attributions.detach().abs().double()
    if a.dim() == 4:
        a = a.sum(dim=1)
    v = a.flatten(1)  # [B, d]
    top = v.amax(dim=1, keepdim=True)
    scaled = v / torch.where(top > 0, top, torch.ones_like(top))  # [0, 1]
    idx = (scaled * n_bins).long().clamp(max=n_bins - 1)  # [B, d] bin of each value
    counts = torch.zeros(v.shape[0], n_bins, dtype=torch.float64, device=v.device)
    counts.scatter_add_(1, idx, torch.ones_like(scaled))
    p = counts / v.shape[1]
    h = 0.0 - torch.xlogy(p, p).sum(dim=1)
    constant = (v.amax(dim=1) - v.amin(dim=1)) == 0
    return torch.where(constant, torch.zeros_like(h), h).float()
