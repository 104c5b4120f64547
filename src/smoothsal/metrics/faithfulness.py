r"""Faithfulness: does the map point at what the model actually uses? Batched, functional, torch.

Every metric perturbs the inputs where the map says they matter and watches the model's score
of the target class. Perturbations are built with index masks over *units* -- pixels (all
channels together) or ``patch × patch`` patches of images ``[B, C, H, W]``, or single features of
non-image inputs ``[B, D, ...]`` -- and every model call scores a whole batch of perturbed
inputs at once; there are no per-pixel Python loops.

* :func:`deletion_curve` / :func:`insertion_curve` and their :func:`auc` (Samek et al. 2017,
  arXiv:1509.06321, "most relevant first" region perturbation; Petsiuk et al. 2018,
  arXiv:1806.07421, RISE deletion/insertion).
* :func:`faithfulness_correlation` (Bhatt et al. 2020, arXiv:2005.00631).
* :func:`monotonicity` (Nguyen & Martínez 2020, arXiv:2007.07584).
* :func:`infidelity` and :func:`max_sensitivity` (Yeh et al. 2019, arXiv:1901.09392).

Scores. ``score="prob"`` is the softmax probability of the target class, ``"logit"`` its logit.
The curves default to probabilities (as Petsiuk et al.); the correlation-type metrics default to
logits, the quantity gradient attributions explain, so that an exact attribution of a linear
model scores exactly 1 (or 0 infidelity).

Units and their relevance. For images the attribution ``[B, C, H, W]``, ``[B, 1, H, W]`` or
``[B, H, W]`` is reduced to one value per pixel -- ``rank_by="abs"``: :math:`\sum_c |a_c|`;
``"signed"``: :math:`\sum_c a_c` -- and summed over each patch (patches at the right/bottom
border may be smaller when ``patch`` does not divide ``H``/``W``). Ties in the ranking are broken
in favour of the earlier unit (row-major), deterministically.

Baselines (what a removed unit becomes): ``"black"`` (zeros), ``"blur"`` (the input blurred by
:func:`smoothsal.methods.baselines.gaussian_blur`, σ = max(H, W)/10), ``"mean"`` (each sample's
per-channel mean over the image; for non-images the mean over its features), a number, a tensor
broadcastable to the inputs, or a callable ``inputs -> tensor`` (see
:func:`smoothsal.methods.baselines.make_baseline`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

import torch
from torch import Tensor, nn

from smoothsal._core.validation import (
    TargetSpec,
    check_choice,
    check_inputs,
    check_logits,
    check_nonnegative,
    check_positive_int,
    resolve_targets,
)
from smoothsal.execution.calls import forward_rows, predict
from smoothsal.execution.guard import preserve_model
from smoothsal.execution.memory import MemorySpec
from smoothsal.methods.base import model_of
from smoothsal.methods.baselines import BaselineSpec, make_baseline
from smoothsal.metrics._base import metric
from smoothsal.noise import make_generator

__all__ = [
    "PerturbationCurve",
    "auc",
    "deletion_auc",
    "deletion_curve",
    "faithfulness_correlation",
    "infidelity",
    "insertion_auc",
    "insertion_curve",
    "max_sensitivity",
    "monotonicity",
]

Seed = Union[int, torch.Generator]
FaithBaseline = Union[BaselineSpec, str]

_SCORES = ("prob", "logit")
_ORDERS = ("morf", "lerf")
_RANK_BY = ("abs", "signed")


@dataclass
class PerturbationCurve:
    """A deletion or insertion curve for a batch.

    Attributes:
        fractions: ``[S + 1]`` share of units removed (deletion) or inserted (insertion), 0 to 1.
        scores: ``[B, S + 1]`` target score at each step (``scores[:, 0]`` is the unperturbed
            input for deletion, the baseline for insertion).
        kind: ``"deletion"`` or ``"insertion"``.
        order: ``"morf"`` (most relevant first) or ``"lerf"`` (least relevant first).
        score: ``"prob"`` or ``"logit"``.
    """

    fractions: Tensor
    scores: Tensor
    kind: str
    order: str
    score: str

    def auc(self) -> Tensor:
        """``[B]`` area under the curve (see :func:`auc`)."""
        return auc(self)


# ---- shared helpers ---------------------------------------------------------------------------
def _check_model(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _target_score(logits: Tensor, targets: Tensor, score: str) -> Tensor:
    """``[N, classes]`` logits -> ``[N]`` score of each row's target."""
    values = logits.softmax(dim=1) if score == "prob" else logits
    return values.gather(1, targets[:, None])[:, 0]


def _forward_scores(
    model: nn.Module, x: Tensor, targets: Tensor, score: str, batch_size: int | None = None, max_memory: MemorySpec = None
) -> Tensor:
    """Target scores ``[N]`` of ``x`` ``[N, ...]`` (no gradient, in calls of ``batch_size`` rows)."""
    return _target_score(predict(model, x, batch_size=batch_size, max_memory=max_memory), targets, score)


def _resolve(
    model: nn.Module, inputs: Tensor, targets: TargetSpec, score: str, batch_size: int | None = None,
    max_memory: MemorySpec = None,
) -> tuple[Tensor, Tensor]:
    """Targets ``[B]`` (``None`` -> predicted class) and the clean scores ``[B]``: one forward pass."""
    logits = predict(model, inputs, batch_size=batch_size, max_memory=max_memory)
    t = resolve_targets(targets, logits)
    return t, _target_score(logits, t, score)


def _make_baseline(spec: FaithBaseline, inputs: Tensor, seed: Seed = 0) -> Tensor:
    """``[B, ...]`` baseline for ``inputs``; adds ``"mean"`` to :func:`make_baseline`'s specs."""
    if isinstance(spec, str) and spec == "mean":
        dims = tuple(range(2, inputs.dim())) if inputs.dim() == 4 else tuple(range(1, inputs.dim()))
        return inputs.mean(dim=dims, keepdim=True).expand_as(inputs).clone()
    try:
        return make_baseline(spec, inputs, seed=seed)
    except ValueError as err:
        if isinstance(spec, str):
            raise ValueError(
                f"`baseline` must be 'black', 'blur', 'mean', 'uniform', a number, a tensor or a callable, "
                f"got {spec!r}"
            ) from err
        raise


@dataclass
class _Units:
    """The units a metric perturbs: relevance ``[B, U]`` and a map ``mask [N, U] -> [N, *mask_shape]``."""

    relevance: Tensor
    n_units: int
    expand: Callable[[Tensor], Tensor]


def _check_attributions(inputs: Tensor, attributions: Tensor) -> Tensor:
    check_inputs(attributions, name="attributions")
    b = inputs.shape[0]
    if inputs.dim() == 4:
        _, _, h, w = inputs.shape
        allowed = [tuple(inputs.shape), (b, 1, h, w), (b, h, w)]
        if tuple(attributions.shape) not in allowed:
            raise ValueError(
                f"`attributions` must have shape {allowed[0]}, {allowed[1]} or {allowed[2]} to match the "
                f"inputs {tuple(inputs.shape)}, got {tuple(attributions.shape)}"
            )
    elif attributions.shape != inputs.shape:
        raise ValueError(
            f"`attributions` must have the inputs' shape {tuple(inputs.shape)}, got {tuple(attributions.shape)}"
        )
    return attributions


def _units(inputs: Tensor, attributions: Tensor, patch: int, rank_by: str) -> _Units:
    """Pixels/patches of images, or features of other inputs, with their summed relevance."""
    check_positive_int(patch, "patch")
    _check_attributions(inputs, attributions)
    a = attributions.detach().to(inputs.dtype)
    if inputs.dim() != 4:
        if patch != 1:
            raise ValueError(f"`patch` must be 1 for non-image inputs of shape {tuple(inputs.shape)}, got {patch}")
        rel = (a.abs() if rank_by == "abs" else a).reshape(a.shape[0], -1)  # [B, D]
        feature_shape = inputs.shape[1:]
        return _Units(rel, rel.shape[1], lambda m: m.reshape(m.shape[0], *feature_shape))
    b, _, h, w = inputs.shape
    if patch > min(h, w):
        raise ValueError(f"`patch` must be <= the image size min(H, W) = {min(h, w)}, got {patch}")
    if a.dim() == 4:
        pixel = a.abs().sum(dim=1) if rank_by == "abs" else a.sum(dim=1)  # [B, H, W]
    else:
        pixel = a.abs() if rank_by == "abs" else a
    if patch > 1:
        # sum-pool: [B, 1, H, W] -> [B, 1, gh, gw], partial patches at the border included
        pixel = torch.nn.functional.avg_pool2d(
            pixel[:, None], patch, stride=patch, ceil_mode=True, divisor_override=1
        )[:, 0]
    gh, gw = pixel.shape[-2:]

    def expand(m: Tensor) -> Tensor:
        # [N, gh * gw] -> [N, 1, H, W]
        grid = m.reshape(m.shape[0], gh, gw)
        if patch > 1:
            grid = grid.repeat_interleave(patch, dim=1).repeat_interleave(patch, dim=2)[:, :h, :w]
        return grid[:, None]

    return _Units(pixel.reshape(b, -1), gh * gw, expand)


def _ranks(relevance: Tensor, order: str) -> Tensor:
    """Position of each unit in the perturbation order, ``[B, U]`` (0 = first perturbed)."""
    key = -relevance if order == "morf" else relevance
    order_idx = key.argsort(dim=1, stable=True)  # [B, U]
    positions = torch.arange(relevance.shape[1], device=relevance.device).expand_as(order_idx)
    return torch.empty_like(order_idx).scatter_(1, order_idx, positions)


def _check_score(score: str) -> str:
    return check_choice(score, "score", _SCORES)


# ---- deletion / insertion ---------------------------------------------------------------------
def _perturbation_curve(
    kind: str,
    model: nn.Module,
    inputs: Tensor,
    attributions: Tensor,
    targets: TargetSpec,
    steps: int,
    patch: int,
    baseline: FaithBaseline,
    order: str,
    score: str,
    rank_by: str,
    batch_size: int | None,
    max_memory: MemorySpec,
) -> PerturbationCurve:
    _check_model(model)
    check_inputs(inputs)
    check_positive_int(steps, "steps")
    check_choice(order, "order", _ORDERS)
    check_choice(rank_by, "rank_by", _RANK_BY)
    _check_score(score)
    units = _units(inputs, attributions, patch, rank_by)
    if steps > units.n_units:
        what = "patches" if inputs.dim() == 4 and patch > 1 else ("pixels" if inputs.dim() == 4 else "features")
        raise ValueError(f"`steps` must be <= the number of {what} ({units.n_units}), got {steps}")
    x = inputs.detach()
    base = _make_baseline(baseline, x)
    rank = _ranks(units.relevance, order)  # [B, U]
    counts = [round(s * units.n_units / steps) for s in range(steps + 1)]
    scores = []
    t, _ = _resolve(model, x, targets, score, batch_size, max_memory)
    for n in counts:
        chosen = units.expand(rank < n)  # [B, 1, H, W] or [B, *features]: True = perturbed
        if kind == "deletion":
            x_s = torch.where(chosen, base, x)
        else:
            x_s = torch.where(chosen, x, base)
        scores.append(_forward_scores(model, x_s, t, score, batch_size, max_memory))
    fractions = torch.tensor(counts, dtype=x.dtype, device=x.device) / units.n_units
    return PerturbationCurve(fractions, torch.stack(scores, dim=1), kind, order, score)


@metric("model", higher_is_better=None)
def deletion_curve(
    model: nn.Module,
    inputs: Tensor,
    attributions: Tensor,
    targets: TargetSpec = None,
    *,
    steps: int = 20,
    patch: int = 1,
    baseline: FaithBaseline = "black",
    order: str = "morf",
    score: str = "prob",
    rank_by: str = "abs",
    batch_size: int | None = None,
    max_memory: MemorySpec = None,
) -> PerturbationCurve:
    r"""Deletion curve: remove units in order of relevance and track the target score.

    Region perturbation (Samek et al. 2017, arXiv:1509.06321; "deletion" in Petsiuk
    et al. 2018, arXiv:1806.07421). With units ranked :math:`r_1, r_2, \dots` by relevance
    (``"morf"``: most relevant first; ``"lerf"``: least relevant first) and
    :math:`n_s = \operatorname{round}(s\,U / S)`:

    .. math:: x^{(s)} = x \odot (1 - M_s) + \bar x \odot M_s, \qquad
              M_s = \mathbb{1}[\text{unit among } r_1..r_{n_s}], \qquad
              c_s = f_t(x^{(s)}), \quad s = 0..S

    A faithful map makes the score fall fast under MoRF (low AUC) and slowly under LeRF.

    Args:
        model: classifier ``[B, ...] -> [B, classes]``; run in eval mode, restored afterwards.
        inputs: ``[B, C, H, W]`` images (units: pixels or patches) or ``[B, D, ...]`` (features).
        attributions: ``[B, C, H, W]``, ``[B, 1, H, W]`` or ``[B, H, W]`` (images), else the inputs' shape.
        targets: ``None`` (predicted class of the clean input), an int, or ``B`` ints.
        steps: number of perturbation steps :math:`S`, ``1 <= S <=`` number of units.
        patch: side of the square patches (images only); ``1`` = pixels.
        baseline: ``"black"``, ``"blur"``, ``"mean"``, a number, a tensor or a callable.
        order: ``"morf"`` or ``"lerf"``.
        score: ``"prob"`` (softmax probability of the target) or ``"logit"``.
        rank_by: ``"abs"`` (:math:`\sum_c |a_c|`) or ``"signed"`` (:math:`\sum_c a_c`).
        batch_size: most model rows per call (a row: one forward(+backward) pass of one input-shaped
            tensor); ``None``: learned from the calls' timings under the memory budget. Never changes the
            result. Here a row is one perturbed image (forward passes only).
        max_memory: the memory budget when ``batch_size`` is ``None`` (bytes, ``"4GB"``, ``"25%"``;
            ``None``: the default of :func:`smoothsal.execution.memory.memory_budget`).
    Returns:
        :class:`PerturbationCurve` with ``fractions`` ``[S + 1]`` and ``scores`` ``[B, S + 1]``.
        ``S + 1`` forward passes of the batch (plus one to resolve the targets).
    """
    return _perturbation_curve(
        "deletion", model, inputs, attributions, targets, steps, patch, baseline, order, score, rank_by, batch_size, max_memory
    )


@metric("model", higher_is_better=None)
def insertion_curve(
    model: nn.Module,
    inputs: Tensor,
    attributions: Tensor,
    targets: TargetSpec = None,
    *,
    steps: int = 20,
    patch: int = 1,
    baseline: FaithBaseline = "blur",
    order: str = "morf",
    score: str = "prob",
    rank_by: str = "abs",
    batch_size: int | None = None,
    max_memory: MemorySpec = None,
) -> PerturbationCurve:
    r"""Insertion curve (Petsiuk et al. 2018, arXiv:1806.07421): start from the baseline and
    put the input's units back, most relevant first (``order="morf"``).

    .. math:: x^{(s)} = \bar x \odot (1 - M_s) + x \odot M_s, \qquad c_s = f_t(x^{(s)})

    A faithful map makes the score rise fast (high AUC). The default baseline is ``"blur"``, as
    in RISE (a black start is out of distribution for most models); all arguments as in
    :func:`deletion_curve`.
    """
    return _perturbation_curve(
        "insertion", model, inputs, attributions, targets, steps, patch, baseline, order, score, rank_by, batch_size, max_memory
    )


def auc(curve: PerturbationCurve) -> Tensor:
    r"""Area under a perturbation curve by the trapezoid rule over the fractions in [0, 1].

    .. math:: \mathrm{AUC} = \sum_{s=1}^{S} \tfrac{1}{2}(c_{s-1} + c_s)(\phi_s - \phi_{s-1})

    Returns:
        ``[B]`` areas (for ``score="prob"`` in [0, 1]).
    """
    if not isinstance(curve, PerturbationCurve):
        raise TypeError(f"`curve` must be a PerturbationCurve, got {type(curve).__name__}")
    return torch.trapezoid(curve.scores, curve.fractions, dim=-1)


@metric("model", higher_is_better=False)
def deletion_auc(
    model: nn.Module, inputs: Tensor, attributions: Tensor, targets: TargetSpec = None, **kw: Any
) -> Tensor:
    """``auc(deletion_curve(...))``: ``[B]``, lower is more faithful (with ``order="morf"``);
    keyword arguments as :func:`deletion_curve`."""
    return auc(deletion_curve(model, inputs, attributions, targets, **kw))


@metric("model", higher_is_better=True)
def insertion_auc(
    model: nn.Module, inputs: Tensor, attributions: Tensor, targets: TargetSpec = None, **kw: Any
) -> Tensor:
    """``auc(insertion_curve(...))``: ``[B]``, higher is more faithful (with ``order="morf"``)."""
    return auc(insertion_curve(model, inputs, attributions, targets, **kw))


# ---- correlation-type metrics ---------------------------------------------------------------------
def _pearson(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise Pearson correlation of ``[B, R]`` tensors; ``0`` where a row is constant."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    denom = a.norm(dim=1) * b.norm(dim=1)
    scale = torch.maximum(a.abs().amax(dim=1), b.abs().amax(dim=1)).clamp(min=1e-30)
    degenerate = denom <= 1e-12 * scale**2 * a.shape[1]
    rho = (a * b).sum(dim=1) / torch.where(degenerate, torch.ones_like(denom), denom)
    return torch.where(degenerate, torch.zeros_like(rho), rho).clamp(-1.0, 1.0)


def _scores_in_chunks(
    model: nn.Module, make: Callable[[int, int], Tensor], total: int, x: Tensor, targets: Tensor, score: str,
    batch_size: int | None, max_memory: MemorySpec,
) -> Tensor:
    """Score ``total`` perturbed copies of the batch ``x`` ``[B, ...]``; ``[total, B]``.

    ``make(start, stop)`` builds copies ``start..stop-1`` (``[(stop - start) * B, ...]``,
    copy-major); the rows (copy ``r // B`` of image ``r % B``) run in the calls the policy sizes,
    each built on demand (:func:`smoothsal.execution.calls.forward_rows`).
    """
    b = x.shape[0]

    def build(lo: int, hi: int) -> Tensor:
        first = lo // b
        return make(first, -(-hi // b))[lo - first * b : hi - first * b]

    logits = forward_rows(model, total * b, build, example=x[0], batch_size=batch_size, max_memory=max_memory)
    return _target_score(logits, targets.repeat(total), score).reshape(total, b)


@metric("model", higher_is_better=True)
def faithfulness_correlation(
    model: nn.Module,
    inputs: Tensor,
    attributions: Tensor,
    targets: TargetSpec = None,
    *,
    subset_size: int | None = None,
    n_runs: int = 50,
    baseline: FaithBaseline = "black",
    seed: Seed = 0,
    patch: int = 1,
    score: str = "logit",
    batch_size: int | None = None,
    max_memory: MemorySpec = None,
) -> Tensor:
    r"""Faithfulness correlation (Bhatt et al. 2020, arXiv:2005.00631).

    .. math:: \mu_F(f, g; x) = \operatorname*{corr}_{S \subset [d],\ |S| = k}
              \Big( \sum_{i \in S} g_i(x),\; f_t(x) - f_t\big(x_{[x_S = \bar x_S]}\big) \Big)

    Pearson correlation over ``n_runs`` uniformly random unit subsets :math:`S` of size ``k``
    between the summed *signed* attribution in :math:`S` and the drop of the target score when
    :math:`S` is set to the baseline :math:`\bar x`. For a linear model with logit score, baseline
    0 and :math:`g = w \odot x` both sides are equal, so :math:`\mu_F = 1`; a map unrelated to the
    model gives :math:`\approx 0`.

    Args:
        model, inputs, attributions, targets: as :func:`deletion_curve`.
        subset_size: units per subset :math:`k`; ``None`` = 10 % of the units (at least 1).
        n_runs: random subsets per sample (``>= 2``).
        baseline: value of the removed units (see the module docstring).
        seed: int or ``torch.Generator``; subsets are drawn independently per sample.
        patch: unit size for images (1 = pixels).
        score: ``"logit"`` (default) or ``"prob"``.
        batch_size: most model rows per call (a row: one forward(+backward) pass of one input-shaped
            tensor); ``None``: learned from the calls' timings under the memory budget. Never changes the
            result. Here a row is one perturbed image (forward passes only).
        max_memory: the memory budget when ``batch_size`` is ``None`` (bytes, ``"4GB"``, ``"25%"``;
            ``None``: the default of :func:`smoothsal.execution.memory.memory_budget`).
    Returns:
        ``[B]`` correlations in [-1, 1]; ``0`` when either side is constant over the runs
        (e.g. an all-zero map), where the correlation is undefined.
    """
    _check_model(model)
    check_inputs(inputs)
    check_positive_int(n_runs, "n_runs", minimum=2)
    _check_score(score)
    units = _units(inputs, attributions, patch, "signed")
    u = units.n_units
    k = max(1, round(0.1 * u)) if subset_size is None else check_positive_int(subset_size, "subset_size")
    if k > u:
        raise ValueError(f"`subset_size` must be <= the number of units ({u}), got {k}")
    x = inputs.detach()
    b = x.shape[0]
    base = _make_baseline(baseline, x, seed)
    gen = make_generator(seed)
    noise = torch.rand((n_runs, b, u), generator=gen, device=gen.device).to(x.device)  # [R, B, U]
    subsets = torch.zeros_like(noise, dtype=torch.bool).scatter_(2, noise.topk(k, dim=2).indices, True)
    attr_sums = (subsets.to(x.dtype) * units.relevance[None]).sum(dim=2).T  # [B, R]

    def make(start: int, stop: int) -> Tensor:
        m = units.expand(subsets[start:stop].reshape(-1, u))  # [(stop - start) * B, 1 | *feat...]
        xs = x.repeat(stop - start, *([1] * (x.dim() - 1)))
        bs = base.repeat(stop - start, *([1] * (x.dim() - 1)))
        return torch.where(m, bs, xs)

    with preserve_model(model), torch.no_grad():
        t, clean = _resolve(model, x, targets, score, batch_size, max_memory)
        perturbed = _scores_in_chunks(model, make, n_runs, x, t, score, batch_size, max_memory)  # [R, B]
    drops = clean[:, None] - perturbed.T  # [B, R]
    return _pearson(attr_sums, drops)


def _spearman_rows(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise Spearman correlation ``[B, N]`` (average ranks for ties); ``0`` for a constant row."""
    from smoothsal.metrics.similarity import rank_average

    return _pearson(rank_average(a).to(a.dtype), rank_average(b).to(a.dtype))


@metric("model", higher_is_better=True)
def monotonicity(
    model: nn.Module,
    inputs: Tensor,
    attributions: Tensor,
    targets: TargetSpec = None,
    *,
    baseline: FaithBaseline = "black",
    patch: int = 1,
    n_samples: int = 1,
    score: str = "logit",
    seed: Seed = 0,
    batch_size: int | None = None,
    max_memory: MemorySpec = None,
) -> Tensor:
    r"""Monotonicity correlation (Nguyen & Martínez 2020, arXiv:2007.07584).

    The Spearman rank correlation between each unit's attribution magnitude and its marginal
    effect on the model, the mean squared change of the target score when that unit alone is
    replaced by the baseline:

    .. math:: \rho\Big( |a_i|,\; e_i \Big), \qquad
              e_i = \frac{1}{K} \sum_{k=1}^{K} \big( f_t(x) - f_t(x_{[x_i = \bar x^{(k)}_i]}) \big)^2

    (:math:`|a_i|` summed over the channels and pixels of unit :math:`i`). A faithful map ranks
    units the way their effects rank, giving values near 1; a map unrelated to the model gives
    about 0; a map that ranks backwards gives negative values. This is a graded score, not the
    always-true boolean of some implementations.

    Args:
        model, inputs, attributions, targets, patch: as :func:`deletion_curve`.
        baseline: the replacement value :math:`\bar x`; with a stochastic baseline (``"uniform"``)
            ``n_samples`` draws :math:`K` are averaged.
        n_samples: baseline draws :math:`K` per unit.
        score: ``"logit"`` (default) or ``"prob"``.
        seed: for stochastic baselines.
        batch_size: most model rows per call (a row: one forward(+backward) pass of one input-shaped
            tensor); ``None``: learned from the calls' timings under the memory budget. Never changes the
            result. Here a row is one perturbed image (forward passes only).
        max_memory: the memory budget when ``batch_size`` is ``None`` (bytes, ``"4GB"``, ``"25%"``;
            ``None``: the default of :func:`smoothsal.execution.memory.memory_budget`).
    Returns:
        ``[B]`` rank correlations in [-1, 1] (``0`` if all attributions or all effects are equal).
        Costs ``U × K`` forward passes of the batch (use ``patch`` to keep ``U`` small).
    """
    _check_model(model)
    check_inputs(inputs)
    check_positive_int(n_samples, "n_samples")
    _check_score(score)
    units = _units(inputs, attributions, patch, "abs")
    u = units.n_units
    x = inputs.detach()
    b = x.shape[0]
    gen = make_generator(seed)
    eye = torch.eye(u, dtype=torch.bool, device=x.device)  # [U, U]: unit i alone
    effects = torch.zeros(b, u, dtype=x.dtype, device=x.device)
    with preserve_model(model), torch.no_grad():
        t, clean = _resolve(model, x, targets, score, batch_size, max_memory)
        for _ in range(n_samples):
            base = _make_baseline(baseline, x, gen)

            def make(start: int, stop: int, base: Tensor = base) -> Tensor:
                # unit masks [(stop - start), U] -> one per (unit, sample): [(stop - start) * B, U]
                m = units.expand(eye[start:stop].repeat_interleave(b, dim=0))
                xs = x.repeat(stop - start, *([1] * (x.dim() - 1)))
                bs = base.repeat(stop - start, *([1] * (x.dim() - 1)))
                return torch.where(m, bs, xs)

            perturbed = _scores_in_chunks(model, make, u, x, t, score, batch_size, max_memory)  # [U, B]
            effects += (clean[None] - perturbed).T.pow(2) / n_samples
    return _spearman_rows(units.relevance, effects)


@metric("model", higher_is_better=False)
def infidelity(
    model: nn.Module,
    inputs: Tensor,
    attributions: Tensor,
    targets: TargetSpec = None,
    *,
    n_perturb: int = 64,
    noise_std: float = 0.1,
    seed: Seed = 0,
    perturbation: str = "gaussian",
    normalize: bool = False,
    score: str = "logit",
    batch_size: int | None = None,
    max_memory: MemorySpec = None,
) -> Tensor:
    r"""Explanation infidelity (Yeh et al. 2019, arXiv:1901.09392, Definition 2.1).

    .. math:: \mathrm{INFD}(\Phi, f, x) = \mathbb{E}_{I \sim \mu_I}
              \Big[ \big( I^\top \Phi(f, x) - (f_t(x) - f_t(x - I)) \big)^2 \Big]

    estimated with ``n_perturb`` Monte-Carlo draws. Perturbations :math:`\mu_I`:

    * ``"gaussian"``: :math:`I = z`, :math:`z \sim \mathcal N(0, \sigma^2 \mathbf 1)` (Yeh et
      al.'s "noisy baseline"); the gradient is the exact explanation of a linear model
      (:math:`\mathrm{INFD} = 0`) and any other map :math:`\Phi` scores
      :math:`\sigma^2 \lVert \Phi - w \rVert^2`.
    * ``"relative"``: :math:`I = x \odot z` and the inner product is taken as
      :math:`z^\top \Phi = I^\top (\Phi \oslash x)`, the convention for maps multiplied by the
      input (captum's ``multiply_by_inputs``); gradient × input is then exact for a linear model.

    Args:
        model, inputs, targets: as :func:`deletion_curve`.
        attributions: shaped like ``inputs`` (per-feature explanation :math:`\Phi`).
        n_perturb: Monte-Carlo draws per sample.
        noise_std: :math:`\sigma` (absolute, in input units).
        seed: int or ``torch.Generator``.
        perturbation: ``"gaussian"`` or ``"relative"``.
        normalize: rescale :math:`\Phi` by the optimal :math:`\beta = \mathbb E[a\,d] / \mathbb E[a^2]`
            first (Yeh et al.'s code; makes the score scale-free), with :math:`a = I^\top\Phi`,
            :math:`d` the score drop.
        score: ``"logit"`` (default, what gradient attributions explain) or ``"prob"``.
        batch_size: most model rows per call (a row: one forward(+backward) pass of one input-shaped
            tensor); ``None``: learned from the calls' timings under the memory budget. Never changes the
            result. Here a row is one perturbed image (forward passes only).
        max_memory: the memory budget when ``batch_size`` is ``None`` (bytes, ``"4GB"``, ``"25%"``;
            ``None``: the default of :func:`smoothsal.execution.memory.memory_budget`).
    Returns:
        ``[B]`` infidelities, ``>= 0``; lower is better.
    """
    _check_model(model)
    check_inputs(inputs)
    check_inputs(attributions, name="attributions")
    if attributions.shape != inputs.shape:
        raise ValueError(
            f"`attributions` must have the inputs' shape {tuple(inputs.shape)} for infidelity, "
            f"got {tuple(attributions.shape)}"
        )
    check_positive_int(n_perturb, "n_perturb")
    check_nonnegative(noise_std, "noise_std")
    check_choice(perturbation, "perturbation", ("gaussian", "relative"))
    _check_score(score)
    x = inputs.detach()
    b = x.shape[0]
    phi = attributions.detach().to(x.dtype).reshape(b, -1)  # [B, D]
    gen = make_generator(seed)
    z = torch.randn((n_perturb, *x.shape), generator=gen, device=gen.device).to(x) * noise_std  # [R, B, ...]
    shift = z * x[None] if perturbation == "relative" else z  # I: [R, B, ...]
    explained = (z.reshape(n_perturb, b, -1) * phi[None]).sum(dim=2).T  # [B, R]: I^T Φ (or z^T Φ)

    def make(start: int, stop: int) -> Tensor:
        return (x[None] - shift[start:stop]).reshape(-1, *x.shape[1:])  # [(stop - start) * B, ...]

    with preserve_model(model), torch.no_grad():
        t, clean = _resolve(model, x, targets, score, batch_size, max_memory)
        perturbed = _scores_in_chunks(model, make, n_perturb, x, t, score, batch_size, max_memory)  # [R, B]
    drops = clean[:, None] - perturbed.T  # [B, R]
    if normalize:
        beta = (explained * drops).mean(dim=1, keepdim=True) / explained.pow(2).mean(dim=1, keepdim=True).clamp(
            min=torch.finfo(x.dtype).tiny
        )
        explained = explained * beta
    return (explained - drops).pow(2).mean(dim=1)


@metric("sensitivity", higher_is_better=False)
def max_sensitivity(
    method: Any,
    inputs: Tensor,
    targets: TargetSpec = None,
    *,
    radius: float = 0.02,
    n_samples: int = 10,
    seed: Seed = 0,
    normalize: bool = True,
) -> Tensor:
    r"""Max-sensitivity (Yeh et al. 2019, arXiv:1901.09392, Definition 3.1), relative form.

    .. math:: \mathrm{SENS}_{\max}(\Phi, f, x, r) = \max_{k = 1..K}
              \frac{\lVert \Phi(f, x + \delta_k) - \Phi(f, x) \rVert_2}{\lVert \Phi(f, x) \rVert_2},
              \qquad \delta_k \sim U[-r, r]^d

    a Monte-Carlo lower bound of the maximum over the :math:`L_\infty` ball of radius :math:`r`
    (as captum's ``sensitivity_max``). The explained class is held fixed: ``targets=None`` uses
    the method model's prediction on the clean inputs for every perturbed copy.

    Args:
        method: an attribution method object with ``.attribute(inputs, target)`` (and ``.model``
            to resolve ``targets=None``).
        inputs: ``[B, ...]``.
        radius: :math:`r`, absolute, in input units.
        n_samples: perturbations :math:`K` per sample (one batched method call each).
        seed: int or ``torch.Generator``.
        normalize: divide by :math:`\lVert\Phi(f, x)\rVert_2` (default); ``False`` gives Yeh's
            absolute form.
    Returns:
        ``[B]`` sensitivities, ``>= 0``. With ``normalize``, a sample whose clean map is all zeros
        gets ``0`` if all perturbed maps are zero too, else ``inf``.
    """
    if not callable(getattr(method, "attribute", None)):
        raise TypeError(f"`method` must have an .attribute(inputs, target) method, got {type(method).__name__}")
    check_inputs(inputs)
    check_nonnegative(radius, "radius")
    check_positive_int(n_samples, "n_samples")
    x = inputs.detach()
    b = x.shape[0]
    model = model_of(method)
    if targets is None and model is not None:
        with preserve_model(model), torch.no_grad():
            targets = resolve_targets(None, check_logits(model(x), b))
    gen = make_generator(seed)
    phi = method.attribute(x, targets).detach().reshape(b, -1)  # [B, D']
    worst = torch.zeros(b, dtype=phi.dtype, device=phi.device)
    for _ in range(n_samples):
        delta = (torch.rand(x.shape, generator=gen, device=gen.device).to(x) * 2.0 - 1.0) * radius
        phi_k = method.attribute(x + delta, targets).detach().reshape(b, -1)
        worst = torch.maximum(worst, (phi_k - phi).norm(dim=1))
    if not normalize:
        return worst
    norm = phi.norm(dim=1)
    ratio = worst / torch.where(norm > 0, norm, torch.ones_like(norm))
    if (norm == 0).any():
        warnings.warn(
            "max_sensitivity: a clean attribution map is all zeros; its relative sensitivity is 0 if the "
            "perturbed maps are zero too, else inf",
            RuntimeWarning,
            stacklevel=2,
        )
    return torch.where(norm > 0, ratio, torch.where(worst > 0, torch.full_like(ratio, math.inf), ratio))
