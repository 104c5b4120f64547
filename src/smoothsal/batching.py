"""Deprecated alias of :mod:`smoothsal.execution.memory` and :mod:`~smoothsal.execution.measure`
(``batching.py`` split by job): every name read here warns and is that of the module it moved to.
Its throughput probe (``choose_batch_size``) and out-of-memory retry (``run_with_oom_retry``) were
removed: rows per call come from one policy, :mod:`smoothsal.execution.policy`, run by
:mod:`smoothsal.execution.runner`.
"""

from smoothsal._core.deprecation import moved_module
from smoothsal.execution import measure, memory

__getattr__, __dir__ = moved_module(__name__, memory, measure)
del measure, memory
