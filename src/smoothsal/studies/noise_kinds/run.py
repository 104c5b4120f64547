"""``run_noise_kinds(config, options)``: compute the units (resumable), then write ``fronts.csv``,
``summary.json`` and ``fronts.png`` under the run's output folder."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from smoothsal.studies.noise_kinds.compute import compute_units
from smoothsal.studies.noise_kinds.config import DEFAULT_OUT, FIDELITY_TARGETS, NoiseKindsConfig
from smoothsal.studies.noise_kinds.report import FrontPoint, MatchedCell, conclusion, fronts, matched_cells
from smoothsal.studies.options import RunOptions
from smoothsal.studies.store import ResultsStore

__all__ = ["NoiseKindsRun", "run_noise_kinds"]

COLORS = {"input": "tab:blue", "weights": "tab:orange", "both": "tab:green"}


@dataclass
class NoiseKindsRun:
    """What a run wrote and found."""

    points: list[FrontPoint]
    cells: list[MatchedCell]
    answer: str
    sentence: str
    paths: dict[str, Path]
    computed: int


def _plot(points: list[FrontPoint], config: NoiseKindsConfig, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g for g in config.groups if any(p.group == g for p in points)]
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.8), squeeze=False)
    for ax, group in zip(axes[0], groups):
        raw = next(p for p in points if p.group == group and p.kind == "raw")
        for kind in config.kinds:
            pts = [raw] + sorted((p for p in points if p.group == group and p.kind == kind), key=lambda p: p.level)
            if len(pts) < 2:
                continue
            xs, ys = [p.fidelity for p in pts], [p.stability for p in pts]
            xerr = [[x - p.fidelity_low for x, p in zip(xs, pts)], [p.fidelity_high - x for x, p in zip(xs, pts)]]
            yerr = [[y - p.stability_low for y, p in zip(ys, pts)], [p.stability_high - y for y, p in zip(ys, pts)]]
            ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, marker="o", ms=3, capsize=2, lw=1, color=COLORS[kind], label=kind)
            for p in pts[1:]:
                ax.annotate(f"{p.level:g}", (p.fidelity, p.stability), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")  # fmt: skip
        for target in FIDELITY_TARGETS:
            ax.axvline(target, color="0.7", lw=0.8, ls=":")
        ax.set_title(f"{group} ({raw.pairs} pairs × {raw.images} images)", fontsize=9)
        ax.set_xlabel("relative fidelity error")
        ax.set_ylabel("relative stability error")
        ax.legend(fontsize=7)
    fig.suptitle("gradient smoothed by input / weight / both noises: stability vs fidelity (95 % intervals)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_noise_kinds(config: NoiseKindsConfig, options: RunOptions) -> NoiseKindsRun:
    """Run the study (:mod:`smoothsal.studies.noise_kinds`) and write its outputs to ``options.out``."""
    out = options.out_dir(DEFAULT_OUT)
    store = ResultsStore(out, "noise_kinds", config.to_hash(options.seed), fresh=options.fresh)
    computed = compute_units(config, options, store)
    records = store.records()
    points = fronts(records, config)
    cells = matched_cells(records, config)
    answer, sentence = conclusion(cells)
    paths = {"fronts.csv": out / "fronts.csv", "summary.json": out / "summary.json", "fronts.png": out / "fronts.png"}
    with paths["fronts.csv"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[f.name for f in fields(FrontPoint)])
        writer.writeheader()
        for p in points:
            writer.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(p).items()})
    summary = {
        "study": "noise_kinds",
        "settings": {**{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
                     "seed": options.seed},
        "rule": "matched fidelity (smoothsal.studies.noise_kinds docstring): at each target relative fidelity error, "
        "the kind with the lowest mean squared stability error wins iff the 95 % two-level interval of its per-unit "
        "difference to every other reaching kind lies below 0; the interpolation weights' own error is not in the interval",
        "fidelity_targets": list(FIDELITY_TARGETS),
        "conclusion": {"answer": answer, "sentence": sentence},
        "cells": [asdict(c) for c in cells],
        "fronts": [asdict(p) for p in points],
    }
    paths["summary.json"].write_text(json.dumps(summary, indent=1) + "\n")
    _plot(points, config, paths["fronts.png"])
    return NoiseKindsRun(points, cells, answer, sentence, paths, computed)
