"""Eq. 12/13 without the Monte-Carlo bias of the n-sample mean (Ye & Farnia 2025), and eq. 13 like with like.

Truths: SumSin's SmoothGrad has the closed form w cos(wx) exp(-w²σ²/2), and the per-draw
covariance of its gradient is known, so the bias of the plain squared distance (tr Σ / n) and the
unbiasedness of the split-half cross term are checked against numbers computed by hand.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import SumSin
from torch import nn

from smoothsal.methods.gradient import VanillaGradient
from smoothsal.methods.integrated_gradients import IntegratedGradients
from smoothsal.metrics.tradeoff import (
    debiased_distance,
    fidelity_error,
    fidelity_from_maps,
    smoothed_halves,
    stability_error,
)
from smoothsal.noise import noise_sigma
from smoothsal.registry import build_method
from smoothsal.smoothing import Smooth
from smoothsal.smoothing_spec import SmoothSpec


def _sumsin_moments(w: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per input: E_z g(x+z) and the trace of Cov_z g(x+z), g = w cos(w x) (x [N, d], sigma [N])."""
    a, b2 = w * x, (w * sigma[:, None]) ** 2  # [N, d]
    mean = w * torch.cos(a) * torch.exp(-b2 / 2)
    second = w**2 * (1 + torch.cos(2 * a) * torch.exp(-2 * b2)) / 2  # E[w² cos²(w(x+z))]
    return mean, (second - mean**2).sum(dim=1)


def test_debiased_distance_identities_on_hand_numbers():
    a, b, s = torch.tensor([[3.0, 1.0]]), torch.tensor([[1.0, 3.0]]), torch.tensor([[1.0, 1.0]])
    d = debiased_distance((a, b), s)
    # cross term <(2, 0), (0, 2)> = 0; full mean (2, 2), plain squared ||(1, 1)||² = 2; bias ||a - b||²/4 = 2
    assert d.squared.item() == 0.0 and d.plain_squared.item() == pytest.approx(2.0)
    assert d.bias.item() == pytest.approx(((a - b) ** 2).sum().item() / 4)
    # two expected maps (stability): <a1 - a2, b1 - b2>; unequal halves weight the full mean
    d2 = debiased_distance((a, b), (s, 2 * s), sizes=(1, 3))
    assert d2.squared.item() == pytest.approx(((a - s) * (b - 2 * s)).sum().item())
    full = 0.25 * (a - s) + 0.75 * (b - 2 * s)
    assert d2.plain_squared.item() == pytest.approx((full**2).sum().item())
    # the corrected distance clips a negative cross term at 0; the squared estimate stays negative
    neg = debiased_distance((torch.tensor([[1.0]]), torch.tensor([[-1.0]])), torch.zeros(1, 1))
    assert neg.squared.item() == -1.0 and neg.corrected.item() == 0.0
    with pytest.raises(ValueError, match="halves"):
        debiased_distance((a, b[:, :1]), s)
    with pytest.raises(TypeError, match="pair"):
        debiased_distance(a, s)


def test_fidelity_squared_estimate_is_unbiased_at_n4_and_plain_is_biased_by_trace_over_n():
    torch.manual_seed(0)
    d, n_inputs, n, seeds = 24, 16, 4, 120
    w = torch.linspace(0.5, 6.0, d, dtype=torch.float64)
    model = SumSin(w).double()
    x = torch.rand(n_inputs, d, dtype=torch.float64) * 2 - 1
    level = 0.2
    sigma = noise_sigma(x, level)  # [N] absolute σ per input
    mu, trace = _sumsin_moments(w, x, sigma)
    g = w * torch.cos(w * x)  # the raw gradient
    truth = ((mu - g) ** 2).sum(dim=1).mean().item()  # E_x ||E_z g(x+z) - g(x)||²
    bias = (trace / n).mean().item()  # predicted excess of the plain squared distance
    deb, plain = [], []
    for seed in range(seeds):
        res = fidelity_error(VanillaGradient, model, x, targets=0, noise_level=level, n_samples=n, seed=seed)
        deb.append(res.mean_squared_debiased)
        plain.append(res.mean_squared)
    deb, plain = torch.tensor(deb), torch.tensor(plain)
    se_deb, se_plain = deb.std().item() / math.sqrt(seeds), plain.std().item() / math.sqrt(seeds)
    assert abs(deb.mean().item() - truth) < 4 * se_deb  # unbiased
    assert abs(plain.mean().item() - (truth + bias)) < 4 * se_plain  # biased by tr Σ / n, as predicted
    assert plain.mean().item() - truth > 10 * se_plain  # and the bias is large against the noise
    assert bias > 0.25 * truth  # at n = 4 the noise is a third of the plain squared distance


def test_stability_squared_estimate_is_unbiased_with_common_random_numbers():
    torch.manual_seed(1)
    d, n_inputs, n, seeds = 16, 12, 4, 100
    w1 = torch.linspace(0.5, 5.0, d, dtype=torch.float64)
    w2 = w1 * 1.3
    models = [SumSin(w1).double(), SumSin(w2).double()]
    x = torch.rand(n_inputs, d, dtype=torch.float64) * 2 - 1
    level = 0.15
    sigma = noise_sigma(x, level)
    truth = ((_sumsin_moments(w1, x, sigma)[0] - _sumsin_moments(w2, x, sigma)[0]) ** 2).sum(dim=1).mean().item()
    deb, plain = [], []
    for seed in range(seeds):
        res = stability_error(lambda m, s=seed: Smooth(VanillaGradient(m), noise_level=level, n_samples=n, seed=s),
                              models, x, targets=0)  # fmt: skip
        deb.append(res.mean_squared_debiased)
        plain.append(res.mean_squared)
    deb, plain = torch.tensor(deb), torch.tensor(plain)
    assert abs(deb.mean().item() - truth) < 4 * deb.std().item() / math.sqrt(seeds)
    assert plain.mean().item() - truth > 10 * plain.std().item() / math.sqrt(seeds)
    assert res.per_input_debiased.shape == (1, n_inputs)


def test_no_halves_where_draws_are_not_independent_or_the_statistic_is_not_a_mean():
    model = SumSin(torch.ones(4))
    x = torch.rand(3, 4)
    for kw in ({"sampler": "lhs"}, {"statistic": "var"}, {"n_samples": 1}, {"tol": 0.1}):
        assert smoothed_halves(Smooth(VanillaGradient(model), **{"n_samples": 8, **kw}), x, 0) is None
    full, (a, b), sizes = smoothed_halves(Smooth(VanillaGradient(model), n_samples=9), x, 0)
    assert sizes == (4, 5)
    torch.testing.assert_close(full, (4 * a + 5 * b) / 9)
    torch.testing.assert_close(full, Smooth(VanillaGradient(model), n_samples=9).attribute(x, 0))
    assert smoothed_halves(Smooth(VanillaGradient(model), n_samples=8, sampler="antithetic"), x, 0) is not None
    assert smoothed_halves(Smooth(VanillaGradient(model), n_samples=6, sampler="antithetic"), x, 0) is None  # odd half
    res = fidelity_error(VanillaGradient, model, x, targets=0, noise_level=0.1, n_samples=8, statistic="var")
    assert res.per_input_squared_debiased is None and res.mean_squared is not None


def _trained_cnn() -> nn.Module:
    """A tiny ReLU CNN trained for 40 Adam steps to tell bright-left from bright-right 8×8 images."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 16, 2))  # fmt: skip
    x = torch.rand(64, 1, 8, 8, generator=g)
    y = torch.randint(0, 2, (64,), generator=g)
    x[y == 0, :, :, :4] += 0.5
    x[y == 1, :, :, 4:] += 0.5
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(40):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net.eval()


def test_eq13_fidelity_of_ig_vanishes_as_sigma_vanishes_when_raw_and_smoothed_use_the_same_steps():
    net = _trained_cnn()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    raw_ig = build_method("ig", net)  # the registry's raw IG
    raw = raw_ig.attribute(x, 0)
    scale = raw.flatten(1).norm(dim=1).mean().item()

    def fid(level: float, inner: str) -> float:
        smooth = build_method("ig", net, SmoothSpec(noise_level=level, n_samples=8, seed=0), inner=inner)
        return fidelity_from_maps(smooth.attribute(x, 0), raw).mean / scale

    tiny_same, tiny_display = fid(1e-4, "raw"), fid(1e-4, "smoothed")
    assert tiny_same < 1e-3  # eq. 13 -> 0 as σ -> 0: only the O(σ) noise is left
    assert tiny_display > 0.02 and tiny_display > 20 * tiny_same  # the display's 4-point path: its quadrature error
    grows = [fid(level, "raw") for level in (1e-4, 0.05, 0.2)]
    assert grows[0] < grows[1] < grows[2]
    # the library's fidelity_error compares one method with itself: the same 0 limit
    res = fidelity_error(lambda m: IntegratedGradients(m, steps=4), net, x, targets=0, noise_level=1e-4, n_samples=8)
    assert res.mean / scale < 1e-3
