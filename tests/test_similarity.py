"""Tests for smoothsal.metrics.similarity: hand computations, references (scipy, skimage), properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from smoothsal.metrics.similarity import (
    DEFAULT_TOPK_FRACTION,
    cosine_similarity,
    l2_distance,
    prepare_map,
    rank_average,
    spearman,
    ssim_maps,
    topk_iou,
    topk_mask,
)


def _maps(seed: int, shape=(3, 3, 16, 16)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---- identical maps -------------------------------------------------------------------------------
def test_identical_maps_give_perfect_scores():
    a = _maps(0)
    ones = torch.ones(3)
    torch.testing.assert_close(l2_distance(a, a), torch.zeros(3))
    torch.testing.assert_close(l2_distance(a, a, normalize=True), torch.zeros(3))
    torch.testing.assert_close(cosine_similarity(a, a), ones)
    torch.testing.assert_close(spearman(a, a), ones)
    torch.testing.assert_close(spearman(a, a, absolute=False), ones)
    torch.testing.assert_close(ssim_maps(a, a), ones)
    torch.testing.assert_close(topk_iou(a, a, k=10), ones)


# ---- L2 and cosine by hand ----------------------------------------------------------------------------
def test_l2_and_cosine_hand_values():
    a = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 4.0], [2.0, 2.0]])
    torch.testing.assert_close(l2_distance(a, b), torch.tensor([5.0, 2.0**0.5]))
    # normalized: unit vectors e1 vs e2 -> sqrt(2); parallel vectors -> 0
    torch.testing.assert_close(l2_distance(a, b, normalize=True), torch.tensor([2.0**0.5, 0.0]))
    torch.testing.assert_close(cosine_similarity(a, b), torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(cosine_similarity(a, -a), torch.tensor([-1.0, -1.0]))


def test_zero_maps_stay_zero_and_finite():
    z = torch.zeros(2, 1, 12, 12)
    a = _maps(1, (2, 1, 12, 12))
    torch.testing.assert_close(l2_distance(z, a, normalize=True), torch.ones(2))  # |0 - unit| = 1
    torch.testing.assert_close(cosine_similarity(z, a), torch.zeros(2))
    assert torch.isfinite(ssim_maps(z, z)).all()
    torch.testing.assert_close(ssim_maps(z, z), torch.ones(2))
    assert not prepare_map(z).any()


@pytest.mark.parametrize("scale", [0.01, 7.0])
def test_scale_invariance(scale):
    a, b = _maps(2), _maps(3)
    torch.testing.assert_close(l2_distance(scale * a, b, normalize=True), l2_distance(a, b, normalize=True))
    torch.testing.assert_close(cosine_similarity(scale * a, b), cosine_similarity(a, b))
    torch.testing.assert_close(spearman(scale * a, b), spearman(a, b))
    torch.testing.assert_close(topk_iou(scale * a, b, k=20), topk_iou(a, b, k=20))
    torch.testing.assert_close(ssim_maps(scale * a, b), ssim_maps(a, b))


def test_results_do_not_depend_on_batch_composition():
    a, b = _maps(4), _maps(5)
    for fn in (l2_distance, cosine_similarity, spearman, ssim_maps, topk_iou):
        full = fn(a, b)
        assert full.shape == (3,)
        torch.testing.assert_close(torch.cat([fn(a[i : i + 1], b[i : i + 1]) for i in range(3)]), full)


# ---- Spearman against scipy --------------------------------------------------------------------------
def test_rank_average_matches_scipy_with_ties():
    from scipy.stats import rankdata

    v = torch.tensor([[3.0, 1.0, 3.0, 2.0, 1.0, 3.0], [0.0, 0.0, 0.0, 0.0, 5.0, -1.0]])
    expected = np.stack([rankdata(row) for row in v.numpy()])
    torch.testing.assert_close(rank_average(v), torch.from_numpy(expected))


def test_spearman_exact_with_a_large_tie_group():
    # half the pixels of a 224 x 224 map tie at zero (a CAM-like map): float32 rank sums would drift
    g = torch.Generator().manual_seed(12)
    a = torch.randn(1, 224, 224, generator=g).clamp(min=0)
    b = (a + 0.5 * torch.randn(1, 224, 224, generator=g)).clamp(min=0)
    expected = spearmanr(a.flatten().numpy(), b.flatten().numpy()).statistic
    assert spearman(a, b).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("absolute", [True, False])
def test_spearman_matches_scipy_with_ties(absolute):
    g = torch.Generator().manual_seed(6)
    # small integers -> many ties, both before and after the channel reduction
    a = torch.randint(-3, 4, (4, 2, 9, 9), generator=g).float()
    b = torch.randint(-3, 4, (4, 2, 9, 9), generator=g).float() + 0.5 * a
    got = spearman(a, b, absolute=absolute)
    red = (lambda m: m.abs().sum(0)) if absolute else (lambda m: m.sum(0))
    expected = [spearmanr(red(a[i]).flatten(), red(b[i]).flatten()).statistic for i in range(4)]
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float32), atol=1e-5, rtol=0)


def test_spearman_absolute_ignores_sign_and_constant_map_gives_nan():
    a = _maps(7)
    torch.testing.assert_close(spearman(a, -a), torch.ones(3))
    torch.testing.assert_close(spearman(a, -a, absolute=False), -torch.ones(3))
    with pytest.warns(RuntimeWarning, match="constant"):
        rho = spearman(a, torch.zeros_like(a))
    assert torch.isnan(rho).all()


# ---- prepare_map and SSIM ------------------------------------------------------------------------------
def test_prepare_map_caps_at_percentile_and_scales():
    # one map with pixel values 1..100 (10 x 10): 99th percentile (linear) = 1 + 0.99 * 99 = 99.01
    m = torch.arange(1.0, 101.0).reshape(1, 1, 10, 10)
    p = prepare_map(m)
    assert p.shape == (1, 10, 10)
    cap = 99.01
    torch.testing.assert_close(p.flatten()[:99], torch.arange(1.0, 100.0) / cap)
    assert p.max() == 1.0 and p.flatten()[-1] == 1.0
    # channels are reduced with the sum of |.|
    two = torch.stack([m[:, 0], -m[:, 0]], dim=1)  # [1, 2, 10, 10]
    torch.testing.assert_close(prepare_map(two), p)
    # a sparse map whose 99th percentile is 0 falls back to its maximum
    sparse = torch.zeros(1, 20, 20)
    sparse[0, 3, 4] = -2.0
    assert prepare_map(sparse)[0, 3, 4] == 1.0 and prepare_map(sparse).sum() == 1.0


def test_ssim_matches_skimage():
    g = torch.Generator().manual_seed(8)
    x = torch.rand(3, 32, 40, generator=g, dtype=torch.float64)
    y = (0.6 * x + 0.4 * torch.rand(3, 32, 40, generator=g, dtype=torch.float64)).clamp(0, 1)
    opts = dict(data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    expected = torch.tensor([structural_similarity(x[i].numpy(), y[i].numpy(), **opts) for i in range(3)])
    got = ssim_maps(x, y, prepare=False)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    # float32 and the [B, 1, H, W] layout agree with the float64 reference
    got32 = ssim_maps(x.float().unsqueeze(1), y.float().unsqueeze(1), prepare=False)
    torch.testing.assert_close(got32, expected.float(), atol=1e-4, rtol=0)
    # with prepare=True, SSIM is skimage's on the prepared maps
    a, b = _maps(9, (2, 3, 20, 20)), _maps(10, (2, 3, 20, 20))
    pa, pb = prepare_map(a).double().numpy(), prepare_map(b).double().numpy()
    expected = torch.tensor([structural_similarity(pa[i], pb[i], **opts) for i in range(2)], dtype=torch.float32)
    torch.testing.assert_close(ssim_maps(a, b), expected, atol=1e-4, rtol=0)


def test_ssim_drops_for_inverted_contrast_and_for_noise():
    g = torch.Generator().manual_seed(11)
    yy, xx = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    blob = torch.exp(-((yy - 12) ** 2 + (xx - 10) ** 2) / 20.0)[None]  # [1, 24, 24] in (0, 1]
    noisy = blob + 0.05 * torch.rand(1, 24, 24, generator=g)
    inverted = blob.max() - blob
    s_noisy = ssim_maps(blob, noisy).item()
    s_inverted = ssim_maps(blob, inverted).item()
    assert s_inverted < 0.0 < s_noisy < 1.0


# ---- top-k ----------------------------------------------------------------------------------------------
def test_topk_mask_counts_and_ties_are_deterministic():
    m = torch.zeros(2, 4, 4)
    m[0, 1, 2] = -5.0  # magnitude counts, not sign
    mask = topk_mask(m, 3)
    assert mask.dtype == torch.bool and mask.shape == (2, 4, 4)
    assert mask.sum(dim=(1, 2)).tolist() == [3, 3]
    assert mask[0, 1, 2]
    # all other values tie at 0: the earliest pixels in row-major order win
    assert mask[0].flatten().nonzero().flatten().tolist() == [0, 1, 6]
    assert mask[1].flatten().nonzero().flatten().tolist() == [0, 1, 2]


def test_topk_iou_hand_case_and_disjoint_sets():
    a = torch.zeros(1, 1, 4, 4)
    b = torch.zeros(1, 1, 4, 4)
    a[0, 0, 0, :3] = torch.tensor([3.0, 2.0, 1.0])  # top-3 of a: pixels 0, 1, 2
    b[0, 0, 0, 1:4] = torch.tensor([3.0, 2.0, 1.0])  # top-3 of b: pixels 1, 2, 3
    torch.testing.assert_close(topk_iou(a, b, k=3), torch.tensor([2.0 / 4.0]))  # |{1,2}| / |{0,1,2,3}|
    c = torch.zeros(1, 1, 4, 4)
    c[0, 0, 3, :3] = 1.0
    torch.testing.assert_close(topk_iou(a, c, k=3), torch.tensor([0.0]))
    # fraction 0.25 of 16 pixels = 4
    torch.testing.assert_close(topk_iou(a, b, fraction=0.25), topk_iou(a, b, k=4))


def test_topk_default_k_is_500_at_224():
    assert round(DEFAULT_TOPK_FRACTION * 224 * 224) == 500
    a = torch.zeros(1, 224, 224)
    a.view(-1)[:600] = torch.arange(600.0, 0.0, -1.0)  # strictly decreasing over the first 600 pixels
    b = a.clone()
    b.view(-1)[:500] = 0.0  # b's top-500 = pixels 500..599 (+ 400 tied zeros from the start)
    # with k = 500, a's set is pixels 0..499; b's set holds pixels 500..599 and 0..399 -> |I| = 400
    torch.testing.assert_close(topk_iou(a, b), torch.tensor([400.0 / 600.0]))


def test_errors_name_arguments():
    a = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"`a` and `b` must have the same shape.*\(2, 1, 8, 8\).*\(2, 1, 8, 9\)"):
        l2_distance(a, torch.zeros(2, 1, 8, 9))
    with pytest.raises(ValueError, match="`a` and `b`.*same shape"):
        cosine_similarity(a, torch.zeros(3, 1, 8, 8))
    with pytest.raises(ValueError, match=r"`k` must be <= H \* W = 64"):
        topk_iou(a, a, k=65)
    with pytest.raises(ValueError, match="`k` must be >= 1"):
        topk_mask(a, 0)
    with pytest.raises(ValueError, match="`k` or `fraction`, not both"):
        topk_iou(a, a, k=3, fraction=0.1)
    with pytest.raises(ValueError, match="`fraction` must lie in"):
        topk_iou(a, a, fraction=1.5)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim_maps(a, a)
    with pytest.raises(ValueError, match="`percentile` must lie in"):
        prepare_map(a, percentile=0.0)
    with pytest.raises(TypeError, match="`b` must be a torch.Tensor"):
        spearman(a, np.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match="`a` must be finite"):
        l2_distance(torch.full((1, 4), float("nan")), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="prepare=False"):
        ssim_maps(torch.zeros(1, 3, 12, 12), torch.zeros(1, 3, 12, 12), prepare=False)
