r"""A synthetic shape-classification dataset with known ground-truth object masks.

Each image shows one object whose *shape* is the class (square, disk, triangle, cross), at a
random position, scale, colour (and optionally rotation), on a background that carries no class
information: a smooth random colour texture plus soft distractor blobs. Because we draw the
object ourselves we know exactly which pixels it covers, so ``masks`` is the ground truth a
saliency map should localize (the SmoothGrad paper, Smilkov et al. 2017, arXiv:1706.03825,
judges maps by eye on objects; here we can measure it).

Shapes are evaluated on broadcast coordinate grids for all samples at once. In object
coordinates :math:`(u, v) = R_{-\theta}\,(p - c) / r` (pixel centre :math:`p`, object centre
:math:`c`, radius :math:`r`, optional rotation :math:`\theta`) the classes are

.. math::
    \text{square}: \max(|u|, |v|) \le 0.8, \qquad
    \text{disk}: u^2 + v^2 \le 1, \\
    \text{triangle}: \max_k \langle (u, v), n_k \rangle \le 0.55, \qquad
    \text{cross}: (|u| \le 0.3 \wedge |v| \le 1) \vee (|v| \le 0.3 \wedge |u| \le 1),

with :math:`n_k` the unit normals at angles :math:`90° + 120° k` (image axes, y down: a flat
bottom edge, the apex up). Colours are chosen so that every object pixel differs from the
background by at least 0.1 in every channel: the background stays in ``[0.2, 0.8]`` while each
object channel lies in ``[0, 0.1]`` or ``[0.9, 1]``. Edges are hard (no anti-aliasing), so the
mask is exactly the set of pixels that carry the object's colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from smoothsal._core.validation import check_nonnegative, check_positive_int
from smoothsal.datasets.base import ImageDataset
from smoothsal.noise import make_generator

#: class index -> shape name
SHAPES: tuple[str, ...] = ("square", "disk", "triangle", "cross")

_BG_LOW, _BG_HIGH = 0.3, 0.7  # texture range; distractors blend colours from [0.2, 0.8]
_DISTRACTOR_LOW, _DISTRACTOR_HIGH = 0.2, 0.8
_DISTRACTOR_ALPHA = 0.85


class SyntheticScenes(NamedTuple):
    """Everything :func:`make_synthetic` draws; ``backgrounds`` is the image without the object."""

    images: Tensor  # [N, 3, S, S]
    backgrounds: Tensor  # [N, 3, S, S]
    masks: Tensor  # [N, 1, S, S] bool
    labels: Tensor  # [N] long


@dataclass(frozen=True)
class SceneStyle:
    """How the scenes of :func:`make_synthetic` look, checked when built.

    Attributes:
        n_distractors: soft Gaussian blobs per image, drawn under the object.
        scale: range of the object radius as a fraction of the image side, within ``(0, 0.38]`` (so
            that the whole object stays inside the image).
        rotation: each object is rotated by a uniform random angle in ``[-rotation, rotation]``
            degrees (0: upright squares, disks, upward triangles and upright crosses).
    """

    n_distractors: int = 3
    scale: tuple[float, float] = (0.22, 0.34)
    rotation: float = 0.0

    def __post_init__(self) -> None:
        n = self.n_distractors
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"`n_distractors` must be an int >= 0, got {n!r}")
        check_nonnegative(self.rotation, "rotation")
        lo, hi = (check_nonnegative(s, "scale") for s in self.scale)
        if not 0 < lo <= hi <= 0.38:  # keeps every shape inside the image for size >= 16
            raise ValueError(f"`scale` must satisfy 0 < scale[0] <= scale[1] <= 0.38, got {tuple(self.scale)}")
        object.__setattr__(self, "scale", (lo, hi))


def make_synthetic(
    n: int,
    size: int = 32,
    seed: int | torch.Generator = 0,
    *,
    n_distractors: int = 3,
    scale: tuple[float, float] = (0.22, 0.34),
    rotation: float = 0.0,
) -> ImageDataset:
    """``n`` synthetic 3-channel images of shapes with their ground-truth object masks.

    Args:
        n: number of images (classes are balanced: counts differ by at most one).
        size: image side ``S`` in pixels (>= 16).
        seed: int or ``torch.Generator``; the same seed gives the same dataset.
        n_distractors: soft Gaussian blobs per image, drawn under the object.
        scale: range of the object radius as a fraction of ``size``, within ``(0, 0.38]`` (so that
            the whole object stays inside the image).
        rotation: each object is rotated by a uniform random angle in ``[-rotation, rotation]``
            degrees (0: upright squares, disks, upward triangles and upright crosses).
    Returns:
        :class:`ImageDataset` with ``images [n, 3, S, S]`` in ``[0, 1]``, ``labels [n]``,
        ``masks [n, 1, S, S]`` (True on the object's pixels) and ``class_names`` = :data:`SHAPES`.

    Example:
        >>> ds = make_synthetic(8, size=16, seed=0)
        >>> ds.images.shape, ds.masks.shape, ds.num_classes
        (torch.Size([8, 3, 16, 16]), torch.Size([8, 1, 16, 16]), 4)
    """
    style = SceneStyle(n_distractors=n_distractors, scale=scale, rotation=rotation)
    scenes = synthetic_scenes(n, size, seed, style)
    return ImageDataset(scenes.images, scenes.labels, scenes.masks, len(SHAPES), list(SHAPES))


def synthetic_scenes(
    n: int, size: int = 32, seed: int | torch.Generator = 0, style: SceneStyle = SceneStyle()
) -> SyntheticScenes:
    """The functional core of :func:`make_synthetic` (its scenes drawn in the ``style`` given); also
    returns the object-free backgrounds."""
    check_positive_int(n, "n")
    check_positive_int(size, "size", minimum=16)
    if not isinstance(style, SceneStyle):
        raise TypeError(f"`style` must be a SceneStyle, got {type(style).__name__}")
    gen = make_generator(seed)

    labels = torch.arange(n) % len(SHAPES)
    labels = labels[torch.randperm(n, generator=gen)]
    backgrounds = _backgrounds(n, size, style.n_distractors, gen)  # [N, 3, S, S]
    masks = _shape_masks(labels, size, style.scale, style.rotation, gen)  # [N, 1, S, S]
    colours = _object_colours(n, gen)  # [N, 3, 1, 1]
    images = torch.where(masks, colours, backgrounds)
    return SyntheticScenes(images, backgrounds, masks, labels)


def _uniform(shape: tuple[int, ...], low: float, high: float, gen: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=gen)


def _backgrounds(n: int, size: int, n_distractors: int, gen: torch.Generator) -> Tensor:
    """Smooth colour texture (two octaves of upsampled noise) with soft distractor blobs."""
    coarse = F.interpolate(torch.rand(n, 3, 4, 4, generator=gen), size=(size, size), mode="bilinear")
    fine = F.interpolate(torch.rand(n, 3, 8, 8, generator=gen), size=(size, size), mode="bilinear")
    texture = (0.6 * coarse + 0.4 * fine).clamp(0, 1)  # bilinear keeps values in [0, 1]
    bg = _BG_LOW + (_BG_HIGH - _BG_LOW) * texture  # [N, 3, S, S]

    ys, xs = _pixel_grid(size)  # [1, S, S] each
    for _ in range(n_distractors):
        centre = _uniform((n, 2, 1, 1), 0.0, size - 1.0, gen)  # [N, (y, x), 1, 1]
        width = _uniform((n, 1, 1), 1.5, 3.5, gen)
        colour = _uniform((n, 3, 1, 1), _DISTRACTOR_LOW, _DISTRACTOR_HIGH, gen)
        d2 = (ys - centre[:, 0]) ** 2 + (xs - centre[:, 1]) ** 2  # [N, S, S]
        alpha = (_DISTRACTOR_ALPHA * torch.exp(-d2 / (2 * width**2)))[:, None]  # [N, 1, S, S]
        bg = (1 - alpha) * bg + alpha * colour
    return bg


def _pixel_grid(size: int) -> tuple[Tensor, Tensor]:
    coords = torch.arange(size, dtype=torch.float32)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    return ys[None], xs[None]


def _shape_masks(
    labels: Tensor, size: int, scale: tuple[float, float], rotation: float, gen: torch.Generator
) -> Tensor:
    """Boolean masks ``[N, 1, S, S]`` of each sample's shape, all classes on one coordinate grid."""
    n = labels.shape[0]
    radius = _uniform((n, 1, 1), scale[0] * size, scale[1] * size, gen)  # [N, 1, 1]
    margin = 1.15 * radius + 0.5  # no shape reaches beyond 1.14 r from its centre
    centre_y = margin + (size - 1 - 2 * margin) * torch.rand(n, 1, 1, generator=gen)
    centre_x = margin + (size - 1 - 2 * margin) * torch.rand(n, 1, 1, generator=gen)
    theta = math.radians(rotation) * (2 * torch.rand(n, 1, 1, generator=gen) - 1)

    ys, xs = _pixel_grid(size)  # [1, S, S]
    dy, dx = (ys - centre_y) / radius, (xs - centre_x) / radius  # [N, S, S]
    cos, sin = torch.cos(theta), torch.sin(theta)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # rotate the grid by -theta

    square = torch.maximum(u.abs(), v.abs()) <= 0.8
    disk = u**2 + v**2 <= 1.0
    normals = [(90.0 + 120.0 * k) * math.pi / 180 for k in range(3)]
    triangle = torch.stack([u * math.cos(a) + v * math.sin(a) for a in normals]).amax(0) <= 0.55
    cross = ((u.abs() <= 0.3) & (v.abs() <= 1.0)) | ((v.abs() <= 0.3) & (u.abs() <= 1.0))
    all_shapes = torch.stack([square, disk, triangle, cross], dim=1)  # [N, 4, S, S]
    return all_shapes.gather(1, labels[:, None, None, None].expand(n, 1, size, size))


def _object_colours(n: int, gen: torch.Generator) -> Tensor:
    """Per-channel dark (``[0, 0.1]``) or bright (``[0.9, 1]``) colours, ``[N, 3, 1, 1]``."""
    bright = torch.rand(n, 3, 1, 1, generator=gen) < 0.5
    jitter = 0.1 * torch.rand(n, 3, 1, 1, generator=gen)
    return torch.where(bright, 1.0 - jitter, jitter)
