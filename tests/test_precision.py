"""Mixed precision (smoothsal.execution.precision) and the --device / --precision settings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from smoothsal.execution.devices import resolve_device
from smoothsal.execution.precision import MixedPrecision, parse_precision, with_precision
from smoothsal.methods.gradient import VanillaGradient


def test_parse_precision_names_and_errors() -> None:
    assert parse_precision("float32") is None and parse_precision(None) is None
    assert parse_precision("bf16") is torch.bfloat16 and parse_precision("FP16") is torch.float16
    assert parse_precision(torch.bfloat16) is torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        parse_precision("int8")
    with pytest.raises(ValueError, match="precision"):
        parse_precision(torch.float64)


def test_with_precision_float32_is_the_model_itself() -> None:
    net = nn.Linear(3, 2)
    assert with_precision(net, "float32") is net
    wrapped = with_precision(net, "bf16")
    assert isinstance(wrapped, MixedPrecision) and wrapped.model is net
    with pytest.raises(ValueError, match="dtype"):
        MixedPrecision(net, "float32")


def test_bf16_gradient_of_a_linear_model_is_the_rounded_weight_row() -> None:
    """y = W x + b under bf16 autocast: dy_c/dx is W_c rounded to bfloat16 (8-bit mantissa),
    and the logits come back as float32."""
    torch.manual_seed(0)
    net = nn.Linear(16, 4).eval()
    x = torch.rand(3, 16)
    wrapped = MixedPrecision(net, torch.bfloat16)
    assert wrapped(x).dtype == torch.float32
    grad = VanillaGradient(wrapped).attribute(x, target=2)
    expected = net.weight[2].detach().to(torch.bfloat16).float().expand(3, -1)
    assert torch.equal(grad, expected)
    exact = net.weight[2].detach().expand(3, -1)
    rel = (grad - exact).abs().max() / exact.abs().max()
    assert 0 < rel <= 2.0**-8  # rounding happened, within bfloat16's half-ulp


def test_wrapper_keeps_zoo_attributes_and_leaves_model_state() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    net.image_size, net.class_names = 16, ["a", "b", "c"]
    net.train()
    wrapped = MixedPrecision(net, "bf16")
    assert wrapped.image_size == 16 and wrapped.class_names == ["a", "b", "c"]
    with pytest.warns(UserWarning, match="training mode"):
        VanillaGradient(wrapped).attribute(torch.rand(2, 3, 16, 16), target=0)
    assert net.training and all(p.grad is None for p in net.parameters())


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto")
    with pytest.raises(ValueError, match="device"):
        resolve_device("not-a-device")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda:0")


def test_explain_config_checks_precision_and_run_options_the_device() -> None:
    from smoothsal.studies.explain.config import ExplainConfig
    from smoothsal.studies.options import RunOptions

    plain = ExplainConfig()
    half = ExplainConfig(precision="bf16")
    assert half.precision == "bfloat16"
    assert half.to_hash(0)["precision"] == "bfloat16" and "precision" not in plain.to_hash(0)
    with pytest.raises(ValueError, match="precision"):
        ExplainConfig(precision="int4")
    assert RunOptions(device="cpu").torch_device() == torch.device("cpu")  # the device is a run option: no hash
    with pytest.raises(ValueError, match="device"):
        RunOptions(device="tpu")


def test_attribution_leaves_parameters_untouched() -> None:
    """A method takes gradients w.r.t. the inputs only: no parameter gets a ``.grad`` and each
    keeps its ``requires_grad``; the map is the closed-form gradient of a ReLU net."""
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    net[0].bias.requires_grad_(False)
    before = [p.requires_grad for p in net.parameters()]
    x = torch.rand(3, 4)
    grad = VanillaGradient(net).attribute(x, target=1)
    assert [p.requires_grad for p in net.parameters()] == before and all(p.grad is None for p in net.parameters())
    mask = (net[0](x) > 0).float()
    expected = (net[2].weight[1] * mask) @ net[0].weight
    assert torch.allclose(grad, expected.detach(), atol=1e-6)
