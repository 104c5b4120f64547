"""The data a model is trained and explained on: fixed train/test splits, disjoint parts, permuted labels.

* ``digits`` and ``synthetic``: one fixed, stratified split of the whole set (25 % of each class
  held out), the same for every model;
* ``mnist``: MNIST's own 60,000 training and 10,000 test images (the test set is the held-out set).

A config's training set (:func:`training_set`) is then the split's training part, optionally
one of ``k`` disjoint parts of it (``split``) and optionally with its labels permuted
(``shuffle_labels``).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from smoothsal._core.validation import check_choice, check_positive_int
from smoothsal.datasets.base import ImageDataset
from smoothsal.noise import make_generator
from smoothsal.studies.train.config import DATASETS, DEFAULT_IMAGE_SIZE, TrainConfig

#: fraction of each class held out for testing (digits, synthetic)
TEST_FRACTION = 0.25
#: images generated for ``dataset="synthetic"`` (train + test)
SYNTHETIC_SIZE = 3200
_DATA_SEED = 20240601  # synthetic images
_TEST_SPLIT_SEED = 1234  # train/test split of digits and synthetic


@functools.lru_cache(maxsize=4)
def _load_split_cached(dataset: str, image_size: int) -> tuple[ImageDataset, ImageDataset]:
    """The split, built once per process; callers must not modify it (public functions copy)."""
    if dataset == "mnist":
        from smoothsal.datasets.mnist import load_mnist

        if image_size != DEFAULT_IMAGE_SIZE["mnist"]:
            raise ValueError(f"`image_size` must be 28 (MNIST's native size) for dataset 'mnist', got {image_size}")
        return load_mnist("train"), load_mnist("test")
    if dataset == "digits":
        from smoothsal.datasets.digits import load_digits_images

        full = load_digits_images(image_size)
    else:
        from smoothsal.datasets.synthetic import make_synthetic

        full = make_synthetic(SYNTHETIC_SIZE, size=image_size, seed=_DATA_SEED)
    gen = torch.Generator().manual_seed(_TEST_SPLIT_SEED)
    test_mask = _stratified_test_mask(full.labels, full.num_classes, TEST_FRACTION, gen)
    train_idx, test_idx = (~test_mask).nonzero()[:, 0], test_mask.nonzero()[:, 0]
    return full.subset(train_idx), full.subset(test_idx)


def _resolve(dataset: str, image_size: int | None) -> int:
    check_choice(dataset, "dataset", DATASETS)
    if image_size is None:
        return DEFAULT_IMAGE_SIZE[dataset]
    return check_positive_int(image_size, "image_size", minimum=8)


def load_split(dataset: str, image_size: int | None = None) -> tuple[ImageDataset, ImageDataset]:
    """The fixed train/test split of ``dataset``: ``(train, test)``, fresh copies.

    ``digits`` / ``synthetic``: 25 % of each class held out, by a fixed seed. ``mnist``: MNIST's
    own 60,000 / 10,000 split (``image_size`` must be 28 or ``None``). The split depends only on
    ``dataset`` and ``image_size``, never on a training seed, so every model is evaluated (and
    explained) on the same held-out inputs.
    """
    train, test = _load_split_cached(dataset, _resolve(dataset, image_size))
    return train.subset(torch.arange(len(train))), test.subset(torch.arange(len(test)))  # copies


def release_dataset_caches() -> None:
    """Drop the splits :func:`load_split` and :func:`held_out_inputs` keep per process (MNIST's:
    about 260 MB of float images and decoded bytes), for a caller that has drawn what it needs.
    The next call loads them again (MNIST: under a second)."""
    _load_split_cached.cache_clear()
    from smoothsal.datasets.mnist import release_decoded

    release_decoded()


def held_out_inputs(dataset: str, image_size: int | None, n: int, seed: int) -> ImageDataset:
    """``n`` inputs drawn without replacement from the test split of :func:`load_split`, by ``seed``:
    the fixed set a study explains. Raises ``ValueError`` when the split holds fewer than ``n``."""
    _, test = _load_split_cached(dataset, _resolve(dataset, image_size))
    check_positive_int(n, "n_inputs")
    if n > len(test):
        raise ValueError(f"`n_inputs` must be <= {len(test)} (the {dataset} test split), got {n}")
    return test.subset(torch.randperm(len(test), generator=make_generator(seed))[:n])


def _stratified_test_mask(labels: Tensor, num_classes: int, fraction: float, gen: torch.Generator) -> Tensor:
    """Boolean ``[N]``: ``round(fraction * count)`` random samples of every class."""
    mask = torch.zeros(labels.shape[0], dtype=torch.bool)
    for c in range(num_classes):
        members = (labels == c).nonzero()[:, 0]
        n_test = round(fraction * members.numel())
        mask[members[torch.randperm(members.numel(), generator=gen)[:n_test]]] = True
    return mask


def disjoint_splits(n: int, k: int, seed: int = 0) -> list[Tensor]:
    """``k`` disjoint, sorted index sets that together cover ``range(n)`` (sizes differ by <= 1).

    Example:
        >>> parts = disjoint_splits(10, 3, seed=0)
        >>> [p.numel() for p in parts], sorted(torch.cat(parts).tolist()) == list(range(10))
        ([4, 3, 3], True)
    """
    check_positive_int(n, "n")
    check_positive_int(k, "k")
    check_positive_int(seed, "seed", minimum=0)
    if k > n:
        raise ValueError(f"`k` must be <= n={n} so that no part is empty, got {k}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [part.sort().values for part in torch.tensor_split(perm, k)]


def label_permutation(n: int, seed: int) -> Tensor:
    """The permutation ``[n]`` that ``shuffle_labels`` applies: sample ``i`` gets label ``labels[perm[i]]``.

    A permutation keeps every class's count; the same ``seed`` gives the same permutation.
    """
    check_positive_int(n, "n")
    return torch.randperm(n, generator=torch.Generator().manual_seed(check_positive_int(seed, "seed", minimum=0)))


def training_indices(config: TrainConfig) -> Tensor:
    """Indices into :func:`load_split`'s training set of the samples ``config`` trains on (sorted)."""
    train, _ = _load_split_cached(config.dataset, config.image_size)
    if config.split is None:
        return torch.arange(len(train))
    part, n_parts = config.split
    if n_parts > len(train):
        raise ValueError(f"`split` n_parts={n_parts} exceeds the {len(train)} training samples")
    return disjoint_splits(len(train), n_parts, seed=config.split_seed)[part]


def training_set(config: TrainConfig) -> ImageDataset:
    """The samples (and labels: permuted when ``config.shuffle_labels``) ``config`` trains on."""
    train, _ = _load_split_cached(config.dataset, config.image_size)
    subset = train.subset(training_indices(config))
    if config.shuffle_labels:
        perm = label_permutation(len(subset), config.label_seed)
        subset = ImageDataset(subset.images, subset.labels[perm], subset.masks, subset.num_classes, subset.class_names)
    return subset


def held_out_set(config: TrainConfig) -> ImageDataset:
    """The held-out split ``config``'s model is scored on (read-only: shared within the process)."""
    return _load_split_cached(config.dataset, config.image_size)[1]
