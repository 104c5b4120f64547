r"""The constants of Ye & Farnia (2025, §3–4) for a trained ``"smooth_mlp"``, bounded and estimated.

The paper's network is :math:`f_W(x) = W_k\sigma(W_{k-1}\sigma(\cdots\sigma(W_1x)))`, with
:math:`\lVert W_i\rVert_2 \le B_i`, :math:`\lVert x\rVert \le C`, σ 1-Lipschitz with
:math:`\sigma(0) = 0`, and a loss that is 1-Lipschitz in the logits. With
:math:`\psi_{t,0} = \prod_{i \le t} B_i` and :math:`\psi_{t,1} = \sum_{i \le t}\prod_{j \le t, j \ne i} B_j`:

* Remark 4 (regular SGD, σ and the loss 1-smooth): the loss is :math:`L`-Lipschitz and
  :math:`\beta`-smooth in :math:`W` with :math:`L \le \psi_{k,1} C` and
  :math:`\beta \le (3k + 1)\psi_{k,1}^2 C^2`;
* Theorems 5–6 take SGD steps :math:`\alpha_t \le c/t` for :math:`T` steps on :math:`n` samples;
  Theorem 5's bound holds :math:`(2\psi_{k,0}\sum_{i<k}\psi_{i,1}C)^{1/(\beta c+1)}` and Theorem 6
  multiplies it by :math:`(\psi_{k,1} / (2\sigma\psi_{k,0}\sum_{i<k}\psi_{i,1}))^{1/(\beta c+1)}`;
* Proposition 7: with :math:`\gamma = \psi_{k,0}\sum_{i=1}^{k-1}\psi_{i,0}`, the fidelity error of
  SmoothGrad is at most :math:`\gamma\sigma\sqrt m` and that of smoothed IG at most
  :math:`\gamma(3C + 1)\sigma\sqrt m` (:meth:`TheoryConstants.fidelity_bound`).

How we get each constant for a ``"smooth_mlp"`` (k = 2) trained by
:func:`smoothsal.studies.train.recipes.theory_recipe`:

* :math:`B_i`: the largest spectral norm :math:`\lVert W_i\rVert_2` seen at the initial weights and
  after every epoch (the norms grow while the step shrinks, so the last one is usually the
  largest; both the maximum and the final norms are kept);
* :math:`C = \sqrt m` (every image in :math:`[0,1]^m`; :class:`~smoothsal.studies.train.architectures.BallProjection`
  enforces it for noisy inputs too);
* σ is ``ShiftedSoftplus(β=4)``: 1-Lipschitz, 1-smooth, σ(0) = 0; the loss is cross-entropy
  times :math:`1/\sqrt2`: its logit gradient :math:`(p - e_y)/\sqrt2` has norm at most 1 (plain
  cross-entropy is only :math:`\sqrt2`-Lipschitz) and its Hessian at most :math:`1/(2\sqrt2)`;
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
from smoothsal.studies.train.architectures import SMOOTH_BETA, linear_layers, smooth_mlp_radius
from smoothsal.studies.train.config import TrainConfig
from smoothsal.studies.train.fit import make_loss

#: training samples probed by the two estimates, and the σ of ``gamma_estimate``'s perturbation
N_PROBE, PROBE_SIGMA, _PROBE_SEED = 256, 0.15, 77


def psi(norms: list[float] | tuple[float, ...], t: int, i: int) -> float:
    r""":math:`\psi_{t,i}`: the sum over the (t − i)-subsets of :math:`B_1..B_t` of their products (i = 0 or 1)."""
    if i not in (0, 1) or not 1 <= t <= len(norms):
        raise ValueError(f"psi needs i in (0, 1) and 1 <= t <= {len(norms)}, got t={t}, i={i}")
    first = list(norms[:t])
    if i == 0:
        return math.prod(first)
    return sum(math.prod(first[:j] + first[j + 1 :]) for j in range(t))


def spectral_norms(model: nn.Module) -> list[float]:
    """``‖W_i‖₂`` (largest singular value) of each linear layer of ``model``, in forward order."""
    with torch.no_grad():
        return [float(torch.linalg.matrix_norm(layer.weight.detach().double(), ord=2)) for layer in linear_layers(model)]


class NormTracker:
    """Records :func:`spectral_norms` now and after every epoch (an ``on_epoch`` callback of
    :func:`~smoothsal.studies.train.fit.fit`); ``maxima`` is the largest norm of each layer seen."""

    def __init__(self, model: nn.Module) -> None:
        self.history: list[list[float]] = [spectral_norms(model)]

    def __call__(self, epoch: int, model: nn.Module) -> None:
        self.history.append(spectral_norms(model))

    @property
    def maxima(self) -> list[float]:
        return [max(column) for column in zip(*self.history)]


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
        weight_norms: B_i, the largest ``‖W_i‖₂`` over the initial weights and every epoch.
        final_weight_norms: ``‖W_i‖₂`` of the trained weights.
        lipschitz_estimate: largest per-sample ``‖∇_W ℓ‖`` at the trained weights (a lower bound on L).
        gamma_estimate: largest measured Lipschitz ratio of the input gradient (a lower bound on γ).
        activation_lipschitz, activation_smoothness: of σ (1 and β/4 = 1).
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
    lipschitz_estimate: float
    gamma_estimate: float
    activation_lipschitz: float = 1.0
    activation_smoothness: float = SMOOTH_BETA / 4
    loss_lipschitz: float = 1.0
    loss_smoothness: float = 1 / (2 * math.sqrt(2))

    @property
    def psi_k0(self) -> float:
        r""":math:`\psi_{k,0} = \prod_i B_i`."""
        return psi(self.weight_norms, self.layers, 0)

    @property
    def psi_k1(self) -> float:
        r""":math:`\psi_{k,1} = \sum_i \prod_{j \ne i} B_j`."""
        return psi(self.weight_norms, self.layers, 1)

    @property
    def sum_psi_i0(self) -> float:
        r""":math:`\sum_{i=1}^{k-1} \psi_{i,0}` (Proposition 7's γ)."""
        return sum(psi(self.weight_norms, i, 0) for i in range(1, self.layers))

    @property
    def sum_psi_i1(self) -> float:
        r""":math:`\sum_{i=1}^{k-1} \psi_{i,1}` (Theorems 5–6)."""
        return sum(psi(self.weight_norms, i, 1) for i in range(1, self.layers))

    @property
    def gamma(self) -> float:
        r"""Proposition 7's :math:`\gamma = \psi_{k,0}\sum_{i=1}^{k-1}\psi_{i,0}`."""
        return self.psi_k0 * self.sum_psi_i0

    @property
    def lipschitz_bound(self) -> float:
        r"""Remark 4's :math:`L \le \psi_{k,1} C` (times the loss's Lipschitz constant, 1 here)."""
        return self.loss_lipschitz * self.psi_k1 * self.input_norm_bound

    @property
    def smoothness_bound(self) -> float:
        r"""Remark 4's :math:`\beta \le (3k + 1)\psi_{k,1}^2 C^2` (σ and the loss 1-smooth)."""
        return (3 * self.layers + 1) * self.psi_k1**2 * self.input_norm_bound**2

    def fidelity_bound(self, sigma: float, method: str = "simple_grad") -> float:
        r"""Proposition 7: :math:`\gamma\sigma\sqrt m` (``"simple_grad"``) or
        :math:`\gamma(3C + 1)\sigma\sqrt m` (``"integrated_grad"``), σ the absolute noise std."""
        if not sigma >= 0:
            raise ValueError(f"`sigma` must be >= 0, got {sigma}")
        base = self.gamma * sigma * math.sqrt(self.input_dim)
        if method == "simple_grad":
            return base
        if method == "integrated_grad":
            return base * (3 * self.input_norm_bound + 1)
        raise ValueError(f"`method` must be one of ['simple_grad', 'integrated_grad'], got {method!r}")

    def to_dict(self) -> dict[str, Any]:
        """The fields plus the derived constants (``derived`` is ignored by :meth:`from_dict`)."""
        names = ("psi_k0", "psi_k1", "sum_psi_i0", "sum_psi_i1", "gamma", "lipschitz_bound", "smoothness_bound")
        return {**asdict(self), "derived": {name: getattr(self, name) for name in names}}

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
        lipschitz_estimate=lipschitz_estimate(model, train, config),
        gamma_estimate=gamma_estimate(model, train),
        loss_lipschitz=config.loss_scale * math.sqrt(2),
        loss_smoothness=config.loss_scale / 2,
    )
