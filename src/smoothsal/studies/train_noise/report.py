"""Tables of ``smoothsal train-noise`` from results only: ``results.csv``, ``results.json`` and the printed table."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from smoothsal.studies.store import write_json
from smoothsal.studies.train_noise.compute import FIELDS, TrainNoiseResults, TrainNoiseRow

__all__ = ["format_table", "write_csv", "write_results_json"]


def write_csv(results: TrainNoiseResults, path: Path) -> Path:
    """``results.csv``: one row per cell, the columns of :data:`~smoothsal.studies.train_noise.compute.FIELDS`."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(FIELDS), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results.rows)
    tmp.replace(path)
    return path


def write_results_json(results: TrainNoiseResults, path: Path) -> Path:
    """``results.json``: the configuration (its hashed settings and hash) and the four rows."""
    return write_json(path, {"config": results.config.to_hash(results.options.seed), "config_hash": results.config_hash,
                             "rows": results.rows})  # fmt: skip


def format_table(rows: Sequence[TrainNoiseRow]) -> list[str]:
    """The lines printed by the command: stability (norm-scaled), localization, SSIM, top-k IoU per cell."""
    lines = ["train  explain     stability(norm)  localization  SSIM   top-k IoU"]
    for r in rows:
        lines.append(
            f"{r['train']:<6} {r['explain']:<11} {r['stability_norm_mean']:.3f} ± {r['stability_norm_std']:.3f}"
            f"    {r['localization_mean']:.3f}         {r['ssim_mean']:.3f}  {r['topk_iou_mean']:.3f}"
        )
    return lines
