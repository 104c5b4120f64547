"""The stability–fidelity theory (Ye & Farnia 2025) as tests: the trend rule on constructed series,
Holm's procedure, and the bounds' constants against hand computations and exact references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from smoothsal.metrics.theory import (
    holm,
    norm_products,
    proposition7_bound,
    proposition7_gamma,
    remark4_constants,
    smooth_chain_constants,
    theorem5_bound,
    theorem6_bound,
    theorem6_exponent,
    theorem6_factor,
    trend_test,
)

SIGMAS = [0.0, 0.05, 0.1, 0.15, 0.2]


def _series(slope: list[float], noise: float, seed: int = 0, pairs: int = 4, images: int = 12) -> np.ndarray:
    """[pairs, sigmas, images]: a per-image level, a per-pair offset, the step means ``slope``, noise."""
    rng = np.random.default_rng(seed)
    level = rng.lognormal(0, 0.3, (1, 1, images))
    pair = rng.normal(0, 0.1, (pairs, 1, 1))
    trend = np.cumsum([0.0, *slope])[None, :, None]
    return level + pair + trend + rng.normal(0, noise, (pairs, len(slope) + 1, images))


def test_trend_verdicts_on_constructed_series():
    down = trend_test(_series([-0.1] * 4, 0.02), SIGMAS, claim="non_increasing")
    assert down.verdict == "agrees", down.reason
    assert down.resampled == "pairs × images (crossed)" and len(down.steps) == 4
    assert down.endpoint["difference"] == pytest.approx(-0.4, abs=0.03) and down.endpoint["high"] < 0
    flat = trend_test(_series([0.0] * 4, 0.02), SIGMAS, claim="non_increasing")
    assert flat.verdict == "inconclusive", flat.reason
    up = trend_test(_series([0.1] * 4, 0.02), SIGMAS, claim="non_increasing")
    assert up.verdict == "disagrees" and all(s["against"] for s in up.steps), up.reason
    noisy = trend_test(_series([-0.01] * 4, 0.5), SIGMAS, claim="non_increasing")
    assert noisy.verdict == "inconclusive", noisy.reason
    # a clear fall, then one clear rise: the rise refutes "non-increasing" whatever the end-to-end fall
    kink = trend_test(_series([-0.3, -0.3, -0.3, 0.15], 0.02), SIGMAS, claim="non_increasing")
    assert kink.verdict == "disagrees" and [s["against"] for s in kink.steps] == [False, False, False, True]
    assert kink.endpoint["difference"] < 0
    # the fidelity claim is the mirror image
    assert trend_test(_series([0.1] * 4, 0.02), SIGMAS, claim="non_decreasing").verdict == "agrees"
    assert trend_test(_series([-0.1] * 4, 0.02), SIGMAS, claim="non_decreasing").verdict == "disagrees"


def test_trend_units_order_and_too_few():
    x = _series([-0.1] * 4, 0.02)
    shuffled = [4, 0, 3, 1, 2]  # any column order: sorted by σ first
    same = trend_test(x[:, shuffled], [SIGMAS[i] for i in shuffled], claim="non_increasing")
    assert same.verdict == "agrees" and same.noise_levels == tuple(SIGMAS)
    per_pair = x.mean(axis=2)  # [pairs, sigmas]: the pairs are the units
    assert trend_test(per_pair, SIGMAS, claim="non_increasing").resampled == "pairs"
    few = trend_test(per_pair[:3], SIGMAS, claim="non_increasing")
    assert few.verdict == "inconclusive" and "too few" in few.reason
    one = trend_test(x[:1], SIGMAS, claim="non_increasing")  # one pair: its images are the units
    assert one.resampled == "images" and one.verdict == "agrees"
    with pytest.raises(ValueError, match="claim"):
        trend_test(x, SIGMAS, claim="decreasing")
    with pytest.raises(ValueError, match="noise_levels"):
        trend_test(x, SIGMAS[:4], claim="non_increasing")


def test_holm_by_hand():
    rejected, adjusted = holm([0.01, 0.04, 0.03, 0.2], alpha=0.05)
    # sorted 0.01·4 = 0.04 (reject), 0.03·3 = 0.09 (stop): only the first
    assert rejected == [True, False, False, False]
    assert adjusted == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([0.001, 0.002], alpha=0.05)[0] == [True, True]


def test_norm_products_and_bounds_by_hand():
    p = norm_products([2.0, 3.0, 5.0])
    assert p.alpha0 == (2.0, 6.0, 30.0) and p.alpha1 == (1.0, 5.0, 31.0)
    gamma = proposition7_gamma([2.0, 3.0, 5.0])
    assert gamma == 30.0 * (2.0 + 6.0)  # α_{3,0} (α_{1,0} + α_{2,0})
    assert proposition7_gamma([2.0, 3.0, 5.0], smoothness=0.25) == gamma / 4
    assert proposition7_bound(gamma, 0.1, 100) == pytest.approx(gamma * 0.1 * 10)
    assert proposition7_bound(gamma, 0.1, 100, method="integrated_gradients", input_norm=2.0) == pytest.approx(
        gamma * 7 * 0.1 * 10)
    lip, beta = remark4_constants([2.0, 3.0, 5.0], input_norm=2.0)
    assert (lip, beta) == (31.0 * 2.0, 10 * 31.0**2 * 4.0)
    # Theorem 5 by hand: βc = 1, so exponents 1/2 and 1/2
    up = theorem5_bound([2.0, 3.0], input_norm=1.0, lipschitz=4.0, beta=1.0, c=1.0, steps=100, n_train=11)
    gamma5 = math.sqrt(2 * 6.0 * 1.0 * 1.0) * math.sqrt(2 * 6.0)  # α_{1,1} = 1, C = 1
    assert up == pytest.approx((1 + 1) / 10 * math.sqrt(2 * 4.0) * math.sqrt(100) * gamma5)
    # Theorem 6: the σ-exponent is -1/(βc+1), in (-1, 0), and the factor scales with it
    assert theorem6_exponent(1.0, 1.0) == -0.5 and -1 < theorem6_exponent(3000.0, 0.1) < 0
    f1 = theorem6_factor([2.0, 3.0], 0.1, beta=1.0, c=1.0)
    assert f1 == pytest.approx((5.0 / (2 * 0.1 * 6.0 * 1.0)) ** 0.5)  # α_{2,1} = 5
    assert theorem6_factor([2.0, 3.0], 0.2, beta=1.0, c=1.0) / f1 == pytest.approx(2 ** -0.5)
    assert theorem6_bound([2.0, 3.0], 0.1, input_norm=1.0, lipschitz=4.0, beta=1.0, c=1.0, steps=100,
                          n_train=11) == pytest.approx(up * f1)  # fmt: skip
    with pytest.raises(ValueError, match="norms"):
        norm_products([1.0, -2.0])


def test_chain_constants_read_the_layer_norms():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Softplus(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 3))
    k = smooth_chain_constants(mlp, (3, 4))
    want = [float(torch.linalg.matrix_norm(m.weight.detach().double(), ord=2)) for m in mlp if isinstance(m, nn.Linear)]
    assert k.norms == pytest.approx(want) and k.dim == 12
    assert k.smoothness == pytest.approx(4 / (3 * math.sqrt(3)))  # tanh's, larger than softplus's 1/4
    # a convolution's norm by power iteration equals the exact one (its matrix built column by column)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    cnn = nn.Sequential(conv, nn.Softplus(), nn.Flatten(), nn.Linear(3 * 25, 2))
    k = smooth_chain_constants(cnn, (2, 5, 5))
    basis = torch.eye(50, dtype=torch.float64).reshape(50, 2, 5, 5)
    matrix = nn.functional.conv2d(basis, conv.weight.detach().double(), None, padding=1).reshape(50, -1).T
    assert k.norms[0] == pytest.approx(float(torch.linalg.matrix_norm(matrix, ord=2)), rel=1e-5)
    with pytest.raises(ValueError, match="ReLU"):
        smooth_chain_constants(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), (4,))


def test_proposition7_bound_holds_on_a_softplus_network():
    # the measured fidelity of SmoothGrad (many draws, so its Monte-Carlo error is small) is below γσ√m,
    # and γ is at least every measured Lipschitz ratio of the gradient
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(10, 16), nn.Softplus(), nn.Linear(16, 16), nn.Softplus(), nn.Linear(16, 1)).double()
    k = smooth_chain_constants(net, (10,))

    def grad(x: torch.Tensor) -> torch.Tensor:
        x = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(net(x).sum(), x)
        return g

    x = torch.randn(64, 10, dtype=torch.float64)
    xp = x + 0.3 * torch.randn_like(x)
    ratios = (grad(x) - grad(xp)).norm(dim=1) / (x - xp).norm(dim=1)
    assert float(ratios.max()) <= k.gamma
    sigma = 0.5
    z = sigma * torch.randn(4000, 10, dtype=torch.float64)
    for x0 in x[:4]:
        smooth = grad(x0 + z).mean(dim=0)
        measured = float((smooth - grad(x0[None])[0]).norm())
        assert measured <= proposition7_bound(k.gamma, sigma, 10)


def test_proposition7_gamma_is_tight_on_a_one_unit_softplus_network():
    # f(x) = 2·softplus(3x): f'' = 2·9·sigmoid'(3x), largest at x = 0: 18/4 = 4.5 = s·B1·B2·B1 = γ exactly
    net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.Softplus(), nn.Linear(1, 1, bias=False)).double()
    with torch.no_grad():
        net[0].weight.fill_(3.0)
        net[2].weight.fill_(2.0)
    k = smooth_chain_constants(net, (1,))
    assert k.gamma == pytest.approx(4.5)
    x = torch.tensor([[-1e-4], [1e-4]], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(net(x).sum(), x)
    assert float((g[1] - g[0]) / 2e-4) == pytest.approx(k.gamma, rel=1e-6)
