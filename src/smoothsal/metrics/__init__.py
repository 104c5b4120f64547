"""Metrics: map similarity, the stability–fidelity trade-off, and the honesty checks.

**One convention** for every public metric (each registered in :data:`METRICS` with its kind and
whether higher is better, also set on the function as ``higher_is_better`` and ``kind``):

=================  ==========================================================================
kind               signature
=================  ==========================================================================
``map``            ``f(attributions, ...)``: one map per sample (complexity, localization)
``map_pair``       ``f(a, b, ...)``: two maps per sample, compared (similarity; the
                   stability/fidelity cores ``stability_from_maps(maps)``,
                   ``fidelity_from_maps(smoothed, raw)``)
``model``          ``f(model, inputs, attributions, targets=None, *, batch_size=None, max_memory=None, ...)``
                   (faithfulness, pruning): the model is queried on perturbed inputs
``sensitivity``    ``f(method, inputs, targets=None, *, ...)``: ``method`` is an attribution method
                   (anything with ``.attribute(inputs, target)``), called on nearby inputs
``comparison``     ``f(method_factory, model(s), inputs, targets=None, *, ...)``: a factory
                   ``model -> method`` (a class, or :func:`smoothsal.method_factory`) builds the
                   method for each model compared (stability, fidelity, sanity checks)
``curve``          ``f(result, ...)``: a summary of another metric's result object
=================  ==========================================================================

* the class argument is spelled ``targets`` (``None`` = the class the model predicts for the
  clean input, an int for all, or one per sample), everything after it is keyword-only;
* every metric returns per-sample values ``[B]`` (or a result object holding them), so intervals
  over images can be taken;
* ``batch_size`` is model rows per call (a row: one forward(+backward) of one input-shaped tensor,
  e.g. one perturbed image); ``None`` is learned from the calls' timings under the memory budget
  ``max_memory`` (:mod:`smoothsal.execution.policy`); a given ``batch_size`` is obeyed. Neither
  changes a result.

Modules: ``similarity`` (L2, cosine, Spearman, SSIM, top-k IoU), ``tradeoff`` (stability and
fidelity error, noise-level recommendation), ``sanity`` (model-parameter and data
randomization, their reference and the fixed verdict rule; sMPRT, eMPRT), ``intervals`` (studentized
bootstrap over images and seeds, verdicts, images for 80 % power; computed by ``bootstrap``), ``theory``
(trend tests and the bounds of Ye & Farnia 2025), ``claims`` (their Table 1 and the rule that scores
our rows against it), ``faithfulness`` (deletion/insertion, faithfulness correlation, monotonicity,
infidelity, max-sensitivity), ``road`` (ROAD: most/least relevant first under noisy linear
imputation), ``localization`` (pointing game, relevance mass/rank, mask IoU),
``complexity`` (sparseness, entropy), ``jaggedness`` (gradient along a line, roughness) and
``pruning`` (confidence kept by the top q % of a map). Captum's attribution tensors are plain
tensors shaped like the inputs and work with every metric as they are.
"""

from smoothsal.metrics._base import METRICS, MetricInfo, attribution_maps
from smoothsal.metrics.complexity import entropy, sparseness
from smoothsal.metrics.faithfulness import (
    deletion_auc,
    deletion_curve,
    faithfulness_correlation,
    infidelity,
    insertion_auc,
    insertion_curve,
    max_sensitivity,
    monotonicity,
)
from smoothsal.metrics.jaggedness import JaggedLine, gradient_along_line, gradient_roughness, line_roughness
from smoothsal.metrics.localization import mask_topk_iou, pointing_game, relevance_mass, relevance_rank
from smoothsal.metrics.pruning import attribution_pruning, smallest_q
from smoothsal.metrics.road import noisy_linear_imputation, road_combined, road_curves, road_lerf, road_morf
from smoothsal.metrics.intervals import Interval, bootstrap_interval, images_needed
from smoothsal.metrics.sanity import (
    data_randomization,
    efficient_model_parameter_randomization,
    emprt_verdict,
    model_parameter_randomization,
    mprt_over_seeds,
    sanity_verdict,
    smooth_model_parameter_randomization,
)
from smoothsal.metrics.similarity import cosine_similarity, l2_distance, spearman, ssim_maps, topk_iou
from smoothsal.metrics.tradeoff import (
    fidelity_error,
    fidelity_from_maps,
    recommend_noise_level,
    stability_error,
    stability_from_maps,
)

__all__ = [
    "METRICS",
    "Interval",
    "JaggedLine",
    "MetricInfo",
    "attribution_maps",
    "attribution_pruning",
    "bootstrap_interval",
    "cosine_similarity",
    "data_randomization",
    "deletion_auc",
    "deletion_curve",
    "efficient_model_parameter_randomization",
    "emprt_verdict",
    "entropy",
    "faithfulness_correlation",
    "fidelity_error",
    "fidelity_from_maps",
    "gradient_along_line",
    "gradient_roughness",
    "images_needed",
    "infidelity",
    "insertion_auc",
    "insertion_curve",
    "l2_distance",
    "line_roughness",
    "mask_topk_iou",
    "max_sensitivity",
    "model_parameter_randomization",
    "mprt_over_seeds",
    "monotonicity",
    "noisy_linear_imputation",
    "pointing_game",
    "recommend_noise_level",
    "relevance_mass",
    "relevance_rank",
    "road_combined",
    "road_curves",
    "road_lerf",
    "road_morf",
    "sanity_verdict",
    "smallest_q",
    "smooth_model_parameter_randomization",
    "sparseness",
    "spearman",
    "ssim_maps",
    "stability_error",
    "stability_from_maps",
    "topk_iou",
]
