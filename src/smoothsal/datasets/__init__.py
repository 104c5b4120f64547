"""Offline data: bundled photos, sklearn digits, and a synthetic set with ground-truth masks."""

from smoothsal.datasets.photos import BUNDLED, Photo, bundled_photos, cat_and_coffee, load_image, load_photo

__all__ = ["BUNDLED", "Photo", "bundled_photos", "cat_and_coffee", "load_image", "load_photo"]
