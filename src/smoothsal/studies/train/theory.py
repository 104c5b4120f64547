r"""The assumption constants of a trained ``"smooth_mlp"``, for the bounds of :mod:`smoothsal.metrics.theory`.

Ye & Farnia (2025, §3–4) bound the stability (Theorems 5–6) and fidelity (Proposition 7) errors of
:math:`f_W(x) = W_k\sigma(\cdots\sigma(W_1x))` in terms of :math:`\lVert W_i\rVert_2 \le B_i`,
:math:`\lVert x\rVert \le C`, the input dimension :math:`m`, the SGD step constant :math:`c`
(:math:`\alpha_t \le c/t`), the steps :math:`T`, the samples :math:`n`, and the loss's Lipschitz and
smoothness constants :math:`L, \beta` in :math:`W`. :mod:`smoothsal.metrics.theory` computes the
bounds from these; :class:`TheoryConstants` holds them for one model trained by
:func:`~smoothsal.studies.train.recipes.theory_recipe`, and how each is obtained:

* :math:`B_i`: the largest spectral norm of :math:`W_i` over the **whole training trajectory**, as
  the theorems need (the final weights alone are not a bound): exact (SVD) at the initial weights
  and after every epoch, and after **every step** a warm-started power iteration (one
  :math:`W^\top W v` product per step; an estimate from below that tracks the top singular value;
  ``tracking_gap`` is its largest relative shortfall against the exact norm at the epoch ends);
* :math:`C = \sqrt m`, the norm of the brightest image in :math:`[0,1]^m`; the model's
  :class:`~smoothsal.studies.train.architectures.BallProjection` enforces it for noisy inputs too;
* σ is ``ShiftedSoftplus(β=4)``: 1-Lipschitz, σ(0) = 0, :math:`\sup|\sigma''| = 1` (the paper's
  1-smooth activation); the loss is cross-entropy times :math:`1/\sqrt2`, whose logit gradient
  :math:`(p - e_y)/\sqrt2` has norm at most 1 (plain cross-entropy is :math:`\sqrt2`-Lipschitz) and
  whose Hessian is at most :math:`1/(2\sqrt2)`: Remark 4's 1-Lipschitz, 1-smooth loss;
* :math:`L \le \alpha_{k,1}C` and :math:`\beta \le (3k + 1)\alpha_{k,1}^2C^2` (Remark 4,
  :func:`~smoothsal.metrics.theory.remark4_constants`); Proposition 7's γ from the :math:`B_i`
  (:func:`~smoothsal.metrics.theory.proposition7_gamma`);
* two measured lower bounds show how loose the analytic ones are: ``lipschitz_estimate``, the
  largest per-sample :math:`\lVert\nabla_W\ell\rVert` over training samples at the final weights
  (:math:`\le L`), and ``gamma_estimate``, the largest
  :math:`\lVert\nabla_x f_y(x+\delta) - \nabla_x f_y(x)\rVert / \lVert\delta\rVert` over training
  samples with :math:`\delta \sim \mathcal N(0, 0.15^2 I)` (:math:`\le \gamma`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from smoothsal.datasets.base import ImageDataset
from smoothsal.metrics.theory import (
    norm_products,
    proposition7_bound,
    proposition7_gamma,
    remark4_constants,
    theorem5_bound,
    theorem6_bound,
)
from smoothsal.studies.train.architectures import SMOOTH_BETA, linear_layers, smooth_mlp_radius
from smoothsal.studies.train.config import TrainConfig
from smoothsal.studies.train.fit import make_loss

#: training samples probed by the two estimates, and the σ of ``gamma_estimate``'s perturbation
N_PROBE, PROBE_SIGMA, _PROBE_SEED = 256, 0.15, 77


def spectral_norms(model: nn.Module) -> list[float]:
    """``‖W_i‖₂`` (largest singular value) of each linear layer of ``model``, in forward order."""
    with torch.no_grad():
        return [float(torch.linalg.matrix_norm(layer.weight.detach().double(), ord=2)) for layer in linear_layers(model)]


class NormTracker:
    """The largest ``‖W_i‖₂`` of each linear layer over a training run.

    ``history`` holds the exact norms (SVD) now and after every epoch (call the tracker as
    ``on_epoch``); :meth:`step` (after every optimizer step) advances one warm-started power
    iteration per layer, whose estimate ``‖W v‖`` (``‖v‖ = 1``, a lower bound of ``‖W‖₂``) updates
    ``step_maxima``. ``maxima`` is the larger of the two for each layer.
    """

    def __init__(self, model: nn.Module) -> None:
        self.history: list[list[float]] = [spectral_norms(model)]
        self.step_maxima = list(self.history[0])
        self.gaps: list[float] = []
        with torch.no_grad():  # start from the exact top right singular vectors
            self._vectors = [torch.linalg.svd(layer.weight.detach(), full_matrices=False).Vh[0].clone()
                             for layer in linear_layers(model)]  # fmt: skip
        self._estimates = list(self.history[0])

    @torch.no_grad()
    def step(self, model: nn.Module) -> None:
        for i, layer in enumerate(linear_layers(model)):
            w = layer.weight.detach()
            v = w.T @ (w @ self._vectors[i])
            v /= v.norm()
            self._vectors[i] = v
            self._estimates[i] = float((w @ v).norm())
            self.step_maxima[i] = max(self.step_maxima[i], self._estimates[i])

    def __call__(self, epoch: int, model: nn.Module) -> None:
        exact = spectral_norms(model)
        self.history.append(exact)
        self.gaps.append(max((e - s) / e for e, s in zip(exact, self._estimates)))

    @property
    def maxima(self) -> list[float]:
        return [max(max(column), step) for column, step in zip(zip(*self.history), self.step_maxima)]


@dataclass(frozen=True)
class TheoryConstants:
    """The assumption constants of one trained ``"smooth_mlp"`` (see the module docstring).

    Args:
        layers: k, the number of weight matrices.
        input_dim: m, the number of input values.
        input_norm_bound: C (``‖x‖ ≤ C`` for every network input).
        step_constant: c of the steps ``α_t = c / (t + t0) ≤ c / t``.
        step_offset: t0.
        steps: T, the SGD steps run.
        n_train: n, the training samples.
        batch_size: samples per SGD step (the theorems analyse one sample per step).
        weight_norms: B_i, the largest ``‖W_i‖₂`` over the training trajectory.
        final_weight_norms: ``‖W_i‖₂`` of the trained weights.
        tracking_gap: largest relative shortfall of the per-step power iteration against the exact
            norm at the epoch ends (how closely the per-step estimates track ``‖W_i‖₂``).
        lipschitz_estimate: largest per-sample ``‖∇_W ℓ‖`` at the trained weights (a lower bound on L).
        gamma_estimate: largest measured Lipschitz ratio of the input gradient (a lower bound on γ).
        activation_smoothness: ``sup |σ''|`` (β/4 = 1).
        loss_lipschitz, loss_smoothness: of the scaled loss in the logits (1 and 1/(2√2)).
    """

    layers: int
    input_dim: int
    input_norm_bound: float
    step_constant: float
    step_offset: int
    steps: int
    n_train: int
    batch_size: int
    weight_norms: tuple[float, ...]
    final_weight_norms: tuple[float, ...]
    tracking_gap: float
    lipschitz_estimate: float
    gamma_estimate: float
    activation_smoothness: float = SMOOTH_BETA / 4
    loss_lipschitz: float = 1.0
    loss_smoothness: float = 1 / (2 * math.sqrt(2))

    @property
    def gamma(self) -> float:
        r"""Proposition 7's :math:`\gamma = s\,\alpha_{k,0}\sum_{i<k}\alpha_{i,0}` (s = ``activation_smoothness``)."""
        return proposition7_gamma(self.weight_norms, self.activation_smoothness)

    @property
    def lipschitz_bound(self) -> float:
        r"""Remark 4's :math:`L \le \alpha_{k,1} C` (the loss 1-Lipschitz in the logits)."""
        return remark4_constants(self.weight_norms, self.input_norm_bound)[0]

    @property
    def smoothness_bound(self) -> float:
        r"""Remark 4's :math:`\beta \le (3k + 1)\alpha_{k,1}^2 C^2` (σ and the loss 1-smooth)."""
        return remark4_constants(self.weight_norms, self.input_norm_bound)[1]

    def fidelity_bound(self, noise_std: float, method: str = "gradient") -> float:
        r"""Proposition 7's bound, :math:`\gamma\sigma\sqrt m` (``"gradient"``) or
        :math:`\gamma(3C + 1)\sigma\sqrt m` (``"integrated_gradients"``); ``noise_std`` = σ in pixel units."""
        return proposition7_bound(self.gamma, noise_std, self.input_dim, method=method, input_norm=self.input_norm_bound)

    def stability_bound(self, noise_std: float | None = None) -> float:
        r"""Theorem 5's bound on Simple-Grad's stability error (``noise_std=None``), or Theorem 6's on
        Smooth-Grad's at noise σ = ``noise_std`` (pixel units), with this model's c, T, n, L, β."""
        kw = {"input_norm": self.input_norm_bound, "lipschitz": self.lipschitz_bound, "beta": self.smoothness_bound,
              "c": self.step_constant, "steps": self.steps, "n_train": self.n_train}  # fmt: skip
        if noise_std is None:
            return theorem5_bound(self.weight_norms, **kw)
        return theorem6_bound(self.weight_norms, noise_std, **kw)

    def to_dict(self) -> dict[str, Any]:
        """The fields plus the derived constants (``derived`` is ignored by :meth:`from_dict`)."""
        products = norm_products(self.weight_norms)
        derived = {"alpha0": products.alpha0, "alpha1": products.alpha1, "gamma": self.gamma,
                   "lipschitz_bound": self.lipschitz_bound, "smoothness_bound": self.smoothness_bound,
                   "beta_c": self.smoothness_bound * self.step_constant}  # fmt: skip
        return {**asdict(self), "derived": derived}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TheoryConstants:
        fields = {k: v for k, v in data.items() if k != "derived"}
        for name in ("weight_norms", "final_weight_norms"):
            fields[name] = tuple(fields[name])
        return cls(**fields)


def _probe(train: ImageDataset) -> torch.Tensor:
    gen = torch.Generator().manual_seed(_PROBE_SEED)
    return torch.randperm(len(train), generator=gen)[: min(N_PROBE, len(train))]


def lipschitz_estimate(model: nn.Module, train: ImageDataset, config: TrainConfig) -> float:
    """Largest per-sample ``‖∇_W ℓ(W; x, y)‖₂`` (all parameters) over :data:`N_PROBE` training samples."""
    loss_fn = make_loss(config)
    params = [p for p in model.parameters() if p.requires_grad]
    best = 0.0
    for i in _probe(train).tolist():
        loss = loss_fn(model(train.images[i : i + 1]), train.labels[i : i + 1])
        grads = torch.autograd.grad(loss, params)
        best = max(best, float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads))))
    return best


def gamma_estimate(model: nn.Module, train: ImageDataset) -> float:
    r"""Largest :math:`\lVert\nabla_x f_y(x+\delta) - \nabla_x f_y(x)\rVert / \lVert\delta\rVert` over
    :data:`N_PROBE` training samples, :math:`\delta \sim \mathcal N(0, 0.15^2 I)`, y the true label."""
    idx = _probe(train)
    x, y = train.images[idx], train.labels[idx]
    delta = PROBE_SIGMA * torch.randn(x.shape, generator=torch.Generator().manual_seed(_PROBE_SEED + 1))

    def input_gradient(inputs: torch.Tensor) -> torch.Tensor:
        inputs = inputs.clone().requires_grad_(True)
        model(inputs).gather(1, y[:, None]).sum().backward()
        return inputs.grad.flatten(1)  # [N, m]

    ratio = (input_gradient(x + delta) - input_gradient(x)).norm(dim=1) / delta.flatten(1).norm(dim=1)
    return float(ratio.max())


def theory_constants(
    model: nn.Module, config: TrainConfig, train: ImageDataset, steps: int, tracker: NormTracker
) -> TheoryConstants:
    """:class:`TheoryConstants` of a trained ``"smooth_mlp"`` (``model`` is left in eval mode)."""
    if config.arch != "smooth_mlp":
        raise ValueError(f"theory constants exist for arch 'smooth_mlp' only, got {config.arch!r}")
    model.eval()
    channels = train.image_shape[0]
    return TheoryConstants(
        layers=len(linear_layers(model)),
        input_dim=channels * config.image_size**2,
        input_norm_bound=smooth_mlp_radius(channels, config.image_size),
        step_constant=config.lr,
        step_offset=config.lr_offset,
        steps=steps,
        n_train=len(train),
        batch_size=config.batch_size,
        weight_norms=tuple(tracker.maxima),
        final_weight_norms=tuple(tracker.history[-1]),
        tracking_gap=max(tracker.gaps, default=0.0),
        lipschitz_estimate=lipschitz_estimate(model, train, config),
        gamma_estimate=gamma_estimate(model, train),
        loss_lipschitz=config.loss_scale * math.sqrt(2),
        loss_smoothness=config.loss_scale / 2,
    )
