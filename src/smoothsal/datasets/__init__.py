"""Offline data: bundled photos, sklearn digits, MNIST, and a synthetic set with ground-truth masks."""

from smoothsal.datasets.base import ImageDataset
from smoothsal.datasets.digits import load_digits_images
from smoothsal.datasets.mnist import load_mnist
from smoothsal.datasets.photos import BUNDLED, Photo, bundled_photos, cat_and_coffee, load_image, load_photo
from smoothsal.datasets.synthetic import make_synthetic

__all__ = [
    "BUNDLED",
    "ImageDataset",
    "Photo",
    "bundled_photos",
    "cat_and_coffee",
    "load_digits_images",
    "load_image",
    "load_mnist",
    "load_photo",
    "make_synthetic",
]
