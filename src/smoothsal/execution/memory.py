r"""Automatic batch size under a memory budget: the batch is chosen, not guessed.

Smoothing (SmoothGrad, Smilkov et al. 2017, arXiv:1706.03825), Integrated Gradients and the
metrics run many *rows* (noisy copies, path points, masked images) through one forward+backward
pass each. How many rows go into one call changes only the grouping, never the result, but it
changes the speed a lot (on a 2-core CPU, EfficientNet-Lite0 at 224 px is 2x slower at 32 rows
than at 16) and the peak memory (256 rows of it exceed 24 GB). This module picks it:

1. a **memory budget** per device (:func:`set_max_memory`, :func:`memory_budget`): by default
   half of the memory available now (CPU: ``MemAvailable`` of ``/proc/meminfo``, bounded by the
   cgroup limit; CUDA: the device's free memory plus PyTorch's cached, unused blocks);
2. the **memory of one row** (:func:`row_memory`): bytes of activations a forward+backward keeps
   per row, measured on a few rows;
3. a **memory cap** ``budget // row_bytes``, then a short, time-bounded **throughput probe**
   (rows/s at 1, 2, 4, ... rows, up to the cap) in :func:`choose_batch_size`, cached per key for
   the process;
4. a safety net, :func:`run_with_oom_retry`: an out-of-memory error halves the batch and retries.

How row memory is measured
--------------------------
CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` — the real peak of
the caching allocator, minus what was allocated before.

CPU: PyTorch keeps no peak statistic for the CPU allocator, and the resident set size is blurred
by ``malloc`` reusing freed pages. We count instead what autograd *keeps*: a
:class:`torch.autograd.graph.saved_tensors_hooks` pack hook adds up the bytes of every tensor
saved for backward (each storage counted once, by its data pointer), plus the input rows and
what the call returns (the attributions: the input's gradient). This is the bulk of a forward+backward's peak: activations are
held from the forward pass until the backward pass frees them. It is measured at two row counts
``k1 < k2`` so the fixed part (weights saved by ``linear``/``conv``, buffers) cancels:
``per_row = (bytes(k2) − bytes(k1)) / (k2 − k1)``.

Limits of the CPU count (why the default budget is only a fraction of free memory):

* transient buffers that are not saved (an op's workspace, the gradient buffers alive during the
  backward pass, the largest of which is about one activation) are not counted; on
  EfficientNet-Lite0 at 224 px the count (78.4 MiB/row) is within 1% of the CPU allocator's real
  peak growth per row taken from the PyTorch profiler's memory trace (78.9 MiB/row;
  ``benchmarks/bench_batch.py`` prints both), but a network with large unsaved temporaries can
  exceed it;
* tensors a custom ``autograd.Function`` stores on ``ctx`` as attributes (instead of
  ``save_for_backward``) and tensors kept alive by module hooks are invisible to the hook;
* work under ``torch.no_grad()`` saves nothing, so its count is only the input and the output.

Everything is device-agnostic and never changes results: a batch size only changes how rows are
grouped into calls.

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

import gc
import itertools
import math
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Callable, Hashable
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "DEFAULT_FRACTION",
    "BatchMemoryError",
    "available_memory",
    "choose_batch_size",
    "clear_cache",
    "format_bytes",
    "get_max_memory",
    "is_out_of_memory",
    "memory_budget",
    "parse_memory",
    "release_memory",
    "row_memory",
    "run_with_oom_retry",
    "set_max_memory",
]

#: Fraction of the available memory that automatic batching may use when no budget is set. Half,
#: because the CPU row count misses transient buffers, and other work shares the machine.
DEFAULT_FRACTION = 0.5
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
#: Memory when nothing can be measured (no /proc/meminfo, no sysconf, not Windows).
_FALLBACK_AVAILABLE = 4 * 2**30

MemorySpec = int | float | str | None
DeviceSpec = str | torch.device | int | None

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "k": 2**10,
    "m": 2**20,
    "g": 2**30,
    "t": 2**40,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SPEC_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*|%)\s*$")
_FORMS = (
    'bytes as an int (4_000_000_000), a size string ("4GB", "512MB", "2GiB", "1.5G"), '
    'or a fraction of the available memory ("0.25", "25%", 0.25)'
)


class BatchMemoryError(MemoryError, ValueError):
    """Not even one row fits in the memory budget.

    A :class:`MemoryError` (it is about memory) and a :class:`ValueError` (it is a setting the
    user can change: the command line reports it as an error message, not a traceback).
    """


# ---- memory budget ---------------------------------------------------------------------------
_lock = threading.Lock()
_max_memory: int | float | None = None  # None: DEFAULT_FRACTION of the available memory
_cache: dict[Hashable, int] = {}
_probes: dict[
    Hashable, dict[int, float]
] = {}  # rows/s measured per size, per cache key (diagnostics)


def parse_memory(text: MemorySpec) -> int | float:
    """Parse a memory budget: an ``int`` number of bytes, or a ``float`` fraction in (0, 1].

    Accepted forms: an int (bytes, > 0); a float in (0, 1] (fraction of the available memory);
    strings ``"4GB"``, ``"512 MB"``, ``"2GiB"``, ``"1.5G"`` (``kB/MB/GB/TB`` are powers of 1000,
    ``KiB/MiB/GiB/TiB`` and the bare letters ``K/M/G/T`` powers of 1024, ``B`` bytes), a bare
    number ``"0.25"`` (≤ 1: a fraction; an integer > 1: bytes) or a percentage ``"25%"``.

    Raises:
        ValueError: naming ``max_memory`` and the accepted forms.

    Example:
        >>> parse_memory("4GB"), parse_memory("2GiB"), parse_memory("0.25"), parse_memory("50%")
        (4000000000, 2147483648, 0.25, 0.5)
    """

    def bad(why: str) -> ValueError:
        return ValueError(f"`max_memory` {why}; expected {_FORMS}, got {text!r}")

    if isinstance(text, bool) or text is None:
        raise bad("must be given")
    if isinstance(text, int):
        if text <= 0:
            raise bad("must be a positive number of bytes")
        return int(text)
    if isinstance(text, float):
        if not (0.0 < text <= 1.0):
            raise bad(
                "as a float is a fraction of the available memory and must be in (0, 1]"
            )
        return text
    if not isinstance(text, str):
        raise bad(f"must be an int, a float or a string, not {type(text).__name__}")
    match = _SPEC_RE.match(text)
    if match is None:
        raise bad("is not understood")
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit == "%":
        if not (0.0 < number <= 100.0):
            raise bad("as a percentage must be in (0, 100]")
        return number / 100.0
    if unit == "":
        if (
            0.0 < number <= 1.0
            and not match.group(1).isdigit()
            or match.group(1) == "1"
        ):
            return number  # "0.25", "1.0", "1": fractions
        if number > 1.0 and number.is_integer():
            return int(number)  # "4000000000": bytes
        raise bad(
            "as a bare number must be a fraction in (0, 1] or a whole number of bytes"
        )
    if unit not in _UNITS:
        raise bad(f"has an unknown unit {match.group(2)!r}")
    value = int(number * _UNITS[unit])
    if value <= 0:
        raise bad("must be positive")
    return value


def set_max_memory(spec: MemorySpec) -> None:
    """Set the process-wide activation-memory budget of automatic batching.

    Args:
        spec: ``None`` for the default (:data:`DEFAULT_FRACTION` of the memory available on the
            device at the time of each choice), or any form of :func:`parse_memory` (``"4GB"``,
            ``"0.25"``, ``2**30``). Parsed now, so a bad value fails before any work.

    The budget is part of the cache key of :func:`choose_batch_size`: after a change, sizes are
    chosen again.
    """
    global _max_memory
    value = None if spec is None else parse_memory(spec)
    with _lock:
        _max_memory = value


def get_max_memory() -> int | float | None:
    """The budget set by :func:`set_max_memory`: bytes (int), a fraction (float) or ``None``."""
    return _max_memory


def _device(device: DeviceSpec) -> torch.device:
    if device is None:
        return torch.device("cpu")
    if isinstance(device, int):
        return torch.device("cuda", device)
    return torch.device(device)


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read().strip()
    except (OSError, ValueError):
        return None
    return int(text) if text.isdigit() else None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # reported in kB (KiB)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    """Room left under this process's cgroup memory limit (containers), or ``None`` if unlimited."""
    for limit_path, usage_path in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),  # v1
    ):
        limit = _read_int(limit_path)  # "max" (v2 unlimited) reads as None
        usage = _read_int(usage_path)
        if limit is not None and usage is not None and limit < 2**60:
            return max(limit - usage, 0)
    return None


def _windows_available() -> int | None:
    import ctypes

    class _MemoryStatusEx(ctypes.Structure):
        _fields_ = [
            ("dwLength", ctypes.c_ulong),
            ("dwMemoryLoad", ctypes.c_ulong),
            ("ullTotalPhys", ctypes.c_ulonglong),
            ("ullAvailPhys", ctypes.c_ulonglong),
            ("ullTotalPageFile", ctypes.c_ulonglong),
            ("ullAvailPageFile", ctypes.c_ulonglong),
            ("ullTotalVirtual", ctypes.c_ulonglong),
            ("ullAvailVirtual", ctypes.c_ulonglong),
            ("sullAvailExtendedVirtual", ctypes.c_ulonglong),
        ]

    status = _MemoryStatusEx()
    status.dwLength = ctypes.sizeof(_MemoryStatusEx)
    if not ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
        return None
    return int(status.ullAvailPhys)


def _cpu_available() -> int:
    available = _meminfo_available()  # Linux
    if available is None and sys.platform == "win32":
        try:
            available = _windows_available()
        except (OSError, AttributeError):
            available = None
    if available is None:
        try:  # other POSIX (SC_AVPHYS_PAGES: Linux, Solaris; macOS has only the total)
            names = os.sysconf_names
            pages = "SC_AVPHYS_PAGES" if "SC_AVPHYS_PAGES" in names else "SC_PHYS_PAGES"
            available = os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE")
            if pages == "SC_PHYS_PAGES":
                available //= 2  # the total, not what is free: assume half is in use
        except (AttributeError, ValueError, OSError):
            available = None
    if available is None or available <= 0:
        available = _FALLBACK_AVAILABLE
    cgroup = _cgroup_available()
    return min(available, cgroup) if cgroup is not None else available


def available_memory(device: DeviceSpec = None) -> int:
    """Bytes free for new tensors on ``device`` now.

    CPU: ``MemAvailable`` of ``/proc/meminfo`` (Linux), ``GlobalMemoryStatusEx`` (Windows) or
    ``sysconf`` (other POSIX), bounded by the cgroup memory limit when there is one, plus what
    this process's heap holds free for reuse (:func:`smoothsal.allocator.free_heap_bytes`). CUDA:
    ``torch.cuda.mem_get_info`` free bytes plus the blocks PyTorch's caching allocator holds
    but does not use. MPS: the recommended working set minus what the driver holds.
    """
    dev = _device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        free, _total = torch.cuda.mem_get_info(index)
        cached = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
        return int(free + max(cached, 0))
    if dev.type == "mps":
        mps = getattr(torch, "mps", None)
        try:
            return int(mps.recommended_max_memory() - mps.driver_allocated_memory())  # type: ignore[union-attr]
        except (AttributeError, RuntimeError):
            return _cpu_available()  # unified memory
    from smoothsal.allocator import free_heap_bytes

    return _cpu_available() + free_heap_bytes()


def memory_budget(device: DeviceSpec = None, max_memory: MemorySpec = None) -> int:
    """Bytes of activation memory automatic batching may use on ``device`` now.

    Args:
        device: where the work runs (``"cpu"``, ``"cuda:0"``, a :class:`torch.device`).
        max_memory: a budget for this call, overriding :func:`set_max_memory` (any form of
            :func:`parse_memory`); ``None`` uses the process-wide setting.

    A byte budget is returned as is; a fraction (the default :data:`DEFAULT_FRACTION`) is taken
    of :func:`available_memory` at the time of the call.
    """
    spec = parse_memory(max_memory) if max_memory is not None else _max_memory
    if isinstance(spec, int):
        return spec
    fraction = DEFAULT_FRACTION if spec is None else spec
    return int(fraction * available_memory(device))


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``; binary units, for messages."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


# ---- row memory ------------------------------------------------------------------------------
def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


def _storage_key(t: Tensor) -> tuple[int, int]:
    try:
        storage = t.untyped_storage()
        return storage.data_ptr(), storage.nbytes()
    except (
        RuntimeError,
        NotImplementedError,
    ):  # tensors without storage (e.g. some subclasses)
        return id(t), t.numel() * t.element_size()


def _out_bytes(out: Any, seen: set[int]) -> int:
    """Bytes of the tensors in ``out`` (nested tuples/lists/dicts), storages not already in ``seen``."""
    if isinstance(out, Tensor):
        ptr, nbytes = _storage_key(out)
        if ptr in seen:
            return 0
        seen.add(ptr)
        return nbytes
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return sum(_out_bytes(o, seen) for o in out)
    return 0


def _measure(
    call: Callable[[], Any], dev: torch.device, extra: tuple[Tensor, ...] = ()
) -> int:
    """Bytes one ``call()`` needs: the peak (CUDA) or the saved-tensor count (CPU, see the module doc)."""
    if dev.type == "cuda":
        _sync(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        call()
        _sync(dev)
        return max(int(torch.cuda.max_memory_allocated(dev) - before), 0)
    seen: set[int] = set()
    kept: list[Tensor] = []  # held until the end: a freed storage's address could be reused by a
    total = 0  # later tensor (the returned gradient), which the pointer check would then miss

    def pack(t: Tensor) -> Tensor:
        nonlocal total
        ptr, nbytes = _storage_key(t)
        if ptr not in seen:
            seen.add(ptr)
            kept.append(t)
            total += nbytes
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = call()
    _sync(dev)
    total += _out_bytes(
        out, seen
    )  # what the call returns (the attributions), if not saved
    total += _out_bytes(extra, seen)  # the input rows, if no op saved them
    return total


def _per_row(m1: int, k1: int, m2: int, k2: int) -> int:
    """Slope of bytes over rows between two measurements (the average of the larger if not positive)."""
    slope = (m2 - m1) / (k2 - k1)
    if (
        slope <= 0
    ):  # noise (CUDA allocator rounding) or no per-row memory: be conservative
        slope = m2 / k2
    return max(math.ceil(slope), 1)


def row_memory(fn: Callable[[Tensor], Any], example_rows: Tensor) -> int:
    """Activation memory (bytes) that one more row adds to a forward+backward of ``fn``.

    Args:
        fn: runs the real work (forward + backward of the method) on the rows it is given,
            ``fn(rows)`` with ``rows`` ``[k, ...]``; the work's own input gradient is allowed.
        example_rows: ``[k, ...]`` rows like the real ones, ``k ≥ 2`` to separate the fixed part
            (weights, buffers) from the per-row part; the measurement runs ``fn`` on the first
            ``k // 2`` and on all ``k`` rows. With ``k = 1`` the whole measurement of one row
            is returned (an upper bound).

    Returns:
        bytes per row (≥ 1). CUDA: from the allocator's peak. CPU: bytes saved for backward, plus
        the input rows and what ``fn`` returns (e.g. the attributions), each storage counted once
        (see the module docstring for what this misses).
    """
    if (
        not isinstance(example_rows, Tensor)
        or example_rows.dim() == 0
        or example_rows.shape[0] < 1
    ):
        raise ValueError("`example_rows` must be a tensor [k, ...] with k >= 1 rows")
    dev = example_rows.device
    k2 = int(example_rows.shape[0])
    if k2 == 1:
        return max(_measure(lambda: fn(example_rows), dev, (example_rows,)), 1)
    k1 = k2 // 2
    small, large = example_rows[:k1].clone(), example_rows
    if dev.type != "cpu":
        fn(
            small
        )  # warm-up: lazy initialisation, workspaces and allocator caches are not rows
    m1 = _measure(lambda: fn(small), dev, (small,))
    m2 = _measure(lambda: fn(large), dev, (large,))
    return _per_row(m1, k1, m2, k2)


def _rows_memory_of(fn: Callable[[int], Any], dev: torch.device) -> int:
    """Per-row bytes of ``fn(k)`` (the rows are built inside ``fn``: their own bytes are not seen on CPU)."""
    if dev.type != "cpu":  # the CPU count is exact from the first call
        fn(1)  # warm-up
    m1 = _measure(lambda: fn(1), dev)
    m2 = _measure(lambda: fn(2), dev)
    return _per_row(m1, 1, m2, 2)


# ---- batch size ------------------------------------------------------------------------------
def clear_cache() -> None:
    """Forget every batch size chosen by :func:`choose_batch_size` in this process."""
    with _lock:
        _cache.clear()
        _probes.clear()


def _cache_key(key: Hashable, dev: torch.device, max_memory: MemorySpec) -> Hashable:
    spec = parse_memory(max_memory) if max_memory is not None else _max_memory
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


# ---- out-of-memory safety net ----------------------------------------------------------------
def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an out-of-memory error a smaller batch may avoid."""
    if isinstance(err, BatchMemoryError):
        return False  # a setting, not a transient shortage: halving one row cannot help
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(err, oom_type):
        return True
    if isinstance(err, MemoryError):
        return True
    if isinstance(err, RuntimeError):
        text = str(err).lower()
        return "out of memory" in text or "can't allocate memory" in text
    return False


def release_memory() -> None:
    """Free what can be freed before a retry (garbage, CUDA's cached blocks)."""
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


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
