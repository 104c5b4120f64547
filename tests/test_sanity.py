"""Sanity checks (Adebayo et al. 2018): the gradient passes, an input-only edge detector fails."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import small_cnn
from torch import nn

from smoothsal.methods.gradient import VanillaGradient
from smoothsal.metrics.sanity import (
    DataRandomizationResult,
    MPRTResult,
    data_randomization,
    model_parameter_randomization,
    randomizable_layers,
    randomize_layers,
    sanity_verdict,
    spaced_layers,
)


class Sobel:
    """An edge detector of the input that ignores the model (Adebayo et al.'s Fig. 1 control)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def attribute(self, inputs: torch.Tensor, target=None) -> torch.Tensor:
        kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        k = torch.stack([kx, kx.T])[:, None]  # [2, 1, 3, 3]
        gray = inputs.mean(dim=1, keepdim=True)
        g = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), k)  # [B, 2, H, W]
        return g.norm(dim=1, keepdim=True).expand_as(inputs)


def bn_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, 4),
    )
    with torch.no_grad():  # non-trivial running statistics, as after training
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_randomizable_layers_in_definition_order():
    assert randomizable_layers(bn_cnn()) == ["0", "1", "3", "5", "9"]
    assert spaced_layers(bn_cnn(), 3) == ["0", "3", "9"]
    assert spaced_layers(bn_cnn(), 10) == ["0", "1", "3", "5", "9"]


def _changed(a: nn.Module, b: nn.Module, name: str) -> bool:
    pa, pb = dict(a.get_submodule(name).named_parameters()), dict(b.get_submodule(name).named_parameters())
    return any(not torch.equal(pa[k], pb[k]) for k in pa)


def test_randomize_layers_cascading_independent_and_original_untouched():
    model = bn_cnn().train()  # a train flag that must survive
    before = copy.deepcopy(model.state_dict())
    names = randomizable_layers(model)
    cascade = list(randomize_layers(model, "cascading", seed=3))
    assert [n for n, _ in cascade] == names[::-1]
    for step, (name, randomized) in enumerate(cascade):
        assert randomized is not model and randomized.training
        done = set(names[len(names) - 1 - step :])
        assert {n for n in names if _changed(model, randomized, n)} == done, name
    independent = list(randomize_layers(model, "independent", seed=3))
    assert len(independent) == len(names)
    for name, randomized in independent:
        assert [n for n in names if _changed(model, randomized, n)] == [name]
        # the same layer gets the same random weights in both orders
        torch.testing.assert_close(
            randomized.get_submodule(name).weight, cascade[-1][1].get_submodule(name).weight
        )
    # BatchNorm: affine parameters redrawn, running statistics kept
    bn = cascade[-1][1][1]
    torch.testing.assert_close(bn.running_mean, before["1.running_mean"])
    assert bn.weight.std() > 0.3  # N(0, 1) draws, not the constant 1 of reset_parameters()
    # same seed, same weights; another seed, other weights
    again = next(iter(randomize_layers(model, "independent", layers=["9"], seed=3)))[1]
    other = next(iter(randomize_layers(model, "independent", layers=["9"], seed=4)))[1]
    torch.testing.assert_close(again[9].weight, independent[0][1][9].weight)
    assert not torch.equal(other[9].weight, again[9].weight)
    # the original: same object state, same values, same flag
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert model.training


def test_mprt_gradient_falls_and_passes_sobel_fails(images):
    model = bn_cnn()
    before = copy.deepcopy(model.state_dict())
    grad = model_parameter_randomization(VanillaGradient, model, images, seed=0)
    assert isinstance(grad, MPRTResult) and grad.layers == ["9", "5", "3", "1", "0"]
    assert grad.spearman_abs.shape == grad.ssim.shape == grad.topk_iou.shape == (5, 16)
    curve = grad.mean_similarity()
    # measured: 0.26 (top layer only) -> 0.003 (all layers)
    assert curve[-1] < 0.2 and curve[0] > curve[-1] + 0.1
    assert grad.mean_similarity("ssim")[-1] < 0.3
    verdict = sanity_verdict(grad)  # mean over the cascade: 0.26, 0.155, 0.161, -0.009, 0.003
    assert verdict.passed and verdict.score == pytest.approx(float(curve.mean().abs()))
    assert verdict.score < 0.2 and "cascade" in verdict.reason

    edges = model_parameter_randomization(Sobel, model, images, seed=0)
    for metric in ("spearman_abs", "spearman_signed", "ssim", "topk_iou"):
        torch.testing.assert_close(edges.mean_similarity(metric), torch.ones(5))
    verdict = sanity_verdict(edges)
    assert not verdict.passed and verdict.score == pytest.approx(1.0)
    assert "1.000 >= 0.5" in verdict.reason and "fails" in verdict.reason
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_mprt_independent_and_layer_subset(images):
    model = bn_cnn()
    independent = model_parameter_randomization(VanillaGradient, model, images[:6], order="independent")
    assert independent.layers == ["9", "5", "3", "1", "0"] and independent.spearman_abs.shape == (5, 6)
    assert sanity_verdict(independent).passed
    full = model_parameter_randomization(VanillaGradient, model, images[:6])
    # a subset still randomizes everything above each named layer: its bottom row equals the full cascade's
    subset = model_parameter_randomization(VanillaGradient, model, images[:6], layers=["0", "9"])
    assert subset.layers == ["9", "0"]
    torch.testing.assert_close(subset.spearman_abs, full.spearman_abs[[0, -1]])
    assert len(subset.to_rows()) == 2 and set(subset.summary()) >= {"spearman_abs", "ssim"}


def test_targets_default_to_original_predictions(images):
    model = small_cnn()
    result = model_parameter_randomization(VanillaGradient, model, images[:4], layers=["6"])
    torch.testing.assert_close(result.targets, model(images[:4]).argmax(1))


def test_data_randomization_on_two_models(images):
    model, other = small_cnn(seed=0), small_cnn(seed=1)
    same = data_randomization(VanillaGradient, model, model, images)
    assert isinstance(same, DataRandomizationResult)
    torch.testing.assert_close(same.spearman_abs, torch.ones(16))
    assert not sanity_verdict(same).passed
    diff = data_randomization(VanillaGradient, model, other, images)
    assert diff.mean_similarity() < 0.9 and diff.ssim.shape == (16,)
    edges = data_randomization(Sobel, model, other, images)
    assert not sanity_verdict(edges).passed


def test_errors_name_the_argument(images):
    model = bn_cnn()
    with pytest.raises(ValueError, match=r"`layers` names \['nope'\]"):
        list(randomize_layers(model, layers=["nope"]))
    with pytest.raises(ValueError, match="`order` must be one of"):
        list(randomize_layers(model, order="bottom_up"))
    with pytest.raises(TypeError, match="`method` must be a factory"):
        model_parameter_randomization(VanillaGradient(model), model, images)
    result = model_parameter_randomization(VanillaGradient, model, images[:2], layers=["9"])
    with pytest.raises(ValueError, match=r"`threshold` must be a number in \(0, 1\]"):
        sanity_verdict(result, threshold=1.5)
    with pytest.raises(TypeError, match="`result` must be an MPRTResult"):
        sanity_verdict({"spearman_abs": 1.0})
