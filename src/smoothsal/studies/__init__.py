"""The research harness: studies that reproduce figures and tables from the library.

A study is a frozen configuration (``config.py``), a compute step that writes each finished unit
of work to the one results store (:mod:`smoothsal.studies.store`, resumable), figures
(``plots.py``) and tables/summaries (``report.py``) that only read those results, and a command
(``command.py``, ``register_cli(app)``) for the ``smoothsal`` CLI. The harness imports the library
and its extras (matplotlib, tqdm, typer, scikit-image, scikit-learn); the library never imports
the harness.

Studies (each a subpackage exporting ``run_<study>``, ``<Study>Config`` and ``register_cli``):

* :mod:`smoothsal.studies.explain` — every method raw and smoothed on photos, and the SmoothGrad
  paper's figures (Smilkov et al. 2017, arXiv:1706.03825, Figs. 3–6);
* :mod:`smoothsal.studies.tradeoff` — the stability–fidelity trade-off of Gaussian smoothing
  (Ye & Farnia 2025, arXiv:2411.05837);
* :mod:`smoothsal.studies.noise_kinds` — input vs weight noise (SmoothGrad, NoiseGrad, FusionGrad) on
  that trade-off;
* :mod:`smoothsal.studies.train_noise` — noise at training time × SmoothGrad at explanation time
  (SmoothGrad paper, Figs. 8–9);
* :mod:`smoothsal.studies.evaluate` — the metric report card;
* :mod:`smoothsal.studies.explain_dataset` — a whole image folder over ``torchrun`` ranks into a
  resumable map store (which ``tradeoff --maps`` reads);
* :mod:`smoothsal.studies.reproduce` — the SmoothGrad and stability–fidelity papers, one command each;
* :mod:`smoothsal.studies.report` — a static HTML report of what the other studies wrote.

Shared pieces: :mod:`smoothsal.studies.store` (results store), :mod:`smoothsal.studies.train`
(small reproducible classifiers). Importing this package does not import the studies.
"""

STUDIES: tuple[str, ...] = (
    "explain", "tradeoff", "noise_kinds", "train_noise", "evaluate", "explain_dataset", "reproduce", "report",
)

__all__ = ["STUDIES"]
