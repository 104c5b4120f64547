"""Report step of the stability–fidelity study: σ recommendation, Table 1, CSV and JSON files.

Reads the rows only (the store's records); writes ``results.csv``, ``results.json``,
``recommendation.json`` and ``table1.md`` (the layout of Table 1 of Ye & Farnia 2025,
arXiv:2411.05837: SSIM and top-k IoU of two models' maps, raw vs smoothed at σ = 0.15).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

from smoothsal._core.jsontypes import JSON, JSONObject
from smoothsal.metrics.tradeoff import Recommendation, recommend_noise_level
from smoothsal.studies.options import RunOptions
from smoothsal.studies.store import write_json
from smoothsal.studies.tradeoff.compute import FIELDS
from smoothsal.studies.tradeoff.config import TradeoffConfig

__all__ = ["recommend", "table1_markdown", "table_noise_level", "write_reports"]

#: the class each dataset's maps explain (the others: the inputs' true labels)
_TARGETS = {"photos": "Lite0's top-1 classes", "models": "the first model's top-1 classes", "store": "the store's classes"}
_LIST_FIELDS = ("pair_stability", "pair_stability_norm", "pair_ssim", "pair_topk_iou")


def recommend(
    rows: Sequence[JSONObject],
    grid: Sequence[float],
    stability_target: float | None = None,
    fidelity_bound: float | None = None,
) -> tuple[Recommendation, dict[str, Recommendation]]:
    """σ per curve (``"setting/method"``) and overall, on the norm-scaled errors.

    Each curve is :func:`~smoothsal.metrics.tradeoff.recommend_noise_level` of its rows; the
    overall σ is chosen on the mean of the curves' errors at each σ. Only curves with a row for
    every σ of ``grid`` count.
    """
    curves: dict[str, dict[float, JSONObject]] = {}
    for r in rows:
        curves.setdefault(f"{r['setting']}/{r['method']}", {})[r["noise_level"]] = r
    complete = {k: v for k, v in curves.items() if all(g in v for g in grid)}
    if not complete:
        raise ValueError(f"no (setting, method) curve has a row for every noise level of the grid {list(grid)}")
    kw = {"stability_target": stability_target, "fidelity_bound": fidelity_bound}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # per-curve misses are reported in their reasons
        per_curve = {
            k: recommend_noise_level(
                grid, [v[g]["stability_norm_mean"] for g in grid], [v[g]["fidelity_norm_mean"] for g in grid], **kw
            )
            for k, v in complete.items()
        }
    stab = [sum(v[g]["stability_norm_mean"] for v in complete.values()) / len(complete) for g in grid]
    fid = [sum(v[g]["fidelity_norm_mean"] for v in complete.values()) / len(complete) for g in grid]
    return recommend_noise_level(grid, stab, fid, **kw), per_curve


def table_noise_level(sigmas: Sequence[float], target: float) -> float:
    """``target`` if it is in ``sigmas``, else the nearest σ > 0 (the smaller on a tie)."""
    if target in sigmas:
        return float(target)
    positive = [s for s in sigmas if s > 0]
    return min(positive, key=lambda s: (abs(s - target), s)) if positive else math.nan


def _bold_pair(a: float, b: float) -> tuple[str, str]:
    fa, fb = f"{a:.3f}", f"{b:.3f}"
    if math.isnan(a) or math.isnan(b) or fa == fb:
        return fa, fb
    return (f"**{fa}**", fb) if a > b else (fa, f"**{fb}**")


def table1_markdown(
    rows: Sequence[JSONObject],
    methods: Sequence[str],
    settings: Sequence[str],
    sigma: float,
    info: JSONObject,
) -> str:
    """Table 1 of Ye & Farnia 2025 (arXiv:2411.05837): method × setting; SSIM and top-k IoU of two
    models' maps, raw (σ = 0) vs smoothed (σ = ``sigma``, or the nearest σ of the rows); the
    higher of each pair in bold. ``info`` holds ``dataset``, ``n_inputs``, ``n_models``, ``n_samples``.
    """
    from smoothsal.registry import method_label

    index = {(r["setting"], r["method"], r["noise_level"]): r for r in rows}
    used = table_noise_level(sorted({r["noise_level"] for r in rows}), sigma)
    lines = [
        f"# Table 1: similarity of two models' maps, raw vs smoothed (σ = {used:g})",
        "",
        (
            f"Dataset {info['dataset']}, {info['n_inputs']} test inputs ({_TARGETS.get(info['dataset'], 'true labels')} as targets), "
            f"{info['n_models']} models per setting (mean over model pairs), {info['n_samples']} noisy samples. "
            "SSIM on |map| summed over channels, clipped at the 99th percentile, scaled to [0, 1]; "
            "top-k IoU with k = 1 % of the pixels. Higher is better; the better of raw / smoothed is in bold. "
            "Layout of Table 1 of Ye & Farnia 2025 (arXiv:2411.05837); command: `smoothsal tradeoff`."
        ),
        "",
    ]
    if used != sigma:
        lines += [f"(σ = {sigma:g} is not in the grid; the nearest σ = {used:g} is shown.)", ""]
    lines += [
        "| Method | Setting | SSIM raw | SSIM smoothed | top-k IoU raw | top-k IoU smoothed |",
        "|---|---|---|---|---|---|",
    ]
    for method in methods:
        for setting in settings:
            r0, r1 = index.get((setting, method, 0.0)), index.get((setting, method, used))
            if r0 is None or r1 is None:
                continue
            s0, s1 = _bold_pair(r0["ssim_mean"], r1["ssim_mean"])
            k0, k1 = _bold_pair(r0["topk_iou_mean"], r1["topk_iou_mean"])
            lines.append(f"| {method_label(method)} | {setting} | {s0} | {s1} | {k0} | {k1} |")
    return "\n".join(lines) + "\n"


def _csv_value(row: JSONObject, key: str) -> JSON:
    value = row.get(key)
    if key in _LIST_FIELDS:
        return " ".join(repr(float(v)) for v in value or [])
    if isinstance(value, float):
        return repr(value)
    return value


def write_reports(
    out: Path,
    rows: Sequence[JSONObject],
    config: TradeoffConfig,
    options: RunOptions,
    config_hash: str,
    models: dict[str, list[JSON]],
    recommendations: tuple[Recommendation, dict[str, Recommendation]],
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """Write ``results.csv``, ``recommendation.json``, ``results.json`` and ``table1.md``; returns their paths.

    ``recommendations``: the overall σ and one per curve (:func:`recommend`).
    """
    overall, per_curve = recommendations
    info = {**config.as_dict(), **options.as_dict(), "out_dir": str(out)}
    paths: dict[str, Path] = {}
    paths["results.csv"] = out / "results.csv"
    tmp = out / "results.csv.tmp"
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(FIELDS)
        for r in rows:
            writer.writerow([_csv_value(r, k) for k in FIELDS])
    tmp.replace(paths["results.csv"])
    rec = {
        "basis": "norm-scaled errors; overall = mean over the (setting, method) curves",
        "overall": dataclasses.asdict(overall),
        "per_curve": {k: dataclasses.asdict(v) for k, v in per_curve.items()},
    }
    paths["recommendation.json"] = write_json(out / "recommendation.json", rec)
    paths["results.json"] = write_json(
        out / "results.json",
        {"config": info, "config_hash": config_hash, "noise_levels": list(config.noise_levels), "notes": list(notes),
         "models": models, "rows": list(rows), "recommendation": rec},
    )  # fmt: skip
    paths["table1.md"] = out / "table1.md"
    table = table1_markdown(rows, config.methods, config.settings, config.table_noise_level, info)
    paths["table1.md"].write_text(table)
    return paths
