"""Tests of smoothsal.execution.memory and .measure: budget parsing, the scoped limit, the default
budget from the OS (mocked), the memory of a row, and the allocator's bound on kept memory.

Fast and deterministic: no assertion depends on timing or on this machine's free memory.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from smoothsal.execution import allocator, memory
from smoothsal.execution.measure import _measure, row_memory
from smoothsal.execution.memory import (
    BatchMemoryError,
    default_budget,
    items_in_budget,
    memory_budget,
    memory_limit,
    parse_memory,
    set_max_memory,
)


# ---- budget parsing --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("4GB", 4 * 10**9),
        ("512MB", 512 * 10**6),
        ("512 mb", 512 * 10**6),
        ("2GiB", 2 * 2**30),
        ("1.5G", int(1.5 * 2**30)),
        ("100KiB", 100 * 2**10),
        ("123B", 123),
        ("4000000000", 4_000_000_000),
        (4096, 4096),
        ("0.25", 0.25),
        ("1", 1.0),
        ("25%", 0.25),
        (0.5, 0.5),
    ],
)
def test_parse_memory_values(spec, expected):
    value = parse_memory(spec)
    assert value == expected
    assert type(value) is type(expected)  # int: bytes, float: a fraction


@pytest.mark.parametrize(
    "spec",
    ["", "lots", "4XB", "-1GB", "0", "0GB", "1.5", "150%", 0, -5, 1.5, True, [1]],
)
def test_parse_memory_rejects_bad_values_naming_the_option(spec):
    with pytest.raises(ValueError, match="max_memory") as info:
        parse_memory(spec)
    assert "4GB" in str(info.value)  # the message shows the expected forms


def test_memory_limit_is_scoped_validated_first_and_restored():
    with pytest.raises(ValueError, match="max_memory"):
        with memory_limit("four gigabytes"):
            pass
    assert memory.get_max_memory() is None
    with memory_limit("3000B"):
        assert memory_budget("cpu") == 3000
        with memory_limit("1KB"):
            assert memory_budget("cpu") == 1000  # the innermost block wins
        assert memory_budget("cpu") == 3000
        assert memory_budget("cpu", max_memory="2KB") == 2000  # a call's own budget wins over the block
    assert memory.get_max_memory() is None
    with pytest.raises(RuntimeError, match="inside"), memory_limit("1KB"):
        raise RuntimeError("inside")
    assert memory.get_max_memory() is None  # restored after an error too


def test_memory_limit_does_not_leak_into_other_threads():
    import threading

    seen = []
    with memory_limit("1KB"):
        thread = threading.Thread(target=lambda: seen.append(memory.get_max_memory()))
        thread.start()
        thread.join()
    assert seen == [None]


def test_set_max_memory_is_deprecated_and_still_sets_the_limit_here():
    import contextvars

    def body():
        with pytest.warns(DeprecationWarning, match="memory_limit"):
            set_max_memory("3000B")
        return memory_budget("cpu")

    assert contextvars.copy_context().run(body) == 3000  # (run in a copy: the setting ends with it)
    assert memory.get_max_memory() is None


def test_a_fraction_is_taken_of_the_memory_available_now(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda device=None: 8_000)
    assert memory_budget("cpu", max_memory="0.25") == 2000
    assert memory_budget("cpu", max_memory="50%") == 4000
    assert memory_budget("cpu", max_memory=3000) == 3000  # bytes are taken as given


@pytest.mark.parametrize(
    ("device", "available", "expected"),
    [
        ("cpu", 4 * 2**30, 2**30),  # a quarter of 4 GiB: below the cap
        ("cpu", 6 * 2**30, 3 * 2**29),  # a quarter of 6 GiB is the cap itself
        ("cpu", 24 * 2**30, 3 * 2**29),  # a quarter of 24 GiB is 6 GiB: capped at 1.5 GiB
        ("cuda", 24 * 2**30, 12 * 2**30),  # an accelerator: half of its free memory, no cap
        ("mps", 10 * 2**30, 5 * 2**30),  # other accelerators as CUDA
    ],
)
def test_the_default_budget_formula(monkeypatch, device, available, expected):
    monkeypatch.setattr(memory, "available_memory", lambda dev=None: available)
    assert default_budget(device) == expected
    assert memory_budget(device) == expected  # no limit set: the default


def _fake_proc(monkeypatch, tmp_path, meminfo_kib, cgroup=None):
    files = {"/proc/meminfo": f"MemTotal: 999999999 kB\nMemAvailable: {meminfo_kib} kB\n"}
    if cgroup is not None:
        files["/sys/fs/cgroup/memory.max"], files["/sys/fs/cgroup/memory.current"] = cgroup
    real_open = open

    def fake_open(path, *args, **kwargs):
        if path in files:
            target = tmp_path / path.strip("/").replace("/", "_")
            target.write_text(files[path])
            return real_open(target, *args, **kwargs)
        if str(path).startswith(("/proc/", "/sys/fs/cgroup")):
            raise OSError("not on this test machine")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    monkeypatch.setattr(allocator, "free_heap_bytes", lambda: 0)


def test_available_memory_reads_meminfo_and_the_cgroup_limit(monkeypatch, tmp_path):
    _fake_proc(monkeypatch, tmp_path, meminfo_kib=8 * 2**20)  # 8 GiB available, no cgroup limit
    assert memory.available_memory("cpu") == 8 * 2**30
    assert default_budget("cpu") == 3 * 2**29  # a quarter of 8 GiB, capped at 1.5 GiB
    _fake_proc(monkeypatch, tmp_path, meminfo_kib=8 * 2**20, cgroup=(str(3 * 2**30), str(2**30)))
    assert memory.available_memory("cpu") == 2 * 2**30  # the container's room: 3 GiB limit - 1 GiB used
    assert default_budget("cpu") == 2**29  # a quarter of it
    _fake_proc(monkeypatch, tmp_path, meminfo_kib=8 * 2**20, cgroup=("max", str(2**30)))
    assert memory.available_memory("cpu") == 8 * 2**30  # "max": no limit


def test_the_free_heap_counts_as_available(monkeypatch, tmp_path):
    _fake_proc(monkeypatch, tmp_path, meminfo_kib=2**20)
    monkeypatch.setattr(allocator, "free_heap_bytes", lambda: 5 * 2**20)
    assert memory.available_memory("cpu") == 2**30 + 5 * 2**20


def test_items_in_budget():
    assert items_in_budget(100, 10**6, "cpu", "80MB", share=1 / 8) == 10
    assert items_in_budget(5, 10**6, "cpu", "80MB", share=1 / 8) == 5  # at most all of them
    assert items_in_budget(100, 10**9, "cpu", "80MB") == 1  # at least one
    with pytest.raises(ValueError, match="share"):
        items_in_budget(1, 1, "cpu", "1MB", share=0)


def test_out_of_memory_errors_are_recognised():
    assert memory.is_out_of_memory(torch.cuda.OutOfMemoryError("x"))
    assert memory.is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate"))
    assert memory.is_out_of_memory(MemoryError())
    assert not memory.is_out_of_memory(RuntimeError("shape mismatch"))
    assert not memory.is_out_of_memory(BatchMemoryError("one row does not fit"))


# ---- row memory ------------------------------------------------------------------------------
D_IN, D_HIDDEN, D_OUT = 64, 256, 8


def _chain() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(D_IN, D_HIDDEN), nn.Tanh(), nn.Linear(D_HIDDEN, D_OUT)
    )


def _grad_of_logit(model: nn.Module):
    def fn(rows: torch.Tensor) -> torch.Tensor:
        x = rows.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x)[:, 0].sum(), x)
        return grad

    return fn


def test_row_memory_of_a_linear_chain_matches_the_hand_count():
    # Per row, float32, at the worst moment (the Tanh's backward has just returned): the input x
    # (D_IN), the Tanh output saved for backward (D_HIDDEN), the gradient arriving at it
    # (D_HIDDEN) and the gradient it returns (D_HIDDEN). Weights do not grow with rows (they cancel).
    expected = 4 * (D_IN + 3 * D_HIDDEN)
    measured = row_memory(_grad_of_logit(_chain()), torch.rand(8, D_IN))
    assert measured == expected


def test_row_memory_scales_with_the_width():
    narrow = row_memory(_grad_of_logit(_chain()), torch.rand(8, D_IN))
    wide_model = nn.Sequential(
        nn.Linear(D_IN, 4 * D_HIDDEN), nn.Tanh(), nn.Linear(4 * D_HIDDEN, D_OUT)
    )
    wide = row_memory(_grad_of_logit(wide_model), torch.rand(8, D_IN))
    assert wide - narrow == 4 * 3 * (4 * D_HIDDEN - D_HIDDEN)  # three hidden-sized tensors, 4x as wide


def test_row_memory_of_one_row_is_an_upper_bound():
    per_row = row_memory(_grad_of_logit(_chain()), torch.rand(8, D_IN))
    one = row_memory(_grad_of_logit(_chain()), torch.rand(1, D_IN))
    assert one >= per_row  # includes the fixed part (the saved weights)


def test_row_memory_rejects_empty_rows():
    with pytest.raises(ValueError, match="example_rows"):
        row_memory(lambda rows: rows, torch.empty(0, 3))


def test_a_forward_pass_without_gradient_is_measured_by_its_live_peak():
    # Under no_grad nothing is saved for backward; the peak is an activation and the next one:
    # per row, the hidden layer's output (D_HIDDEN) and the Tanh's (D_HIDDEN) at once.
    model = _chain()

    def forward(rows):
        with torch.no_grad():
            return model(rows)

    assert row_memory(forward, torch.rand(8, D_IN)) == 4 * (D_IN + 2 * D_HIDDEN)


def test_work_of_several_model_calls_peaks_at_its_largest_call():
    model = _chain()
    one = _measure(lambda: _grad_of_logit(model)(torch.rand(4, D_IN)), torch.device("cpu"))
    four = _measure(lambda: [_grad_of_logit(model)(torch.rand(4, D_IN)) for _ in range(4)][-1],
                    torch.device("cpu"))  # fmt: skip
    assert four < 2 * one  # calls run one after another: their memory is not added up


@pytest.fixture
def trims(monkeypatch):
    """Freed memory kept, and a libc whose ``malloc_trim`` records its pad instead of trimming."""
    done: list[int] = []

    class Libc:
        def malloc_trim(self, pad):
            done.append(pad)
            return 1

    monkeypatch.setitem(allocator._state, "kept", True)
    monkeypatch.setattr(allocator, "_libc", lambda: Libc())
    return done


def test_the_allocator_trims_when_the_free_heap_exceeds_the_budget(monkeypatch, trims):
    monkeypatch.setattr(allocator, "free_heap_bytes", lambda: 3_000)
    assert allocator.trim_above(5_000) is False and trims == []
    assert allocator.trim_above(2_000) is True and trims == [0]
    monkeypatch.setitem(allocator._state, "kept", False)  # not keeping freed memory: nothing to trim
    assert allocator.trim_above(2_000) is False and trims == [0]


def test_a_learned_job_starts_with_the_free_heap_trimmed_to_one_budget(monkeypatch):
    from smoothsal.execution import runner

    asked = []
    monkeypatch.setattr(allocator, "trim_above", lambda budget: asked.append(budget) or False)
    x = torch.rand(2, 3)
    policy = runner.policy_for(nn.Linear(3, 2), x[0], "grad", max_memory="64MB")
    assert asked == [allocator.START_BUDGETS * 64 * 10**6] == [policy.budget]  # one budget: 64 MB
    runner.policy_for(nn.Linear(3, 2), x[0], "grad", batch_size=4)  # a fixed size: no job-start trim
    assert len(asked) == 1


def test_a_learned_call_gives_back_the_free_heap_beyond_its_bound_and_a_fixed_one_does_not(monkeypatch, trims):
    from smoothsal.execution import runner

    x = torch.rand(8, 3)
    model = nn.Linear(3, 2)
    free = {"bytes": 0}
    monkeypatch.setattr(allocator, "free_heap_bytes", lambda: free["bytes"])
    learned = runner.policy_for(model, x[0], "grad", max_memory="64MB")  # job start: nothing free, no trim
    bound = allocator.FREE_BUDGETS * 64 * 10**6

    def work(lo, hi):
        free["bytes"] = left  # what the call leaves free in the heap
        return model(x[lo:hi])

    left = bound  # at the bound: kept for the next call
    runner.run_rows(learned, 8, work)
    assert trims == []
    left = bound + 1  # beyond it: given back after the call
    out = runner.run_rows(learned, 8, work)
    assert len(trims) >= 1 and torch.equal(out, model(x))
    before = len(trims)
    runner.run_rows(runner.policy_for(model, x[0], "grad", batch_size=4), 8, work)  # a user's size: never trims
    assert len(trims) == before


def test_job_start_trim_gives_back_what_an_earlier_job_left_free(monkeypatch, trims):
    from smoothsal.execution import runner

    x = torch.rand(2, 3)
    monkeypatch.setattr(allocator, "free_heap_bytes", lambda: 50 * 10**6)  # less than the 64 MB budget
    runner.policy_for(nn.Linear(3, 2), x[0], "grad", max_memory="64MB")
    assert trims == []
    monkeypatch.setattr(allocator, "free_heap_bytes", lambda: 100 * 10**6)  # more than one budget, less than two
    runner.policy_for(nn.Linear(3, 2), x[0], "grad", max_memory="64MB")
    assert trims == [0]
