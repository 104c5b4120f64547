r"""How many rows go into one model call: one protocol, a fixed and a learned implementation.

Every method, :class:`~smoothsal.smoothing.Smooth`, metric and study that runs many rows (noisy
copies, path points, masked images) asks a :class:`RowPolicy` how many to put into the next call
and runs them through :mod:`smoothsal.execution.runner`. How many rows go into one call never
changes the result (draws and path points are made in a fixed order), but it changes the speed:
on a 2-core CPU, EfficientNet-Lite0 at 224 px runs 100 rows in about 4.1 s at 4, 8 or 16 rows per
call and slower beyond (``benchmarks/bench_batch.py``: each activation of 32 rows is larger than
glibc's 32 MiB limit for reusing freed memory, :mod:`smoothsal.execution.allocator`); a GPU gains
from every doubling until it is saturated or out of memory. The best size depends on the
allocator, the machine and the model: it has to be measured. Two policies:

* :class:`FixedRows` — a user's ``batch_size``: obeyed (halved for good after an out-of-memory error);
* :class:`LearnedRows` — ``batch_size=None``: learned from the timings of the *real* calls of the
  work while it is being done (a separate throughput probe would cost seconds of extra passes on
  every new model and shape, more than a default call of ``SmoothGrad`` takes):

  1. the first call takes :data:`FIRST` (two) rows; the activation memory it keeps
     (:mod:`smoothsal.execution.measure`) sets the **memory cap** ``budget // bytes_per_row``
     (:func:`smoothsal.execution.memory.memory_budget`; a row that does not fit raises
     :class:`~smoothsal.execution.memory.BatchMemoryError`); forward passes on the CPU take a
     quarter of the budget per call at most (:data:`FORWARD_CALL_SHARE`);
  2. each size is timed on :data:`CALLS` (two) calls, the faster counting (the first call of a new
     shape also allocates and warms up), and the size then **doubles** (2, 4, 8, ...) as long as
     the rows per second stay within :data:`DROP` (10 %) of the best so far, up to the cap: a
     plateau is crossed, a clear fall ends the search. The size used from then on is the
     **largest** within :data:`TIE` (3 %) of the fastest (on a plateau, fewer and larger calls; on
     Lite0 this moved IG from 4–8 rows per call to 16, from 1.35× slower than Captum's best
     ``internal_batch_size`` to 3 % slower, ``benchmarks/bench_anchors.py``);
  3. what was learned is **kept** per model and work (row shape, dtype, device, what is run), so
     later calls on the same work start at the best size with no exploration. The store holds the
     model weakly: when the model is garbage-collected its entries go with it (a new model that
     happens to get the same ``id`` starts cold), and at most :data:`MAX_WORKS` works are kept per
     model (the least recently used go first).

A caller that runs rows of its own for a method that batches (``Smooth`` around Integrated
Gradients) tells the method how many rows it may run per model call with a :class:`RowContext`
(:meth:`smoothsal.methods.base.Attribution.attribute_rows`): one policy, the caller's, decides,
and an out-of-memory error reaches the caller's runner, which halves its calls for good.
"""

from __future__ import annotations

import threading
import time
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, TypeVar, runtime_checkable

import torch
from torch import Tensor, nn

from smoothsal.execution.measure import _measure
from smoothsal.execution.memory import BatchMemoryError, MemorySpec, format_bytes, memory_budget

__all__ = [
    "CALLS",
    "DROP",
    "FIRST",
    "FORWARD_CALL_SHARE",
    "MAX_WORKS",
    "TIE",
    "FixedRows",
    "LearnedRows",
    "LearnedSize",
    "RowContext",
    "RowPolicy",
    "clear_learned",
    "learned_sizes",
    "learned_works",
]

#: the search ends when a size's rows per second fall this far below the best so far.
DROP = 0.10
#: sizes within this share of the fastest count as equally fast (the largest is taken: fewer calls).
TIE = 0.03
#: where learning starts (its first call also measures the memory per row).
FIRST = 2
#: timed calls per size during learning.
CALLS = 2
#: works (row shape, dtype, device, what is run) remembered per model, and for work without a model.
MAX_WORKS = 64
#: the share of the budget one call of forward passes (no gradient) may take on the CPU. The card's
#: four faithfulness metrics on Lite0 ran as fast at 4, 32 or 128 rows per call (17.7, 17.5 and
#: 17.4 s for two rounds, with no trims), but the process peaked at 449, 1,101 and 4,049 MiB
#: (``benchmarks/results/bench_forward_faults.json``); the learned search crosses such a plateau
#: up to its cap, so without a share it may end at the whole budget. A quarter of the default
#: budget is 31 rows of Lite0 at 224².
FORWARD_CALL_SHARE = 0.25

T = TypeVar("T")


@runtime_checkable
class RowPolicy(Protocol):
    """What the runner (:mod:`smoothsal.execution.runner`) needs from a rows-per-call rule.

    Attributes:
        retries: whether the runner halves the rows and retries after an out-of-memory error
            (``False``: the caller that chose the rows does, :meth:`RowContext.policy`).
    """

    retries: bool

    def next_size(self, remaining: int) -> int:
        """Rows for the next call (``1 <= size <= remaining``)."""
        ...

    def run(self, size: int, call: Callable[[], T], *, rows: int | None = None, per_call: int | None = None) -> T:
        """Run ``call``, the work of one call asked for with :meth:`next_size` ``= size`` that runs
        ``rows`` model rows (default ``size``) in model calls of at most ``per_call`` rows
        (default ``rows``), and learn from it (a learned policy times it, and measures the
        memory per row of its first call as its peak over ``per_call``)."""
        ...

    def shrink(self, rows: int) -> int:
        """After an out-of-memory error on ``rows`` rows: at most half of them from now on; returns the new size."""
        ...


def _warn_shrink(rows: int, half: int) -> None:
    warnings.warn(f"out of memory at {rows} rows per call; retrying with {half}", RuntimeWarning, stacklevel=4)


class FixedRows:
    """A given number of rows per call (a user's ``batch_size``), halved for good after an out-of-memory error.

    Args:
        batch_size: model rows per call, ``>= 1``.
        retries: whether the runner retries with half the rows after an out-of-memory error.

    Example:
        >>> policy = FixedRows(16)
        >>> policy.next_size(100), policy.next_size(5)
        (16, 5)
    """

    def __init__(self, batch_size: int, *, retries: bool = True) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
        self.size = batch_size
        self.retries = retries

    def __repr__(self) -> str:
        return f"FixedRows({self.size})"

    def next_size(self, remaining: int) -> int:
        return max(1, min(self.size, remaining))

    def run(self, size: int, call: Callable[[], T], *, rows: int | None = None, per_call: int | None = None) -> T:
        return call()

    def shrink(self, rows: int) -> int:
        half = max(1, rows // 2)
        self.size = min(self.size, half)
        _warn_shrink(rows, half)
        return half


# ---- what was learned, per model (weakly) and work -------------------------------------------------
@dataclass
class _State:
    per_row: int | None = None  # activation bytes per row, from the first measured call
    limit: int | None = None  # rows per call an out-of-memory error allows (half of what failed)
    timings: dict[int, list[float]] = field(default_factory=dict)  # size -> rows per second of each call
    settled: bool = False  # the search ended (a clear fall, or the cap)

    @property
    def rates(self) -> dict[int, float]:
        """Rows per second of each fully measured size (the faster of its timed calls)."""
        return {k: max(v) for k, v in self.timings.items() if len(v) >= CALLS}

    def best(self) -> int:
        """The largest size within :data:`TIE` of the fastest (:data:`FIRST` before any is measured)."""
        rates = self.rates
        if not rates:
            return FIRST
        top = max(rates.values())
        return max(k for k, r in rates.items() if r >= (1 - TIE) * top)


class _Store:
    """Learned states per model, held weakly, at most :data:`MAX_WORKS` works each (least recently used out)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_model: weakref.WeakKeyDictionary[nn.Module, OrderedDict[Hashable, _State]] = weakref.WeakKeyDictionary()
        self.unowned: OrderedDict[Hashable, _State] = OrderedDict()  # work whose method exposes no model

    def state(self, model: nn.Module | None, key: Hashable) -> _State:
        with self.lock:
            works = self.unowned if model is None else self.by_model.setdefault(model, OrderedDict())
            found = works.get(key)
            if found is None:
                found = works[key] = _State()
            works.move_to_end(key)
            while len(works) > MAX_WORKS:
                works.popitem(last=False)
            return found

    def clear(self) -> None:
        with self.lock:
            self.by_model.clear()
            self.unowned.clear()


_store = _Store()


def clear_learned() -> None:
    """Forget every learned rows-per-call (tests and benchmarks that want a cold start)."""
    _store.clear()


class LearnedSize(TypedDict):
    """What is learned for one work (:func:`learned_sizes`)."""

    best: int  # the size used once settled
    settled: bool  # whether the search has ended
    per_row: int | None  # measured activation bytes per row
    rates: dict[int, float]  # rows per second per fully timed size


def learned_sizes() -> dict[Hashable, LearnedSize]:
    """What is learned now, for the benchmarks: per work key ``(row shape, dtype, device, what)``
    of every live model (and work without a model), its ``best`` size, ``settled`` flag,
    measured ``per_row`` bytes and ``rates`` (rows per second per size)."""
    with _store.lock:
        works = [w for model_works in _store.by_model.values() for w in model_works.items()]
        works += list(_store.unowned.items())
    return {key: LearnedSize(best=s.best(), settled=s.settled, per_row=s.per_row, rates=s.rates) for key, s in works}


def learned_works(model: nn.Module | None) -> int:
    """How many works have learned state for ``model`` (``None``: work without a model)."""
    with _store.lock:
        works = _store.unowned if model is None else _store.by_model.get(model)
        return 0 if works is None else len(works)


class LearnedRows:
    """Rows per call learned from the timings of the real calls, under the memory budget (module docstring).

    Args:
        model: the model the rows run through (the learned state is kept for it, weakly), or ``None``.
        example: one row ``[...]`` like the real ones (its shape, dtype and device are part of the key).
        what: what is run (e.g. ``("smooth", "VanillaGradient", 1)``): different work on the same
            rows learns apart.
        max_memory: the memory budget of this work (any form of
            :func:`~smoothsal.execution.memory.parse_memory`); ``None``: the budget in effect
            (:func:`~smoothsal.execution.memory.memory_budget`).
        clock: seconds now (``time.perf_counter``; the tests give a clock they control).
        meter: ``meter(call, device) -> bytes``, the peak memory of the first measured call
            (:mod:`smoothsal.execution.measure`; the tests give their own).
        call_share: the share of the budget one call may take (the memory cap is
            ``call_share × budget // bytes_per_row``); the budget itself, which also bounds the free
            heap kept between calls, is unchanged. Forward passes on the CPU take
            :data:`FORWARD_CALL_SHARE` (:func:`smoothsal.execution.calls.forward_rows`).

    Use (or let :func:`smoothsal.execution.runner.run_rows` do it)::

        policy = LearnedRows(model, x[0], "grad")
        while rows_left:
            k = policy.next_size(rows_left)
            policy.run(k, lambda: work(k))   # timed (and, on the first call, measured)
    """

    retries = True

    def __init__(
        self,
        model: nn.Module | None,
        example: Tensor,
        what: Hashable,
        *,
        max_memory: MemorySpec = None,
        clock: Callable[[], float] = time.perf_counter,
        meter: Callable[[Callable[[], Any], torch.device], int] = _measure,
        call_share: float = 1.0,
    ) -> None:
        if not 0.0 < call_share <= 1.0:
            raise ValueError(f"`call_share` must be in (0, 1], got {call_share!r}")
        self.call_share = call_share
        self.device = example.device
        self.key = (tuple(example.shape), str(example.dtype), str(example.device), what)
        self.max_memory = max_memory
        self.clock = clock
        self.meter = meter
        self.state = _store.state(model, self.key)
        self._budget: int | None = None

    def __repr__(self) -> str:
        return f"LearnedRows(key={self.key!r}, settled={self.state.settled}, best={self.state.best()})"

    @property
    def settled(self) -> bool:
        """Whether the search has ended (later calls use the best size found)."""
        return self.state.settled

    @property
    def budget(self) -> int:
        """The memory budget of this work in bytes (computed once per policy)."""
        if self._budget is None:
            self._budget = memory_budget(self.device, self.max_memory)
        return self._budget

    @property
    def cap(self) -> int | None:
        """Most rows per call the budget's call share (and any out-of-memory error) allows; ``None`` before the first measurement."""
        s = self.state
        share = None if s.per_row is None else int(self.call_share * self.budget) // s.per_row
        caps = [c for c in (share, s.limit) if c is not None]
        return max(1, min(caps)) if caps else None

    def next_size(self, remaining: int) -> int:
        size = self.state.best() if self.state.settled else self._exploring_size()
        cap = self.cap
        if cap is not None:
            size = min(size, cap)
        return max(1, min(size, remaining))

    def _exploring_size(self) -> int:
        """:data:`FIRST`, then double the largest measured size, within the cap."""
        rates = self.state.rates
        size = 2 * max(rates) if rates else FIRST
        cap = self.cap
        return min(size, cap) if cap is not None else size

    def run(self, size: int, call: Callable[[], T], *, rows: int | None = None, per_call: int | None = None) -> T:
        rows = size if rows is None else rows
        s = self.state
        if s.settled or size != self._exploring_size():
            return call()  # settled, or a partial call: nothing to learn
        result: list[Any] = []
        t0 = self.clock()
        if s.per_row is None:
            used = self.meter(lambda: result.append(call()) or result[0], self.device)
            seconds = self.clock() - t0
            self._set_per_row(used, rows if per_call is None else min(per_call, rows))
        else:
            result.append(call())
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            seconds = self.clock() - t0
        self._learn(size, rows, seconds)
        return result[0]

    def shrink(self, rows: int) -> int:
        half = max(1, rows // 2)
        s = self.state
        s.limit = half if s.limit is None else min(s.limit, half)
        s.timings = {k: v for k, v in s.timings.items() if k <= half} or {half: [0.0] * CALLS}
        s.settled = True
        _warn_shrink(rows, half)
        return half

    def _set_per_row(self, used: int, rows: int) -> None:
        per_row = max(1, -(-used // max(rows, 1)))  # an upper bound: the fixed part counts as per-row
        if self.budget // per_row < 1:
            raise BatchMemoryError(
                f"one row of this work needs about {format_bytes(per_row)} of activation memory on "
                f"{self.device}, but the memory budget (max_memory) is {format_bytes(self.budget)}: raise it "
                "with max_memory= / --max-memory, lower the image size, or use a smaller model"
            )
        self.state.per_row = per_row

    def _learn(self, size: int, rows: int, seconds: float) -> None:
        s = self.state
        s.timings.setdefault(size, []).append(rows / max(seconds, 1e-9))
        rates = s.rates
        if size not in rates:
            return  # more calls of this size to time
        cap = self.cap
        if rates[size] < (1 - DROP) * max(rates.values()) or (cap is not None and size >= cap):
            s.settled = True


@dataclass(frozen=True)
class RowContext:
    """What a caller that chose the rows of a call tells the method it calls (the nested-rows protocol).

    ``Smooth`` asks its policy for the rows of a call (noisy inputs × the method's
    :attr:`~smoothsal.methods.base.Attribution.rows_per_input`) and hands the method these inputs
    with a context: the method then runs them in model calls of at most :attr:`batch_size`
    rows, learns nothing itself and lets an out-of-memory error reach the caller, whose runner
    halves its calls for good (:meth:`policy`). A method that does not read a context runs the
    inputs it is given in one call (:meth:`smoothsal.methods.base.Attribution.attribute_rows`).

    Attributes:
        batch_size: most model rows per model call, ``>= 1``.
        draws: ``[B]`` long, the index ``j`` of the noisy draw each input is (``Smooth``: input
            ``i`` is draw ``draws[i]`` of its image, ``0 <= j < n_draws``), or ``None``. A method
            that spreads work over the draws (e.g. one stratified path point per draw) reads it.
        n_draws: the draws the caller makes in all (``Smooth``'s ``n_samples``), or ``None``.
    """

    batch_size: int
    draws: Tensor | None = None
    n_draws: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int, got {self.batch_size!r}")

    def policy(self) -> FixedRows:
        """The policy a method runs its rows with under this context: :attr:`batch_size` rows,
        no retry of its own (the caller's runner halves and retries)."""
        return FixedRows(self.batch_size, retries=False)

    def part(self, lo: int, hi: int) -> RowContext:
        """The context of inputs ``lo:hi`` of this call (their draws)."""
        draws = None if self.draws is None else self.draws[lo:hi]
        return RowContext(self.batch_size, draws, self.n_draws)
