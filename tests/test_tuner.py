"""The automatic batch size: learned from the real calls, within the memory budget, never changing results."""

from __future__ import annotations

import warnings

import pytest
import torch
from conftest import small_cnn
from torch import nn

from smoothsal.execution import memory
from smoothsal.execution import tuner as tuner_module
from smoothsal.execution.tuner import RowTuner, work_key
from smoothsal.methods.gradient import VanillaGradient
from smoothsal.smoothing import Smooth

#: bytes of the ReLU output one row of :func:`wide_conv` keeps for its backward pass
RELU_ROW_BYTES = 16 * 32 * 32 * 4
CALLS: list[int] = []


class _Recorder(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        CALLS.append(x.shape[0])
        return x


def wide_conv() -> nn.Module:
    """3×32×32 -> 16 channels of 32×32 (a known activation per row) -> 4 classes; records its batch sizes."""
    torch.manual_seed(0)
    model = nn.Sequential(
        _Recorder(), nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)
    ).eval()
    model.image_size = 32  # what smoothsal.models.zoo.load_model resizes images to
    return model


@pytest.fixture(autouse=True)
def _cold_start():
    tuner_module.clear_learned()
    memory.set_max_memory(None)
    CALLS.clear()
    yield
    tuner_module.clear_learned()
    memory.set_max_memory(None)


class _Clock:
    """A fake ``time.perf_counter``: each timed call of ``k`` rows takes ``cost(k)`` seconds."""

    def __init__(self, cost):
        self.cost, self.now, self.pending = cost, 0.0, 0

    def perf_counter(self) -> float:
        self.now += self.cost(self.pending) if self.pending else 0.0
        self.pending = 0
        return self.now


def test_tuner_doubles_across_a_plateau_stops_at_a_fall_and_keeps_the_best(monkeypatch):
    # rows/s: 2 rows 18/s, 4 rows 30/s, 8 rows 31/s (plateau: go on), 16 rows 5/s (a fall: stop);
    # the first call of each size is a slow warm-up (half speed): the faster call counts
    rate = {2: 18.0, 4: 30.0, 8: 31.0, 16: 5.0}
    calls: dict[int, int] = {}

    def cost(k):
        calls[k] = calls.get(k, 0) + 1
        return k / rate[k] * (2.0 if calls[k] == 1 else 1.0)

    clock = _Clock(cost)
    monkeypatch.setattr(tuner_module.time, "perf_counter", clock.perf_counter)
    tuner = RowTuner(("job",), device="cpu")
    sizes = []
    remaining = 100
    while remaining:
        k = tuner.next_size(remaining)

        def work(k=k):
            clock.pending = k
            return torch.zeros(k, 3)

        tuner.run(k, work)
        sizes.append(k)
        remaining -= k
    assert sizes[:8] == [2, 2, 4, 4, 8, 8, 16, 16]  # learning: two timed calls per size
    assert set(sizes[8:-1]) == {8}  # the best, never the slow 16
    assert RowTuner(("job",), device="cpu").next_size(1000) == 8  # learned for the process


def test_tuner_respects_a_given_batch_size_and_the_remaining_rows():
    tuner = RowTuner(("fixed",), device="cpu", fixed=5)
    assert [tuner.next_size(r) for r in (100, 5, 3)] == [5, 5, 3]


def test_memory_cap_from_the_first_call_and_clear_error_when_one_row_does_not_fit():
    x = torch.rand(2, 3, 32, 32)  # the first call of the learning takes 2 rows
    model = wide_conv()
    memory.set_max_memory("2MB")
    tuner = RowTuner(work_key(model, x[0], "grad"), device="cpu")
    assert tuner.next_size(100) == 2
    tuner.run(2, lambda: VanillaGradient(model).attribute(x, 0))
    cap = tuner.state.cap
    assert 1 <= cap <= (2 * 10**6) // RELU_ROW_BYTES  # the measured row is at least its ReLU output
    assert all(tuner.next_size(10**6) <= cap for _ in range(3))
    memory.set_max_memory("10KB")
    tuner_module.clear_learned()
    with pytest.raises(memory.BatchMemoryError, match="max_memory"):
        RowTuner(work_key(model, x[0], "grad"), device="cpu").run(2, lambda: VanillaGradient(model).attribute(x, 0))


def test_smooth_rows_per_call_respect_the_budget_and_results_match_a_fixed_batch():
    model = wide_conv()
    x = torch.rand(3, 3, 32, 32)
    memory.set_max_memory("3MB")
    auto = Smooth(VanillaGradient(model), noise_level=0.2, n_samples=20, seed=1).attribute(x, 2)
    assert max(CALLS[1:]) * RELU_ROW_BYTES <= 3 * 10**6  # (CALLS[0] is the clean forward for targets)
    fixed = Smooth(VanillaGradient(model), noise_level=0.2, n_samples=20, seed=1, batch_size=7).attribute(x, 2)
    torch.testing.assert_close(auto, fixed, rtol=1e-5, atol=1e-8)


def test_samples_used_with_tol_do_not_depend_on_the_batch_size():
    model = small_cnn()
    x = torch.rand(3, 3, 8, 8)
    used = []
    for batch_size in (1, 3, 7, None):
        est = Smooth(VanillaGradient(model), noise_level=0.3, n_samples=64, seed=2, tol=0.3,
                     min_samples=8, batch_size=batch_size).estimate(x, 1)
        used.append(est.n_samples.tolist())
    assert all(u == used[0] for u in used), used
    assert all(n % 8 == 0 and 8 <= n <= 64 for n in used[0])


class _RunsOutOfMemory:
    """A method that fails with the CPU allocator's error above 3 rows per call."""

    def __init__(self, model):
        self.inner = VanillaGradient(model)
        self.model = model

    def attribute(self, inputs, target=None):
        if inputs.shape[0] > 3:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")
        return self.inner.attribute(inputs, target)


def test_out_of_memory_halves_the_rows_and_gives_the_same_map():
    model = small_cnn()
    x = torch.rand(2, 3, 8, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = Smooth(_RunsOutOfMemory(model), noise_level=0.2, n_samples=10, seed=4, batch_size=8).attribute(x, 0)
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert messages[0] == "out of memory at 8 rows per call; retrying with 4"
    assert set(messages[1:]) == {"out of memory at 4 rows per call; retrying with 2"}  # each 4-row half once
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
    config = ExplainConfig(images=(str(img),), model="test_tuner:wide_conv", methods=("grad",), n_samples=40, tol=None,
                           noise_levels=(0.0, 0.2), sample_sizes=(1, 2), extras=False)  # fmt: skip
    run_explain(config, RunOptions(out=tmp_path / "out", max_memory=budget, progress=False), echo=None)
    assert memory.get_max_memory() is None  # the budget went with the run, not into a process global
    assert CALLS and max(CALLS) * RELU_ROW_BYTES <= budget
    assert max(CALLS) > 1  # it did batch


def test_smoothed_ig_is_batched_by_one_tuner_in_model_rows():
    """Smooth counts IG's path points as rows and has IG run each call's rows in one model call."""
    from smoothsal.methods.integrated_gradients import IntegratedGradients

    model = wide_conv()
    x = torch.rand(1, 3, 32, 32)
    got = Smooth(IntegratedGradients(model, steps=4), noise_level=0.2, n_samples=6, seed=3, batch_size=8).attribute(x, 1)
    assert CALLS[1:] == [8, 8, 8]  # (CALLS[0]: the clean forward for the targets) 6 samples × 4 points
    CALLS.clear()
    sigma = 0.2 * float(x.max() - x.min())  # the noise level is a fraction of the image's range
    ref = torch.stack([
        IntegratedGradients(model, steps=4, batch_size=1).attribute(
            x + sigma * torch.randn(x.shape[1:], generator=g)[None], 1)[0]
        for g in [torch.Generator().manual_seed(3)] for _ in range(6)
    ]).mean(0, keepdim=True)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-7)


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
    """Smooth's tuner, not a throwaway one inside IG, sees the error: it halves once for good."""
    from smoothsal.methods.integrated_gradients import IntegratedGradients

    model = _FailsAboveRows(small_cnn(), limit=8)
    x = torch.rand(2, 3, 8, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = Smooth(IntegratedGradients(model, steps=4), noise_level=0.2, n_samples=6, seed=4,
                     batch_size=16).attribute(x, 0)
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert messages == ["out of memory at 16 rows per call; retrying with 8"]  # 4 noisy inputs x 4 path points
    assert model.calls.count(16) == 1  # the one failing call; every later one runs 2 inputs (8 rows)
    want = Smooth(IntegratedGradients(small_cnn(), steps=4), noise_level=0.2, n_samples=6, seed=4,
                  batch_size=8).attribute(x, 0)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
