"""Bundled real digits: scaled to [0, 1], bilinearly upsampled, labels intact."""

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from smoothsal.datasets.digits import load_digits_images


@pytest.fixture(scope="module")
def raw():
    return load_digits()


def test_native_size_is_the_sklearn_data_over_16(raw):
    ds = load_digits_images(size=8)
    expected = torch.as_tensor(raw.images, dtype=torch.float32)[:, None] / 16
    assert torch.equal(ds.images, expected)
    assert torch.equal(ds.labels, torch.as_tensor(raw.target))


def test_upsampled_images(raw):
    ds = load_digits_images(size=32)
    assert ds.images.shape == (1797, 1, 32, 32) and ds.images.dtype == torch.float32
    assert ds.masks is None and ds.num_classes == 10 and ds.class_names == [str(d) for d in range(10)]
    assert 0 <= ds.images.min() and ds.images.max() <= 1
    original = torch.as_tensor(raw.images, dtype=torch.float32)[:, None] / 16
    # bilinear x4 upsampling with replicated edges keeps each image's mean intensity
    torch.testing.assert_close(ds.images.mean((1, 2, 3)), original.mean((1, 2, 3)), atol=1e-5, rtol=0)
    # ... and each 4x4 block stays close to the pixel it came from
    assert (F.avg_pool2d(ds.images, 4) - original).abs().mean() < 0.1
    assert torch.bincount(ds.labels).min() >= 170  # every digit is well represented


def test_bad_size():
    with pytest.raises(ValueError, match="`size` must be >= 8"):
        load_digits_images(size=4)
