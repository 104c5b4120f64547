"""Tests for smoothsal.methods.integrated_gradients: closed forms, completeness, batching, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from smoothsal.methods.baselines import gaussian_blur, make_baseline
from smoothsal.methods.integrated_gradients import RULES, IntegratedGradients, integrated_gradients, quadrature

RIEMANN = [r for r in RULES if r.startswith("riemann")]


def _linear(weight: torch.Tensor, bias: torch.Tensor | None = None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer.eval()


class FiveXYSquaredSinZ(nn.Module):
    """One logit ``5 x + y^2 + sin z`` (the PAIR saliency test function): IG from 0 is ``(5x, y^2, sin z)``."""

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return (5 * v[:, 0] + v[:, 1] ** 2 + torch.sin(v[:, 2]))[:, None]


def _smooth_net() -> nn.Module:
    """A small float64 tanh/softplus MLP, curved enough that quadrature error is visible."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Softplus(), nn.Linear(16, 3))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(2.0)
    return net.double().eval()


def _smooth_inputs() -> torch.Tensor:
    return torch.rand(5, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1


def test_quadrature_weights_sum_to_one_and_nodes_lie_in_unit_interval():
    for rule in RULES:
        for steps in (2, 5, 17):
            alphas, weights = quadrature(steps, rule)
            assert alphas.shape == weights.shape == (steps,)
            assert math.isclose(float(weights.sum()), 1.0, rel_tol=1e-12)
            assert 0.0 <= float(alphas.min()) and float(alphas.max()) <= 1.0
    assert quadrature(4, "riemann_right")[0].tolist() == [0.25, 0.5, 0.75, 1.0]
    assert quadrature(4, "riemann_left")[0].tolist() == [0.0, 0.25, 0.5, 0.75]
    assert quadrature(1, "gausslegendre")[0].tolist() == [0.5]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("steps", [2, 7])
def test_linear_model_is_integrated_exactly(rule, steps):
    w = torch.tensor([[2.0, -1.0, 0.5], [0.3, 0.0, -4.0]])
    model = _linear(w, torch.tensor([0.1, -0.2]))
    x = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]])
    x0 = torch.tensor([0.5, -0.5, 1.0])
    attr = IntegratedGradients(model, steps=steps, baseline=x0, rule=rule).attribute(x, target=[0, 1])
    torch.testing.assert_close(attr, torch.stack([w[0], w[1]]) * (x - x0))


def test_closed_form_5x_ysquared_sinz():
    x = torch.tensor([[0.5, -1.5, 1.2], [2.0, 0.7, -2.5]], dtype=torch.float64)
    expected = torch.stack([5 * x[:, 0], x[:, 1] ** 2, torch.sin(x[:, 2])], dim=1)
    attr = IntegratedGradients(FiveXYSquaredSinZ().eval(), steps=10).attribute(x, target=0)
    torch.testing.assert_close(attr, expected, atol=1e-12, rtol=0)
    # the y^2 term has a linear integrand: midpoint and trapezoid are exact for it, left/right are not
    y = x[:, 1]
    for rule, err in [("riemann_middle", 0 * y), ("riemann_trapezoid", 0 * y), ("riemann_right", y**2 / 4)]:
        attr_y = IntegratedGradients(FiveXYSquaredSinZ().eval(), steps=4, rule=rule).attribute(x, target=0)[:, 1]
        torch.testing.assert_close(attr_y - y**2, err, atol=1e-12, rtol=0)


def test_completeness_gap_shrinks_with_steps_at_each_rules_order():
    net, x = _smooth_net(), _smooth_inputs()
    gaps = {
        rule: [float(IntegratedGradients(net, steps=s, rule=rule).attribute_with_delta(x, 0)[1].absolute.mean()) for s in (2, 4, 8, 16)]
        for rule in RULES
    }
    for rule, g in gaps.items():
        assert g[0] > g[1] > g[2] > 0, (rule, g)
    # first-order rules halve the gap per doubling, second-order rules quarter it
    for rule in ("riemann_left", "riemann_right"):
        assert 0.35 < gaps[rule][3] / gaps[rule][2] < 0.65, (rule, gaps[rule])
    for rule in ("riemann_middle", "riemann_trapezoid"):
        assert 0.15 < gaps[rule][3] / gaps[rule][2] < 0.35, (rule, gaps[rule])
    assert gaps["gausslegendre"][2] < 1e-8 and gaps["gausslegendre"][3] < 1e-12


@pytest.mark.parametrize("steps", [2, 4, 8])
def test_gauss_legendre_beats_every_riemann_rule_at_equal_steps(steps):
    net, x = _smooth_net(), _smooth_inputs()
    gl = IntegratedGradients(net, steps=steps, rule="gausslegendre").attribute_with_delta(x, 0)[1].absolute.mean()
    for rule in RIEMANN:
        assert gl < IntegratedGradients(net, steps=steps, rule=rule).attribute_with_delta(x, 0)[1].absolute.mean(), rule


def test_gap_matches_the_definition():
    net, x = _smooth_net(), _smooth_inputs()
    ig = IntegratedGradients(net, steps=3, rule="riemann_left", baseline=0.2)
    attr, delta = ig.attribute_with_delta(x, target=[0, 1, 2, 0, 1])
    gap = delta.absolute
    t = torch.tensor([0, 1, 2, 0, 1])
    with torch.no_grad():
        delta_f = net(x)[torch.arange(5), t] - net(torch.full_like(x, 0.2))[torch.arange(5), t]
    torch.testing.assert_close(gap, (attr.sum(1) - delta_f).abs())
    torch.testing.assert_close(delta.expected, delta_f)
    torch.testing.assert_close(delta.relative, gap / delta_f.abs())
    torch.testing.assert_close(ig.attribute_with_delta(x, [0, 1, 2, 0, 1])[1].absolute, gap)
    torch.testing.assert_close(ig.attribute(x, [0, 1, 2, 0, 1]), attr)


def test_batch_size_does_not_change_results():
    net, x = _smooth_net(), _smooth_inputs()[:4]
    results = [IntegratedGradients(net, steps=5, batch_size=bs).attribute(x) for bs in (1, 3, 7, None)]
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], atol=1e-12, rtol=0)


def test_batch_size_bounds_rows_per_forward():
    sizes: list[int] = []
    net = _smooth_net()
    net.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    ig = IntegratedGradients(net, steps=5, batch_size=3)
    ig.attribute(_smooth_inputs()[:4], target=0)
    # explicit target, no gap asked for: only path rows are evaluated (as Smooth calls it)
    assert max(sizes) <= 3 and sum(sizes) == 5 * 4
    sizes.clear()
    ig.attribute(_smooth_inputs()[:4])  # target=None: one forward of the B inputs predicts the class
    assert sizes[0] == 4 and max(sizes[1:]) <= 3 and sum(sizes[1:]) == 5 * 4
    sizes.clear()
    ig.attribute_with_delta(_smooth_inputs()[:4], target=0)  # the gap needs F(x) and F(x'): 2B endpoints
    assert sizes[0] == 8 and max(sizes[1:]) <= 3 and sum(sizes[1:]) == 5 * 4


def test_target_none_is_the_class_predicted_for_the_inputs_not_the_path():
    # class 1 wins near the baseline (logit 0.5), class 0 wins at x = 1
    model = _linear(torch.tensor([[1.0], [0.0]]), torch.tensor([0.0, 0.5]))
    x = torch.tensor([[1.0]])
    torch.testing.assert_close(IntegratedGradients(model, steps=4).attribute(x), torch.tensor([[1.0]]))


def _image_linear() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(2)
    w = torch.randn(3, 2 * 8 * 8)
    return nn.Sequential(nn.Flatten(), _linear(w)).eval(), w


@pytest.mark.parametrize("spec", ["blur", 0.3, "tensor", "uniform"])
def test_baselines_on_a_linear_image_model(spec):
    model, w = _image_linear()
    x = torch.rand(2, 2, 8, 8, generator=torch.Generator().manual_seed(5))
    if spec == "tensor":
        spec = torch.linspace(0, 1, 2 * 8 * 8).view(2, 8, 8)
    expected_base = {"blur": gaussian_blur(x, 0.8)}.get(spec) if isinstance(spec, str) else None
    if expected_base is None:
        expected_base = make_baseline(spec, x, seed=11)
    attr = IntegratedGradients(model, steps=3, baseline=spec, seed=11).attribute(x, target=2)
    torch.testing.assert_close(attr, w[2].view(1, 2, 8, 8) * (x - expected_base))


def test_uniform_baseline_is_seeded():
    net, x = _smooth_net(), _smooth_inputs()
    a = IntegratedGradients(net, steps=4, baseline="uniform", seed=1).attribute(x, 0)
    torch.testing.assert_close(IntegratedGradients(net, steps=4, baseline="uniform", seed=1).attribute(x, 0), a)
    assert not torch.allclose(IntegratedGradients(net, steps=4, baseline="uniform", seed=2).attribute(x, 0), a)


def test_functional_form_matches_class():
    net, x = _smooth_net(), _smooth_inputs()
    torch.testing.assert_close(
        integrated_gradients(net, x, target=1, steps=6, rule="riemann_middle"),
        IntegratedGradients(net, steps=6, rule="riemann_middle").attribute(x, 1),
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"steps": 0}, ValueError, "`steps` must be >= 1, got 0"),
        ({"steps": 1, "rule": "riemann_trapezoid"}, ValueError, "`steps` must be >= 2 for rule=.riemann_trapezoid."),
        ({"steps": 2.5}, TypeError, "`steps` must be an int"),
        ({"rule": "simpson"}, ValueError, "`rule` must be one of"),
        ({"baseline": "white"}, ValueError, "`baseline` must be one of"),
        ({"batch_size": 0}, ValueError, "`batch_size` must be >= 1"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        IntegratedGradients(_smooth_net(), **kwargs)


def test_call_errors():
    net, x = _smooth_net(), _smooth_inputs()
    with pytest.raises(ValueError, match="broadcastable to the inputs' shape"):
        IntegratedGradients(net, baseline=torch.zeros(5, 5)).attribute(x, 0)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="`inputs` must be finite"):
        IntegratedGradients(net).attribute(bad, 0)
    with pytest.raises(ValueError, match=r"`target` must lie in \[0, 2\]"):
        IntegratedGradients(net).attribute(x, target=3)
    with pytest.raises(ValueError, match=r"`target` must lie in \[0, 2\]"):
        IntegratedGradients(net).attribute_with_delta(x, target=-1)[1].absolute


def test_model_inputs_and_grads_are_left_unchanged():
    net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Tanh(), nn.Linear(8, 3)).double()
    user_hook = net[0].register_forward_hook(lambda *args: None)
    x = _smooth_inputs()
    before = x.clone()
    with pytest.warns(UserWarning, match="training mode"):
        a = IntegratedGradients(net, steps=4).attribute(x)
    assert net.training and all(m.training for m in net.modules())
    assert list(net[0]._forward_hooks) == [user_hook.id]
    assert all(not m._forward_hooks and not m._backward_hooks for m in list(net.modules())[2:])
    assert all("forward" not in m.__dict__ for m in net.modules())
    assert all(p.grad is None for p in net.parameters()) and x.grad is None
    torch.testing.assert_close(x, before)
    net.eval()
    torch.testing.assert_close(IntegratedGradients(net, steps=4).attribute(x), a)  # eval-mode explanation
