"""Report step of the report card: Markdown tables, ``report.csv``, ``report.json``, ``report.md``.

Reads the rows only. Each column names the metric function its number comes from
(:data:`COLUMNS_MD`), and its ↑/↓ arrow is that metric's ``higher_is_better``
(:data:`smoothsal.metrics.METRICS`), never a hand-written arrow. A difference column
(``ins − del``) gets the arrow both of its terms agree on.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "COLUMNS_MD", "LOCALIZATION_MD", "Column", "arrow", "markdown_tables", "write_reports"]

#: CSV columns, in order (JSON rows carry the same keys plus the curves).
COLUMNS: tuple[str, ...] = (
    "row", "method", "label", "kind", "smoothed",
    "sanity", "sanity_score", "mprt_spearman_abs", "mprt_ssim", "mprt_topk_iou",
    "deletion_auc", "insertion_auc", "ins_minus_del", "faithfulness_corr", "monotonicity", "convergence_delta",
    "sparseness", "entropy", "roughness", "prune_q90", "prune_conf_q10",
    "loc_pointing", "loc_mass", "loc_topk_iou", "sanity_reason",
)  # fmt: skip


@dataclass(frozen=True)
class Column:
    """A report column: header, row key, the metric function(s) it comes from, digits.

    ``metrics`` is one name, or two for a difference ``a − b``.
    """

    header: str
    key: str
    metrics: tuple[str, ...] = ()
    digits: int = 3


def arrow(metrics: Sequence[str]) -> str:
    """``↑``/``↓`` from :data:`smoothsal.metrics.METRICS` (``""`` where the metric states none).

    For a difference ``a − b``: ``a``'s arrow when ``b`` points the other way, else ``""``.
    """
    from smoothsal.metrics import METRICS

    if not metrics:
        return ""
    infos = [METRICS[name] for name in metrics]
    if len(infos) == 1:
        return infos[0].arrow
    a, b = infos
    if a.higher_is_better is None or b.higher_is_better is None or a.higher_is_better == b.higher_is_better:
        return ""
    return a.arrow


#: the main table. Sanity columns come from model_parameter_randomization (similarity of the
#: randomized model's map to the original), q90 from smallest_q (of attribution_pruning's result).
COLUMNS_MD: tuple[Column, ...] = (
    Column("sanity", "sanity"),
    Column("mean \\|ρ\\|", "sanity_score", ("model_parameter_randomization",)),
    Column("final \\|ρ\\|", "mprt_spearman_abs", ("model_parameter_randomization",)),
    Column("final SSIM", "mprt_ssim", ("model_parameter_randomization",)),
    Column("del AUC", "deletion_auc", ("deletion_auc",)),
    Column("ins AUC", "insertion_auc", ("insertion_auc",)),
    Column("ins−del", "ins_minus_del", ("insertion_auc", "deletion_auc")),
    Column("faith corr", "faithfulness_corr", ("faithfulness_correlation",)),
    Column("monotonic", "monotonicity", ("monotonicity",)),
    Column("sparseness", "sparseness", ("sparseness",)),
    Column("entropy", "entropy", ("entropy",), 2),
    Column("roughness", "roughness", ("gradient_roughness",)),
    Column("q90 %", "prune_q90", ("smallest_q",), 1),
)
LOCALIZATION_MD: tuple[Column, ...] = (
    Column("pointing game", "loc_pointing", ("pointing_game",)),
    Column("relevance mass", "loc_mass", ("relevance_mass",)),
    Column("top-k IoU", "loc_topk_iou", ("mask_topk_iou",)),
)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "∞"
        return f"{value:.{digits}f}"
    return str(value)


def _header(columns: Sequence[Column]) -> list[str]:
    cells = ["method"] + [f"{c.header} {arrow(c.metrics)}".rstrip() for c in columns]
    return ["| " + " | ".join(cells) + " |", "|" + "---|" * len(cells)]


def _line(row: dict[str, Any], columns: Sequence[Column]) -> str:
    return "| " + " | ".join([row["label"]] + [_fmt(row.get(c.key), c.digits) for c in columns]) + " |"


def markdown_tables(rows: Sequence[dict[str, Any]], settings: dict[str, Any]) -> str:
    """The report card as Markdown: the main table, then the localization table (if computed)."""
    lines = _header(COLUMNS_MD) + [_line(r, COLUMNS_MD) for r in rows]
    deltas = [r for r in rows if r.get("convergence_delta") is not None]
    if deltas:
        lines += ["", "Convergence delta (mean |Σ map − (F(x) − F(baseline))| / |F(x) − F(baseline)|, "
                      "methods that have one): " + ", ".join(f"{r['label']} {_fmt(r['convergence_delta'])}" for r in deltas)]  # fmt: skip
    text = "\n".join(lines)
    if any("loc_pointing" in r for r in rows):
        loc = [
            "",
            (
                f"Localization against ground-truth object masks ({settings.get('loc_source', 'masked data')}; "
                f"chance ≈ mask area {_fmt(settings.get('loc_chance_mass'))}):"
            ),
            "",
            *_header(LOCALIZATION_MD),
            *[_line(r, LOCALIZATION_MD) for r in rows],
        ]
        text += "\n" + "\n".join(loc)
    return text


def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_reports(
    out: Path, rows: Sequence[dict[str, Any]], settings: dict[str, Any], table: str, lines: dict[str, Any]
) -> dict[str, Path]:
    """Write ``report.csv``, ``report.json`` and ``report.md``; returns their paths."""
    paths: dict[str, Path] = {}
    paths["report.csv"] = out / "report.csv"
    with paths["report.csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS})
    paths["report.json"] = out / "report.json"
    paths["report.json"].write_text(
        json.dumps(_clean({"settings": settings, "rows": list(rows), "jaggedness": lines}), indent=2, default=str)
    )
    paths["report.md"] = out / "report.md"
    imgs = ", ".join(settings["images"])
    paths["report.md"].write_text(
        f"# smoothsal report card\n\nCommand: `smoothsal evaluate`. Model `{settings['model']}`, images: {imgs}; "
        f"noise level {settings['noise_level']:.0%}, {settings['n_samples']} samples per smoothed map. Sanity: "
        f"cascading model-parameter randomization (Adebayo et al. 2018, arXiv:1810.03292), PASS when the mean "
        f"|Spearman| over the cascade < {settings['sanity_threshold']} (mean |ρ|; the final columns are at the "
        f"fully randomized end). Faithfulness: {settings['baseline']} baseline for deletion and insertion (a random "
        f"map gives ins−del ≈ 0). q90: smallest kept % of pixels that keeps {settings['prune_share']:.0%} of the "
        "target probability. Arrows: the metric's own direction (smoothsal.metrics.METRICS).\n\n" + table + "\n"
    )
    return paths
