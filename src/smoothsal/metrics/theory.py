r"""The stability–fidelity theory of Ye & Farnia 2025 tested for what it says: trends, and the bounds themselves.

Ye & Farnia 2025 (AISTATS, arXiv:2411.05837) make two kinds of statement about Gaussian
smoothing with noise :math:`\sigma`:

* **empirical** (§5): "increasing σ consistently decreases the stability error" (eq. 12) and "the
  fidelity error increases consistently as σ increases" (eq. 13). :func:`trend_test` tests each
  as a trend over σ, paired across retrained model pairs and images;
* **theoretical** (§4): *upper bounds*. A bound is tested by computing it and showing the measured
  error below it; the slope of a measured curve is not a test of a bound (a fitted exponent is a
  description only). This module computes the bounds from their constants.

**The network of the theory** (§3.1–3.2): :math:`f_W(x) = W_k\,\phi(W_{k-1}\phi(\cdots\phi(W_1 x)))`
with :math:`\phi` 1-Lipschitz, :math:`\phi(0) = 0`; :math:`\lVert W_i\rVert_2 \le B_i`;
:math:`\lVert x\rVert_2 \le C`; :math:`x \in \mathbb R^m`. With
:math:`\alpha_{t,0} = \prod_{i\le t} B_i` and :math:`\alpha_{t,1} = \sum_{i \le t}\prod_{j\ne i, j\le t} B_j`
(:func:`norm_products`; the paper's notation, its Greek letter garbled in our copy of the text):

* **Proposition 7** (fidelity, any trained network of that form with a 1-smooth activation):

  .. math:: \epsilon_{\text{fidelity}}(\text{SimpleGrad}, \sigma) \le \gamma\,\sigma\sqrt m, \qquad
            \epsilon_{\text{fidelity}}(\text{IntegratedGrad}, \sigma) \le \gamma\,(3C + 1)\,\sigma\sqrt m,
            \qquad \gamma = \alpha_{k,0}\sum_{i=1}^{k-1}\alpha_{i,0}

  :math:`\gamma` is a Lipschitz constant of :math:`x \mapsto \nabla_x f_y(x)`: the gradient is
  :math:`W_1^\top D_1 W_2^\top \cdots D_{k-1} W_k^\top e_y` with :math:`D_i = \mathrm{diag}\,\phi'(z_i)`, and
  :math:`D_i` moves by at most :math:`s\,\alpha_{i,0}\lVert\Delta x\rVert` when the activation is
  :math:`s`-smooth (:math:`s = 1` in the paper; :func:`proposition7_gamma` takes the activation's own
  :math:`s`, e.g. softplus :math:`\tfrac14`). :math:`\sigma` is the noise's standard deviation in input
  units, :math:`m` the input dimension. **Computable for a trained network**: every constant is a
  property of the final weights and the data (:func:`smooth_chain_constants` reads the layer norms
  of a ``Sequential`` of linear maps and smooth activations).
* **Theorem 5** (Simple-Grad stability after :math:`T` steps of SGD with step :math:`c/t` on
  :math:`n` samples, the loss :math:`L`-Lipschitz and :math:`\beta`-smooth in :math:`W`):

  .. math:: \epsilon_{\text{stability}}(\text{SimpleGrad}) \le \mathrm{Up} =
            \frac{1 + 1/(\beta c)}{n - 1}\,(2cL)^{\frac{1}{\beta c + 1}}\,T^{\frac{\beta c}{\beta c + 1}}\,\gamma_5,
            \qquad \gamma_5 = \Big(2\alpha_{k,0}\sum_{i=1}^{k-1}\alpha_{i,1}C\Big)^{\frac{1}{\beta c+1}}
            (2\alpha_{k,0})^{\frac{\beta c}{\beta c+1}}

  (the form of Hardt et al. 2016, Thm 3.12, whose second :math:`L` becomes the saliency map's
  Lipschitz constant in :math:`W` inside :math:`\gamma_5`; the leading fraction is garbled in our
  copy of the text and read as Hardt et al.'s).
* **Theorem 6** (Smooth-Grad, inputs rescaled to :math:`\lVert x\rVert \le C`):

  .. math:: \epsilon_{\text{stability}}(\text{SmoothGrad}) \le \mathrm{Up}\cdot
            \Big(\frac{\alpha_{k,1}}{2\sigma\,\alpha_{k,0}\sum_{i=1}^{k-1}\alpha_{i,1}}\Big)^{\frac{1}{\beta c+1}}

  so the bound falls as :math:`\sigma^{-1/(\beta c + 1)}`, an exponent in (−1, 0) (not
  :math:`1/\sigma`): with the :math:`\beta c` of real training (:math:`\beta` in the thousands) it is
  nearly flat in σ. The factor is below 1 (Smooth-Grad's bound below Simple-Grad's) only for
  :math:`\sigma > \alpha_{k,1}/(2\alpha_{k,0}\sum\alpha_{i,1})`.
  **Computable only for a network trained as the theorem assumes** (plain SGD, step
  :math:`c/t`, smooth activation and loss, inputs rescaled): :math:`c, T, n` come from the recipe;
  the :math:`B_i` must bound the layer norms *over the whole training trajectory* (take the largest
  norm seen at every step; norms of the final weights alone are not such a bound); :math:`L` and
  :math:`\beta` then follow from Remark 4 (:func:`remark4_constants`: :math:`L \le \alpha_{k,1}C`,
  :math:`\beta \le (3k + 1)\alpha_{k,1}^2C^2` for 1-smooth activation and loss). For a network
  trained otherwise (Adam, ReLU, BatchNorm, augmentation) the theorems do not apply and no bound is
  computed. Such bounds are typically vacuous (far above any measured error); they are reported as
  computed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from smoothsal.metrics.bootstrap import bootstrap_bounds, studentized_pvalue, two_level_bounds
from smoothsal.metrics.intervals import LEVEL, MIN_IMAGES, N_BOOT

__all__ = [
    "ACTIVATION_CONSTANTS",
    "CLAIMS",
    "ChainConstants",
    "NormProducts",
    "TrendResult",
    "holm",
    "norm_products",
    "proposition7_bound",
    "proposition7_gamma",
    "remark4_constants",
    "smooth_chain_constants",
    "theorem5_bound",
    "theorem6_bound",
    "theorem6_exponent",
    "theorem6_factor",
    "trend_test",
]

#: the paper's empirical claims, by the name :func:`trend_test` takes
CLAIMS = ("non_increasing", "non_decreasing")


# ---- trend tests -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrendResult:
    """Outcome of :func:`trend_test`.

    Attributes:
        verdict: ``"agrees"``, ``"disagrees"`` or ``"inconclusive"``.
        claim: ``"non_increasing"`` or ``"non_decreasing"``.
        reason: the numbers behind the verdict, in words.
        noise_levels: the σ grid, ascending.
        steps: one dict per consecutive step: ``sigma_from``, ``sigma_to``, ``difference`` (mean of
            error(σ_to) − error(σ_from)), ``low``/``high`` (its two-sided 95 % interval),
            ``p_against`` (one-sided p-value of a step against the claim), ``p_against_holm``
            (Holm-adjusted), ``against`` (rejected by Holm).
        endpoint: the same for error(σ_max) − error(σ_min) with ``p_for`` (one-sided, in the
            claimed direction).
        n_pairs, n_images: units (``n_images = 0`` for data without an image axis).
        resampled: ``"pairs"``, ``"images"`` or ``"pairs × images (crossed)"``.
    """

    verdict: str
    claim: str
    reason: str
    noise_levels: tuple[float, ...]
    steps: list[dict[str, Any]] = field(default_factory=list)
    endpoint: dict[str, Any] = field(default_factory=dict)
    n_pairs: int = 0
    n_images: int = 0
    resampled: str = ""


def holm(pvalues: Sequence[float], alpha: float = 1 - LEVEL) -> tuple[list[bool], list[float]]:
    r"""Holm's step-down procedure (Holm 1979, *Scand. J. Statist.* 6:65–70): which hypotheses are
    rejected at family-wise error ``alpha``, and the adjusted p-values
    :math:`\tilde p_{(i)} = \max_{j \le i} \min(1, (m - j + 1)\,p_{(j)})`.

    Example:
        >>> holm([0.01, 0.04, 0.03], alpha=0.05)
        ([True, False, False], [0.03, 0.06, 0.06])
    """
    p = [float(v) for v in pvalues]
    m = len(p)
    order = sorted(range(m), key=p.__getitem__)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return [a <= alpha for a in adjusted], adjusted


def _diff_stats(d: np.ndarray, level: float, n_boot: int, seed: int) -> tuple[float, float, float]:
    """Mean of ``d`` (``[units]`` or ``[pairs, images]``) and its two-sided studentized interval."""
    if d.ndim == 2:
        b = two_level_bounds(d, level=level, n_boot=n_boot, seed=seed)
    else:
        b = bootstrap_bounds(d, level=level, n_boot=n_boot, seed=seed)
    return float(b.estimate), float(b.low), float(b.high)


def _pvalue(d: np.ndarray, alternative: str, n_boot: int, seed: int) -> float:
    design = "crossed" if d.ndim == 2 else None
    return float(studentized_pvalue(d, alternative=alternative, design=design, n_boot=n_boot, seed=seed))


def trend_test(
    errors: Any,
    noise_levels: Sequence[float],
    *,
    claim: str,
    level: float = LEVEL,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> TrendResult:
    r"""Test "the error is non-increasing (or non-decreasing) in σ", paired across model pairs and images.

    **The rule** (fixed before any data; :math:`\alpha = 1 - \text{level} = 0.05`):

    1. For each consecutive step :math:`\sigma_j \to \sigma_{j+1}` of the ascending grid, the paired
       differences :math:`d_j = E(\sigma_{j+1}) - E(\sigma_j)` per unit (a model pair, or a pair and
       an image) and the one-sided studentized bootstrap p-value of "this step goes *against* the
       claim" (for non-increasing: :math:`\mathbb E d_j > 0`). Units: data ``[pairs, sigmas, images]``
       are resampled on both levels, crossed (every pair explains the same images;
       :func:`~smoothsal.metrics.bootstrap.two_level_bounds`); ``[pairs, sigmas]`` over the pairs;
       one pair ``[1, sigmas, images]`` over its images (the verdict then speaks of that pair).
    2. **disagrees** when Holm's procedure (:func:`holm`) over the :math:`J - 1` steps rejects any
       step at family-wise error :math:`\alpha`: some step goes against the claim beyond chance,
       and the chance of saying so wrongly anywhere on the grid is at most 5 %.
    3. otherwise **agrees** when the end-to-end difference :math:`E(\sigma_{\max}) - E(\sigma_{\min})` is
       in the claimed direction with one-sided p-value :math:`\le \alpha` (the claim "consistently
       decreases" needs a decrease to be shown, and no step against it);
    4. otherwise **inconclusive**; also when the resampled units are fewer than
       :data:`~smoothsal.metrics.intervals.MIN_IMAGES` (4: below it an interval does not cover).

    Why this and not a single trend statistic (Page 1963, *JASA* 58:216–230; Jonckheere 1954): a
    rank trend test detects an overall ordering but not a step that goes the other way, which is
    what refutes "non-increasing"; the per-step tests find it and Holm keeps their family-wise
    error at 5 % without assuming how the steps depend on each other (they share σ levels). The
    endpoint test is the one directional question the claim answers when no step refutes it. Flat
    stretches (no step significant either way) do not refute the claim, and do not support it.

    Args:
        errors: ``[pairs, sigmas]`` or ``[pairs, sigmas, images]`` (stability error per retrained
            pair; for fidelity, per model), finite; the σ axis in the order of ``noise_levels``.
        noise_levels: the σ of each column (distinct, any order).
        claim: ``"non_increasing"`` (stability, eq. 12) or ``"non_decreasing"`` (fidelity, eq. 13).
        level: one minus the test's family-wise error; the reported two-sided intervals' coverage.
        n_boot, seed: the bootstrap's resamples and seed (one seed for every step: the same
            resampled units throughout).
    Returns:
        :class:`TrendResult`.
    """
    if claim not in CLAIMS:
        raise ValueError(f"`claim` must be one of {CLAIMS}, got {claim!r}")
    x = np.asarray(errors.detach().cpu().double().numpy() if isinstance(errors, torch.Tensor) else errors,
                   dtype=np.float64)  # fmt: skip
    if x.ndim not in (2, 3):
        raise ValueError(f"`errors` must be [pairs, sigmas] or [pairs, sigmas, images], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("`errors` must be finite")
    grid = [float(v) for v in noise_levels]
    if len(grid) != x.shape[1] or len(set(grid)) != len(grid) or len(grid) < 2:
        raise ValueError(f"`noise_levels` must hold {x.shape[1]} distinct values (one per column of `errors`), got {grid}")
    order = np.argsort(grid)
    x, grid = x[:, order], [grid[i] for i in order]
    n_pairs = x.shape[0]
    n_images = x.shape[2] if x.ndim == 3 else 0
    if x.ndim == 3 and n_pairs == 1:
        x, resampled, units = x[0].T, "images", n_images  # [images, sigmas]: units first
        shape = "images"
    elif x.ndim == 3:
        resampled, units, shape = "pairs × images (crossed)", n_images, "two"
    else:
        resampled, units, shape = "pairs", n_pairs, "pairs"

    def column(j: int) -> np.ndarray:
        """Errors at σ_j as units: ``[units]`` or ``[pairs, images]``."""
        return x[:, j] if shape != "two" else x[:, j, :]

    against = "greater" if claim == "non_increasing" else "less"
    towards = "less" if claim == "non_increasing" else "greater"
    head = f"{claim.replace('_', '-')} over σ = {', '.join(f'{g:g}' for g in grid)} ({resampled} resampled"
    head += f": {n_pairs} pair(s)" + (f", {n_images} images)" if n_images else ")")
    if units < MIN_IMAGES or (shape == "pairs" and n_pairs < 2):
        return TrendResult("inconclusive", claim, f"{head}; fewer than {MIN_IMAGES} units: inconclusive (too few)",
                           tuple(grid), n_pairs=n_pairs, n_images=n_images, resampled=resampled)  # fmt: skip
    steps = []
    for j in range(len(grid) - 1):
        d = column(j + 1) - column(j)
        est, lo, hi = _diff_stats(d, level, n_boot, seed)
        steps.append({"sigma_from": grid[j], "sigma_to": grid[j + 1], "difference": est, "low": lo, "high": hi,
                      "p_against": _pvalue(d, against, n_boot, seed)})  # fmt: skip
    alpha = 1.0 - level
    rejected, adjusted = holm([s["p_against"] for s in steps], alpha)
    for s, r, a in zip(steps, rejected, adjusted):
        s.update(p_against_holm=a, against=r)
    d_end = column(len(grid) - 1) - column(0)
    est, lo, hi = _diff_stats(d_end, level, n_boot, seed)
    endpoint = {"sigma_from": grid[0], "sigma_to": grid[-1], "difference": est, "low": lo, "high": hi,
                "p_for": _pvalue(d_end, towards, n_boot, seed)}  # fmt: skip
    word = "decrease" if claim == "non_increasing" else "increase"
    bad = [s for s in steps if s["against"]]
    if bad:
        listed = "; ".join(f"σ {s['sigma_from']:g}→{s['sigma_to']:g}: {s['difference']:+.4g} "
                           f"[{s['low']:.4g}, {s['high']:.4g}], Holm p = {s['p_against_holm']:.3g}" for s in bad)  # fmt: skip
        verdict, why = "disagrees", f"{len(bad)} step(s) go against the claim beyond chance ({listed})"
    elif endpoint["p_for"] <= alpha:
        verdict = "agrees"
        why = (f"no step goes against it (smallest Holm p = {min(adjusted):.3g}), and σ {grid[0]:g}→{grid[-1]:g} "
               f"shows a {word} of {abs(est):.4g} [{lo:.4g}, {hi:.4g}] (one-sided p = {endpoint['p_for']:.3g})")  # fmt: skip
    else:
        verdict = "inconclusive"
        why = (f"no step goes against it, but σ {grid[0]:g}→{grid[-1]:g} does not show a {word} beyond chance: "
               f"{est:+.4g} [{lo:.4g}, {hi:.4g}] (one-sided p = {endpoint['p_for']:.3g})")  # fmt: skip
    return TrendResult(verdict, claim, f"{head}; {why}: {verdict}", tuple(grid), steps, endpoint, n_pairs, n_images,
                       resampled)  # fmt: skip


# ---- the constants of the bounds -----------------------------------------------------------------
@dataclass(frozen=True)
class NormProducts:
    r"""The paper's sums of products of the layer-norm bounds :math:`B_1, \dots, B_k` (§3.2).

    Attributes:
        norms: :math:`(B_1, \dots, B_k)`.
        alpha0: :math:`(\alpha_{1,0}, \dots, \alpha_{k,0})`, :math:`\alpha_{t,0} = \prod_{i\le t} B_i`.
        alpha1: :math:`(\alpha_{1,1}, \dots, \alpha_{k,1})`, :math:`\alpha_{t,1} = \sum_{i\le t}\prod_{j\ne i, j\le t} B_j`.
    """

    norms: tuple[float, ...]
    alpha0: tuple[float, ...]
    alpha1: tuple[float, ...]

    @property
    def depth(self) -> int:
        """:math:`k`, the number of weight matrices."""
        return len(self.norms)


def norm_products(norms: Sequence[float]) -> NormProducts:
    r""":math:`\alpha_{t,0}` and :math:`\alpha_{t,1}` for ``t = 1..k`` from the layer-norm bounds ``norms``.

    Example:
        >>> p = norm_products([2.0, 3.0, 5.0])
        >>> p.alpha0, p.alpha1  # α_{3,1} = 3·5 + 2·5 + 2·3
        ((2.0, 6.0, 30.0), (1.0, 5.0, 31.0))
    """
    b = [float(v) for v in norms]
    if not b or any(not (math.isfinite(v) and v > 0) for v in b):
        raise ValueError(f"`norms` must be positive finite layer-norm bounds, got {b}")
    alpha0, alpha1 = [], []
    for t in range(1, len(b) + 1):
        alpha0.append(math.prod(b[:t]))
        alpha1.append(float(sum(math.prod(b[j] for j in range(t) if j != i) for i in range(t))))
    return NormProducts(tuple(b), tuple(alpha0), tuple(alpha1))


def _positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}")
    return float(value)


def proposition7_gamma(norms: Sequence[float], smoothness: float = 1.0) -> float:
    r"""Proposition 7's :math:`\gamma = s\,\alpha_{k,0}\sum_{i=1}^{k-1}\alpha_{i,0}`, a Lipschitz constant of
    :math:`\nabla_x f_y` (module docstring).

    Args:
        norms: spectral-norm bounds :math:`B_1..B_k` of the weight matrices (input to output).
        smoothness: the activation's smoothness :math:`s` (a bound on :math:`|\phi''|`): 1 in the paper.
    """
    p = norm_products(norms)
    s = _positive(smoothness, "smoothness")
    return s * p.alpha0[-1] * sum(p.alpha0[: p.depth - 1])


def proposition7_bound(
    gamma: float, noise_std: float, dim: int, *, method: str = "gradient", input_norm: float | None = None
) -> float:
    r"""Proposition 7's bound on the fidelity error: :math:`\gamma\sigma\sqrt m` (Simple-Grad) or
    :math:`\gamma(3C + 1)\sigma\sqrt m` (Integrated-Grad).

    Args:
        gamma: :func:`proposition7_gamma`.
        noise_std: σ in input units (the noise level times the value range).
        dim: :math:`m`, the input dimension (``C·H·W``).
        method: ``"gradient"`` or ``"integrated_gradients"``.
        input_norm: :math:`C \ge \lVert x\rVert_2` (Integrated-Grad only).
    """
    gamma, sigma = _positive(gamma, "gamma"), float(noise_std)
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"`noise_std` must be >= 0, got {noise_std!r}")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"`dim` must be a positive int, got {dim!r}")
    bound = gamma * sigma * math.sqrt(dim)
    if method == "gradient":
        return bound
    if method == "integrated_gradients":
        if input_norm is None:
            raise ValueError("`input_norm` (C) is required for method='integrated_gradients'")
        return bound * (3 * _positive(input_norm, "input_norm") + 1)
    raise ValueError(f"`method` must be 'gradient' or 'integrated_gradients', got {method!r}")


def remark4_constants(norms: Sequence[float], input_norm: float) -> tuple[float, float]:
    r"""Remark 4's bounds for plain SGD with 1-smooth activation and loss: :math:`L \le \alpha_{k,1}C`
    and :math:`\beta \le (3k + 1)\,\alpha_{k,1}^2 C^2`. Returns ``(L, beta)``.

    ``norms`` must bound the layer norms over the whole training trajectory (module docstring).
    """
    p = norm_products(norms)
    c = _positive(input_norm, "input_norm")
    a = p.alpha1[-1]
    return a * c, (3 * p.depth + 1) * a * a * c * c


def theorem6_exponent(beta: float, c: float) -> float:
    r"""The σ-exponent of Theorem 6's bound, :math:`-1/(\beta c + 1) \in (-1, 0)`."""
    return -1.0 / (_positive(beta, "beta") * _positive(c, "c") + 1.0)


def theorem5_bound(
    norms: Sequence[float], *, input_norm: float, lipschitz: float, beta: float, c: float, steps: int, n_train: int
) -> float:
    r"""Theorem 5's :math:`\mathrm{Up}(\text{SimpleGrad})` (module docstring).

    Args:
        norms: layer-norm bounds :math:`B_i` over the training trajectory.
        input_norm: :math:`C`.
        lipschitz, beta: :math:`L` and :math:`\beta` of the loss in :math:`W` (:func:`remark4_constants`).
        c: the SGD step constant (step :math:`c/t`).
        steps: :math:`T`, SGD iterations.
        n_train: :math:`n`, training samples (``>= 2``).
    """
    p = norm_products(norms)
    big_c, lip, b, c = (_positive(v, k) for v, k in ((input_norm, "input_norm"), (lipschitz, "lipschitz"),
                                                      (beta, "beta"), (c, "c")))  # fmt: skip
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive int, got {steps!r}")
    if isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 2:
        raise ValueError(f"`n_train` must be an int >= 2, got {n_train!r}")
    if p.depth < 2:
        raise ValueError("Theorems 5-6 need k >= 2 weight matrices (an activation between them)")
    bc = b * c
    e1, e2 = 1.0 / (bc + 1.0), bc / (bc + 1.0)
    inner = sum(p.alpha1[: p.depth - 1])
    # in logs: the powers of T and of the products of norms overflow floats for deep networks
    log_gamma5 = e1 * math.log(2 * p.alpha0[-1] * inner * big_c) + e2 * math.log(2 * p.alpha0[-1])
    log_up = math.log((1 + 1 / bc) / (n_train - 1)) + e1 * math.log(2 * c * lip) + e2 * math.log(steps) + log_gamma5
    return math.exp(log_up) if log_up < 709.0 else math.inf


def theorem6_factor(norms: Sequence[float], noise_std: float, *, beta: float, c: float) -> float:
    r"""Theorem 6's factor :math:`\big(\alpha_{k,1} / (2\sigma\alpha_{k,0}\sum_{i<k}\alpha_{i,1})\big)^{1/(\beta c+1)}`."""
    p = norm_products(norms)
    sigma = _positive(noise_std, "noise_std")
    if p.depth < 2:
        raise ValueError("Theorems 5-6 need k >= 2 weight matrices (an activation between them)")
    inner = sum(p.alpha1[: p.depth - 1])
    return (p.alpha1[-1] / (2 * sigma * p.alpha0[-1] * inner)) ** (-theorem6_exponent(beta, c))


def theorem6_bound(
    norms: Sequence[float], noise_std: float, *, input_norm: float, lipschitz: float, beta: float, c: float,
    steps: int, n_train: int,
) -> float:  # fmt: skip
    r"""Theorem 6's bound on Smooth-Grad's stability error: :func:`theorem5_bound` × :func:`theorem6_factor`.

    Args:
        norms, input_norm, lipschitz, beta, c, steps, n_train: as :func:`theorem5_bound`.
        noise_std: σ in input units.
    """
    up = theorem5_bound(norms, input_norm=input_norm, lipschitz=lipschitz, beta=beta, c=c, steps=steps,
                        n_train=n_train)  # fmt: skip
    return up * theorem6_factor(norms, noise_std, beta=beta, c=c)


# ---- reading the constants off a network ---------------------------------------------------------
#: activations with a global Lipschitz constant ≤ 1 and a finite smoothness :math:`\sup|\phi''|`
#: (softplus with ``beta`` b: b/4; tanh: 4/(3√3); sigmoid: 1/(6√3); identity: 0)
ACTIVATION_CONSTANTS: dict[type, Any] = {
    nn.Softplus: lambda m: float(m.beta) / 4.0,
    nn.Tanh: lambda m: 4.0 / (3.0 * math.sqrt(3.0)),
    nn.Sigmoid: lambda m: 1.0 / (6.0 * math.sqrt(3.0)),
    nn.Identity: lambda m: 0.0,
}
_LINEAR = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten)


@dataclass(frozen=True)
class ChainConstants:
    """Constants of a network of the theory's form, read off its weights (:func:`smooth_chain_constants`).

    Attributes:
        norms: per weight "layer" (the linear maps between two activations, composed), a bound on
            its spectral norm: the product of its maps' norms (exact for ``Linear``; power iteration
            for convolutions and pooling, converged to ``tol``: an estimate from below of each
            map's norm, see ``iterations``).
        smoothness: the largest activation smoothness in the chain.
        dim: the input dimension :math:`m`.
        iterations: power-iteration steps per non-``Linear`` map (0 for exact norms).
    """

    norms: tuple[float, ...]
    smoothness: float
    dim: int
    iterations: tuple[int, ...]

    @property
    def gamma(self) -> float:
        """Proposition 7's :math:`\\gamma` of this network (:func:`proposition7_gamma`)."""
        return proposition7_gamma(self.norms, self.smoothness)


def _operator_norm(module: nn.Module, shape: tuple[int, ...], tol: float, max_iter: int) -> tuple[float, int, tuple]:
    """Spectral norm of ``module``'s linear part on inputs of ``shape`` (no batch axis), its output shape."""
    if isinstance(module, nn.Linear):
        return float(torch.linalg.matrix_norm(module.weight.detach().double(), ord=2)), 0, (module.out_features,)
    if isinstance(module, nn.Flatten):
        return 1.0, 0, (math.prod(shape),)

    def linear(v: torch.Tensor) -> torch.Tensor:  # the map without its bias
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            conv = nn.functional.conv1d if isinstance(module, nn.Conv1d) else nn.functional.conv2d
            return conv(v, module.weight.detach().double(), None, module.stride, module.padding, module.dilation,
                        module.groups)  # fmt: skip
        return module(v)

    g = torch.Generator().manual_seed(0)
    v = torch.randn((1, *shape), generator=g, dtype=torch.float64)
    v /= v.norm()
    out_shape = tuple(linear(v).shape[1:])
    norm, it = 0.0, 0
    for it in range(1, max_iter + 1):
        v.requires_grad_(True)
        y = linear(v)
        (w,) = torch.autograd.grad(y, v, grad_outputs=y)  # Aᵀ A v
        new = float(w.norm()) ** 0.5  # ‖Aᵀ A v‖^(1/2) → σ_max as v → the top singular vector
        v = (w / w.norm()).detach()
        if abs(new - norm) <= tol * new:
            norm = new
            break
        norm = new
    return norm, it, out_shape


def smooth_chain_constants(
    model: nn.Module, input_shape: Sequence[int], *, tol: float = 1e-7, max_iter: int = 2000
) -> ChainConstants:
    r"""Layer-norm bounds and activation smoothness of a ``Sequential`` of the theory's form.

    The model must alternate linear maps (``Linear``, ``Conv1d/2d``, ``AvgPool2d``,
    ``AdaptiveAvgPool2d``, ``Flatten``; consecutive ones form one weight "layer", whose norm is
    bounded by the product of theirs) and activations of :data:`ACTIVATION_CONSTANTS` (1-Lipschitz,
    smooth). Biases do not change the gradient's Lipschitz constant, so they are allowed. ReLU,
    max-pooling, BatchNorm in training mode or any other module raise a ``ValueError`` naming it:
    the theory's smoothness assumption fails there, and no bound is computed.

    Args:
        model: an ``nn.Sequential`` (nested ``Sequential`` are flattened).
        input_shape: one input's shape, without the batch axis (``(1, 28, 28)``).
        tol, max_iter: power iteration's relative tolerance and most steps (convolutions, pooling).
    Returns:
        :class:`ChainConstants` (its ``gamma`` is Proposition 7's).
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"`model` must be an nn.Sequential of linear maps and smooth activations, got {type(model).__name__}")

    def flat(m: nn.Module) -> list[nn.Module]:
        return [c for child in m for c in flat(child)] if isinstance(m, nn.Sequential) else [m]

    modules = flat(model)
    shape = tuple(int(v) for v in input_shape)
    norms, iterations, smooth, current = [], [], 0.0, 1.0
    for i, m in enumerate(modules):
        if isinstance(m, _LINEAR):
            norm, it, shape = _operator_norm(m, shape, tol, max_iter)
            current *= norm
            iterations.append(it)
        elif type(m) in ACTIVATION_CONSTANTS:
            if type(m) is not nn.Identity:
                norms.append(current)
                current = 1.0
            smooth = max(smooth, ACTIVATION_CONSTANTS[type(m)](m))
        else:
            raise ValueError(f"layer {i} ({type(m).__name__}) is neither a linear map nor a smooth 1-Lipschitz "
                             f"activation ({', '.join(t.__name__ for t in ACTIVATION_CONSTANTS)}): the theory's "
                             "assumptions do not hold for this network")  # fmt: skip
    norms.append(current)
    if len(norms) < 2:
        raise ValueError("`model` has no activation: a linear model's gradient is constant (γ = 0)")
    return ChainConstants(tuple(norms), smooth, math.prod(int(v) for v in input_shape), tuple(iterations))
