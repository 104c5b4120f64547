"""``run_evaluate``: the study end to end (compute or resume, then figures and reports), for its command and for Python.

The study is described in :mod:`smoothsal.studies.evaluate`, which exports these names.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from smoothsal._core.jsontypes import JSONObject
from smoothsal.studies.evaluate.config import DEFAULT_OUT, EvaluateConfig
from smoothsal.studies.options import RunOptions

__all__ = ["EvaluateReport", "run_evaluate"]


@dataclass
class EvaluateReport:
    """What :func:`run_evaluate` returns.

    Attributes:
        rows: one dict per report row (keys :data:`~smoothsal.studies.evaluate.report.COLUMNS`, plus the curves).
        table: the Markdown tables printed by the CLI.
        paths: ``{file name: path}`` of every file written.
        computed: (section, row) results computed in this run (the rest came from the store).
        settings: the settings used (the configuration's and the run options').
        seconds: wall time of this run.
    """

    rows: list[JSONObject]
    table: str
    paths: dict[str, Path]
    computed: int
    settings: JSONObject
    seconds: float

    def row(self, key: str) -> JSONObject:
        """The row named ``key`` (e.g. ``"grad"``, ``"grad_smooth"``, ``"sobel"``, ``"random"``)."""
        for r in self.rows:
            if r["row"] == key:
                return r
        raise KeyError(f"no row {key!r}; rows are {[r['row'] for r in self.rows]}")


def run_evaluate(config: EvaluateConfig, options: RunOptions | None = None) -> EvaluateReport:
    """Build the report card of ``config`` as ``options`` say and write it to ``options.out``
    (default :class:`~smoothsal.studies.options.RunOptions`: ``out/evaluate``)."""
    if not isinstance(config, EvaluateConfig):
        raise TypeError(f"`config` must be an EvaluateConfig, got {type(config).__name__}")
    from smoothsal.studies.evaluate import compute as comp
    from smoothsal.studies.evaluate.config import PRUNE_SHARE, SANITY_THRESHOLD
    from smoothsal.studies.evaluate.plots import (
        lines_from_json,
        plot_jaggedness,
        plot_perturbation_curves,
        plot_randomization,
        plot_road_curves,
    )
    from smoothsal.studies.evaluate.report import markdown_tables, summarize_rows, write_reports
    from smoothsal.studies.store import ResultsStore

    t_start = time.perf_counter()
    options = options if options is not None else RunOptions()
    seed = options.seed
    source = None
    if config.maps is not None:  # images, targets and the original model's maps from a map store
        net, x, targets, image_names, class_names, source = comp.load_store_data(config, options)
    else:
        net, x, targets, image_names, class_names = comp.load_data(config, options)
    out = options.out_dir(DEFAULT_OUT)
    store = ResultsStore(out, "evaluate", {**config.to_hash(seed), "data": comp.data_digest(x, targets)},
                         fresh=options.fresh)  # fmt: skip
    wanted = {"localization": config.wants_localization, "data_randomization": config.wants_data_randomization}
    sections = [s for s in config.sections if wanted.get(s, True)]
    stores: dict[str, ResultsStore] = {}
    loaders: dict[str, Callable[[], object]] = {}
    loc_store = None
    if config.wants_localization:
        loc_store = ResultsStore(out / "localization", "evaluate/localization", config.localization_hash(seed),
                                 fresh=options.fresh)  # fmt: skip
        stores["localization"], loaders["localization"] = loc_store, lambda: comp.localization_data(config, options)
    if config.wants_data_randomization:
        stores["data_randomization"] = ResultsStore(out / "data_randomization", "evaluate/data_randomization",
                                                    config.data_randomization_hash(seed), fresh=options.fresh)  # fmt: skip
        loaders["data_randomization"] = lambda: comp.data_randomization_data(config, options)
    rows = comp.build_rows(config, options, int(x.shape[-1]))
    if source is not None:
        source.plan_rows(config, seed, rows)  # warns once about the rows it cannot read
    ctx = comp.Context(net, x, targets, config, options, store, maps=source)
    results, lines, computed = comp.compute_sections(ctx, rows, sections, stores, loaders)

    report_rows = []
    for row in rows:
        merged: JSONObject = {"row": row.key, "method": row.method, "label": row.label, "kind": row.kind,
                                  "smoothed": row.smoothed}  # fmt: skip
        per_image: JSONObject = {}
        for section in sections:
            values = dict(results[(section, row.key)])
            per_image.update(values.pop("_per_image", {}))
            merged.update(values)
        merged["_per_image"] = per_image
        report_rows.append(merged)
    summarize_rows(report_rows, seed=seed)
    settings = {**config.as_dict(), **options.as_dict(), "images": image_names, "targets": targets.tolist(), "image_size": int(x.shape[-1]),
                "sanity_threshold": SANITY_THRESHOLD, "prune_share": PRUNE_SHARE,
                "config_hash": store.config_hash, "n_images": int(x.shape[0])}  # fmt: skip
    if config.wants_data_randomization:
        dr_store = stores["data_randomization"]

        def dr_info() -> JSONObject:
            if ctx.dr is None:
                ctx.dr = comp.data_randomization_data(config, options)
            return ctx.dr.info

        settings["data_randomization"] = dr_store.get_or_compute({"models": "info"}, dr_info)
    if source is not None:
        settings["map_store"] = source.summary()
    if class_names:
        settings["target_names"] = [class_names[int(t)] for t in targets]
    if loc_store is not None:
        def chance() -> dict[str, float]:  # relevance mass of a uniform map: the mean mask area
            if ctx.loc is None:
                ctx.loc = comp.localization_data(config, options)
            return {"mass": float(ctx.loc[2].flatten(1).float().mean(dim=1).mean())}

        settings["loc_chance_mass"] = loc_store.get_or_compute({"chance": "mass"}, chance)["mass"]
        settings["loc_source"] = (
            "the model and masked dataset passed in" if isinstance(config.localization, tuple)
            else "a small CNN trained on synthetic scenes with smoothsal.studies.train"
        )  # fmt: skip
    table = markdown_tables(report_rows, settings)
    paths = write_reports(out, report_rows, settings, table, lines)
    if any(r.get("_curves") for r in report_rows):
        paths["deletion_insertion.png"] = plot_perturbation_curves(out / "deletion_insertion.png", report_rows)
    if any(r.get("_road") for r in report_rows):
        paths["road.png"] = plot_road_curves(out / "road.png", report_rows)
    if any(r.get("_mprt") for r in report_rows):
        paths["randomization.png"] = plot_randomization(out / "randomization.png", report_rows)
    if lines:
        paths["jaggedness.png"] = plot_jaggedness(lines_from_json(lines), out / "jaggedness.png")
    return EvaluateReport(report_rows, table, paths, computed, settings, round(time.perf_counter() - t_start, 2))
