"""Deprecated aliases of moved modules: the old name keeps working and says where the new one is.

A module that moved leaves a small module at its old name whose ``__getattr__`` and ``__dir__``
come from :func:`moved_module`: each name read through the old module is the very object of its
new home, and reading it emits a :class:`DeprecationWarning` that names the new place.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["moved_module"]


def moved_module(old: str, *homes: ModuleType) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of the alias module ``old`` of ``homes``.

    Args:
        old: the alias module's name, e.g. ``"smoothsal.fusion"``.
        homes: the modules its names now live in, searched in order.

    Returns:
        ``(__getattr__, __dir__)`` for the alias module's globals.
    """

    def __getattr__(name: str) -> Any:
        if not (name.startswith("__") and name.endswith("__")):
            for home in homes:
                if name in vars(home):
                    warnings.warn(
                        f"{old}.{name} is deprecated: it moved to {home.__name__}.{name}",
                        DeprecationWarning,
                        stacklevel=2,
                    )
                    return vars(home)[name]
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({name for home in homes for name in vars(home) if not name.startswith("__")})

    return __getattr__, __dir__
