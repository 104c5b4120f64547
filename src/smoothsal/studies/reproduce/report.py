"""Tables, numbers and manifests of ``smoothsal reproduce`` (from results only).

Every output folder gets:

* ``manifest.json`` — ``{"study", "title", "figures": [{"file", "caption", "settings"}],
  "tables": [{"file", "caption"}], "numbers": {...}}``, what ``smoothsal report`` reads;
* ``summary.json`` — the manifest plus every setting, the run time and whether it was ``--quick``;
* ``results_numbers.json`` — the numbers the README quotes, each with the command that gives it;
* the tables as CSV and Markdown.

The numbers beside the figures (SmoothGrad paper):

* **noisiness** of a map: mean absolute difference between neighbouring pixels of |map| summed
  over channels, capped at the 99th percentile and scaled to [0, 1] (the rendered map). Lower =
  smoother. Chance-free, 0 for a constant map;
* **convergence** (Fig. 4): ‖M_n − M_max‖₂ / ‖M_max‖₂, the distance of the n-sample map from the
  largest-n map of the same draw sequence;
* **correct-side share** (Fig. 6): of the discriminativity map scale(M_cat) − scale(M_coffee),
  the share of its |mass| that is positive on the cat's half or negative on the coffee's half
  (0.5 = no discrimination, 1 = perfect).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from smoothsal import render
from smoothsal._core.jsontypes import JSONObject
from smoothsal.studies.store import write_json

__all__ = [
    "ROW_FIELDS",
    "convergence",
    "correct_side_share",
    "fit_table",
    "noisiness",
    "paper_claims",
    "table1_rows",
    "write_csv",
    "write_manifest",
    "write_markdown",
]

#: columns of the stability study's ``results.csv`` (the per-input lists stay in the store)
ROW_FIELDS: tuple[str, ...] = (
    "setting", "method", "noise_level", "n_pairs", "n_inputs", "n_samples",
    "stability_mean", "stability_rms", "stability_rms_debiased", "stability_norm_mean",
    "fidelity_mean", "fidelity_rms", "fidelity_rms_debiased", "fidelity_norm_mean",
    "ssim_mean", "topk_iou_mean", "topk_ten_percent_mean", "rse_mean", "rse_max",
    "n_samples_used_mean", "n_samples_used_max", "cpu_seconds",
)  # fmt: skip


def paper_claims() -> JSONObject:
    """``smoothsal/data/paper_claims.json``: what the papers report (Ye & Farnia's Table 1 number for number)."""
    return json.loads(resources.files("smoothsal").joinpath("data/paper_claims.json").read_text())


# ---- map numbers -----------------------------------------------------------------------------------
def noisiness(attr: np.ndarray) -> float:
    """Mean |difference| between neighbouring pixels of the rendered map (see the module docstring)."""
    u = render.to_unit_abs(render.reduce_channels(np.asarray(attr)))  # [H, W] in [0, 1]
    return float(np.abs(np.diff(u, axis=0)).mean() + np.abs(np.diff(u, axis=1)).mean())


def convergence(maps: np.ndarray) -> list[float]:
    """‖M_n − M_last‖ / ‖M_last‖ for each map of ``maps`` ``[S, ...]`` (the last is the reference)."""
    ref = maps[-1].ravel()
    den = float(np.linalg.norm(ref)) or 1.0
    return [float(np.linalg.norm(m.ravel() - ref)) / den for m in maps]


def correct_side_share(m_first: np.ndarray, m_second: np.ndarray) -> float:
    """Share of the discriminativity map's |mass| on the right side of the image (see the module docstring).

    The first class's object fills the left half, the second's the right half (as in
    :func:`smoothsal.datasets.photos.cat_and_coffee`).
    """
    d = render.discriminativity(m_first, m_second)  # [H, W] in [-1, 1]
    half = d.shape[1] // 2
    good = np.clip(d[:, :half], 0, None).sum() + np.clip(-d[:, half:], 0, None).sum()
    total = np.abs(d).sum()
    return float(good / total) if total > 0 else 0.5


# ---- writing -----------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}"
    return str(v)


def write_csv(path: Path, rows: Sequence[JSONObject], columns: Sequence[str]) -> Path:
    """Write ``rows`` (dicts) as CSV with ``columns``."""
    path = Path(path)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for r in rows:
            writer.writerow([repr(r.get(c)) if isinstance(r.get(c), float) else r.get(c) for c in columns])
    return path


def write_markdown(path: Path, title: str, rows: Sequence[JSONObject], columns: Sequence[str],
                   note: str = "", headers: Sequence[str] | None = None) -> Path:  # fmt: skip
    """Write ``rows`` as a Markdown table with a title and a note."""
    lines = [f"# {title}", ""]
    if note:
        lines += [note, ""]
    lines += ["| " + " | ".join(headers or columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def write_manifest(out: Path, study: str, title: str, figures: Sequence[JSONObject],
                   tables: Sequence[JSONObject], numbers: JSONObject, extra: JSONObject) -> JSONObject:  # fmt: skip
    """Write ``manifest.json`` and ``summary.json`` (the manifest + ``extra``); returns the summary."""
    manifest = {"study": study, "title": title, "figures": list(figures), "tables": list(tables), "numbers": numbers}
    write_json(out / "manifest.json", manifest)
    summary = {**manifest, **extra}
    write_json(out / "summary.json", summary)
    return summary


# ---- stability tables ------------------------------------------------------------------------------
def _curves(rows: Sequence[JSONObject]) -> list[tuple[str, str]]:
    """The (setting, method) pairs of ``rows``, in first-seen order."""
    return list(dict.fromkeys((r["setting"], r["method"]) for r in rows))


def table1_rows(rows: Sequence[JSONObject], sigma: float) -> list[JSONObject]:
    """Table 1: per (setting, method), raw (σ = 0) vs smoothed (σ = ``sigma`` or the nearest σ > 0)."""
    from smoothsal.studies.tradeoff.report import table_noise_level

    out = []
    for setting, method in _curves(rows):
        curve = {r["noise_level"]: r for r in rows if r["setting"] == setting and r["method"] == method}
        used = table_noise_level(sorted(curve), sigma)
        if 0.0 not in curve or used not in curve:
            continue
        r0, r1 = curve[0.0], curve[used]
        out.append({
            "setting": setting, "method": method, "sigma": used, "n_inputs": r1["n_inputs"], "n_samples": r1["n_samples"],
            "ssim_raw": r0["ssim_mean"], "ssim_smoothed": r1["ssim_mean"],
            "topk_raw": r0["topk_iou_mean"], "topk_smoothed": r1["topk_iou_mean"],
            "topk10_raw": r0.get("topk_ten_percent_mean"), "topk10_smoothed": r1.get("topk_ten_percent_mean"),
            "stability_rms_debiased_smoothed": r1.get("stability_rms_debiased"),
            "fidelity_rms_debiased_smoothed": r1.get("fidelity_rms_debiased"),
            "stability_raw": r0["stability_mean"], "stability_smoothed": r1["stability_mean"],
            "stability_norm_raw": r0["stability_norm_mean"], "stability_norm_smoothed": r1["stability_norm_mean"],
            "fidelity_smoothed": r1["fidelity_mean"], "fidelity_norm_smoothed": r1["fidelity_norm_mean"],
            "rse_max": r1["rse_max"],
        })  # fmt: skip
    return out


def fit_table(rows: Sequence[JSONObject], n_boot: int, seed: int) -> list[JSONObject]:
    """Power-law exponents of the raw stability and fidelity errors per (setting, method), with intervals.

    A description only, never a verdict: Theorem 6 and Proposition 7 are upper bounds, and a bound
    does not predict the slope of what it bounds (the tests of the theory are
    :mod:`smoothsal.metrics.theory`: trend tests and the bounds themselves).
    """
    from smoothsal.studies.reproduce.stability import bootstrap_power_law

    out = []
    for setting, method in _curves(rows):
        curve = sorted((r for r in rows if r["setting"] == setting and r["method"] == method and r["noise_level"] > 0),
                       key=lambda r: r["noise_level"])  # fmt: skip
        if len(curve) < 2:
            continue
        sigmas = [r["noise_level"] for r in curve]
        for quantity in ("stability", "fidelity"):
            per_input = np.asarray([r[f"per_input_{quantity}"] for r in curve])  # [S, N]
            fit = bootstrap_power_law(sigmas, per_input, n_boot=n_boot, seed=seed)
            lo, hi = fit["low"], fit["high"]
            out.append({"setting": setting, "method": method, "quantity": quantity, "exponent": fit["exponent"],
                        "low": lo, "high": hi, "coef": fit["coef"], "n_inputs": fit["n_inputs"],
                        "n_sigmas": len(sigmas)})  # fmt: skip
    return out
