import math

import pytest
import torch

from conftest import Linear, Quadratic, SumSin, small_cnn
from smoothsal.methods.gradient import GradientXInput, VanillaGradient
from smoothsal.smoothing import Smooth, SmoothGrad, smooth


class Spy:
    """Wraps a method and records the batch size of every call."""

    def __init__(self, method):
        self.method = method
        self.model = method.model
        self.rows: list[int] = []
        self.targets: list[torch.Tensor] = []

    def attribute(self, inputs, target=None):
        self.rows.append(inputs.shape[0])
        self.targets.append(torch.as_tensor(target))
        return self.method.attribute(inputs, target)


def test_smoothgrad_of_linear_model_equals_its_gradient():
    w = torch.tensor([[2.0, -1.0, 0.5, 3.0], [1.0, 1.0, 1.0, 1.0]])
    x = torch.rand(3, 4)
    for statistic_noise in (0.0, 0.1, 0.5):
        out = SmoothGrad(Linear(w), noise_level=statistic_noise, n_samples=7).attribute(x, target=0)
        torch.testing.assert_close(out, w[0].expand(3, 4))


def test_zero_noise_equals_base_method():
    model = small_cnn()
    x = torch.rand(2, 3, 8, 8)
    for method in (VanillaGradient(model), GradientXInput(model)):
        torch.testing.assert_close(Smooth(method, noise_level=0.0, n_samples=3).attribute(x), method.attribute(x))


def test_smoothgrad_of_sum_sin_matches_closed_form():
    # ∂/∂x_i Σ sin(w x) = w cos(w x); E over x + N(0, σ²): w cos(w x) exp(-w²σ²/2)
    w = torch.tensor([1.0, 3.0, 6.0, 10.0])
    x = torch.tensor([[0.3, 0.9, 0.5, 0.1]])  # range 0.8
    sg = SmoothGrad(SumSin(w), noise_level=0.25, n_samples=4000, batch_size=512, seed=1)
    est = sg.estimate(x, target=0)
    sigma = 0.25 * 0.8
    truth = w * torch.cos(w * x) * torch.exp(-(w**2) * sigma**2 / 2)
    assert (est.attributions - truth).abs().le(4 * est.stderr + 1e-6).all()
    # the highest frequency is damped by exp(-2) ≈ 0.14, the lowest barely changes
    raw = w * torch.cos(w * x)
    assert est.attributions[0, 3].abs() < 0.25 * raw[0, 3].abs()
    assert (est.attributions[0, 0] - raw[0, 0]).abs() < 0.05


def _quadratic_case():
    a = torch.tensor([[1.0, 2.0, 0.0], [0.0, -1.0, 0.5], [1.5, 0.0, 2.0]])
    s = a + a.T  # gradient = S x, noise in the gradient = S ε σ
    x = torch.tensor([[0.2, -0.4, 0.6]])  # range 1.0
    return Quadratic(a), s, x


@pytest.mark.parametrize("statistic", ["mean", "square", "var"])
def test_smoothgrad_variants_on_quadratic_match_closed_forms(statistic):
    model, s, x = _quadratic_case()
    sigma, n = 0.3, 3000
    est = Smooth(VanillaGradient(model), noise_level=sigma, n_samples=n, statistic=statistic, batch_size=1000).estimate(
        x, target=0
    )
    mean = x @ s.T  # E[S(x+σε)] = S x
    noise_var = sigma**2 * (s**2).sum(dim=1)  # Var[(S σ ε)_i] = σ² Σ_j S_ij²
    truth = {"mean": mean, "square": mean**2 + noise_var, "var": noise_var * (n - 1) / n}[statistic]
    err = (est.attributions - truth).abs()
    assert err.le(4 * est.stderr).all(), (est.attributions, truth, est.stderr)
    if statistic == "mean":  # the reported standard error is the analytic one
        torch.testing.assert_close(est.stderr[0], (noise_var / n).sqrt(), rtol=0.1, atol=0)


def test_same_seed_same_map_whatever_the_batch_size():
    model = small_cnn()
    x = torch.rand(3, 3, 8, 8)
    maps = [
        Smooth(VanillaGradient(model), noise_level=0.2, n_samples=10, batch_size=bs, seed=7).attribute(x, target=1)
        for bs in (1, 4, 7, 64)
    ]
    for m in maps[1:]:
        torch.testing.assert_close(m, maps[0], rtol=1e-5, atol=1e-7)
    # an image's map does not depend on which other images share its batch
    alone = Smooth(VanillaGradient(model), noise_level=0.2, n_samples=10, seed=7).attribute(x[2:3], target=1)
    torch.testing.assert_close(alone, maps[0][2:3], rtol=1e-5, atol=1e-7)


def test_seed_controls_randomness():
    """Bitwise with a fixed batch size; with the automatic one the rows per call change between
    calls (the tuner learns), and a CPU convolution's last bits can depend on its batch size."""
    model = small_cnn()
    x = torch.rand(1, 3, 8, 8)
    sg = lambda seed: Smooth(VanillaGradient(model), noise_level=0.3, n_samples=4, seed=seed, batch_size=2)  # noqa: E731
    assert torch.equal(sg(3).attribute(x), sg(3).attribute(x))
    auto = lambda: Smooth(VanillaGradient(model), noise_level=0.3, n_samples=4, seed=3).attribute(x)  # noqa: E731
    torch.testing.assert_close(auto(), sg(3).attribute(x), rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(auto(), auto(), rtol=1e-5, atol=1e-8)
    assert not torch.equal(sg(3).attribute(x), sg(4).attribute(x))
    gen = torch.Generator().manual_seed(3)
    shared = sg(gen)
    first, second = shared.attribute(x), shared.attribute(x)
    assert torch.equal(first, sg(3).attribute(x)) and not torch.equal(first, second)


def test_memory_does_not_grow_with_n_samples():
    model = small_cnn()
    x = torch.rand(2, 3, 8, 8)
    for n in (10, 500):
        spy = Spy(VanillaGradient(model))
        Smooth(spy, noise_level=0.1, n_samples=n, batch_size=16).attribute(x)
        assert max(spy.rows) <= 16 and sum(spy.rows) == 2 * n
        assert len(spy.rows) == math.ceil(n / 8)


def test_target_is_resolved_once_on_the_clean_input():
    # two nearly tied classes: noise flips the prediction, the explained class must not change
    model = Linear(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    x = torch.tensor([[0.51, 0.49]])
    spy = Spy(VanillaGradient(model))
    Smooth(spy, noise_level=1.0, n_samples=20).attribute(x)
    assert all((t == 0).all() for t in spy.targets)


def test_tolerance_stops_sampling_early():
    w = torch.tensor([[1.0, 2.0, 3.0]])
    exact = Smooth(VanillaGradient(Linear(w)), noise_level=0.3, n_samples=200, tol=0.01, min_samples=8, batch_size=4)
    est = exact.estimate(torch.rand(2, 3), target=0)
    assert est.n_samples.tolist() == [8, 8] and torch.all(est.stderr == 0)
    model, _, x = _quadratic_case()
    loose = Smooth(VanillaGradient(model), noise_level=0.3, n_samples=2000, tol=0.2, batch_size=8).estimate(x, 0)
    strict = Smooth(VanillaGradient(model), noise_level=0.3, n_samples=2000, tol=0.02, batch_size=8).estimate(x, 0)
    assert loose.n_samples.item() < strict.n_samples.item() < 2000
    assert loose.relative_stderr().item() <= 0.2 and strict.relative_stderr().item() <= 0.02


def test_uniform_sampler_and_value_range():
    model, s, x = _quadratic_case()
    est = Smooth(VanillaGradient(model), noise_level=0.3, n_samples=2000, statistic="var", sampler="uniform",
                 value_range=(0.0, 2.0), batch_size=500).estimate(x, target=0)
    noise_var = (0.3 * 2.0) ** 2 * (s**2).sum(dim=1)  # unit-variance uniform noise, σ = 0.3 × 2
    assert (est.attributions[0] - noise_var).abs().le(4 * est.stderr[0]).all()
    sg = Smooth(VanillaGradient(model), noise_level=0.1, value_range=(-1.0, 1.0))
    torch.testing.assert_close(sg.sigma(torch.rand(3, 3)), torch.full((3,), 0.2))


class _Rows:
    """A method whose map is its input: smoothing it gives ``x`` plus the mean of the noise drawn."""

    def attribute(self, rows: torch.Tensor, target=None) -> torch.Tensor:  # noqa: ANN001
        return rows.clone()


def test_smooth_of_a_smooth_averages_over_both_noises_exactly():
    """The quadratic's gradient ``S x`` is linear in ``x``, so ``Smooth(Smooth(gradient))`` is
    ``S (x + d_outer + d_inner)``, ``d`` each level's mean noise offset: measured by smoothing the
    identity map with the same settings (the draws depend only on the seed, n and σ; with a
    ``value_range`` σ is the same for every noisy input the inner level sees)."""
    model, s, x = _quadratic_case()
    inner_kw = {"noise_level": 0.2, "n_samples": 5, "seed": 1, "value_range": (0.0, 1.0)}
    outer_kw = {"noise_level": 0.1, "n_samples": 3, "seed": 2, "value_range": (0.0, 1.0)}
    outer = Smooth(Smooth(VanillaGradient(model), **inner_kw), **outer_kw)
    assert outer.model is model
    d_inner = Smooth(_Rows(), **inner_kw).attribute(x, 0) - x
    d_outer = Smooth(_Rows(), **outer_kw).attribute(x, 0) - x
    assert d_inner.abs().min() > 1e-3 and d_outer.abs().min() > 1e-3  # both levels move the map
    torch.testing.assert_close(outer.attribute(x, 0), (x + d_outer + d_inner) @ s.T)


def test_the_functional_form_is_the_class():
    model = small_cnn()
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(smooth(VanillaGradient(model), x, 0, n_samples=3), Smooth(VanillaGradient(model), n_samples=3).attribute(x, 0))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"noise_level": -0.1}, ValueError, "noise_level"),
        ({"noise_level": float("nan")}, ValueError, "noise_level"),
        ({"n_samples": 0}, ValueError, "n_samples"),
        ({"statistic": "median"}, ValueError, "statistic"),
        ({"sampler": "laplace"}, ValueError, "sampler"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"value_range": (1.0, 0.0)}, ValueError, "value_range"),
        ({"seed": 1.5}, TypeError, "seed"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Smooth(VanillaGradient(small_cnn()), **kwargs)


def test_bad_method_and_inputs():
    with pytest.raises(TypeError, match="method"):
        Smooth(object())
    sg = SmoothGrad(small_cnn(), n_samples=2)
    with pytest.raises(ValueError, match="finite"):
        sg.attribute(torch.full((1, 3, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="target"):
        sg.attribute(torch.rand(1, 3, 8, 8), target=3)


def test_each_image_stops_sampling_on_its_own():
    model, _, _ = _quadratic_case()
    # the same gradient scale, but the second image's value range (so its σ) is 20× larger
    x = torch.tensor([[0.40, 0.45, 0.50], [-1.0, 0.0, 1.0]])
    spy = Spy(VanillaGradient(model))
    est = Smooth(spy, noise_level=0.3, n_samples=3000, tol=0.1, batch_size=16).estimate(x, target=0)
    n0, n1 = est.n_samples.tolist()
    assert n0 < n1 < 3000
    assert (est.relative_stderr() <= 0.1).all()
    # once the first image stops, calls carry only the second one, with more draws per call
    assert sum(spy.rows) == n0 + n1 and max(spy.rows) <= 16


def test_inputs_follow_the_models_device():
    """A model on another device gets its inputs moved there (checked with the meta device)."""
    from smoothsal.execution.devices import model_device, to_model_device

    model = small_cnn()
    x = torch.rand(2, 3, 8, 8)
    assert model_device(model) == torch.device("cpu") and to_model_device(model, x) is x
    meta = small_cnn().to("meta")
    assert to_model_device(meta, x).device.type == "meta"
    assert model_device(torch.nn.ReLU()) is None and to_model_device(torch.nn.ReLU(), x) is x


def test_snapshots_are_the_estimates_of_fewer_samples_of_the_same_draws():
    """estimate(snapshots=...): the map at n equals Smooth(n_samples=n) with the same seed; the final
    map is unchanged; an image that tol stopped before n has NaN there."""
    model = small_cnn()
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    est = Smooth(VanillaGradient(model), noise_level=0.2, n_samples=24, seed=7, batch_size=5).estimate(
        x, target=1, snapshots=(1, 10, 24))
    for n in (1, 10, 24):
        alone = Smooth(VanillaGradient(model), noise_level=0.2, n_samples=n, seed=7).attribute(x, target=1)
        torch.testing.assert_close(est.snapshots[n], alone, rtol=1e-5, atol=1e-7)
    plain = Smooth(VanillaGradient(model), noise_level=0.2, n_samples=24, seed=7, batch_size=5).attribute(x, target=1)
    torch.testing.assert_close(est.attributions, plain, rtol=1e-5, atol=1e-7)
    # with tol: the first (narrow-range) image stops early, the second keeps sampling
    qmodel, _, _ = _quadratic_case()
    xq = torch.tensor([[0.40, 0.45, 0.50], [-1.0, 0.0, 1.0]])
    smooth = Smooth(VanillaGradient(qmodel), noise_level=0.3, n_samples=3000, tol=0.1)
    n0, n1 = smooth.estimate(xq, target=0).n_samples.tolist()
    assert 16 <= n0 < n1
    est = smooth.estimate(xq, target=0, snapshots=(16, n1))
    assert est.n_samples.tolist() == [n0, n1]
    assert torch.isnan(est.snapshots[n1][0]).all()  # stopped at n0 < n1
    torch.testing.assert_close(est.snapshots[n1][1], est.attributions[1])
    assert not torch.isnan(est.snapshots[16]).any()
    with pytest.raises(ValueError, match="snapshots"):
        Smooth(VanillaGradient(model), n_samples=8).estimate(x, 1, snapshots=(9,))
