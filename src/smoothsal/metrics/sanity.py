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
* **Data randomization test**: the same similarities (and reference) between the maps of a model
  trained on the true labels and one trained on randomly permuted labels.

**The verdict rule** (fixed before any data were seen; :func:`sanity_verdict`)

Per image :math:`i`: :math:`s_i` = the mean over the cascade's checkpoints of the Spearman
correlation of :math:`|\Phi|` (signed: a map whose ranks reverse has changed), :math:`r_i` its
reference. The statistic is the **retained similarity**

.. math:: R = \frac{\sum_i s_i}{\sum_i r_i}

-- the share of the map's *reproducible* rank structure that survives the randomization
(:math:`1 - R` the share lost; for a deterministic method :math:`R = \bar s`, the mean
|Spearman| over the cascade of the earlier card). The cascade mean is the normalised area under
Adebayo et al.'s similarity-vs-depth curve: the end point alone would let a method pass that
ignores its top layers until the lowest are scrambled too (Guided Backprop keeps similarity ≈ 1
after the classifier is re-initialised, their Fig. 2); with checkpoints spaced over the depth
(:func:`spaced_layers`) every depth weighs alike. The threshold is :data:`MPRT_THRESHOLD` = 0.5:
a map that keeps more than half of its reproducible structure after its model is destroyed does
not explain that model. With the percentile bootstrap 95 % interval of :math:`R` over images
(:mod:`smoothsal.metrics.intervals`, images resampled in pairs :math:`(s_i, r_i)`):

* **pass** when the interval lies below 0.5; **fail** when it lies at or above 0.5;
* **inconclusive** otherwise, with the number of images the interval would need
  (:func:`~smoothsal.metrics.intervals.images_needed`); and always inconclusive when the
  reference's own interval does not lie above :data:`MIN_REFERENCE` = 0.1: two estimates of the
  same model's map then share (almost) no rank structure, so there is nothing measurable for the
  randomization to destroy (a map of pure sampling noise, whose reference is 0 in expectation
  and whose interval excludes 0 by chance one time in twenty) -- more samples per map are
  needed, not more images. 0.1 is ten times the per-image spread of the Spearman correlation of
  two independent 100 × 100 noise maps (:math:`1/\sqrt{d}`), and half of what SmoothGrad with
  8 samples reaches on EfficientNet-Lite0 (≈ 0.2).

eMPRT's rule (:func:`emprt_verdict`): the mean ratio over images, **pass** when its interval lies
above :data:`EMPRT_THRESHOLD` = 1 (complexity rises), **fail** when it lies at or below 1.
Hedström et al. report the ratio without a threshold; 1 is the "no change" value, the natural line.

**Re-initialisation** of one layer (seeded; the same ``seed`` gives the same random weights, and a
layer gets the same weights in cascading and independent order). ``init`` chooses how:

* ``"default"`` -- a layer with ``reset_parameters()`` (``Conv*``, ``Linear``, ...) calls it, i.e.
  PyTorch's own default initialisation (Kaiming-uniform weights, uniform biases), under a seed
  derived from ``(seed, layer index)``; the global RNG state is saved and restored around it.
  Normalisation layers (``BatchNorm*``, ``GroupNorm``, ``LayerNorm``, ``InstanceNorm*``) get their
  affine weight and bias drawn from :math:`\mathcal N(0, 1)` and keep their running statistics
  (their own ``reset_parameters()`` would set :math:`\gamma = 1, \beta = 0`, an identity that
  randomizes nothing). Any other module with parameters: Kaiming-normal (fan-in) for tensors of
  rank >= 2, :math:`\mathcal N(0, 1)` for the rest. On a deep network with BatchNorm this
  changes the activations' *scale* layer after layer: a randomized EfficientNet-Lite0 then ignores
  its input (Grad-CAM becomes a centred blob), which makes "the map changed" trivially true;
* ``"scaled"`` -- scale-preserving: every parameter tensor of a ``Conv``/``Linear``/other layer is
  redrawn from :math:`\mathcal N(\mu_w, \sigma_w^2)` with the tensor's *own* mean and standard
  deviation, and a normalisation layer's :math:`\gamma, \beta` are permuted across channels (its
  own values, its running statistics kept). Each layer's output keeps the trained network's scale;
  only the learned structure is destroyed. (A norm layer whose :math:`\gamma` are all equal, as
  before training, is left as it was: permuting equal values changes nothing.)
* ``"permute"`` -- every parameter tensor's entries are shuffled (the exact distribution kept).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import torch
from torch import Tensor, nn

from smoothsal.execution.calls import resolve_model_targets
from smoothsal._core.validation import (
    TargetSpec,
    check_choice,
    check_inputs,
    check_positive_int,
)
from smoothsal.metrics._base import check_method_factory, metric
from smoothsal.metrics.intervals import (
    Interval,
    bootstrap_interval,
    images_needed,
    ratio_of_means,
    verdict,
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
    "model_parameter_randomization",
    "randomizable_layers",
    "randomize_layers",
    "retained_similarity",
    "sanity_verdict",
    "smooth_model_parameter_randomization",
    "spaced_layers",
]

Seed = Union[int, torch.Generator]
MethodFactory = Callable[[nn.Module], Any]

#: the similarity measures every result holds, each ``[L, B]`` (MPRT) or ``[B]`` (data).
SIMILARITY_METRICS: tuple[str, ...] = ("spearman_abs", "spearman_signed", "ssim", "topk_iou")
#: re-initialisations of :func:`randomize_layers`
INITS: tuple[str, ...] = ("default", "scaled", "permute")
#: MPRT / data randomization: pass when the retained similarity R's interval lies below this
MPRT_THRESHOLD = 0.5
#: eMPRT: pass when the complexity ratio's interval lies above this
EMPRT_THRESHOLD = 1.0
#: a sampled map must reproduce itself at least this well (reference interval above it) to be tested
MIN_REFERENCE = 0.1
#: histogram bins of :func:`discrete_entropy` (Quantus' default for eMPRT)
ENTROPY_BINS = 100

_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*, SyncBatchNorm
    nn.GroupNorm,
    nn.LayerNorm,
)


# ---- layers and their re-initialisation ---------------------------------------------------------
def randomizable_layers(model: nn.Module) -> list[str]:
    """Names of the modules that own parameters (Conv, Linear, BatchNorm, ...), in definition order.

    Definition order (``named_modules``) is the forward order for sequential models such as
    EfficientNet; the *top* layer (nearest the logits) is the last name. A module shared at
    several places is listed once. The root module is named ``""``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    return [name for name, m in model.named_modules() if next(m.parameters(recurse=False), None) is not None]


def spaced_layers(model: nn.Module, n: int) -> list[str]:
    """``n`` randomizable layers evenly spaced from the bottom to the top (both included).

    For MPRT on a large model (EfficientNet-Lite0 has ~150 such layers) pass the result as ``layers``.
    """
    check_positive_int(n, "n")
    names = randomizable_layers(model)
    if n >= len(names):
        return names
    if n == 1:
        return [names[-1]]
    idx = sorted({round(i * (len(names) - 1) / (n - 1)) for i in range(n)})
    return [names[i] for i in idx]


def _base_seed(seed: Seed) -> int:
    if isinstance(seed, torch.Generator):
        return int(torch.randint(0, 2**62, (1,), generator=seed))
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"`seed` must be an int or a torch.Generator, got {type(seed).__name__}")
    return seed


def _permuted(p: Tensor, gen: torch.Generator) -> Tensor:
    perm = torch.randperm(p.numel(), generator=gen).to(p.device)
    return p.detach().flatten()[perm].reshape(p.shape)


def _reinitialize(module: nn.Module, seed: int, init: str = "default") -> None:
    """Re-initialise ``module``'s own parameters in place (see the module docstring), seeded."""
    if init != "default":
        gen = torch.Generator().manual_seed(seed % 2**63)
        norm = isinstance(module, _NORM_TYPES)
        with torch.no_grad():
            for p in module.parameters(recurse=False):
                if init == "permute" or norm or p.numel() < 2:
                    p.copy_(_permuted(p, gen))
                else:  # "scaled": the tensor's own mean and standard deviation
                    mu, sd = p.detach().double().mean(), p.detach().double().std()
                    draw = torch.randn(p.shape, generator=gen, dtype=torch.float64) * sd + mu
                    p.copy_(draw.to(dtype=p.dtype, device=p.device))
        return
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        if isinstance(module, _NORM_TYPES):
            for p in module.parameters(recurse=False):
                p.normal_(0.0, 1.0)
        elif callable(getattr(module, "reset_parameters", None)):
            module.reset_parameters()
        else:
            for p in module.parameters(recurse=False):
                if p.dim() >= 2:
                    nn.init.kaiming_normal_(p)
                else:
                    p.normal_(0.0, 1.0)


def _layer_seed(base: int, index: int) -> int:
    """A seed for layer ``index`` mixed from ``base`` (odd 64-bit multipliers, so that small user seeds
    such as ``torch.manual_seed(0)`` used to build the model never reproduce its initial weights)."""
    return (base * 0x9E3779B97F4A7C15 + (index + 1) * 0xBF58476D1CE4E5B9) % 2**63


def _select_layers(layers: Sequence[str] | None, all_layers: list[str]) -> list[int]:
    """Indices (into ``all_layers``) of the chosen layers, top first."""
    if not all_layers:
        raise ValueError("`model` has no layers with parameters to randomize")
    if layers is None:
        return list(range(len(all_layers)))[::-1]
    if isinstance(layers, str) or not isinstance(layers, Sequence):
        raise TypeError(f"`layers` must be a sequence of layer names (or None), got {type(layers).__name__}")
    index = {name: i for i, name in enumerate(all_layers)}
    unknown = [name for name in layers if name not in index]
    if unknown:
        shown = all_layers if len(all_layers) <= 12 else all_layers[:6] + ["..."] + all_layers[-6:]
        raise ValueError(f"`layers` names {unknown} that are not randomizable layers of the model; choose from {shown}")
    if not layers:
        raise ValueError("`layers` must name at least one layer (or be None for all)")
    return sorted({index[name] for name in layers}, reverse=True)


def randomize_layers(
    model: nn.Module,
    order: str = "cascading",
    layers: Sequence[str] | None = None,
    seed: Seed = 0,
    init: str = "default",
) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(layer name, randomized deep copy of the model)``, from the top layer down.

    Args:
        model: the trained model; never modified (each yielded model is a fresh deep copy, with
            the same train/eval flags).
        order: ``"cascading"`` -- the copy yielded for layer ``l`` has ``l`` and *every*
            randomizable layer above it re-initialised (also those not named in ``layers``);
            ``"independent"`` -- only layer ``l`` is re-initialised.
        layers: names from :func:`randomizable_layers` to stop at (default: all), e.g.
            :func:`spaced_layers` for a large model.
        seed: int or ``torch.Generator``; layer ``i`` is re-initialised with a seed derived from
            ``(seed, i)``, so the same layer gets the same weights in both orders.
        init: ``"default"``, ``"scaled"`` (scale-preserving) or ``"permute"``; see the module docstring.
    """
    check_choice(order, "order", ("cascading", "independent"))
    check_choice(init, "init", INITS)
    all_layers = randomizable_layers(model)
    chosen = _select_layers(layers, all_layers)
    base = _base_seed(seed)
    if order == "independent":
        for i in chosen:
            work = copy.deepcopy(model)
            _reinitialize(work.get_submodule(all_layers[i]), _layer_seed(base, i), init)
            yield all_layers[i], work
        return
    work = copy.deepcopy(model)
    done = len(all_layers)  # layers with index >= done are already randomized
    for i in chosen:
        for j in range(done - 1, i - 1, -1):
            _reinitialize(work.get_submodule(all_layers[j]), _layer_seed(base, j), init)
        done = i
        yield all_layers[i], copy.deepcopy(work)


# ---- similarities and complexity -----------------------------------------------------------------
def _similarities(reference: Tensor, maps: Tensor) -> dict[str, Tensor]:
    """The four similarities ``[B]`` between paired maps. See :class:`MPRTResult`."""
    from smoothsal.metrics.similarity import spearman, ssim_maps, topk_iou

    out: dict[str, Tensor] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name, absolute in (("spearman_abs", True), ("spearman_signed", False)):
            rho = spearman(reference, maps, absolute=absolute)
            out[name] = torch.nan_to_num(rho, nan=0.0)
    if caught:
        warnings.warn(
            "a map is constant (e.g. all zeros after randomization); its Spearman correlation with the "
            "original is undefined and counted as 0 (no shared rank structure)",
            RuntimeWarning,
            stacklevel=3,
        )
    nan = torch.full((reference.shape[0],), float("nan"), dtype=reference.dtype, device=reference.device)
    is_image = reference.dim() in (3, 4) and min(reference.shape[-2:]) >= 11
    out["ssim"] = ssim_maps(reference, maps) if is_image else nan
    out["topk_iou"] = topk_iou(reference, maps) if reference.dim() in (3, 4) else nan
    return out


def discrete_entropy(attributions: Tensor, n_bins: int = ENTROPY_BINS) -> Tensor:
    r"""Discrete entropy of the histogram of a map's magnitudes, eMPRT's complexity (Hedström et al. 2023).

    .. math:: H = -\sum_{k=1}^{K} p_k \log p_k, \qquad p_k = \frac{\#\{i : |a_i| \in \text{bin}_k\}}{d}

    with :math:`K` equal bins over :math:`[0, \max_i |a_i|]` (so the value is scale-free), after
    summing :math:`|a|` over channels for ``[B, C, H, W]`` maps. A constant map has :math:`H = 0`;
    values spread evenly over the bins give :math:`\log K`.

    Args:
        attributions: ``[B, ...]`` maps. n_bins: :math:`K` (>= 2).
    Returns:
        ``[B]`` entropies in nats.

    Example:
        >>> discrete_entropy(torch.tensor([[0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0]]), n_bins=4)
        tensor([1.3863, 0.0000])
    """
    check_positive_int(n_bins, "n_bins", minimum=2)
    a = attributions.detach().abs().double()
    if a.dim() == 4:
        a = a.sum(dim=1)
    v = a.flatten(1)  # [B, d]
    top = v.amax(dim=1, keepdim=True)
    scaled = v / torch.where(top > 0, top, torch.ones_like(top))  # [0, 1]
    idx = (scaled * n_bins).long().clamp(max=n_bins - 1)  # [B, d] bin of each value
    counts = torch.zeros(v.shape[0], n_bins, dtype=torch.float64, device=v.device)
    counts.scatter_add_(1, idx, torch.ones_like(scaled))
    p = counts / v.shape[1]
    h = 0.0 - torch.xlogy(p, p).sum(dim=1)
    constant = (v.amax(dim=1) - v.amin(dim=1)) == 0
    return torch.where(constant, torch.zeros_like(h), h).float()


def _attribute(method: MethodFactory, model: nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
    explainer = method(model)
    if not callable(getattr(explainer, "attribute", None)):
        raise TypeError(
            f"`method(model)` must return an object with .attribute(inputs, target), got {type(explainer).__name__}"
        )
    return explainer.attribute(inputs, targets).detach()


def _original_maps(
    method: MethodFactory, model: nn.Module, x: Tensor, t: Tensor, original: Tensor | None
) -> Tensor:
    """Estimate (a) of the original model's maps: ``original`` when the caller has them, else computed."""
    if original is None:
        return _attribute(method, model, x, t)
    if original.shape[0] != x.shape[0]:
        raise ValueError(f"`original` must hold one map per input ({x.shape[0]}), got shape {tuple(original.shape)}")
    return original.detach().to(x.device)


def _reference(
    method: MethodFactory, second: MethodFactory | None, model: nn.Module, x: Tensor, t: Tensor, first: Tensor
) -> tuple[Tensor, Tensor, bool]:
    """``(second estimate of the original map, r [B], by_construction)``."""
    if second is None:
        return first, torch.ones(x.shape[0], dtype=first.dtype, device=first.device), True
    check_method_factory(second, "second_estimate")
    other = _attribute(second, model, x, t)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="a map is constant")
        r = _similarities(first, other)["spearman_abs"]
    return other, r, False


@dataclass
class MPRTResult:
    """Similarities of randomized-model maps to the original maps, with their reference.

    Attributes:
        layers: ``L`` layer names in the order randomized (top first).
        order: ``"cascading"`` or ``"independent"``.
        spearman_abs, spearman_signed, ssim, topk_iou: ``[L, B]`` similarities (Spearman of
            ``|map|`` / of the signed map, SSIM of rendered maps, top-k IoU; see
            :mod:`smoothsal.metrics.similarity`). A constant map counts as Spearman 0; SSIM is
            NaN for maps smaller than 11 × 11 or not images, top-k IoU NaN for non-images.
        targets: ``[B]`` classes explained (the original model's predictions by default).
        reference: ``[B]`` Spearman of ``|map|`` between two independent estimates of the original
            map (the noise floor's ceiling); ones when ``reference_by_construction``.
        reference_by_construction: the method is deterministic (no ``second_estimate``), so
            ``reference`` is 1 by construction, not measured.
        complexity_original, complexity_randomized: ``[B]`` :func:`discrete_entropy` of the
            original map and of the last checkpoint's map (fully randomized when the lowest layer
            is among ``layers``), for eMPRT.
        init: the re-initialisation used (:data:`INITS`).
    """

    layers: list[str]
    order: str
    spearman_abs: Tensor
    spearman_signed: Tensor
    ssim: Tensor
    topk_iou: Tensor
    targets: Tensor
    n_layers_total: int = field(default=0)
    reference: Tensor | None = None
    reference_by_construction: bool = True
    complexity_original: Tensor | None = None
    complexity_randomized: Tensor | None = None
    init: str = "default"

    def mean_similarity(self, metric: str = "spearman_abs") -> Tensor:
        """``[L]`` mean over inputs of one similarity (the original model is not included)."""
        check_choice(metric, "metric", SIMILARITY_METRICS)
        return getattr(self, metric).nanmean(dim=1)

    def per_image(self, metric: str = "spearman_abs") -> Tensor:
        """``[B]`` each image's similarity averaged over the checkpoints (:math:`s_i` of the rule)."""
        check_choice(metric, "metric", SIMILARITY_METRICS)
        return getattr(self, metric).nanmean(dim=0)

    @property
    def emprt(self) -> Tensor:
        """``[B]`` eMPRT ratios :math:`H(\\text{randomized}) / H(\\text{original})` (NaN where the
        original map's entropy is 0)."""
        if self.complexity_original is None or self.complexity_randomized is None:
            raise ValueError("this result holds no complexities (built before eMPRT was added)")
        h0 = self.complexity_original.double()
        return (self.complexity_randomized.double() / torch.where(h0 > 0, h0, torch.full_like(h0, float("nan")))).float()

    def summary(self) -> dict[str, list[float]]:
        """``{metric: [L] per-layer means}`` as plain floats (for JSON)."""
        return {m: self.mean_similarity(m).tolist() for m in SIMILARITY_METRICS}

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per layer (``layer``, ``position``, ``order`` and each metric's mean) for CSV."""
        means = self.summary()
        return [
            {"layer": name, "position": i, "order": self.order, **{m: means[m][i] for m in SIMILARITY_METRICS}}
            for i, name in enumerate(self.layers)
        ]


@dataclass
class DataRandomizationResult:
    """Similarities ``[B]`` between maps of a true-label and a random-label model (same inputs),
    with the reference ``[B]`` (two estimates of the true-label model's map; see :class:`MPRTResult`)."""

    spearman_abs: Tensor
    spearman_signed: Tensor
    ssim: Tensor
    topk_iou: Tensor
    targets: Tensor
    reference: Tensor | None = None
    reference_by_construction: bool = True

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
def model_parameter_randomization(
    method: MethodFactory,
    model: nn.Module,
    inputs: Tensor,
    targets: TargetSpec = None,
    *,
    order: str = "cascading",
    layers: Sequence[str] | None = None,
    seed: Seed = 0,
    init: str = "default",
    second_estimate: MethodFactory | None = None,
    original: Tensor | None = None,
) -> MPRTResult:
    r"""Model parameter randomization test (Adebayo et al. 2018, arXiv:1810.03292), with its reference.

    .. math:: s_l(x) = \operatorname{sim}\big(\Phi^{(a)}(f_\theta, x),\ \Phi^{(b)}(f_{\tilde\theta_l}, x)\big),
              \qquad r(x) = \operatorname{sim}\big(\Phi^{(a)}(f_\theta, x),\ \Phi^{(b)}(f_\theta, x)\big)

    for each randomized model :math:`f_{\tilde\theta_l}` of :func:`randomize_layers`.

    Args:
        method: factory ``model -> attribution method`` (a class such as ``VanillaGradient``, or
            ``lambda m: Smooth(VanillaGradient(m), noise_level=0.15, seed=0)``): estimate :math:`(a)`.
        model: the trained model; left untouched.
        inputs: ``[B, ...]`` (``[B, C, H, W]`` for SSIM / top-k IoU).
        targets: classes to explain; ``None`` = the *original* model's predictions, used for every
            randomized model too (the randomized model's argmax would change the question).
        order, layers, seed, init: see :func:`randomize_layers`.
        second_estimate: for a smoothed or sampled method, a factory of an *independent* estimate
            :math:`(b)` of the same map (the same method with another seed); it explains the
            randomized models and gives the reference :math:`r`. ``None`` = the method is
            deterministic: :math:`r = 1` by construction.
        original: the maps :math:`(a)` of ``method`` on the original ``model``, shaped like the
            method's output, when the caller already has them (the report card computes them once
            for all its sections); ``None`` = computed here.
    Returns:
        :class:`MPRTResult` with ``[L, B]`` similarities, one row per randomized model (the
        original model is not a row), the reference ``[B]`` and the complexities of eMPRT.
    """
    check_method_factory(method)
    check_inputs(inputs)
    check_choice(init, "init", INITS)
    x = inputs.detach()
    t = resolve_model_targets(model, x, targets)
    first = _original_maps(method, model, x, t, original)
    _, r, by_construction = _reference(method, second_estimate, model, x, t, first)
    explain = second_estimate if second_estimate is not None else method
    rows: dict[str, list[Tensor]] = {m: [] for m in SIMILARITY_METRICS}
    names = []
    last = first
    for name, randomized in randomize_layers(model, order=order, layers=layers, seed=seed, init=init):
        last = _attribute(explain, randomized, x, t)
        sims = _similarities(first, last)
        for m in SIMILARITY_METRICS:
            rows[m].append(sims[m])
        names.append(name)
        del randomized
    stacked = {m: torch.stack(v) for m, v in rows.items()}  # each [L, B]
    return MPRTResult(
        names, order, **stacked, targets=t, n_layers_total=len(randomizable_layers(model)), reference=r,
        reference_by_construction=by_construction, complexity_original=discrete_entropy(first),
        complexity_randomized=discrete_entropy(last), init=init,
    )  # fmt: skip


#: The second, independent estimate of a sampled map uses ``seed + SECOND_ESTIMATE_OFFSET``: far
#: from any seed a user would give the first estimate (the report card and sMPRT use the same rule).
SECOND_ESTIMATE_OFFSET = 1_000_003


def second_estimate_seed(seed: int, estimate: int = 1) -> int:
    """The seed of estimate ``estimate`` of a sampled map (0: ``seed`` itself; 1: the independent second)."""
    return int(seed) + SECOND_ESTIMATE_OFFSET * estimate


def _smoothed_factories(
    method: MethodFactory, noise_level: float, n_samples: int, seed: int, batch_size: int | None
) -> tuple[MethodFactory, MethodFactory]:
    from smoothsal.smoothing import Smooth

    def make(s: int) -> MethodFactory:
        return lambda m: Smooth(method(m), noise_level=noise_level, n_samples=n_samples, seed=s, batch_size=batch_size)

    return make(seed), make(second_estimate_seed(seed))


@metric("comparison", higher_is_better=False)
def smooth_model_parameter_randomization(
    method: MethodFactory,
    model: nn.Module,
    inputs: Tensor,
    targets: TargetSpec = None,
    *,
    noise_level: float = 0.1,
    n_samples: int = 50,
    order: str = "cascading",
    layers: Sequence[str] | None = None,
    seed: int = 0,
    init: str = "default",
    batch_size: int | None = None,
) -> MPRTResult:
    r"""smooth MPRT (sMPRT; Hedström et al. 2023, arXiv:2401.06465): MPRT of the explanation averaged
    over ``n_samples`` noisy copies of the input, for the original and every randomized model.

    .. math:: \bar\Phi(f, x) = \frac1N \sum_{j=1}^{N} \Phi(f, x + \epsilon_j), \quad
              \epsilon_j \sim \mathcal N(0, \sigma^2), \quad \sigma = \text{noise\_level}\,(x_{max} - x_{min})

    Averaging removes the noise that shattered gradients add to every map, noise that a raw MPRT
    reads as "the map changed". The smoothing is :class:`~smoothsal.smoothing.Smooth` (``seed`` for
    estimate :math:`(a)`, a derived seed for the independent estimate :math:`(b)`, so the result
    carries the measured reference of :func:`model_parameter_randomization`).
    """
    check_method_factory(method)
    check_positive_int(seed, "seed", minimum=0)
    a, b = _smoothed_factories(method, noise_level, n_samples, seed, batch_size)
    return model_parameter_randomization(a, model, inputs, targets, order=order, layers=layers, seed=seed, init=init,
                                         second_estimate=b)  # fmt: skip


@metric("comparison", higher_is_better=True)
def efficient_model_parameter_randomization(
    method: MethodFactory,
    model: nn.Module,
    inputs: Tensor,
    targets: TargetSpec = None,
    *,
    seed: Seed = 0,
    init: str = "default",
    second_estimate: MethodFactory | None = None,
) -> Tensor:
    r"""efficient MPRT (eMPRT; Hedström et al. 2023, arXiv:2401.06465): ``[B]`` ratios
    :math:`H(\Phi(f_{\tilde\theta}, x)) / H(\Phi(f_\theta, x))` of :func:`discrete_entropy` between
    the fully randomized model (every layer re-initialised at once) and the original. Higher is
    better: a map of the model should turn into noise; an edge detector keeps 1."""
    all_layers = randomizable_layers(model)
    res = model_parameter_randomization(method, model, inputs, targets, layers=[all_layers[0]], seed=seed,
                                        init=init, second_estimate=second_estimate)  # fmt: skip
    return res.emprt


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

    with :math:`f_{\theta_{\text{rand}}}` the same architecture trained on randomly permuted
    labels (``smoothsal.studies.train.TrainConfig(shuffle_labels=True)``). A method that explains what the
    model learned gives low similarity.

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
    explain = second_estimate if second_estimate is not None else method
    sims = _similarities(first, _attribute(explain, random_label_model, x, t))
    return DataRandomizationResult(**sims, targets=t, reference=r, reference_by_construction=by_construction)


# ---- verdicts -------------------------------------------------------------------------------------
def _reproducible(reference: Interval | None, by_construction: bool) -> bool:
    """The rule's precondition: a deterministic map, no reference (eMPRT), or the reference's
    interval above :data:`MIN_REFERENCE`."""
    return by_construction or reference is None or reference.low > MIN_REFERENCE


@dataclass
class SanityVerdict:
    """Outcome of a sanity check.

    Attributes:
        verdict: ``"pass"``, ``"fail"`` or ``"inconclusive"``.
        score: the statistic (retained similarity R, or the mean eMPRT ratio).
        interval: its bootstrap interval over images.
        reference: the reference's interval (``None`` for eMPRT); ``by_construction`` when it is 1
            because the method is deterministic.
        images_needed: for an inconclusive verdict, the images the interval would need (``None``
            where more images cannot help); ``n`` otherwise.
        reason: the numbers, in words.
    """

    verdict: str
    score: float
    interval: Interval
    reason: str
    reference: Interval | None = None
    by_construction: bool = False
    images_needed: int | None = None

    @property
    def reproducible(self) -> bool:
        """Whether the map is reproducible enough for the rule to apply: deterministic, or the
        reference's interval above :data:`MIN_REFERENCE` (``True`` for eMPRT, which has no reference)."""
        return _reproducible(self.reference, self.by_construction)


    @property
    def passed(self) -> bool | None:
        """``True`` / ``False``, or ``None`` when inconclusive."""
        return {"pass": True, "fail": False}.get(self.verdict)


def _check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold <= 1.0:
        raise ValueError(f"`threshold` must be a number in (0, 1], got {threshold!r}")
    return float(threshold)


def retained_similarity(
    similarity: Any, reference: Any, *, threshold: float = MPRT_THRESHOLD, by_construction: bool = False,
    seed: int = 0, what: str = "",
) -> SanityVerdict:  # fmt: skip
    r"""The rule of the module docstring on per-image :math:`s_i` and :math:`r_i` (1-D, paired).

    Used by :func:`sanity_verdict`, and by the report card on stored per-image values.
    """
    threshold = _check_threshold(threshold)
    s = torch.as_tensor(similarity, dtype=torch.float64).flatten()
    r = torch.as_tensor(reference, dtype=torch.float64).flatten()
    ref = bootstrap_interval(r, seed=seed)
    iv = bootstrap_interval(s, r, statistic=ratio_of_means, seed=seed)
    ref_text = "1 by construction (deterministic method)" if by_construction else f"{ref.format()}"
    head = f"retained similarity R = Σs/Σr = {iv.format()} over {iv.n} image(s){what}; reference r = {ref_text}"
    if iv.n < 2:
        v, need = "inconclusive", None
        why = f"{head}; one image gives no interval: inconclusive"
    elif not _reproducible(ref, by_construction):
        v, need = "inconclusive", None
        why = (f"{head}; two estimates of the same model's map barely agree (reference interval not above "
               f"{MIN_REFERENCE}): nothing measurable to destroy, inconclusive -- more samples per map needed, "
               "not more images")  # fmt: skip
    else:
        v = verdict(iv, threshold, pass_if="below")
        need = images_needed(iv, threshold)
        if v == "pass":
            why = f"{head}; interval below {threshold}: passes, the maps change"
        elif v == "fail":
            why = f"{head}; interval at or above {threshold}: fails, the maps stay similar"
        else:
            more = f"≈ {need} images would separate it" if need is not None else "more images cannot separate it"
            why = f"{head}; interval contains {threshold}: inconclusive ({more})"
    return SanityVerdict(v, iv.estimate, iv, why, ref, by_construction, need)


def sanity_verdict(
    result: MPRTResult | DataRandomizationResult, threshold: float = MPRT_THRESHOLD, metric: str = "spearman_abs",
    *, seed: int = 0,
) -> SanityVerdict:  # fmt: skip
    r"""Pass / fail / inconclusive by the rule fixed in the module docstring (retained similarity
    :math:`R = \sum_i s_i / \sum_i r_i` against ``threshold``, with its bootstrap 95 % interval).

    * cascading or independent MPRT: :math:`s_i` = image :math:`i`'s similarity averaged over the
      checkpoints (the normalised area under the similarity-vs-depth curve);
    * data randomization: :math:`s_i` between the true-label and the random-label model.

    An input-only edge detector keeps :math:`R = 1` and fails; a pure-noise map is inconclusive.

    Args:
        result: from :func:`model_parameter_randomization` or :func:`data_randomization`.
        threshold: in (0, 1] (default :data:`MPRT_THRESHOLD`, fixed before the data).
        metric: one of :data:`SIMILARITY_METRICS` for :math:`s_i` (the reference is always the
            Spearman of ``|map|``, so keep the default unless you know why).
        seed: seed of the bootstrap.
    """
    check_choice(metric, "metric", SIMILARITY_METRICS)
    _check_threshold(threshold)
    if isinstance(result, MPRTResult):
        s = result.per_image(metric)
        where = f" ({result.order} MPRT, {len(result.layers)} checkpoint(s) down to {result.layers[-1]!r}, init {result.init})"
    elif isinstance(result, DataRandomizationResult):
        s = result.per_image(metric)
        where = " (true-label vs random-label model)"
    else:
        raise TypeError(f"`result` must be an MPRTResult or DataRandomizationResult, got {type(result).__name__}")
    if bool(torch.isnan(s).all()):
        raise ValueError(f"`metric` {metric!r} is undefined (NaN) for these maps; use 'spearman_abs'")
    r = result.reference if result.reference is not None else torch.ones_like(s)
    return retained_similarity(s, r, threshold=threshold, by_construction=result.reference_by_construction,
                               seed=seed, what=where)  # fmt: skip


def emprt_verdict(ratios: Any, *, seed: int = 0) -> SanityVerdict:
    """eMPRT's rule (module docstring): the mean ratio over images, pass when its interval lies above
    :data:`EMPRT_THRESHOLD` (complexity rises), fail when at or below it."""
    x = torch.as_tensor(ratios, dtype=torch.float64).flatten()
    iv = bootstrap_interval(x, seed=seed)
    v = verdict(iv, EMPRT_THRESHOLD, pass_if="above")
    need = images_needed(iv, EMPRT_THRESHOLD)
    head = f"mean eMPRT ratio H(randomized)/H(original) = {iv.format()} over {iv.n} image(s)"
    tail = {"pass": "complexity rises: passes", "fail": "complexity does not rise: fails"}.get(v)
    if tail is None:
        tail = f"interval contains 1: inconclusive ({f'≈ {need} images would separate it' if need else 'more images cannot separate it'})"
    return SanityVerdict(v, iv.estimate, iv, f"{head}; {tail}", None, False, need)

