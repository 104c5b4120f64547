"""Variance-reduced noise samplers (antithetic, Latin hypercube): moments, structure, batch
invariance inside Smooth, and smaller error than Gaussian on models with closed-form SmoothGrad."""

from __future__ import annotations

import pytest
import torch
from conftest import Quadratic, small_cnn
from torch import nn

from smoothsal import Smooth, VanillaGradient
from smoothsal.noise import (
    SAMPLERS,
    LatinHypercubeStream,
    NoiseStream,
    make_generator,
    noise_stream,
    standard_sampler,
)

CPU = torch.device("cpu")
STREAMS = ("gaussian", "uniform", "antithetic", "lhs")


def _draws(name: str, n: int, shape: tuple[int, ...], seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    s = noise_stream(name, n, shape, make_generator(seed), CPU, dtype)
    return torch.stack([s.next() for _ in range(n)])


class Cubic(nn.Module):
    """Two logits: [Σ x_i³/3, 0]; ∂f_0/∂x_i = x_i², SmoothGrad E[(x_i + σε)²] = x_i² + σ²."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x**3 / 3).sum(dim=1)
        return torch.stack([s, torch.zeros_like(s)], dim=1)


@pytest.mark.parametrize("name", STREAMS)
def test_zero_mean_unit_variance(name):
    eps = _draws(name, 64, (2000,))  # 128,000 values
    assert eps.shape == (64, 2000)
    assert abs(float(eps.mean())) < 0.02
    assert abs(float(eps.var()) - 1.0) < 0.03
    if name != "uniform":
        assert abs(float((eps**4).mean()) - 3.0) < 0.15  # Gaussian kurtosis


@pytest.mark.parametrize("name", ["antithetic", "lhs"])
def test_each_draw_is_standard_normal(name):
    # draw j alone (over 20,000 coordinates) is N(0, 1): check its quantiles
    eps = _draws(name, 5, (20000,), seed=3)
    for j in range(5):
        u = torch.special.ndtr(eps[j])
        hist = torch.histc(u, bins=10, min=0.0, max=1.0) / u.numel()
        assert float((hist - 0.1).abs().max()) < 0.012


def test_antithetic_pairs_are_exact_negatives():
    eps = _draws("antithetic", 10, (7, 3), dtype=torch.float32)
    assert torch.equal(eps[1::2], -eps[0::2])
    assert not torch.equal(eps[0], eps[2])
    odd = _draws("antithetic", 5, (4,))  # odd n: the last draw is unpaired
    assert torch.equal(odd[3], -odd[2]) and not torch.equal(odd[4], -odd[3])


@pytest.mark.parametrize("n", [1, 2, 7, 16, 37, 100])
def test_lhs_hits_each_stratum_once(n):
    s = LatinHypercubeStream().start(n, (300,), make_generator(n), CPU, torch.float64)
    for block in range(2):  # draws past n_total start a fresh hypercube
        u = torch.special.ndtr(torch.stack([s.next() for _ in range(n)]))  # [n, 300]
        strata = (u * n).floor().sort(dim=0).values
        assert torch.equal(strata, torch.arange(n, dtype=torch.float64).unsqueeze(1).expand(n, 300))


def test_lhs_orders_are_independent_between_coordinates():
    """Each coordinate visits its 16 strata in its own order (a keyed permutation and shift): no two
    of 500 coordinates share an order (two independent random orders of 16 agree with probability
    1/16! ≈ 5e-14; a shared key would make them cyclic shifts of one order, at most 16 distinct),
    and the orders of neighbouring coordinates are uncorrelated: the Spearman correlation of two
    independent random permutations of n = 16 has mean 0 and variance 1/(n − 1)."""
    u = torch.special.ndtr(_draws("lhs", 16, (500,)))
    ranks = u.argsort(dim=0).argsort(dim=0).double()  # [16, 500]: the rank of each draw, per coordinate
    assert torch.unique(ranks.T, dim=0).shape[0] == 500
    centred = ranks - ranks.mean(dim=0)
    rho = (centred[:, :-1] * centred[:, 1:]).sum(dim=0) / (centred[:, 0] ** 2).sum()  # [499] neighbour pairs
    se = (1 / 15 / 499) ** 0.5
    assert abs(float(rho.mean())) < 4 * se, float(rho.mean())
    assert abs(float(rho.var()) - 1 / 15) < 0.25 / 15, float(rho.var())  # its spread is that of random orders


def test_lhs_memory_does_not_grow_with_n():
    s = LatinHypercubeStream().start(100000, (3, 8, 8), make_generator(0), CPU, torch.float32)
    s.next()
    state = [v for v in vars(s).values() if isinstance(v, torch.Tensor)]
    assert sum(t.numel() for t in state) <= 2 * 3 * 8 * 8


def test_same_seed_same_draws_and_seed_matters():
    for name in STREAMS:
        assert torch.equal(_draws(name, 6, (5,), seed=1), _draws(name, 6, (5,), seed=1))
        assert not torch.equal(_draws(name, 6, (5,), seed=1), _draws(name, 6, (5,), seed=2))


def test_protocol_names_and_callables():
    assert set(STREAMS) <= set(SAMPLERS)
    assert standard_sampler("gaussian") is SAMPLERS["gaussian"]
    with pytest.raises(ValueError, match="stream"):
        standard_sampler("lhs")
    with pytest.raises(ValueError, match="sampler"):
        noise_stream("laplace", 4, (2,), make_generator(0), CPU, torch.float32)

    def ones(shape, gen, device, dtype):
        return torch.ones(shape, device=device, dtype=dtype)

    s = noise_stream(ones, 3, (2,), make_generator(0), CPU, torch.float32)
    assert torch.equal(s.next(), torch.ones(2))

    class Halves(NoiseStream):
        def next(self):
            return torch.full(self.shape, 0.5, dtype=self.dtype)

    model = nn.Linear(3, 2).eval()
    out = Smooth(VanillaGradient(model), n_samples=4, sampler=Halves, value_range=(0, 1)).attribute(
        torch.rand(2, 3), target=0
    )
    assert torch.allclose(out, model.weight[0].detach().expand(2, 3))


@pytest.mark.parametrize("name", ["antithetic", "lhs", "gaussian"])
def test_map_does_not_depend_on_batch_size(name):
    torch.manual_seed(0)
    model = small_cnn()
    x = torch.rand(2, 3, 8, 8)
    maps = [
        Smooth(VanillaGradient(model), n_samples=11, sampler=name, batch_size=b, seed=5).attribute(x, target=1)
        for b in (1, 3, None)
    ]
    for m in maps[1:]:
        torch.testing.assert_close(m, maps[0], rtol=1e-5, atol=1e-7)
    # an image's map does not depend on which images share its batch
    alone = Smooth(VanillaGradient(model), n_samples=11, sampler=name, batch_size=3, seed=5).attribute(
        x[1:], target=1
    )
    torch.testing.assert_close(alone[0], maps[0][1], rtol=1e-5, atol=1e-7)


def _smoothgrad(model, x, name, n, sigma, seed):
    return Smooth(
        VanillaGradient(model), noise_level=sigma, n_samples=n, sampler=name, value_range=(0.0, 1.0), seed=seed,
        batch_size=n,
    ).attribute(x, target=0)


def test_quadratic_antithetic_is_exact():
    # gradient (A + Aᵀ) x is linear: its smoothed value is the gradient; antithetic pairs cancel exactly
    torch.manual_seed(0)
    d = 40
    a = torch.randn(d, d, dtype=torch.float64)
    model = Quadratic(a).double()
    x = torch.randn(3, d, dtype=torch.float64)
    exact = x @ (a + a.T).T
    errs = {}
    for name in ("gaussian", "antithetic", "lhs"):
        errs[name] = torch.stack([
            (_smoothgrad(model, x, name, 16, 0.5, seed) - exact).norm() / exact.norm() for seed in range(8)
        ]).mean()
    assert errs["antithetic"] < 1e-12
    assert errs["gaussian"] > 0.05
    assert errs["lhs"] < 0.25 * errs["gaussian"]  # stratified mean(ε): ~0.14× at n = 16 (tail strata)


def test_cubic_closed_form_errors():
    # ∂f/∂x_i = x_i², SmoothGrad = x² + σ². Gaussian error 2σx·mean(ε) + σ²(mean(ε²) − 1);
    # antithetic: the odd term cancels, error = σ²(mean over the distinct ε of ε² − 1) exactly.
    d, n, sigma = 50, 16, 0.4
    x = torch.linspace(-2, 2, d, dtype=torch.float64).unsqueeze(0)
    exact = x**2 + sigma**2
    model = Cubic().eval()
    errs = {name: [] for name in ("gaussian", "antithetic", "lhs")}
    for seed in range(8):
        for name, values in errs.items():
            values.append(float((_smoothgrad(model, x, name, n, sigma, seed) - exact).norm()))
        eps = _draws("antithetic", n, (d,), seed=seed)[0::2]
        predicted = sigma**2 * ((eps**2).mean(0) - 1.0)
        got = _smoothgrad(model, x, "antithetic", n, sigma, seed) - exact
        torch.testing.assert_close(got[0], predicted, rtol=1e-9, atol=1e-12)
    mean = {k: sum(v) / len(v) for k, v in errs.items()}
    assert mean["antithetic"] < 0.5 * mean["gaussian"]
    assert mean["lhs"] < 0.3 * mean["gaussian"]


def test_tol_keeps_antithetic_pairs_complete():
    torch.manual_seed(0)
    model = Quadratic(torch.randn(6, 6))
    x = torch.randn(2, 6)
    est = Smooth(
        VanillaGradient(model), n_samples=64, sampler="antithetic", tol=1.0, min_samples=4, seed=0
    ).estimate(x, target=0)
    assert (est.n_samples % 2 == 0).all() and (est.n_samples < 64).all()


@pytest.mark.parametrize("sampler", ["antithetic", "lhs"])
def test_dependent_samplers_only_for_the_mean(sampler):
    """Their draws are dependent, so the standard error of SmoothGrad² / VarGrad would be wrong."""
    model = torch.nn.Linear(4, 2)
    Smooth(VanillaGradient(model), sampler=sampler, statistic="mean")  # allowed
    for statistic in ("square", "var"):
        with pytest.raises(ValueError, match="dependent samples"):
            Smooth(VanillaGradient(model), sampler=sampler, statistic=statistic)
