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
    ig.attribute(_smooth_inputs()[:4])  # target=None: a forward of the B inputs predicts the class
    assert sizes[:2] == [3, 1] and max(sizes) <= 3 and sum(sizes) == 4 + 5 * 4  # batch_size bounds it too
    sizes.clear()
    ig.attribute_with_delta(_smooth_inputs()[:4], target=0)  # the gap needs F(x) and F(x'): B + 1 endpoints
    assert sizes[:2] == [3, 2] and max(sizes) <= 3 and sum(sizes) == 4 + 1 + 5 * 4


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
    # F(x) - F(x') per image, whether the baseline is one row for all (0.3, the tensor: run once) or one per image
    _, delta = IntegratedGradients(model, steps=3, baseline=spec, seed=11).attribute_with_delta(x, target=2)
    torch.testing.assert_close(delta.expected, (x - expected_base).flatten(1) @ w[2])
    assert float(delta.absolute.max()) < 1e-4


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


# ---- steps="auto": the refinement rule on models whose gap has a closed form ------------------------
class HalfQuadratic(nn.Module):
    """One logit ``F(x) = ½ Σ_i q_i x_i² + b·x`` (and a constant 0): the path gradient is linear in α.

    IG from 0 is ``x_i (b_i + q_i x_i / 2)``; the left Riemann rule with ``n`` points gives
    ``x_i (b_i + q_i x_i (n - 1) / (2n))``: a gap of ``Σ q_i x_i² / (2n)``, and a map that moves by
    ``q ∘ x² / (2n)`` when ``n/2`` points become ``n``.
    """

    def __init__(self, q: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.q, self.b = q, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = 0.5 * (self.q * x * x).sum(1) + (self.b * x).sum(1)
        return torch.stack([f, torch.zeros_like(f)], dim=1)


def _auto_level(gap_at, change_at, tol, map_tol, levels):
    """The first level after the first whose relative gap and map change meet the rule (else the last)."""
    for n in levels[1:]:
        if gap_at(n) <= tol and change_at(n) <= map_tol:
            return n
    return levels[-1]


def test_auto_steps_on_a_quadratic_stop_where_the_closed_form_says_per_image_reusing_every_point():
    q = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    b = torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64)
    model = HalfQuadratic(q, b).eval()
    x = torch.tensor([[0.2, 0.1, 0.3], [1.5, -1.2, 2.0], [3.0, 2.5, -3.0]], dtype=torch.float64)
    tol, map_tol = 0.01, 0.02
    rows: list[int] = []
    model.register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[0]))
    ig = IntegratedGradients(model, steps="auto", rule="riemann_left", tol=tol, map_tol=map_tol, min_steps=4,
                             max_steps=512)  # fmt: skip
    attr, delta = ig.attribute_with_delta(x, target=0)

    levels = [4 * 2**j for j in range(8)]  # 4 ... 512
    expected_steps = []
    for xi in x:
        curv = float((q * xi * xi).sum())
        f = 0.5 * curv + float((b * xi).sum())
        exact = xi * (b + q * xi / 2)
        expected_steps.append(_auto_level(
            lambda n: curv / (2 * n) / abs(f),
            lambda n: float((q * xi * xi / (2 * n)).norm() / (xi * (b + q * xi * (n - 1) / (2 * n))).norm()),
            tol, map_tol, levels))  # fmt: skip
        assert float((exact - xi * (b + q * xi * (expected_steps[-1] - 1) / (2 * expected_steps[-1]))).norm()) > 0
    assert delta.steps.tolist() == expected_steps and len(set(expected_steps)) == 3  # one step count per image
    assert delta.converged.tolist() == [True, True, True] and ig.last_steps.tolist() == expected_steps
    n = torch.tensor(expected_steps, dtype=torch.float64)[:, None]
    torch.testing.assert_close(attr, x * (b + q * x * (n - 1) / (2 * n)), atol=1e-12, rtol=0)
    assert (delta.relative <= tol).all()
    # nested rule: an image that stops at n points cost n path points (plus F(x) of each image and F(x')
    # once: the black baseline is the same for every image)
    assert sum(rows) == 3 + 1 + sum(expected_steps)
    # the same map as a fixed-steps run at the chosen count
    for i, s in enumerate(expected_steps):
        torch.testing.assert_close(
            attr[i], IntegratedGradients(model, steps=s, rule="riemann_left").attribute(x[i : i + 1], 0)[0])


def test_auto_gauss_legendre_is_exact_on_a_quadratic_after_one_confirming_level():
    model = HalfQuadratic(torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([0.5, 1.0], dtype=torch.float64))
    x = torch.tensor([[1.0, 2.0], [-0.5, 0.25]], dtype=torch.float64)
    attr, delta = IntegratedGradients(model.eval(), steps="auto", min_steps=2).attribute_with_delta(x, 0)
    torch.testing.assert_close(attr, x * (model.b + model.q * x / 2), atol=1e-12, rtol=0)
    assert delta.steps.tolist() == [4, 4]  # 2 points are exact for a linear integrand; 4 confirm it


class TwoKinks(nn.Module):
    """``F(x) = relu(x_1 − c_1) + relu(x_2 − c_2)`` as a ReLU network (one logit).

    From the baseline 0 to x = (1, 1) the path gradient of feature i is the step ``1[α > c_i]``:
    IG_i = 1 − c_i exactly, and a rule with nodes α_k, weights w_k gives ``Σ_{α_k > c_i} w_k``.
    """

    def __init__(self, c1: float, c2: float) -> None:
        super().__init__()
        self.hidden = _linear(torch.eye(2), torch.tensor([-c1, -c2])).double()
        with torch.no_grad():
            self.hidden.bias.copy_(torch.tensor([-c1, -c2], dtype=torch.float64))  # c in float64, not rounded
        self.relu = nn.ReLU()
        self.out = _linear(torch.ones(1, 2)).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.relu(self.hidden(x)))


def _step_integral(n: int, c: float) -> float:
    alphas, weights = quadrature(n, "gausslegendre")
    return float(weights[alphas > c].sum())


def _cancelling_kinks() -> tuple[float, float]:
    """c_1 = 0.37 and the c_2 whose quadrature error at 8 Gauss–Legendre points cancels c_1's."""
    c1 = 0.37
    err1 = _step_integral(8, c1) - (1 - c1)
    alphas, _ = quadrature(8, "gausslegendre")
    for k in range(7):  # c_2 between nodes k and k + 1: Σ_{α > c_2} w is fixed, solve err_2 = −err_1
        c2 = 1 - _step_integral(8, float(alphas[k]) + 1e-12) - err1
        if float(alphas[k]) < c2 < float(alphas[k + 1]) and abs(c2 - (1 - c1)) > 0.05:
            return c1, c2
    raise AssertionError("no cancelling kink")  # pragma: no cover


def test_relu_gap_is_not_monotone_in_steps_and_auto_is_not_fooled_by_a_lucky_resolution():
    c1, c2 = _cancelling_kinks()
    model = TwoKinks(c1, c2).eval()
    x = torch.ones(1, 2, dtype=torch.float64)
    exact = torch.tensor([[1 - c1, 1 - c2]], dtype=torch.float64)
    delta_f = (1 - c1) + (1 - c2)

    def closed(n: int) -> torch.Tensor:
        return torch.tensor([[_step_integral(n, c1), _step_integral(n, c2)]], dtype=torch.float64)

    gaps = {}
    for n in (4, 8, 16, 32):
        attr, delta = IntegratedGradients(model, steps=n).attribute_with_delta(x, 0)
        torch.testing.assert_close(attr, closed(n), atol=1e-12, rtol=0)
        torch.testing.assert_close(delta.relative, (closed(n).sum() - delta_f).abs().view(1) / delta_f)
        gaps[n] = float(delta.relative)
    # the gap vanishes at 8 points by cancellation, then grows: 8 points are no guarantee
    assert gaps[8] < 1e-12 < 1e-3 < gaps[16] and gaps[4] > gaps[16]
    assert float((closed(8) - exact).abs().max()) > 0.05  # ... and the 8-point map is off by 5 % of a unit

    # a gap-only rule stops at the lucky 8 points
    lucky = IntegratedGradients(model, steps="auto", min_steps=4, tol=0.005, map_tol=1e6)
    assert lucky.attribute_with_delta(x, 0)[1].steps.tolist() == [8]
    # the rule also asks the map to have stopped moving: it refines on, to the level the closed form gives
    tol, map_tol = 0.005, 0.02
    levels = [4 * 2**j for j in range(7)]  # 4 ... 256

    def change(n: int) -> float:
        return float((closed(n) - closed(n // 2)).norm() / closed(n).norm())

    want = _auto_level(lambda n: float((closed(n).sum() - delta_f).abs() / delta_f), change, tol, map_tol, levels)
    ig = IntegratedGradients(model, steps="auto", min_steps=4, tol=tol, map_tol=map_tol)
    attr, delta = ig.attribute_with_delta(x, 0)
    assert delta.steps.tolist() == [want] and want > 8 and delta.converged.tolist() == [True]
    # the trace of the levels: at 8 points the gap is 0 but the map moved by more than map_tol
    eight = ig.last_levels[1]
    assert eight["steps"] == 8 and eight["relative_gap"][0] < 1e-12 and eight["map_change"][0] == pytest.approx(change(8))
    assert change(8) > map_tol and [lv["steps"] for lv in ig.last_levels] == [n for n in levels if n <= want]
    torch.testing.assert_close(attr, closed(want), atol=1e-12, rtol=0)
    assert float((attr - exact).abs().max()) < float((closed(8) - exact).abs().max())


def test_auto_reports_the_cap_when_the_rule_is_not_met():
    model = TwoKinks(*_cancelling_kinks()).eval()
    x = torch.ones(1, 2, dtype=torch.float64)
    attr, delta = IntegratedGradients(model, steps="auto", min_steps=4, max_steps=16, tol=1e-9).attribute_with_delta(x, 0)
    assert delta.steps.tolist() == [16] and delta.converged.tolist() == [False]
    torch.testing.assert_close(attr, IntegratedGradients(model, steps=16).attribute(x, 0))
    # attribute() runs the same rule (it needs F(x) and F(x') for the gap)
    torch.testing.assert_close(IntegratedGradients(model, steps="auto", min_steps=4, max_steps=16, tol=1e-9).attribute(x, 0), attr)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": "many"}, "`steps` must be an int >= 1 or 'auto', got 'many'"),
        ({"steps": "auto", "min_steps": 16, "max_steps": 8}, "`max_steps` must be >= `min_steps` \\(16\\), got 8"),
        ({"steps": "auto", "tol": -1.0}, "`tol` must be"),
        ({"steps": "auto", "map_tol": float("nan")}, "`map_tol` must be"),
    ],
)
def test_auto_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        IntegratedGradients(_smooth_net(), **kwargs)


def test_smoothed_ig_reports_the_gap_of_its_inner_runs():
    """F = ½ c ‖x‖²: every noisy sample's left-Riemann gap is ``c ‖x_j‖² / (2n)`` against
    ``ΔF_j = c ‖x_j‖² / 2``, a relative gap of exactly 1/n; Gauss–Legendre integrates it exactly."""
    from smoothsal.smoothing import Smooth

    model = HalfQuadratic(torch.full((5,), 0.7, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)).eval()
    x = torch.rand(3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.5
    smooth = Smooth(IntegratedGradients(model, steps=4, rule="riemann_left"), noise_level=0.2, n_samples=6, seed=1)
    assert smooth.has_convergence_delta
    attr, gaps = smooth.attribute_with_delta(x, 0)
    torch.testing.assert_close(attr, smooth.attribute(x, 0))  # the same map as attribute()
    for name in ("relative_mean", "relative_max", "relative_of_mean"):
        torch.testing.assert_close(getattr(gaps, name), torch.full((3,), 0.25, dtype=torch.float64))
    assert gaps.n_samples.tolist() == [6, 6, 6] and gaps.steps_mean.tolist() == [4.0, 4.0, 4.0]
    # |δ_j| = ΔF_j / 4 (the left rule falls short): the smoothed map sums to mean ΔF_j − mean |δ_j| = 3 mean |δ_j|
    torch.testing.assert_close(attr.sum(1), 3 * gaps.absolute_mean)
    assert (gaps.absolute_max >= gaps.absolute_mean).all()
    exact = Smooth(IntegratedGradients(model, steps=2), noise_level=0.2, n_samples=6, seed=1)
    assert float(exact.attribute_with_delta(x, 0)[1].relative_max.max()) < 1e-12
    with pytest.raises(TypeError, match="has no convergence delta"):
        Smooth(_NoDelta(), n_samples=2).attribute_with_delta(x, 0)


class _NoDelta:
    model = None

    def attribute(self, inputs, target=None):
        return inputs
