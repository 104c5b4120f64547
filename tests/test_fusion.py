"""BatchNorm folding (smoothsal.execution.folding): same function, same gradient, never a wrong fold, model untouched."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from smoothsal import IntegratedGradients, SmoothGrad, VanillaGradient
from smoothsal.execution.folding import fold_batchnorm, folded, folding, folding_enabled, set_folding


def _bn(channels: int, seed: int) -> nn.BatchNorm2d:
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(channels)
    with torch.no_grad():  # statistics and affine far from the identity, so a missed fold shows
        bn.running_mean.copy_(torch.randn(channels, generator=g))
        bn.running_var.copy_(torch.rand(channels, generator=g) * 3 + 0.2)
        bn.weight.copy_(torch.randn(channels, generator=g))
        bn.bias.copy_(torch.randn(channels, generator=g))
    return bn


def conv_bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), _bn(8, 1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), _bn(8, 2), nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    ).eval()  # fmt: skip


class _PreBnSkip(nn.Module):
    """``relu(bn(conv(x))) + conv(x)``: the conv's output is also read before the BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), _bn(4, 3)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        z = self.conv(x)
        return self.head((F.relu(self.bn(z)) + z).mean((2, 3)))


class _StdConv(nn.Conv2d):
    """Weight-standardized convolution: scaling its weight is undone by its own forward."""

    def forward(self, x):
        w = (self.weight - self.weight.mean((1, 2, 3), keepdim=True)) / self.weight.std((1, 2, 3), keepdim=True)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


class _SamePadConv(nn.Conv2d):
    """TensorFlow-style "same" padding (EfficientNet-Lite's convolutions): pad, then convolve."""

    def forward(self, x):
        return F.conv2d(F.pad(x, (1, 1, 1, 1)), self.weight, self.bias, self.stride)


def _x(n: int = 3, size: int = 12) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(7))


def test_folded_copy_is_the_same_function_without_batchnorm_and_the_model_is_untouched():
    model, x = conv_bn_net(), _x()
    before = copy.deepcopy(model.state_dict())
    twin, report = fold_batchnorm(model, x[:1])
    assert report.used and report.folded == (("0", "1"), ("3", "4"))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in twin.modules())
    assert twin[3].bias is not None  # a bias-free conv gets the BatchNorm's shift as its bias
    with torch.no_grad():
        torch.testing.assert_close(twin(x), model(x), rtol=1e-5, atol=1e-5)
    # the model itself keeps its modules and weights
    assert isinstance(model[1], nn.BatchNorm2d) and isinstance(model[4], nn.BatchNorm2d)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_hand_computed_fold_of_one_channel():
    """conv weight 2, bias 1; BN mean 3, var 4 - eps, gamma 5, beta 6: W' = 2*5/2 = 5, b' = (1-3)*5/2 + 6 = 1."""
    conv, bn = nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1)
    with torch.no_grad():
        conv.weight.fill_(2.0), conv.bias.fill_(1.0)
        bn.running_mean.fill_(3.0), bn.running_var.fill_(4.0 - bn.eps), bn.weight.fill_(5.0), bn.bias.fill_(6.0)
    model = nn.Sequential(conv, bn, nn.Flatten(), nn.Linear(4, 2)).eval()
    twin, report = fold_batchnorm(model, torch.rand(1, 1, 2, 2))
    assert report.used
    assert float(twin[0].weight.detach()) == pytest.approx(5.0) and float(twin[0].bias.detach()) == pytest.approx(1.0)


def test_gradient_methods_run_the_folded_copy_and_get_the_same_gradient():
    model, x = conv_bn_net(), _x()
    with folding(False):
        want = VanillaGradient(model).attribute(x, 2)
        want_ig = IntegratedGradients(model, steps=8).attribute(x, 2)
        want_sg = SmoothGrad(model, n_samples=6, seed=1).attribute(x, 2)
    torch.testing.assert_close(VanillaGradient(model).attribute(x, 2), want, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(IntegratedGradients(model, steps=8).attribute(x, 2), want_ig, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(SmoothGrad(model, n_samples=6, seed=1).attribute(x, 2), want_sg, rtol=1e-4, atol=1e-6)
    assert folded(model, x) is not model  # the cached copy


def test_a_batchnorm_that_is_not_the_only_reader_of_the_conv_is_never_folded():
    model, x = _PreBnSkip().eval(), _x()
    twin, report = fold_batchnorm(model, x[:1])
    assert twin is model and not report.used
    assert report.max_difference > 1e-2  # the check caught it
    with folding(False):
        want = VanillaGradient(model).attribute(x, 1)
    assert torch.equal(VanillaGradient(model).attribute(x, 1), want)


def test_a_conv_subclass_is_folded_when_it_only_pads_and_not_when_it_rewrites_its_weight():
    same = nn.Sequential(_SamePadConv(3, 4, 3), _bn(4, 4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2)).eval()
    x = _x(2, 6)
    same(x)  # materialize the lazy layer
    twin, report = fold_batchnorm(same, x[:1])
    assert report.used and type(twin[0]) is _SamePadConv
    std = nn.Sequential(_StdConv(3, 4, 3, padding=1), _bn(4, 5), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 2)).eval()
    twin, report = fold_batchnorm(std, x[:1])
    assert twin is std and not report.used and report.folded == (("0", "1"),)


def test_the_cache_follows_changed_weights_and_models_with_hooks_are_not_folded():
    model, x = conv_bn_net(), _x()
    first = VanillaGradient(model).attribute(x, 0)
    with torch.no_grad():
        model[1].weight.mul_(-2.0)  # an in-place change of the BatchNorm: the cached copy is stale
    with folding(False):
        want = VanillaGradient(model).attribute(x, 0)
    got = VanillaGradient(model).attribute(x, 0)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(got, first)
    handle = model[2].register_forward_hook(lambda m, i, o: None)
    try:
        assert folded(model, x) is model
    finally:
        handle.remove()


def test_folding_leaves_training_mode_and_switch_as_found():
    model = conv_bn_net().train()
    model[4].eval()  # mixed modes come back as they were
    fold_batchnorm(model, _x()[:1])
    assert model.training and model[1].training and not model[4].training
    assert folding_enabled()
    with folding(False):
        assert not folding_enabled() and folded(model, _x()) is model
    assert folding_enabled()
    with pytest.raises(TypeError, match="enabled"):
        set_folding("no")


def test_a_model_without_batchnorm_is_returned_without_a_probe_pass():
    calls = []
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.LazyLinear(2)).eval()
    model(_x())
    model[0].forward = lambda x, f=model[0].forward: (calls.append(1), f(x))[1]
    twin, report = fold_batchnorm(model, _x()[:1])
    assert twin is model and report.folded == () and calls == []


def test_the_fold_cache_holds_models_weakly_and_at_most_max_folded(monkeypatch):
    import gc

    from smoothsal.execution import folding as folding_module

    monkeypatch.setattr(folding_module, "MAX_FOLDED", 2)
    models = [conv_bn_net() for _ in range(3)]
    twins = [folded(m, _x()) for m in models]
    assert all(t is not m for t, m in zip(twins, models))
    assert folding_module.cached_models() <= 2  # the least recently used copy went first
    assert folded(models[2], _x()) is twins[2]  # the most recent is still cached
    del twins
    kept = folding_module.cached_models()
    models.pop()
    gc.collect()
    assert folding_module.cached_models() == kept - 1 >= 0  # a dead model's copy goes with it


def test_the_folding_switch_is_per_thread_and_restored_by_the_block():
    import threading

    seen = []
    with folding(False):
        thread = threading.Thread(target=lambda: seen.append(folding_enabled()))
        thread.start()
        thread.join()
        assert not folding_enabled()
    assert seen == [True] and folding_enabled()
