r"""The memory of one row: bytes a forward+backward keeps, measured on a few real rows.

How many rows fit in one call is the memory budget (:mod:`smoothsal.execution.memory`) divided
by what one row needs, measured here.

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
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["row_memory"]


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

