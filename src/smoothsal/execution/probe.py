r"""A throughput probe of the batch size and an out-of-memory retry; no library path calls them.

1. a **memory cap** ``budget // row_bytes`` (:func:`smoothsal.execution.memory.memory_budget`,
   :func:`smoothsal.execution.measure.row_memory`), then a short, time-bounded **throughput
   probe** (rows/s at 1, 2, 4, ... rows, up to the cap) in :func:`choose_batch_size`, cached per
   key for the process;
2. a safety net, :func:`run_with_oom_retry`: an out-of-memory error halves the batch and retries.

The library's rows per call are learned from the real calls instead
(:mod:`smoothsal.execution.tuner`); this module is kept, as it was in ``smoothsal.batching``, for
the tests and benchmarks that still call it.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    >>> def work(k):  # forward+backward of k rows
    ...     x = torch.rand(k, 8, requires_grad=True)
    ...     model(x)[:, 0].sum().backward()
    >>> set_max_memory("64MB")
    >>> size = choose_batch_size(work, max_rows=64, device="cpu", key=("doc", (8,)), probe_seconds=0.2)
    >>> 1 <= size <= 64
    True
    >>> set_max_memory(None); clear_cache()
"""

from __future__ import annotations

import itertools
import math
import threading
import time
import warnings
from collections.abc import Callable, Hashable
from typing import Any

import torch

from smoothsal.execution.measure import _rows_memory_of, _sync
from smoothsal.execution.memory import (
    BatchMemoryError,
    DeviceSpec,
    MemorySpec,
    _device,
    format_bytes,
    get_max_memory,
    is_out_of_memory,
    memory_budget,
    parse_memory,
    release_memory,
    set_max_memory,  # the example above
)

__all__ = ["PROBE_SECONDS", "choose_batch_size", "clear_cache", "run_with_oom_retry"]

#: Default wall-clock bound (seconds) of the throughput probe of :func:`choose_batch_size`.
PROBE_SECONDS = 4.0
#: Calls per probed size (the time of the fastest is kept).
_CALLS = 2
#: Throughput drop (fraction of the best so far) that stops the probe early.
_DROP = 0.15
#: On CPU, sizes within this fraction of the best throughput count as ties; the smallest wins.
_TIE = 0.03
#: On CUDA, doubling the batch must gain at least this much throughput to be taken.
_CUDA_GAIN = 0.05

_lock = threading.Lock()
_cache: dict[Hashable, int] = {}
_probes: dict[
    Hashable, dict[int, float]
] = {}  # rows/s measured per size, per cache key (diagnostics)


def clear_cache() -> None:
    """Forget every batch size chosen by :func:`choose_batch_size` in this process."""
    with _lock:
        _cache.clear()
        _probes.clear()


def _cache_key(key: Hashable, dev: torch.device, max_memory: MemorySpec) -> Hashable:
    spec = parse_memory(max_memory) if max_memory is not None else get_max_memory()
    return (key, str(dev), spec)


def _timed(fn: Callable[[int], Any], k: int, dev: torch.device) -> float:
    _sync(dev)
    t0 = time.perf_counter()
    fn(k)
    _sync(dev)
    return time.perf_counter() - t0


def _candidates(limit: int) -> list[int]:
    """Powers of two from 4 (1, 2, 3 only when the limit is below 4), then the limit itself."""
    if limit < 4:
        return list(range(1, limit + 1))
    sizes = [2**i for i in range(2, int(math.log2(limit)) + 1)]
    if sizes[-1] != limit:
        sizes.append(limit)  # the whole job in one call, when it fits
    return sizes


def choose_batch_size(
    fn: Callable[[int], Any],
    *,
    row_bytes: int | None = None,
    max_rows: int,
    device: DeviceSpec,
    key: Hashable,
    max_memory: MemorySpec = None,
    probe_seconds: float = PROBE_SECONDS,
) -> int:
    """The number of rows per call that fits the memory budget and runs fastest.

    Procedure:

    1. cached? return it (capped by ``max_rows``);
    2. memory cap ``budget // row_bytes`` (``row_bytes`` measured on ``fn(1)``, ``fn(2)`` when not
       given; prefer :func:`row_memory` with real rows on CPU, which also counts the input);
       raises :class:`BatchMemoryError` if not one row fits;
    3. throughput probe at 4, 8, 16, ... rows up to ``limit = min(cap, max_rows)`` (and the
       limit itself; 1, 2, 3 when the limit is below 4): two calls per size, the faster one
       timed (the first call of a new shape also builds kernels and buffers, and on a shared
       machine the faster call is the less disturbed); it stops when throughput falls more than
       15% below the best so far, or before a size that would not end within ``probe_seconds``
       (the whole probe is about ``probe_seconds`` at most, once per key and process);
    4. CPU (and other devices): the size with the best rows/s, the smallest among those within
       3% of it (ties cost less memory). CUDA: the largest size whose throughput is still ≥ 5%
       above that of half its size (a bigger batch helps a GPU until it is saturated).

    Args:
        fn: ``fn(k)`` runs the real work on ``k`` rows (forward + backward); results are discarded.
        row_bytes: bytes per row (:func:`row_memory`), or ``None`` to measure it here.
        max_rows: rows of the whole job (no point in a larger batch), ≥ 1.
        device: where ``fn`` runs.
        key: hashable identity of the work, e.g. ``(id(model), tuple(x.shape[1:]), x.dtype,
            str(x.device), "smooth:VanillaGradient")``; the result is cached for the process per
            key, device and budget setting.
        max_memory: a budget for this call (any form of :func:`parse_memory`), overriding
            :func:`set_max_memory`.
        probe_seconds: wall-clock bound of the throughput probe (0: no probe, the memory cap).

    Returns:
        a batch size in ``[1, min(max_rows, budget // row_bytes)]``.
    """
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ValueError(f"`max_rows` must be a positive int, got {max_rows!r}")
    dev = _device(device)
    ckey = _cache_key(key, dev, max_memory)
    with _lock:
        cached = _cache.get(ckey)
    if cached is not None:
        return min(cached, max_rows)

    budget = memory_budget(dev, max_memory)
    if row_bytes is None:
        row_bytes = _rows_memory_of(fn, dev)
    if isinstance(row_bytes, bool) or not isinstance(row_bytes, int) or row_bytes < 1:
        raise ValueError(f"`row_bytes` must be a positive int, got {row_bytes!r}")
    cap = budget // row_bytes
    if cap < 1:
        raise BatchMemoryError(
            f"one row of this work needs about {format_bytes(row_bytes)} of activation memory on {dev}, "
            f"but the memory budget (max_memory) is {format_bytes(budget)}: raise it with "
            f"set_max_memory() / --max-memory, lower the image size, or use a smaller model"
        )
    limit = min(cap, max_rows)
    rates: dict[int, float] = {}
    best = (
        _probe(fn, limit, dev, probe_seconds, rates)
        if limit > 1 and probe_seconds > 0
        else limit
    )
    with _lock:
        _cache[ckey] = best
        _probes[ckey] = rates
    return best


def _probe(
    fn: Callable[[int], Any],
    limit: int,
    dev: torch.device,
    seconds: float,
    rates: dict[int, float],
) -> int:
    """Measured rows/s (into ``rates``) at growing sizes; the choice rule of :func:`choose_batch_size`."""
    start = time.perf_counter()
    per_row = None  # seconds per row at the last size, to predict the next probe's cost
    for k in _candidates(limit):
        if (
            per_row is not None
            and time.perf_counter() - start + _CALLS * k * per_row > seconds
        ):
            break  # the next size would not end in time
        # the first call of a new shape also builds kernels and buffers; the best of the calls
        # is the least disturbed by other work on the machine
        elapsed = max(min(_timed(fn, k, dev) for _ in range(_CALLS)), 1e-9)
        rates[k] = k / elapsed
        per_row = elapsed / k
        if rates[k] < (1 - _DROP) * max(rates.values()):
            break  # clearly past the best
    sizes = sorted(rates)
    if (
        dev.type == "cuda"
    ):  # largest size that still gains >= 5% over the size before it
        chosen = sizes[0]
        for prev, k in itertools.pairwise(sizes):
            if rates[k] < (1 + _CUDA_GAIN) * rates[prev]:
                break
            chosen = k
        return chosen
    top = max(rates.values())
    return min(k for k in sizes if rates[k] >= (1 - _TIE) * top)



def run_with_oom_retry(
    fn: Callable[[int], Any], batch_size: int, *, key: Hashable | None = None
) -> Any:
    """``fn(batch_size)``, halving the batch size after each out-of-memory error, down to 1.

    Args:
        fn: runs the whole job with the given batch size (its result must not depend on it).
        batch_size: the first size to try.
        key: the :func:`choose_batch_size` key of the work, if any: the size that worked
            replaces the cached one (for the current device-independent budget setting, every
            device the key was cached for).

    Out-of-memory errors are ``torch.cuda.OutOfMemoryError``, :class:`MemoryError` and a
    ``RuntimeError`` saying "out of memory" or "can't allocate memory" (the CPU allocator).
    The first one warns (:func:`warnings.warn`, once per call); the CUDA cache is emptied
    before each retry. At batch size 1 the error is raised.
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
    size, warned = batch_size, False
    while True:
        failed = False
        try:
            result = fn(size)
        except Exception as err:
            if size <= 1 or not is_out_of_memory(err):
                raise
            failed = True
        if not failed:
            break
        # outside the except block: the traceback (and the tensors its frames hold) is released
        release_memory()
        new = max(size // 2, 1)
        if not warned:
            warnings.warn(
                f"out of memory at batch size {size}; retrying with smaller batches (from {new}). "
                "Set a batch size or a lower memory budget (set_max_memory / --max-memory) to avoid this.",
                RuntimeWarning,
                stacklevel=2,
            )
            warned = True
        size = new
    if key is not None and size != batch_size:
        with _lock:
            for ckey in list(_cache):
                if ckey[0] == key:  # type: ignore[index]
                    _cache[ckey] = min(_cache[ckey], size)
    return result
