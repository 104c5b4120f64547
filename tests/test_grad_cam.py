import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import small_cnn
from smoothsal.methods.grad_cam import (
    GradCAM,
    GradCAMPlusPlus,
    grad_cam,
    grad_cam_plus_plus,
    grad_cam_plus_plus_weights,
    layer_activations_and_grads,
    resolve_layer,
)


def _tiny_net() -> nn.Module:
    """conv 1x1 stride 2 (1 -> 2 channels) -> global average pool -> linear (2 -> 2).

    A_0 = x[::2, ::2], A_1 = 2 x[::2, ::2] - 1, and S_c = Σ_k W_ck mean(A_k), so the gradient
    ∂S_c/∂A_k = W_ck / (h w) is constant over the 2x2 feature map.
    """
    model = nn.Sequential(nn.Conv2d(1, 2, 1, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, 2.0]).view(2, 1, 1, 1))
        model[0].bias.copy_(torch.tensor([0.0, -1.0]))
        model[3].weight.copy_(torch.tensor([[1.0, -0.25], [-1.0, 1.0]]))
        model[3].bias.zero_()
    return model.eval()


def _tiny_input() -> torch.Tensor:
    x = torch.full((1, 1, 4, 4), 9.0)  # pixels the strided conv skips
    x[0, 0, ::2, ::2] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    return x


# hand computations, A_0 = [[1, 2], [3, 4]] (sum 10), A_1 = [[1, 3], [5, 7]] (sum 16), h w = 4
# Grad-CAM target 0: w = (1, -0.25) / 4 -> 0.25 A_0 - 0.0625 A_1 = 0.125 x + 0.0625
GC_0 = torch.tensor([[0.1875, 0.3125], [0.4375, 0.5625]])
# Grad-CAM target 1: w = (-1, 1) / 4 -> -0.25 A_0 + 0.25 A_1 = 0.25 x - 0.25
GC_1 = torch.tensor([[0.0, 0.25], [0.5, 0.75]])
# Grad-CAM++ with constant g: alpha = 1 / (2 + g ΣA), w = 4 relu(g) alpha
# target 0: g = (0.25, -0.0625): w = (1 / 4.5, 0)
GCPP_0 = torch.tensor([[1.0, 2.0], [3.0, 4.0]]) / 4.5
# target 1: g = (-0.25, 0.25): w = (0, 1 / (2 + 16 / 4)) = (0, 1/6)
GCPP_1 = torch.tensor([[1.0, 3.0], [5.0, 7.0]]) / 6.0


@pytest.mark.parametrize(("method", "expected"), [(GradCAM, (GC_0, GC_1)), (GradCAMPlusPlus, (GCPP_0, GCPP_1))])
def test_low_res_cam_matches_hand_computation(method, expected):
    cam = method(_tiny_net()).cam_low_res(_tiny_input(), target=0)
    assert cam.shape == (1, 1, 2, 2)
    torch.testing.assert_close(cam[0, 0], expected[0])
    torch.testing.assert_close(method(_tiny_net()).cam_low_res(_tiny_input(), target=1)[0, 0], expected[1])


@pytest.mark.parametrize(("method", "expected"), [(GradCAM, (GC_0, GC_1)), (GradCAMPlusPlus, (GCPP_0, GCPP_1))])
def test_per_image_targets_and_bilinear_upsampling(method, expected):
    x = _tiny_input().expand(2, 1, 4, 4).clone()
    cam = method(_tiny_net()).attribute(x, target=[0, 1])  # one target per row, not "image 0 only"
    assert cam.shape == (2, 1, 4, 4)
    low = torch.stack(expected)[:, None]  # [2, 1, 2, 2]
    torch.testing.assert_close(cam, F.interpolate(low, size=(4, 4), mode="bilinear", align_corners=False))
    # raw magnitudes: no per-image min-max scaling (bilinear upsampling keeps the extremes here)
    torch.testing.assert_close(cam.amax(dim=(1, 2, 3)), low.amax(dim=(1, 2, 3)))
    assert not torch.allclose(cam[0], cam[1])


def test_grad_cam_weights_are_linear_weights_over_area():
    model = _tiny_net()
    acts, grads, targets = layer_activations_and_grads(model, model[0], _tiny_input(), 1)
    assert targets.tolist() == [1]
    torch.testing.assert_close(grads, torch.tensor([-1.0, 1.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2) / 4)
    torch.testing.assert_close(acts[0, 1], torch.tensor([[1.0, 3.0], [5.0, 7.0]]))


def test_grad_cam_plus_plus_weights_guard_zero_denominators():
    acts = torch.ones(1, 3, 1, 2)  # ΣA = 2 per channel
    grads = torch.tensor([[[[0.0, 0.0]], [[-1.0, -1.0]], [[0.5, 1.0]]]])
    # channel 0: g = 0 (0/0 -> alpha 0); channel 1: 2g² + 2g³ = 0 (alpha 0, and relu(g) = 0);
    # channel 2: alpha = 1 / (2 + 2 g) = (1/3, 1/4) -> w = 0.5/3 + 1/4
    w = grad_cam_plus_plus_weights(acts, grads)
    assert torch.isfinite(w).all()
    torch.testing.assert_close(w, torch.tensor([[0.0, 0.0, 0.5 / 3 + 0.25]]))


def _two_conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 5, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, 3),
    ).eval()


def test_layer_by_none_name_and_module():
    model = _two_conv_net()
    x = torch.rand(2, 3, 7, 9)
    default = GradCAM(model)
    assert default.layer_name == "2" and default.layer is model[2]
    by_name, by_module = GradCAM(model, layer="2"), GradCAM(model, layer=model[2])
    torch.testing.assert_close(default.attribute(x, target=1), by_name.attribute(x, target=1))
    torch.testing.assert_close(default.attribute(x, target=1), by_module.attribute(x, target=1))
    first = GradCAMPlusPlus(model, layer="0")
    assert first.cam_low_res(x, target=0).shape == (2, 1, 7, 9)
    assert default.cam_low_res(x, target=0).shape == (2, 1, 4, 5)
    # the maps recomputed from the layer's activations and gradients, by hand (no library hooks):
    # Grad-CAM = relu(Σ_k mean(∂S/∂A_k) A_k), Grad-CAM++ = relu(Σ_k w_k A_k), upsampled bilinearly
    targets = torch.tensor([0, 2])
    for method, split in ((default, 3), (first, 1)):
        acts = model[:split](x).detach().requires_grad_(True)
        score = model[split:](acts).gather(1, targets[:, None]).sum()
        (grads,) = torch.autograd.grad(score, acts)
        if isinstance(method, GradCAMPlusPlus):
            weights = grad_cam_plus_plus_weights(acts.detach(), grads)
        else:
            weights = grads.mean(dim=(2, 3))
        low = F.relu((weights[:, :, None, None] * acts.detach()).sum(1, keepdim=True))
        assert float(low.amax()) > 0 and float((low == 0).float().mean()) < 1  # a map with something in it
        cam = method.attribute(x, target=[0, 2])
        torch.testing.assert_close(method.cam_low_res(x, target=[0, 2]), low)
        torch.testing.assert_close(cam, F.interpolate(low, size=(7, 9), mode="bilinear", align_corners=False))
    assert default.output_kind == "cam" and default.required_ndim == 4
    assert "layer='2'" in repr(default)


def test_layer_errors():
    model = _two_conv_net()
    with pytest.raises(ValueError, match=r"`layer` 'features\.3' is not a module name.*'0', '2'"):
        GradCAM(model, layer="features.3")
    with pytest.raises(ValueError, match="not a submodule"):
        GradCAM(model, layer=nn.Conv2d(3, 4, 3))
    with pytest.raises(TypeError, match="`layer` must be None"):
        GradCAM(model, layer=3)
    with pytest.raises(ValueError, match="has none"):
        GradCAM(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="shape"):
        GradCAM(model).attribute(torch.rand(2, 3, 7))
    wrapper = nn.Module()
    wrapper.net, wrapper.unused = model, nn.Conv2d(3, 3, 1)
    wrapper.forward = model.forward  # `unused` never runs
    wrapper.eval()
    with pytest.raises(ValueError, match="not called"):
        GradCAM(wrapper, layer="unused").attribute(torch.rand(1, 3, 4, 4))


def test_hooks_removed_also_on_exception():
    model = _two_conv_net()
    GradCAM(model).attribute(torch.rand(1, 3, 6, 6))
    assert all(len(m._forward_hooks) == 0 for m in model.modules())

    class Raises(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)

        def forward(self, x):
            self.conv(x)
            raise RuntimeError("boom after the layer")

    bad = Raises().eval()
    with pytest.raises(RuntimeError, match="boom after the layer"):
        GradCAMPlusPlus(bad).attribute(torch.rand(1, 1, 3, 3))
    with pytest.raises(RuntimeError, match="boom after the layer"):  # without the base class's guard
        layer_activations_and_grads(bad, bad.conv, torch.rand(1, 1, 3, 3), 0)
    assert len(bad.conv._forward_hooks) == 0


def test_inplace_relu_after_layer_does_not_change_cam():
    a, b = small_cnn(seed=4, inplace=True), small_cnn(seed=4, inplace=False)
    x = torch.rand(3, 3, 6, 6)
    for method in (GradCAM, GradCAMPlusPlus):
        # layer "0" is a conv followed directly by ReLU(inplace=True): activations keep negatives
        torch.testing.assert_close(method(a, layer="0").attribute(x, target=2), method(b, layer="0").attribute(x, target=2))
    assert a[1].inplace and a[3].inplace


def test_layer_called_twice_uses_last_call():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(5)
            self.conv = nn.Conv2d(2, 2, 3, padding=1)
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(self.conv(torch.relu(self.conv(x))).mean(dim=(2, 3)))

    model = Twice().eval()
    x = torch.rand(2, 2, 5, 5)
    acts, grads, _ = layer_activations_and_grads(model, model.conv, x, 0)
    with torch.no_grad():
        torch.testing.assert_close(acts, model.conv(torch.relu(model.conv(x))))
    torch.testing.assert_close(grads, model.fc.weight[0].view(1, 2, 1, 1).expand(2, 2, 5, 5) / 25)


def test_functional_forms_and_batched_equals_per_sample():
    model = _two_conv_net()
    x = torch.rand(3, 3, 8, 8)
    for fn in (grad_cam, grad_cam_plus_plus):
        batched = fn(model, x, [0, 1, 2])
        single = torch.cat([fn(model, x[i : i + 1], i) for i in range(3)])
        torch.testing.assert_close(batched, single)


def test_resolve_layer_returns_name_and_module():
    model = _two_conv_net()
    assert resolve_layer(model, None) == ("2", model[2])
    assert resolve_layer(model, model[0]) == ("0", model[0])


@pytest.mark.slow
def test_efficientnet_guided_backprop_and_grad_cam_leave_model_untouched():
    from smoothsal.methods.gradient import VanillaGradient
    from smoothsal.methods.guided_backprop import GuidedBackprop
    from smoothsal.models.zoo import efficientnet_lite0

    model = efficientnet_lite0()
    relu6 = [m for m in model.modules() if isinstance(m, nn.ReLU6)]
    flags = [m.inplace for m in relu6]
    x = torch.rand(2, 3, 224, 224)
    gb = GuidedBackprop(model).attribute(x, target=[281, 285])
    cam = GradCAM(model).attribute(x, target=[281, 285])
    assert gb.shape == x.shape and torch.isfinite(gb).all() and gb.abs().sum() > 0
    assert not torch.allclose(gb, VanillaGradient(model).attribute(x, target=[281, 285]))  # ReLU6s intercepted
    # the CAM from the conv head's activations and gradients: relu(Σ_k mean(∂S/∂A_k) A_k), upsampled
    acts, grads, _ = layer_activations_and_grads(model, GradCAM(model).layer, x, [281, 285])
    low = F.relu((grads.mean(dim=(2, 3))[:, :, None, None] * acts).sum(1, keepdim=True))
    assert float(low.amax()) > 0
    torch.testing.assert_close(cam, F.interpolate(low, size=(224, 224), mode="bilinear", align_corners=False),
                               rtol=1e-4, atol=1e-5 * float(low.amax()))
    assert GradCAM(model).layer_name.endswith("_conv_head")
    assert [m.inplace for m in relu6] == flags
    assert all("forward" not in m.__dict__ and not m._forward_hooks for m in model.modules())
    assert not model.training
