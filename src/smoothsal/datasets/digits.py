"""Real handwritten digits, offline: scikit-learn's bundled ``load_digits``.

The UCI optical-recognition digits (Alpaydin & Kaynak 1998): 1,797 grey images of 8×8 pixels
with integer intensities 0..16, ten classes. We scale them to ``[0, 1]`` and upsample them
bilinearly to ``size × size`` so that convolutional models and attribution maps have room:

.. math:: x = \\operatorname{bilinear}_{S \\times S}(d / 16), \\quad d \\in \\{0, \\dots, 16\\}^{8 \\times 8}
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from smoothsal._core.extras import require
from smoothsal._core.validation import check_positive_int
from smoothsal.datasets.base import ImageDataset


def load_digits_images(size: int = 32) -> ImageDataset:
    """The 1,797 scikit-learn digits as ``[1797, 1, size, size]`` images in ``[0, 1]``.

    Args:
        size: output side in pixels (>= 8; 8 returns the original resolution).
    Returns:
        :class:`ImageDataset` with labels 0..9, ``class_names`` "0".."9" and ``masks=None``
        (no ground-truth object masks exist for real digits).

    Example:
        >>> ds = load_digits_images(16)
        >>> ds.images.shape, ds.num_classes
        (torch.Size([1797, 1, 16, 16]), 10)
    """
    check_positive_int(size, "size", minimum=8)
    # imported here: scikit-learn is an extra (``smoothsal[data]``) and slow to import
    bunch = require("sklearn.datasets", "load_digits_images").load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0  # [N, 1, 8, 8]
    if size != 8:
        # bilinear weights are convex, so values stay in [0, 1] (clamp guards rounding)
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    return ImageDataset(images.contiguous(), labels, None, 10, [str(d) for d in range(10)])
