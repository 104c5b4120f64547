"""How rows run: everything between "attribute these inputs" and the model calls that do it.

A method, :class:`~smoothsal.smoothing.Smooth`, a metric or a study hands its rows (noisy copies,
path points, masked images) to this layer, which decides where and how they go through the
model, never what comes out:

* :mod:`.memory` — the activation-memory budget per device (probing the OS), its settings
  (:func:`set_max_memory`), and the out-of-memory helpers;
* :mod:`.measure` — the memory of one row: bytes a forward+backward keeps (autograd's saved
  tensors on CPU, the allocator's peak on CUDA);
* :mod:`.tuner` — rows per call learned from the timings of the real calls, under the budget;
* :mod:`.calls` — calling the model: predictions in chunks, target resolution, the fixed
  rows-per-call rule;
* :mod:`.devices` — the model's device, ``--device`` values, inputs moved to the model;
* :mod:`.guard` — :func:`preserve_model`: the model is put back exactly as it was;
* :mod:`.folding` — eval-mode BatchNorm folded into the convolution before it (same function);
* :mod:`.allocator` — glibc keeps freed CPU memory for reuse (no page faults per call);
* :mod:`.precision` — opt-in mixed precision of the forward pass;
* :mod:`.probe` — a throughput probe and an out-of-memory retry that no library path calls.

Grouping rows into calls changes speed and memory, never results. This layer imports only the
private foundations (:mod:`smoothsal._core`); every layer above may use it.
"""

from smoothsal.execution import allocator, calls, devices, folding, guard, measure, memory, precision, probe, tuner
from smoothsal.execution.allocator import keep_freed_memory
from smoothsal.execution.calls import predict, resolve_model_targets, row_chunks, rows_per_call
from smoothsal.execution.devices import model_device, resolve_device, to_model_device
from smoothsal.execution.folding import fold_batchnorm, folded, folding_enabled, set_folding
from smoothsal.execution.guard import MODULE_HOOK_DICTS, preserve_model
from smoothsal.execution.measure import row_memory
from smoothsal.execution.memory import (
    BatchMemoryError,
    available_memory,
    format_bytes,
    get_max_memory,
    memory_budget,
    parse_memory,
    set_max_memory,
)
from smoothsal.execution.precision import MixedPrecision, parse_precision, with_precision
from smoothsal.execution.tuner import RowTuner

__all__ = [
    "MODULE_HOOK_DICTS",
    "BatchMemoryError",
    "MixedPrecision",
    "RowTuner",
    "allocator",
    "available_memory",
    "calls",
    "devices",
    "fold_batchnorm",
    "folded",
    "folding",
    "folding_enabled",
    "format_bytes",
    "get_max_memory",
    "guard",
    "keep_freed_memory",
    "measure",
    "memory",
    "memory_budget",
    "model_device",
    "parse_memory",
    "parse_precision",
    "precision",
    "predict",
    "preserve_model",
    "probe",
    "resolve_device",
    "resolve_model_targets",
    "row_chunks",
    "row_memory",
    "rows_per_call",
    "set_folding",
    "set_max_memory",
    "to_model_device",
    "tuner",
    "with_precision",
]
