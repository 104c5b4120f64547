"""Deprecated alias of :mod:`smoothsal.execution.allocator`: every name read here warns and is that module's."""

from smoothsal._core.deprecation import moved_module
from smoothsal.execution import allocator

__getattr__, __dir__ = moved_module(__name__, allocator)
del allocator
