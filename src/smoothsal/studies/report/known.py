"""What ``smoothsal report`` knows about the existing studies' output folders.

For a folder written by ``smoothsal explain``, ``tradeoff``, ``train-noise`` or ``evaluate``
(recognised by the results store's ``config.json``, else by its file names), this module gives
each known file a caption (what it shows, after the paper figure it follows), its settings, and
the numbers behind it, read from the study's own JSON/CSV files. It reads files only: it imports
no study, model or plotting code, so the report stays fast and works on folders from older runs.
A file that is missing or unreadable is skipped with a note; the generic listing still shows it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smoothsal.studies.report import html as H

__all__ = ["KNOWN", "KnownFile", "KnownStudy", "identify"]

SG = "SmoothGrad (Smilkov et al. 2017, arXiv:1706.03825)"
YF = "Ye & Farnia 2025 (arXiv:2411.05837)"


@dataclass
class KnownFile:
    """Caption, settings and numbers of one known file (see :class:`~smoothsal.studies.report.build.Item`)."""

    kind: str
    caption: str
    settings: dict[str, Any] = field(default_factory=dict)
    numbers: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)


@dataclass
class KnownStudy:
    """What the report shows of a known study folder."""

    title: str
    command: str
    description: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    files: dict[str, KnownFile] = field(default_factory=dict)
    numbers: list[str] = field(default_factory=list)
    report_card: str = ""
    notes: list[str] = field(default_factory=list)


#: file names that identify a study when ``config.json`` does not
SIGNATURES: dict[str, tuple[str, ...]] = {
    "explain": ("summary.json", "grid.png"),
    "tradeoff": ("table1.md", "recommendation.json"),
    "train_noise": ("train_noise_grid.png",),
    "evaluate": ("report.md", "report.csv"),
}
_STORE_NAMES = {"explain": "explain", "tradeoff": "tradeoff", "train_noise": "train_noise", "train-noise": "train_noise",
                "evaluate": "evaluate"}  # fmt: skip


def identify(folder: Path) -> str | None:
    """The known study that wrote ``folder`` (``"explain"``, ``"tradeoff"``, ``"train_noise"``, ``"evaluate"``), else ``None``."""
    try:
        study = json.loads((folder / "config.json").read_text()).get("study")
        if study in _STORE_NAMES:
            return _STORE_NAMES[study]
    except (OSError, ValueError, AttributeError):
        pass
    for name, files in SIGNATURES.items():
        if all((folder / f).is_file() for f in files):
            return name
    return None


def _json(folder: Path, name: str, notes: list[str]) -> Any:
    path = folder / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        notes.append(f"{name} could not be read ({err}); shown as a raw file only.")
        return None


def _csv_rows(folder: Path, name: str, notes: list[str]) -> list[dict[str, str]] | None:
    path = folder / name
    if not path.is_file():
        return None
    try:
        with path.open(newline="") as fh:
            return list(csv.DictReader(fh))
    except (OSError, csv.Error) as err:
        notes.append(f"{name} could not be read ({err}).")
        return None


def _json_and_rows(folder: Path, stem: str, notes: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A study's ``{stem}.json`` (``{}`` when absent) and its rows: the JSON's ``rows``, else those of ``{stem}.csv``."""
    data = _json(folder, f"{stem}.json", notes) or {}
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        rows = _csv_rows(folder, f"{stem}.csv", notes) or []
    return (data if isinstance(data, dict) else {}), rows


def _rows_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cols = [c for c in columns if any(c in r for r in rows)]
    return H.table(cols, [[r.get(c, "") for c in cols] for r in rows])


def _drop(settings: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in keys}


def _pct(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else str(value)


# ---- explain --------------------------------------------------------------------------------------
def _explain(folder: Path) -> KnownStudy:
    notes: list[str] = []
    summary = _json(folder, "summary.json", notes) or {}
    s = summary.get("settings") or {}
    known = KnownStudy(
        title="Explain: every method, raw and smoothed",
        command="smoothsal explain",
        description=(
            f"Each image explained by each method, raw and smoothed with Gaussian noise ({SG}); maps are "
            "|map| summed over channels, capped at the 99th percentile, in gray (the paper's §3.1); "
            "CAMs as heat maps over the photo."
        ),
        settings={**_drop(s, "out_dir", "progress", "fresh"),
                  **{k: summary[k] for k in ("image_size", "config_hash", "seconds") if k in summary}},
        notes=notes,
    )
    nl = s.get("noise_level")
    rule = (f"n ≤ {s.get('n_samples')}, stop at relative standard error {s['tol']}" if s.get("tol")
            else f"n = {s.get('n_samples')}")  # fmt: skip
    common = {k: s[k] for k in ("model", "noise_level", "n_samples", "tol", "seed") if k in s}
    images = summary.get("images") or []
    first = images[0]["name"] if images and isinstance(images[0], dict) else "the first image"

    method_rows = []
    for method, maps in (summary.get("methods") or {}).items():
        for which, values in (maps or {}).items():
            row: dict[str, Any] = {"method": method, "map": which}
            for k, v in (values or {}).items():
                row[k] = ", ".join(H.fmt(x) for x in v) if isinstance(v, list) else v
            method_rows.append(row)
    cols: list[str] = []
    for r in method_rows:
        cols += [k for k in r if k not in cols]
    numbers = []
    if method_rows:
        numbers.append(
            "<p>Per method and map (lists: one value per image, in row order): wall time in seconds; for a "
            "smoothed map the samples used and the relative standard error ‖SE‖/‖map‖; for IG/DeepLIFT the "
            "convergence delta.</p>" + _rows_table(method_rows, cols)
        )
    if images:
        numbers.append(
            "<p>Images (rows), the class explained and the model's top-5:</p>"
            + H.table(
                ["image", "target", "top-5"],
                [[i.get("name"), i.get("target"),
                  "; ".join(f"{t.get('name', '').split(',')[0]} {t.get('prob', 0):.3f}" for t in i.get("top5", []))]
                 for i in images if isinstance(i, dict)],
            )
        )
    f = known.files
    f["grid.png"] = KnownFile(
        "figure",
        f"Rows: the images; columns: the image, then each method raw and smoothed (noise level {_pct(nl)}, "
        f"{rule}): the layout of {SG} Fig. 5. Smoothing should keep the object and drop the speckle.",
        settings={**common, "methods": s.get("methods"), "images": [i.get("name") for i in images]},
        numbers=numbers,
        data=["summary.json", "maps.npz"],
    )
    levels = s.get("noise_levels")
    f["noise_levels.png"] = KnownFile(
        "figure",
        f"SmoothGrad of {first} at noise levels σ/(x_max − x_min) = "
        + (", ".join(_pct(v) for v in levels) if isinstance(levels, list) else "several levels")
        + f" ({rule}); σ = 0 is the vanilla gradient. {SG} Fig. 3: 10–20 % balances sharpness against keeping the object.",
        settings={**common, "noise_levels": levels, "image": first},
    )
    sizes = s.get("sample_sizes")
    n = s.get("n_samples")
    if isinstance(sizes, list) and isinstance(n, int):
        sizes = [v for v in sizes if v < n] + [n]
    f["sample_sizes.png"] = KnownFile(
        "figure",
        f"SmoothGrad of {first} at growing sample sizes n = "
        + (", ".join(str(v) for v in sizes) if isinstance(sizes, list) else "…")
        + f" (noise level {_pct(nl)}), each n extending the same noise draws: {SG} Fig. 4 (the map settles as n grows).",
        settings={**common, "sample_sizes": sizes, "image": first},
    )
    f["visualization.png"] = KnownFile(
        "figure",
        f"The visualization choices of {SG} §3 on the gradient and SmoothGrad of {first}: |map| with and without "
        "the 99th-percentile cap, the signed map, and map × input (black pixels never show).",
        settings=dict(common),
    )
    f["discriminativity.png"] = KnownFile(
        "figure",
        f"Discriminativity ({SG} Fig. 6): scale(M_c1) − scale(M_c2) for two classes on the two-object image, on a "
        "blue–gray–red map: red pixels favour the first class, blue the second.",
        settings=dict(common),
    )
    f["summary.json"] = KnownFile("raw", "Top-5, targets, every setting, timings, samples used, standard errors.")
    f["maps.npz"] = KnownFile("raw", "Every map (raw and smoothed) by key, the images and the targets.")
    return known


# ---- tradeoff -------------------------------------------------------------------------------------
def _tradeoff(folder: Path) -> KnownStudy:
    notes: list[str] = []
    results, rows = _json_and_rows(folder, "results", notes)
    rec = _json(folder, "recommendation.json", notes) or results.get("recommendation") or {}
    config = results.get("config") or {}
    known = KnownStudy(
        title="Stability–fidelity trade-off of Gaussian smoothing",
        command="smoothsal tradeoff",
        description=(
            f"Stability error (eq. 12 of {YF}: ‖S₁ − S₂‖₂ between the maps of two models trained on different data "
            "(DT), recipes (DR) or architectures (DA)) and fidelity error (eq. 13: ‖Smooth_σ(S) − S‖₂ for one "
            "model) against the noise level σ; larger σ should lower the first and raise the second."
        ),
        settings={**_drop(config, "out_dir", "progress", "fresh"),
                  **({"noise_levels": results["noise_levels"]} if "noise_levels" in results else {})},
        notes=notes,
    )
    for note in results.get("notes") or []:
        known.notes.append(str(note))
    key = ["setting", "method", "noise_level", "n_pairs", "n_inputs", "n_samples"]
    f = known.files
    for kind, eq in (("stability", "eq. 12, ±1 std over model pairs"), ("fidelity", "eq. 13, ±1 std over inputs")):
        cols = key + [f"{kind}_norm_mean", f"{kind}_norm_std", f"{kind}_mean", f"{kind}_std"]
        f[f"{kind}_vs_sigma.png"] = KnownFile(
            "figure",
            f"{kind.capitalize()} error vs σ ({eq}), one line per method, one column per setting; top row "
            f"norm-scaled (each map divided by its L2 norm, comparable across methods), bottom row raw on a log "
            f"axis. The curves of {YF} Figs. 2–5.",
            settings={k: config[k] for k in ("dataset", "settings", "methods", "n_models", "n_inputs", "n_samples")
                      if k in config},
            numbers=[_rows_table(rows, cols)] if rows else [],
            data=["results.csv", "results.json"],
        )
    pareto_numbers = []
    overall = rec.get("overall") if isinstance(rec, dict) else None
    if isinstance(overall, dict):
        pareto_numbers.append(
            f"<p>Recommended σ = <strong>{H.esc(H.fmt(overall.get('noise_level')))}</strong> "
            f"(rule {H.esc(overall.get('rule'))}; basis: {H.esc(rec.get('basis', ''))}). {H.esc(overall.get('reason', ''))}</p>"
            + (H.value_html(overall.get("table")) if overall.get("table") else "")
        )
    per_curve = rec.get("per_curve") if isinstance(rec, dict) else None
    if isinstance(per_curve, dict) and per_curve:
        pareto_numbers.append(
            "<p>Per curve:</p>"
            + H.table(["curve", "σ", "rule", "reason"],
                      [[k, v.get("noise_level"), v.get("rule"), v.get("reason")] for k, v in per_curve.items()
                       if isinstance(v, dict)])
        )
    f["pareto.png"] = KnownFile(
        "figure",
        "Norm-scaled stability error against fidelity error, one labelled point per σ and one line per "
        "(setting, method); ★ marks the recommended σ (the knee of the Pareto front).",
        numbers=pareto_numbers,
        data=["recommendation.json", "results.csv"],
    )
    f["table1.md"] = KnownFile(
        "table",
        f"Table 1 of {YF}: SSIM and top-k IoU between two models' maps, raw (σ = 0) vs smoothed, per method and "
        "setting; the better of each pair in bold.",
        data=["results.csv"],
    )
    f["results.csv"] = KnownFile("raw", "One row per (setting, method, σ), with the per-pair values.")
    f["results.json"] = KnownFile("raw", "Configuration, models, rows and the recommendation.")
    f["recommendation.json"] = KnownFile("raw", "The recommended σ overall and per curve, with the reasons.")
    f["models.json"] = KnownFile("raw", "The models compared (training settings, test accuracy).")
    return known


# ---- train-noise ----------------------------------------------------------------------------------
def _train_noise(folder: Path) -> KnownStudy:
    notes: list[str] = []
    results, rows = _json_and_rows(folder, "results", notes)
    config = results.get("config") or {}
    known = KnownStudy(
        title="Training with noise × explaining with noise",
        command="smoothsal train-noise",
        description=(
            f"The 2 × 2 of {SG} Figs. 8–9 on the synthetic shapes (object masks known): models trained plain or "
            "with input-noise augmentation, explained with the gradient or with SmoothGrad."
        ),
        settings=_drop(config, "out_dir", "progress", "fresh") if isinstance(config, dict) else {},
        notes=notes,
    )
    cols = ["train", "explain", "n_models", "n_inputs", "n_samples", "test_accuracy", "stability_norm_mean",
            "stability_norm_std", "ssim_mean", "topk_iou_mean", "localization_mean", "localization_std", "mask_fraction"]  # fmt: skip
    known.files["train_noise_grid.png"] = KnownFile(
        "figure",
        "Rows: test inputs; columns: the input, then train plain/noisy × explain gradient/SmoothGrad (each "
        f"regime's first model), |map| capped at the 99th percentile. {SG} found both kinds of noise sharpen the "
        "map and add up.",
        settings={k: config[k] for k in ("train_noise", "explain_noise", "n_samples", "n_models", "epochs", "seed")
                  if isinstance(config, dict) and k in config},
        numbers=[
            "<p>Per cell: stability error across models trained on disjoint data (norm-scaled, lower is better), "
            "SSIM and top-k IoU between their maps, localization against the masks (chance ≈ mask_fraction).</p>"
            + _rows_table(rows, cols)
        ] if rows else [],
        data=["results.csv", "results.json"],
    )
    known.files["results.csv"] = KnownFile("raw", "One row per cell of the 2 × 2.")
    known.files["results.json"] = KnownFile("raw", "Configuration and the four rows.")
    return known


# ---- evaluate -------------------------------------------------------------------------------------
def _evaluate(folder: Path) -> KnownStudy:
    notes: list[str] = []
    report, rows = _json_and_rows(folder, "report", notes)
    settings = report.get("settings") or {}
    known = KnownStudy(
        title="Report card: sanity, faithfulness, complexity",
        command="smoothsal evaluate",
        description=(
            "Every method raw and smoothed, scored by the metrics' own directions (↑ higher is better, ↓ lower): the "
            "cascading model-parameter randomization sanity check (Adebayo et al. 2018, arXiv:1810.03292), "
            "deletion/insertion, faithfulness correlation, monotonicity, complexity, jaggedness, pruning; with "
            "control rows (edge detector, random map) that must fail."
        ),
        settings=_drop(settings, "out_dir", "progress", "fresh") if isinstance(settings, dict) else {},
        notes=notes,
    )
    md = folder / "report.md"
    if md.is_file():
        try:
            known.report_card = H.markdown_to_html(md.read_text(errors="replace"), heading_offset=2)
        except OSError as err:
            notes.append(f"report.md could not be read ({err}).")
    f = known.files
    f["deletion_insertion.png"] = KnownFile(
        "figure",
        "Mean deletion and insertion curves of every row: the target probability as the most relevant pixels are "
        "removed (deletion, a lower area is better) or revealed (insertion, a higher area is better).",
        settings={k: settings[k] for k in ("model", "images", "baseline", "noise_level", "n_samples") if k in settings},
        numbers=[_rows_table(rows, ["label", "deletion_auc", "insertion_auc", "ins_minus_del"])] if rows else [],
        data=["report.csv", "report.json"],
    )
    f["randomization.png"] = KnownFile(
        "figure",
        "|Spearman| and SSIM between the maps of the trained model and of the model with its layers randomized from "
        "the top down (cascading randomization): a method that passes the sanity check drops quickly.",
        settings={k: settings[k] for k in ("model", "images", "sanity_threshold") if k in settings},
        numbers=[_rows_table(rows, ["label", "sanity", "sanity_score", "mprt_spearman_abs", "mprt_ssim",
                                    "mprt_topk_iou", "sanity_reason"])] if rows else [],
        data=["report.csv", "report.json"],
    )
    f["jaggedness.png"] = KnownFile(
        "figure",
        f"A pixel's partial derivatives along x + tε, t ∈ [0, 1] (R, G, B), per method: the jaggedness of {SG} Fig. 2 "
        "that smoothing averages out.",
        numbers=[_rows_table(rows, ["label", "roughness"])] if rows else [],
        data=["report.json"],
    )
    f["report.md"] = KnownFile("raw", "The report card as Markdown (shown at the top of this page and of the index).")
    f["report.csv"] = KnownFile("raw", "The report card, one row per method.")
    f["report.json"] = KnownFile("raw", "Settings, rows (with the curves) and the jaggedness lines.")
    return known


KNOWN: dict[str, Callable[[Path], KnownStudy]] = {
    "explain": _explain,
    "tradeoff": _tradeoff,
    "train_noise": _train_noise,
    "evaluate": _evaluate,
}
