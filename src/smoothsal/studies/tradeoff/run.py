"""``run_tradeoff``: the study end to end (compute or resume, then figures and reports), for its command and for Python.

The study is described in :mod:`smoothsal.studies.tradeoff`, which exports these names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from smoothsal._core.jsontypes import JSONObject
from smoothsal.metrics.tradeoff import Recommendation
from smoothsal.studies.options import RunOptions
from smoothsal.studies.tradeoff.config import DEFAULT_OUT, TradeoffConfig

__all__ = ["TradeoffRun", "run_tradeoff", "zero_note"]


@dataclass
class TradeoffRun:
    """What :func:`run_tradeoff` produced.

    Attributes:
        rows: one dict per (setting, method, σ) of the grid (the ``results.csv`` columns).
        recommendation: the σ recommended over all curves.
        recommendations: ``{"DT/grad": Recommendation, ...}``, one per curve.
        paths: output name -> file.
        computed: rows computed by this call (the others were read back from the store).
        config: the settings used (σ = 0 added to the grid where it was missing). options: how it ran.
    """

    rows: list[JSONObject]
    recommendation: Recommendation
    recommendations: dict[str, Recommendation]
    paths: dict[str, Path]
    computed: int
    config: TradeoffConfig
    options: RunOptions


def zero_note(config: TradeoffConfig) -> str | None:
    """The sentence saying σ = 0 was added to the grid, or ``None``."""
    if not config.zero_added:
        return None
    return (
        "σ = 0 (the unsmoothed map) was added to the noise grid: the fidelity error is measured "
        "against it and the recommendation needs that end of the curve"
    )


def run_tradeoff(
    config: TradeoffConfig, options: RunOptions | None = None, *, on_row: Callable[[JSONObject], None] | None = None
) -> TradeoffRun:
    """Run the study of ``config`` as ``options`` say and write its outputs into ``options.out``
    (default :class:`~smoothsal.studies.options.RunOptions`: ``out/tradeoff``).

    Finished rows are read back from the results store in the output folder
    (:class:`~smoothsal.studies.store.ResultsStore`); a changed configuration computes its own rows
    and leaves the others' records untouched. ``on_row`` is called with each newly computed row
    after it was recorded.
    """
    if not isinstance(config, TradeoffConfig):
        raise TypeError(f"`config` must be a TradeoffConfig, got {type(config).__name__}")
    from smoothsal.studies.store import ResultsStore, write_json
    from smoothsal.studies.tradeoff.compute import compute
    from smoothsal.studies.tradeoff.plots import plot_curves, plot_pareto
    from smoothsal.studies.tradeoff.report import recommend, write_reports

    options = options if options is not None else RunOptions()
    out = options.out_dir(DEFAULT_OUT)
    store = ResultsStore(out, "tradeoff", config.to_hash(options.seed), fresh=options.fresh)
    rows, models, computed = compute(config, options, store, on_row=on_row)
    grid = list(config.noise_levels)
    overall, per_curve = recommend(rows, grid, config.stability_target, config.fidelity_bound)
    note = zero_note(config)
    paths = write_reports(out, rows, config, options, store.config_hash, models, (overall, per_curve),
                          notes=[note] if note else [])  # fmt: skip
    paths["models.json"] = write_json(out / "models.json", models)
    paths["stability_vs_sigma.png"] = plot_curves(rows, config.methods, config.settings, "stability",
                                                  out / "stability_vs_sigma.png")  # fmt: skip
    paths["fidelity_vs_sigma.png"] = plot_curves(rows, config.methods, config.settings, "fidelity",
                                                 out / "fidelity_vs_sigma.png")  # fmt: skip
    paths["pareto.png"] = plot_pareto(rows, config.methods, config.settings, per_curve, out / "pareto.png")
    return TradeoffRun(rows, overall, per_curve, paths, computed, config, options)
