"""Weight noise in Smooth: NoiseGrad and FusionGrad (Bykov et al. 2022), checked against closed forms."""

import copy

import pytest
import torch
from torch import nn

from conftest import Linear
from smoothsal.methods.gradient import VanillaGradient
from smoothsal.methods.guided_backprop import GuidedBackprop
from smoothsal.methods.integrated_gradients import IntegratedGradients
from smoothsal.smoothing import Smooth
from smoothsal.smoothing_spec import SmoothSpec
from smoothsal.weight_noise import WeightNoise, weight_generator


def _bn_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3),
    )  # fmt: skip
    with torch.no_grad():  # running statistics that are not the identity
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


def _state(model: nn.Module) -> list[tuple[str, int, torch.Tensor, int, bool]]:
    return [
        (name, id(t), t.detach().clone(), t._version, t.requires_grad)
        for name, t in (*model.named_parameters(), *model.named_buffers())
    ]


def test_noisegrad_of_a_linear_model_converges_to_its_weights_with_the_reported_error():
    # grad_x of (W ⊙ (1+η)) x + b for class c is W[c] ⊙ (1+η[c]): mean W[c], sd σ_w |W[c]| per draw
    torch.manual_seed(0)
    w = torch.randn(3, 40)
    model = Linear(w, torch.randn(3))
    sigma_w, n = 0.3, 400
    est = Smooth(VanillaGradient(model), noise_level=0.0, weight_noise=sigma_w, n_samples=n, seed=3).estimate(
        torch.rand(2, 40), target=1
    )
    expected_se = sigma_w * w[1].abs() / n**0.5
    ratio = est.stderr / expected_se  # [2, 40]: the reported SE against the analytic one
    assert 0.9 < float(ratio.median()) < 1.1
    assert float(ratio.min()) > 0.75 and float(ratio.max()) < 1.3
    z = (est.attributions - w[1]) / expected_se
    assert float(z.abs().max()) < 4.5
    assert 0.6 < float((z**2).mean()) < 1.5  # the errors are as large as the SE says, not smaller
    assert est.n_samples.tolist() == [n, n]


def test_the_map_is_the_average_over_perturbed_copies_drawn_from_the_weight_stream():
    # an independent implementation: deep copies with θ ⊙ (1 + η_j), the same η_j stream; the conv
    # has a BatchNorm after it (a folded copy would hold the unperturbed weights and fail this)
    model = _bn_model()
    x = torch.rand(2, 3, 6, 6)
    sigma_w, sigma_in, n = 0.25, 0.1, 5
    sm = Smooth(VanillaGradient(model), noise_level=sigma_in, weight_noise=sigma_w, n_samples=n, seed=7,
                weight_noise_layers=["0", "5"])  # fmt: skip
    got = sm.attribute(x, target=2)
    gen = weight_generator(7)
    inputs_gen = torch.Generator().manual_seed(7)
    span = (x.flatten(1).max(1).values - x.flatten(1).min(1).values).view(-1, 1, 1, 1)
    names = WeightNoise(model, sigma_w, ["0", "5"]).names
    assert names == ("0.weight", "0.bias", "5.weight", "5.bias")
    total = torch.zeros_like(x)
    for _ in range(n):
        twin = copy.deepcopy(model)
        params = dict(twin.named_parameters())
        with torch.no_grad():
            for name in names:
                p = params[name]
                p.mul_(1 + sigma_w * torch.randn(p.shape, generator=gen))
        eps = torch.randn(x.shape[1:], generator=inputs_gen)
        xi = (x + sigma_in * span * eps).requires_grad_(True)
        (g,) = torch.autograd.grad(twin(xi)[:, 2].sum(), xi)
        total += g
    torch.testing.assert_close(got, total / n, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", [VanillaGradient, GuidedBackprop, lambda m: IntegratedGradients(m, steps=4)])
def test_the_model_is_bit_identical_afterwards(method):
    model = _bn_model()
    model.train()  # a training-mode model: explained in eval mode, handed back in training mode
    before = _state(model)
    sm = Smooth(method(model), noise_level=0.1, weight_noise=0.3, n_samples=6, batch_size=3)
    with pytest.warns(UserWarning, match="training mode"):
        sm.attribute(torch.rand(2, 3, 6, 6), target=0)
    after = _state(model)
    assert model.training and all(m.training for m in model.modules())
    assert [a[:2] for a in after] == [b[:2] for b in before]  # the same tensors in the same places
    for (_, _, t0, v0, g0), (_, _, t1, v1, g1) in zip(before, after):
        assert torch.equal(t0, t1) and v0 == v1 and g0 == g1  # bit for bit, never written
    assert all(type(p) is nn.Parameter for p in model.parameters())


def test_the_model_is_restored_when_the_method_raises():
    model = _bn_model()
    before = _state(model)

    class Failing(VanillaGradient):
        def attribute(self, inputs, target=None):  # noqa: ANN001
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        Smooth(Failing(model), weight_noise=0.2, n_samples=2).attribute(torch.rand(1, 3, 6, 6), target=0)
    assert [a[:2] for a in _state(model)] == [b[:2] for b in before]
    assert all(torch.equal(a[2], b[2]) for a, b in zip(_state(model), before))


@pytest.mark.parametrize("noise_level", [0.0, 0.15])
def test_same_seed_same_map_whatever_the_batch_size(noise_level):
    model = _bn_model(1)
    x = torch.rand(3, 3, 6, 6)
    maps = [
        Smooth(VanillaGradient(model), noise_level=noise_level, weight_noise=0.2, n_samples=6, seed=4,
               batch_size=bs).attribute(x, target=1)  # fmt: skip
        for bs in (1, 2, 7)
    ]
    for m in maps[1:]:
        torch.testing.assert_close(m, maps[0], rtol=1e-5, atol=1e-7)
    alone = Smooth(VanillaGradient(model), noise_level=noise_level, weight_noise=0.2, n_samples=6, seed=4).attribute(
        x[1:2], target=1
    )
    torch.testing.assert_close(alone, maps[0][1:2], rtol=1e-5, atol=1e-7)  # not the other images either


def test_weight_noise_changes_the_map_and_tol_stops_by_the_reported_error():
    torch.manual_seed(1)
    model = Linear(torch.randn(3, 20))
    x = torch.rand(1, 20)
    plain = VanillaGradient(model).attribute(x, target=0)
    sm = Smooth(VanillaGradient(model), noise_level=0.0, weight_noise=0.5, n_samples=400, tol=0.05, min_samples=16)
    est = sm.estimate(x, target=0)
    assert 16 <= int(est.n_samples) < 400  # 0.5/sqrt(n) <= 0.05 near n = 100
    assert float(est.relative_stderr()) <= 0.05
    assert not torch.equal(est.attributions, plain)


def test_var_statistic_is_the_variance_of_the_weight_noise():
    # VarGrad of the linear model under weight noise: Var = σ_w² W[c]²
    torch.manual_seed(2)
    w = torch.randn(3, 30)
    model = Linear(w)
    est = Smooth(VanillaGradient(model), noise_level=0.0, weight_noise=0.2, statistic="var", n_samples=800).estimate(
        torch.rand(1, 30), target=2
    )
    truth = (0.2 * w[2]) ** 2
    z = (est.attributions[0] - truth) / est.stderr[0]
    assert float(z.abs().max()) < 4.5
    torch.testing.assert_close(est.attributions[0].sum(), truth.sum(), rtol=0.12, atol=0)


def test_spec_round_trip_and_the_noise_kind():
    spec = SmoothSpec(noise_level=0.1, weight_noise=0.2, weight_noise_layers=["fc"], n_samples=8)
    assert spec.weight_noise_layers == ("fc",) and spec.noise_kind == "both"
    assert SmoothSpec.from_dict(spec.to_dict()) == spec
    assert "weight_noise" not in SmoothSpec().to_dict()  # input-noise specs keep their old JSON
    assert SmoothSpec(noise_level=0.0, weight_noise=0.1).noise_kind == "weights"
    assert SmoothSpec().noise_kind == "input"
    model = Linear(torch.randn(2, 4))
    sm = Smooth.from_spec(VanillaGradient(model), SmoothSpec(noise_level=0.0, weight_noise=0.3, n_samples=4))
    assert sm.weight_noise == 0.3 and Smooth.from_spec(sm.method, sm.spec).spec == sm.spec


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"weight_noise": -0.1}, ValueError, "weight_noise"),
        ({"weight_noise": 0.1, "weight_noise_layers": ["nope"]}, ValueError, "not modules of the model"),
        ({"weight_noise": 0.1, "weight_noise_layers": "fc"}, ValueError, r"\['fc'\]"),  # one string: one name
        ({"weight_noise": 0.1, "weight_noise_layers": [3]}, TypeError, "weight_noise_layers"),
    ],
)
def test_bad_weight_noise_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Smooth(VanillaGradient(Linear(torch.randn(2, 4))), **kwargs)


def test_tied_weights_share_one_draw():
    lin = nn.Linear(4, 4, bias=False)
    model = nn.Sequential(lin, nn.Tanh(), lin)
    noise = WeightNoise(model, 0.1)
    assert noise.names == ("0.weight",)
    assert len(noise._slots[0]) == 1  # the same module twice is one entry


def test_labels_name_the_noise():
    from smoothsal.registry import method_label

    assert method_label("grad", smooth=SmoothSpec(noise_level=0.15)) == "SmoothGrad (input 15 %)"
    assert method_label("grad", smooth=SmoothSpec(noise_level=0.0, weight_noise=0.2)) == "NoiseGrad (weights 20 %)"
    both = SmoothSpec(noise_level=0.1, weight_noise=0.2, weight_noise_layers=("fc",))
    assert method_label("ig", smooth=both) == "FusionGrad Integrated Gradients (input 10 %, weights 20 % of fc)"
    assert method_label("grad", smoothed=True) == "SmoothGrad"  # without a spec: the registered label


def test_explain_takes_weight_noise_into_its_maps_and_hash():
    from smoothsal.studies.explain.config import ExplainConfig

    config = ExplainConfig(images=("chelsea",), weight_noise=0.2, noise_level=0.0)
    assert config.smooth_spec(3).weight_noise == 0.2 and config.smooth_spec(3).noise_kind == "weights"
    assert config.to_hash(0)["weight_noise"] == 0.2
    assert "weight_noise" not in ExplainConfig(images=("chelsea",)).to_hash(0)  # old stores keep their hash
    with pytest.raises(ValueError, match="weight_noise"):
        ExplainConfig(images=("chelsea",), weight_noise=-1.0)


def test_tradeoff_takes_weight_noise_and_smooths_its_zero_row():
    from conftest import small_cnn
    from smoothsal.studies.tradeoff.compute import curve_rows
    from smoothsal.studies.tradeoff.config import TradeoffConfig

    config = TradeoffConfig.preset("quick", weight_noise=0.2)
    assert config.to_hash(0)["weight_noise"] == 0.2
    assert "weight_noise" not in TradeoffConfig.preset("quick").to_hash(0)  # old stores keep their hash
    with pytest.raises(ValueError, match="weight_noise"):
        TradeoffConfig.preset("quick", weight_noise=-0.1)
    models = [small_cnn(seed=s) for s in (0, 1)]
    x = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(0))  # SSIM needs 11 px
    targets = torch.tensor([0, 1, 2])
    rows = dict(curve_rows("grad", models, ["a", "b"], x, targets, [0.0], smooth=SmoothSpec(n_samples=4, weight_noise=0.3)))
    plain = dict(curve_rows("grad", models, ["a", "b"], x, targets, [0.0], smooth=SmoothSpec(n_samples=4)))
    assert plain[0.0]["fidelity_mean"] == 0.0 and plain[0.0]["n_samples"] == 0  # σ = 0 without weight noise: the raw map
    assert rows[0.0]["fidelity_mean"] > 0.0 and rows[0.0]["n_samples"] == 4  # with it: NoiseGrad


def test_memory_holds_one_weight_draw_at_a_time(monkeypatch):
    # each draw's perturbed parameters must be freed before the next draw is made
    import gc
    import weakref

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    alive_at_draw, earlier = [], []
    original = WeightNoise.draw

    def spying_draw(self, generator):
        gc.collect()
        alive_at_draw.append(sum(r() is not None for r in earlier))
        values = original(self, generator)
        earlier.extend(weakref.ref(v) for v in values)
        return values

    monkeypatch.setattr(WeightNoise, "draw", spying_draw)
    Smooth(VanillaGradient(model), noise_level=0.1, weight_noise=0.2, n_samples=5, batch_size=2).attribute(
        torch.rand(3, 3, 16, 16), target=0
    )
    assert len(alive_at_draw) == 5 and max(alive_at_draw) == 0
