r"""The memory of one row: the peak bytes of a call's tensors, measured on a few real rows.

How many rows fit in one call is the memory budget (:mod:`smoothsal.execution.memory`) divided
by what one row needs, measured here (:class:`~smoothsal.execution.policy.LearnedRows` measures
the first call of each work with :func:`_measure`).

How row memory is measured
--------------------------
CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` — the real peak of
the caching allocator, minus what was allocated before.

CPU: PyTorch keeps no peak statistic for the CPU allocator, and the resident set size is blurred
by ``malloc`` reusing freed pages. We take instead the **peak of the live tensors**: a
``TorchDispatchMode`` sees every tensor each operator returns (the forward pass, and the
backward pass, which autograd runs with the caller's dispatch modes), and after each operator
adds up the storages it allocated that are still alive (each counted once, by its storage; a
view or in-place result of an argument, e.g. a weight's transpose, is no allocation; one that
was freed drops out, so the work of several model calls in a row peaks at its largest call, as
on CUDA). This is
what a forward+backward holds at its worst moment: the activations saved for backward plus the
gradients alive during the backward pass; for a forward pass without gradient, an activation
and the next one. On EfficientNet-Lite0 at 224 px: 79.8 MiB per row of a forward+backward (the
tensors autograd saves alone are 78.4 MiB, and the CPU allocator's peak growth from the PyTorch
profiler's memory trace is 78.9 MiB: ``benchmarks/bench_batch.py``), 12.3 MiB per row of a
forward pass. The fixed part (weights, buffers) is separated by :func:`row_memory`, which
measures two row counts ``k1 < k2``: ``per_row = (bytes(k2) − bytes(k1)) / (k2 − k1)``.

Limits of the CPU count: an operator's own workspace (never returned) is not seen, and a tensor
freed between two operators counts until the next one (an upper bound). The input rows made
before the call are not seen either: :func:`row_memory` adds them.

Everything is device-agnostic and never changes results: a batch size only changes how rows are
grouped into calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["row_memory"]


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


def _storage_key(t: Tensor) -> tuple[int, int]:
    try:
        storage = t.untyped_storage()
        return storage._cdata, storage.nbytes()
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


class _LivePeak(TorchDispatchMode):
    """Peak bytes of the tensor storages alive during a call, seen from the operators' outputs."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps a mode's __torch_dispatch__ in torch._dynamo.disable unless told not to, which
        # imports torch._dynamo (seconds, ~80 MB) on the first measured call; nothing is compiled here
        return False

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.total = 0  # bytes of the storages in `live`
        self.peak = 0
        self.seen: set[int] = set()  # every storage counted (allocated during the call)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for key in [k for k, (ref, _) in self.live.items() if ref.expired()]:
            self.total -= self.live.pop(key)[1]
        given = {_storage_key(t)[0] for t in tree_flatten((args, kwargs))[0] if isinstance(t, Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, Tensor) and t.layout == torch.strided:
                storage = t.untyped_storage()
                key = storage._cdata
                if key in self.live or key in given:  # known, or a view / in-place result of an argument
                    continue
                self.seen.add(key)
                self.live[key] = (StorageWeakRef(storage), storage.nbytes())
                self.total += storage.nbytes()
        self.peak = max(self.peak, self.total)
        return out


def _measure(call: Callable[[], Any], dev: torch.device, extra: tuple[Tensor, ...] = ()) -> int:
    """Peak bytes one ``call()`` needs (see the module doc), plus the tensors ``extra`` made before it."""
    if dev.type == "cuda":
        _sync(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        call()
        _sync(dev)
        return max(int(torch.cuda.max_memory_allocated(dev) - before), 0)
    live = _LivePeak()
    with live:
        call()
    _sync(dev)
    return live.peak + _out_bytes(extra, set(live.seen))  # the input rows, made before the call


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
        bytes per row (≥ 1). CUDA: from the allocator's peak. CPU: from the peak of the live
        tensors, plus the input rows (see the module docstring for what this misses).
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
