r"""Rows per call, learned from the work itself: the batch is chosen, not guessed, and not probed.

``Smooth`` and Integrated Gradients run many rows (noisy copies, path points) through the model,
a forward and a backward pass per call. How many rows go into one call never changes the
result (draws and path points are made in a fixed order), but it changes the speed: on a 2-core
CPU, EfficientNet-Lite0 at 224 px runs 100 rows in about 4.1 s at 4, 8 or 16 rows per call but
8.1 s at 32 and 13 s at 64 (``benchmarks/bench_batch.py``): from 32 rows on, each activation is
larger than glibc's 32 MiB limit for reusing freed memory, so every call maps fresh pages from
the operating system and touches them again (with ``MALLOC_MMAP_THRESHOLD_`` raised, 32 rows run
as fast as 16). A GPU gains from every doubling until it is saturated or out of memory. The best
size depends on the allocator, the machine and the model: it has to be measured.

A separate throughput probe would cost seconds of extra passes on every new model and shape,
which is more than a default call of ``SmoothGrad`` takes. The tuner instead *times the real
calls* of the work while it is being done:

1. the first call takes **two rows**; the activation memory it keeps (bytes saved for backward on
   CPU, the allocator's peak on CUDA: :mod:`smoothsal.execution.memory`) sets the **memory cap**
   ``budget // bytes_per_row`` (the budget: :func:`smoothsal.execution.memory.memory_budget`, by default
   half of the memory available; a row that does not fit raises
   :class:`~smoothsal.execution.memory.BatchMemoryError`);
2. each size is timed on **two calls**, the faster counting (the first call of a new shape also
   allocates and warms up, often 2–3x slower), and the size then **doubles** (2, 4, 8, ...) as
   long as the rows per second stay within :data:`DROP` (10 %) of the best so far, up to the
   cap: a plateau is crossed, a clear fall ends the search. The best size (the largest within
   :data:`TIE` of the fastest: on a plateau, fewer and larger calls; measured on Lite0, IG moved
   from 4–8 rows per call to 16 and from 1.35× slower than Captum's best ``internal_batch_size``
   to 3 % slower, ``benchmarks/bench_anchors.py``) is used for the rest of the work;
3. what was learned is **kept for the process** per key (model, row shape, dtype, device, method),
   so later calls on the same work start at the best size with no exploration at all.

The cost of learning is a few calls at sizes below the best (on a CPU, where throughput is flat
from a few rows on, almost nothing); the benefit is that the default is never the 2.5x-slow
literal batch of 32 rows.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from smoothsal.execution.measure import _measure
from smoothsal.execution.memory import (
    BatchMemoryError,
    format_bytes,
    is_out_of_memory,
    memory_budget,
    release_memory,
)

__all__ = ["CALLS", "DROP", "FIRST", "TIE", "RowTuner", "clear_learned", "work_key"]

#: the search ends when a size's rows per second fall this far below the best so far.
DROP = 0.10
#: sizes within this share of the fastest count as equally fast (the largest is taken: fewer calls).
TIE = 0.03
#: where learning starts (its first call also measures the memory per row).
FIRST = 2
#: timed calls per size during learning.
CALLS = 2

_lock = threading.Lock()
_learned: dict[Hashable, "_State"] = {}


@dataclass
class _State:
    cap: int | None = None  # most rows per call the memory budget allows
    timings: dict[int, list[float]] = field(default_factory=dict)  # size -> rows per second of each call
    settled: bool = False  # the search ended (a clear fall, or the cap)

    @property
    def rates(self) -> dict[int, float]:
        """Rows per second of each fully measured size (the faster of its timed calls)."""
        return {k: max(v) for k, v in self.timings.items() if len(v) >= CALLS}

    def best(self) -> int:
        rates = self.rates
        if not rates:
            return FIRST
        top = max(rates.values())
        return max(k for k, r in rates.items() if r >= (1 - TIE) * top)


def clear_learned() -> None:
    """Forget every learned batch size (tests and benchmarks that want a cold start)."""
    with _lock:
        _learned.clear()


def work_key(model: nn.Module | None, row: torch.Tensor, what: Any) -> Hashable:
    """The key under which rows-per-call are learned: model, row shape, dtype, device, method."""
    return (id(model), tuple(row.shape), str(row.dtype), str(row.device), what)


class RowTuner:
    """Chooses the rows of each call of one job and learns from their timings (see the module doc).

    Args:
        key: :func:`work_key` of the work.
        device: where it runs.
        fixed: a user's ``batch_size``: obeyed, nothing is learned.
        max_memory: a budget for this job (any form of :func:`smoothsal.execution.memory.parse_memory`).

    Use::

        tuner = RowTuner(key, device=x.device)
        while rows_left:
            k = tuner.next_size(rows_left)
            tuner.run(k, lambda: work(k))   # timed (and, on the first call, measured)

    A caller may run fewer rows than asked (``rows=``; e.g. ``Smooth`` runs whole draws of all
    its images); the rate is then learned from the rows actually run, under the size asked.
    """

    def __init__(self, key: Hashable, *, device: torch.device | str, fixed: int | None = None,
                 max_memory: Any = None) -> None:
        self.key = key
        self.device = torch.device(device)
        self.fixed = fixed
        self.max_memory = max_memory
        with _lock:
            self.state = _learned.setdefault(key, _State()) if fixed is None else _State(settled=True)

    def next_size(self, remaining: int) -> int:
        """Rows for the next call (at most ``remaining``)."""
        if self.fixed is not None:
            return max(1, min(self.fixed, remaining))
        size = self.state.best() if self.state.settled else self._exploring_size()
        return max(1, min(size, remaining))

    def _exploring_size(self) -> int:
        """The size being learned now: :data:`FIRST`, then double the largest measured, within the cap."""
        s = self.state
        rates = s.rates
        size = 2 * max(rates) if rates else FIRST
        return min(size, s.cap) if s.cap is not None else size

    def run(self, size: int, call: Callable[[], Any], rows: int | None = None) -> Any:
        """Run ``call`` (the work asked for with :meth:`next_size` ``= size``, on ``rows`` rows,
        default ``size``), timing it to learn from it."""
        rows = size if rows is None else rows
        s = self.state
        if self.fixed is not None or s.settled:
            return call()
        if size != self._exploring_size():
            return call()  # a partial call: nothing to learn
        if s.cap is None:
            result: list[Any] = []
            t0 = time.perf_counter()
            used = _measure(lambda: result.append(call()) or result[0], self.device)
            seconds = time.perf_counter() - t0
            self._set_cap(used, rows)
        else:
            t0 = time.perf_counter()
            result = [call()]
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            seconds = time.perf_counter() - t0
        self._learn(size, rows, seconds)
        return result[0]

    def run_split(self, size: int, n: int, work: Callable[[int, int], torch.Tensor], *, unit: int = 1) -> torch.Tensor:
        """``work(0, n)``, run and timed as the call of ``size`` rows; ``n`` items of ``unit`` model
        rows each (``Smooth(IG)``: noisy inputs of ``steps`` path points).

        After an out-of-memory error the rows per call are halved for good (:meth:`shrink`) and the
        same items run again in smaller calls, ``work(lo, hi)``, concatenated along the first axis:
        the result is the same.
        """
        try:
            return self.run(size, lambda: work(0, n), rows=n * unit)
        except Exception as err:  # noqa: BLE001 - only out-of-memory errors are handled
            if n == 1 or not is_out_of_memory(err):
                raise
        half_rows = self.shrink(n * unit)
        half = max(1, half_rows // unit)
        release_memory()
        return torch.cat([
            self.run_split(half_rows, min(half, n - lo), lambda a, b, lo=lo: work(lo + a, lo + b), unit=unit)
            for lo in range(0, n, half)
        ])

    def shrink(self, rows: int) -> int:
        """After an out-of-memory error on ``rows`` rows: at most half of them from now on (the
        learned cap too, for the rest of the process). Returns the new size."""
        half = max(1, rows // 2)
        if self.fixed is not None:
            self.fixed = min(self.fixed, half)
        else:
            s = self.state
            s.cap = half if s.cap is None else min(s.cap, half)
            s.timings = {k: v for k, v in s.timings.items() if k <= half} or {half: [0.0] * CALLS}
            s.settled = True
        warnings.warn(f"out of memory at {rows} rows per call; retrying with {half}", RuntimeWarning, stacklevel=3)
        return half

    # ---- learning ----------------------------------------------------------------------------
    def _set_cap(self, used: int, rows: int) -> None:
        per_row = max(1, -(-used // max(rows, 1)))  # an upper bound: the fixed part counts as per-row
        budget = memory_budget(self.device, self.max_memory)
        cap = budget // per_row
        if cap < 1:
            raise BatchMemoryError(
                f"one row of this work needs about {format_bytes(per_row)} of activation memory on "
                f"{self.device}, but the memory budget (max_memory) is {format_bytes(budget)}: raise it "
                "with smoothsal.execution.memory.set_max_memory() / --max-memory, lower the image size, or use a "
                "smaller model"
            )
        self.state.cap = int(cap)

    def _learn(self, size: int, rows: int, seconds: float) -> None:
        s = self.state
        s.timings.setdefault(size, []).append(rows / max(seconds, 1e-9))
        rates = s.rates
        if size not in rates:
            return  # more calls of this size to time
        if rates[size] < (1 - DROP) * max(rates.values()) or (s.cap is not None and size >= s.cap):
            s.settled = True
