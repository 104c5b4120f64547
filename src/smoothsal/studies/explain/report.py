"""Reports of ``smoothsal explain``: ``summary.json``, ``maps.npz`` and the lines printed, from results only.

``summary.json`` holds the top-5 classes per image, the targets, every setting, and per method
and map (raw, smooth): its wall time; for a method with a convergence delta (IG's completeness,
DeepLIFT's summation-to-delta) the absolute delta :math:`|\\sum_i A_i - (F_c(x) - F_c(x'))|`, the
relative one (over :math:`|F_c(x) - F_c(x')|`) and :math:`F_c(x) - F_c(x')`; for a smoothed map
the relative standard error :math:`\\lVert SE\\rVert / \\lVert \\hat M\\rVert` and the samples used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from smoothsal.studies.explain.compute import ExplainResults
from smoothsal.studies.store import write_json

__all__ = ["build_summary", "prediction_line", "write_maps", "write_summary"]


def prediction_line(name: str, top: list[dict[str, Any]]) -> str:
    """``chelsea: tabby 0.412, tiger cat 0.213, ...`` (first synonym of each class name)."""
    return f"{name}: " + ", ".join(f"{t['name'].split(',')[0]} {t['prob']:.3f}" for t in top)


def settings_line(config: Any, budget_bytes: int | None = None) -> str:
    """One line stating what the run does: model, methods, noise, the sampling rule, batch."""
    methods = config.methods if isinstance(config.methods, str) else ",".join(config.methods)
    rule = f"n ≤ {config.n_samples}, stop at relative SE {config.tol}" if config.tol else f"n = {config.n_samples}"
    batch = f"{config.batch_size} rows per call" if config.batch_size else "automatic batch"
    if budget_bytes is not None and not config.batch_size:
        batch += f" (memory budget {budget_bytes / 2**30:.1f} GiB)"
    return (f"settings: model {config.model}, methods {methods}, noise level {config.noise_level:.0%}, "
            f"{rule}, seed {config.seed}, {batch}")


def build_summary(results: ExplainResults, figures: list[str]) -> dict[str, Any]:
    """The ``summary.json`` dictionary."""
    config = results.config
    return {
        "model": config.model,
        "image_size": results.image_size,
        "config_hash": results.config_hash,
        "settings": config.settings(),
        "images": [
            {"name": p.name, "target": int(t), "top5": top}
            for p, t, top in zip(results.photos, results.targets, results.top5)
        ],
        "methods": results.meta,
        "figures": figures,
        "seconds": results.seconds,
    }


def write_summary(results: ExplainResults, figures: list[str], path: Path) -> dict[str, Any]:
    """Write ``summary.json``; returns the dictionary written."""
    summary = build_summary(results, figures)
    write_json(path, summary)
    return summary


def write_maps(results: ExplainResults, path: Path) -> Path:
    """``maps.npz``: ``images`` ``[N, 3, S, S]``, ``targets`` ``[N]``, and every map by its key."""
    np.savez_compressed(path, images=results.inputs.numpy(), targets=results.targets.numpy(), **results.maps)
    return path
