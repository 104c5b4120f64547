"""The in-memory image classification dataset every smoothsal experiment consumes.

An :class:`ImageDataset` holds a whole (small) dataset as tensors: images ``[N, C, H, W]`` in
``[0, 1]``, integer labels ``[N]`` and, where the data has them, ground-truth object masks
``[N, 1, H, W]`` (the pixels a faithful saliency map should point at; used for localization).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class ImageDataset:
    """Images, labels and optional ground-truth masks, checked for consistency on creation.

    Args:
        images: float tensor ``[N, C, H, W]`` with values in ``[0, 1]``.
        labels: long tensor ``[N]`` with values in ``[0, num_classes - 1]``.
        masks: bool tensor ``[N, 1, H, W]`` (True = object pixel), or ``None``.
        num_classes: number of classes (>= 1).
        class_names: one name per class; defaults to ``["0", "1", ...]``.

    Example:
        >>> ds = ImageDataset(torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 0, 1]), None, 2)
        >>> len(ds), ds.subset([1, 3]).labels.tolist()
        (4, [1, 1])
    """

    images: Tensor
    labels: Tensor
    masks: Tensor | None
    num_classes: int
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_images(self.images)
        _check_labels(self.labels, self.images.shape[0], self.num_classes)
        if self.masks is not None:
            _check_masks(self.masks, self.images.shape)
        if not self.class_names:
            self.class_names = [str(c) for c in range(self.num_classes)]
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"`class_names` must hold num_classes={self.num_classes} names, got {len(self.class_names)}"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def subset(self, indices: Sequence[int] | Tensor) -> ImageDataset:
        """The samples at ``indices`` (a sequence or 1-D integer tensor), in that order."""
        idx = torch.as_tensor(indices)
        if idx.is_floating_point() or idx.dtype == torch.bool or idx.dim() != 1:
            raise TypeError(
                f"`indices` must be a 1-D sequence of ints, got dtype {idx.dtype}, shape {tuple(idx.shape)}"
            )
        idx = idx.long()
        n = len(self)
        if idx.numel() and (int(idx.min()) < -n or int(idx.max()) >= n):
            raise ValueError(f"`indices` must lie in [0, {n - 1}], got values in [{int(idx.min())}, {int(idx.max())}]")
        return ImageDataset(
            images=self.images[idx],
            labels=self.labels[idx],
            masks=None if self.masks is None else self.masks[idx],
            num_classes=self.num_classes,
            class_names=list(self.class_names),
        )


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor) or not images.is_floating_point():
        raise TypeError(f"`images` must be a float tensor [N, C, H, W], got {_describe(images)}")
    if images.dim() != 4:
        raise ValueError(f"`images` must have shape [N, C, H, W], got shape {tuple(images.shape)}")
    if images.numel() and (not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1):
        raise ValueError("`images` must hold finite values in [0, 1]")


def _check_labels(labels: Tensor, n: int, num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"`num_classes` must be an int >= 1, got {num_classes!r}")
    if not isinstance(labels, Tensor) or labels.dtype != torch.long:
        raise TypeError(f"`labels` must be a long tensor [N], got {_describe(labels)}")
    if labels.shape != (n,):
        raise ValueError(f"`labels` must have shape [N] = [{n}], got {tuple(labels.shape)}")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"`labels` must lie in [0, {num_classes - 1}], got values in [{int(labels.min())}, {int(labels.max())}]"
        )


def _check_masks(masks: Tensor, image_shape: torch.Size) -> None:
    if not isinstance(masks, Tensor) or masks.dtype != torch.bool:
        raise TypeError(f"`masks` must be a bool tensor [N, 1, H, W] or None, got {_describe(masks)}")
    n, _, h, w = image_shape
    if tuple(masks.shape) != (n, 1, h, w):
        raise ValueError(f"`masks` must have shape [N, 1, H, W] = {[n, 1, h, w]}, got {list(masks.shape)}")


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"tensor of dtype {value.dtype}"
    return type(value).__name__
