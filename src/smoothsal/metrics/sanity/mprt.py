r"""The model parameter randomization test (MPRT, Adebayo et al. 2018, arXiv:1810.03292) and its smooth
and efficient variants (sMPRT, eMPRT; Hedström et al. 2023, arXiv:2401.06465); see
:mod:`smoothsal.metrics.sanity`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from smoothsal._core.validation import TargetSpec, check_choice, check_inputs, check_positive_int
from smoothsal.execution.calls import resolve_model_targets
from smoothsal.execution.memory import MemorySpec
from smoothsal.metrics._base import check_method_factory, metric
from smoothsal.metrics.sanity.compare import (
    SIMILARITY_METRICS,
    MethodFactory,
    _original_maps,
    _randomized_maps,
    _reference,
    _similarities,
)
from smoothsal.metrics.sanity.entropy import discrete_entropy
from smoothsal.metrics.sanity.layers import INITS, Seed, randomizable_layers, randomize_layers

__all__ = [
    "SECOND_ESTIMATE_OFFSET",
    "MPRTResult",
    "efficient_model_parameter_randomization",
    "model_parameter_randomization",
    "mprt_over_seeds",
    "second_estimate_seed",
    "smooth_model_parameter_randomization",
]


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
            ``reference`` and ``randomized_reference`` are 1 by construction, not measured.
        randomized_reference: ``[L, B]`` :math:`\\tilde r_l`: Spearman of ``|map|`` between two
            independent estimates of each randomized model's map (its own reproducibility; the
            repaired rule's second correction, :mod:`smoothsal.metrics.sanity.verdicts`); ``None``
            when by construction.
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
    randomized_reference: Tensor | None = None

    def mean_similarity(self, metric: str = "spearman_abs") -> Tensor:
        """``[L]`` mean over inputs of one similarity (the original model is not included)."""
        check_choice(metric, "metric", SIMILARITY_METRICS)
        return getattr(self, metric).nanmean(dim=1)

    def per_image(self, metric: str = "spearman_abs") -> Tensor:
        """``[B]`` each image's similarity averaged over the checkpoints (:math:`s_i` of the rule)."""
        check_choice(metric, "metric", SIMILARITY_METRICS)
        return getattr(self, metric).nanmean(dim=0)

    def per_image_randomized_reference(self) -> Tensor:
        """``[B]`` each image's :math:`\\tilde r` averaged over the checkpoints, as :meth:`per_image`
        averages :math:`s` (ones when the method is deterministic)."""
        if self.randomized_reference is None:
            return torch.ones(self.spearman_abs.shape[1], dtype=self.spearman_abs.dtype)
        return self.randomized_reference.nanmean(dim=0)

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
              \qquad r(x) = \operatorname{sim}\big(\Phi^{(a)}(f_\theta, x),\ \Phi^{(b)}(f_\theta, x)\big),
              \qquad \tilde r_l(x) = \operatorname{sim}\big(\Phi^{(a)}(f_{\tilde\theta_l}, x),\ \Phi^{(b)}(f_{\tilde\theta_l}, x)\big)

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
            randomized models and gives the reference :math:`r`; ``method`` explains each randomized
            model a second time for :math:`\tilde r_l` (twice the randomized models' cost). ``None``
            = the method is deterministic: :math:`r = \tilde r = 1` by construction.
        original: the maps :math:`(a)` of ``method`` on the original ``model``, shaped like the
            method's output, when the caller already has them (the report card computes them once
            for all its sections); ``None`` = computed here.
    Returns:
        :class:`MPRTResult` with ``[L, B]`` similarities, one row per randomized model (the
        original model is not a row), the reference ``[B]`` and the complexities of eMPRT.
    """
    return _mprt_runs(method, model, inputs, targets, [seed], order=order, layers=layers, init=init,
                      second_estimate=second_estimate, original=original)[0]  # fmt: skip


def mprt_over_seeds(
    method: MethodFactory,
    model: nn.Module,
    inputs: Tensor,
    targets: TargetSpec = None,
    *,
    seeds: Sequence[int],
    order: str = "cascading",
    layers: Sequence[str] | None = None,
    init: str = "default",
    second_estimate: MethodFactory | None = None,
    original: Tensor | None = None,
    reference: Tensor | None = None,
) -> list[MPRTResult]:
    """:func:`model_parameter_randomization` under several re-initialisation seeds, on the same images.

    The randomization is itself random: one seed's verdict treats that draw as fixed. Judged
    together (:func:`~smoothsal.metrics.sanity.sanity_verdict` resamples seeds and images), the
    seeds' spread enters the interval. The original maps :math:`(a)` and their reference :math:`r`
    are computed once and shared (they do not depend on the seed), so ``S`` seeds cost one
    original pass plus ``S`` cascades; result ``k`` equals ``model_parameter_randomization(...,
    seed=seeds[k])`` exactly.

    Args:
        seeds: one or more distinct non-negative ints, the re-initialisation seeds.
        method, model, inputs, targets, order, layers, init, second_estimate, original: as
            :func:`model_parameter_randomization`.
        reference: :math:`r` ``[B]`` when the caller has it (with ``second_estimate``; e.g.
            :func:`~smoothsal.metrics.sanity.compare.map_reproducibility` of ``original`` and a
            second estimate, recorded by a resumable run): the second estimate on the original
            model is then not computed.
    Returns:
        one :class:`MPRTResult` per seed, in the order of ``seeds``.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("`seeds` must hold at least one seed, got an empty sequence")
    for s in seeds:
        check_positive_int(s, "seeds", minimum=0)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"`seeds` must be distinct (a repeated seed repeats the same draw), got {seeds}")
    return _mprt_runs(method, model, inputs, targets, seeds, order=order, layers=layers, init=init,
                      second_estimate=second_estimate, original=original, reference=reference)  # fmt: skip


def _mprt_runs(
    method: MethodFactory, model: nn.Module, inputs: Tensor, targets: TargetSpec, seeds: Sequence[Seed], *,
    order: str, layers: Sequence[str] | None, init: str, second_estimate: MethodFactory | None, original: Tensor | None,
    reference: Tensor | None = None,
) -> list[MPRTResult]:  # fmt: skip
    """The original maps and reference once, then one cascade per seed."""
    check_method_factory(method)
    check_inputs(inputs)
    check_choice(init, "init", INITS)
    x = inputs.detach()
    t = resolve_model_targets(model, x, targets)
    first = _original_maps(method, model, x, t, original)
    if reference is not None and second_estimate is not None:
        r, by_construction = reference.detach().to(first.device, first.dtype).reshape(-1), False
        if r.shape[0] != x.shape[0]:
            raise ValueError(f"`reference` must hold one value per input ({x.shape[0]}), got shape {tuple(reference.shape)}")
    else:
        _, r, by_construction = _reference(method, second_estimate, model, x, t, first)
    return [_cascade(method, second_estimate, model, x, t, first, r, by_construction, order, layers, seed, init)
            for seed in seeds]  # fmt: skip


def _cascade(
    method: MethodFactory, second_estimate: MethodFactory | None, model: nn.Module, x: Tensor, t: Tensor,
    first: Tensor, r: Tensor, by_construction: bool, order: str, layers: Sequence[str] | None, seed: Seed, init: str,
) -> MPRTResult:  # fmt: skip
    """One seed's randomized models, compared with the original maps ``first``."""
    rows: dict[str, list[Tensor]] = {m: [] for m in SIMILARITY_METRICS}
    own: list[Tensor] = []  # r̃_l of each checkpoint (sampled methods)
    names = []
    last = first
    for name, randomized in randomize_layers(model, order=order, layers=layers, seed=seed, init=init):
        last, r_tilde = _randomized_maps(method, second_estimate, randomized, x, t)
        sims = _similarities(first, last)
        for m in SIMILARITY_METRICS:
            rows[m].append(sims[m])
        if r_tilde is not None:
            own.append(r_tilde)
        names.append(name)
        del randomized
    stacked = {m: torch.stack(v) for m, v in rows.items()}  # each [L, B]
    return MPRTResult(
        names, order, **stacked, targets=t, n_layers_total=len(randomizable_layers(model)), reference=r,
        reference_by_construction=by_construction, complexity_original=discrete_entropy(first),
        complexity_randomized=discrete_entropy(last), init=init,
        randomized_reference=torch.stack(own) if own else None,
    )  # fmt: skip


#: The second, independent estimate of a sampled map uses ``seed + SECOND_ESTIMATE_OFFSET``: far
#: from any seed a user would give the first estimate (the report card and sMPRT use the same rule).
SECOND_ESTIMATE_OFFSET = 1_000_003


def second_estimate_seed(seed: int, estimate: int = 1) -> int:
    """The seed of estimate ``estimate`` of a sampled map (0: ``seed`` itself; 1: the independent second)."""
    return int(seed) + SECOND_ESTIMATE_OFFSET * estimate


def _smoothed_factories(
    method: MethodFactory, noise_level: float, n_samples: int, seed: int, batch_size: int | None,
    max_memory: MemorySpec = None,
) -> tuple[MethodFactory, MethodFactory]:
    from smoothsal.smoothing import Smooth

    def make(s: int) -> MethodFactory:
        return lambda m: Smooth(method(m), noise_level=noise_level, n_samples=n_samples, seed=s, batch_size=batch_size,
                                max_memory=max_memory)  # fmt: skip

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
    max_memory: MemorySpec = None,
) -> MPRTResult:
    r"""smooth MPRT (sMPRT; Hedström et al. 2023, arXiv:2401.06465): MPRT of the explanation averaged
    over ``n_samples`` noisy copies of the input, for the original and every randomized model.

    .. math:: \bar\Phi(f, x) = \frac1N \sum_{j=1}^{N} \Phi(f, x + \epsilon_j), \quad
              \epsilon_j \sim \mathcal N(0, \sigma^2), \quad \sigma = \text{noise\_level}\,(x_{max} - x_{min})

    Averaging removes the noise that shattered gradients add to every map, noise that a raw MPRT
    reads as "the map changed". The smoothing is :class:`~smoothsal.smoothing.Smooth` (``seed`` for
    estimate :math:`(a)`, a derived seed for the independent estimate :math:`(b)`, so the result
    carries the measured reference of :func:`model_parameter_randomization`). ``batch_size``
    (most model rows per call; ``None``: learned under the memory budget ``max_memory``) goes to
    the :class:`~smoothsal.smoothing.Smooth` of every model; it never changes the result.
    """
    check_method_factory(method)
    check_positive_int(seed, "seed", minimum=0)
    a, b = _smoothed_factories(method, noise_level, n_samples, seed, batch_size, max_memory)
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
