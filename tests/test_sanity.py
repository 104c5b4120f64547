"""Sanity checks (Adebayo et al. 2018; sMPRT/eMPRT of Hedström et al. 2023) and the rule fixed on
constructed cases with a known answer: an input-only edge detector fails, the gradient of a trained
model passes, a map of pure sampling noise is inconclusive."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import small_cnn
from torch import nn

from smoothsal.methods.controls import RandomAttribution
from smoothsal.methods.gradient import VanillaGradient
from smoothsal.metrics.intervals import images_needed
from smoothsal.metrics.sanity import (
    DataRandomizationResult,
    MPRTResult,
    data_randomization,
    discrete_entropy,
    efficient_model_parameter_randomization,
    emprt_verdict,
    retained_similarity,
    model_parameter_randomization,
    mprt_over_seeds,
    randomizable_layers,
    randomize_layers,
    sanity_verdict,
    smooth_model_parameter_randomization,
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
    # deterministic method: reference 1 by construction, so R is the mean similarity over the cascade
    assert grad.reference_by_construction and torch.equal(grad.reference, torch.ones(16))
    assert verdict.verdict == "pass" and verdict.score == pytest.approx(float(curve.mean()), abs=1e-6)
    assert verdict.interval.high < 0.5 and "cascading MPRT" in verdict.reason and "by construction" in verdict.reason

    edges = model_parameter_randomization(Sobel, model, images, seed=0)
    for metric in ("spearman_abs", "spearman_signed", "ssim", "topk_iou"):
        torch.testing.assert_close(edges.mean_similarity(metric), torch.ones(5))
    verdict = sanity_verdict(edges)
    assert verdict.verdict == "fail" and verdict.passed is False and verdict.score == pytest.approx(1.0)
    assert (verdict.interval.low, verdict.interval.high) == pytest.approx((1.0, 1.0)) and "fails" in verdict.reason
    # eMPRT: the edge map's complexity cannot rise (ratio exactly 1): fails
    torch.testing.assert_close(edges.emprt, torch.ones(16))
    assert emprt_verdict(edges.emprt).verdict == "fail"
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_mprt_independent_and_layer_subset(images):
    model = bn_cnn()
    independent = model_parameter_randomization(VanillaGradient, model, images[:6], order="independent")
    assert independent.layers == ["9", "5", "3", "1", "0"] and independent.spearman_abs.shape == (5, 6)
    assert sanity_verdict(independent).verdict == "pass"
    full = model_parameter_randomization(VanillaGradient, model, images[:6])
    # a subset still randomizes everything above each named layer: its bottom row equals the full cascade's
    subset = model_parameter_randomization(VanillaGradient, model, images[:6], layers=["0", "9"])
    assert subset.layers == ["9", "0"]
    torch.testing.assert_close(subset.spearman_abs, full.spearman_abs[[0, -1]])
    assert len(subset.to_rows()) == 2 and set(subset.summary()) >= {"spearman_abs", "ssim"}


def test_mprt_over_seeds_is_each_seed_alone_sharing_the_original_maps(images):
    """Result k is exactly the one-seed MPRT under seed k (a smoothed method, so r and r̃ are
    measured); the original maps and their reference are computed once, not once per seed."""
    from smoothsal.smoothing import Smooth

    model = bn_cnn()
    x = images[:5]

    def make(seed):
        return lambda m: Smooth(VanillaGradient(m), noise_level=0.1, n_samples=4, seed=seed)

    calls = []

    def first(m):
        calls.append(m)
        return make(0)(m)

    kw = dict(layers=["9", "3"], second_estimate=make(7), init="scaled")
    together = mprt_over_seeds(first, model, x, seeds=[2, 5, 11], **kw)
    assert sum(m is model for m in calls) == 1  # the original map (a), once for all three seeds
    for seed, res in zip([2, 5, 11], together):
        alone = model_parameter_randomization(make(0), model, x, seed=seed, **kw)
        for key in ("spearman_abs", "ssim", "topk_iou", "randomized_reference", "reference"):
            torch.testing.assert_close(getattr(res, key), getattr(alone, key), msg=f"{key}, seed {seed}")
    # different seeds draw different weights, so different similarities
    assert not torch.equal(together[0].spearman_abs, together[1].spearman_abs)
    # a reference r the caller recorded: the second estimate never runs on the original model
    seen = []

    def second(m):
        seen.append(m)
        return make(7)(m)

    given = mprt_over_seeds(make(0), model, x, seeds=[2], layers=["9", "3"], second_estimate=second, init="scaled",
                            reference=together[0].reference)  # fmt: skip
    assert len(seen) == 2 and all(m is not model for m in seen)  # the two randomized models only
    torch.testing.assert_close(given[0].spearman_abs, together[0].spearman_abs)
    torch.testing.assert_close(given[0].randomized_reference, together[0].randomized_reference)
    with pytest.raises(ValueError, match="`reference` must hold one value per input"):
        mprt_over_seeds(make(0), model, x, seeds=[2], layers=["9"], second_estimate=second, reference=torch.ones(3))
    assert sanity_verdict(together).interval.n == 5  # judged together: images × seeds
    with pytest.raises(ValueError, match="`seeds` must hold at least one"):
        mprt_over_seeds(VanillaGradient, model, x, seeds=[])
    with pytest.raises(ValueError, match="`seeds` must be distinct"):
        mprt_over_seeds(VanillaGradient, model, x, seeds=[1, 1])
    with pytest.raises(ValueError, match="seeds"):
        mprt_over_seeds(VanillaGradient, model, x, seeds=[-1])


def test_given_original_maps_are_used_not_recomputed(images):
    """The report card passes the maps it already has: the result is the same as computing them,
    the method is never run on the original model, and wrong shapes name the argument."""
    model = bn_cnn()
    x = images[:6]
    t = model(x).argmax(1)
    maps = VanillaGradient(model).attribute(x, t)
    full = model_parameter_randomization(VanillaGradient, model, x, t, layers=["9", "0"])
    models_seen = []

    def factory(m):
        models_seen.append(m)
        return VanillaGradient(m)

    given = model_parameter_randomization(factory, model, x, t, layers=["9", "0"], original=maps)
    assert model not in models_seen and len(models_seen) == 2  # only the two randomized models
    torch.testing.assert_close(given.spearman_abs, full.spearman_abs)
    torch.testing.assert_close(given.ssim, full.ssim)
    with pytest.raises(ValueError, match="original"):
        model_parameter_randomization(VanillaGradient, model, x, t, layers=["9"], original=maps[:2])


def test_targets_default_to_original_predictions(images):
    model = small_cnn()
    result = model_parameter_randomization(VanillaGradient, model, images[:4], layers=["6"])
    torch.testing.assert_close(result.targets, model(images[:4]).argmax(1))


def test_data_randomization_with_a_label_shuffled_model():
    """A real label-shuffled model (trained on the same images with permuted labels), not two untrained nets."""
    x, y = colour_squares(192, seed=1)
    true_model, shuffled = trained(x, y), trained(x, y[torch.randperm(192, generator=torch.Generator().manual_seed(9))])
    test, _ = colour_squares(16, seed=2)
    assert (true_model(test).argmax(1) == colour_squares(16, seed=2)[1]).float().mean() == 1.0
    same = data_randomization(VanillaGradient, true_model, true_model, test)
    assert isinstance(same, DataRandomizationResult)
    torch.testing.assert_close(same.spearman_abs, torch.ones(16))
    assert sanity_verdict(same).verdict == "fail"
    diff = data_randomization(VanillaGradient, true_model, shuffled, test)
    v = sanity_verdict(diff)  # measured: R = 0.10 [0.06, 0.13]
    assert v.verdict == "pass" and v.interval.high < 0.3, v.reason
    edges = data_randomization(Sobel, true_model, shuffled, test)
    assert sanity_verdict(edges).verdict == "fail"


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


# ---- the rule on constructed cases with a known answer --------------------------------------------
def colour_squares(n: int, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Dark noise with one bright 5×5 square whose colour (R, G or B) is the class."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g) * 0.3
    y = torch.randint(0, 3, (n,), generator=g)
    corner = torch.randint(0, size - 5, (n, 2), generator=g)
    for i in range(n):
        r, c = corner[i].tolist()
        x[i, :, r : r + 5, c : c + 5] = 0.1
        x[i, y[i], r : r + 5, c : c + 5] = 0.95
    return x, y


def trained(x: torch.Tensor, y: torch.Tensor, steps: int = 60) -> nn.Module:
    """A small CNN fitted by Adam for ``steps`` mini-batches (< 1 s)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 3),
    )  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (32,), generator=g)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained_model() -> nn.Module:
    return trained(*colour_squares(192, seed=1))


def test_rule_trained_gradient_passes_edges_fail_pure_noise_is_inconclusive(trained_model):
    x, _ = colour_squares(16, seed=3)
    kw = {"init": "scaled", "seed": 0}
    grad = sanity_verdict(model_parameter_randomization(VanillaGradient, trained_model, x, **kw))
    assert grad.verdict == "pass", grad.reason  # measured R = 0.26 [0.20, 0.32]
    edges = sanity_verdict(model_parameter_randomization(Sobel, trained_model, x, **kw))
    assert edges.verdict == "fail" and edges.score == pytest.approx(1.0)
    # a map that is pure sampling noise: two seeds of a random map share nothing, so there is
    # nothing randomization could destroy -> "inconclusive", never "pass" (its similarity after
    # randomization is ≈ 0, which the earlier rule read as a pass)
    noise = model_parameter_randomization(
        lambda m: RandomAttribution(m, seed=1), trained_model, x, second_estimate=lambda m: RandomAttribution(m, seed=2),
        **kw,
    )  # fmt: skip
    assert not noise.reference_by_construction and noise.reference.abs().max() < 0.2  # 256 pixels: sd 1/16
    v = sanity_verdict(noise)
    assert v.verdict == "inconclusive" and v.passed is None and "more samples per map" in v.reason
    assert v.reference.low < 0.1  # measured: 0.037 [0.016, 0.058] -- excludes 0 by chance, not 0.1


def test_noise_floor_of_a_smoothed_map_is_measured_and_used(trained_model):
    """sMPRT: two seeds of the smoothed gradient agree to r < 1, and R divides by that reference."""
    x, _ = colour_squares(8, seed=4)
    res = smooth_model_parameter_randomization(VanillaGradient, trained_model, x, n_samples=4, noise_level=0.2,
                                               layers=spaced_layers(trained_model, 2))  # fmt: skip
    assert not res.reference_by_construction
    assert bool((res.reference < 0.999).all()) and float(res.reference.mean()) > 0.2  # measured: 0.5-0.8
    assert res.randomized_reference is not None and res.randomized_reference.shape == (2, 8)
    rt = res.per_image_randomized_reference()
    assert bool((rt < 0.999).all())  # the randomized model's map is sampled too: r̃ < 1, measured
    v = sanity_verdict(res)
    s, r = res.per_image("spearman_abs"), res.reference
    denom = (r.clamp(min=0) * rt.clamp(min=0)).sqrt()
    assert v.score == pytest.approx(float(s.sum() / denom.sum()), rel=1e-5)
    assert v.score != pytest.approx(float(s.sum() / r.sum()), rel=1e-3)  # the earlier rule's R differs
    # measured: R = 0.61 [0.47, 0.75] over 8 images: straddles 0.5 -> inconclusive, with the images for 80 % power
    assert v.verdict == "inconclusive" and v.interval.low < 0.5 < v.interval.high, v.reason
    assert v.images_needed == images_needed(v.interval, 0.5) and v.images_needed > 8


def test_emprt_complexity_rises_for_the_gradient_and_entropy_values(trained_model):
    x = torch.tensor([[0.0, 1.0, 2.0, 3.0], [5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 0.0, 7.0]])
    # four values in four different bins: log 4; constant: 0; three equal + one: -(3/4 log 3/4 + 1/4 log 1/4)
    h = discrete_entropy(x, n_bins=4)
    expected = [math.log(4), 0.0, -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))]
    torch.testing.assert_close(h, torch.tensor(expected, dtype=torch.float32))
    torch.testing.assert_close(discrete_entropy(3.0 * x, n_bins=4), h)  # scale-free
    x, _ = colour_squares(16, seed=3)
    # the trained model's gradient turns noisier when every layer is randomized: measured 1.063 [1.020, 1.104]
    ratios = efficient_model_parameter_randomization(VanillaGradient, trained_model, x, init="scaled")
    v = emprt_verdict(ratios)
    assert ratios.shape == (16,) and v.verdict == "pass" and v.interval.low > 1.0, v.reason
    edges = efficient_model_parameter_randomization(Sobel, trained_model, x)
    torch.testing.assert_close(edges, torch.ones(16))
    assert emprt_verdict(edges).verdict == "fail"


def test_scale_preserving_randomization_keeps_each_layers_scale():
    model = bn_cnn()
    with torch.no_grad():  # trained-looking affine parameters (a fresh BatchNorm's gamma = 1 is permutation-invariant)
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-0.3, 0.3)
    names = randomizable_layers(model)
    scaled = list(randomize_layers(model, "cascading", seed=0, init="scaled"))[-1][1]
    permuted = list(randomize_layers(model, "cascading", seed=0, init="permute"))[-1][1]
    default = list(randomize_layers(model, "cascading", seed=0, init="default"))[-1][1]
    for name in names:
        for key, p in model.get_submodule(name).named_parameters():
            q = scaled.get_submodule(name).get_parameter(key)
            assert not torch.equal(p, q), (name, key)
            if isinstance(model.get_submodule(name), nn.BatchNorm2d):  # norm layers: their own values, permuted
                torch.testing.assert_close(q.sort().values, p.sort().values)
            elif p.numel() >= 32:  # redrawn with the tensor's own std: within sampling error
                assert float(q.detach().std() / p.detach().std()) == pytest.approx(1.0, abs=0.35), (name, key)
            r = permuted.get_submodule(name).get_parameter(key)
            torch.testing.assert_close(r.detach().flatten().sort().values, p.detach().flatten().sort().values)
    # running statistics are data statistics: kept by every init
    for m in (scaled, permuted, default):
        torch.testing.assert_close(m[1].running_var, model[1].running_var)
    # the default init redraws BatchNorm's gamma from N(0, 1): its scale is lost (all positive before)
    assert bool((default[1].weight < 0).any()) and bool((scaled[1].weight > 0).all())
    with pytest.raises(ValueError, match="`init` must be one of"):
        list(randomize_layers(model, init="xavier"))


@pytest.mark.slow
def test_scaled_randomization_keeps_lite0_looking_at_its_input():
    """Issue 9, item 4: with PyTorch's default re-initialisation (BatchNorm γ, β ~ N(0, 1)) a fully
    randomized EfficientNet-Lite0 ignores its input -- its logits are the same for every photo --
    so "the map changed" is trivially true. The scale-preserving init keeps the output input-dependent."""
    from smoothsal.datasets.photos import bundled_photos
    from smoothsal.models.zoo import efficientnet_lite0

    net = efficientnet_lite0()
    x = torch.cat([p.tensor for p in bundled_photos(["chelsea", "coffee", "astronaut"])])
    bottom = randomizable_layers(net)[0]
    spread = {}
    for init in ("default", "scaled"):
        _, rnd = next(iter(randomize_layers(net, layers=[bottom], seed=0, init=init)))
        with torch.no_grad():
            spread[init] = float(rnd(x).std(dim=0).mean())  # how much the logits differ between photos
    with torch.no_grad():
        original = float(net(x).std(dim=0).mean())
    # measured (4 photos): default 3.7e-08, scaled 0.29, original 0.98
    assert spread["default"] < 1e-4 * original
    assert spread["scaled"] > 0.1 * original


def test_retained_similarity_corrects_both_sides_hand_computed():
    """R = Σs / Σ√(r⁺ r̃⁺) on numbers worked by hand; without r̃ (r̃ = r) the earlier rule Σs/Σr."""
    s = [0.3, 0.2, 0.1, 0.2, 0.2]
    r = [0.81, 0.64, 0.25, 0.36, 0.49]
    rt = [0.25, 0.16, 1.0, 0.36, -0.2]  # √(r r̃) = 0.45, 0.32, 0.5, 0.36, 0 (negative r̃ counts as 0)
    v = retained_similarity(s, r, rt)
    assert v.score == pytest.approx(1.0 / 1.63)
    assert retained_similarity(s, r).score == pytest.approx(1.0 / 2.55)  # Σs/Σr
    assert v.reference.estimate == pytest.approx(1.63 / 5)
    # a randomized map that reproduces itself worse cannot agree better: the earlier R (0.39) passes
    # the constructed case below, the corrected R (0.63) does not
    s2 = [0.20, 0.22, 0.18, 0.21, 0.19, 0.20, 0.21, 0.19]
    r2 = [0.5] * 8
    rt2 = [0.2, 0.21, 0.19, 0.2, 0.2, 0.2, 0.21, 0.19]
    assert retained_similarity(s2, r2).verdict == "pass"
    corrected = retained_similarity(s2, r2, rt2)
    assert corrected.score == pytest.approx(sum(s2) / sum(math.sqrt(0.5 * t) for t in rt2))
    assert corrected.verdict == "fail", corrected.reason


def test_retained_similarity_resamples_seeds_and_says_too_few_images():
    """[S, N] data: both levels resampled (n_groups = S); below MIN_IMAGES: 'too few images'."""
    gen = torch.Generator().manual_seed(0)
    s = 0.3 + 0.05 * torch.randn(3, 12, generator=gen, dtype=torch.float64)
    r = torch.full((12,), 0.8, dtype=torch.float64)
    v = retained_similarity(s, r, torch.full((3, 12), 0.8, dtype=torch.float64))
    assert v.interval.n_groups == 3 and v.interval.n == 12 and "3 randomization seeds" in v.reason
    assert v.score == pytest.approx(float(s.sum() / (0.8 * 36)), rel=1e-9)
    one_seed = retained_similarity(s[0], r, torch.full((12,), 0.8))
    assert one_seed.interval.n_groups == 1
    few = retained_similarity(s[:, :3], r[:3], torch.full((3, 3), 0.8))
    assert few.verdict == "inconclusive" and "too few images" in few.reason
    with pytest.raises(ValueError, match="`randomized_reference` must be shaped like"):
        retained_similarity(s, r, torch.ones(12))
