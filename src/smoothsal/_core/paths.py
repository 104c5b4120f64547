"""Where smoothsal keeps files between runs (trained models, experiment results)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """``$SMOOTHSAL_CACHE`` (default ``~/.cache/smoothsal``) joined with ``parts``; created on demand."""
    root = Path(os.environ.get("SMOOTHSAL_CACHE", Path.home() / ".cache" / "smoothsal")).expanduser()
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
