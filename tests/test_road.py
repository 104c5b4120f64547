"""Tests for smoothsal.metrics.road: the imputation against hand computations and its fixed-point
property, the noise, and the MoRF/LeRF curves of a model that reads one pixel."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from smoothsal.metrics import METRICS
from smoothsal.metrics.road import (
    NEIGHBOUR_WEIGHTS,
    ROAD_LEVELS,
    noisy_linear_imputation,
    road_combined,
    road_curves,
    road_lerf,
    road_morf,
)

G = torch.Generator
KERNEL = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]], dtype=torch.float64)


def _image(c: int = 3, h: int = 7, w: int = 7, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, c, h, w, generator=G().manual_seed(seed), dtype=torch.float64)


def _weighted_neighbour_mean(img: torch.Tensor) -> torch.Tensor:
    """Σ_q w_q img_q / Σ_q w_q over each pixel's neighbours inside the image (zero padding), ``[B, C, H, W]``."""
    b, c, h, w = img.shape
    k = KERNEL.view(1, 1, 3, 3)
    total = F.conv2d(img.reshape(b * c, 1, h, w), k, padding=1).reshape(b, c, h, w)
    weight = F.conv2d(torch.ones(1, 1, h, w, dtype=img.dtype), k, padding=1)
    return total / weight


def test_the_kernel_is_the_authors_weights():
    assert sum(NEIGHBOUR_WEIGHTS.values()) == pytest.approx(1.0)
    for (dr, dc), weight in NEIGHBOUR_WEIGHTS.items():
        assert weight == float(KERNEL[1 + dr, 1 + dc]) == (1 / 6 if dr == 0 or dc == 0 else 1 / 12)


def test_one_removed_pixel_is_the_weighted_mean_of_its_neighbours():
    x = _image()
    gone = torch.zeros(1, 7, 7, dtype=torch.bool)
    gone[0, 3, 4] = True
    out = noisy_linear_imputation(x, gone, noise=0.0)
    by_hand = sum(weight * x[0, :, 3 + dr, 4 + dc] for (dr, dc), weight in NEIGHBOUR_WEIGHTS.items())
    torch.testing.assert_close(out[0, :, 3, 4], by_hand, rtol=0, atol=1e-14)
    # at a corner only 3 neighbours exist: their weighted mean, normalised by 1/6 + 1/6 + 1/12
    corner = torch.zeros(1, 7, 7, dtype=torch.bool)
    corner[0, 0, 0] = True
    out = noisy_linear_imputation(x, corner, noise=0.0)
    by_hand = (x[0, :, 0, 1] / 6 + x[0, :, 1, 0] / 6 + x[0, :, 1, 1] / 12) / (5 / 12)
    torch.testing.assert_close(out[0, :, 0, 0], by_hand, rtol=0, atol=1e-14)


def test_a_removed_2x2_block_solves_the_linear_system():
    x = _image(h=6, w=6, seed=1)
    block = [(2, 2), (2, 3), (3, 2), (3, 3)]
    gone = torch.zeros(1, 6, 6, dtype=torch.bool)
    for r, c in block:
        gone[0, r, c] = True
    out = noisy_linear_imputation(x, gone, noise=0.0)
    # by hand: each unknown v_p - Σ_(removed q) w v_q = Σ_(known q) w x_q (interior pixels: weights sum to 1);
    # in the block each pixel has two direct (1/6) and one diagonal (1/12) removed neighbour
    system = torch.tensor([
        [1, -1 / 6, -1 / 6, -1 / 12],
        [-1 / 6, 1, -1 / 12, -1 / 6],
        [-1 / 6, -1 / 12, 1, -1 / 6],
        [-1 / 12, -1 / 6, -1 / 6, 1],
    ], dtype=torch.float64)  # fmt: skip
    rhs = torch.stack([
        sum(wt * x[0, :, r + dr, c + dc] for (dr, dc), wt in NEIGHBOUR_WEIGHTS.items() if (r + dr, c + dc) not in block)
        for r, c in block
    ])  # [4, C]  # fmt: skip
    solved = torch.linalg.solve(system, rhs)  # [4, C]
    for k, (r, c) in enumerate(block):
        torch.testing.assert_close(out[0, :, r, c], solved[k], rtol=0, atol=1e-13)
    residual = system @ torch.stack([out[0, :, r, c] for r, c in block]) - rhs
    assert float(residual.abs().max()) < 1e-13


def test_every_removed_pixel_is_the_weighted_mean_of_its_neighbours_in_the_result():
    """The system's residual, computed independently of how it is assembled: on a large random mask
    (borders, corners and long runs included) every imputed value is the normalised weighted mean of
    its neighbours in the output (imputed or known)."""
    x = _image(h=24, w=20, seed=2)
    gone = torch.rand(1, 24, 20, generator=G().manual_seed(3)) < 0.7
    out = noisy_linear_imputation(x, gone, noise=0.0)
    residual = (out - _weighted_neighbour_mean(out))[:, :, gone[0]]
    assert float(residual.abs().max()) < 1e-12
    assert torch.equal(out[:, :, ~gone[0]], x[:, :, ~gone[0]])


def test_known_pixels_keep_their_values_and_the_noise_has_the_stated_sigma():
    x = torch.rand(2, 3, 64, 64, generator=G().manual_seed(4), dtype=torch.float64)
    gone = torch.rand(2, 64, 64, generator=G().manual_seed(5)) < 0.5
    clean = noisy_linear_imputation(x, gone, noise=0.0)
    noisy = noisy_linear_imputation(x, gone, noise=0.05, seed=7)
    keep = ~gone[:, None].expand_as(x)
    assert torch.equal(noisy[keep], x[keep]) and torch.equal(clean[keep], x[keep])
    diff = (noisy - clean)[~keep]  # ~12,300 values
    assert abs(float(diff.std()) - 0.05) < 0.05 * 0.03
    assert abs(float(diff.mean())) < 4 * 0.05 / diff.numel() ** 0.5
    # one field per call shared by the images: an image's result does not depend on the batch
    torch.testing.assert_close(noisy_linear_imputation(x[1:], gone[1:], noise=0.05, seed=7), noisy[1:], rtol=0, atol=0)
    assert (noisy_linear_imputation(x, gone, noise=0.05, seed=8) - noisy).abs().max() > 0.01


def test_imputation_errors():
    x = _image()
    with pytest.raises(ValueError, match="at least one known pixel"):
        noisy_linear_imputation(x, torch.ones(1, 7, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"`removed` must have shape \[B, H, W\]"):
        noisy_linear_imputation(x, torch.zeros(1, 6, 7, dtype=torch.bool))
    with pytest.raises(TypeError, match="`removed` must be a bool tensor"):
        noisy_linear_imputation(x, torch.zeros(1, 7, 7))
    with pytest.raises(ValueError, match="`noise`"):
        noisy_linear_imputation(x, torch.zeros(1, 7, 7, dtype=torch.bool), noise=-1.0)
    with pytest.raises(ValueError, match=r"`images` must have shape \[B, C, H, W\]"):
        noisy_linear_imputation(x[0], torch.zeros(1, 7, 7, dtype=torch.bool))
    torch.testing.assert_close(noisy_linear_imputation(x, torch.zeros(1, 7, 7, dtype=torch.bool)), x)


# ---- the protocol -------------------------------------------------------------------------------
class OnePixel(nn.Module):
    """Two logits: [x[c=0, row, col], 0]: the model reads one pixel."""

    def __init__(self, row: int, col: int) -> None:
        super().__init__()
        self.row, self.col = row, col

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[:, 0, self.row, self.col]
        return torch.stack([v, torch.zeros_like(v)], dim=1)


def _one_pixel_case() -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A flat 0.3 image whose pixel (5, 6) is 0.9, and maps that rank that pixel first and last."""
    x = torch.full((1, 3, 12, 12), 0.3, dtype=torch.float64)
    x[0, :, 5, 6] = 0.9
    first = torch.rand(1, 12, 12, generator=G().manual_seed(0), dtype=torch.float64) * 0.5
    first[0, 5, 6] = 1.0
    last = first.clone()
    last[0, 5, 6] = 0.0
    return OnePixel(5, 6).double().eval(), x, first, last


def test_a_model_that_reads_one_pixel_gives_the_expected_curves():
    model, x, first, last = _one_pixel_case()
    nine = torch.full((1, len(ROAD_LEVELS)), 0.3, dtype=torch.float64)
    # ranked first: MoRF removes it at every level (a flat surrounding imputes 0.3 exactly); LeRF never does
    c = road_curves(model, x, first, 0, noise=0.0, score="logit")
    torch.testing.assert_close(c.morf, nine, rtol=0, atol=1e-12)
    torch.testing.assert_close(c.lerf, nine * 3, rtol=0, atol=1e-12)
    torch.testing.assert_close(c.combined(), torch.tensor([0.6], dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(c.clean, torch.tensor([0.9], dtype=torch.float64))
    # ranked last: the other way round, and the combined score changes sign
    c = road_curves(model, x, last, 0, noise=0.0, score="logit")
    torch.testing.assert_close(c.morf, nine * 3, rtol=0, atol=1e-12)
    torch.testing.assert_close(c.lerf, nine, rtol=0, atol=1e-12)
    # probabilities: softmax([v, 0]) of the target 0 is sigmoid(v)
    c = road_curves(model, x, first, 0, noise=0.0, score="prob")
    torch.testing.assert_close(c.morf, torch.sigmoid(nine), rtol=0, atol=1e-12)
    torch.testing.assert_close(c.lerf, torch.sigmoid(nine * 3), rtol=0, atol=1e-12)
    # with the authors' noise the imputed pixel is 0.3 + 0.01 ε at each level
    c = road_curves(model, x, first, 0, score="logit", seed=3)
    assert float((c.morf - 0.3).abs().max()) < 0.05 and float((c.morf - 0.3).abs().max()) > 0
    assert float((c.morf - 0.3).std()) == pytest.approx(0.01, rel=0.8)


def test_scores_do_not_depend_on_the_batch_and_the_registered_scores_agree():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3)).eval()  # fmt: skip
    x = torch.rand(3, 3, 10, 10, generator=G().manual_seed(1))
    a = torch.randn(3, 1, 10, 10, generator=G().manual_seed(2))
    full = road_curves(model, x, a, seed=4)
    alone = road_curves(model, x[2:], a[2:], seed=4, batch_size=1)
    torch.testing.assert_close(alone.morf, full.morf[2:])
    torch.testing.assert_close(alone.lerf, full.lerf[2:])
    torch.testing.assert_close(road_morf(model, x, a, seed=4), full.morf_auc())
    torch.testing.assert_close(road_lerf(model, x, a, seed=4), full.lerf_auc())
    torch.testing.assert_close(road_combined(model, x, a, seed=4), full.lerf_auc() - full.morf_auc())
    assert (road_curves(model, x, a, seed=5).morf - full.morf).abs().max() > 0
    for name, better in (("road_morf", False), ("road_lerf", True), ("road_combined", True), ("road_curves", None)):
        assert METRICS[name].kind == "model" and METRICS[name].higher_is_better is better


def test_ties_are_broken_at_random_not_by_position():
    """A constant map: each level removes a random share of the pixels, not the top rows."""
    model, x, _, _ = _one_pixel_case()
    flat = torch.ones(1, 12, 12, dtype=torch.float64)
    seen = []
    for seed in range(20):
        c = road_curves(model, x, flat, 0, noise=0.0, score="logit", levels=(0.5,), orders=("morf",), seed=seed)
        seen.append(float(c.morf[0, 0]))
    removed_share = sum(v < 0.5 for v in seen) / len(seen)  # the pixel at row 5 of 12 is removed half the time
    assert 0.2 <= removed_share <= 0.8, seen


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"levels": (0.0, 0.5)}, ValueError, "strictly between 0 and 1"),
        ({"levels": (0.5, 0.2)}, ValueError, "increasing"),
        ({"levels": (0.001,)}, ValueError, "at least one pixel"),
        ({"levels": "ab"}, TypeError, "sequence of shares"),
        ({"orders": ("morf", "up")}, ValueError, "`orders`"),
        ({"score": "rank"}, ValueError, "`score`"),
        ({"rank_by": "max"}, ValueError, "`rank_by`"),
        ({"noise": -0.1}, ValueError, "`noise`"),
    ],
)
def test_road_curves_errors(kwargs, error, match):
    model, x, first, _ = _one_pixel_case()
    with pytest.raises(error, match=match):
        road_curves(model, x, first, 0, **kwargs)


def test_road_needs_images_and_matching_maps():
    model, x, first, _ = _one_pixel_case()
    with pytest.raises(ValueError, match=r"`inputs` must have shape \[B, C, H, W\]"):
        road_curves(model, x.flatten(1), first.flatten(1), 0)
    with pytest.raises(ValueError, match="`attributions` must have shape"):
        road_curves(model, x, first[:, :6], 0)
    with pytest.raises(ValueError, match="no LeRF order"):
        road_curves(model, x, first, 0, orders=("morf",), noise=0.0).combined()
