"""The unbiased one-point smoothed IG: Smooth(PathPointIG), checked against closed forms and on Lite0."""

import pytest
import torch

from conftest import Linear, Quadratic
from smoothsal.methods.integrated_gradients import IntegratedGradients
from smoothsal.methods.path_point_ig import PathPointIG, block_stratified_alphas
from smoothsal.smoothing import Smooth


def test_on_a_linear_model_every_row_is_exact():
    torch.manual_seed(0)
    model = Linear(torch.randn(3, 6), torch.randn(3))
    x = torch.rand(4, 6)
    one = Smooth(PathPointIG(model, baseline="zeros"), noise_level=0.2, n_samples=8, seed=1)
    exact = Smooth(IntegratedGradients(model, steps=2, baseline="zeros"), noise_level=0.2, n_samples=8, seed=1)
    got, delta = one.attribute_with_delta(x, target=2)
    torch.testing.assert_close(got, exact.attribute(x, target=2), rtol=1e-5, atol=1e-6)
    assert float(delta.relative_max.max()) < 1e-5  # each row is complete on a linear model


def test_on_a_quadratic_the_mean_is_unbiased_for_smoothed_exact_ig():
    # F(x) = xᵀAx, baseline 0: IG(x) = x ⊙ Sx / 2 with S = A + Aᵀ; with x̃ = x + σε,
    # E[IG(x̃)] = (x ⊙ Sx + σ² diag S) / 2 (σ absolute here: value_range = (0, 1))
    torch.manual_seed(3)
    a = torch.randn(5, 5)
    s = a + a.T
    model = Quadratic(a)
    x = torch.rand(1, 5)
    sigma = 0.3
    est = Smooth(PathPointIG(model, baseline="zeros"), noise_level=sigma, value_range=(0.0, 1.0), n_samples=4000,
                 seed=2).estimate(x, target=0)  # fmt: skip
    truth = (x * (x @ s.T) + sigma**2 * torch.diagonal(s)) / 2
    z = (est.attributions - truth) / est.stderr
    assert float(z.abs().max()) < 4.0
    # the 4-point Gauss-Legendre rule is exact for this quadratic path too: the same expectation
    four = Smooth(IntegratedGradients(model, steps=4, baseline="zeros"), noise_level=sigma, value_range=(0.0, 1.0),
                  n_samples=4000, seed=2).attribute(x, target=0)  # fmt: skip
    assert float(((est.attributions - four) / est.stderr).abs().max()) < 4.0


def test_the_alphas_are_stratified_in_blocks_and_the_map_ignores_the_batch_size():
    a = block_stratified_alphas(40, 16, torch.Generator().manual_seed(0))
    for lo, hi in ((0, 16), (16, 32), (32, 40)):
        assert sorted((a[lo:hi] * (hi - lo)).floor().long().tolist()) == list(range(hi - lo))
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).eval()
    x = torch.rand(3, 6)
    maps = [Smooth(PathPointIG(model), n_samples=20, seed=5, batch_size=bs).attribute(x, target=1) for bs in (1, 4, 64)]
    for m in maps[1:]:
        torch.testing.assert_close(m, maps[0], rtol=1e-5, atol=1e-7)


def test_the_draws_of_a_smooth_context_pick_stratified_alphas():
    from smoothsal.execution.policy import RowContext

    method = PathPointIG(Linear(torch.randn(2, 3)), seed=3)
    draws = torch.arange(32).repeat_interleave(2)  # 32 draws of 2 images, draw-major
    alphas = method.alphas(64, RowContext(64, draws, 32))
    assert torch.equal(alphas[0::2], alphas[1::2])  # the images of a draw share its position
    for lo in (0, 16):  # one position in each of the 16 strata of each block
        assert sorted((alphas[0::2][lo : lo + 16] * 16).floor().long().tolist()) == list(range(16))
    assert bool((method.alphas(5) == method.alphas(5)[0]).all())  # called directly: one position for all


@pytest.mark.slow
def test_the_completeness_gap_of_the_mean_falls_with_n_on_lite0():
    from smoothsal.models.zoo import efficientnet_lite0

    pytest.importorskip("skimage", reason="the photo comes from scikit-image: pip install scikit-image")
    from smoothsal.datasets.photos import load_photo

    model = efficientnet_lite0()
    x = torch.cat([load_photo(name).tensor for name in ("chelsea", "coffee")])
    x = torch.nn.functional.interpolate(x, size=64, mode="bilinear", antialias=True)  # a few seconds on a CPU
    gaps = {4: [], 64: []}
    for path_seed in range(3):  # one run's gap is one draw: average over the path positions' seeds
        for n in gaps:
            method = PathPointIG(model, seed=path_seed)
            _, delta = Smooth(method, noise_level=0.15, n_samples=n, seed=0).attribute_with_delta(x)
            gaps[n].append(delta.relative_of_mean)  # |Σ mean map − mean ΔF| / |mean ΔF| per image
    mean = {n: float(torch.cat(v).mean()) for n, v in gaps.items()}
    assert mean[64] < 0.25 * mean[4]
