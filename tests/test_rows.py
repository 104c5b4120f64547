"""How rows run, end to end: every method, ``Smooth``, metric and study sizes its model calls
through the one runner and policy, and the nested-rows protocol (a caller's
:class:`~smoothsal.execution.policy.RowContext`) replaces the old side channel (an attribute
the caller set on the method).

Model calls are counted by a module that records the rows of each forward pass.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from conftest import small_cnn
from torch import nn

from smoothsal.execution import memory
from smoothsal.execution.policy import RowContext, clear_learned
from smoothsal.methods.gradient import VanillaGradient
from smoothsal.methods.integrated_gradients import IntegratedGradients
from smoothsal.smoothing import Smooth

#: bytes of the ReLU output one row of :func:`wide_conv` keeps for its backward pass
RELU_ROW_BYTES = 16 * 32 * 32 * 4
CALLS: list[int] = []


class _Recorder(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        CALLS.append(x.shape[0])
        return x


def wide_conv() -> nn.Module:
    """3×32×32 -> 16 channels of 32×32 (a known activation per row) -> 4 classes; records its rows per call."""
    torch.manual_seed(0)
    model = nn.Sequential(
        _Recorder(), nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)
    ).eval()
    model.image_size = 32  # what smoothsal.models.zoo.load_model resizes images to
    return model


@pytest.fixture(autouse=True)
def _cold_start():
    clear_learned()
    CALLS.clear()
    yield
    clear_learned()


# ---- Smooth ---------------------------------------------------------------------------------------
def test_smooth_batch_sizes_respect_the_budget_and_results_match_a_fixed_batch():
    model = wide_conv()
    x = torch.rand(3, 3, 32, 32)
    auto = Smooth(VanillaGradient(model), noise_level=0.2, n_samples=20, seed=1, max_memory="3MB").attribute(x, 2)
    assert max(CALLS[1:]) * RELU_ROW_BYTES <= 3 * 10**6  # (CALLS[0] is the clean forward for targets)
    assert max(CALLS[1:]) > 2  # it learned past the first size
    fixed = Smooth(VanillaGradient(model), noise_level=0.2, n_samples=20, seed=1, batch_size=7).attribute(x, 2)
    torch.testing.assert_close(auto, fixed, rtol=1e-5, atol=1e-8)


def test_samples_used_with_tol_do_not_depend_on_the_batch_size():
    model = small_cnn()
    x = torch.rand(3, 3, 8, 8)
    used = []
    for batch_size in (1, 3, 7, None):
        est = Smooth(VanillaGradient(model), noise_level=0.3, n_samples=64, seed=2, tol=0.3,
                     min_samples=8, batch_size=batch_size).estimate(x, 1)  # fmt: skip
        used.append(est.n_samples.tolist())
    assert all(u == used[0] for u in used), used
    assert all(n % 8 == 0 and 8 <= n <= 64 for n in used[0])


class _PlainMethod:
    """A user's method: ``attribute`` only (no ``attribute_rows``); fails above 3 rows per call."""

    def __init__(self, model, limit=None):
        self.inner, self.model, self.limit, self.calls = VanillaGradient(model), model, limit, []

    def attribute(self, inputs, target=None):
        self.calls.append(inputs.shape[0])
        if self.limit is not None and inputs.shape[0] > self.limit:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")
        return self.inner.attribute(inputs, target)


def test_a_method_without_the_protocol_works_under_smooth_one_call_per_chunk():
    model = small_cnn()
    x = torch.rand(2, 3, 8, 8)
    plain = _PlainMethod(model)
    got = Smooth(plain, noise_level=0.2, n_samples=10, seed=4, batch_size=6).attribute(x, 0)
    assert plain.calls == [6, 6, 6, 2]  # 3 draws × 2 images per call: 20 noisy inputs
    want = Smooth(VanillaGradient(model), noise_level=0.2, n_samples=10, seed=4, batch_size=2).attribute(x, 0)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-8)


def test_out_of_memory_halves_the_rows_and_gives_the_same_map():
    model = small_cnn()
    x = torch.rand(2, 3, 8, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = Smooth(_PlainMethod(model, limit=3), noise_level=0.2, n_samples=10, seed=4, batch_size=8).attribute(x, 0)
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert messages == ["out of memory at 8 rows per call; retrying with 4",
                        "out of memory at 4 rows per call; retrying with 2"]  # fmt: skip
    want = Smooth(VanillaGradient(model), noise_level=0.2, n_samples=10, seed=4, batch_size=2).attribute(x, 0)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-8)


def test_a_study_chooses_a_batch_within_the_budget(tmp_path):
    """Issue 13: a study on a model whose per-row activation is known keeps rows × bytes under the budget."""
    from PIL import Image

    from smoothsal.studies.explain import ExplainConfig, run_explain
    from smoothsal.studies.options import RunOptions

    img = tmp_path / "square.png"
    Image.fromarray((torch.rand(32, 32, 3) * 255).to(torch.uint8).numpy()).save(img)
    budget = 4 * 10**6
    clear_learned()
    config = ExplainConfig(images=(str(img),), model="test_rows:wide_conv", methods=("grad",), n_samples=40, tol=None,
                           noise_levels=(0.0, 0.2), sample_sizes=(1, 2), extras=False)  # fmt: skip
    run_explain(config, RunOptions(out=tmp_path / "out", max_memory=budget, progress=False), echo=None)
    assert memory.get_max_memory() is None  # the budget went with the run, not into a process global
    assert CALLS and max(CALLS) * RELU_ROW_BYTES <= budget
    assert max(CALLS) > 1  # it did batch


# ---- the nested-rows protocol ---------------------------------------------------------------------------
def test_smoothed_ig_gets_its_rows_through_the_protocol_in_one_model_call_each():
    """Smooth counts IG's path points as rows and has IG run each call's rows in one model call."""
    model = wide_conv()
    x = torch.rand(1, 3, 32, 32)
    ig = IntegratedGradients(model, steps=4)
    assert not [name for name in vars(ig) if name.startswith("outer")]  # no side channel on the method
    got = Smooth(ig, noise_level=0.2, n_samples=6, seed=3, batch_size=8).attribute(x, 1)
    assert CALLS[1:] == [8, 8, 8]  # (CALLS[0]: the clean forward for the targets) 6 samples × 4 points
    CALLS.clear()
    sigma = 0.2 * float(x.max() - x.min())  # the noise level is a fraction of the image's range
    ref = torch.stack([
        IntegratedGradients(model, steps=4, batch_size=1).attribute(
            x + sigma * torch.randn(x.shape[1:], generator=g)[None], 1)[0]
        for g in [torch.Generator().manual_seed(3)] for _ in range(6)
    ]).mean(0, keepdim=True)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-7)


def test_smoothed_ig_learns_one_size_in_model_rows():
    """With the learned policy, Smooth's calls of IG are whole noisy inputs of 4 rows, all in one model call."""
    model = wide_conv()
    x = torch.rand(2, 3, 32, 32)
    Smooth(IntegratedGradients(model, steps=4), noise_level=0.2, n_samples=16, seed=3).attribute(x, 1)
    calls = CALLS[1:]
    assert sum(calls) == 2 * 16 * 4
    assert all(c % 4 == 0 for c in calls)  # never a noisy input split over model calls
    assert calls[0] == 4  # the first call: FIRST (2) rows asked, one noisy input of 4 rows run


class _FailsAboveRows(nn.Module):
    """Wraps a model; fails with the CPU allocator's error on calls of more than ``limit`` rows."""

    def __init__(self, model, limit):
        super().__init__()
        self.inner, self.limit, self.calls = model, limit, []

    def forward(self, x):
        self.calls.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")
        return self.inner(x)


def test_smooth_of_ig_learns_from_out_of_memory_once():
    """Smooth's policy, not a throwaway one inside IG, sees the error: it halves once for good."""
    model = _FailsAboveRows(small_cnn(), limit=8)
    x = torch.rand(2, 3, 8, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = Smooth(IntegratedGradients(model, steps=4), noise_level=0.2, n_samples=6, seed=4,
                     batch_size=16).attribute(x, 0)  # fmt: skip
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert messages == ["out of memory at 16 rows per call; retrying with 8"]  # 4 noisy inputs x 4 path points
    assert model.calls.count(16) == 1  # the one failing call; every later one runs 2 inputs (8 rows)
    want = Smooth(IntegratedGradients(small_cnn(), steps=4), noise_level=0.2, n_samples=6, seed=4,
                  batch_size=8).attribute(x, 0)  # fmt: skip
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


class _DrawRecorder(VanillaGradient):
    """A method that reads the caller's context: records the draws and rows per call it is given."""

    reads_row_context = True

    def __init__(self, model):
        super().__init__(model)
        self.contexts: list[RowContext | None] = []

    def _attribute(self, inputs, target, *, context=None):
        self.contexts.append(context)
        return super()._attribute(inputs, target)


def test_smooth_tells_a_method_the_draw_of_each_input():
    model = small_cnn()
    x = torch.rand(2, 3, 8, 8)
    method = _DrawRecorder(model)
    Smooth(method, noise_level=0.2, n_samples=5, seed=0, batch_size=4).attribute(x, 0)
    draws = torch.cat([c.draws for c in method.contexts]).tolist()
    assert draws == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # draw-major: every image's draw j, in order
    assert all(c.n_draws == 5 and c.batch_size == c.draws.numel() for c in method.contexts)
    assert method.attribute(x, 0) is not None and method.contexts[-1] is None  # at the top level: no context


def test_a_single_pass_method_splits_its_inputs_to_fit_a_context():
    model = wide_conv()
    x = torch.rand(5, 3, 32, 32)
    got = VanillaGradient(model).attribute_rows(x, 1, RowContext(2))
    assert CALLS == [2, 2, 1]
    torch.testing.assert_close(got, VanillaGradient(model).attribute(x, 1), rtol=1e-5, atol=1e-8)
    with pytest.raises(TypeError, match="context"):
        VanillaGradient(model).attribute_rows(x, 1, 2)


# ---- metrics, predict and attribution_maps go through the runner ---------------------------------------
def test_predict_learns_its_rows_and_obeys_a_batch_size():
    from smoothsal.execution.calls import predict

    model = wide_conv()
    x = torch.rand(40, 3, 32, 32)
    want = predict(model, x, batch_size=40)
    assert CALLS == [40]
    CALLS.clear()
    torch.testing.assert_close(predict(model, x, max_memory="20MB"), want, rtol=1e-5, atol=1e-6)
    assert CALLS[:4] == [2, 2, 4, 4] and sum(CALLS) == 40  # the learned rule: two timed calls per size
    CALLS.clear()
    predict(model, x, batch_size=16)
    assert CALLS == [16, 16, 8]


def test_the_perturbation_metrics_use_the_learned_policy():
    from smoothsal.metrics.faithfulness import faithfulness_correlation
    from smoothsal.metrics.pruning import attribution_pruning

    model = wide_conv()
    x = torch.rand(4, 3, 32, 32)
    maps = torch.rand(4, 3, 32, 32)
    fixed = faithfulness_correlation(model, x, maps, 1, n_runs=10, batch_size=40)
    assert CALLS[1:] == [40]  # (CALLS[0]: the clean forward) 10 runs × 4 images in one call
    CALLS.clear()
    auto = faithfulness_correlation(model, x, maps, 1, n_runs=10, max_memory="50MB")
    # learned, in rows (not whole copies of the batch), shared with every forward pass of the model:
    # the clean forward is its first two calls of 2 rows, then the 40 perturbed rows
    assert CALLS[:4] == [2, 2, 4, 4] and sum(CALLS) == 4 + 40
    torch.testing.assert_close(auto, fixed, rtol=1e-4, atol=1e-5)
    CALLS.clear()
    attribution_pruning(model, x, maps, 1, q=(10, 50), share=None, batch_size=3)
    assert CALLS == [3, 1, 3, 3, 2]  # the clean forward of 4 images, then 2 q × 4 pruned images


def test_attribution_maps_runs_ig_under_its_own_policy_in_model_rows():
    from smoothsal.metrics import attribution_maps

    model = wide_conv()
    x = torch.rand(3, 3, 32, 32)
    targets = torch.tensor([1, 2, 3])
    got = attribution_maps(IntegratedGradients(model, steps=8), x, targets, batch_size=4)
    assert set(CALLS) == {4}  # every model call holds 4 path rows, half an image's 8 points
    want = torch.cat([IntegratedGradients(model, steps=8, batch_size=8).attribute(x[i : i + 1], targets[i : i + 1])
                      for i in range(3)])  # fmt: skip
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    CALLS.clear()
    attribution_maps(VanillaGradient(model), x, targets, batch_size=2)
    assert CALLS == [2, 1]


def test_occlusion_rows_are_batched_by_the_runner():
    from smoothsal.methods.occlusion import Occlusion

    model = wide_conv()
    x = torch.rand(2, 3, 32, 32)
    want = Occlusion(model, window=16, stride=16, batch_size=8).attribute(x, 1)
    assert CALLS == [2, 8]  # the clean forward, then 4 windows × 2 images in one call
    CALLS.clear()
    got = Occlusion(model, window=16, stride=16, batch_size=3).attribute(x, 1)
    assert CALLS == [2, 3, 3, 2]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
