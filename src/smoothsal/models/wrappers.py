"""The wrapper every zoo and hub model comes in: a classifier that takes images in [0, 1].

:class:`ZooModel` is the preprocessing (:class:`Normalize`, the model's first module) followed by
the network, so every model of :mod:`smoothsal.models.zoo` and :mod:`smoothsal.models.hubs` has
one meaning of "black" (zeros), of the value range (``[0, 1]``) and of gradient × input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["Normalize", "ZooModel"]


class Normalize(nn.Module):
    """``(x − mean) / std`` per channel; the first module of every zoo model."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class ZooModel(nn.Module):
    """A classifier that takes [0, 1] images: ``normalize`` then ``net``.

    Attributes:
        image_size: the side length the network was trained at.
        class_names: one human-readable name per output logit (``None`` for hub models whose
            metadata names no classes).
        preprocessing: where the normalization and input size came from (hub models, see
            :mod:`smoothsal.hubs`): ``source``, ``mean``, ``std``, ``image_size``, ``resize_size``,
            ``crop_pct``, ``interpolation``.
        channels_last: run the network in the channels-last memory layout (the inputs keep
            theirs; only the network's own tensors change layout).
    """

    def __init__(
        self,
        net: nn.Module,
        normalize: Normalize,
        image_size: int,
        class_names: list[str] | None,
        *,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.normalize = normalize
        self.net = net.to(memory_format=torch.channels_last) if channels_last else net
        self.image_size = image_size
        self.class_names = class_names
        self.channels_last = channels_last
        self.preprocessing: dict = {"source": "smoothsal", "mean": normalize.mean.flatten().tolist(),
                                    "std": normalize.std.flatten().tolist(), "image_size": image_size}

    def forward(self, x: Tensor) -> Tensor:
        z = self.normalize(x)
        if self.channels_last and z.dim() == 4:
            z = z.contiguous(memory_format=torch.channels_last)
        return self.net(z)
