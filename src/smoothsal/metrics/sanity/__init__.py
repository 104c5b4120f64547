r"""Sanity checks for saliency maps (Adebayo et al. 2018, "Sanity Checks for Saliency Maps",
arXiv:1810.03292): a map that explains the *model* must change when the model is destroyed.

* **Model parameter randomization test** (MPRT). The weights are re-initialised layer by
  layer -- *cascading*: from the top (logits) layer down, cumulatively; *independent*: one layer at
  a time -- and the map :math:`\Phi(f_{\tilde\theta_l}, x)` of each randomized model is compared
  with the original :math:`\Phi(f_\theta, x)`:

  .. math:: s_l(x) = \operatorname{sim}\big(\Phi^{(a)}(f_\theta, x),\ \Phi^{(b)}(f_{\tilde\theta_l}, x)\big),
            \qquad l = L, L-1, \dots, 1

  by Spearman rank correlation of the absolute and of the signed maps, SSIM and top-k IoU
  (:mod:`smoothsal.metrics.similarity`). The original model is never part of the averages
  (Quantus averages it in as a "layer" with similarity 1) and is left untouched: every
  randomized model is a deep copy.
* **Noise floor / reference** :math:`r(x)`: the same similarity between two *independent estimates*
  of the original model's map, :math:`r(x) = \operatorname{sim}(\Phi^{(a)}(f_\theta, x),
  \Phi^{(b)}(f_\theta, x))` -- :math:`(a)` and :math:`(b)` are two seeds of a smoothed or sampled
  method (``second_estimate``). It is what :math:`s_l` would be if randomization changed nothing,
  so a low :math:`s_l` means "the model matters" only where :math:`r` is high: SmoothGrad with
  8 samples on Lite0 reproduces its own map with Spearman ≈ 0.2, and a similarity of 0.2 after
  randomization is then sampling noise, not sensitivity to the model. The randomized maps use
  seed :math:`(b)`, so :math:`s_l` and :math:`r` carry the same Monte-Carlo noise. For a
  deterministic method :math:`r = 1` **by construction** (reported as such, never computed).
* **smooth MPRT** (sMPRT, Hedström et al. 2023, "Sanity Checks Revisited: An Exploration to Repair
  the Model Parameter Randomisation Test", arXiv:2401.06465): the explanation of every model is
  first averaged over :math:`N` noisy copies of the input, which removes the shattered-gradient
  noise that makes raw gradients look "randomized" already
  (:func:`smooth_model_parameter_randomization`).
* **efficient MPRT** (eMPRT, same paper): instead of a layer-by-layer similarity, the rise of the
  explanation's complexity from the original to the fully randomized model,

  .. math:: \text{eMPRT}(x) = \frac{H\big(\Phi(f_{\tilde\theta_1}, x)\big)}{H\big(\Phi(f_\theta, x)\big)},

  :math:`H` the discrete entropy of the histogram of :math:`|\Phi|` (:func:`discrete_entropy`); a map
  of the model turns into noise (ratio > 1) when all weights are random, an edge detector keeps
  ratio 1.
* **Data randomization test**: the same similarities between the maps of a model trained on the
  true labels and one trained on randomly permuted labels (its own initialization, trained until
  it fits them), with both references.
* **The randomized map's own reproducibility** :math:`\tilde r(x)`: two independent estimates of
  the randomized model's map compared the same way; the verdict divides by
  :math:`\sqrt{r \tilde r}` (:mod:`.verdicts`).

The package, by job: :mod:`.layers` (which layers, re-initialised how), :mod:`.entropy`
(eMPRT's complexity), :mod:`.compare` (the maps compared and the reference), :mod:`.mprt`
(MPRT, sMPRT, eMPRT), :mod:`.data` (data randomization) and :mod:`.verdicts` (the verdict rule,
fixed there before any data were seen).
"""

from smoothsal.metrics.sanity.compare import SIMILARITY_METRICS, map_reproducibility
from smoothsal.metrics.sanity.data import DataRandomizationResult, data_randomization
from smoothsal.metrics.sanity.entropy import ENTROPY_BINS, discrete_entropy
from smoothsal.metrics.sanity.layers import INITS, randomizable_layers, randomize_layers, spaced_layers
from smoothsal.metrics.sanity.mprt import (
    SECOND_ESTIMATE_OFFSET,
    MPRTResult,
    efficient_model_parameter_randomization,
    model_parameter_randomization,
    mprt_over_seeds,
    second_estimate_seed,
    smooth_model_parameter_randomization,
)
from smoothsal.metrics.sanity.verdicts import (
    EMPRT_THRESHOLD,
    MIN_REFERENCE,
    MPRT_THRESHOLD,
    SanityVerdict,
    emprt_verdict,
    reproducibility,
    retained_similarity,
    sanity_verdict,
)

__all__ = [
    "EMPRT_THRESHOLD",
    "INITS",
    "MIN_REFERENCE",
    "MPRT_THRESHOLD",
    "SIMILARITY_METRICS",
    "DataRandomizationResult",
    "MPRTResult",
    "SanityVerdict",
    "data_randomization",
    "discrete_entropy",
    "efficient_model_parameter_randomization",
    "emprt_verdict",
    "map_reproducibility",
    "model_parameter_randomization",
    "mprt_over_seeds",
    "randomizable_layers",
    "randomize_layers",
    "reproducibility",
    "retained_similarity",
    "sanity_verdict",
    "smooth_model_parameter_randomization",
    "spaced_layers",
]
