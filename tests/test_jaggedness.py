"""Jaggedness: the SmoothGrad paper's Fig. 2 line, its roughness, and the field roughness."""

import pytest
import torch
from torch import nn

from smoothsal.methods.gradient import VanillaGradient
from smoothsal.metrics.jaggedness import (
    gradient_along_line,
    gradient_roughness,
    line_roughness,
)
from smoothsal.smoothing import Smooth


class ImageLinear(nn.Module):
    """Logits ``[w·x + b0, -(w·x + b0)]`` on images; the gradient of class 0 is ``w`` everywhere."""

    def __init__(self, w: torch.Tensor, bias: float = 0.0) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.bias = bias
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x * self.w).flatten(1).sum(dim=1) + self.bias
        return torch.stack([s, -s], dim=1)


class HalfSquare(nn.Module):
    """Logits ``[½‖x‖², 0]``: the gradient of class 0 is ``x`` itself."""

    def __init__(self) -> None:
        super().__init__()
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = 0.5 * x.pow(2).flatten(1).sum(dim=1)
        return torch.stack([q, torch.zeros_like(q)], dim=1)


def relu_mlp(width: int = 1024, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(3 * 8 * 8, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 3)
    ).eval()


def test_linear_model_line_is_flat_and_roughness_is_zero():
    torch.manual_seed(0)
    w = torch.randn(1, 3, 6, 6)
    w[0, 1, 2, 4] = 5.0  # the largest |gradient| entry: the default pixel
    model = ImageLinear(w)
    x = torch.rand(1, 3, 6, 6)
    line = gradient_along_line(VanillaGradient(model), x, t_steps=11, targets=0)
    assert line.pixel == (2, 4)
    assert line.t.shape == (11,) and line.partials.shape == (11, 3) and line.keeps_class.shape == (11,)
    torch.testing.assert_close(line.partials, (w[0, :, 2, 4] / 5.0).expand(11, 3))
    assert line_roughness(line) == 0.0 and line.roughness == 0.0
    assert torch.equal(gradient_roughness(VanillaGradient(model), torch.rand(4, 3, 6, 6)), torch.zeros(4))


def test_quadratic_model_partials_are_linear_in_t():
    x = torch.rand(1, 3, 5, 5) + 0.5
    line = gradient_along_line(VanillaGradient(HalfSquare()), x, pixel=(1, 3), t_steps=6, eps_std=0.05, seed=3)
    eps = line.direction[0, :, 1, 3]
    # ∂(½‖x‖²)/∂x = x, so along x + tε the pixel's partials are x_p + t ε_p (hand computation)
    expected = x[0, :, 1, 3][None] + line.t[:, None] * eps[None]
    torch.testing.assert_close(line.raw_partials, expected)
    torch.testing.assert_close(line.raw_partials.diff(dim=0).diff(dim=0), torch.zeros(4, 3), atol=1e-6, rtol=0)
    # normalised by the largest |entry| of x + tε at each t
    scale = (x + line.t.view(-1, 1, 1, 1) * line.direction).flatten(1).abs().amax(dim=1)
    torch.testing.assert_close(line.scale, scale)
    torch.testing.assert_close(line.partials, expected / scale[:, None])
    # ε ~ N(0, (eps_std · range)²): the paper's N(0, 0.01²) for an image spanning [0, 1]
    span = float(x.max() - x.min())
    assert 0.7 < float(line.direction.std()) / (0.05 * span) < 1.3


def test_relu_net_is_rougher_than_its_smoothgrad():
    net = relu_mlp()
    x = torch.rand(2, 3, 8, 8)
    smooth = Smooth(VanillaGradient(net), noise_level=0.15, n_samples=16)
    raw_r = gradient_roughness(VanillaGradient(net), x, radius=0.01, n_pairs=4)
    smooth_r = gradient_roughness(smooth, x, radius=0.01, n_pairs=4)
    assert (raw_r > 2 * smooth_r).all(), (raw_r, smooth_r)
    assert (raw_r > 0).all()
    raw_line = gradient_along_line(VanillaGradient(net), x[:1], t_steps=41)
    smooth_line = gradient_along_line(smooth, x[:1], t_steps=41)
    assert smooth_line.pixel == raw_line.pixel  # same default pixel for both
    assert raw_line.keeps_class.all() and smooth_line.keeps_class.all()
    assert raw_line.roughness > smooth_line.roughness > 0


def test_keeps_class_flags_a_crossed_decision_boundary():
    torch.manual_seed(1)
    w = torch.randn(1, 3, 4, 4)
    x = torch.rand(1, 3, 4, 4)
    probe = gradient_along_line(VanillaGradient(ImageLinear(w)), x, t_steps=11, eps_std=0.05, seed=7)
    # bias so that the score (w·(x + tε) + b) changes sign at t = 0.45: the class flips there
    wx, we = float((w * x).sum()), float((w * probe.direction).sum())
    model = ImageLinear(w, bias=-wx - 0.45 * we)
    with pytest.warns(UserWarning, match="change the predicted class"):
        line = gradient_along_line(VanillaGradient(model), x, t_steps=11, eps_std=0.05, seed=7)
    torch.testing.assert_close(line.direction, probe.direction)
    expected = line.t < 0.45
    assert torch.equal(line.keeps_class, expected)


def test_roughness_is_seeded_and_needs_targets_without_model():
    net = relu_mlp(width=64)
    x = torch.rand(3, 3, 8, 8)
    a = gradient_roughness(VanillaGradient(net), x, n_pairs=3, seed=1)
    torch.testing.assert_close(a, gradient_roughness(VanillaGradient(net), x, n_pairs=3, seed=1))
    # batch-independent targets: per-sample result equals the batched one
    torch.testing.assert_close(
        gradient_roughness(VanillaGradient(net), x, targets=[0, 1, 2], n_pairs=3, seed=1)[:1],
        gradient_roughness(VanillaGradient(net), x[:1], targets=[0], n_pairs=3, seed=1),
        rtol=1e-4,
        atol=1e-6,
    )

    class NoModel:
        def attribute(self, inputs, target=None):
            return inputs

    with pytest.raises(TypeError, match="targets"):
        gradient_roughness(NoModel(), x)
    # a map equal to the input moves exactly by δ: relative change ‖δ‖/‖x‖
    assert (gradient_roughness(NoModel(), x, targets=0, radius=0.01) < 0.05).all()


def test_errors_name_the_argument():
    model = ImageLinear(torch.ones(1, 3, 4, 4))
    x = torch.rand(1, 3, 4, 4)
    with pytest.raises(ValueError, match="one image"):
        gradient_along_line(VanillaGradient(model), torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match="t_steps"):
        gradient_along_line(VanillaGradient(model), x, t_steps=1)
    with pytest.raises(ValueError, match="pixel"):
        gradient_along_line(VanillaGradient(model), x, pixel=(4, 0))
    with pytest.raises(ValueError, match="eps_std"):
        gradient_along_line(VanillaGradient(model), x, eps_std=-0.1)
    with pytest.raises(ValueError, match="radius"):
        gradient_roughness(VanillaGradient(model), x, radius=0.0)
    with pytest.raises(ValueError, match="n_pairs"):
        gradient_roughness(VanillaGradient(model), x, n_pairs=0)
    with pytest.raises(TypeError, match="model"):
        gradient_along_line(_NoModel(), x)


class _NoModel:
    def attribute(self, inputs, target=None):
        return inputs


def test_line_of_a_smoothed_method_follows_the_vanilla_pixel():
    """With ``pixel=None`` every method follows the pixel of the largest vanilla partial, so lines compare."""
    net = relu_mlp(width=32)
    x = torch.rand(1, 3, 8, 8)
    raw = gradient_along_line(VanillaGradient(net), x, t_steps=5)
    smooth = gradient_along_line(Smooth(VanillaGradient(net), noise_level=0.15, n_samples=4), x, t_steps=5)
    assert raw.pixel == smooth.pixel
    assert torch.equal(raw.direction, smooth.direction)  # same seed, same line
