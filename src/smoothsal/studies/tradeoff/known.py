"""The report's captions and numbers for a ``smoothsal tradeoff`` folder: the curves, the Pareto plot, Table 1."""

from pathlib import Path

from smoothsal.studies.report import html as H
from smoothsal.studies.report.describe import YF, KnownFile, KnownStudy, StudyKnowledge, read_json, rows_table, study_results


def _short(text: object, n: int = 160) -> str:
    """The first ``n`` characters of a reason, cut at a word."""
    text = str(text or "")
    return text if len(text) <= n else text[: n - 1].rsplit(" ", 1)[0] + " …"


def _tradeoff(folder: Path) -> KnownStudy:
    known, results, rows = study_results(
        folder, "results", "config", title="Stability–fidelity trade-off of Gaussian smoothing",
        command="smoothsal tradeoff",
        description=(
            f"Stability error (eq. 12 of {YF}: ‖S₁ − S₂‖₂ between the maps of two models trained on different data "
            "(DT), recipes (DR) or architectures (DA)) and fidelity error (eq. 13: ‖Smooth_σ(S) − S‖₂ for one "
            "model) against the noise level σ; larger σ should lower the first and raise the second."
        ),
    )  # fmt: skip
    notes = known.notes
    rec = read_json(folder, "recommendation.json", notes) or results.get("recommendation") or {}
    config = results.get("config") or {}
    if "noise_levels" in results:
        known.settings["noise_levels"] = results["noise_levels"]
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
            numbers=[rows_table(rows, cols)] if rows else [],
            data=["results.csv", "results.json"],
        )
    pareto_numbers = []
    overall = rec.get("overall") if isinstance(rec, dict) else None
    if isinstance(overall, dict):
        known.verdicts.append(f"recommended noise level σ = {H.fmt(overall.get('noise_level'))} ({_short(overall.get('reason'))})")
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


#: the report's knowledge of this study's folders
KNOWN = StudyKnowledge(signature=("table1.md", "recommendation.json"), store_names=("tradeoff",), describe=_tradeoff)
