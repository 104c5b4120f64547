"""The report card folder of ``smoothsal evaluate`` in the report: its figures, with the rows of ``report.json``."""

from pathlib import Path

from smoothsal.studies.report import html as H
from smoothsal.studies.report.describe import SG, KnownFile, KnownStudy, StudyKnowledge, rows_table, study_results


def _evaluate(folder: Path) -> KnownStudy:
    known, report, rows = study_results(
        folder, "report", "settings", title="Report card: sanity, faithfulness, complexity", command="smoothsal evaluate",
        description=(
            "Every method raw and smoothed, scored by the metrics' own directions (↑ higher is better, ↓ lower): the "
            "cascading model-parameter randomization sanity check (Adebayo et al. 2018, arXiv:1810.03292), "
            "deletion/insertion, ROAD, faithfulness correlation, monotonicity, complexity, jaggedness, pruning; with "
            "control rows (edge detector, random map) that must fail."
        ),
    )  # fmt: skip
    settings = report.get("settings") or {}
    md = folder / "report.md"
    if md.is_file():
        try:
            known.report_card = H.markdown_to_html(md.read_text(errors="replace"), heading_offset=2)
        except OSError as err:
            known.notes.append(f"report.md could not be read ({err}).")
    f = known.files
    f["deletion_insertion.png"] = KnownFile(
        "figure",
        "Mean deletion and insertion curves of every row: the target probability as the most relevant pixels are "
        "removed (deletion, a lower area is better) or revealed (insertion, a higher area is better).",
        settings={k: settings[k] for k in ("model", "images", "baseline", "noise_level", "n_samples") if k in settings},
        numbers=[rows_table(rows, ["label", "deletion_auc", "insertion_auc", "ins_minus_del"])] if rows else [],
        data=["report.csv", "report.json"],
    )
    f["road.png"] = KnownFile(
        "figure",
        "Mean ROAD curves of every row (Rong et al. 2022, arXiv:2202.00449): the target probability as the most "
        "(MoRF, lower is better) or least (LeRF, higher is better) relevant pixels are removed and filled by noisy "
        "linear imputation, which hides the removal's shape from the model.",
        settings={k: settings[k] for k in ("model", "images", "noise_level", "n_samples") if k in settings},
        numbers=[rows_table(rows, ["label", "road_morf", "road_lerf", "road_combined"])] if rows else [],
        data=["report.csv", "report.json"],
    )
    f["randomization.png"] = KnownFile(
        "figure",
        "|Spearman| and SSIM between the maps of the trained model and of the model with its layers randomized from "
        "the top down (cascading randomization): a method that passes the sanity check drops quickly.",
        settings={k: settings[k] for k in ("model", "images", "sanity_threshold") if k in settings},
        numbers=[rows_table(rows, ["label", "sanity", "sanity_score", "mprt_spearman_abs", "mprt_ssim",
                                    "mprt_topk_iou", "sanity_reason"])] if rows else [],
        data=["report.csv", "report.json"],
    )
    f["jaggedness.png"] = KnownFile(
        "figure",
        f"A pixel's partial derivatives along x + tε, t ∈ [0, 1] (R, G, B), per method: the jaggedness of {SG} Fig. 2 "
        "that smoothing averages out.",
        numbers=[rows_table(rows, ["label", "roughness"])] if rows else [],
        data=["report.json"],
    )
    f["report.md"] = KnownFile("raw", "The report card as Markdown (shown at the top of this page and of the index).")
    f["report.csv"] = KnownFile("raw", "The report card, one row per method.")
    f["report.json"] = KnownFile("raw", "Settings, rows (with the curves) and the jaggedness lines.")
    return known


#: the report's knowledge of this study's folders
KNOWN = StudyKnowledge(signature=("report.md", "report.csv"), store_names=("evaluate",), describe=_evaluate)
