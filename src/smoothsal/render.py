r"""Turn saliency maps into images: pure array functions, plus one function that saves a grid.

The visualization lessons of SmoothGrad (Smilkov et al. 2017, arXiv:1706.03825, §3):

* **absolute value or sign** (§3.1): for image classifiers, :math:`|M|` summed over colour
  channels usually reads best (:func:`to_unit_abs`); signed maps go on a diverging
  blue–gray–red scale (:func:`to_unit_signed` + :func:`diverging_rgb`);
* **cap outliers** (§3.1): a few pixels with huge gradients would make the rest black, so the map
  is clipped at its 99th percentile before scaling (:func:`clip_percentile`);
* **multiply by the input** (§3.2, :func:`multiply_by_input`): sharper-looking maps, but black
  pixels can never show;
* **discriminativity** (§3.3, Fig. 6): :math:`\mathrm{scale}(M_1) - \mathrm{scale}(M_2)` for two
  classes on a diverging map (:func:`discriminativity`).

Every function except :func:`save_grid` takes numpy arrays or torch tensors and returns numpy
float64 arrays; displayable outputs lie in ``[0, 1]``. An all-zero map renders as all zeros
(or, signed, as flat gray), never NaN. :func:`save_grid` draws with matplotlib's Agg canvas
(no pyplot, no global backend state). matplotlib is an extra (``smoothsal[plots]``): only
:func:`save_grid` and the ``"overlay"`` style need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from smoothsal import maps as _maps
from smoothsal._core.extras import require
from smoothsal._core.validation import check_positive_int

__all__ = [
    "NEGATIVE_RGB",
    "NEUTRAL_RGB",
    "POSITIVE_RGB",
    "COL_LABEL_IN",
    "ROW_LABEL_IN",
    "TITLE_IN",
    "clip_percentile",
    "discriminativity",
    "diverging_rgb",
    "gray",
    "heatmap_overlay",
    "multiply_by_input",
    "reduce_channels",
    "render_map",
    "save_grid",
    "to_unit_abs",
    "to_unit_signed",
]

ArrayLike = Union[np.ndarray, torch.Tensor]

#: Colours of the diverging map: -1 → blue, 0 → gray, +1 → red (mirror images of each other).
NEGATIVE_RGB = (0.0, 0.0, 1.0)
NEUTRAL_RGB = (0.5, 0.5, 0.5)
POSITIVE_RGB = (1.0, 0.0, 0.0)

_STYLES = ("abs", "signed", "overlay", "x_input")
#: Space (inches) that :func:`save_grid` adds for row labels, column labels and the title.
ROW_LABEL_IN = 0.35
COL_LABEL_IN = 0.35
TITLE_IN = 0.45


# ---- conversion helpers -------------------------------------------------------------------------
def _as_array(x: Any, name: str) -> np.ndarray:
    """numpy float64 copy of a tensor or array; finite values only."""
    if isinstance(x, torch.Tensor):
        arr = x.detach().cpu().double().numpy()
    elif isinstance(x, np.ndarray):
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise TypeError(f"`{name}` must hold numbers, got dtype {x.dtype}")
        arr = x.astype(np.float64)
    else:
        raise TypeError(f"`{name}` must be a numpy array or torch tensor, got {type(x).__name__}")
    if not np.isfinite(arr).all():
        raise ValueError(f"`{name}` must be finite; it contains NaN or Inf values")
    return arr


def _cap(magnitude: np.ndarray, percentile: float) -> float:
    """The outlier cap of one array of magnitudes (:func:`smoothsal.maps.cap`)."""
    if magnitude.size == 0:
        return 0.0
    return float(_maps.cap(torch.from_numpy(np.ascontiguousarray(magnitude)).reshape(1, -1), percentile)[0])


def _map2d(m: Any, name: str) -> np.ndarray:
    """A single map ``[H, W]`` (leading singleton axes such as ``[1, H, W]`` are dropped)."""
    arr = _as_array(m, name)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be one map [H, W] (or [1, H, W]), got shape {arr.shape}")
    return arr


def _image_hwc(image: Any, name: str = "image") -> np.ndarray:
    """A display image ``[H, W, 3]`` in [0, 1] from ``[H, W, 3]``, ``[3, H, W]``, ``[1, 3, H, W]`` or ``[H, W]``."""
    arr = _as_array(image, name)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    elif arr.ndim == 3 and arr.shape[-1] not in (1, 3) and arr.shape[0] in (1, 3):
        arr = np.moveaxis(arr, 0, -1)  # [C, H, W] -> [H, W, C]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3):
        raise ValueError(f"`{name}` must be an RGB image [H, W, 3] or [3, H, W], got shape {arr.shape}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if arr.min() < -1e-6 or arr.max() > 1 + 1e-6:
        raise ValueError(
            f"`{name}` must hold pixel values in [0, 1], got range [{arr.min():.3g}, {arr.max():.3g}] "
            "(pass the display image, not a normalized model input)"
        )
    return np.clip(arr, 0.0, 1.0)


# ---- reduce, clip, scale ------------------------------------------------------------------------
def reduce_channels(attr: ArrayLike, mode: str = "abs_sum") -> np.ndarray:
    r"""One value per pixel: ``[B, C, H, W] -> [B, H, W]`` or ``[C, H, W] -> [H, W]``.

    .. math:: \text{abs\_sum}: \sum_c |m_c|, \quad \text{sum}: \sum_c m_c, \quad
              \text{max\_abs}: \max_c |m_c|, \quad \text{l2}: \sqrt{\textstyle\sum_c m_c^2}

    Only ``"sum"`` keeps the sign. A 3-D array is always read as ``[C, H, W]``.

    Example:
        >>> reduce_channels(np.array([3.0, -4.0]).reshape(2, 1, 1), "l2")
        array([[5.]])
    """
    arr = _as_array(attr, "attr")
    if arr.ndim not in (3, 4):
        raise ValueError(f"`attr` must have shape [B, C, H, W] or [C, H, W], got shape {arr.shape}")
    t = torch.from_numpy(arr)
    out = _maps.reduce_channels(t if arr.ndim == 4 else t[None], mode)  # the one copy, in torch
    return (out if arr.ndim == 4 else out[0]).numpy()


def clip_percentile(m: ArrayLike, percentile: float = 99.0, signed: bool = False) -> np.ndarray:
    r"""Cap outliers at a percentile of the magnitude (SmoothGrad §3.1).

    .. math:: q = P_{p}(|m|), \qquad \text{abs: } \min(|m|, q), \qquad \text{signed: } \operatorname{clip}(m, -q, q)

    One cap ``q`` for the whole array (call it per map). If ``q`` is 0 — fewer than
    ``100 - p`` % of the pixels are non-zero — the maximum of ``|m|`` is used, so sparse maps
    still show.

    Returns:
        ``|m|`` clipped to ``[0, q]`` (``signed=False``) or ``m`` clipped to ``[-q, q]``.
    """
    percentile = _maps.check_percentile(percentile)
    arr = _as_array(m, "map")
    mag = np.abs(arr)
    cap = _cap(mag, percentile)
    return np.clip(arr, -cap, cap) if signed else np.minimum(mag, cap)


def to_unit_abs(m: ArrayLike, percentile: float = 99.0) -> np.ndarray:
    r"""``|m|`` capped at its ``percentile``-th percentile and divided by the cap: values in ``[0, 1]``.

    .. math:: \hat m = \min(|m|, q) / q, \qquad q = P_{p}(|m|)

    An all-zero map gives all zeros.
    """
    clipped = clip_percentile(m, percentile, signed=False)
    cap = clipped.max(initial=0.0)
    return clipped / cap if cap > 0 else np.zeros_like(clipped)


def to_unit_signed(m: ArrayLike, percentile: float = 99.0) -> np.ndarray:
    r"""``m`` clipped to ``±q`` (``q`` the ``percentile``-th percentile of ``|m|``) over ``q``: ``[-1, 1]``.

    The span is symmetric, so 0 stays 0 and equal magnitudes of either sign get equal values.
    An all-zero map gives all zeros.

    Example:
        >>> to_unit_signed(np.array([[-2.0, 0.0, 1.0]]), percentile=100)
        array([[-1. ,  0. ,  0.5]])
    """
    clipped = clip_percentile(m, percentile, signed=True)
    cap = np.abs(clipped).max(initial=0.0)
    return clipped / cap if cap > 0 else np.zeros_like(clipped)


def multiply_by_input(attr: ArrayLike, image: ArrayLike) -> np.ndarray:
    r"""Elementwise product of a map and the input image (SmoothGrad §3.2, "gradient × input").

    .. math:: M'(x) = M(x) \odot x

    Pitfall (the paper's warning): the product is zero wherever the input is zero, so **black
    pixels never show**, however important they are — e.g. a black object on a light
    background, and in [0, 1] pixel space every dark pixel is damped. Use it as a complementary
    view, not as a replacement for the map itself.

    Args:
        attr: ``[C, H, W]`` or ``[B, C, H, W]`` (``C = 1`` for CAM maps, broadcast over the colours).
        image: the same layout (or broadcastable to it); a ``[H, W, C]`` display image is moved to
            ``[C, H, W]`` when ``attr`` is ``[C, H, W]``.
    Returns:
        the product with the broadcast shape.
    """
    a = _as_array(attr, "attr")
    x = _as_array(image, "image")
    if a.ndim == 3 and x.ndim == 3 and x.shape[:2] == a.shape[1:] and x.shape[-1] in (1, 3):
        if x.shape != a.shape:
            x = np.moveaxis(x, -1, 0)  # [H, W, C] -> [C, H, W]
    try:
        return a * x
    except ValueError as err:
        raise ValueError(
            f"`attr` {a.shape} and `image` {x.shape} must have the same layout [C, H, W] (or broadcast)"
        ) from err


# ---- colour -------------------------------------------------------------------------------------
def gray(map01: ArrayLike) -> np.ndarray:
    """A map in ``[0, 1]`` as a gray image ``[H, W]`` (values clipped to ``[0, 1]``)."""
    return np.clip(_map2d(map01, "map01"), 0.0, 1.0)


def heatmap_overlay(image: ArrayLike, map01: ArrayLike, cmap: str = "inferno", alpha: float = 0.5) -> np.ndarray:
    r"""Blend a colour-mapped map over the image: ``(1 - alpha) * image + alpha * cmap(map01)``.

    Args:
        image: ``[H, W, 3]`` (or ``[3, H, W]``) in ``[0, 1]``.
        map01: ``[H, W]`` in ``[0, 1]`` (e.g. from :func:`to_unit_abs`).
        cmap: a matplotlib colormap name.
        alpha: weight of the heatmap, in ``[0, 1]``.
    Returns:
        ``[H, W, 3]`` in ``[0, 1]``.
    """
    colormaps = require("matplotlib", "heat-map overlays (style='overlay')").colormaps
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must be a number in [0, 1], got {alpha!r}")
    img = _image_hwc(image)
    m = gray(map01)
    if m.shape != img.shape[:2]:
        raise ValueError(f"`map01` must match the image size {img.shape[:2]}, got {m.shape}")
    try:
        colour = colormaps[cmap]
    except KeyError as err:
        raise ValueError(f"`cmap` must be a matplotlib colormap name, got {cmap!r}") from err
    heat = colour(m)[..., :3]  # [H, W, 3]
    return np.clip((1.0 - alpha) * img + alpha * heat, 0.0, 1.0)


def diverging_rgb(signed_map: ArrayLike, span: float | None = 1.0) -> np.ndarray:
    r"""Signed map → blue–gray–red image ``[H, W, 3]``: −span blue, 0 exactly gray, +span red.

    .. math:: \mathrm{rgb}(t) = g + \max(t, 0)\,(r - g) + \max(-t, 0)\,(b - g), \qquad
              t = \operatorname{clip}(m / \text{span}, -1, 1)

    with :data:`NEUTRAL_RGB` ``g = (0.5, 0.5, 0.5)``, :data:`POSITIVE_RGB` ``r`` and
    :data:`NEGATIVE_RGB` ``b``. The scale is symmetric: ``-m`` gives the same picture with red
    and blue swapped. (PAIR's ``VisualizeImageDiverging`` returns a [0, 1] gray level with 0 at
    0.5 and divides by zero on an all-zero map; here an all-zero map is flat gray.)

    Args:
        signed_map: ``[H, W]`` (or ``[1, H, W]``), e.g. from :func:`to_unit_signed` or
            :func:`discriminativity`, both in ``[-1, 1]``.
        span: the magnitude that gets full colour (default 1); ``None`` = ``max |m|``.

    Example:
        >>> diverging_rgb(np.array([[-1.0, 0.0, 0.5]]))[0]
        array([[0.  , 0.  , 1.  ],
               [0.5 , 0.5 , 0.5 ],
               [0.75, 0.25, 0.25]])
    """
    m = _map2d(signed_map, "signed_map")
    if span is None:
        span = float(np.abs(m).max(initial=0.0)) or 1.0
    elif isinstance(span, bool) or not isinstance(span, (int, float)) or not span > 0:
        raise ValueError(f"`span` must be a number > 0 or None, got {span!r}")
    t = np.clip(m / span, -1.0, 1.0)[..., None]  # [H, W, 1]
    g, r, b = (np.asarray(c, dtype=np.float64) for c in (NEUTRAL_RGB, POSITIVE_RGB, NEGATIVE_RGB))
    return g + np.maximum(t, 0.0) * (r - g) + np.maximum(-t, 0.0) * (b - g)


def discriminativity(m1: ArrayLike, m2: ArrayLike, percentile: float = 99.0) -> np.ndarray:
    r"""How much a pixel favours class 1 over class 2 (SmoothGrad §3.3, Fig. 6).

    .. math:: D = \mathrm{scale}(M_1) - \mathrm{scale}(M_2) \in [-1, 1]

    with ``scale`` = :func:`to_unit_abs` of each class's map. Show it with :func:`diverging_rgb`:
    red = evidence for class 1, blue = for class 2.

    Args:
        m1, m2: maps of the two classes for the same image, ``[H, W]``, or ``[C, H, W]`` (reduced
            with the sum of ``|.|`` over ``C``).
    """
    def scaled(m: ArrayLike, name: str) -> np.ndarray:
        arr = _as_array(m, name)
        if arr.ndim == 3 and arr.shape[0] > 1:
            arr = reduce_channels(arr, "abs_sum")
        return to_unit_abs(_map2d(arr, name), percentile)

    s1, s2 = scaled(m1, "m1"), scaled(m2, "m2")
    if s1.shape != s2.shape:
        raise ValueError(f"`m1` and `m2` must have the same shape, got {s1.shape} and {s2.shape}")
    return s1 - s2


# ---- one-call rendering -------------------------------------------------------------------------
def render_map(
    attr: ArrayLike,
    image: ArrayLike | None = None,
    style: str = "abs",
    percentile: float = 99.0,
    reduce: str | None = None,
    cmap: str = "inferno",
    alpha: float = 0.5,
) -> np.ndarray:
    """Render one map ``[C, H, W]`` (``[1, H, W]`` for CAMs, or ``[H, W]``) as an RGB image ``[H, W, 3]``.

    Styles:
        * ``"abs"``: reduce, :func:`to_unit_abs`, gray.
        * ``"signed"``: reduce, :func:`to_unit_signed`, :func:`diverging_rgb`.
        * ``"overlay"``: ``"abs"`` as a :func:`heatmap_overlay` on ``image``.
        * ``"x_input"``: :func:`multiply_by_input` first (black pixels never show), then ``"abs"``.

    Args:
        attr: the map. image: display image ``[H, W, 3]`` or ``[3, H, W]`` in ``[0, 1]`` (needed
            by ``"overlay"`` and ``"x_input"``).
        reduce: channel reduction (:func:`reduce_channels`); default ``"sum"`` for ``"signed"``
            (the sign must survive) and ``"abs_sum"`` otherwise.
        percentile: the outlier cap. cmap, alpha: of the overlay.
    Returns:
        ``[H, W, 3]`` in ``[0, 1]``.
    """
    if style not in _STYLES:
        raise ValueError(f"`style` must be one of {list(_STYLES)}, got {style!r}")
    if reduce is None:
        reduce = "sum" if style == "signed" else "abs_sum"
    elif style == "signed" and reduce != "sum":
        raise ValueError(f"`reduce` must be 'sum' for style='signed' (the others drop the sign), got {reduce!r}")
    arr = _as_array(attr, "attr")
    while arr.ndim > 3 and arr.shape[0] == 1:
        arr = arr[0]  # [1, C, H, W] -> [C, H, W]
    if arr.ndim == 2:
        arr = arr[None]  # [H, W] -> [1, H, W]
    if arr.ndim != 3:
        raise ValueError(f"`attr` must be one map [C, H, W] or [H, W], got shape {arr.shape}")
    if style in ("overlay", "x_input"):
        if image is None:
            raise ValueError(f"style={style!r} needs `image` ([H, W, 3] in [0, 1])")
        img = _image_hwc(image)
        if img.shape[:2] != arr.shape[1:]:
            raise ValueError(f"`image` must be {arr.shape[1:]} pixels like `attr`, got {img.shape[:2]}")
        if style == "x_input":
            arr = multiply_by_input(arr, np.moveaxis(img, -1, 0))  # [C, H, W] * [3, H, W]
    m = reduce_channels(arr, reduce)  # [H, W]
    if style == "signed":
        return diverging_rgb(to_unit_signed(m, percentile))
    unit = to_unit_abs(m, percentile)
    if style == "overlay":
        return heatmap_overlay(img, unit, cmap=cmap, alpha=alpha)
    return np.repeat(unit[..., None], 3, axis=-1)


# ---- grids ------------------------------------------------------------------------------------------
def _cell(x: Any, i: int, j: int) -> np.ndarray | None:
    if x is None:
        return None
    name = f"cells[{i}][{j}]"
    arr = _as_array(x, name)
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))):
        raise ValueError(f"`{name}` must be [H, W] or [H, W, 3], got shape {arr.shape}")
    if arr.min() < -1e-6 or arr.max() > 1 + 1e-6:
        raise ValueError(f"`{name}` must hold values in [0, 1], got range [{arr.min():.3g}, {arr.max():.3g}]")
    return np.clip(arr, 0.0, 1.0)


def save_grid(
    cells: Sequence[Sequence[ArrayLike | None]],
    path: str | Path,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    cell_size: float = 2.0,
    dpi: int = 100,
) -> Path:
    """Save a labelled grid of images as a PNG (matplotlib, Agg canvas).

    Args:
        cells: rows of cells; each cell ``[H, W]`` (shown gray) or ``[H, W, 3]`` in ``[0, 1]``, or
            ``None`` for a blank cell. Shorter rows are padded with blanks.
        path: output file; parent folders are created.
        row_labels, col_labels: one per row / column. title: above the grid.
        cell_size: inches per cell; dpi: pixels per inch.
    Returns:
        ``path``. The image is ``round(dpi * (ncols * cell_size + ROW_LABEL_IN))`` pixels wide
        (without row labels: no ``ROW_LABEL_IN``) and ``round(dpi * (nrows * cell_size +
        COL_LABEL_IN + TITLE_IN))`` high (each margin only when used).
    """
    FigureCanvasAgg = require("matplotlib.backends.backend_agg", "save_grid").FigureCanvasAgg
    Figure = require("matplotlib.figure", "save_grid").Figure

    rows = [list(r) for r in cells]
    if not rows or not any(rows):
        raise ValueError("`cells` must be a non-empty list of rows of images")
    nrows, ncols = len(rows), max(len(r) for r in rows)
    if row_labels is not None and len(row_labels) != nrows:
        raise ValueError(f"`row_labels` must have one label per row ({nrows}), got {len(row_labels)}")
    if col_labels is not None and len(col_labels) != ncols:
        raise ValueError(f"`col_labels` must have one label per column ({ncols}), got {len(col_labels)}")
    if isinstance(cell_size, bool) or not isinstance(cell_size, (int, float)) or not cell_size > 0:
        raise ValueError(f"`cell_size` must be a number > 0 (inches), got {cell_size!r}")
    check_positive_int(dpi, "dpi")
    grid = [[_cell(r[j] if j < len(r) else None, i, j) for j in range(ncols)] for i, r in enumerate(rows)]

    left = ROW_LABEL_IN if row_labels is not None else 0.0
    top = (COL_LABEL_IN if col_labels is not None else 0.0) + (TITLE_IN if title else 0.0)
    width, height = ncols * cell_size + left, nrows * cell_size + top
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=left / width, right=1.0, bottom=0.0, top=1.0 - top / height, wspace=0.04, hspace=0.04)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fontsize = max(6.0, min(10.0, 4.0 * cell_size))
    for i in range(nrows):
        for j in range(ncols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            img = grid[i][j]
            if img is not None:
                ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            if col_labels is not None and i == 0:
                ax.set_title(col_labels[j], fontsize=fontsize)
            if row_labels is not None and j == 0:
                ax.set_ylabel(row_labels[i], fontsize=fontsize)
    if title:
        fig.suptitle(title, fontsize=fontsize + 2, y=1.0 - 0.5 * TITLE_IN / height, va="center")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path
