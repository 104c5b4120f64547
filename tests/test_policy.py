"""The one rows-per-call policy and runner: the learned rule on a fake clock, out-of-memory halving,
results independent of the grouping, and learned state held weakly and bounded.

No assertion depends on real timings: the learned rule is driven by a clock the test controls and
by a meter that reports the bytes the test chooses.
"""

from __future__ import annotations

import gc
import warnings

import pytest
import torch
from torch import nn

from smoothsal.execution import policy as policy_module
from smoothsal.execution.memory import BatchMemoryError, memory_limit
from smoothsal.execution.policy import CALLS, FIRST, FixedRows, LearnedRows, RowContext, clear_learned, learned_works
from smoothsal.execution.runner import policy_for, run_call, run_rows, settle


@pytest.fixture(autouse=True)
def _cold_start():
    clear_learned()
    yield
    clear_learned()


class FakeClock:
    """``clock()`` for :class:`LearnedRows`: a timed call of ``k`` rows takes ``cost(k, n)`` seconds
    (``n``: how many calls of ``k`` rows ran before), charged when the work runs."""

    def __init__(self, cost):
        self.cost, self.now, self.calls = cost, 0.0, {}

    def __call__(self) -> float:
        return self.now

    def work(self, k: int) -> torch.Tensor:
        n = self.calls.get(k, 0)
        self.calls[k] = n + 1
        self.now += self.cost(k, n)
        return torch.arange(k, dtype=torch.float32)


def bytes_meter(per_row: int, fixed: int = 0):
    """A meter reporting ``fixed + per_row × rows`` for the rows of the call it measures."""

    def meter(call, device):
        return fixed + per_row * int(call().shape[0])

    return meter


def learned(model=None, *, clock, meter=bytes_meter(1), what="job", max_memory="1GB") -> LearnedRows:
    return LearnedRows(model, torch.zeros(3), what, max_memory=max_memory, clock=clock, meter=meter)


def drive(policy, clock: FakeClock, n: int) -> list[int]:
    """Run ``n`` rows in the calls the policy sizes; the sizes of the calls."""
    sizes = []
    lo = 0
    while lo < n:
        k = policy.next_size(n - lo)
        policy.run(k, lambda k=k: clock.work(k))
        sizes.append(k)
        lo += k
    return sizes


def rate_cost(rate: dict[int, float], warmup: float = 2.0):
    """Rows per second per size; the first call of a size is ``warmup`` times slower."""
    return lambda k, n: k / rate[k] * (warmup if n == 0 else 1.0)


# ---- the learned rule ---------------------------------------------------------------------------
def test_learning_doubles_across_a_plateau_stops_at_a_fall_and_keeps_the_best():
    # rows/s: 2 rows 18/s, 4 rows 30/s, 8 rows 31/s (within DROP: go on), 16 rows 5/s (a fall: stop)
    clock = FakeClock(rate_cost({2: 18.0, 4: 30.0, 8: 31.0, 16: 5.0}))
    sizes = drive(learned(clock=clock), clock, 100)
    assert sizes[:8] == [2, 2, 4, 4, 8, 8, 16, 16]  # CALLS timed calls per size, the warm-up discounted
    assert set(sizes[8:-1]) == {8}  # the best, never the slow 16
    assert learned(clock=clock).next_size(1000) == 8  # kept: a new policy on the same work starts there


def test_a_size_within_drop_of_the_best_continues_and_one_beyond_drop_stops():
    # 4 -> 8 falls by 9 % (< DROP = 10 %): the search goes on to 16; 16 falls by 11 % of the best: it stops
    rate = {2: 10.0, 4: 100.0, 8: 91.0, 16: 89.0, 32: 200.0}
    clock = FakeClock(rate_cost(rate, warmup=1.0))
    sizes = drive(learned(clock=clock), clock, 200)
    assert 16 in sizes and 32 not in sizes


def test_ties_go_to_the_larger_size():
    # 8 rows are 2 % slower than 4 (within TIE = 3 %): the larger is used; 16 is a clear fall
    clock = FakeClock(rate_cost({2: 50.0, 4: 100.0, 8: 98.0, 16: 40.0}, warmup=1.0))
    sizes = drive(learned(clock=clock), clock, 200)
    assert set(sizes[8:-1]) == {8}
    # but 5 % slower is not a tie: the faster, smaller size wins
    clear_learned()
    clock = FakeClock(rate_cost({2: 50.0, 4: 100.0, 8: 95.0, 16: 40.0}, warmup=1.0))
    sizes = drive(learned(clock=clock), clock, 200)
    assert set(sizes[8:-1]) == {4}


def test_the_memory_cap_comes_from_the_first_calls_measured_bytes():
    # the first call (FIRST rows) is measured: 1,000 bytes per row under a 10,000-byte budget -> at most 10 rows
    same_time = lambda k, n: 0.1  # noqa: E731 - faster and faster per row: only the cap stops the search
    clock = FakeClock(same_time)
    policy = learned(clock=clock, meter=bytes_meter(1_000), max_memory=10_000)
    sizes = drive(policy, clock, 100)
    assert sizes[:FIRST] == [2, 2] and max(sizes) == 10 and sizes[-2] == 10
    assert policy.cap == 10 and policy.settled
    # the fixed part counts as per-row (an upper bound): 1,000 per row + 4,000 fixed over 2 rows -> 3,000 per row
    clear_learned()
    clock = FakeClock(same_time)
    policy = learned(clock=clock, meter=bytes_meter(1_000, fixed=4_000), max_memory=10_000)
    assert max(drive(policy, clock, 100)) == 3


def test_a_call_share_caps_the_calls_but_not_the_budget():
    # 1,000 bytes per row, a 10,000-byte budget, calls of at most a quarter of it -> 2 rows
    clock = FakeClock(lambda k, n: 0.1)  # faster and faster per row: only the cap stops the search
    policy = LearnedRows(None, torch.zeros(3), "share", max_memory=10_000, clock=clock, meter=bytes_meter(1_000),
                         call_share=0.25)  # fmt: skip
    sizes = drive(policy, clock, 40)
    assert max(sizes) == 2 and policy.cap == 2 and policy.settled and policy.budget == 10_000
    # a row larger than the share but within the budget still runs, one row per call
    clear_learned()
    clock = FakeClock(lambda k, n: 0.1)
    policy = LearnedRows(None, torch.zeros(3), "share", max_memory=10_000, clock=clock, meter=bytes_meter(3_000),
                         call_share=0.25)  # fmt: skip
    assert drive(policy, clock, 5) == [2, 1, 1, 1] and policy.cap == 1
    for bad in (0.0, 1.5, -0.25):
        with pytest.raises(ValueError, match="call_share"):
            LearnedRows(None, torch.zeros(3), "share", call_share=bad)


def test_forward_passes_on_the_cpu_take_a_quarter_of_the_budget_per_call(monkeypatch):
    from smoothsal.execution import calls

    asked = []
    real = calls.policy_for

    def recording(*args, **kwargs):
        asked.append(kwargs.get("call_share"))
        return real(*args, **kwargs)

    monkeypatch.setattr(calls, "policy_for", recording)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()
    x = torch.randn(5, 3, 2, 2)
    torch.testing.assert_close(calls.predict(model, x), model(x).detach())
    assert asked == [policy_module.FORWARD_CALL_SHARE] and policy_module.FORWARD_CALL_SHARE == 0.25
    policy = policy_for(model, x[0], "w", call_share=policy_module.FORWARD_CALL_SHARE, max_memory=4_000)
    assert policy.budget == 4_000 and policy.call_share == 0.25


def test_a_row_that_does_not_fit_the_budget_raises_naming_max_memory():
    clock = FakeClock(lambda k, n: 1.0)
    policy = learned(clock=clock, meter=bytes_meter(2_000_000), max_memory="1MB")
    with pytest.raises(BatchMemoryError, match="max_memory") as info:
        policy.run(2, lambda: clock.work(2))
    assert isinstance(info.value, MemoryError) and isinstance(info.value, ValueError)


def test_the_memory_limit_block_sets_the_budget_of_a_learned_policy():
    clock = FakeClock(lambda k, n: 0.1)
    with memory_limit(5_000):
        policy = LearnedRows(None, torch.zeros(3), "limit", clock=clock, meter=bytes_meter(1_000))
        assert max(drive(policy, clock, 50)) == 5


def test_fixed_rows_obey_the_size_and_the_remaining_rows():
    policy = FixedRows(5)
    assert [policy.next_size(r) for r in (100, 5, 3)] == [5, 5, 3]
    assert policy_for(None, torch.zeros(3), "x", batch_size=5).next_size(9) == 5
    assert isinstance(policy_for(None, torch.zeros(3), "x"), LearnedRows)
    with pytest.raises(ValueError, match="batch_size"):
        FixedRows(0)


# ---- the runner ---------------------------------------------------------------------------------
class FailsAbove:
    """``work(lo, hi)`` -> ``values[lo:hi] ** 2``, failing with the CPU allocator's error above ``limit`` rows."""

    def __init__(self, values: torch.Tensor, limit: int, unit: int = 1) -> None:
        self.values, self.limit, self.unit, self.calls = values, limit, unit, []

    def __call__(self, lo: int, hi: int) -> torch.Tensor:
        self.calls.append((hi - lo) * self.unit)
        if (hi - lo) * self.unit > self.limit:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")
        return self.values[lo:hi] ** 2


def test_out_of_memory_halves_for_good_and_gives_the_same_result():
    values = torch.arange(40, dtype=torch.float64)
    work = FailsAbove(values, limit=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = run_rows(FixedRows(16), 40, work)
    torch.testing.assert_close(got, values**2, rtol=0, atol=0)
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert messages == ["out of memory at 16 rows per call; retrying with 8",
                        "out of memory at 8 rows per call; retrying with 4"]  # fmt: skip
    assert work.calls[:3] == [16, 8, 4] and set(work.calls[3:]) == {4}  # never above 4 again


def test_out_of_memory_of_a_learned_policy_caps_it_for_the_process():
    clock = FakeClock(rate_cost({k: 10.0 * k for k in (2, 4, 8, 16, 32)}, warmup=1.0))
    policy = learned(clock=clock)
    work = FailsAbove(torch.arange(64.0), limit=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = run_rows(policy, 64, lambda lo, hi: clock.work(hi - lo) * 0 + work(lo, hi))
    torch.testing.assert_close(got, torch.arange(64.0) ** 2)
    assert policy.settled and policy.cap == 4 and learned(clock=clock).next_size(100) <= 4


def test_items_of_several_rows_halve_in_whole_items():
    values = torch.arange(12, dtype=torch.float64)
    work = FailsAbove(values, limit=8, unit=4)  # an item is 4 model rows (IG's path points)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = run_rows(FixedRows(16), 12, work, unit=4)
    torch.testing.assert_close(got, values**2)
    assert max(work.calls[1:]) <= 8 and work.calls[0] == 16


def test_one_item_that_does_not_fit_raises_and_other_errors_pass_through():
    with pytest.raises(RuntimeError, match="can't allocate"):
        run_call(FixedRows(4), 4, 1, FailsAbove(torch.ones(1), limit=0))
    with pytest.raises(ValueError, match="boom"):
        run_rows(FixedRows(4), 8, lambda lo, hi: (_ for _ in ()).throw(ValueError("boom")))


def test_a_caller_context_policy_does_not_retry_itself():
    """Under a RowContext the error reaches the caller's runner, which halves once for good."""
    context = RowContext(8)
    with pytest.raises(RuntimeError, match="can't allocate"):
        run_rows(context.policy(), 16, FailsAbove(torch.ones(16), limit=4))
    assert context.part(2, 4).batch_size == 8
    with pytest.raises(ValueError, match="batch_size"):
        RowContext(0)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 64, None])
def test_results_do_not_depend_on_the_grouping(batch_size):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).eval()
    x = torch.randn(23, 5, dtype=torch.float64)
    model = model.double()
    policy = policy_for(model, x[0], "test", batch_size=batch_size)
    got = run_rows(policy, 23, lambda lo, hi: model(x[lo:hi]).detach())
    torch.testing.assert_close(got, model(x).detach(), rtol=0, atol=1e-12)
    total = torch.zeros(3, dtype=torch.float64)

    def add(lo, hi, out):
        total.add_(out.sum(0))

    assert run_rows(policy_for(model, x[0], "test", batch_size=batch_size), 23,
                    lambda lo, hi: model(x[lo:hi]).detach(), consume=add) is None  # fmt: skip
    torch.testing.assert_close(total, model(x).detach().sum(0), rtol=0, atol=1e-12)


def test_settle_runs_the_learned_rule_to_its_end_on_throwaway_calls():
    clock = FakeClock(rate_cost({2: 18.0, 4: 30.0, 8: 31.0, 16: 5.0}))
    policy = learned(clock=clock)
    assert settle(policy, clock.work) == 8 and policy.settled
    assert clock.calls == {2: CALLS, 4: CALLS, 8: CALLS, 16: CALLS}


# ---- learned state: weak and bounded ---------------------------------------------------------------
def test_a_dead_models_learning_goes_with_it_and_a_new_model_starts_cold():
    clock = FakeClock(rate_cost({2: 18.0, 4: 30.0, 8: 31.0, 16: 5.0}))
    model = nn.Linear(3, 2)
    drive(learned(model, clock=clock), clock, 100)
    assert learned(model, clock=clock).settled and learned_works(model) == 1
    ident = id(model)
    del model
    gc.collect()
    assert sum(1 for m in policy_module._store.by_model if id(m) == ident) == 0
    for _ in range(50):  # a new model, sooner or later at the dead one's address, starts cold
        fresh = nn.Linear(3, 2)
        reused = id(fresh) == ident
        assert not learned(fresh, clock=clock).settled and learned(fresh, clock=clock).next_size(100) == FIRST
        if reused:
            break
        del fresh
        gc.collect()


def test_learned_works_per_model_are_bounded(monkeypatch):
    monkeypatch.setattr(policy_module, "MAX_WORKS", 3)
    model = nn.Linear(3, 2)
    clock = FakeClock(lambda k, n: 1.0)
    for what in "abcde":
        learned(model, clock=clock, what=what)
    assert learned_works(model) == 3
    learned(None, clock=clock, what="x")
    assert learned_works(None) == 1
