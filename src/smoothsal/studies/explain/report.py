"""Reports of ``smoothsal explain``: ``summary.json``, ``maps.npz`` and the lines printed, from results only.

``summary.json`` holds the top-5 classes per image, the targets, every setting, and per method
and map (raw, smooth): its wall time; for a method with a convergence delta (IG's completeness,
DeepLIFT's summation-to-delta) the absolute delta :math:`|\\sum_i A_i - (F_c(x) - F_c(x'))|`, the
relative one (over :math:`|F_c(x) - F_c(x')|`), :math:`F_c(x) - F_c(x')` and IG's path points per
image; for a smoothed map the relative standard error :math:`\\lVert SE\\rVert / \\lVert \\hat M\\rVert`
and the samples used, and for smoothed IG/DeepLIFT the gaps of the inner runs (mean and max
relative gap over the noisy samples, and the smoothed map's own gap against the mean score change).
:func:`completeness_lines` states the relative gaps, raw and smoothed, one line per method.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smoothsal._core.jsontypes import JSONObject
from smoothsal.studies.explain.compute import ExplainResults, prediction_line  # prediction_line: one line per image, printed while computing
from smoothsal.studies.explain.config import ExplainConfig
from smoothsal.studies.options import RunOptions
from smoothsal.studies.store import to_jsonable, write_json

__all__ = ["build_summary", "completeness_lines", "prediction_line", "write_maps", "write_summary"]


def settings_line(config: ExplainConfig, options: RunOptions, budget_bytes: int | None = None) -> str:
    """One line stating what the run does: model, methods, noise, the sampling rule, batch."""
    methods = ",".join(config.methods)
    rule = f"n ≤ {config.n_samples}, stop at relative SE {config.tol}" if config.tol else f"n = {config.n_samples}"
    batch = f"{options.batch_size} rows per call" if options.batch_size else "automatic batch"
    if budget_bytes is not None and not options.batch_size:
        batch += f" (memory budget {budget_bytes / 2**30:.1f} GiB)"
    return (f"settings: model {config.model}, methods {methods}, noise level {config.noise_level:.0%}, "
            f"{rule}, seed {options.seed}, {batch}, device {options.device}, {config.precision}")


def completeness_lines(results: ExplainResults) -> list[str]:
    """One line per method with a convergence delta: its relative gap |Σ A − ΔF| / |ΔF| per image, raw
    (with IG's path points) and smoothed (mean and max over the noisy samples), e.g.
    ``completeness ig: raw 0.21% 0.05% (32 steps); smoothed mean 3.1% 2.5%, max 8.0% 6.2%``."""
    from smoothsal.registry import method_label

    def pct(values: list[float]) -> str:
        return " ".join(f"{v:.2%}" if v == v and v != float("inf") else str(v) for v in values)

    lines = []
    for name, meta in results.meta.items():
        raw = meta.get("raw", {}).get("convergence_delta")
        smooth = meta.get("smooth", {}).get("convergence_delta")
        if raw is None and smooth is None:
            continue
        parts = []
        if raw is not None:
            steps = raw.get("steps")
            when = f" ({'/'.join(str(s) for s in steps)} steps)" if steps else ""
            parts.append(f"raw {pct(raw['relative'])}{when}")
        if smooth is not None:
            parts.append(f"smoothed mean {pct(smooth['relative_mean'])}, max {pct(smooth['relative_max'])}")
        lines.append(f"completeness {method_label(name)} (relative gap |ΣA − ΔF|/|ΔF| per image): " + "; ".join(parts))
    return lines


def build_summary(results: ExplainResults, figures: list[str]) -> JSONObject:
    """The ``summary.json`` dictionary (``settings``: the configuration's and the run options')."""
    config = results.config
    return {
        "model": config.model,
        "image_size": results.image_size,
        "config_hash": results.config_hash,
        "settings": {**config.settings(), **results.options.as_dict()},
        "images": [
            {"name": p.name, "target": int(t), "top5": to_jsonable(top)}
            for p, t, top in zip(results.photos, results.targets, results.top5)
        ],
        "methods": to_jsonable(results.meta),
        "completeness": completeness_lines(results),
        "figures": figures,
        "seconds": results.seconds,
    }


def write_summary(results: ExplainResults, figures: list[str], path: Path) -> JSONObject:
    """Write ``summary.json``; returns the dictionary written."""
    summary = build_summary(results, figures)
    write_json(path, summary)
    return summary


def write_maps(results: ExplainResults, path: Path) -> Path:
    """``maps.npz``: ``images`` ``[N, 3, S, S]``, ``targets`` ``[N]``, and every map by its key."""
    np.savez_compressed(path, images=results.inputs.numpy(), targets=results.targets.numpy(), **results.maps)
    return path
