"""Deprecated alias of :mod:`smoothsal.execution.folding`: every name read here warns and is that module's."""

from smoothsal._core.deprecation import moved_module
from smoothsal.execution import folding

__getattr__, __dir__ = moved_module(__name__, folding)
del folding
