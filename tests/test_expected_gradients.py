"""Tests for smoothsal.methods.expected_gradients and .path_sampling: closed forms on linear and
quadratic models, the reported standard error, completeness, seeds and batching, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import Quadratic
from smoothsal import Smooth, build_method
from smoothsal.datasets.base import ImageDataset
from smoothsal.methods.expected_gradients import ExpectedGradients, expected_gradients
from smoothsal.methods.path_sampling import PathEstimate, path_point_attributions, stratified_alphas
from smoothsal.registry import method_spec

G = torch.Generator


def _linear(d: int = 6, classes: int = 3, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(d, classes).double().eval()


def _refs(m: int = 5, d: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(m, d, generator=G().manual_seed(seed), dtype=torch.float64)


def _inputs(b: int = 4, d: int = 6, seed: int = 2) -> torch.Tensor:
    return torch.randn(b, d, generator=G().manual_seed(seed), dtype=torch.float64)


def _tanh_net(d: int = 6) -> nn.Module:
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, 16), nn.Softplus(), nn.Linear(16, 3))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(2.0)
    return net.double().eval()


def _small_cnn() -> nn.Module:
    torch.manual_seed(4)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).double().eval()  # fmt: skip


# ---- path_sampling ----------------------------------------------------------------------------
def test_stratified_alphas_put_one_point_in_each_stratum_and_each_alone_is_uniform():
    for n in (1, 5, 32):
        a = stratified_alphas(n, G().manual_seed(n))
        assert a.dtype == torch.float64 and a.shape == (n,)
        assert sorted((a * n).floor().long().tolist()) == list(range(n))
    # sample 0's alpha over many seeds: uniform on [0, 1) (mean 1/2, each quarter a quarter of the time)
    first = torch.stack([stratified_alphas(8, G().manual_seed(s))[0] for s in range(4000)])
    assert abs(float(first.mean()) - 0.5) < 0.015  # SE = 0.29 / sqrt(4000) = 0.0046
    counts = torch.bincount((first * 4).floor().long(), minlength=4).double() / 4000
    assert counts.sub(0.25).abs().max() < 0.03


def test_path_point_attributions_match_the_gradient_by_hand():
    a = torch.randn(4, 4, generator=G().manual_seed(0), dtype=torch.float64)
    model = Quadratic(a)
    x, x0 = _inputs(3, 4), _refs(3, 4)
    alphas = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    rows = path_point_attributions(model, x, x0, alphas, torch.zeros(3, dtype=torch.long))
    point = x0 + alphas[:, None] * (x - x0)
    torch.testing.assert_close(rows, (x - x0) * (point @ (a + a.T).T), rtol=1e-12, atol=1e-12)


# ---- closed forms ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 7, 64])
def test_linear_model_is_x_minus_the_drawn_baselines_mean_times_w_exactly(n):
    model, refs, x = _linear(), _refs(), _inputs()
    eg = ExpectedGradients(model, baselines=refs, n_samples=n, seed=5)
    alphas, idx = eg.draws()
    assert idx.shape == (n,) and int(idx.min()) >= 0 and int(idx.max()) < refs.shape[0]
    attr = eg.attribute(x, target=1)
    expected = (x - refs[idx].mean(dim=0)) * model.weight[1].detach()
    torch.testing.assert_close(attr, expected, rtol=0, atol=1e-12)
    # the same call with another seed draws other baselines: a different (still exact) map
    other = ExpectedGradients(model, baselines=refs, n_samples=n, seed=6)
    torch.testing.assert_close(other.attribute(x, 1), (x - refs[other.draws()[1]].mean(0)) * model.weight[1].detach(),
                               rtol=0, atol=1e-12)  # fmt: skip


def test_linear_model_converges_to_the_reference_set_mean_with_the_reported_standard_error():
    model, refs, x = _linear(), _refs(m=5), _inputs()
    w = model.weight[0].detach()
    n = 4096
    est = ExpectedGradients(model, baselines=refs, n_samples=n, seed=0).estimate(x, target=0)
    truth = (x - refs.mean(dim=0)) * w
    err = (est.attributions - truth).abs()
    assert bool((err < 4 * est.stderr).all()), (err / est.stderr).max()
    # the rows differ only by x'_j ⊙ w: the standard error is the references' spread over sqrt(n)
    exact_se = (refs.var(dim=0, unbiased=False) * w * w / n).sqrt().expand_as(truth)
    torch.testing.assert_close(est.stderr, exact_se, rtol=0.1, atol=0)
    assert isinstance(est, PathEstimate) and est.n_samples.tolist() == [n] * x.shape[0]
    torch.testing.assert_close(est.relative_stderr(), est.stderr.norm(dim=1) / est.attributions.norm(dim=1))
    assert float(err.max()) < 0.05 * float(truth.abs().max())


def _quadratic_eg(a: torch.Tensor, x: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
    r"""EG of F(x) = xᵀAx over a uniform reference set, in closed form: ∇F(z) = S z with S = A + Aᵀ,
    linear in α, so E_α[(x - r) ⊙ S(r + α(x - r))] = (x - r) ⊙ S (x + r) / 2, averaged over r."""
    s = a + a.T
    per_ref = (x[:, None] - refs[None]) * ((x[:, None] + refs[None]) @ s.T) / 2  # [B, M, D]
    return per_ref.mean(dim=1)


def test_quadratic_model_matches_the_closed_form_within_the_reported_standard_error():
    a = torch.randn(6, 6, generator=G().manual_seed(7), dtype=torch.float64)
    model, refs, x = Quadratic(a), _refs(m=4), _inputs()
    truth = _quadratic_eg(a, x, refs)
    # the closed form is complete: Σ EG = F(x) - mean over the set of F(r)
    f = lambda v: torch.einsum("bi,ij,bj->b", v, a, v)  # noqa: E731
    torch.testing.assert_close(truth.sum(dim=1), f(x) - f(refs).mean(), rtol=1e-12, atol=1e-12)
    for n, seed in ((64, 0), (256, 1)):
        est = ExpectedGradients(model, baselines=refs, n_samples=n, seed=seed).estimate(x, target=0)
        z = (est.attributions - truth).abs() / est.stderr
        assert bool((z < 4).all()), (n, z.max())
    big = ExpectedGradients(model, baselines=refs, n_samples=8192, seed=2).attribute(x, 0)
    small = ExpectedGradients(model, baselines=refs, n_samples=64, seed=2).attribute(x, 0)
    assert (big - truth).norm() < 0.25 * (small - truth).norm()  # the error falls like 1/sqrt(n): 1/8 expected


def test_uniform_reference_converges_to_the_middle_of_each_images_range():
    model, x = _linear(), _inputs()
    w = model.weight[2].detach()
    est = ExpectedGradients(model, baselines="uniform", n_samples=2048, seed=0).estimate(x, target=2)
    lo, hi = x.min(dim=1, keepdim=True).values, x.max(dim=1, keepdim=True).values
    truth = (x - (lo + hi) / 2) * w
    assert bool(((est.attributions - truth).abs() < 4 * est.stderr).all())
    # a uniform field on [lo, hi] has standard deviation (hi - lo) / sqrt(12) per element
    exact_se = ((hi - lo) / 12**0.5 * w.abs() / 2048**0.5).expand_as(truth)
    torch.testing.assert_close(est.stderr, exact_se, rtol=0.1, atol=0)


# ---- completeness -------------------------------------------------------------------------------
def test_delta_compares_with_the_mean_score_of_the_drawn_baselines():
    model, refs, x = _linear(), _refs(), _inputs()
    eg = ExpectedGradients(model, baselines=refs, n_samples=9, seed=3)
    attr, delta = eg.attribute_with_delta(x, target=1)
    _, idx = eg.draws()
    with torch.no_grad():
        expected = model(x)[:, 1] - model(refs[idx])[:, 1].mean()
    torch.testing.assert_close(delta.expected, expected, rtol=0, atol=1e-12)
    assert float(delta.absolute.max()) < 1e-12  # a linear model is complete for every draw
    assert delta.steps.tolist() == [9] * 4
    torch.testing.assert_close(attr, eg.attribute(x, 1), rtol=0, atol=0)


@pytest.mark.parametrize("baselines", ["set", "uniform"])
def test_completeness_gap_falls_as_n_grows(baselines):
    net, x = _tanh_net(), _inputs(6)
    refs = _refs(m=16) if baselines == "set" else "uniform"
    gaps = {}
    for n in (8, 128, 2048):
        _, delta = ExpectedGradients(net, baselines=refs, n_samples=n, seed=0).attribute_with_delta(x, target=0)
        gaps[n] = float(delta.absolute.mean())
    assert gaps[128] < gaps[8] / 2 and gaps[2048] < gaps[128] / 2, gaps


# ---- seeds, batching, datasets --------------------------------------------------------------------
def test_same_seed_same_map_whatever_the_batch_size_and_the_other_images():
    net = _small_cnn()
    x = torch.rand(5, 3, 8, 8, generator=G().manual_seed(0), dtype=torch.float64)
    refs = torch.rand(7, 3, 8, 8, generator=G().manual_seed(1), dtype=torch.float64)
    for spec in (refs, "uniform"):
        full = ExpectedGradients(net, baselines=spec, n_samples=12, seed=4).attribute(x, target=1)
        for bs in (1, 5, 13):
            again = ExpectedGradients(net, baselines=spec, n_samples=12, seed=4, batch_size=bs).attribute(x, target=1)
            torch.testing.assert_close(again, full, rtol=1e-10, atol=1e-12)
        alone = ExpectedGradients(net, baselines=spec, n_samples=12, seed=4).attribute(x[3:4], target=1)
        torch.testing.assert_close(alone, full[3:4], rtol=1e-10, atol=1e-12)
        other = ExpectedGradients(net, baselines=spec, n_samples=12, seed=5).attribute(x, target=1)
        assert (other - full).abs().max() > 0.05 * full.abs().max()


def test_a_generator_seed_gives_new_draws_on_each_call():
    model, refs, x = _linear(), _refs(), _inputs()
    eg = ExpectedGradients(model, baselines=refs, n_samples=4, seed=G().manual_seed(0))
    assert (eg.attribute(x, 0) - eg.attribute(x, 0)).abs().max() > 1e-6
    with pytest.raises(ValueError, match="needs an int `seed`"):
        eg.draws()


def test_a_dataset_of_inputs_gives_the_same_map_as_its_tensor():
    net = _small_cnn().float()
    x = torch.rand(2, 3, 8, 8, generator=G().manual_seed(0))
    images = torch.rand(6, 3, 8, 8, generator=G().manual_seed(1))
    reference = ExpectedGradients(net, baselines=images, n_samples=10).attribute(x, 0)
    data = ImageDataset(images, torch.zeros(6, dtype=torch.long), None, 1)
    pairs = [(images[k], k) for k in range(6)]  # a torch-style dataset of (image, label)
    for spec in (data, pairs):
        torch.testing.assert_close(ExpectedGradients(net, baselines=spec, n_samples=10).attribute(x, 0), reference)


def test_smooth_with_zero_noise_is_expected_gradients():
    net = _tanh_net()
    x, refs = _inputs(3), _refs(m=6)
    eg = ExpectedGradients(net, baselines=refs, n_samples=6, seed=1)
    smoothed = Smooth(eg, noise_level=0.0, n_samples=3).attribute(x, target=2)
    torch.testing.assert_close(smoothed, eg.attribute(x, 2), rtol=1e-10, atol=1e-12)


def test_registered_as_eg_with_the_uniform_reference():
    spec = method_spec("eg")
    assert spec.label == "Expected Gradients" and method_spec("expected_gradients") is spec
    assert spec.settings()["baselines"] == "uniform" and spec.settings(smoothed=True)["n_samples"] == 4
    net = _small_cnn().float()
    x = torch.rand(2, 3, 8, 8, generator=G().manual_seed(0))
    eg = build_method("eg", net)
    assert isinstance(eg, ExpectedGradients) and eg.n_samples == 50
    torch.testing.assert_close(eg.attribute(x, 0), expected_gradients(net, x, 0, baselines="uniform", n_samples=50))
    assert "baselines='uniform'" in repr(eg)


# ---- errors and the model guard ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "baselines, kwargs, error, match",
    [
        (torch.zeros(0, 6), {}, ValueError, "empty reference set"),
        ([], {}, ValueError, "empty dataset"),
        (torch.full((2, 6), float("nan")), {}, ValueError, "must be finite"),
        (torch.zeros(6), {}, ValueError, r"shape \[M, ...\]"),
        (torch.zeros(2, 6, dtype=torch.long), {}, TypeError, "floating-point"),
        ("black", {}, ValueError, "'uniform'"),
        (3.0, {}, TypeError, "dataset of inputs"),
        (torch.zeros(2, 6), {"n_samples": 0}, ValueError, "`n_samples`"),
        (torch.zeros(2, 6), {"seed": 1.5}, TypeError, "`seed`"),
        (torch.zeros(2, 6), {"batch_size": 0}, ValueError, "`batch_size`"),
    ],
)
def test_constructor_errors(baselines, kwargs, error, match):
    with pytest.raises(error, match=match):
        ExpectedGradients(_linear(), baselines=baselines, **kwargs)


def test_call_errors():
    model, x = _linear(), _inputs()
    with pytest.raises(ValueError, match=r"shaped like one input \(6,\), got references of shape \(5,\)"):
        ExpectedGradients(model, baselines=torch.zeros(3, 5, dtype=torch.float64)).attribute(x, 0)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="`inputs` must be finite"):
        ExpectedGradients(model, baselines=_refs()).attribute(bad, 0)
    nan_item = [torch.zeros(6, dtype=torch.float64), torch.full((6,), float("nan"), dtype=torch.float64)]
    with pytest.raises(ValueError, match=r"`baselines`\[1\] must be finite"):
        ExpectedGradients(model, baselines=nan_item, n_samples=20).attribute(x, 0)
    with pytest.raises(ValueError, match=r"`target` must lie in \[0, 2\]"):
        ExpectedGradients(model, baselines=_refs()).attribute(x, target=3)


def test_model_inputs_and_grads_are_left_unchanged():
    net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Tanh(), nn.Linear(8, 3)).double()
    user_hook = net[0].register_forward_hook(lambda *args: None)
    params = {k: v.clone() for k, v in net.state_dict().items()}
    x, refs = _inputs(), _refs()
    before = x.clone()
    with pytest.warns(UserWarning, match="training mode"):
        a, _ = ExpectedGradients(net, baselines=refs, n_samples=8).attribute_with_delta(x)
    assert net.training and all(m.training for m in net.modules())
    assert list(net[0]._forward_hooks) == [user_hook.id]
    assert all(not m._forward_hooks and not m._backward_hooks for m in list(net.modules())[2:])
    assert all(p.grad is None for p in net.parameters()) and x.grad is None
    assert all(torch.equal(v, params[k]) for k, v in net.state_dict().items())
    torch.testing.assert_close(x, before)
    net.eval()
    torch.testing.assert_close(ExpectedGradients(net, baselines=refs, n_samples=8).attribute(x), a)
