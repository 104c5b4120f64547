"""Faithfulness metrics on a linear model, where the ideal attribution w ⊙ x is known exactly."""

from __future__ import annotations

import pytest
import torch
from conftest import Linear, small_cnn

from smoothsal.methods.gradient import GradientXInput, VanillaGradient
from smoothsal.metrics.faithfulness import (
    PerturbationCurve,
    auc,
    deletion_auc,
    deletion_curve,
    faithfulness_correlation,
    infidelity,
    insertion_auc,
    insertion_curve,
    max_sensitivity,
    monotonicity,
)

B = 32


@pytest.fixture(scope="module")
def linear_case():
    """Two logits [w·x − 12, 0] on images [B, 3, 8, 8]; ideal attribution of class 0 is w ⊙ x."""
    g = torch.Generator().manual_seed(0)
    w = torch.rand(1, 3, 8, 8, generator=g) * 0.5
    weight = torch.cat([w.flatten()[None], torch.zeros(1, w.numel())])
    model = Linear(weight, torch.tensor([-12.0, 0.0]))
    x = torch.rand(B, 3, 8, 8, generator=g)
    random_map = torch.randn(B, 3, 8, 8, generator=g)
    return model, w, x, w * x, random_map


def test_deletion_ideal_below_random_and_insertion_above(linear_case):
    model, _, x, ideal, rnd = linear_case
    d_ideal = deletion_auc(model, x, ideal, targets=0)
    d_rand = deletion_auc(model, x, rnd, targets=0)
    i_ideal = insertion_auc(model, x, ideal, targets=0, baseline="black")
    i_rand = insertion_auc(model, x, rnd, targets=0, baseline="black")
    # measured: deletion 0.295 (ideal) vs 0.483 (random); insertion 0.669 vs 0.473
    assert (d_ideal < d_rand).float().mean() > 0.9
    assert d_ideal.mean() < d_rand.mean() - 0.1
    assert i_ideal.mean() > i_rand.mean() + 0.1
    # LeRF deletion of the ideal map keeps the score longest: the reverse of MoRF
    lerf = deletion_auc(model, x, ideal, targets=0, order="lerf")
    assert (lerf > d_ideal).all()


def test_curve_endpoints_and_shapes(linear_case):
    model, _, x, ideal, _ = linear_case
    curve = deletion_curve(model, x, ideal, targets=0, steps=8, patch=2, baseline="mean")
    assert isinstance(curve, PerturbationCurve)
    assert curve.fractions.shape == (9,) and curve.scores.shape == (B, 9)
    torch.testing.assert_close(curve.fractions[[0, -1]], torch.tensor([0.0, 1.0]))
    clean = model(x).softmax(1)[:, 0]
    base = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    torch.testing.assert_close(curve.scores[:, 0], clean)
    torch.testing.assert_close(curve.scores[:, -1], model(base).softmax(1)[:, 0])
    ins = insertion_curve(model, x, ideal, targets=0, steps=8, patch=3, baseline=0.0, score="logit")
    torch.testing.assert_close(ins.scores[:, -1], model(x)[:, 0])
    torch.testing.assert_close(ins.scores[:, 0], torch.full((B,), -12.0))
    torch.testing.assert_close(auc(ins), torch.trapezoid(ins.scores, ins.fractions, dim=1))


def test_deletion_logit_curve_is_exact_on_linear_model(linear_case):
    """With logit score and black baseline each step removes exactly Σ w⊙x over the removed pixels."""
    model, w, x, ideal, _ = linear_case
    curve = deletion_curve(model, x[:2], ideal[:2], targets=0, steps=64, score="logit")
    pixel = ideal[:2].sum(dim=1).flatten(1)  # [2, 64] contribution of each pixel
    removed = pixel.sort(dim=1, descending=True).values.cumsum(dim=1)
    expected = model(x[:2])[:, :1] - torch.cat([torch.zeros(2, 1), removed], dim=1)
    torch.testing.assert_close(curve.scores, expected, atol=1e-4, rtol=1e-4)


def test_blur_baseline_and_cnn_targets_default():
    model = small_cnn()
    x = torch.rand(4, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    attr = VanillaGradient(model).attribute(x)
    curve = deletion_curve(model, x, attr, steps=4, baseline="blur")
    pred = model(x).argmax(1)
    torch.testing.assert_close(curve.scores[:, 0], model(x).softmax(1).gather(1, pred[:, None])[:, 0])
    assert (curve.scores >= 0).all() and (curve.scores <= 1).all()


def test_faithfulness_correlation_ideal_is_one_random_near_zero(linear_case):
    model, _, x, ideal, rnd = linear_case
    fc_ideal = faithfulness_correlation(model, x, ideal, targets=0, baseline="black", n_runs=30)
    torch.testing.assert_close(fc_ideal, torch.ones(B), atol=1e-4, rtol=0)
    fc_rand = faithfulness_correlation(model, x, rnd, targets=0, n_runs=30)
    # measured mean −0.04 over 32 inputs; per-input std ≈ 1/sqrt(30)
    assert fc_rand.mean().abs() < 0.1
    # same seed, same result; different seed, different subsets
    again = faithfulness_correlation(model, x, rnd, targets=0, n_runs=30)
    torch.testing.assert_close(fc_rand, again)
    assert not torch.equal(fc_rand, faithfulness_correlation(model, x, rnd, targets=0, n_runs=30, seed=1))


def test_faithfulness_correlation_zero_map_is_zero_not_nan(linear_case):
    model, _, x, ideal, _ = linear_case
    out = faithfulness_correlation(model, x[:3], torch.zeros_like(ideal[:3]), targets=0, n_runs=5)
    torch.testing.assert_close(out, torch.zeros(3))


def test_monotonicity_ideal_one_random_chance_reversed_negative(linear_case):
    model, _, x, ideal, rnd = linear_case
    torch.testing.assert_close(monotonicity(model, x, ideal, targets=0), torch.ones(B), atol=1e-5, rtol=0)
    assert monotonicity(model, x, rnd, targets=0).mean().abs() < 0.1
    # a map that ranks the units backwards fails: strongly negative
    backwards = 1.0 / (ideal.sum(dim=1, keepdim=True) + 1e-3)
    assert monotonicity(model, x[:4], backwards[:4], targets=0).max() < -0.9
    # patches: the sum of |w x| over each patch still ranks the patch effects exactly
    torch.testing.assert_close(
        monotonicity(model, x[:4], ideal[:4], targets=0, patch=4), torch.ones(4), atol=1e-5, rtol=0
    )


def test_infidelity_exact_attributions_zero_random_at_closed_form(linear_case):
    model, w, x, ideal, rnd = linear_case
    grad = VanillaGradient(model).attribute(x, 0)
    gxi = GradientXInput(model).attribute(x, 0)
    assert infidelity(model, x, grad, targets=0).max() < 1e-8
    assert infidelity(model, x, gxi, targets=0, perturbation="relative").max() < 1e-8
    torch.testing.assert_close(gxi, ideal)
    # random map: E[(zᵀ(Φ − w))²] = σ² ‖Φ − w‖² for the Gaussian perturbation
    sigma = 0.1
    inf = infidelity(model, x, rnd, targets=0, n_perturb=400, noise_std=sigma)
    expected = sigma**2 * (rnd - w).flatten(1).pow(2).sum(dim=1)
    ratio = (inf / expected).mean()
    assert 0.9 < ratio < 1.1  # measured 0.996
    # normalize=True: a rescaled exact map is still exact
    assert infidelity(model, x, 5.0 * grad, targets=0, normalize=True).max() < 1e-8
    assert infidelity(model, x, 5.0 * grad, targets=0).min() > 1e-3


def test_max_sensitivity_gradient_of_linear_model_is_zero(linear_case):
    model, w, x, _, _ = linear_case
    torch.testing.assert_close(max_sensitivity(VanillaGradient(model), x), torch.zeros(B))
    # gradient × input: Φ(x+δ) − Φ(x) = w ⊙ δ, so the ratio is at most r ‖w‖ / ‖w ⊙ x‖
    radius = 0.02
    sens = max_sensitivity(GradientXInput(model), x, radius=radius, n_samples=5)
    bound = radius * w.norm() / (w * x).flatten(1).norm(dim=1)
    assert (sens > 0).all() and (sens <= bound + 1e-6).all()

    class Noise:
        """A 'method' that returns a fresh random map every call: maximally unstable."""

        def __init__(self) -> None:
            self.g = torch.Generator().manual_seed(0)

        def attribute(self, inputs, target=None):
            return torch.randn(inputs.shape, generator=self.g)

    assert max_sensitivity(Noise(), x).min() > 1.0


def test_errors_name_the_argument(linear_case):
    model, _, x, ideal, _ = linear_case
    with pytest.raises(ValueError, match="`attributions` must have shape"):
        deletion_curve(model, x, ideal[:, :, :4], targets=0)
    with pytest.raises(ValueError, match=r"`steps` must be <= the number of pixels \(64\)"):
        deletion_curve(model, x, ideal, targets=0, steps=65)
    with pytest.raises(ValueError, match=r"`steps` must be <= the number of patches \(9\)"):
        insertion_curve(model, x, ideal, targets=0, steps=10, patch=3)
    with pytest.raises(ValueError, match=r"`patch` must be <= the image size"):
        deletion_curve(model, x, ideal, targets=0, patch=9)
    with pytest.raises(ValueError, match="`order` must be one of"):
        deletion_curve(model, x, ideal, targets=0, order="random")
    with pytest.raises(ValueError, match="`baseline` must be"):
        deletion_curve(model, x, ideal, targets=0, baseline="gray")
    with pytest.raises(ValueError, match="`subset_size` must be <="):
        faithfulness_correlation(model, x, ideal, targets=0, subset_size=65)
    with pytest.raises(ValueError, match="`attributions` must have the inputs' shape"):
        infidelity(model, x, ideal.sum(dim=1), targets=0)
    with pytest.raises(ValueError, match="`score` must be one of"):
        monotonicity(model, x, ideal, targets=0, score="loss")
    with pytest.raises(TypeError, match="`method` must have an .attribute"):
        max_sensitivity(model.forward, x)


def test_occlusion_map_of_a_cnn_scores_well_above_a_random_map():
    """The model's own occlusion map (logit drop per black pixel) is faithful; a random map is at chance."""
    model = small_cnn()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 12, 12, generator=g)
    target = model(x).argmax(1)
    eye = torch.eye(144, dtype=torch.bool).reshape(144, 1, 1, 12, 12)  # one pixel per copy
    occluded = torch.where(eye, torch.zeros(()), x[None]).reshape(-1, 3, 12, 12)  # [144 * B, 3, H, W]
    with torch.no_grad():
        clean = model(x).gather(1, target[:, None])[:, 0]
        scores = model(occluded).gather(1, target.repeat(144)[:, None])[:, 0]  # [144 * B]
        drops = clean[:, None] - scores.reshape(144, 16).T  # [B, 144]
    occlusion = drops.reshape(16, 1, 12, 12)
    rnd = torch.randn(16, 1, 12, 12, generator=g)
    fc_occ = faithfulness_correlation(model, x, occlusion, n_runs=40)
    fc_rnd = faithfulness_correlation(model, x, rnd, n_runs=40)
    assert fc_occ.mean() > 0.8 and fc_rnd.mean().abs() < 0.15  # measured 0.95 vs 0.01
    # ranks |drop| exactly as the effects drop²; batch_size: all 144 single-pixel copies in one forward
    assert monotonicity(model, x, occlusion, batch_size=144 * 16).min() > 0.99
    assert monotonicity(model, x, rnd, batch_size=144 * 16).mean().abs() < 0.15
