"""How rows run: everything between "attribute these inputs" and the model calls that do it.

A method, :class:`~smoothsal.smoothing.Smooth`, a metric or a study hands its rows (noisy copies,
path points, masked images) to this layer, which decides where and how they go through the
model, never what comes out:

* :mod:`.memory` — the activation-memory budget per device (probing the OS), its default and
  its scoped setting (:func:`memory_limit`), and the out-of-memory helpers;
* :mod:`.measure` — the memory of one row: bytes a forward+backward keeps (autograd's saved
  tensors on CPU, the allocator's peak on CUDA), or a forward pass's live peak;
* :mod:`.policy` — how many rows per call: the :class:`RowPolicy` protocol, :class:`FixedRows`
  (a given ``batch_size``) and :class:`LearnedRows` (learned from the timings of the real calls,
  under the budget), and :class:`RowContext`, what a caller that sized a call tells the method;
* :mod:`.runner` — the one runner: calls sized by a policy, out-of-memory halving;
* :mod:`.calls` — calling the model: forward passes in batches (:func:`predict`,
  :func:`forward_rows`), target resolution;
* :mod:`.devices` — the model's device, ``--device`` values, inputs moved to the model;
* :mod:`.guard` — :func:`preserve_model`: the model is put back exactly as it was;
* :mod:`.folding` — eval-mode BatchNorm folded into the convolution before it (same function);
* :mod:`.allocator` — glibc keeps freed CPU memory for reuse (no page faults per call);
* :mod:`.precision` — opt-in mixed precision of the forward pass.

``batch_size`` means one thing everywhere in the library: **model rows per call** (a row is one
forward(+backward) of one input-shaped tensor: a noisy copy, a path point, a masked image);
``None`` is learned under the memory budget ``max_memory``. Grouping rows into calls changes
speed and memory, never results. This layer imports only the
private foundations (:mod:`smoothsal._core`); every layer above may use it.
"""

from smoothsal.execution import (
    allocator,
    calls,
    devices,
    folding,
    guard,
    measure,
    memory,
    policy,
    precision,
    runner,
)
from smoothsal.execution.allocator import keep_freed_memory
from smoothsal.execution.calls import forward_rows, predict, resolve_model_targets
from smoothsal.execution.devices import model_device, resolve_device, to_model_device
from smoothsal.execution.folding import fold_batchnorm, folded, folding_enabled, set_folding
from smoothsal.execution.guard import MODULE_HOOK_DICTS, preserve_model
from smoothsal.execution.measure import row_memory
from smoothsal.execution.memory import (
    BatchMemoryError,
    MemorySpec,
    available_memory,
    default_budget,
    format_bytes,
    get_max_memory,
    memory_budget,
    memory_limit,
    parse_memory,
    set_max_memory,
)
from smoothsal.execution.policy import FixedRows, LearnedRows, RowContext, RowPolicy
from smoothsal.execution.precision import MixedPrecision, parse_precision, with_precision
from smoothsal.execution.runner import policy_for, run_call, run_rows

__all__ = [
    "MODULE_HOOK_DICTS",
    "BatchMemoryError",
    "FixedRows",
    "LearnedRows",
    "MemorySpec",
    "MixedPrecision",
    "RowContext",
    "RowPolicy",
    "allocator",
    "available_memory",
    "calls",
    "default_budget",
    "devices",
    "fold_batchnorm",
    "folded",
    "folding",
    "folding_enabled",
    "format_bytes",
    "forward_rows",
    "get_max_memory",
    "guard",
    "keep_freed_memory",
    "measure",
    "memory",
    "memory_budget",
    "memory_limit",
    "model_device",
    "parse_memory",
    "parse_precision",
    "policy",
    "policy_for",
    "precision",
    "predict",
    "preserve_model",
    "resolve_device",
    "resolve_model_targets",
    "row_memory",
    "run_call",
    "run_rows",
    "runner",
    "set_folding",
    "set_max_memory",
    "to_model_device",
    "with_precision",
]
