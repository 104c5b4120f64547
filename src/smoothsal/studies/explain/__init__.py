"""``smoothsal explain``: every chosen method, raw and smoothed, on photos (SmoothGrad Fig. 5 layout).

Reproduces the SmoothGrad paper's pictures (Smilkov et al. 2017, arXiv:1706.03825) on real
photos: each method's raw map next to its smoothed map (:class:`~smoothsal.smoothing.Smooth`,
sampled to the precision of :data:`smoothsal.registry.PRECISION`), and, with ``extras``, the
noise-level (Fig. 3), sample-size (Fig. 4) and discriminativity (Fig. 6) figures and the
visualization choices. Writes ``grid.png``, ``maps.npz``, ``summary.json`` and the extra figures
into the run's output folder (``RunOptions.out``), where the results store lets an interrupted run resume.

Example:
    >>> from smoothsal.studies.explain import ExplainConfig, run_explain
    >>> config = ExplainConfig(images=("chelsea",), methods=("grad",), extras=False)
    >>> summary = run_explain(config)  # doctest: +SKIP
"""

from smoothsal.studies.explain.command import register_cli
from smoothsal.studies.explain.compute import ExplainResults, compute_explain
from smoothsal.studies.explain.config import ExplainConfig
from smoothsal.studies.explain.run import run_explain

__all__ = ["ExplainConfig", "ExplainResults", "compute_explain", "register_cli", "run_explain"]
