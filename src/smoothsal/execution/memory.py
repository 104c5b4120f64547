r"""The memory budget of automatic batching: how much activation memory one call may use, per device.

Smoothing (SmoothGrad, Smilkov et al. 2017, arXiv:1706.03825), Integrated Gradients and the
metrics run many *rows* (noisy copies, path points, masked images) through one forward(+backward)
pass each. How many rows go into one call changes only the grouping, never the result, but it
changes the speed (on a 2-core CPU, EfficientNet-Lite0 at 224 px runs as fast at 4 to 16 rows per
call as at any larger size) and the peak memory (80 MiB of activations per row of a
forward+backward: 256 rows exceed 20 GB). The memory side of that choice:

* the **memory budget** per device, :func:`memory_budget`: a ``max_memory`` given to the call, else
  the limit of the enclosing :func:`memory_limit` block, else the default :func:`default_budget`:
  ``min(fraction × available, cap)`` with the fraction and cap of :data:`DEFAULT_BUDGETS` (CPU:
  a quarter of the available memory, at most 1.5 GiB; accelerators: half of the free device memory).
  The forms of a budget are those of :func:`parse_memory`;
* :class:`BatchMemoryError` when not one row fits, and the out-of-memory helpers
  (:func:`is_out_of_memory`, :func:`release_memory`) the runner (:mod:`smoothsal.execution.runner`)
  uses to halve the rows per call and retry.

Why the CPU default is capped at 1.5 GiB: a CPU gains nothing from calls larger than a few rows
(the cores are busy from ~4 rows of a 224-px image on: 4, 8 and 16 rows of Lite0 run equally
fast, ``benchmarks/bench_batch.py``), so the learned rows per call (:mod:`smoothsal.execution.policy`)
only need room for that plateau. 1.5 GiB holds 19 rows of Lite0's forward+backward (79.8 MiB
per row, :mod:`smoothsal.execution.measure`; its fastest size measured is 16 rows, 1.25 GiB), 18
of a ResNet-50's (82.7 MiB) and 13 of a ViT-B/16's (114.4 MiB), all at 224 px. A larger budget
only lets the search climb a flat plateau (ties go to the larger size) and keeps more resident
memory: with half of the free memory as the budget, ``smoothsal evaluate --quick`` peaked at
6.6 GB resident. A quarter of the available memory bounds it on small machines. Why not less:
IG on Lite0 is fastest at 16 rows per call (1.25 GiB; ``benchmarks/bench_anchors.py``), and a
768 MiB cap, tried, cut the peak of ``smoothsal evaluate --quick`` from 3,622 to 2,100 MiB but
took 1.03× its CPU time and 1.12× that of the demo's ``smoothsal explain`` (one round on a loaded
machine, ``benchmarks/results/bench_defaults_cap.json``); the process's peak is the budget plus
the free heap kept for reuse (:mod:`smoothsal.execution.allocator`), so that is where it is to be
bounded. On an
accelerator the memory is the device's own and throughput grows with the rows per call until the
device is saturated, so half of its free memory is the default there, as before.

The memory of one row is measured in :mod:`smoothsal.execution.measure`. Nothing here changes results.

Example:
    >>> parse_memory("4GB"), format_bytes(1536)
    (4000000000, '1.5 KiB')
    >>> with memory_limit("512MB"):
    ...     memory_budget("cpu")
    512000000
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import os
import re
import sys
import warnings
from collections.abc import Iterator

import torch

__all__ = [
    "DEFAULT_BUDGETS",
    "BatchMemoryError",
    "DeviceSpec",
    "MemorySpec",
    "available_memory",
    "default_budget",
    "format_bytes",
    "get_max_memory",
    "is_out_of_memory",
    "items_in_budget",
    "memory_budget",
    "memory_limit",
    "parse_memory",
    "release_memory",
    "set_max_memory",
]

#: The default budget per device type, ``(fraction of the available memory, cap in bytes or None)``:
#: :func:`default_budget` is ``min(fraction × available, cap)`` (module docstring: why these).
#: Other device types use the ``"cuda"`` entry.
DEFAULT_BUDGETS: dict[str, tuple[float, int | None]] = {
    "cpu": (0.25, 3 * 2**29),  # 1.5 GiB
    "cuda": (0.5, None),
}
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
#: the limit of the enclosing :func:`memory_limit` block (parsed), ``None`` for the default.
_limit: contextvars.ContextVar[int | float | None] = contextvars.ContextVar("smoothsal_max_memory", default=None)


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


@contextlib.contextmanager
def memory_limit(spec: MemorySpec) -> Iterator[None]:
    """Within the block, automatic batching uses ``spec`` as its memory budget wherever no call
    was given a ``max_memory`` of its own.

    Args:
        spec: any form of :func:`parse_memory` (``"4GB"``, ``"25%"``, ``0.25``, ``2**30``), or
            ``None`` for the default (:func:`default_budget`). Parsed on entry, so a bad value fails
            before any work.

    The limit is a :class:`contextvars.ContextVar`: it holds in this thread (and in the
    ``asyncio`` tasks started within the block), not in other threads, and is restored on exit,
    also when the block raises. Blocks nest (the innermost wins).

    Example:
        >>> with memory_limit("2GB"):
        ...     memory_budget("cpu")
        2000000000
    """
    value = None if spec is None else parse_memory(spec)
    token = _limit.set(value)
    try:
        yield
    finally:
        _limit.reset(token)


def set_max_memory(spec: MemorySpec) -> None:
    """Deprecated: use ``with memory_limit(spec):`` or pass ``max_memory=`` to the call.

    Sets the budget of the current context (for the main thread's top level: until changed), as
    :func:`memory_limit` does without an end. Kept so that code written against it still runs; a
    setting without a scope is the hidden process state the library avoids (issue 18).
    """
    warnings.warn(
        "smoothsal.execution.memory.set_max_memory is deprecated: use `with "
        "smoothsal.execution.memory.memory_limit(spec):` or pass max_memory= to the call",
        DeprecationWarning,
        stacklevel=2,
    )
    _limit.set(None if spec is None else parse_memory(spec))


def get_max_memory() -> int | float | None:
    """The limit in effect here (:func:`memory_limit`): bytes (int), a fraction (float) or ``None``."""
    return _limit.get()


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
    this process's heap holds resident and free for reuse (:func:`smoothsal.execution.allocator.free_heap_bytes`). CUDA:
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
    from smoothsal.execution.allocator import free_heap_bytes

    return _cpu_available() + free_heap_bytes()


def default_budget(device: DeviceSpec = None) -> int:
    """The budget when none is set: ``min(fraction × available_memory(device), cap)`` with the
    fraction and cap of :data:`DEFAULT_BUDGETS` for the device's type (module docstring: why)."""
    dev = _device(device)
    fraction, cap = DEFAULT_BUDGETS.get(dev.type, DEFAULT_BUDGETS["cuda"])
    budget = int(fraction * available_memory(dev))
    return budget if cap is None else min(budget, cap)


def memory_budget(device: DeviceSpec = None, max_memory: MemorySpec = None) -> int:
    """Bytes of activation memory automatic batching may use on ``device`` now.

    Args:
        device: where the work runs (``"cpu"``, ``"cuda:0"``, a :class:`torch.device`).
        max_memory: a budget for this call (any form of :func:`parse_memory`); ``None`` uses the
            limit of the enclosing :func:`memory_limit` block, else :func:`default_budget`.

    A byte budget is returned as is; a fraction is taken of :func:`available_memory` at the time
    of the call.
    """
    spec = parse_memory(max_memory) if max_memory is not None else _limit.get()
    if spec is None:
        return default_budget(device)
    if isinstance(spec, int):
        return spec
    return int(spec * available_memory(device))


def items_in_budget(
    n: int, bytes_per_item: int, device: DeviceSpec = None, max_memory: MemorySpec = None, *, share: float = 1.0
) -> int:
    """How many of ``n`` items of ``bytes_per_item`` bytes each to hold at once: as many as fit in
    ``share`` of the memory budget (:func:`memory_budget` of ``device`` and ``max_memory``), at
    least one, at most ``n``.

    For state that lives through a whole job rather than one call (``Smooth``'s float64 running
    sums per image take an eighth of the budget, so the calls' rows keep the rest).

    Example:
        >>> items_in_budget(100, 10**6, "cpu", "80MB", share=1 / 8)
        10
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"`share` must be in (0, 1], got {share!r}")
    room = int(share * memory_budget(device, max_memory))
    return max(1, min(n, room // max(1, int(bytes_per_item))))


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``; binary units, for messages."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


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
