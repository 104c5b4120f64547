r"""Localization: does the map fall on the object? Scores against ground-truth masks, batched.

Maps ``[B, C, H, W]``, ``[B, 1, H, W]`` or ``[B, H, W]`` are reduced to one value per pixel
(``reduce="abs_sum"``: :math:`\sum_c |a_c|`; ``"sum"``: :math:`\sum_c a_c`; ``"max_abs"``:
:math:`\max_c |a_c|`), and compared with boolean masks ``[B, 1, H, W]`` or ``[B, H, W]`` (the
``masks`` of :func:`smoothsal.datasets.synthetic.make_synthetic`).

* :func:`pointing_game` (Zhang et al. 2016, arXiv:1608.00507): is the map's maximum on the object?
* :func:`relevance_mass` (Arras et al. 2022, arXiv:2003.07258, "relevance mass accuracy").
* :func:`relevance_rank` (Arras et al. 2022, "relevance rank accuracy").
* :func:`mask_topk_iou`: IoU of the top-``k`` pixels with the mask.

Chance levels for a map unrelated to the object, with mask area fraction :math:`p`: pointing
game :math:`p`, relevance mass :math:`\approx p`, relevance rank :math:`p`, top-k IoU
:math:`p / (2 - p)` (with ``k`` = mask area).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from smoothsal._core.validation import check_choice, check_inputs, check_positive_int
from smoothsal.maps import reduce_channels
from smoothsal.metrics._base import metric

__all__ = ["mask_topk_iou", "pointing_game", "relevance_mass", "relevance_rank"]

_REDUCE = ("abs_sum", "sum", "max_abs")


def _pixel_map(attributions: Tensor, reduce: str) -> Tensor:
    """``[B, C, H, W]`` / ``[B, H, W]`` -> ``[B, H, W]`` one value per pixel."""
    check_inputs(attributions, name="attributions")
    check_choice(reduce, "reduce", _REDUCE)
    if attributions.dim() not in (3, 4):
        raise ValueError(
            f"`attributions` must have shape [B, C, H, W] or [B, H, W], got {tuple(attributions.shape)}"
        )
    a = attributions.detach()
    return reduce_channels(a if a.dim() == 4 else a[:, None], reduce)


def _check_masks(masks: Tensor, pixel_map: Tensor) -> Tensor:
    """Masks ``[B, 1, H, W]`` or ``[B, H, W]`` matching the maps -> bool ``[B, H, W]``; none empty."""
    if not isinstance(masks, Tensor):
        raise TypeError(f"`masks` must be a bool tensor [B, 1, H, W] or [B, H, W], got {type(masks).__name__}")
    b, h, w = pixel_map.shape
    if tuple(masks.shape) not in ((b, 1, h, w), (b, h, w)):
        raise ValueError(
            f"`masks` must have shape [B, 1, H, W] = {(b, 1, h, w)} or [B, H, W] = {(b, h, w)} to match the "
            f"attributions, got {tuple(masks.shape)}"
        )
    m = masks.reshape(b, h, w)
    if m.dtype != torch.bool:
        if m.is_complex() or not ((m == 0) | (m == 1)).all():
            raise ValueError(f"`masks` must be boolean (or hold only 0 and 1), got dtype {masks.dtype}")
        m = m != 0
    empty = (~m.reshape(b, -1).any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"`masks` must mark at least one pixel per sample; the mask of sample(s) {empty} is empty")
    return m.to(pixel_map.device)


def _dilate(masks: Tensor, tolerance: int) -> Tensor:
    """Grow bool masks ``[B, H, W]`` by a disk of radius ``tolerance`` pixels (Euclidean)."""
    if tolerance == 0:
        return masks
    r = tolerance
    u = torch.arange(-r, r + 1, device=masks.device, dtype=torch.float32)
    disk = ((u[:, None] ** 2 + u[None, :] ** 2) <= r * r).float()[None, None]  # [1, 1, 2r+1, 2r+1]
    grown = F.conv2d(masks.float()[:, None], disk, padding=r)  # [B, 1, H, W]
    return grown[:, 0] > 0.5


@metric("map", higher_is_better=True)
def pointing_game(attributions: Tensor, masks: Tensor, tolerance: int = 0, *, reduce: str = "abs_sum") -> Tensor:
    r"""Pointing game (Zhang et al. 2016, "Top-down neural attention by excitation backprop",
    arXiv:1608.00507): a hit when the map's maximum lies on the object.

    .. math:: \mathrm{hit} = \mathbb 1\big[\operatorname*{arg\,max}_p m_p \in D_\tau(M)\big]

    with :math:`D_\tau(M)` the mask dilated by a disk of radius ``tolerance`` pixels (Zhang et al.
    use 15 px at ImageNet scale). Ties: when several pixels share the maximum, it is a hit only
    if *all* of them lie in :math:`D_\tau(M)` -- so a flat map (e.g. all zeros) points nowhere
    and misses unless the (dilated) mask covers the whole image.

    Args:
        attributions: ``[B, C, H, W]`` or ``[B, H, W]``.
        masks: bool ``[B, 1, H, W]`` or ``[B, H, W]``, none empty.
        tolerance: dilation radius in pixels, ``>= 0``.
        reduce: channel reduction (``"abs_sum"``, ``"sum"``, ``"max_abs"``).
    Returns:
        bool ``[B]``; its mean is the pointing accuracy.

    Example:
        >>> mask = torch.zeros(1, 5, 5, dtype=torch.bool); mask[0, 1:3, 1:3] = True
        >>> attr = torch.zeros(1, 5, 5); attr[0, 2, 4] = 1.0   # max two pixels right of the box
        >>> pointing_game(attr, mask).tolist(), pointing_game(attr, mask, tolerance=2).tolist()
        ([False], [True])
    """
    pixel = _pixel_map(attributions, reduce)  # [B, H, W]
    m = _check_masks(masks, pixel)
    check_positive_int(tolerance, "tolerance", minimum=0)
    region = _dilate(m, tolerance).reshape(pixel.shape[0], -1)  # [B, H*W]
    flat = pixel.reshape(pixel.shape[0], -1)
    at_max = flat == flat.amax(dim=1, keepdim=True)  # [B, H*W]
    return ~(at_max & ~region).any(dim=1)


@metric("map", higher_is_better=True)
def relevance_mass(attributions: Tensor, masks: Tensor, *, relevance: str = "positive") -> Tensor:
    r"""Relevance mass accuracy (Arras et al. 2022, "CLEVR-XAI", arXiv:2003.07258).

    .. math:: \mathrm{Mass} = \frac{\sum_{p \in M} R_p}{\sum_{p} R_p}

    with pixel relevance :math:`R_p = \max(0, \sum_c a_{c,p})` for ``relevance="positive"``
    (Arras et al. count positive relevance only) or :math:`R_p = \sum_c |a_{c,p}|` for ``"abs"``
    (for maps whose sign is arbitrary, such as gradients). 1 when all relevance is on the object.

    Args:
        attributions: ``[B, C, H, W]`` or ``[B, H, W]``.
        masks: bool ``[B, 1, H, W]`` or ``[B, H, W]``, none empty.
        relevance: ``"positive"`` or ``"abs"``.
    Returns:
        ``[B]`` in [0, 1]; ``0`` for a map with no (positive) relevance at all.

    Example:
        >>> mask = torch.tensor([[[True, False], [False, False]]])
        >>> relevance_mass(torch.tensor([[[3.0, -1.0], [1.0, 0.0]]]), mask)   # 3 / (3 + 1)
        tensor([0.7500])
    """
    check_choice(relevance, "relevance", ("positive", "abs"))
    pixel = _pixel_map(attributions, "sum" if relevance == "positive" else "abs_sum")
    m = _check_masks(masks, pixel)
    r = pixel.clamp(min=0).reshape(pixel.shape[0], -1)  # [B, H*W]
    inside = (r * m.reshape(r.shape).to(r.dtype)).sum(dim=1)
    total = r.sum(dim=1)
    safe = torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, inside / safe, torch.zeros_like(total))


def _topk(pixel: Tensor, k: Tensor) -> Tensor:
    """Bool ``[B, H*W]``: each row's ``k[b]`` largest pixels (ties -> earlier pixel, row-major)."""
    flat = pixel.reshape(pixel.shape[0], -1)
    order = flat.argsort(dim=1, descending=True, stable=True)  # [B, N]
    keep = torch.arange(flat.shape[1], device=flat.device)[None] < k[:, None]  # [B, N] in sorted order
    return torch.zeros_like(keep).scatter_(1, order, keep)


@metric("map", higher_is_better=True)
def relevance_rank(attributions: Tensor, masks: Tensor, *, reduce: str = "abs_sum") -> Tensor:
    r"""Relevance rank accuracy (Arras et al. 2022, arXiv:2003.07258).

    .. math:: \mathrm{Rank} = \frac{|P_K \cap M|}{K}, \qquad K = |M|

    with :math:`P_K` the :math:`K` highest-relevance pixels (ties -> earlier pixel, row-major).

    Returns:
        ``[B]`` in [0, 1]; chance is the mask's area fraction.
    """
    pixel = _pixel_map(attributions, reduce)
    m = _check_masks(masks, pixel).reshape(pixel.shape[0], -1)
    k = m.sum(dim=1)  # [B]
    top = _topk(pixel, k)
    return (top & m).sum(dim=1).to(pixel.dtype) / k.to(pixel.dtype)


@metric("map", higher_is_better=True)
def mask_topk_iou(attributions: Tensor, masks: Tensor, k: int | None = None, *, reduce: str = "abs_sum") -> Tensor:
    r"""Intersection over union of the map's top-``k`` pixels with the mask.

    .. math:: \mathrm{IoU} = \frac{|P_k \cap M|}{|P_k \cup M|}

    Args:
        attributions: ``[B, C, H, W]`` or ``[B, H, W]``.
        masks: bool ``[B, 1, H, W]`` or ``[B, H, W]``, none empty.
        k: pixels in :math:`P_k`; ``None`` = each sample's mask area :math:`|M|`.
        reduce: channel reduction.
    Returns:
        ``[B]`` in [0, 1]; 1 when the top pixels are exactly the mask.
    """
    pixel = _pixel_map(attributions, reduce)
    m = _check_masks(masks, pixel).reshape(pixel.shape[0], -1)
    n = m.shape[1]
    if k is None:
        kk = m.sum(dim=1)
    else:
        check_positive_int(k, "k")
        if k > n:
            raise ValueError(f"`k` must be <= H * W = {n} (the pixels per map), got {k}")
        kk = torch.full((m.shape[0],), k, device=m.device)
    top = _topk(pixel, kk)
    return (top & m).sum(dim=1).to(pixel.dtype) / (top | m).sum(dim=1).to(pixel.dtype)
