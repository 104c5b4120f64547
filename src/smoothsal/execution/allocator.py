"""Keep freed CPU memory for reuse: no page faults for every forward+backward's activations.

glibc's ``malloc`` serves a block of 32 MiB or more (128 KiB at first; the threshold adapts up to
32 MiB) with a fresh ``mmap`` and gives it back to the operating system on ``free``. A
forward+backward of an image classifier allocates and frees such blocks for every activation
(EfficientNet-Lite0 at 16 rows: ``[16, 96, 112, 112]`` floats are 77 MB), so each call of a
sampled method faults every page of its activations in again and the kernel zeroes them: on a
2-core CPU, SmoothGrad of Lite0 spent a third of its time in the kernel (9–10 s system time per
20 s of user time, 5 million minor page faults for 640 rows; ``benchmarks/bench_allocator.py``).
:func:`keep_freed_memory` sets ``M_MMAP_THRESHOLD`` to 1 GiB and ``M_TRIM_THRESHOLD`` to its
maximum with ``mallopt(3)``, so blocks come from the heap and stay there for the next call: the
same work then takes 0.6× the time with almost no system time and no page faults.

The cost: the process would keep its peak heap (what the largest call needed) instead of
returning it to the system between calls. Two bounds keep that to the budget's scale: after
each call of a learned policy on the CPU the runner (:mod:`smoothsal.execution.runner`) calls
:func:`trim_above` with :data:`FREE_BUDGETS` (two) memory budgets, which gives the heap's free
pages back (``malloc_trim``) when its free part exceeds them, and glibc trims the top of the heap
beyond 2 GiB itself (``M_TRIM_THRESHOLD``, an ``int``). Why two budgets and not one: a call of
the learned size frees about one budget of activations, and the fragments earlier work left
free come on top; at one budget, SmoothGrad of Lite0 at the learned size trimmed after 21 of its
32 calls and faulted its activations in again each time (6.3 million minor page faults and 16.5 s
of system time for 512 rows, against 32 faults and 0.2 s without the bound:
``benchmarks/bench_fold_alloc.py --batch-size 0``); at two, calls within the budget never trim,
and the bound still returns what larger calls (a fixed ``batch_size``, other work) left behind.
(That was measured with glibc's count of free heap, see below; with the resident count one budget
was measured again in whole jobs: it lowered the demo's peak by 260–340 MiB at 1.07× its CPU time and did not
lower the report card's, ``benchmarks/results/bench_defaults_free_one_budget.json``, so two stay.)
Between jobs the bound is tighter: a new job of a learned policy
(:func:`smoothsal.execution.runner.policy_for`) starts with at most :data:`START_BUDGETS` (one)
budget of free heap, enough for its calls of the learned size. A trim is all or nothing:
``malloc_trim(0)`` gives back every whole free page, not just the part beyond the bound, so a job
that trims starts with almost nothing free and faults its calls' memory in again; the bound costs
nothing when calls stay well inside one budget, and a job whose calls fill the whole budget pays it
every time (forward passes on the CPU take at most a quarter of it per call:
:data:`smoothsal.execution.policy.FORWARD_CALL_SHARE`). Two budgets kept from one job to
the next let the fragments of every earlier job pile up under the next one's calls:
``smoothsal evaluate --quick`` peaked at 4,453 MiB without this bound and 2,503 MiB with it, at
1.05× the CPU time; the demo's ``smoothsal explain`` at 3,095 and 2,823 MiB, at 0.92× the CPU
time, with 5.3 M page faults instead of 0.8 M (``benchmarks/results/bench_defaults_jobstart.json``,
one round, both at the same time). A job after one of the learned size does not trim: SmoothGrad
of Lite0 leaves about 1.1 GiB free, less than the 1.5 GiB budget.
:func:`smoothsal.execution.memory.available_memory` counts the resident free part of the heap
as available, so the memory budget of later work is not lowered by it.

What counts as free is the *resident* free heap (:func:`free_heap_bytes`). glibc's own count
(``mallinfo2().fordblks``) keeps listing the chunks a trim gave the pages of back, so with it as
the measure, once a budget of free chunks sat inside the heap every new job trimmed again and
faulted its calls' memory in again (in ``smoothsal evaluate --quick`` every step of a deletion
or insertion curve is a job). Counting the resident part only, ``smoothsal evaluate --quick`` took
8.95 M minor page faults against 32.4 M, 30.5 against 105.3 s of system time and 567.0 against
673.7 CPU s (0.84×), with a peak of 2,778 against 2,590 MiB; the demo's ``smoothsal explain`` 2.92 M
against 5.27 M faults, 334.8 against 322.9 CPU s (1.04×), peak 3,009 against 2,987 MiB
(``benchmarks/results/bench_defaults_resident_free.json``: one round, both at the same time, one
thread each). The measurements above this paragraph were made with glibc's count, which may have
made their trims more frequent than the bounds alone would. None of this changes what a
computation returns, only *when* memory goes back to the system.

When: smoothsal calls :func:`prepare` before a method, ``Smooth`` or a forward-only metric runs
on the CPU; it calls :func:`keep_freed_memory` once per process, unless the environment sets
``SMOOTHSAL_KEEP_FREED_MEMORY=0`` (or :func:`keep_freed_memory` was called with ``False``
first). Only glibc (Linux) has ``mallopt``; elsewhere nothing is changed. The same effect can
be had for any program with ``MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=...``
in the environment, or by preloading jemalloc or tcmalloc (PyTorch's CPU tuning guide).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading

import torch

__all__ = ["ENV", "FREE_BUDGETS", "START_BUDGETS", "free_heap_bytes", "keep_freed_memory", "kept", "prepare", "trim_above"]

#: environment variable: ``0`` leaves the allocator as it is
ENV = "SMOOTHSAL_KEEP_FREED_MEMORY"
#: the heap's free part is given back when it exceeds this many memory budgets (module docstring)
FREE_BUDGETS = 2
#: a new job of a learned policy starts with the heap's free part trimmed to this many memory budgets
START_BUDGETS = 1
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap
_TRIM_THRESHOLD = (1 << 31) - 1  # the heap's top is trimmed beyond 2 GiB (the largest int mallopt takes)
_GLIBC_DEFAULTS = (128 * 1024, 128 * 1024)  # the static defaults restored by keep_freed_memory(False)

_lock = threading.Lock()
_state = {"decided": False, "kept": False, "trims": 0, "outside": 0}  # outside: resident bytes not malloc's (free_heap_bytes)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - glibc only (musl has no mallopt parameters to set)
        return libc
    except (OSError, AttributeError):
        return None


def keep_freed_memory(enabled: bool = True) -> bool:
    """Tell glibc's malloc to keep freed blocks up to 1 GiB for reuse (``True``) or to go back to
    its static defaults, 128 KiB (``False``). Returns whether the setting was applied (``False``
    where there is no glibc)."""
    if not isinstance(enabled, bool):
        raise TypeError(f"`enabled` must be a bool, got {enabled!r}")
    with _lock:
        _state["decided"] = True
        libc = _libc()
        if libc is None:
            return False
        mmap_t, trim_t = (_MMAP_THRESHOLD, _TRIM_THRESHOLD) if enabled else _GLIBC_DEFAULTS
        ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_t)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_t))
        _state["kept"] = enabled and ok
        if _state["kept"]:
            _calibrate()
        return ok


def kept() -> bool:
    """Whether freed memory is being kept (:func:`keep_freed_memory` applied with ``True``)."""
    return _state["kept"]


def prepare(device: torch.device | str | None) -> None:
    """Before CPU work: :func:`keep_freed_memory` once per process unless ``SMOOTHSAL_KEEP_FREED_MEMORY=0``
    or a call of :func:`keep_freed_memory` decided already."""
    if _state["decided"] or (device is not None and torch.device(device).type != "cpu"):
        return
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        _state["decided"] = True
        return
    keep_freed_memory(True)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]  # fmt: skip


def _mallinfo() -> _Mallinfo2 | None:
    libc = _libc()
    fn = getattr(libc, "mallinfo2", None) if libc is not None else None
    if fn is None:
        return None
    fn.restype = _Mallinfo2
    return fn()


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _calibrate() -> None:
    """Record the resident memory that is not malloc's (code, libraries, Python's own arenas):
    what is resident beyond malloc's blocks in use. Right after freed memory begins to be kept, and
    right after a trim, the heap holds almost no resident free pages, so this is all outside malloc."""
    info, rss = _mallinfo(), _resident_bytes()
    if info is not None and rss is not None:
        _state["outside"] = max(0, rss - int(info.uordblks) - int(info.hblkhd))


def free_heap_bytes() -> int:
    """Resident bytes the heap holds free for reuse: memory this process keeps that the system
    could otherwise use (0 where unknown or not kept).

    ``mallinfo2().fordblks`` counts every free chunk, also those whose pages a trim gave back to
    the system (they stay in malloc's lists, not resident: counting them, a trim would be asked for
    again at every job, and each would fault the next calls' memory in again). So the resident part
    is estimated as the process's resident memory less malloc's blocks in use (``uordblks`` +
    ``hblkhd``) less the resident memory outside malloc measured at the last trim (or when freed
    memory began to be kept), at most ``fordblks``. Memory outside malloc that grew since (modules
    imported later) counts as free heap until the next trim: the estimate errs towards trimming.
    """
    if not _state["kept"]:
        return 0
    info, rss = _mallinfo(), _resident_bytes()
    if info is None:
        return 0
    if rss is None:
        return int(info.fordblks)
    resident_free = rss - int(info.uordblks) - int(info.hblkhd) - _state["outside"]
    return max(0, min(int(info.fordblks), resident_free))


def trim_above(budget: int) -> bool:
    """Give the heap's free pages back to the system when its free part exceeds ``budget`` bytes.

    Only while freed memory is kept (:func:`kept`) and where glibc has ``malloc_trim``; returns
    whether it trimmed. ``malloc_trim(0)`` releases every whole free page of every arena (the
    next calls fault them in again: this is the price of the bound, paid only when a larger
    call or other work left more than a budget of free heap behind).
    """
    if not _state["kept"] or free_heap_bytes() <= budget:
        return False
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is None:
        return False
    trim(0)
    _state["trims"] += 1
    _calibrate()
    return True
