r"""The stability–fidelity trade-off of Gaussian smoothing (Ye & Farnia 2025, arXiv:2411.05837).

Smoothing a saliency map with Gaussian input noise makes it more *stable* -- the maps of two
networks trained on different data, recipes or architectures agree more (their eq. 12) -- and
less *faithful* to the network's own unsmoothed map (their eq. 13). This study measures both
errors over a σ grid in the three settings of their Table 1 (DT, DR, DA), recommends a σ on the
trade-off curve (:func:`~smoothsal.metrics.tradeoff.recommend_noise_level`), and writes
``results.csv``, ``results.json``, ``models.json``, ``table1.md``, ``recommendation.json``,
``stability_vs_sigma.png``, ``fidelity_vs_sigma.png`` and ``pareto.png``.

Your own models (``smoothsal tradeoff --models A.pt,B.pt --images DIR``, any ``--model`` spec) take
the place of the trained ones through :class:`~smoothsal.studies.tradeoff.own_models.OwnModels`.

Steps: :mod:`.config` (settings) → :mod:`.compute` (rows into the results store, resumable) →
:mod:`.report` and :mod:`.plots` (read the rows). ``smoothsal tradeoff`` is :mod:`.command`.

Example:
    >>> from smoothsal.studies.tradeoff import TradeoffConfig, run_tradeoff
    >>> from smoothsal.studies.options import RunOptions
    >>> run = run_tradeoff(TradeoffConfig.preset("quick"), RunOptions(out="out/tradeoff"))  # doctest: +SKIP
    >>> run.recommendation.noise_level  # doctest: +SKIP
"""

from smoothsal.studies.tradeoff.command import register_cli
from smoothsal.studies.tradeoff.config import FULL, QUICK, SETTINGS, TradeoffConfig
from smoothsal.studies.tradeoff.own_models import OwnModels
from smoothsal.studies.tradeoff.run import TradeoffRun, run_tradeoff, zero_note

__all__ = ["FULL", "OwnModels", "QUICK", "SETTINGS", "TradeoffConfig", "TradeoffRun", "register_cli", "run_tradeoff"]
