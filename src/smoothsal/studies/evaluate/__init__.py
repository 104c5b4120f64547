"""``smoothsal evaluate``: a report card for every method, raw and smoothed, with two controls.

One row per method, raw and smoothed by :class:`~smoothsal.smoothing.Smooth`, plus the
registered controls that ignore the model (Sobel edges, a seeded random map), so a reader sees
that the checks can fail. Sections: sanity (Adebayo et al. 2018, arXiv:1810.03292, with its
noise floor, sMPRT and eMPRT of Hedström et al. 2023), data randomization (a label-shuffled
model), faithfulness, ROAD (Rong et al. 2022), complexity, roughness, pruning, localization, and the
SmoothGrad paper's Fig. 2 lines (see :mod:`.compute`). Every entry is a mean over images with its studentized
bootstrap 95 % interval (:mod:`smoothsal.metrics.intervals`); the full preset explains 18 natural
photos, the quick one the 4 bundled ones. A verdict is stated only where its interval excludes
the threshold (the rule is fixed in :mod:`smoothsal.metrics.sanity`), otherwise "inconclusive"
with the images for 80 % power.

Outputs in the run's output folder (``RunOptions.out``): ``report.csv``, ``report.json``, ``report.md``,
``deletion_insertion.png``, ``road.png``, ``randomization.png`` and ``jaggedness.png``. Every finished
(section, row) result and every map goes to the results store
(:class:`~smoothsal.studies.store.ResultsStore`) at once, so a rerun skips finished work.

With ``maps`` (``smoothsal evaluate --maps STORE --model SPEC``) the images, their targets and the
original model's maps come from a map store written by ``smoothsal explain-dataset``; rows the
store cannot give with the same settings are computed (see :mod:`.compute`, :class:`.compute.MapSource`).

Steps: :mod:`.config` → :mod:`.compute` → :mod:`.report`, :mod:`.plots`; the command is :mod:`.command`.

Example:
    >>> from smoothsal.studies.evaluate import EvaluateConfig, run_evaluate
    >>> report = run_evaluate(EvaluateConfig.preset("quick"))  # doctest: +SKIP
    >>> report.row("grad_smooth")["sanity"]  # doctest: +SKIP
"""

from smoothsal.studies.evaluate.command import register_cli
from smoothsal.studies.evaluate.config import DEFAULT_METHODS, FULL, QUICK, SECTIONS, EvaluateConfig
from smoothsal.studies.evaluate.run import EvaluateReport, run_evaluate

__all__ = ["DEFAULT_METHODS", "FULL", "QUICK", "SECTIONS", "EvaluateConfig", "EvaluateReport", "register_cli",
           "run_evaluate"]  # fmt: skip
