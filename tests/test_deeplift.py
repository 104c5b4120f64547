"""Tests for smoothsal.methods.deeplift: Rescale rule, summation-to-delta, model restoration."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from smoothsal.methods.deeplift import DeepLift, deeplift


def _linear(weight: torch.Tensor, bias: torch.Tensor | None = None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)).eval()


class ConvNet(nn.Module):
    """Conv net with an in-place ReLU, one ReLU6 module shared by three calls, a skip connection,
    eval-mode batch-norm, average pooling and a mix of smooth activations."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.shared = nn.ReLU6(inplace=True)
        self.conv3 = nn.Conv2d(8, 8, 1)
        self.smooth = nn.Sequential(nn.Sigmoid(), nn.Conv2d(8, 8, 1), nn.Tanh(), nn.Softplus(), nn.ELU())
        self.leaky = nn.LeakyReLU(0.1, inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)
        with torch.no_grad():  # non-trivial batch-norm statistics
            self.bn1.running_mean.uniform_(-0.2, 0.2)
            self.bn1.running_var.uniform_(0.5, 2.0)
            self.bn1.weight.uniform_(0.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.bn1(self.conv1(x) * 3.0))
        h = self.shared(self.conv2(h) * 4.0)
        h = h + self.shared(self.conv3(h) * 4.0)  # skip connection around a second call
        s = self.smooth(h)
        h = self.shared(torch.cat([self.leaky(h - 1.0), s], dim=1) * 2.0)  # third call of the shared module
        return self.fc(self.pool(h).flatten(1))


def _images(b: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, 10, 10, generator=torch.Generator().manual_seed(seed))


def _logit_delta(model: nn.Module, x: torch.Tensor, x0: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        rows = torch.arange(x.shape[0])
        return model(x)[rows, target] - model(x0)[rows, target]


def test_summation_to_delta_on_relu_mlp():
    model = _mlp()
    x = torch.randn(8, 10, generator=torch.Generator().manual_seed(2))
    for baseline in ("black", "uniform", 0.5):
        attr, _d = DeepLift(model, baseline=baseline).attribute_with_delta(x, target=3)
        gap = _d.absolute
        assert attr.shape == x.shape
        assert float(gap.max()) < 1e-5, (baseline, gap)
    # the gap is what its definition says
    t = torch.full((8,), 3)
    torch.testing.assert_close(gap, (attr.sum(1) - _logit_delta(model, x, torch.full_like(x, 0.5), t)).abs())


def test_summation_to_delta_on_conv_net_with_inplace_and_shared_activations():
    model = ConvNet().eval()
    x = _images()
    attr, _d = DeepLift(model).attribute_with_delta(x)
    gap = _d.absolute
    targets = model(x).argmax(1)
    delta_f = _logit_delta(model, x, torch.zeros_like(x), targets)
    assert float(delta_f.abs().min()) > 0.05  # a non-trivial difference to explain
    assert float(gap.max()) < 1e-5, gap
    torch.testing.assert_close(attr.flatten(1).sum(1), delta_f, atol=1e-5, rtol=0)
    # the gradient does not sum to the delta on this network: DeepLIFT is doing real work
    x_req = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x_req)[torch.arange(3), targets].sum(), x_req)
    assert float(((g * x).flatten(1).sum(1) - delta_f).abs().max()) > 1e-2


def test_linear_model_gives_gradient_times_difference():
    w = torch.tensor([[2.0, -1.0, 0.5], [0.3, 0.0, -4.0]])
    model = _linear(w, torch.tensor([0.1, -0.2])).eval()
    x = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]])
    x0 = torch.tensor([0.5, -0.5, 1.0])
    attr = DeepLift(model, baseline=x0).attribute(x, target=[0, 1])
    torch.testing.assert_close(attr, w * (x - x0))


def test_hand_computed_one_hidden_unit_relu():
    # f(x) = relu(x1 + x2 - 1), baseline 0: pre-activation goes -1 -> 1, output 0 -> 1,
    # Rescale multiplier 1/2, so C = (1/2, 1/2); gradient x input would give (1, 1), summing to 2.
    model = nn.Sequential(_linear(torch.tensor([[1.0, 1.0]]), torch.tensor([-1.0])), nn.ReLU()).eval()
    x = torch.tensor([[1.0, 1.0]])
    torch.testing.assert_close(DeepLift(model).attribute(x, target=0), torch.tensor([[0.5, 0.5]]))
    # saturated unit: f(x) = relu6(3x) at x = 3 has zero gradient but DeepLIFT gives the full delta 6
    sat = nn.Sequential(_linear(torch.tensor([[3.0]])), nn.ReLU6()).eval()
    torch.testing.assert_close(DeepLift(sat).attribute(torch.tensor([[3.0]]), 0), torch.tensor([[6.0]]))


def test_unchanged_units_fall_back_to_the_local_derivative():
    model = ConvNet().eval()
    x = _images()
    baseline = x.clone()
    baseline[:, 0] = 0.0  # channel 0 differs, channels 1-2 equal the input
    attr, _d = DeepLift(model, baseline=baseline).attribute_with_delta(x, target=1)
    gap = _d.absolute
    assert torch.isfinite(attr).all() and float(gap.max()) < 1e-5
    assert torch.count_nonzero(attr[:, 1:]) == 0
    same, _d = DeepLift(model, baseline=x.clone()).attribute_with_delta(x, target=1)
    gap_same = _d.absolute
    assert torch.count_nonzero(same) == 0 and float(gap_same.max()) == 0.0


def test_batch_independence_and_functional_form():
    model, x = ConvNet().eval(), _images(b=4)
    together = DeepLift(model).attribute(x, target=2)
    alone = torch.cat([DeepLift(model).attribute(x[i : i + 1], target=2) for i in range(4)])
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(deeplift(model, x, target=2), together)


def test_target_none_is_the_predicted_class_of_the_inputs():
    model, x = _mlp(), torch.randn(6, 10, generator=torch.Generator().manual_seed(3))
    predicted = model(x).argmax(1)
    torch.testing.assert_close(DeepLift(model).attribute(x), DeepLift(model).attribute(x, predicted))


def test_max_pool_rule_by_hand():
    pool = nn.Sequential(nn.MaxPool1d(2), nn.Flatten()).eval()
    x = torch.tensor([[[0.0, 5.0, 1.0, 0.0]]])
    # window 1: x' = 0 everywhere, the whole Δy = 5 goes to x's maximiser (index 1, not the tie-broken
    # index 0 of x', which did not move). window 2: y = 1 < y' = 3, so Δy = -2 goes to the baseline's maximiser.
    x0 = torch.tensor([[[0.0, 0.0, 0.0, 3.0]]])
    torch.testing.assert_close(DeepLift(pool, baseline=0.0).attribute(x, 0), torch.tensor([[[0.0, 5.0, 0.0, 0.0]]]))
    torch.testing.assert_close(DeepLift(pool, baseline=x0).attribute(x, 1), torch.tensor([[[0.0, 0.0, 0.0, -2.0]]]))


def test_summation_to_delta_with_overlapping_max_pooling():
    torch.manual_seed(4)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1),  # ResNet stem
        nn.Conv2d(6, 6, 3), nn.Tanh(), nn.AdaptiveMaxPool2d(2), nn.Flatten(), nn.Linear(24, 3),
    ).eval()
    x = _images(b=4)
    for baseline in ("black", "blur"):
        attr, _d = DeepLift(model, baseline=baseline).attribute_with_delta(x)
        gap = _d.absolute
        assert torch.isfinite(attr).all() and float(gap.max()) < 1e-5, (baseline, gap)


@pytest.mark.parametrize(("bad", "index"), [(nn.Softmax(dim=1), 4), (nn.LPPool2d(2, 2), 1)])
def test_unsupported_modules_raise_naming_the_module(bad, index):
    layers = [nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3)]
    layers.insert(index, bad)
    model = nn.Sequential(*layers).eval()
    with pytest.raises(ValueError, match=rf"does not support module `{index}` \({type(bad).__name__}\)"):
        DeepLift(model).attribute(_images())
    with pytest.raises(ValueError, match=r"`return_indices=False`; module `pool` \(MaxPool2d\)"):
        DeepLift(nn.Sequential(OrderedDict(pool=nn.MaxPool2d(2, return_indices=True))).eval()).attribute(_images())


def test_errors():
    with pytest.raises(ValueError, match="`baseline` must be one of"):
        DeepLift(_mlp(), baseline="white")
    with pytest.raises(ValueError, match="`eps` must be a finite number >= 0"):
        DeepLift(_mlp(), eps=-1.0)
    with pytest.raises(ValueError, match=r"`target` must lie in \[0, 3\]"):
        DeepLift(_mlp()).attribute(torch.zeros(2, 10), target=4)
    with pytest.raises(ValueError, match="`inputs` must be finite"):
        DeepLift(_mlp()).attribute(torch.full((2, 10), float("nan")))
    with pytest.raises(ValueError, match="broadcastable"):
        DeepLift(_mlp(), baseline=torch.zeros(3)).attribute(torch.zeros(2, 10))


class RaisesOnSecondCall(nn.Module):
    """Calls its shared in-place ReLU twice and fails after the second call."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.lin(x))
        h = self.act(self.lin(h))
        raise RuntimeError("model failed midway")


def _user_forward(z: torch.Tensor) -> torch.Tensor:
    return torch.relu(z)


def test_model_is_restored_after_success_and_after_a_failure():
    model = ConvNet()  # training mode
    model.shared.forward = _user_forward  # a user's own instance-level override must survive
    x = _images()
    before = x.clone()
    with pytest.warns(UserWarning, match="training mode"):
        DeepLift(model).attribute(x)
    assert model.training and model.bn1.training
    assert model.relu.inplace and model.shared.inplace and model.leaky.inplace
    assert model.shared.__dict__["forward"] is _user_forward
    assert all("forward" not in m.__dict__ for m in model.modules() if m is not model.shared)
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    torch.testing.assert_close(x, before)

    failing = RaisesOnSecondCall().eval()
    with pytest.raises(RuntimeError, match="model failed midway"):
        DeepLift(failing).attribute(torch.rand(2, 4))
    # also the method's own `finally`, without the base class's model guard
    with pytest.raises(RuntimeError, match="model failed midway"):
        DeepLift(failing)._attribute(torch.rand(2, 4), None)
    assert failing.act.inplace is True and "forward" not in failing.act.__dict__


@pytest.mark.slow
def test_summation_to_delta_on_pretrained_efficientnet_lite0():
    from smoothsal.models.zoo import efficientnet_lite0

    pytest.importorskip("skimage", reason="the photo comes from scikit-image: pip install scikit-image")
    from smoothsal.datasets.photos import load_photo

    model = efficientnet_lite0()
    x = load_photo("chelsea").tensor  # [1, 3, 224, 224] in [0, 1]: a real photo, never a stand-in
    attr, _d = DeepLift(model).attribute_with_delta(x)
    target = model(x).argmax(1)
    delta_f = _logit_delta(model, x, torch.zeros_like(x), target)  # F(x) - F(black), recomputed here
    gap = (attr.flatten(1).sum(dim=1) - delta_f).abs()  # the gap, from the map itself
    torch.testing.assert_close(_d.absolute, gap, rtol=1e-3, atol=1e-4)  # the reported gap is that gap
    assert float(delta_f.abs()[0]) > 1.0  # the photo is far from the baseline: the check is not 0 ≈ 0
    assert float(gap[0]) <= 1e-3 * float(delta_f.abs()[0]), (float(gap[0]), float(delta_f[0]))
    assert all("forward" not in m.__dict__ for m in model.modules())


class FunctionalReluUnit(nn.Module):
    """``F(x) = relu(w·x + b)`` with ``F.relu`` called as a function: DeepLIFT cannot patch it and
    falls back to the gradient (multiplier 1 where the unit is on), so from the baseline 0
    (where the unit is off, b < 0) the attributions are ``w ∘ x``, summing to ``w·x`` while
    ``ΔF = w·x + b``: the gap is exactly ``−b``, the relative gap ``|b| / (w·x + b)``."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.lin = _linear(w[None], torch.tensor([b])).double()
        with torch.no_grad():
            self.lin.bias.fill_(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.nn.functional.relu(self.lin(x))
        return torch.cat([f, torch.zeros_like(f)], dim=1)


def test_relative_and_absolute_gaps_have_their_closed_forms_raw_and_smoothed():
    from smoothsal.smoothing import Smooth

    w, b = torch.tensor([1.0, 2.0, -0.5], dtype=torch.float64), -0.25
    model = FunctionalReluUnit(w, b).eval()
    x = torch.tensor([[1.0, 1.0, 0.0], [0.5, 0.25, 0.5]], dtype=torch.float64)  # w·x = 3, 0.75: unit on
    attr, delta = DeepLift(model).attribute_with_delta(x, target=0)
    torch.testing.assert_close(attr, w * x)
    torch.testing.assert_close(delta.absolute, torch.full((2,), 0.25, dtype=torch.float64))
    torch.testing.assert_close(delta.relative, 0.25 / (x @ w + b))
    assert delta.steps is None and delta.converged is None  # DeepLIFT has no steps

    # smoothed: every noisy sample (small noise keeps the unit on) has the same absolute gap |b|
    smooth = Smooth(DeepLift(model), noise_level=0.05, value_range=(0.0, 1.0), n_samples=5, seed=0)
    s_attr, gaps = smooth.attribute_with_delta(x, 0)
    torch.testing.assert_close(s_attr, smooth.attribute(x, 0))
    for name in ("absolute_mean", "absolute_max"):
        torch.testing.assert_close(getattr(gaps, name), torch.full((2,), 0.25, dtype=torch.float64))
    # the smoothed map sums to mean_j w·x_j, the mean score change is mean_j w·x_j + b: own gap |b| / that
    torch.testing.assert_close(gaps.relative_of_mean, 0.25 / (s_attr.sum(1) + b))
    assert gaps.steps_mean is None and gaps.n_samples.tolist() == [5, 5]

    # a ReLU MLP, every unit patched: summation-to-delta holds in every noisy sample
    mlp = _mlp()
    xs = torch.rand(3, 10, generator=torch.Generator().manual_seed(2))
    _, exact = Smooth(DeepLift(mlp), noise_level=0.1, n_samples=4, seed=1).attribute_with_delta(xs, 1)
    assert float(exact.relative_max.max()) < 1e-4 and float(exact.absolute_max.max()) < 1e-5
