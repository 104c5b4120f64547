r"""How alike are two saliency maps? Batched, functional similarity measures in torch.

Every function compares maps ``a`` and ``b`` of identical shape ``[B, ...]`` (image maps are
``[B, C, H, W]``, CAM maps ``[B, 1, H, W]``, or already reduced ``[B, H, W]``) pair by pair and
returns a ``[B]`` float tensor, one value per pair. They are the measures of the stability
experiments (the Table 1 of Ye & Farnia 2025 (arXiv:2411.05837): L2 distance, SSIM and top-k overlap between
the maps of two models) and of the sanity checks (Spearman rank correlation, Adebayo et al. 2018,
arXiv:1810.03292).

* :func:`l2_distance` — :math:`\lVert a - b \rVert_2` over all non-batch elements, optionally
  after dividing each map by its L2 norm (scale-free).
* :func:`cosine_similarity` — :math:`\langle a, b\rangle / (\lVert a\rVert\,\lVert b\rVert)`.
* :func:`spearman` — Pearson correlation of the (tie-averaged) pixel ranks.
* :func:`ssim_maps` — SSIM (Wang et al. 2004) on maps prepared by :func:`prepare_map`.
* :func:`topk_iou` — intersection over union of the ``k`` most salient pixels (:func:`topk_mask`).

Channel reduction (where a measure needs one value per pixel): ``[B, C, H, W]`` maps are reduced
over ``C`` with :math:`\sum_c |m_c|` (absolute) or :math:`\sum_c m_c` (signed); ``[B, H, W]``
maps are used as they are (``|m|`` when absolute).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from smoothsal._core.validation import check_inputs, check_positive_int
from smoothsal.maps import reduce_channels
from smoothsal.maps import prepare_map as _prepare_map
from smoothsal.metrics._base import metric

__all__ = [
    "DEFAULT_TOPK_FRACTION",
    "cosine_similarity",
    "l2_distance",
    "prepare_map",
    "rank_average",
    "spearman",
    "ssim_maps",
    "topk_choices",
    "topk_iou",
    "topk_mask",
]

#: Default share of pixels in the top-k set: ``k = 500`` at ``224 × 224`` (≈ 1 %), the
#: Table 1 of Ye & Farnia 2025 (arXiv:2411.05837); other sizes use the same fraction.
DEFAULT_TOPK_FRACTION = 500 / (224 * 224)


# ---- checks and shared helpers ----------------------------------------------------------------
def _check_pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Both maps are finite float tensors ``[B, ...]`` with the same shape."""
    check_inputs(a, name="a")
    check_inputs(b, name="b")
    if a.shape != b.shape:
        raise ValueError(
            f"`a` and `b` must have the same shape [B, ...], got `a` {tuple(a.shape)} and `b` {tuple(b.shape)}"
        )
    return a, b


def _reduce(maps: Tensor, absolute: bool) -> Tensor:
    """One value per pixel of image maps (:func:`smoothsal.maps.reduce_channels`); other maps as is."""
    if maps.dim() == 4:
        return reduce_channels(maps, "abs_sum" if absolute else "sum")
    return maps.abs() if absolute else maps


def _check_image_maps(maps: Tensor, name: str) -> Tensor:
    check_inputs(maps, name=name)
    if maps.dim() not in (3, 4):
        raise ValueError(f"`{name}` must have shape [B, C, H, W] or [B, H, W], got shape {tuple(maps.shape)}")
    return maps


# ---- L2 and cosine -----------------------------------------------------------------------------
def _unit_norm(maps: Tensor) -> Tensor:
    """Divide each map by its L2 norm; an all-zero map stays zero. ``[B, ...] -> [B, ...]``."""
    flat = maps.reshape(maps.shape[0], -1)  # [B, N]
    norm = flat.norm(dim=1, keepdim=True)  # [B, 1]
    safe = torch.where(norm > 0, norm, torch.ones_like(norm))
    return (flat / safe).reshape(maps.shape)


@metric("map_pair", higher_is_better=False)
def l2_distance(a: Tensor, b: Tensor, normalize: bool = False) -> Tensor:
    r"""Euclidean distance between paired maps (the integrand of Ye & Farnia 2025, eqs. 12–13).

    .. math:: d(a, b) = \lVert a - b \rVert_2, \qquad
              d_{\text{norm}}(a, b) = \left\lVert \frac{a}{\lVert a\rVert_2} - \frac{b}{\lVert b\rVert_2} \right\rVert_2

    Args:
        a, b: maps ``[B, ...]`` of the same shape; the norm runs over all non-batch elements.
        normalize: divide each map by its own L2 norm first, which makes the distance independent
            of each map's scale (in ``[0, 2]``); an all-zero map stays zero.
    Returns:
        ``[B]`` distances.

    Example:
        >>> l2_distance(torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 4.0]]))
        tensor([5.])
    """
    _check_pair(a, b)
    if normalize:
        a, b = _unit_norm(a), _unit_norm(b)
    return (a - b).reshape(a.shape[0], -1).norm(dim=1)


@metric("map_pair", higher_is_better=True)
def cosine_similarity(a: Tensor, b: Tensor) -> Tensor:
    r"""Cosine of the angle between paired maps, over all non-batch elements (signed values).

    .. math:: \cos(a, b) = \frac{\langle a, b \rangle}{\lVert a\rVert_2\,\lVert b\rVert_2}

    A pair in which one map is all zeros has no angle; it gets ``0``.

    Returns:
        ``[B]`` values in ``[-1, 1]``.
    """
    _check_pair(a, b)
    fa = _unit_norm(a).reshape(a.shape[0], -1)  # [B, N]
    fb = _unit_norm(b).reshape(b.shape[0], -1)
    return (fa * fb).sum(dim=1).clamp(-1.0, 1.0)


# ---- Spearman rank correlation -------------------------------------------------------------------
def rank_average(values: Tensor) -> Tensor:
    """Ranks ``1..N`` of each row of ``values`` ``[B, N]``, ties getting the average of their ranks.

    Same convention as :func:`scipy.stats.rankdata` (``method="average"``), batched: sort each row,
    give each run of equal values the mean of its 1-based positions, scatter back. Ranks are
    float64: a float32 sum of the positions of a large tie group (e.g. the zero region of a
    CAM map, tens of thousands of pixels) would lose whole ranks.
    """
    batch, n = values.shape
    ordered, order = values.sort(dim=1, stable=True)  # [B, N] each
    new_run = torch.ones_like(ordered, dtype=torch.long)
    new_run[:, 1:] = (ordered[:, 1:] != ordered[:, :-1]).long()
    # one id per run of ties, unique across the batch: [B, N]
    run_id = new_run.cumsum(dim=1) - 1 + torch.arange(batch, device=values.device)[:, None] * n
    position = torch.arange(1, n + 1, dtype=torch.float64, device=values.device).expand(batch, n)
    run_sum = torch.zeros(batch * n, dtype=torch.float64, device=values.device)
    run_sum.scatter_add_(0, run_id.reshape(-1), position.reshape(-1))
    run_len = torch.zeros_like(run_sum).scatter_add_(0, run_id.reshape(-1), torch.ones_like(run_sum))
    mean_rank = (run_sum / run_len.clamp(min=1))[run_id]  # [B, N], in sorted order
    return torch.empty_like(mean_rank).scatter_(1, order, mean_rank)


@metric("map_pair", higher_is_better=True)
def spearman(a: Tensor, b: Tensor, absolute: bool = True) -> Tensor:
    r"""Spearman rank correlation between the pixels of paired maps.

    .. math:: \rho(a, b) = \operatorname{corr}\big(\operatorname{rank}(a), \operatorname{rank}(b)\big)

    with tied values sharing their average rank (as :func:`scipy.stats.spearmanr`).

    Args:
        a, b: maps ``[B, ...]`` of the same shape. ``[B, C, H, W]`` maps are first reduced over
            ``C`` (sum of ``|.|`` if ``absolute``, else the signed sum).
        absolute: rank magnitudes ``|m|`` (the sanity-check convention, where the sign of a
            gradient map is arbitrary) instead of signed values.
    Returns:
        ``[B]`` correlations in ``[-1, 1]``; ``NaN`` (with a warning) for a pair in which a map is
        constant, where the correlation is undefined (scipy does the same).

    Example:
        >>> spearman(torch.tensor([[1.0, 2.0, 2.0, 5.0]]), torch.tensor([[0.1, 0.3, 0.2, 9.0]]))
        tensor([0.9487])
    """
    _check_pair(a, b)
    ra = rank_average(_reduce(a, absolute).reshape(a.shape[0], -1))  # [B, N]
    rb = rank_average(_reduce(b, absolute).reshape(b.shape[0], -1))
    ra = ra - ra.mean(dim=1, keepdim=True)
    rb = rb - rb.mean(dim=1, keepdim=True)
    denom = ra.norm(dim=1) * rb.norm(dim=1)
    rho = (ra * rb).sum(dim=1) / denom  # float64 [B]
    if (denom == 0).any():
        warnings.warn(
            "spearman: a map is constant, so its rank correlation is undefined; returning NaN for that pair",
            RuntimeWarning,
            stacklevel=2,
        )
        rho = torch.where(denom == 0, torch.full_like(rho, float("nan")), rho)
    return rho.clamp(-1.0, 1.0).to(a.dtype)


# ---- SSIM ------------------------------------------------------------------------------------------
def prepare_map(maps: Tensor, percentile: float = 99.0) -> Tensor:
    r"""Render maps the way SSIM compares them: ``[B, C, H, W]`` or ``[B, H, W]`` ``-> [B, H, W]``.

    .. math:: p = \sum_c |m_c|, \qquad \hat p = \min(p, q_{99}(p)) / q_{99}(p)

    with :math:`q_{99}` the 99th percentile of each map's pixels (the SmoothGrad paper's outlier
    cap, §3.1; :func:`smoothsal.maps.cap`). An all-zero map stays all zeros.
    """
    _check_image_maps(maps, "maps")
    return _prepare_map(maps, percentile)


def _gaussian_kernel(sigma: float, truncate: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Normalized 1-D Gaussian, radius ``int(truncate * sigma + 0.5)`` (as scipy.ndimage)."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


@metric("map_pair", higher_is_better=True)
def ssim_maps(
    a: Tensor,
    b: Tensor,
    *,
    prepare: bool = True,
    percentile: float = 99.0,
    sigma: float = 1.5,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    r"""Mean structural similarity (Wang et al. 2004, IEEE TIP 13(4)) between paired maps.

    .. math:: \mathrm{SSIM}(x, y) = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
              {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)},
              \quad C_1 = (K_1 L)^2,\ C_2 = (K_2 L)^2

    Local statistics use a Gaussian window of standard deviation ``sigma`` (1.5; 11 × 11 taps,
    truncated at 3.5 σ) and population (not sample) covariances; the SSIM image is averaged
    over the *valid* positions, where the whole window lies inside the map. This equals
    ``skimage.metrics.structural_similarity(x, y, data_range=1, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)``, which filters with reflected borders and then
    crops the 5-pixel border before averaging, so the padding never enters the mean.

    Args:
        a, b: maps ``[B, C, H, W]`` or ``[B, H, W]`` of the same shape, ``H, W >= 11`` for σ = 1.5.
        prepare: first render each map with :func:`prepare_map` (sum of
            ``|.|`` over channels, 99th-percentile cap, scale to [0, 1]). With ``False`` the maps
            must be ``[B, H, W]`` or ``[B, 1, H, W]`` images already on a scale of ``data_range``.
        percentile: the cap of :func:`prepare_map`.
        sigma, data_range, k1, k2: the SSIM constants (Wang et al.'s defaults).
    Returns:
        ``[B]`` mean SSIM, ``1`` for identical maps.
    """
    _check_pair(a, b)
    _check_image_maps(a, "a")
    if prepare:
        x, y = prepare_map(a, percentile), prepare_map(b, percentile)  # [B, H, W]
    else:
        if a.dim() == 4 and a.shape[1] != 1:
            raise ValueError(
                f"with `prepare=False`, `a` and `b` must be single-channel [B, H, W] or [B, 1, H, W] maps, "
                f"got shape {tuple(a.shape)}"
            )
        x, y = a.reshape(a.shape[0], *a.shape[-2:]), b.reshape(b.shape[0], *b.shape[-2:])
    if not sigma > 0:
        raise ValueError(f"`sigma` must be > 0, got {sigma}")
    if not data_range > 0:
        raise ValueError(f"`data_range` must be > 0, got {data_range}")
    g = _gaussian_kernel(sigma, 3.5, x.dtype, x.device)
    width = g.numel()
    height_, width_ = x.shape[-2:]
    if height_ < width or width_ < width:
        raise ValueError(
            f"`a` and `b` must be at least {width}x{width} pixels for an SSIM window with sigma={sigma}, "
            f"got {height_}x{width_} (use a smaller `sigma`)"
        )

    def blur(t: Tensor) -> Tensor:
        # separable valid convolution: [N, 1, H, W] -> [N, 1, H - width + 1, W - width + 1]
        t = F.conv2d(t, g.view(1, 1, width, 1))
        return F.conv2d(t, g.view(1, 1, 1, width))

    batch = x.shape[0]
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=0).unsqueeze(1)  # [5B, 1, H, W]
    mu_x, mu_y, e_xx, e_yy, e_xy = blur(stack).split(batch, dim=0)  # each [B, 1, h, w]
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov = e_xy - mu_x * mu_y
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim.mean(dim=(1, 2, 3))


# ---- top-k overlap -----------------------------------------------------------------------------------
def topk_mask(maps: Tensor, k: int) -> Tensor:
    """The ``k`` most salient pixels of each map, by magnitude after channel reduction.

    Args:
        maps: ``[B, C, H, W]`` (reduced with the sum of ``|.|`` over ``C``) or ``[B, H, W]`` (``|.|``).
        k: pixels to keep per map, ``1 <= k <= H * W``. Ties are broken deterministically in favour
            of the earlier pixel in row-major order.
    Returns:
        bool ``[B, H, W]`` with exactly ``k`` true pixels per map.
    """
    _check_image_maps(maps, "maps")
    scores = _reduce(maps, absolute=True)  # [B, H, W]
    flat = scores.reshape(scores.shape[0], -1)  # [B, H*W]
    _check_k(k, flat.shape[1])
    order = flat.argsort(dim=1, descending=True, stable=True)[:, :k]  # [B, k]
    mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, order, True)
    return mask.reshape(scores.shape)


def _check_k(k: int, n_pixels: int) -> int:
    check_positive_int(k, "k")
    if k > n_pixels:
        raise ValueError(f"`k` must be <= H * W = {n_pixels} (the pixels per map), got {k}")
    return k


def topk_choices(height: int, width: int, *, stroke_images: Tensor | None = None) -> dict[str, int]:
    r"""Named choices of the ``k`` of top-k IoU for ``height × width`` maps.

    The paper's ``k = 500`` at 224² is 1 % of the pixels; on a 28 × 28 digit that is 8 pixels, less
    than one stroke, so a top-k overlap there measures where the few largest gradients fall, not
    whether two maps find the same digit. Two other sizes are named:

    * ``"paper_fraction"``: :math:`\max(1, \mathrm{round}(\tfrac{500}{224^2} H W))` (8 at 28²);
    * ``"ten_percent"``: :math:`\mathrm{round}(0.1\,HW)` (78 at 28²), a fixed size between;
    * ``"stroke_median"`` (with ``stroke_images``): the median over the images of their stroke
      pixels -- pixels above half of the image's range, :math:`(x - x_{\min})/(x_{\max} - x_{\min}) > 0.5`
      after averaging the channels: the size of the object a map should find.

    A reproduction reports ``"paper_fraction"`` (the paper's rule) beside ``"stroke_median"``
    (the object's size) where images are at hand.

    Args:
        height, width: the maps' size.
        stroke_images: ``[N, C, H, W]`` or ``[N, H, W]`` images of the objects (digits), any scale.
    Returns:
        ``{name: k}``, each ``1 <= k <= H·W``.
    """
    check_positive_int(height, "height")
    check_positive_int(width, "width")
    n_pixels = height * width
    out = {"paper_fraction": max(1, round(DEFAULT_TOPK_FRACTION * n_pixels)), "ten_percent": max(1, round(0.1 * n_pixels))}
    if stroke_images is not None:
        check_inputs(stroke_images, name="stroke_images")
        x = stroke_images.double()
        x = x.mean(dim=1) if x.dim() == 4 else x
        if x.dim() != 3 or tuple(x.shape[-2:]) != (height, width):
            raise ValueError(f"`stroke_images` must be [N, C, {height}, {width}] or [N, {height}, {width}], "
                             f"got {tuple(stroke_images.shape)}")  # fmt: skip
        flat = x.reshape(x.shape[0], -1)
        lo, hi = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
        scaled = (flat - lo) / (hi - lo).clamp_min(torch.finfo(torch.float64).tiny)
        counts = (scaled > 0.5).sum(dim=1)
        out["stroke_median"] = int(min(n_pixels, max(1, int(counts.median()))))
    return out


@metric("map_pair", higher_is_better=True)
def topk_iou(a: Tensor, b: Tensor, k: int | None = None, fraction: float | None = None) -> Tensor:
    r"""Intersection over union of the top-``k`` pixel sets of paired maps.

    .. math:: \mathrm{IoU} = \frac{|T_k(a) \cap T_k(b)|}{|T_k(a) \cup T_k(b)|}
              = \frac{|T_k(a) \cap T_k(b)|}{2k - |T_k(a) \cap T_k(b)|}

    Args:
        a, b: maps ``[B, C, H, W]`` or ``[B, H, W]`` of the same shape (see :func:`topk_mask`).
        k: pixels per set. Give ``k`` or ``fraction``, not both.
        fraction: share of the ``H * W`` pixels, ``k = max(1, round(fraction * H * W))``. When both
            are ``None`` the fraction is :data:`DEFAULT_TOPK_FRACTION`, so ``k = 500`` at
            ``224 × 224`` (Table 1 of Ye & Farnia 2025) and about 1 % at other sizes.
    Returns:
        ``[B]`` IoU values in ``[0, 1]``.

    Example:
        >>> a = torch.tensor([[[3.0, 2.0, 1.0, 0.0]]])  # [1, 1, 4]: top-2 = pixels 0, 1
        >>> b = torch.tensor([[[0.0, 2.0, 3.0, 1.0]]])  # top-2 = pixels 1, 2
        >>> topk_iou(a, b, k=2)  # |{1}| / |{0, 1, 2}|
        tensor([0.3333])
    """
    _check_pair(a, b)
    _check_image_maps(a, "a")
    n_pixels = a.shape[-2] * a.shape[-1]
    if k is not None and fraction is not None:
        raise ValueError(f"give `k` or `fraction`, not both (got k={k}, fraction={fraction})")
    if k is None:
        fraction = DEFAULT_TOPK_FRACTION if fraction is None else fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
            raise TypeError(f"`fraction` must be a number in (0, 1], got {type(fraction).__name__}")
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"`fraction` must lie in (0, 1], got {fraction}")
        k = max(1, round(fraction * n_pixels))
    _check_k(k, n_pixels)
    ma = topk_mask(a, k).reshape(a.shape[0], -1)  # [B, H*W]
    mb = topk_mask(b, k).reshape(b.shape[0], -1)
    inter = (ma & mb).sum(dim=1).to(a.dtype)
    union = (ma | mb).sum(dim=1).to(a.dtype)
    return inter / union
