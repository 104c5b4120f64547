"""Metrics: map similarity, the stability–fidelity trade-off, and the honesty checks.

One module per family, each a functional core in batched torch:
``similarity`` (L2, cosine, Spearman, SSIM, top-k IoU), ``tradeoff`` (stability and fidelity error,
noise-level recommendation), ``sanity`` (model-parameter and data randomization),
``faithfulness`` (deletion/insertion, faithfulness correlation, monotonicity, infidelity,
max-sensitivity), ``localization`` (pointing game, relevance mass/rank, mask IoU),
``complexity`` (sparseness, entropy), ``jaggedness`` (gradient along a line, roughness) and
``pruning`` (confidence kept by the top q % of a map).
"""

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
from smoothsal.metrics.jaggedness import gradient_along_line, gradient_roughness
from smoothsal.metrics.localization import mask_topk_iou, pointing_game, relevance_mass, relevance_rank
from smoothsal.metrics.pruning import attribution_pruning, smallest_q
from smoothsal.metrics.sanity import data_randomization, model_parameter_randomization, sanity_verdict
from smoothsal.metrics.similarity import cosine_similarity, l2_distance, spearman, ssim_maps, topk_iou
from smoothsal.metrics.tradeoff import fidelity_error, recommend_noise_level, stability_error

__all__ = [
    "attribution_pruning",
    "cosine_similarity",
    "data_randomization",
    "deletion_auc",
    "deletion_curve",
    "entropy",
    "faithfulness_correlation",
    "fidelity_error",
    "gradient_along_line",
    "gradient_roughness",
    "infidelity",
    "insertion_auc",
    "insertion_curve",
    "l2_distance",
    "mask_topk_iou",
    "max_sensitivity",
    "model_parameter_randomization",
    "monotonicity",
    "pointing_game",
    "recommend_noise_level",
    "relevance_mass",
    "relevance_rank",
    "sanity_verdict",
    "smallest_q",
    "sparseness",
    "spearman",
    "ssim_maps",
    "stability_error",
    "topk_iou",
]
