"""Deprecated alias of :mod:`smoothsal.execution.memory`, :mod:`~smoothsal.execution.measure` and
:mod:`~smoothsal.execution.probe` (``batching.py`` split by job): every name read here warns and
is that of the module it moved to.
"""

from smoothsal._core.deprecation import moved_module
from smoothsal.execution import measure, memory, probe

__getattr__, __dir__ = moved_module(__name__, memory, measure, probe)
del measure, memory, probe
