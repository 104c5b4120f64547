"""Tests for smoothsal.metrics.tradeoff: stability / fidelity errors and the σ recommendation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from smoothsal.methods.gradient import VanillaGradient
from smoothsal.metrics.tradeoff import (
    check_noise_grid,
    fidelity_error,
    fidelity_from_maps,
    recommend_noise_level,
    stability_error,
    stability_from_maps,
)


class Scaled(nn.Module):
    """``factor * model(x)``: the same decision function, gradients scaled by ``factor``."""

    def __init__(self, model: nn.Module, factor: float) -> None:
        super().__init__()
        self.model, self.factor = model, factor
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.factor * self.model(x)


def _cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 12 * 12, 3)
    ).eval()


def _images(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(seed))


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).eval()


# ---- stability error ----------------------------------------------------------------------------
def test_stability_is_zero_for_identical_models_and_positive_for_different_ones():
    x = _images()
    net = _cnn(0)
    same = stability_error(VanillaGradient, [net, net, net], x, targets=1)
    assert same.pairs == ((0, 1), (0, 2), (1, 2))
    assert same.mean == 0.0 and same.mean_normalized == 0.0 and same.std == 0.0
    assert same.ssim == pytest.approx(1.0) and same.topk_iou == pytest.approx(1.0)
    assert same.cosine == pytest.approx(1.0)

    diff = stability_error(VanillaGradient, [_cnn(0), _cnn(1), _cnn(2)], x, targets=1)
    assert diff.mean > 0 and diff.mean_normalized > 0 and diff.std > 0
    assert diff.per_input.shape == (3, 4) and diff.pair_errors.shape == (3,)
    # the float summaries are the mean / sample std over the per-pair means
    assert diff.mean == pytest.approx(float(diff.per_input.mean(dim=1).mean()))
    assert diff.std == pytest.approx(float(diff.per_input.mean(dim=1).std()))
    assert 0.0 <= diff.topk_iou < 1.0 and diff.ssim < 1.0


def test_norm_scaled_error_ignores_the_scale_of_a_model_output():
    x = _images()
    a, b = _cnn(0), _cnn(1)
    base = stability_error(VanillaGradient, [a, b], x, targets=0)
    scaled = stability_error(VanillaGradient, [a, Scaled(b, 3.0)], x, targets=0)
    assert scaled.mean != pytest.approx(base.mean, rel=1e-3)  # raw distance changes
    assert scaled.mean_normalized == pytest.approx(base.mean_normalized, rel=1e-5)
    assert scaled.ssim == pytest.approx(base.ssim, rel=1e-5)  # rank/percentile-based: scale-free too
    assert scaled.topk_iou == pytest.approx(base.topk_iou)
    # the same model, scaled: raw error = ||(3 - 1) g|| > 0, norm-scaled error 0
    self_scaled = stability_error(VanillaGradient, [a, Scaled(a, 3.0)], x, targets=0)
    grads = VanillaGradient(a).attribute(x, 0)
    assert self_scaled.mean == pytest.approx(float((2 * grads).flatten(1).norm(dim=1).mean()), rel=1e-5)
    assert self_scaled.mean_normalized == pytest.approx(0.0, abs=1e-6)


def test_each_model_is_explained_once_and_targets_default_to_the_first_models_prediction():
    x = _images(5)
    models = [_cnn(s) for s in range(4)]
    calls = []

    def factory(model):
        calls.append(model)
        return VanillaGradient(model)

    res = stability_error(factory, models, x)
    assert len(calls) == 4 and len(res.pairs) == 6
    preds = models[0](x).argmax(dim=1)
    explicit = stability_error(VanillaGradient, models, x, targets=preds)
    torch.testing.assert_close(res.per_input, explicit.per_input)
    # chunked evaluation gives the same numbers
    chunked = stability_error(VanillaGradient, models, x, targets=preds, batch_size=2)
    torch.testing.assert_close(chunked.per_input, explicit.per_input)


def test_stability_hand_computed_on_linear_models():
    # gradient of logit 0 of a linear model is its weight row: constant over inputs
    w = [torch.tensor([[3.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 4.0], [1.0, 0.0]])]
    models = []
    for weight in w:
        lin = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            lin.weight.copy_(weight)
        models.append(lin.eval())
    res = stability_error(VanillaGradient, models, torch.randn(3, 2), targets=0)
    assert res.mean == pytest.approx(5.0)  # ||(3, 0) - (0, 4)||
    assert res.mean_normalized == pytest.approx(math.sqrt(2.0))  # e1 vs e2
    assert math.isnan(res.ssim) and math.isnan(res.topk_iou)  # no image maps: not defined


def test_stability_errors_are_clear():
    x = _images()
    with pytest.raises(ValueError, match="at least 2 models"):
        stability_error(VanillaGradient, [_cnn(0)], x)
    with pytest.raises(ValueError, match=r"`k` must be <= H \* W = 144"):
        stability_error(VanillaGradient, [_cnn(0), _cnn(1)], x, k=145)
    with pytest.raises(TypeError, match="`method` must be a factory model -> attribution method"):
        stability_error("grad", [_cnn(0), _cnn(1)], x)
    with pytest.raises(TypeError, match="instance of VanillaGradient already bound to a model"):
        stability_error(VanillaGradient(_cnn(0)), [_cnn(0), _cnn(1)], x)
    with pytest.raises(ValueError, match="`target` must lie in"):
        stability_error(VanillaGradient, [_cnn(0), _cnn(1)], x, targets=7)
    with pytest.raises(ValueError, match="same shape"):
        stability_from_maps([torch.rand(2, 1, 12, 12), torch.rand(2, 3, 12, 12)])
    with pytest.raises(ValueError, match="at least 2 models"):
        stability_from_maps([torch.rand(2, 1, 12, 12)])


# ---- fidelity error --------------------------------------------------------------------------------
def test_fidelity_vanishes_as_sigma_shrinks_and_grows_with_sigma():
    net, x = _mlp(0), torch.randn(8, 6)
    errors = [
        fidelity_error(VanillaGradient, net, x, targets=2, noise_level=sigma, n_samples=64, seed=0).mean
        for sigma in (1e-5, 0.05, 0.2, 0.6)
    ]
    assert errors[0] < 1e-4 * errors[-1]
    assert errors == sorted(errors) and errors[1] > 0


def test_fidelity_of_smoothgrad_is_zero_on_a_linear_model():
    lin = nn.Linear(5, 3).eval()  # gradient = weight row, the same at every noisy input
    x = torch.randn(4, 5)
    for sigma in (0.1, 0.5, 2.0):
        res = fidelity_error(VanillaGradient, lin, x, noise_level=sigma, n_samples=16, seed=3)
        assert res.mean == pytest.approx(0.0, abs=1e-6) and res.mean_normalized == pytest.approx(0.0, abs=1e-6)
        assert res.per_input.shape == (4,) and res.noise_level == sigma and res.n_samples == 16


def test_fidelity_from_maps_hand_values_and_errors():
    raw = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    smoothed = torch.tensor([[0.0, 4.0], [2.0, 2.0]])
    res = fidelity_from_maps(smoothed, raw)
    assert res.mean == pytest.approx((5.0 + math.sqrt(2.0)) / 2)
    assert res.std == pytest.approx(float(torch.tensor([5.0, math.sqrt(2.0)]).std()))
    assert res.mean_normalized == pytest.approx(math.sqrt(2.0) / 2)  # e1 vs e2, then parallel
    with pytest.raises(ValueError, match="same shape"):
        fidelity_from_maps(torch.rand(2, 3), torch.rand(2, 4))
    with pytest.raises(ValueError, match="`noise_level` must be a finite number >= 0"):
        fidelity_error(VanillaGradient, _mlp(0), torch.randn(2, 6), noise_level=-0.1)


def test_fidelity_is_deterministic_for_a_seed():
    net, x = _mlp(1), torch.randn(3, 6)
    a = fidelity_error(VanillaGradient, net, x, noise_level=0.3, n_samples=8, seed=5)
    b = fidelity_error(VanillaGradient, net, x, noise_level=0.3, n_samples=8, seed=5)
    torch.testing.assert_close(a.per_input, b.per_input)


# ---- σ recommendation --------------------------------------------------------------------------------
SIGMAS = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5]
STAB = [1.0, 0.5, 0.3, 0.25, 0.22, 0.2]  # falls fast, then flattens
FID = [0.0, 0.05, 0.1, 0.3, 0.5, 1.0]  # rises slowly, then fast


def test_knee_is_the_point_farthest_below_the_chord():
    rec = recommend_noise_level(SIGMAS, STAB, FID)
    assert rec.rule == "knee" and rec.noise_level == 0.1
    # hand check: scaled points (f, s); chord from (0, 1) to (1, 0): distance (1 - f - s) / sqrt(2)
    s01 = [(s - 0.2) / 0.8 for s in STAB]
    expected = [(1 - f - s) / math.sqrt(2) for f, s in zip(FID, s01)]
    assert [row["knee_distance"] for row in rec.table] == pytest.approx(expected)
    assert "σ=0.1" in rec.reason and "0.3" in rec.reason  # quotes the numbers


def test_knee_ignores_dominated_points_and_a_dominating_sigma_wins():
    # σ = 0.7 is worse on both errors than σ = 0.5: off the front, so the chord still ends at 0.5
    rec = recommend_noise_level(SIGMAS + [0.7], STAB + [0.25], FID + [1.2])
    assert rec.noise_level == 0.1 and [r["pareto_optimal"] for r in rec.table] == [True] * 6 + [False]
    # smoothing only raises the stability error: σ = 0 dominates every other σ
    rec = recommend_noise_level([0.0, 0.1, 0.2], [0.5, 0.6, 0.55], [0.0, 0.2, 0.4])
    assert rec.noise_level == 0.0 and "dominates" in rec.reason


def test_knee_ignores_the_grid_order():
    order = [3, 0, 5, 1, 4, 2]
    rec = recommend_noise_level([SIGMAS[i] for i in order], [STAB[i] for i in order], [FID[i] for i in order])
    assert rec.noise_level == 0.1 and [r["noise_level"] for r in rec.table] == SIGMAS


def test_straight_curve_has_no_knee_and_falls_back_to_the_point_nearest_zero():
    rec = recommend_noise_level([0.0, 0.1, 0.2], [1.0, 0.5, 0.0], [0.0, 0.5, 1.0])
    assert rec.noise_level == 0.1 and "no knee" in rec.reason


def test_stability_target_and_fidelity_bound():
    rec = recommend_noise_level(SIGMAS, STAB, FID, stability_target=0.26)
    assert (rec.rule, rec.noise_level) == ("stability_target", 0.2)
    rec = recommend_noise_level(SIGMAS, STAB, FID, fidelity_bound=0.35)
    assert (rec.rule, rec.noise_level) == ("fidelity_bound", 0.2)
    assert "0.35" in rec.reason and "0.3" in rec.reason
    rec = recommend_noise_level(SIGMAS, STAB, FID, stability_target=0.23, fidelity_bound=0.6)
    assert rec.rule == "stability_target+fidelity_bound" and rec.noise_level == 0.3
    with pytest.warns(UserWarning, match="no noise level reaches"):
        rec = recommend_noise_level(SIGMAS, STAB, FID, stability_target=0.21, fidelity_bound=0.6)
    assert rec.noise_level == 0.3  # the lowest stability error within the fidelity bound
    with pytest.warns(UserWarning, match="no noise level reaches"):
        rec = recommend_noise_level(SIGMAS, STAB, FID, stability_target=0.1)
    assert rec.noise_level == 0.5  # the lowest stability error on the grid
    with pytest.warns(UserWarning, match="no noise level keeps"):
        rec = recommend_noise_level([0.1, 0.2], [1.0, 0.5], [0.3, 0.4], fidelity_bound=0.1)
    assert rec.noise_level == 0.1


def test_recommendation_and_grid_errors():
    with pytest.raises(ValueError, match="negative values"):
        recommend_noise_level([0.0, -0.1, 0.2], [1, 2, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="one value per noise level"):
        recommend_noise_level([0.0, 0.1], [1.0], [0.0, 0.1])
    with pytest.raises(ValueError, match="must not repeat"):
        check_noise_grid([0.1, 0.1])
    with pytest.raises(ValueError, match="at least 2 noise levels"):
        recommend_noise_level([0.1], [1.0], [0.0])
    with pytest.raises(ValueError, match="`stability_target` must be a finite number >= 0"):
        recommend_noise_level(SIGMAS, STAB, FID, stability_target=-1.0)
