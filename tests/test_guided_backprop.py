import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import small_cnn
from smoothsal.methods.gradient import VanillaGradient
from smoothsal.methods.guided_backprop import (
    Deconvnet,
    GuidedBackprop,
    deconvnet,
    guided_backprop,
    guided_rule,
    modified_rectifiers,
)


def _mlp(w1, w2, act: nn.Module) -> nn.Module:
    """x -> w2 · act(w1 x), bias-free, so every backward signal is a hand-computable product."""
    model = nn.Sequential(nn.Linear(w1.shape[1], w1.shape[0], bias=False), act, nn.Linear(w1.shape[0], 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(w1)
        model[2].weight.copy_(w2)
    return model.eval()


W1 = torch.tensor([[1.0, 1.0], [1.0, -1.0]])


def test_equal_plain_gradient_without_rectifiers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 4), nn.SiLU(), nn.Linear(4, 3)).eval()
    x = torch.randn(6, 5)
    grad = VanillaGradient(model).attribute(x, target=[0, 1, 2, 0, 1, 2])
    torch.testing.assert_close(GuidedBackprop(model).attribute(x, target=[0, 1, 2, 0, 1, 2]), grad)
    torch.testing.assert_close(Deconvnet(model).attribute(x, target=[0, 1, 2, 0, 1, 2]), grad)


def test_guided_zeroes_negative_upstream_signal_by_hand():
    # x = (2, 1): z = W1 x = (3, 1), both units active; upstream g = w2 = (2, -3)
    model = _mlp(W1, torch.tensor([[2.0, -3.0]]), nn.ReLU())
    x = torch.tensor([[2.0, 1.0]])
    # gradient: W1ᵀ (2, -3) = (-1, 5); guided: W1ᵀ (2, 0) = (2, 2)
    torch.testing.assert_close(VanillaGradient(model).attribute(x, target=0), torch.tensor([[-1.0, 5.0]]))
    torch.testing.assert_close(GuidedBackprop(model).attribute(x, target=0), torch.tensor([[2.0, 2.0]]))


def test_deconvnet_ignores_forward_mask_by_hand():
    # x = (1, 2): z = (3, -1), unit 1 inactive; upstream g = (-2, 3)
    model = _mlp(W1, torch.tensor([[-2.0, 3.0]]), nn.ReLU())
    x = torch.tensor([[1.0, 2.0]])
    # gradient: W1ᵀ (-2, 0) = (-2, -2); guided: (0, 0); deconvnet: W1ᵀ (0, 3) = (3, -3)
    torch.testing.assert_close(VanillaGradient(model).attribute(x, target=0), torch.tensor([[-2.0, -2.0]]))
    torch.testing.assert_close(GuidedBackprop(model).attribute(x, target=0), torch.zeros(1, 2))
    torch.testing.assert_close(Deconvnet(model).attribute(x, target=0), torch.tensor([[3.0, -3.0]]))


def test_relu6_mask_and_leaky_slope_by_hand():
    # ReLU6 with z = (7, 3): unit 0 saturated (local derivative 0), unit 1 linear; g = (1, 1)
    relu6 = _mlp(torch.eye(2), torch.tensor([[1.0, 1.0]]), nn.ReLU6())
    x = torch.tensor([[7.0, 3.0]])
    torch.testing.assert_close(GuidedBackprop(relu6).attribute(x, target=0), torch.tensor([[0.0, 1.0]]))
    torch.testing.assert_close(Deconvnet(relu6).attribute(x, target=0), torch.tensor([[1.0, 1.0]]))
    # LeakyReLU(0.1) with z = (-2, 3), g = (4, -5): guided = (0.1 * 4, 1 * 0), deconvnet = (4, 0)
    leaky = _mlp(torch.eye(2), torch.tensor([[4.0, -5.0]]), nn.LeakyReLU(0.1))
    x = torch.tensor([[-2.0, 3.0]])
    torch.testing.assert_close(GuidedBackprop(leaky).attribute(x, target=0), torch.tensor([[0.4, 0.0]]))
    torch.testing.assert_close(Deconvnet(leaky).attribute(x, target=0), torch.tensor([[4.0, 0.0]]))


def test_guided_rule_is_gradient_times_positive_part():
    g = torch.tensor([-1.0, 0.0, 2.0, 3.0])
    local = torch.tensor([1.0, 1.0, 1.0, 0.0])
    torch.testing.assert_close(guided_rule(g, local), torch.tensor([0.0, 0.0, 2.0, 0.0]))


class _SharedNet(nn.Module):
    """Conv net that reuses one activation module three times (as EfficientNet-Lite does)."""

    def __init__(self, inplace: bool, shared: bool) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.c1, self.c2, self.c3 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1)
        with torch.no_grad():  # large weights so that some activations exceed 6 (ReLU6 saturates)
            for conv in (self.c1, self.c2, self.c3):
                conv.weight.mul_(8.0)
                conv.bias.fill_(3.0)
        self.relu = nn.ReLU(inplace=inplace)
        acts = [nn.ReLU6(inplace=inplace)] * 3 if shared else [nn.ReLU6(inplace=inplace) for _ in range(3)]
        self.acts = acts[0] if shared else nn.ModuleList(acts)
        self.shared = shared
        self.fc = nn.Linear(4, 3)
        self.eval()

    def _act(self, i: int) -> nn.Module:
        return self.acts if self.shared else self.acts[i]

    def forward(self, x):
        x = self._act(0)(self.c1(x))
        x = self.relu(self._act(1)(self.c2(x)) - 1.0)
        x = self._act(2)(self.c3(x))
        return self.fc(x.mean(dim=(2, 3)))


@pytest.mark.parametrize("method", [GuidedBackprop, Deconvnet])
def test_inplace_shared_modules_match_separate_modules(method):
    shared, separate = _SharedNet(inplace=True, shared=True), _SharedNet(inplace=False, shared=False)
    x = torch.rand(3, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(shared(x), separate(x))
        z = shared.c1(x)
        assert (z > 6).any() and ((z > 0) & (z < 6)).any()  # both ReLU6 kinks are exercised
    a = method(shared).attribute(x, target=[0, 1, 2])
    b = method(separate).attribute(x, target=[0, 1, 2])
    torch.testing.assert_close(a, b)
    assert a.abs().sum() > 0 and not torch.allclose(a, VanillaGradient(separate).attribute(x, target=[0, 1, 2]))
    assert shared.acts.inplace and shared.relu.inplace  # flags untouched


def test_guided_matches_backward_hook_reference():
    # independent reference on separate non-inplace modules: the plain gradient with every
    # rectifier's grad_input clamped at 0 (= mask * max(g, 0), the guided rule)
    model = _SharedNet(inplace=False, shared=False)
    x = torch.rand(2, 3, 8, 8)
    rectifiers = [model.relu, *model.acts]
    handles = [m.register_full_backward_hook(lambda m, gin, gout: (gin[0].clamp(min=0),)) for m in rectifiers]
    try:
        reference = VanillaGradient(model).attribute(x, target=[1, 2])
    finally:
        for h in handles:
            h.remove()
    torch.testing.assert_close(GuidedBackprop(model).attribute(x, target=[1, 2]), reference)


@pytest.mark.parametrize("method", [GuidedBackprop, Deconvnet])
def test_batched_equals_per_sample(method):
    model = small_cnn(seed=1)
    x = torch.rand(4, 3, 6, 6)
    targets = [2, 0, 1, 2]
    batched = method(model).attribute(x, target=targets)
    single = torch.cat([method(model).attribute(x[i : i + 1], target=t) for i, t in enumerate(targets)])
    assert batched.shape == x.shape
    torch.testing.assert_close(batched, single)
    assert all(batched[i].abs().sum() > 0 for i in range(4))


def test_inputs_and_parameter_grads_unchanged():
    model = small_cnn(seed=2)
    x = torch.rand(2, 3, 5, 5)
    x0 = x.clone()
    guided_backprop(model, x, target=1)
    deconvnet(model, x, target=1)
    torch.testing.assert_close(x, x0)
    assert all(p.grad is None for p in model.parameters())


def _state(model: nn.Module):
    return [(m.training, getattr(m, "inplace", None), "forward" in m.__dict__, len(m._forward_hooks)) for m in model.modules()]


def test_model_restored_after_success_and_training_mode_kept():
    model = _SharedNet(inplace=True, shared=True).train()
    before = _state(model)
    with pytest.warns(UserWarning, match="training mode"):
        GuidedBackprop(model).attribute(torch.rand(1, 3, 6, 6), target=0)
    assert _state(model) == before
    assert model.training and model.acts.inplace and "forward" not in model.acts.__dict__


class _Raises(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        self.relu(x.clone())
        raise RuntimeError("boom midway")


def test_model_restored_when_forward_raises():
    model = _Raises().eval()
    with pytest.raises(RuntimeError, match="boom midway"):
        GuidedBackprop(model).attribute(torch.rand(2, 3))
    assert "forward" not in model.relu.__dict__ and model.relu.inplace
    # the context manager cleans up on its own as well (without the base class's model guard)
    with pytest.raises(RuntimeError, match="boom midway"):
        with modified_rectifiers(model, guided_rule) as patched:
            assert patched == [model.relu] and "forward" in model.relu.__dict__
            model(torch.rand(2, 3))
    assert "forward" not in model.relu.__dict__


def test_user_forward_override_is_restored():
    relu = nn.ReLU()
    own = relu.forward
    relu.forward = lambda x: own(x) * 2.0  # a user's own instance-level override
    user_forward = relu.__dict__["forward"]
    model = nn.Sequential(nn.Linear(2, 2), relu, nn.Linear(2, 1)).eval()
    with modified_rectifiers(model, guided_rule):
        assert model[1].__dict__["forward"] is not user_forward
    assert model[1].__dict__["forward"] is user_forward


def test_functional_relu_is_not_intercepted():
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin1 = nn.Linear(2, 2, bias=False)
            self.lin2 = nn.Linear(2, 1, bias=False)

        def forward(self, x):
            return self.lin2(F.relu(self.lin1(x)))

    model = Functional().eval()
    with torch.no_grad():
        model.lin1.weight.copy_(W1)
        model.lin2.weight.copy_(torch.tensor([[2.0, -3.0]]))
    x = torch.tensor([[2.0, 1.0]])
    # documented limitation: F.relu keeps its plain gradient (-1, 5), not the guided (2, 2)
    torch.testing.assert_close(GuidedBackprop(model).attribute(x, target=0), torch.tensor([[-1.0, 5.0]]))
