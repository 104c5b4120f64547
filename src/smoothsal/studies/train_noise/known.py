"""The 2 × 2 grid of a ``smoothsal train-noise`` folder, as the report shows it (read from its results files)."""

from pathlib import Path

from smoothsal.studies.report.describe import SG, KnownFile, KnownStudy, StudyKnowledge, rows_table, study_results


def _train_noise(folder: Path) -> KnownStudy:
    known, results, rows = study_results(
        folder, "results", "config", title="Training with noise × explaining with noise", command="smoothsal train-noise",
        description=(
            f"The 2 × 2 of {SG} Figs. 8–9 on the synthetic shapes (object masks known): models trained plain or "
            "with input-noise augmentation, explained with the gradient or with SmoothGrad."
        ),
    )  # fmt: skip
    config = results.get("config") or {}
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
            + rows_table(rows, cols)
        ] if rows else [],
        data=["results.csv", "results.json"],
    )
    known.files["results.csv"] = KnownFile("raw", "One row per cell of the 2 × 2.")
    known.files["results.json"] = KnownFile("raw", "Configuration and the four rows.")
    return known


#: the report's knowledge of this study's folders
KNOWN = StudyKnowledge(signature=("train_noise_grid.png",), store_names=("train_noise", "train-noise"), describe=_train_noise)
