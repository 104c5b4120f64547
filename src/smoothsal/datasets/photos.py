"""Real photos: the bundled ``skimage.data`` images and the user's own files.

Images become model-ready tensors ``[1, 3, S, S]`` in [0, 1]: the shorter side is resized to
``S`` (antialiased bilinear) and the centre ``S × S`` square is cropped, the standard ImageNet
evaluation crop without the 0.875 margin (our photos are already tightly framed). A display copy
(``H × W × 3`` float array in [0, 1], the same crop) comes along for overlays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from smoothsal._core.extras import require

#: Bundled photos (all in ``skimage.data``, no download) with what they show.
BUNDLED = {
    "chelsea": "a tabby cat",
    "coffee": "a cup of coffee",
    "astronaut": "Eileen Collins in a space suit",
    "rocket": "a rocket on its launch pad",
}


@dataclass
class Photo:
    """A model-ready photo: ``tensor`` ``[1, 3, S, S]`` in [0, 1] and its ``display`` copy."""

    name: str
    tensor: Tensor
    display: np.ndarray


def to_tensor(image: np.ndarray, size: int = 224) -> Tensor:
    """``H × W (× 3|4)`` uint8/bool/float image → ``[1, 3, size, size]`` float in [0, 1] (resize + centre crop)."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"`image` must be H×W or H×W×3/4, got shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == bool:
        arr = arr.astype(np.float32)
    else:
        arr = arr.astype(np.float32)
        if arr.max() > 1.0:
            arr = arr / 255.0
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]  # [1, 3, H, W]
    h, w = t.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    t = F.interpolate(t, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    return t[..., top : top + size, left : left + size].clamp(0.0, 1.0).contiguous()


def display_copy(tensor: Tensor) -> np.ndarray:
    """``[1, 3, H, W]`` or ``[3, H, W]`` tensor in [0, 1] → ``H × W × 3`` numpy array."""
    t = tensor[0] if tensor.dim() == 4 else tensor
    return t.detach().permute(1, 2, 0).clamp(0, 1).cpu().numpy()


def load_image(path: str | Path, size: int = 224) -> Photo:
    """Load an image file (anything PIL reads) as a model-ready :class:`Photo`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not an image PIL can read (the message names the file).
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"`path`: no image file at {str(p)!r}")
    try:
        with Image.open(p) as im:
            arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"`path`: {str(p)!r} is not an image file PIL can read ({type(err).__name__})") from err
    t = to_tensor(arr, size)
    return Photo(p.stem, t, display_copy(t))


def load_photo(name: str = "chelsea", size: int = 224) -> Photo:
    """A bundled photo from ``skimage.data`` by name (see :data:`BUNDLED`)."""
    if name not in BUNDLED:
        raise ValueError(f"`name` must be one of {sorted(BUNDLED)}, got {name!r}")
    skimage_data = require("skimage.data", "the bundled photos")
    t = to_tensor(getattr(skimage_data, name)(), size)
    return Photo(name, t, display_copy(t))


def bundled_photos(names: list[str] | None = None, size: int = 224) -> list[Photo]:
    """All bundled photos (or the named ones), in :data:`BUNDLED` order."""
    return [load_photo(n, size) for n in (names or list(BUNDLED))]


def cat_and_coffee(size: int = 224) -> Photo:
    """A two-object image, the cat beside the coffee (for discriminativity maps, SmoothGrad Fig. 6)."""
    cat = load_photo("chelsea", size).tensor
    cup = load_photo("coffee", size).tensor
    half = size // 2
    left = F.interpolate(cat, size=(half, half), mode="bilinear", antialias=True, align_corners=False)
    right = F.interpolate(cup, size=(half, half), mode="bilinear", antialias=True, align_corners=False)
    canvas = torch.ones(1, 3, size, size)
    top = (size - half) // 2
    canvas[..., top : top + half, :half] = left
    canvas[..., top : top + half, size - half :] = right
    return Photo("cat_and_coffee", canvas, display_copy(canvas))


#: Natural photos that ship offline with scikit-image and scikit-learn, beyond :data:`BUNDLED`
#: (``name: (source, loader key, what it shows)``). Grey photos are repeated over R, G, B.
NATURAL = {
    "china": ("sklearn", "china.jpg", "a Chinese temple (sklearn sample image)"),
    "flower": ("sklearn", "flower.jpg", "a flower (sklearn sample image)"),
    "motorcycle_left": ("skimage", "stereo_motorcycle:0", "a motorcycle, left stereo view"),
    "motorcycle_right": ("skimage", "stereo_motorcycle:1", "a motorcycle, right stereo view"),
    "hubble_deep_field": ("skimage", "hubble_deep_field", "galaxies, Hubble deep field"),
    "immunohistochemistry": ("skimage", "immunohistochemistry", "stained tissue under a microscope"),
    "retina": ("skimage", "retina", "a human retina"),
    "camera": ("skimage", "camera", "a cameraman (grey)"),
    "coins": ("skimage", "coins", "old coins (grey)"),
    "clock": ("skimage", "clock", "a wall clock (grey)"),
    "moon": ("skimage", "moon", "the moon's surface (grey)"),
    "brick": ("skimage", "brick", "a brick wall (grey)"),
    "grass": ("skimage", "grass", "grass (grey)"),
    "gravel": ("skimage", "gravel", "gravel (grey)"),
}

#: The names :func:`natural_photos` loads when given none, in its order (:data:`BUNDLED`, then
#: :data:`NATURAL`): 18 offline photos. Studies that take "the first ``n`` photos" slice this.
NATURAL_PHOTO_NAMES: tuple[str, ...] = (*BUNDLED, *NATURAL)


def _natural_array(name: str) -> np.ndarray:
    source, key, _ = NATURAL[name]
    if source == "sklearn":
        datasets = require("sklearn.datasets", "the sklearn sample photos")
        sample = datasets.load_sample_images()
        names = [Path(f).name for f in sample.filenames]
        return sample.images[names.index(key)]
    skimage_data = require("skimage.data", "the scikit-image photos")
    loader, _, part = key.partition(":")
    arr = getattr(skimage_data, loader)()
    return arr[int(part)] if part else arr


def natural_photos(names: list[str] | None = None, size: int = 224) -> list[Photo]:
    """The :data:`BUNDLED` photos followed by every :data:`NATURAL` one (18 offline photos), or the
    named ones: the image set over which the report card takes its intervals.

    Example:
        >>> len(natural_photos(size=32)) >= 16  # doctest: +SKIP
        True
    """
    chosen = names or list(BUNDLED) + list(NATURAL)
    unknown = [n for n in chosen if n not in BUNDLED and n not in NATURAL]
    if unknown:
        raise ValueError(f"`names` must be from {sorted(BUNDLED) + sorted(NATURAL)}, got {unknown}")
    out = []
    for n in chosen:
        if n in BUNDLED:
            out.append(load_photo(n, size))
        else:
            t = to_tensor(_natural_array(n), size)
            out.append(Photo(n, t, display_copy(t)))
    return out
