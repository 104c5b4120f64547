"""Tests for smoothsal.render: hand-computed reductions and caps, zero maps, colour maps, PNG grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from smoothsal.render import (
    COL_LABEL_IN,
    NEUTRAL_RGB,
    ROW_LABEL_IN,
    TITLE_IN,
    clip_percentile,
    discriminativity,
    diverging_rgb,
    gray,
    heatmap_overlay,
    multiply_by_input,
    reduce_channels,
    render_map,
    save_grid,
    to_unit_abs,
    to_unit_signed,
)

HUNDRED = np.arange(1.0, 101.0).reshape(10, 10)  # values 1..100
CAP99 = 1.0 + 0.99 * 99.0  # numpy's linear 99th percentile of 1..100 = 99.01


# ---- reduce_channels -----------------------------------------------------------------------------
def test_reduce_channels_modes_by_hand():
    # one pixel with channel values (3, -4): abs_sum 7, sum -1, max_abs 4, l2 5
    attr = np.array([3.0, -4.0]).reshape(2, 1, 1)
    expected = {"abs_sum": 7.0, "sum": -1.0, "max_abs": 4.0, "l2": 5.0}
    for mode, value in expected.items():
        out = reduce_channels(attr, mode)
        assert out.shape == (1, 1)
        assert out[0, 0] == pytest.approx(value)
    # batched torch input [B, C, H, W] -> [B, H, W]
    batch = torch.tensor(attr)[None].repeat(2, 1, 3, 4)  # [2, 2, 3, 4]
    out = reduce_channels(batch, "l2")
    assert isinstance(out, np.ndarray) and out.shape == (2, 3, 4)
    np.testing.assert_allclose(out, 5.0)


def test_reduce_channels_errors():
    with pytest.raises(ValueError, match="`mode` must be one of"):
        reduce_channels(np.zeros((3, 2, 2)), "mean")
    with pytest.raises(ValueError, match=r"`attr` must have shape \[B, C, H, W\] or \[C, H, W\]"):
        reduce_channels(np.zeros((2, 2)))


# ---- percentile capping and scaling -----------------------------------------------------------------
def test_clip_percentile_on_1_to_100():
    clipped = clip_percentile(HUNDRED, 99.0)
    np.testing.assert_allclose(clipped.flatten()[:99], np.arange(1.0, 100.0))
    assert clipped.flatten()[-1] == pytest.approx(CAP99)
    # signed: clip to +-(99th percentile of |m|); the magnitudes of -HUNDRED are the same
    signed = clip_percentile(-HUNDRED, 99.0, signed=True)
    assert signed.min() == pytest.approx(-CAP99) and signed.max() == -1.0
    # percentile 100 = no clipping; percentile 50 = the median (50.5)
    np.testing.assert_allclose(clip_percentile(HUNDRED, 100.0), HUNDRED)
    assert clip_percentile(HUNDRED, 50.0).max() == pytest.approx(50.5)


def test_to_unit_abs_and_signed_scale_by_the_cap():
    unit = to_unit_abs(-HUNDRED)
    assert unit.min() == pytest.approx(1.0 / CAP99) and unit.max() == 1.0
    assert (unit.flatten()[-2:] == 1.0).tolist() == [False, True]
    mixed = HUNDRED * np.where(HUNDRED % 2 == 0, 1.0, -1.0)  # alternating signs
    s = to_unit_signed(mixed)
    assert s.min() >= -1.0 and s.max() <= 1.0
    # symmetric span: negating the map negates the result exactly
    np.testing.assert_array_equal(to_unit_signed(-mixed), -s)
    np.testing.assert_allclose(np.abs(s), to_unit_abs(mixed))
    assert s.flatten()[-1] == 1.0 and s.flatten()[-2] == pytest.approx(-99.0 / CAP99)


def test_all_zero_maps_render_without_nan():
    z = np.zeros((5, 6))
    for out in (clip_percentile(z), to_unit_abs(z), to_unit_signed(z), to_unit_abs(torch.zeros(5, 6))):
        assert np.isfinite(out).all() and not out.any()
    np.testing.assert_array_equal(diverging_rgb(to_unit_signed(z)), np.broadcast_to(NEUTRAL_RGB, (5, 6, 3)))
    np.testing.assert_array_equal(diverging_rgb(z, span=None), np.broadcast_to(NEUTRAL_RGB, (5, 6, 3)))
    for style in ("abs", "signed", "overlay", "x_input"):
        out = render_map(np.zeros((3, 5, 6)), image=np.full((5, 6, 3), 0.3), style=style)
        assert out.shape == (5, 6, 3) and np.isfinite(out).all()
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_sparse_map_falls_back_to_its_maximum():
    m = np.zeros((20, 20))
    m[2, 3] = 4.0  # 1 of 400 pixels: the 99th percentile is 0
    unit = to_unit_abs(m)
    assert unit[2, 3] == 1.0 and unit.sum() == 1.0


def test_render_matches_prepare_map_of_the_metrics():
    from smoothsal.metrics.similarity import prepare_map

    attr = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    expected = prepare_map(attr).double().numpy()
    for i in range(2):
        np.testing.assert_allclose(to_unit_abs(reduce_channels(attr[i])), expected[i], atol=1e-6)


# ---- colour -------------------------------------------------------------------------------------------
def test_diverging_rgb_gray_at_zero_blue_red_ends_and_symmetric():
    m = np.array([[-1.0, -0.5, 0.0, 0.5, 1.0]])
    rgb = diverging_rgb(m)
    assert rgb.shape == (1, 5, 3)
    np.testing.assert_array_equal(rgb[0, 2], [0.5, 0.5, 0.5])  # exactly gray
    np.testing.assert_array_equal(rgb[0, 0], [0.0, 0.0, 1.0])  # blue
    np.testing.assert_array_equal(rgb[0, 4], [1.0, 0.0, 0.0])  # red
    # symmetric span: -m is the same picture with red and blue swapped
    np.testing.assert_array_equal(diverging_rgb(-m), rgb[..., ::-1])
    # equal distance from gray for equal magnitudes
    gray_rgb = np.asarray(NEUTRAL_RGB)
    assert np.linalg.norm(rgb[0, 1] - gray_rgb) == pytest.approx(np.linalg.norm(rgb[0, 3] - gray_rgb))
    # span=None scales by max |m|; values beyond the span saturate
    np.testing.assert_allclose(diverging_rgb(3 * m, span=None), rgb)
    np.testing.assert_array_equal(diverging_rgb(3 * m)[0, 3], rgb[0, 4])


def test_gray_and_overlay():
    m = np.array([[0.0, 0.5], [1.0, 1.5]])
    np.testing.assert_array_equal(gray(m[None]), [[0.0, 0.5], [1.0, 1.0]])
    img = np.full((2, 2, 3), 0.2)
    np.testing.assert_allclose(heatmap_overlay(img, m, alpha=0.0), img)  # no heat: the image itself
    from matplotlib import colormaps

    full = heatmap_overlay(torch.tensor(img).permute(2, 0, 1), m, cmap="viridis", alpha=1.0)
    np.testing.assert_allclose(full, colormaps["viridis"](np.clip(m, 0, 1))[..., :3])
    with pytest.raises(ValueError, match=r"`image` must hold pixel values in \[0, 1\]"):
        heatmap_overlay(img * 6, m)
    with pytest.raises(ValueError, match="`map01` must match the image size"):
        heatmap_overlay(img, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="`cmap` must be a matplotlib colormap"):
        heatmap_overlay(img, m, cmap="no-such-map")


def test_multiply_by_input_black_pixels_vanish():
    attr = np.ones((3, 2, 2))
    image_hwc = np.zeros((2, 2, 3))
    image_hwc[0, 0] = [1.0, 0.5, 0.25]  # one coloured pixel, the rest black
    out = multiply_by_input(attr, image_hwc)
    assert out.shape == (3, 2, 2)
    np.testing.assert_array_equal(out[:, 0, 0], [1.0, 0.5, 0.25])
    assert not out[:, 1:, :].any() and not out[:, 0, 1].any()
    # CAM maps [1, H, W] broadcast over the colour channels of a [3, H, W] input
    cam = np.full((1, 2, 2), 2.0)
    np.testing.assert_array_equal(multiply_by_input(cam, np.moveaxis(image_hwc, -1, 0)), 2 * np.moveaxis(image_hwc, -1, 0))


# ---- discriminativity -----------------------------------------------------------------------------------
def test_discriminativity():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(3, 8, 8))
    np.testing.assert_array_equal(discriminativity(m, m), np.zeros((8, 8)))
    # scale-free: each class map is scaled on its own
    np.testing.assert_allclose(discriminativity(5 * m, m), 0.0, atol=1e-12)
    a, b = np.zeros((4, 4)), np.zeros((4, 4))
    a[0, 0], b[3, 3] = 2.0, 7.0
    d = discriminativity(a, b)
    assert d[0, 0] == 1.0 and d[3, 3] == -1.0 and d.min() >= -1 and d.max() <= 1
    np.testing.assert_array_equal(diverging_rgb(d)[0, 0], [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="`m1` and `m2` must have the same shape"):
        discriminativity(a, np.zeros((5, 5)))


# ---- render_map -----------------------------------------------------------------------------------------
def test_render_map_styles():
    rng = np.random.default_rng(1)
    attr = rng.normal(size=(3, 6, 6))
    image = rng.uniform(size=(6, 6, 3))
    out = render_map(attr)
    np.testing.assert_allclose(out[..., 0], to_unit_abs(np.abs(attr).sum(0)))
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    np.testing.assert_allclose(render_map(attr, style="signed"), diverging_rgb(to_unit_signed(attr.sum(0))))
    xin = render_map(torch.tensor(attr), image=torch.tensor(image).permute(2, 0, 1), style="x_input")
    np.testing.assert_allclose(xin[..., 1], to_unit_abs(np.abs(attr * np.moveaxis(image, -1, 0)).sum(0)))
    cam = rng.uniform(size=(1, 1, 6, 6))  # [1, 1, H, W] upsampled CAM
    ov = render_map(cam, image=image, style="overlay", alpha=0.0)
    np.testing.assert_allclose(ov, image)
    with pytest.raises(ValueError, match="needs `image`"):
        render_map(attr, style="overlay")
    with pytest.raises(ValueError, match="`style` must be one of"):
        render_map(attr, style="jet")
    with pytest.raises(ValueError, match="`reduce` must be 'sum' for style='signed'"):
        render_map(attr, style="signed", reduce="abs_sum")


# ---- save_grid ------------------------------------------------------------------------------------------
def test_save_grid_writes_png_of_expected_size(tmp_path):
    rng = np.random.default_rng(2)
    cells = [[rng.uniform(size=(8, 8)), rng.uniform(size=(8, 8, 3)), None], [None, np.zeros((8, 8))]]
    path = save_grid(
        cells, tmp_path / "sub" / "grid.png", row_labels=["a", "b"], col_labels=["x", "y", "z"],
        title="grid", cell_size=1.5, dpi=40,
    )
    assert path.exists()
    with Image.open(path) as im:
        assert im.format == "PNG"
        width, height = im.size
        pixels = np.asarray(im.convert("RGB"))
    assert width == round(40 * (3 * 1.5 + ROW_LABEL_IN))
    assert height == round(40 * (2 * 1.5 + COL_LABEL_IN + TITLE_IN))
    assert pixels.std() > 0  # something was drawn
    plain = save_grid([[np.ones((4, 4))]], tmp_path / "plain.png", cell_size=1.0, dpi=50)
    with Image.open(plain) as im:
        assert im.size == (50, 50)


def test_save_grid_errors(tmp_path):
    with pytest.raises(ValueError, match="`row_labels` must have one label per row"):
        save_grid([[np.zeros((2, 2))]], tmp_path / "g.png", row_labels=["a", "b"])
    with pytest.raises(ValueError, match=r"`cells\[0\]\[1\]` must hold values in \[0, 1\]"):
        save_grid([[np.zeros((2, 2)), np.full((2, 2), 2.0)]], tmp_path / "g.png")
    with pytest.raises(ValueError, match="`cells` must be a non-empty"):
        save_grid([], tmp_path / "g.png")
