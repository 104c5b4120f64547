"""Vision Transformers, Swin and ConvNeXt: CAMs on token-shaped layers, default layers, and every
registered gradient method on small random-weight instances of the real architectures."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from smoothsal.methods.deeplift import DeepLift
from smoothsal.methods.grad_cam import (
    GradCAM,
    GradCAMPlusPlus,
    architecture_family,
    default_layer_name,
    token_grid,
    to_feature_map,
)
from smoothsal.methods.gradient import VanillaGradient
from smoothsal.methods.guided_backprop import GuidedBackprop, uncovered_nonlinearities
from smoothsal.methods.integrated_gradients import IntegratedGradients
from smoothsal.registry import METHODS, build_method


def _need(module: str) -> None:
    """Skip without ``module``; make torchvision importable first (timm and transformers import it)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    from smoothsal.models.hubs import import_torchvision_quietly

    import_torchvision_quietly()



# ---- hand-made token models with a known answer --------------------------------------------------
class TokenModel(nn.Module):
    """Patches -> tokens ``[B, (1 +) h*w, C]`` (``tokens`` layer) -> logits = W · mean(patch tokens) + b.

    ∂S_c/∂A_jk = W_ck / (h w) for every patch token j (0 for the class token), so Grad-CAM's
    weights are w_k = W_ck / (h w) and the low-resolution CAM is ReLU(Σ_k w_k A_jk) on the grid.
    """

    def __init__(self, patch: int = 4, dim: int = 6, classes: int = 3, cls_token: bool = True) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.patch = patch
        self.embed = nn.Linear(3 * patch * patch, dim)
        self.cls = nn.Parameter(torch.randn(1, 1, dim, generator=g)) if cls_token else None
        self.tokens = nn.Identity()
        self.head = nn.Linear(dim, classes)
        with torch.no_grad():
            self.embed.weight.copy_(torch.randn(dim, 3 * patch * patch, generator=g) * 0.3)
            self.embed.bias.fill_(1.0)  # mostly positive tokens: Grad-CAM++ keeps a non-zero map
            self.head.weight.copy_(torch.randn(classes, dim, generator=g))
            self.head.weight[1] = self.head.weight[1].abs() - 0.3  # class 1: mostly positive weights
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = F.unfold(x, self.patch, stride=self.patch).transpose(1, 2)  # [B, h*w, 3 p p], row-major
        t = self.embed(p)
        if self.cls is not None:
            t = torch.cat([self.cls.expand(x.shape[0], -1, -1), t], dim=1)
        t = self.tokens(t)
        patches = t[:, 1:] if self.cls is not None else t
        return self.head(patches.mean(dim=1))


def _expected_cam(model: TokenModel, x: torch.Tensor, target: int, plus_plus: bool = False) -> torch.Tensor:
    """The CAM by hand: token activations on the grid, weights from the head, upsampled."""
    b, _, H, W = x.shape
    h, w = H // model.patch, W // model.patch
    acts = model.embed(F.unfold(x, model.patch, stride=model.patch).transpose(1, 2))  # [B, hw, C]
    acts = acts.transpose(1, 2).reshape(b, -1, h, w)  # [B, C, h, w]
    g = model.head.weight[target] / (h * w)  # the gradient, the same at every patch token
    if plus_plus:  # eq. 19 with a constant g: alpha = 1 / (2 + g ΣA), w = Σ_ij alpha relu(g)
        weights = (h * w) * g.clamp(min=0) / (2 + g * acts.sum(dim=(2, 3)))
    else:
        weights = g.expand(b, -1)
    cam = (weights[:, :, None, None] * acts).sum(1, keepdim=True).clamp(min=0)
    return F.interpolate(cam, size=(H, W), mode="bilinear", align_corners=False)


@pytest.mark.parametrize("cls_token", [True, False])
@pytest.mark.parametrize(("method", "plus_plus"), [(GradCAM, False), (GradCAMPlusPlus, True)])
@pytest.mark.parametrize("hw", [(16, 16), (12, 20)])
def test_cam_on_token_layer_matches_hand_computation(cls_token, method, plus_plus, hw):
    torch.manual_seed(1)
    model = TokenModel(cls_token=cls_token)
    x = torch.rand(2, 3, *hw)
    cam = method(model, layer="tokens").attribute(x, target=1)
    assert cam.shape == (2, 1, *hw)
    with torch.no_grad():
        expected = _expected_cam(model, x, 1, plus_plus)
    assert expected.abs().max() > 0  # the ReLU keeps something: the check is not trivially 0 = 0
    torch.testing.assert_close(cam, expected, rtol=1e-4, atol=1e-6)


def test_token_layout_can_be_given_explicitly():
    model = TokenModel(cls_token=True)
    x = torch.rand(1, 3, 16, 16)
    auto = GradCAM(model, layer="tokens").attribute(x, target=0)
    explicit = GradCAM(model, layer="tokens", layout="tokens", prefix_tokens=1).attribute(x, target=0)
    by_hand = GradCAM(  # pytorch-grad-cam's reshape_transform for ViTs
        model, layer="tokens", layout=lambda t: t[:, 1:].reshape(t.shape[0], 4, 4, -1).permute(0, 3, 1, 2)
    ).attribute(x, target=0)
    torch.testing.assert_close(auto, explicit)
    torch.testing.assert_close(auto, by_hand)
    with pytest.raises(ValueError, match="layout"):
        GradCAM(model, layer="tokens", layout="nchw").attribute(x, target=0)
    with pytest.raises(ValueError, match="`layout` must be one of"):
        GradCAM(model, layer="tokens", layout="columns")


class TinySwin(nn.Module):
    """A channels-last feature map ``[B, h, w, C]`` (as Swin's stages) -> linear head on its mean."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 4, stride=4)
        self.norm = nn.LayerNorm(5)
        self.head = nn.Linear(5, 2)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.norm(self.conv(x).permute(0, 2, 3, 1))  # [B, h, w, C]
        return self.head(f.mean(dim=(1, 2)))


def test_swin_layout_is_chosen_automatically_and_matches_the_hand_computation():
    model = TinySwin()
    x = torch.rand(2, 3, 16, 16)
    assert architecture_family(model) == "swin" and default_layer_name(model) == "norm"
    cam = GradCAM(model).attribute(x, target=1)  # layer=None -> "norm", layout -> "nhwc"
    with torch.no_grad():
        acts = model.norm(model.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # [B, C, h, w]
        weights = model.head.weight[1] / 16
        low = (weights[None, :, None, None] * acts).sum(1, keepdim=True).clamp(min=0)
        expected = F.interpolate(low, size=(16, 16), mode="bilinear", align_corners=False)
    assert expected.abs().max() > 0
    torch.testing.assert_close(cam, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("n", "hw", "prefix", "expected"),
    [(197, (224, 224), None, (1, 14, 14)), (198, (224, 224), None, (2, 14, 14)), (196, (224, 224), None, (0, 14, 14)),
     (32, (32, 64), None, (0, 4, 8)), (33, (32, 64), None, (1, 4, 8)), (20, (16, 16), 4, (4, 4, 4))],
)  # fmt: skip
def test_token_grid(n, hw, prefix, expected):
    assert token_grid(n, hw, prefix) == expected


def test_token_grid_refuses_tokens_that_form_no_grid():
    with pytest.raises(ValueError, match="tried 0-8 prefix tokens"):
        token_grid(60, (16, 16))  # 52..60 holds no square
    with pytest.raises(ValueError, match="after 1 prefix tokens"):
        token_grid(23, (16, 16), 1)
    with pytest.raises(ValueError, match="'nhwc' needs"):
        to_feature_map(torch.zeros(2, 5, 3), "nhwc", (4, 4))


# ---- real architectures, small random-weight instances -------------------------------------------
def _timm(name: str, **kw) -> nn.Module:
    _need("timm")
    import timm
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=4, **kw).eval()


def _tv_vit() -> nn.Module:
    _need("torchvision")
    from smoothsal.models.hubs import import_torchvision

    tv = import_torchvision()
    torch.manual_seed(0)
    return tv.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=4
    ).eval()


def _tv_resnet18() -> nn.Module:
    _need("torchvision")
    from smoothsal.models.hubs import import_torchvision

    torch.manual_seed(0)
    return import_torchvision().models.resnet18(num_classes=4).eval()


def _hf_vit() -> nn.Module:
    _need("transformers")
    import transformers
    from smoothsal.models.hubs import HFLogits, import_torchvision_quietly

    import_torchvision_quietly()
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=32, num_labels=4)  # fmt: skip
    return HFLogits(transformers.ViTForImageClassification(cfg)).eval()


ARCHS = {
    # name: (builder, input side, family, default layer)
    "timm-vit": (lambda: _timm("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2), 32, "vit", "blocks.1.norm1"),
    "timm-deit-distilled": (lambda: _timm("deit_tiny_distilled_patch16_224", img_size=32, patch_size=8, depth=2),
                            32, "vit", "blocks.1.norm1"),
    "timm-swin": (lambda: _timm("swin_tiny_patch4_window7_224", img_size=32, embed_dim=16, depths=(1, 1),
                                num_heads=(1, 2), window_size=4), 32, "swin", "norm"),
    "timm-convnext": (lambda: _timm("convnext_atto", dims=(8, 16, 24, 32), depths=(1, 1, 1, 1)), 32, "convnext",
                      "stages.3"),
    "torchvision-vit": (_tv_vit, 32, "vit", "encoder.layers.encoder_layer_1.ln_1"),
    "torchvision-resnet18": (_tv_resnet18, 32, "resnet", "layer4"),
    "hf-vit": (_hf_vit, 32, "vit", "model.vit.layers.1.layernorm_before"),
}  # fmt: skip


@pytest.fixture(scope="module", params=sorted(ARCHS))
def arch(request):
    build, side, family, layer = ARCHS[request.param]
    return request.param, build(), side, family, layer


def test_family_and_default_cam_layer(arch):
    _, model, side, family, layer = arch
    assert architecture_family(model) == family
    assert default_layer_name(model) == layer
    x = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(0))
    for method in (GradCAM, GradCAMPlusPlus):
        cam = method(model).attribute(x, target=torch.tensor([0, 3]))
        assert cam.shape == (2, 1, side, side)
        assert torch.isfinite(cam).all() and cam.min() >= 0


def test_every_registered_method_runs_and_ig_is_complete(arch):
    name, model, side, _, _ = arch
    x = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    for method_name, spec in METHODS.items():
        if spec.kind != "method":
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # guided/deeplift name what they do not cover (tested below)
            method = build_method(method_name, model, image_size=side)
            out = method.attribute(x, target=2)
        cam = method_name in ("gradcam", "gradcam++")
        assert out.shape == ((2, 1, side, side) if cam else x.shape), (name, method_name, out.shape)
        assert torch.isfinite(out).all(), (name, method_name)
    # a value check on every architecture: IG's completeness, Σ attributions = F(x) - F(x'). The
    # baseline is another random image, not black: with zero conv biases (timm's init) ConvNeXt's
    # stem LayerNorm makes F(αx) constant for α > 0 and jump at α = 0, which no quadrature sees.
    baseline = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(5))
    attr, delta = IntegratedGradients(model, steps=64, baseline=baseline).attribute_with_delta(x, target=2)
    with torch.no_grad():
        gap = (model(x) - model(baseline))[:, 2]
    assert delta.absolute.max() < 0.05 * gap.abs().max() + 1e-4, (name, delta.absolute, gap)


def test_guided_backprop_on_a_vit_names_what_it_does_not_cover_and_is_the_gradient():
    model = _timm("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with pytest.warns(UserWarning, match="no rectifier module") as record:
        gb = GuidedBackprop(model)
    message = str(record[0].message)
    for part in ("GELU ×1 (blocks.0.mlp.act)", "Attention ×1 (blocks.0.attn)", "LayerNorm ×3"):
        assert part in message
    torch.testing.assert_close(gb.attribute(x, target=0), VanillaGradient(model).attribute(x, target=0))
    with pytest.raises(ValueError, match="GELU"):
        GuidedBackprop(model, on_uncovered="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GuidedBackprop(model, on_uncovered="ignore")


class _GuidedReLU(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients where the input was positive (Springenberg
    et al. 2015, arXiv:1412.6806, eq. 5): an independent implementation, by module replacement."""

    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (x,) = ctx.saved_tensors
        return grad.clamp_min(0) * (x > 0)


class _GuidedReLUModule(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _GuidedReLU.apply(x)


def test_guided_backprop_on_resnet_covers_everything_and_equals_the_rule_by_hand():
    import copy

    model = _tv_resnet18()
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert uncovered_nonlinearities(model, (nn.ReLU, nn.ReLU6, nn.LeakyReLU)) == {}  # only ReLU is nonlinear
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to report
        got = GuidedBackprop(model).attribute(x, target=[1, 3])
    guided = copy.deepcopy(model)
    for parent in guided.modules():  # every ReLU (resnet reuses one per block) becomes the guided one
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                setattr(parent, name, _GuidedReLUModule())
    xg = x.clone().requires_grad_(True)
    out = guided(xg)
    (expected,) = torch.autograd.grad(out[[0, 1], [1, 3]].sum(), xg)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    plain = VanillaGradient(model).attribute(x, target=[1, 3])
    assert not torch.allclose(got, plain, atol=1e-6)  # the rule changed the map: the check is not the gradient's
    assert all(m.inplace for m in relus)  # torchvision's in-place ReLUs are restored


def test_deeplift_on_transformers_warns_and_keeps_raising_for_a_bare_softmax():
    swin = _timm("swin_tiny_patch4_window7_224", img_size=32, embed_dim=16, depths=(1, 1), num_heads=(1, 2),
                 window_size=4)  # fmt: skip
    # Swin's attention holds an nn.Softmax: reported as part of the attention, not refused
    found = uncovered_nonlinearities(swin, (nn.GELU,))
    assert "WindowAttention" in found and "Softmax" not in found and "LayerNorm" in found
    with pytest.warns(UserWarning, match=r"DeepLift .*LayerNorm ×7 .*WindowAttention ×2 \(layers.0.blocks.0.attn"):
        DeepLift(swin)
    with pytest.raises(ValueError, match="WindowAttention"):
        DeepLift(swin, on_uncovered="raise")
    tv_vit = _tv_vit()  # nn.MultiheadAttention: warned about, no longer refused
    with pytest.warns(UserWarning, match="MultiheadAttention ×2"):
        dl = DeepLift(tv_vit)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    assert torch.isfinite(dl.attribute(x, target=1)).all()
    with pytest.raises(ValueError, match="Softmax"):
        DeepLift(nn.Sequential(nn.Flatten(), nn.Linear(12, 3), nn.Softmax(dim=1)).eval()).attribute(torch.rand(2, 12), 0)
