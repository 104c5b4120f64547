"""Report step of the report card: Markdown tables, ``report.csv``, ``report.json``, ``report.md``.

Reads the rows only. :func:`summarize_rows` turns every per-image list a section recorded into an
estimate with its studentized bootstrap 95 % interval over images
(:func:`smoothsal.metrics.intervals.bootstrap_interval`, seeded by the study's seed; a hit or miss
per image, the pointing game, gets the Wilson score interval instead:
:func:`smoothsal.metrics.intervals.wilson_interval`) and states
the sanity verdicts by the rule fixed in :mod:`smoothsal.metrics.sanity` -- pass / fail only where
the interval excludes the threshold, else "inconclusive" with the images for 80 % power. Each column names the metric function its number comes from
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

from smoothsal._core.jsontypes import JSONObject
from smoothsal.metrics.intervals import MIN_IMAGES

__all__ = ["COLUMNS", "COLUMNS_MD", "LOCALIZATION_MD", "SANITY_MD", "Column", "arrow", "markdown_tables",
           "summarize_rows", "write_reports"]  # fmt: skip

#: CSV columns, in order (JSON rows carry the same keys plus the curves).
#: per-image values a section records, each summarized as an estimate with a 95 % interval
PER_IMAGE: tuple[str, ...] = (
    "mprt_s", "mprt_r", "mprt_spearman_abs", "mprt_ssim", "mprt_topk_iou", "emprt",
    "deletion_auc", "insertion_auc", "ins_minus_del", "road_morf", "road_lerf", "road_combined",
    "faithfulness_corr", "monotonicity",
    "sparseness", "entropy", "roughness", "prune_q90", "prune_conf_q10",
    "loc_pointing", "loc_mass", "loc_topk_iou", "dr_s", "dr_r", "mprt_rt", "dr_rt",
)  # fmt: skip
#: the range each per-image value can take (its interval is clipped to it: a mean of probabilities
#: keeps its interval in [0, 1], a ratio of entropies stays >= 0); values not listed are unbounded
PER_IMAGE_RANGE: dict[str, tuple[float, float]] = {
    **{k: (-1.0, 1.0) for k in ("mprt_s", "mprt_r", "mprt_rt", "mprt_spearman_abs", "mprt_ssim", "dr_s", "dr_r",
                                "dr_rt", "faithfulness_corr", "monotonicity", "ins_minus_del", "road_combined")},
    **{k: (0.0, 1.0) for k in ("mprt_topk_iou", "deletion_auc", "insertion_auc", "road_morf", "road_lerf",
                               "loc_pointing", "loc_mass", "loc_topk_iou", "sparseness")},
    "prune_q90": (0.0, 100.0),
    **{k: (0.0, math.inf) for k in ("emprt", "entropy", "roughness", "prune_conf_q10")},
}  # fmt: skip
#: per-image values that are a hit (1) or a miss (0): their interval is the Wilson score interval
#: (:func:`smoothsal.metrics.intervals.wilson_interval`), not the studentized bootstrap
BINARY_PER_IMAGE: tuple[str, ...] = ("loc_pointing",)
#: verdict statistics (retained similarity R of MPRT, sMPRT and data randomization), with intervals
VERDICT_STATS: tuple[str, ...] = ("sanity_R", "smprt_R", "dr_R", "emprt")
COLUMNS: tuple[str, ...] = (
    "row", "method", "label", "kind", "smoothed", "mprt_init", "mprt_by_construction",
    "sanity", "sanity_score", "sanity_R", "sanity_R_low", "sanity_R_high", "sanity_needed",
    "smprt", "smprt_R", "smprt_R_low", "smprt_R_high",
    "emprt_verdict", "dr_verdict", "dr_R", "dr_R_low", "dr_R_high", "dr_needed",
    *[f"{k}{suffix}" for k in PER_IMAGE if k not in ("emprt",) for suffix in ("", "_low", "_high")],
    "emprt", "emprt_low", "emprt_high", "convergence_delta", "sanity_reason", "emprt_reason", "dr_reason",
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
    import smoothsal.metrics as metrics_module
    from smoothsal.metrics import METRICS, MetricInfo

    if not metrics:
        return ""

    def info(name: str) -> MetricInfo:  # registered, or a metric function that states its direction
        if name in METRICS:
            return METRICS[name]
        fn = getattr(metrics_module, name)
        return MetricInfo(name, fn.kind, fn.higher_is_better, fn)

    infos = [info(name) for name in metrics]
    if len(infos) == 1:
        return infos[0].arrow
    a, b = infos
    if a.higher_is_better is None or b.higher_is_better is None or a.higher_is_better == b.higher_is_better:
        return ""
    return a.arrow


#: the sanity table: per image s_i (randomized vs original, cascade mean), r_i (two estimates of
#: the original map), r̃_i (two estimates of the randomized model's map, cascade mean),
#: R = Σs/Σ√(r·r̃) with its verdict; sMPRT (the smoothed row's R), eMPRT, data randomization.
SANITY_MD: tuple[Column, ...] = (
    Column("init", "mprt_init"),
    Column("s̄ (rand. vs orig.)", "mprt_s", ("model_parameter_randomization",), 2),
    Column("r̄ (original reprod.)", "mprt_r", (), 2),
    Column("r̃ (randomized reprod.)", "mprt_rt", (), 2),
    Column("R = Σs/Σ√(r·r̃)", "sanity_R", ("model_parameter_randomization",), 2),
    Column("MPRT", "sanity"),
    Column("sMPRT R", "smprt_R", ("smooth_model_parameter_randomization",), 2),
    Column("sMPRT", "smprt"),
    Column("eMPRT", "emprt", ("efficient_model_parameter_randomization",), 2),
    Column("eMPRT verdict", "emprt_verdict"),
    Column("data rand. R", "dr_R", ("data_randomization",), 2),
    Column("data rand.", "dr_verdict"),
)
#: the main table, every number with its 95 % interval over images; q90 from smallest_q.
COLUMNS_MD: tuple[Column, ...] = (
    Column("final ρ", "mprt_spearman_abs", ("model_parameter_randomization",), 2),
    Column("del AUC", "deletion_auc", ("deletion_auc",)),
    Column("ins AUC", "insertion_auc", ("insertion_auc",)),
    Column("ins−del", "ins_minus_del", ("insertion_auc", "deletion_auc")),
    Column("ROAD MoRF", "road_morf", ("road_morf",)),
    Column("ROAD LeRF", "road_lerf", ("road_lerf",)),
    Column("ROAD LeRF−MoRF", "road_combined", ("road_combined",)),
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


def _cell(row: JSONObject, col: Column) -> str:
    """A number with its interval ``0.213 [0.150, 0.281]``, a verdict, or a plain value."""
    value = row.get(col.key)
    ci = row.get(f"{col.key}_ci")
    if col.key in ("mprt_r", "mprt_rt") and row.get("mprt_by_construction"):
        return "1 (by construction)"
    if isinstance(value, float) and ci is not None:
        lo, hi = ci
        if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)):
            return _fmt(value, col.digits)
        return f"{_fmt(value, col.digits)} [{_fmt(lo, col.digits)}, {_fmt(hi, col.digits)}]"
    return _fmt(value, col.digits)


def _header(columns: Sequence[Column]) -> list[str]:
    cells = ["method"] + [f"{c.header} {arrow(c.metrics)}".rstrip() for c in columns]
    return ["| " + " | ".join(cells) + " |", "|" + "---|" * len(cells)]


def _line(row: JSONObject, columns: Sequence[Column]) -> str:
    return "| " + " | ".join([row["label"]] + [_cell(row, c) for c in columns]) + " |"


def _verdict_text(v: str, needed: int | None, reproducible: bool = True, n: int | None = None) -> str:
    """``PASS`` / ``FAIL`` / ``inconclusive (≈ 40 images for 80 % power)`` / ``inconclusive (too few images)``."""
    if v in ("pass", "fail"):
        return v.upper()
    if not reproducible:
        return "inconclusive (map not reproducible)"
    if n is not None and n < MIN_IMAGES:
        return "inconclusive (too few images)"
    return f"inconclusive (≈ {needed} images for 80 % power)" if needed is not None else "inconclusive"


def _floats(values: Sequence[Any]) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]


def summarize_rows(rows: list[JSONObject], seed: int = 0) -> None:
    """In place: every ``_per_image`` list -> ``row[key]`` (estimate) and ``row[key + "_ci"]``
    (its 95 % interval over images, clipped to :data:`PER_IMAGE_RANGE`); the verdicts of MPRT,
    sMPRT (a raw row takes its smoothed row's MPRT, the same average over noisy inputs), eMPRT and
    data randomization (seeds × images when ``_dr_seeds`` holds several label permutations), by
    the rule of :mod:`smoothsal.metrics.sanity.verdicts`."""
    import numpy as np

    from smoothsal.metrics.intervals import bootstrap_interval, wilson_interval
    from smoothsal.metrics.sanity import emprt_verdict, retained_similarity

    def put(row: JSONObject, key: str, iv: Any) -> None:
        row[key] = iv.estimate
        d = iv.to_dict()
        row[f"{key}_ci"] = [d["low"], d["high"]]

    for row in rows:
        per = row.get("_per_image", {})
        for key, values in per.items():
            if key in BINARY_PER_IMAGE:
                put(row, key, wilson_interval(_floats(values)))
                continue
            put(row, key, bootstrap_interval(_floats(values), seed=seed).clipped(*PER_IMAGE_RANGE.get(key, (-math.inf, math.inf))))
        if "mprt_s" in per:
            by_seed = row.get("_mprt_seeds") or {}
            if by_seed.get("s"):  # [S][N] per re-initialisation seed
                s_m, rt = np.array([_floats(v) for v in by_seed["s"]]), np.array([_floats(v) for v in by_seed["rt"]])
            else:
                s_m, rt = np.array(_floats(per["mprt_s"])), (_floats(per["mprt_rt"]) if "mprt_rt" in per else None)
            v = retained_similarity(s_m, _floats(per["mprt_r"]), rt, seed=seed,
                                    by_construction=bool(row.get("mprt_by_construction")),
                                    what=f" (cascading MPRT, init {row.get('mprt_init')})")  # fmt: skip
            put(row, "sanity_R", v.interval)
            row["sanity_score"] = v.score  # the earlier card's name of the verdict statistic (studies.report reads it)
            row.update(sanity=_verdict_text(v.verdict, v.images_needed, v.reproducible, v.interval.n), sanity_needed=v.images_needed,
                       sanity_reason=v.reason)  # fmt: skip
            e = emprt_verdict(_floats(per["emprt"]), seed=seed)
            row.update(emprt_verdict=_verdict_text(e.verdict, e.images_needed, n=e.interval.n), emprt_reason=e.reason)
        if "dr_s" in per:
            seeds = row.get("_dr_seeds") or {}
            if seeds.get("s"):  # [S][N] per label permutation
                s = np.array([_floats(v) for v in seeds["s"]])
                rt = None if seeds.get("rt") is None else np.array([_floats(v) for v in seeds["rt"]])
            else:
                s, rt = np.array(_floats(per["dr_s"])), None
            v = retained_similarity(s, _floats(per["dr_r"]), rt, seed=seed,
                                    by_construction=bool(row.get("dr_by_construction")),
                                    what=" (MNIST LeNet-5: true vs permuted labels)")  # fmt: skip
            put(row, "dr_R", v.interval)
            row.update(dr_verdict=_verdict_text(v.verdict, v.images_needed, v.reproducible, v.interval.n), dr_needed=v.images_needed,
                       dr_reason=v.reason)  # fmt: skip
    by_key = {r["row"]: r for r in rows}
    for row in rows:
        sibling = by_key.get(f"{row['row']}_smooth")
        if sibling is not None and "sanity_R" in sibling:
            row.update(smprt=sibling["sanity"], smprt_R=sibling["sanity_R"], smprt_R_ci=sibling["sanity_R_ci"])
        elif row.get("smoothed"):
            row.update(smprt="(is smoothed)")


def markdown_tables(rows: Sequence[JSONObject], settings: JSONObject) -> str:
    """The report card as Markdown: the sanity table, the main table, then the localization table."""
    lines: list[str] = []
    if any("sanity" in r for r in rows):
        lines += ["Sanity (retained similarity R = Σs/Σ√(r·r̃) over images; PASS when its 95 % interval lies below "
                  f"{settings.get('sanity_threshold', 0.5)}, FAIL when at or above; eMPRT PASS when above 1; "
                  f"≈ N images for 80 % power; too few images below {MIN_IMAGES}):", ""]  # fmt: skip
        lines += _header(SANITY_MD) + [_line(r, SANITY_MD) for r in rows] + [""]
    lines += _header(COLUMNS_MD) + [_line(r, COLUMNS_MD) for r in rows]
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
                f"chance ≈ mask area {_fmt(settings.get('loc_chance_mass'))}; the pointing game, a hit or miss per "
                "image, with its Wilson score interval):"
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
    out: Path, rows: Sequence[JSONObject], settings: JSONObject, table: str, lines: JSONObject
) -> dict[str, Path]:
    """Write ``report.csv``, ``report.json`` and ``report.md``; returns their paths."""
    paths: dict[str, Path] = {}
    paths["report.csv"] = out / "report.csv"
    with paths["report.csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            flat = dict(r)
            for key in [k for k in r if k.endswith("_ci")]:
                flat[f"{key[:-3]}_low"], flat[f"{key[:-3]}_high"] = r[key]
            writer.writerow({k: ("" if flat.get(k) is None else flat.get(k)) for k in COLUMNS})
    paths["report.json"] = out / "report.json"
    paths["report.json"].write_text(
        json.dumps(_clean({"settings": settings, "rows": list(rows), "jaggedness": lines}), indent=2, default=str)
    )
    paths["report.md"] = out / "report.md"
    imgs = ", ".join(settings["images"])
    dr = settings.get("data_randomization")
    dr_text = ""
    if dr and dr.get("dataset") == "mnist":
        fits = ", ".join(f"{a:.3f}" for a in dr["random_label_train_accuracy"])
        dr_text = (
            f" Data randomization (MNIST): {dr['arch']} ({dr['recipe']}) trained on the true labels (training accuracy "
            f"{dr['true_label_train_accuracy']:.3f}, test {dr['true_label_test_accuracy']:.3f}) beside "
            f"{dr['n_random_label_models']} models trained on permuted labels (label seeds "
            f"{', '.join(map(str, dr['label_seeds']))}), each with its own initialization and trained until it fits them: "
            f"training accuracy on their permuted labels {fits} (epochs {', '.join(map(str, dr['random_label_epochs']))}); "
            f"{dr['n_images']} held-out digits; the permutations and the images both resampled."
        )  # fmt: skip
    elif dr:
        dr_text = (f" Data randomization: the user's true-label model and {dr.get('n_random_label_models', 1)} "
                   f"permuted-label model(s), {dr['n_images']} images.")  # fmt: skip
    ms = settings.get("map_store")
    if ms:
        computed = ", ".join(f"{k} ({why})" for k, why in ms["rows_computed"].items()) or "none"
        dr_text += (
            f" Images, targets and original-model maps from the map store `{ms['path']}` (configuration "
            f"{ms['config_hash']}, {ms['n_maps']} maps, model `{ms['model']}`); rows read from it: "
            f"{', '.join(ms['rows_from_store']) or 'none'}; method rows computed here: {computed}."
        )  # fmt: skip
    paths["report.md"].write_text(
        f"# smoothsal report card\n\nCommand: `{settings.get('command', 'smoothsal evaluate')}`. Model "
        f"`{settings['model']}`, {len(settings['images'])} images: {imgs}; noise level {settings['noise_level']:.0%}, "
        f"{settings['n_samples']} samples per smoothed map. Every number is a mean over images with its studentized "
        f"bootstrap 95 % interval (smoothsal.metrics.intervals; images resampled, seed {settings['seed']}). "
        f"Sanity: cascading model-parameter randomization (Adebayo et al. 2018, arXiv:1810.03292) down "
        f"{settings['mprt_checkpoints']} checkpoints under {settings.get('mprt_seeds', 1)} re-initialisation seed(s) "
        f"(resampled with the images when more than one), re-initialisation `{settings['randomization']}` (column init); "
        "s = Spearman of |map| between the original and the randomized model's map (cascade mean), r = the same "
        "between two independent estimates of the original map (another seed), r̃ = the same between two independent "
        "estimates of the randomized model's map (cascade mean; both 1 by construction for deterministic methods). "
        "The rule, changed once (issue 20) and fixed before this card's data in smoothsal.metrics.sanity.verdicts: "
        "R = Σs/Σ√(r·r̃) (Spearman's correction for attenuation on both sides), PASS when its interval "
        f"lies below {settings['sanity_threshold']}, FAIL when at or above, otherwise inconclusive with the images "
        f"for 80 % power (or too few images, below {MIN_IMAGES}); inconclusive also when the interval of √(r·r̃) is not above 0.1 (the map does not reproduce itself). "
        "Intervals of bounded means are clipped to the range (probabilities to [0, 1], correlations to [−1, 1]). "
        "Which parts are Adebayo et al.'s: the randomization tests and the Spearman/SSIM similarities; ours: r, r̃, R, "
        "the cascade mean, the 0.5 threshold and the verdict rule. sMPRT "
        "(Hedström et al. 2023): R of the method's explanation averaged over the noisy inputs of its smoothed row. "
        "eMPRT: discrete-entropy ratio H(fully randomized)/H(original), PASS above 1."
        f"{dr_text} Faithfulness: {settings['baseline']} baseline for deletion and insertion (a random "
        "map gives ins−del ≈ 0). ROAD (Rong et al. 2022, arXiv:2202.00449): the pixels removed most (MoRF) or "
        "least (LeRF) relevant first at 10..90 %, filled by the authors' noisy linear imputation (σ = 0.01), target "
        f"probability averaged over the levels (smoothsal.metrics.road). q90: smallest kept % of pixels that keeps {settings['prune_share']:.0%} of the "
        "target probability. Arrows: the metric's own direction (smoothsal.metrics.METRICS).\n\n" + table + "\n"
    )
    return paths
