r"""The data randomization test (Adebayo et al. 2018, arXiv:1810.03292): maps of a model trained on the true
labels against those of one trained on permuted labels; see :mod:`smoothsal.metrics.sanity`."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from smoothsal._core.validation import TargetSpec, check_choice, check_inputs
from smoothsal.execution.calls import resolve_model_targets
from smoothsal.metrics._base import check_method_factory, metric
from smoothsal.metrics.sanity.compare import SIMILARITY_METRICS, MethodFactory, _original_maps, _randomized_maps
from smoothsal.metrics.sanity.compare import _reference, _similarities

__all__ = ["DataRandomizationResult", "data_randomization"]


@dataclass
class DataRandomizationResult:
    """Similarities ``[B]`` between maps of a true-label and a random-label model (same inputs),
    with the reference ``[B]`` (two estimates of the true-label model's map) and the random-label
    model's own reproducibility ``randomized_reference`` ``[B]`` (two estimates of its map; ``None``
    when by construction); see :class:`MPRTResult`."""

    spearman_abs: Tensor
    spearman_signed: Tensor
    ssim: Tensor
    topk_iou: Tensor
    targets: Tensor
    reference: Tensor | None = None
    reference_by_construction: bool = True
    randomized_reference: Tensor | None = None

    def mean_similarity(self, metric: str = "spearman_abs") -> Tensor:
        """Scalar mean over inputs of one similarity."""
        check_choice(metric, "metric", SIMILARITY_METRICS)
        return getattr(self, metric).nanmean()

    def per_image(self, metric: str = "spearman_abs") -> Tensor:
        """``[B]`` the similarity of each image (:math:`s_i` of the rule)."""
        check_choice(metric, "metric", SIMILARITY_METRICS)
        return getattr(self, metric)

    def summary(self) -> dict[str, float]:
        return {m: float(self.mean_similarity(m)) for m in SIMILARITY_METRICS}


@metric("comparison", higher_is_better=False)
def data_randomization(
    method: MethodFactory,
    model: nn.Module,
    random_label_model: nn.Module,
    inputs: Tensor,
    targets: TargetSpec = None,
    *,
    second_estimate: MethodFactory | None = None,
    original: Tensor | None = None,
) -> DataRandomizationResult:
    r"""Data randomization test (Adebayo et al. 2018, arXiv:1810.03292), with its reference.

    .. math:: s(x) = \operatorname{sim}\big(\Phi^{(a)}(f_{\theta}, x),\ \Phi^{(b)}(f_{\theta_{\text{rand}}}, x)\big)

    with the references :math:`r(x)` (two estimates under :math:`f_\theta`) and :math:`\tilde r(x)`
    (two estimates under :math:`f_{\theta_{\text{rand}}}`), as in :func:`model_parameter_randomization`;
    :math:`f_{\theta_{\text{rand}}}` is the same architecture trained on randomly permuted
    labels and its own initialization, trained until it fits them (Adebayo et al. 2018;
    :func:`smoothsal.studies.train.randomization_models`). A method that explains what the model
    learned gives low similarity.

    Args:
        method: factory ``model -> attribution method``.
        model: trained on the true labels.
        random_label_model: trained on shuffled labels, same input space and classes.
        inputs: ``[B, ...]``.
        targets: ``None`` = the true-label model's predictions, explained in both models.
        second_estimate, original: see :func:`model_parameter_randomization` (``original``: the
            maps of ``method`` on ``model``).
    Returns:
        :class:`DataRandomizationResult` with ``[B]`` similarities and the reference.
    """
    check_method_factory(method)
    check_inputs(inputs)
    if not isinstance(random_label_model, nn.Module):
        raise TypeError(f"`random_label_model` must be a torch.nn.Module, got {type(random_label_model).__name__}")
    x = inputs.detach()
    t = resolve_model_targets(model, x, targets)
    first = _original_maps(method, model, x, t, original)
    _, r, by_construction = _reference(method, second_estimate, model, x, t, first)
    randomized, r_tilde = _randomized_maps(method, second_estimate, random_label_model, x, t)
    sims = _similarities(first, randomized)
    return DataRandomizationResult(**sims, targets=t, reference=r, reference_by_construction=by_construction,
                                   randomized_reference=r_tilde)  # fmt: skip
