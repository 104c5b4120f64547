r"""The stability–fidelity trade-off of Gaussian smoothing (Ye & Farnia 2025, arXiv:2411.05837).

Smoothing a saliency map with Gaussian input noise makes it more *stable* -- the maps of two
networks trained on different data, recipes or architectures agree more (their eq. 12) -- and
less *faithful* to the network's own unsmoothed map (their eq. 13). This study measures both
errors over a σ grid in the three settings of their Table 1 (DT, DR, DA), recommends a σ on the
trade-off curve (:func:`~smoothsal.metrics.tradeoff.recommend_noise_level`), and writes
``results.csv``, ``results.json``, ``models.json``, ``table1.md``, ``recommendation.json``,
``stability_vs_sigma.png``, ``fidelity_vs_sigma.png`` and ``pareto.png``.

Steps: :mod:`.config` (settings) → :mod:`.compute` (rows into the results store, resumable) →
:mod:`.report` and :mod:`.plots` (read the rows). ``smoothsal tradeoff`` is :mod:`.command`.

Example:
    >>> from smoothsal.studies.tradeoff import TradeoffConfig, run_tradeoff
    >>> run = run_tradeoff(TradeoffConfig.preset("quick", out_dir="out/tradeoff"))  # doctest: +SKIP
    >>> run.recommendation.noise_level  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smoothsal.metrics.tradeoff import Recommendation
from smoothsal.studies.tradeoff.config import FULL, QUICK, SETTINGS, TradeoffConfig

__all__ = ["FULL", "QUICK", "SETTINGS", "TradeoffConfig", "TradeoffRun", "register_cli", "run_tradeoff"]


@dataclass
class TradeoffRun:
    """What :func:`run_tradeoff` produced.

    Attributes:
        rows: one dict per (setting, method, σ) of the grid (the ``results.csv`` columns).
        recommendation: the σ recommended over all curves.
        recommendations: ``{"DT/grad": Recommendation, ...}``, one per curve.
        paths: output name -> file.
        computed: rows computed by this call (the others were read back from the store).
        config: the settings used (σ = 0 added to the grid where it was missing).
    """

    rows: list[dict[str, Any]]
    recommendation: Recommendation
    recommendations: dict[str, Recommendation]
    paths: dict[str, Path]
    computed: int
    config: TradeoffConfig


def zero_note(config: TradeoffConfig) -> str | None:
    """The sentence saying σ = 0 was added to the grid, or ``None``."""
    if not config.zero_added:
        return None
    return (
        "σ = 0 (the unsmoothed map) was added to the noise grid: the fidelity error is measured "
        "against it and the recommendation needs that end of the curve"
    )


def run_tradeoff(
    config: TradeoffConfig, *, on_row: Callable[[dict[str, Any]], None] | None = None
) -> TradeoffRun:
    """Run the study of ``config`` and write its outputs into ``config.out_dir``.

    Finished rows are read back from the results store in ``out_dir``
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

    out = config.out_dir
    store = ResultsStore(out, "tradeoff", config.to_hash(), fresh=config.fresh)
    rows, models, computed = compute(config, store, on_row=on_row)
    grid = list(config.noise_levels)
    overall, per_curve = recommend(rows, grid, config.stability_target, config.fidelity_bound)
    note = zero_note(config)
    info = {**config.as_dict(), "out_dir": str(out)}
    paths = write_reports(
        out, rows, info, store.config_hash, models, grid, config.methods, config.settings, config.table_noise_level,
        overall, per_curve, notes=[note] if note else [],
    )  # fmt: skip
    paths["models.json"] = write_json(out / "models.json", models)
    paths["stability_vs_sigma.png"] = plot_curves(rows, config.methods, config.settings, "stability",
                                                  out / "stability_vs_sigma.png")  # fmt: skip
    paths["fidelity_vs_sigma.png"] = plot_curves(rows, config.methods, config.settings, "fidelity",
                                                 out / "fidelity_vs_sigma.png")  # fmt: skip
    paths["pareto.png"] = plot_pareto(rows, config.methods, config.settings, per_curve, out / "pareto.png")
    return TradeoffRun(rows, overall, per_curve, paths, computed, config)


def register_cli(app: Any) -> None:
    """Add ``smoothsal tradeoff`` to a :class:`typer.Typer` app."""
    from smoothsal.studies.tradeoff.command import register_cli as _register

    _register(app)
