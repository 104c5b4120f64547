"""Synthetic shapes: ground-truth masks are exactly the drawn object; plus ImageDataset checks."""


import pytest
import torch

from smoothsal.datasets.base import ImageDataset
from smoothsal.datasets.synthetic import SHAPES, SceneStyle, make_synthetic, synthetic_scenes


@pytest.fixture(scope="module")
def scenes():
    return synthetic_scenes(200, size=32, seed=3)


def test_shapes_dtypes_and_range():
    ds = make_synthetic(24, size=20, seed=0)
    assert ds.images.shape == (24, 3, 20, 20) and ds.images.dtype == torch.float32
    assert ds.labels.shape == (24,) and ds.labels.dtype == torch.long
    assert ds.masks.shape == (24, 1, 20, 20) and ds.masks.dtype == torch.bool
    assert 0 <= ds.images.min() and ds.images.max() <= 1
    assert ds.num_classes == 4 and ds.class_names == list(SHAPES)


def test_deterministic_for_a_seed_and_generator():
    a, b = make_synthetic(16, seed=5), make_synthetic(16, seed=5)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks) and torch.equal(a.labels, b.labels)
    c = make_synthetic(16, seed=6)
    assert not torch.equal(a.images, c.images)
    g = make_synthetic(16, seed=torch.Generator().manual_seed(5))
    assert torch.equal(a.images, g.images)


def test_classes_are_balanced():
    for n in (40, 41, 43):
        counts = torch.bincount(make_synthetic(n, size=16, seed=1).labels, minlength=4)
        assert counts.sum() == n and counts.max() - counts.min() <= 1


def test_mask_is_exactly_where_the_object_is_drawn(scenes):
    images, backgrounds, masks, _ = scenes
    m = masks.expand_as(images)
    # outside the mask the image is the untouched background ...
    assert torch.equal(images[~m], backgrounds[~m])
    # ... inside it, every channel differs from the background by at least 0.1
    assert (images - backgrounds).abs()[m].min() >= 0.1 - 1e-6
    # one flat colour per object
    for i in range(5):
        pixels = images[i][:, masks[i, 0]]  # [3, object pixels]
        assert torch.equal(pixels, pixels[:, :1].expand_as(pixels))


def test_objects_are_inside_the_image_and_sizeable(scenes):
    masks = scenes.masks[:, 0]
    border = masks[:, 0].any(1) | masks[:, -1].any(1) | masks[:, :, 0].any(1) | masks[:, :, -1].any(1)
    assert not border.any()
    assert masks.flatten(1).sum(1).min() >= 30  # radius >= 0.22 * 32 px


def _fill_ratio(mask):
    rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    return float(mask.sum() / box)


def test_each_class_has_its_geometry(scenes):
    """Fill ratio of the bounding box: square 1, disk ~pi/4, triangle and cross ~1/2."""
    expected = {"square": (1.0, 1.0), "disk": (0.7, 0.86), "triangle": (0.4, 0.62), "cross": (0.4, 0.62)}
    for i in range(40):
        lo, hi = expected[SHAPES[int(scenes.labels[i])]]
        assert lo - 1e-6 <= _fill_ratio(scenes.masks[i, 0]) <= hi + 1e-6
    # upright triangles point up: their rows get wider from top to bottom
    tri = scenes.masks[(scenes.labels == SHAPES.index("triangle")).nonzero()[0, 0], 0]
    widths = tri.sum(1)[tri.any(1)]
    assert widths[-1] > widths[0]


def test_rotation_changes_only_the_pose():
    upright = synthetic_scenes(12, seed=0)
    rotated = synthetic_scenes(12, seed=0, style=SceneStyle(rotation=180.0))
    assert torch.equal(upright.labels, rotated.labels)
    assert not torch.equal(upright.masks, rotated.masks)
    sq = rotated.masks[(rotated.labels == 0)][:, 0]
    assert min(_fill_ratio(m) for m in sq) < 0.99  # a rotated square no longer fills its box


def test_background_without_distractors_is_smooth_texture():
    bg = synthetic_scenes(8, seed=0, style=SceneStyle(n_distractors=0)).backgrounds
    assert 0.3 - 1e-6 <= bg.min() and bg.max() <= 0.7 + 1e-6
    assert (bg[..., 1:] - bg[..., :-1]).abs().max() < 0.1  # neighbouring pixels are close


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n": 0}, ValueError, "`n` must be >= 1"),
        ({"n": 4, "size": 8}, ValueError, "`size` must be >= 16"),
        ({"n": 4, "scale": (0.3, 0.2)}, ValueError, "`scale` must satisfy"),
        ({"n": 4, "scale": (0.1, 0.5)}, ValueError, "`scale` must satisfy"),
        ({"n": 4, "rotation": -1.0}, ValueError, "`rotation` must be a finite number >= 0"),
        ({"n": 4, "n_distractors": -1}, ValueError, "`n_distractors` must be an int >= 0"),
        ({"n": 4, "seed": 1.5}, TypeError, "`seed` must be an int, a torch.Generator"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_synthetic(**kwargs)


# ---- ImageDataset ---------------------------------------------------------------------------------
def test_subset_keeps_images_labels_and_masks_together():
    ds = make_synthetic(10, size=16, seed=0)
    sub = ds.subset([7, 2])
    assert len(sub) == 2 and sub.class_names == ds.class_names
    assert torch.equal(sub.images, ds.images[[7, 2]]) and torch.equal(sub.labels, ds.labels[[7, 2]])
    assert torch.equal(sub.masks, ds.masks[[7, 2]])
    assert torch.equal(ds.subset(torch.tensor([3])).images, ds.images[3:4])
    with pytest.raises(ValueError, match=r"`indices` must lie in \[0, 9\]"):
        ds.subset([10])
    with pytest.raises(TypeError, match="`indices` must be a 1-D sequence of ints"):
        ds.subset([0.5])


def test_image_dataset_defaults_class_names():
    ds = ImageDataset(torch.zeros(3, 1, 4, 4), torch.tensor([0, 2, 1]), None, 3)
    assert ds.class_names == ["0", "1", "2"] and ds.image_shape == (1, 4, 4)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"images": torch.zeros(2, 4, 4)}, ValueError, r"`images` must have shape \[N, C, H, W\]"),
        ({"images": torch.zeros(2, 1, 4, 4, dtype=torch.long)}, TypeError, "`images` must be a float tensor"),
        ({"images": torch.full((2, 1, 4, 4), 2.0)}, ValueError, r"`images` must hold finite values in \[0, 1\]"),
        ({"labels": torch.tensor([0, 1, 1])}, ValueError, r"`labels` must have shape \[N\] = \[2\]"),
        ({"labels": torch.tensor([0, 5])}, ValueError, r"`labels` must lie in \[0, 2\]"),
        ({"labels": torch.tensor([0.0, 1.0])}, TypeError, "`labels` must be a long tensor"),
        ({"masks": torch.zeros(2, 1, 4, 4)}, TypeError, "`masks` must be a bool tensor"),
        ({"masks": torch.zeros(2, 1, 3, 4, dtype=torch.bool)}, ValueError, r"`masks` must have shape \[N, 1, H, W\]"),
        ({"num_classes": 0}, ValueError, "`num_classes` must be an int >= 1"),
        ({"class_names": ["a"]}, ValueError, "`class_names` must hold num_classes=3 names"),
    ],
)
def test_image_dataset_validation(kwargs, error, match):
    args = {"images": torch.zeros(2, 1, 4, 4), "labels": torch.tensor([0, 1]), "masks": None, "num_classes": 3}
    with pytest.raises(error, match=match):
        ImageDataset(**{**args, **kwargs})
