r"""Sanity checks for saliency maps (Adebayo et al. 2018, "Sanity Checks for Saliency Maps",
arXiv:1810.03292): a map that explains the *model* must change when the model is destroyed.

* **Model parameter randomization test** (MPRT). The weights are re-initialised layer by
  layer -- *cascading*: from the top (logits) layer down, cumulatively; *independent*: one layer at
  a time -- and the map :math:`\Phi(f_{\tilde\theta_l}, x)` of each randomized model is compared
  with the original :math:`\Phi(f_\theta, x)`:

  .. math:: s_l(x) = \operatorname{sim}\big(\Phi(f_\theta, x),\ \Phi(f_{\tilde\theta_l}, x)\big),
            \qquad l = L, L-1, \dots, 1

  by Spearman rank correlation of the absolute and of the signed maps, SSIM and top-k IoU
  (:mod:`smoothsal.metrics.similarity`). The original model is never part of the averages
  (Quantus averages it in as a "layer" with similarity 1) and is left untouched: every
  randomized model is a deep copy.
* **Data randomization test**: the same similarities between the maps of a model trained
  on the true labels and one trained on randomly permuted labels.
* :func:`sanity_verdict`: a method *fails* when its maps stay similar after the weights (or
  labels) are scrambled -- an edge detector that ignores the model keeps similarity 1 and fails.

Re-initialisation of one layer (seeded; the same ``seed`` gives the same random weights, and a
layer gets the same weights in cascading and independent order):

* a layer with ``reset_parameters()`` (``Conv*``, ``Linear``, ...) calls it, i.e. PyTorch's own
  default initialisation (Kaiming-uniform weights, uniform biases), under a seed derived from
  ``(seed, layer index)``; the global RNG state is saved and restored around it;
* normalisation layers (``BatchNorm*``, ``GroupNorm``, ``LayerNorm``, ``InstanceNorm*``) get
  their affine weight and bias drawn from :math:`\mathcal N(0, 1)` and **keep their running
  statistics**. Their own ``reset_parameters()`` would set :math:`\gamma = 1, \beta = 0` (an
  identity that passes the trained signal through unchanged, so nothing is randomized) and reset
  the running mean/variance to 0/1 (which rescales activations by orders of magnitude and conflates
  "random" with "numerically broken"). Random normal :math:`\gamma, \beta` scramble every
  channel's learned scale and shift at the scale of a normalised activation, as Adebayo et al.
  re-initialise all learned weights; the running statistics are data statistics, not weights;
* any other module with parameters: Kaiming-normal (fan-in) for tensors of rank >= 2,
  :math:`\mathcal N(0, 1)` for the rest.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import torch
from torch import Tensor, nn

from smoothsal._validation import (
    TargetSpec,
    check_choice,
    check_inputs,
    check_positive_int,
)
from smoothsal._model import resolve_model_targets
from smoothsal.metrics._base import check_method_factory, metric

__all__ = [
    "SIMILARITY_METRICS",
    "DataRandomizationResult",
    "MPRTResult",
    "SanityVerdict",
    "data_randomization",
    "model_parameter_randomization",
    "randomizable_layers",
    "randomize_layers",
    "sanity_verdict",
    "spaced_layers",
]

Seed = Union[int, torch.Generator]
MethodFactory = Callable[[nn.Module], Any]

#: the similarity measures every result holds, each ``[L, B]`` (MPRT) or ``[B]`` (data).
SIMILARITY_METRICS: tuple[str, ...] = ("spearman_abs", "spearman_signed", "ssim", "topk_iou")

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


def _reinitialize(module: nn.Module, seed: int) -> None:
    """Re-initialise ``module``'s own parameters in place (see the module docstring), seeded."""
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
    """
    check_choice(order, "order", ("cascading", "independent"))
    all_layers = randomizable_layers(model)
    chosen = _select_layers(layers, all_layers)
    base = _base_seed(seed)
    if order == "independent":
        for i in chosen:
            work = copy.deepcopy(model)
            _reinitialize(work.get_submodule(all_layers[i]), _layer_seed(base, i))
            yield all_layers[i], work
        return
    work = copy.deepcopy(model)
    done = len(all_layers)  # layers with index >= done are already randomized
    for i in chosen:
        for j in range(done - 1, i - 1, -1):
            _reinitialize(work.get_submodule(all_layers[j]), _layer_seed(base, j))
        done = i
        yield all_layers[i], copy.deepcopy(work)


# ---- similarities ---------------------------------------------------------------------------------
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


def _attribute(method: MethodFactory, model: nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
    explainer = method(model)
    if not callable(getattr(explainer, "attribute", None)):
        raise TypeError(
            f"`method(model)` must return an object with .attribute(inputs, target), got {type(explainer).__name__}"
        )
    return explainer.attribute(inputs, targets).detach()


@dataclass
class MPRTResult:
    """Similarities of randomized-model maps to the original maps.

    Attributes:
        layers: ``L`` layer names in the order randomized (top first).
        order: ``"cascading"`` or ``"independent"``.
        spearman_abs, spearman_signed, ssim, topk_iou: ``[L, B]`` similarities (Spearman of
            ``|map|`` / of the signed map, SSIM of rendered maps, top-k IoU; see
            :mod:`smoothsal.metrics.similarity`). A constant map counts as Spearman 0; SSIM is
            NaN for maps smaller than 11 × 11 or not images, top-k IoU NaN for non-images.
        targets: ``[B]`` classes explained (the original model's predictions by default).
    """

    layers: list[str]
    order: str
    spearman_abs: Tensor
    spearman_signed: Tensor
    ssim: Tensor
    topk_iou: Tensor
    targets: Tensor
    n_layers_total: int = field(default=0)

    def mean_similarity(self, metric: str = "spearman_abs") -> Tensor:
        """``[L]`` mean over inputs of one similarity (the original model is not included)."""
        check_choice(metric, "metric", SIMILARITY_METRICS)
        return getattr(self, metric).nanmean(dim=1)

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
    """Similarities ``[B]`` between maps of a true-label and a random-label model (same inputs)."""

    spearman_abs: Tensor
    spearman_signed: Tensor
    ssim: Tensor
    topk_iou: Tensor
    targets: Tensor

    def mean_similarity(self, metric: str = "spearman_abs") -> Tensor:
        """Scalar mean over inputs of one similarity."""
        check_choice(metric, "metric", SIMILARITY_METRICS)
        return getattr(self, metric).nanmean()

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
) -> MPRTResult:
    r"""Model parameter randomization test (Adebayo et al. 2018, arXiv:1810.03292).

    .. math:: s_l(x) = \operatorname{sim}\big(\Phi(f_\theta, x),\ \Phi(f_{\tilde\theta_l}, x)\big)

    for each randomized model :math:`f_{\tilde\theta_l}` of :func:`randomize_layers`.

    Args:
        method: factory ``model -> attribution method`` (a class such as ``VanillaGradient``, or
            ``lambda m: Smooth(VanillaGradient(m), noise_level=0.15)``).
        model: the trained model; left untouched.
        inputs: ``[B, ...]`` (``[B, C, H, W]`` for SSIM / top-k IoU).
        targets: classes to explain; ``None`` = the *original* model's predictions, used for every
            randomized model too (the randomized model's argmax would change the question).
        order, layers, seed: see :func:`randomize_layers`.
    Returns:
        :class:`MPRTResult` with ``[L, B]`` similarities, one row per randomized model (the
        original model is not a row).
    """
    check_method_factory(method)
    check_inputs(inputs)
    x = inputs.detach()
    t = resolve_model_targets(model, x, targets)
    reference = _attribute(method, model, x, t)
    rows: dict[str, list[Tensor]] = {m: [] for m in SIMILARITY_METRICS}
    names = []
    for name, randomized in randomize_layers(model, order=order, layers=layers, seed=seed):
        sims = _similarities(reference, _attribute(method, randomized, x, t))
        for m in SIMILARITY_METRICS:
            rows[m].append(sims[m])
        names.append(name)
        del randomized
    stacked = {m: torch.stack(v) for m, v in rows.items()}  # each [L, B]
    return MPRTResult(names, order, **stacked, targets=t, n_layers_total=len(randomizable_layers(model)))


@metric("comparison", higher_is_better=False)
def data_randomization(
    method: MethodFactory,
    model: nn.Module,
    random_label_model: nn.Module,
    inputs: Tensor,
    targets: TargetSpec = None,
) -> DataRandomizationResult:
    r"""Data randomization test (Adebayo et al. 2018, arXiv:1810.03292).

    .. math:: s(x) = \operatorname{sim}\big(\Phi(f_{\theta}, x),\ \Phi(f_{\theta_{\text{rand}}}, x)\big)

    with :math:`f_{\theta_{\text{rand}}}` the same architecture trained on randomly permuted
    labels (``smoothsal.studies.train.TrainConfig(shuffle_labels=True)``). A method that explains what the
    model learned gives low similarity.

    Args:
        method: factory ``model -> attribution method``.
        model: trained on the true labels.
        random_label_model: trained on shuffled labels, same input space and classes.
        inputs: ``[B, ...]``.
        targets: ``None`` = the true-label model's predictions, explained in both models.
    Returns:
        :class:`DataRandomizationResult` with ``[B]`` similarities.
    """
    check_method_factory(method)
    check_inputs(inputs)
    if not isinstance(random_label_model, nn.Module):
        raise TypeError(f"`random_label_model` must be a torch.nn.Module, got {type(random_label_model).__name__}")
    x = inputs.detach()
    t = resolve_model_targets(model, x, targets)
    sims = _similarities(_attribute(method, model, x, t), _attribute(method, random_label_model, x, t))
    return DataRandomizationResult(**sims, targets=t)


@dataclass
class SanityVerdict:
    """Outcome of a sanity check: ``passed``, the ``score`` it rests on, and why (with numbers)."""

    passed: bool
    score: float
    reason: str


def sanity_verdict(
    result: MPRTResult | DataRandomizationResult, threshold: float = 0.5, metric: str = "spearman_abs"
) -> SanityVerdict:
    r"""Pass/fail: a method fails when its maps stay similar after the weights are scrambled.

    The score is the absolute mean similarity (default: Spearman of ``|map|``)

    * cascading MPRT: averaged over the cascade's checkpoints, i.e. the normalised area under
      Adebayo et al.'s similarity-vs-depth curve. Only the fully randomized end would let a method
      pass that ignores its top layers until the lowest ones are scrambled too (Guided Backprop
      keeps similarity ≈ 1 after the classifier is re-initialised, their Fig. 2); with checkpoints
      spaced over the depth (:func:`spaced_layers`) the mean weighs every depth alike;
    * independent MPRT: averaged over the layers (each layer's mean, then the mean of those);
    * data randomization: over the inputs,

    and the method **passes** when :math:`|\bar s| <` ``threshold``. An input-only edge detector
    keeps :math:`\bar s = 1` and fails.

    Args:
        result: from :func:`model_parameter_randomization` or :func:`data_randomization`.
        threshold: in (0, 1].
        metric: one of :data:`SIMILARITY_METRICS`.
    """
    check_choice(metric, "metric", SIMILARITY_METRICS)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold <= 1.0:
        raise ValueError(f"`threshold` must be a number in (0, 1], got {threshold!r}")
    if isinstance(result, MPRTResult):
        per_layer = result.mean_similarity(metric)  # [L]
        trail = ", ".join(f"{v:.3f}" for v in per_layer.tolist()[:3])
        trail += ", ..." if len(per_layer) > 4 else ""
        trail += f", {per_layer[-1]:.3f}" if len(per_layer) > 3 else ""
        if result.order == "cascading":
            score = abs(float(per_layer.nanmean()))
            where = (
                f"averaged over {len(result.layers)} cascade checkpoint(s) from the top down to "
                f"{result.layers[-1]!r} (top first: {trail})"
            )
        else:
            score = abs(float(per_layer.nanmean()))
            where = f"averaged over {len(result.layers)} independently randomized layer(s) ({trail})"
    elif isinstance(result, DataRandomizationResult):
        score = abs(float(result.mean_similarity(metric)))
        where = "between the true-label and the random-label model"
    else:
        raise TypeError(f"`result` must be an MPRTResult or DataRandomizationResult, got {type(result).__name__}")
    if score != score:
        raise ValueError(f"`metric` {metric!r} is undefined (NaN) for these maps; use 'spearman_abs'")
    passed = score < threshold
    verdict = "passes: the maps change" if passed else "fails: the maps stay similar"
    reason = f"|mean {metric}| = {score:.3f} {'<' if passed else '>='} {threshold} {where}; {verdict}"
    return SanityVerdict(passed, score, reason)
