"""``smoothsal reproduce``: the two papers smoothsal implements, one command each.

* :func:`run_smoothgrad` — SmoothGrad (Smilkov et al. 2017, arXiv:1706.03825): Figs. 2–9 and the
  visualization lessons on a pretrained EfficientNet-Lite0 and photos (digits for Figs. 8–9);
* :func:`run_stability` — the stability–fidelity trade-off (Ye & Farnia 2025, arXiv:2411.05837):
  errors vs σ, Pareto, Table 1 (DT, DR, DA on digits; DA on ImageNet with Lite0/1/2 over natural
  photos) beside the paper's, and power-law fits against Theorem 6 / Proposition 7.

Both resume from their results store, write PNG figures, CSV/Markdown tables, ``manifest.json``
(for ``smoothsal report``), ``summary.json`` and ``results_numbers.json``.

Example:
    >>> from smoothsal.studies.reproduce import StabilityReproConfig, run_stability
    >>> summary = run_stability(StabilityReproConfig.preset(quick=True))  # doctest: +SKIP
"""

from smoothsal.studies.reproduce.command import register_cli
from smoothsal.studies.reproduce.config import SmoothGradReproConfig, StabilityReproConfig
from smoothsal.studies.reproduce.run import QUICK_NOTE, run_smoothgrad, run_stability

__all__ = ["SmoothGradReproConfig", "StabilityReproConfig", "register_cli", "run_smoothgrad", "run_stability"]
