r"""One training run: the optimizer, the per-step learning rate, the augmentations, the loop.

Options beyond plain Adam/SGD:

* **learning-rate rules** (:func:`step_size`, set on the optimizer before every step ``t = 1, 2, ...``):
  constant; step decay; one-cycle (linear warm-up over the first 15 % of the steps, then cosine to
  zero); and :math:`\alpha_t = c / (t + t_0)`, which satisfies the :math:`\alpha_t \le c/t` of
  Ye & Farnia (2025, Theorems 5–6) for every :math:`t_0 \ge 0` (exactly :math:`c/t` at
  :math:`t_0 = 0`);
* **input-noise augmentation** (SmoothGrad paper, Smilkov et al. 2017, "adding noise during
  training", Figs. 8–9): each step trains on :math:`x + \epsilon`,
  :math:`\epsilon \sim \mathcal N(0, \sigma^2 I)`, :math:`\sigma = \text{input\_noise}\,(x_{max} - x_{min})`
  per sample, drawn fresh every step;
* **noisy SGD** (Ye & Farnia 2025, eq. 3): minimise the smoothed loss

  .. math:: \min_W \; \mathbb E_{V \sim \mathcal N(0, \sigma^2 I)}\; \ell(W + V)

  whose gradient :math:`\mathbb E_V \nabla \ell(W + V)` we estimate each step with
  ``weight_noise_samples`` draws of :math:`V`; the averaged gradient is applied to :math:`W`
  (the noisy weights are never stored in the model);
* random shifts of up to ±2 pixels, label smoothing, a loss scale, and training until the
  accuracy on the training labels reaches a target (to fit permuted labels).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from smoothsal.execution.calls import predict
from smoothsal.datasets.base import ImageDataset
from smoothsal.studies.train.config import TrainConfig

#: maximal random shift (pixels) of ``augment=True``
MAX_SHIFT = 2
#: share of the steps of ``"onecycle"``'s linear warm-up, and its starting fraction of ``lr``
ONECYCLE_WARMUP, ONECYCLE_START = 0.15, 1 / 25

LossFn = Callable[[Tensor, Tensor], Tensor]
#: called after every epoch with ``(epoch index, model)`` (the model in train mode)
EpochCallback = Callable[[int, nn.Module], None]


@dataclass
class FitResult:
    """What a run did: the last epoch's mean loss, epochs and steps run, and the accuracy on the
    training labels after each checked epoch (only with ``fit_train_accuracy``)."""

    final_loss: float
    epochs_run: int
    steps: int
    fit_history: list[float] = field(default_factory=list)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Mini-batches per pass over ``n_train`` samples (the last one may be short)."""
    return math.ceil(n_train / batch_size)


def step_size(config: TrainConfig, t: int, steps_per_epoch: int) -> float:
    r"""The learning rate of step ``t`` (1-based, counted over the whole run).

    * ``"constant"``: ``lr``;
    * ``"step"``: ``lr · lr_gamma^j``, ``j`` = milestones ``<=`` the step's (0-based) epoch;
    * ``"onecycle"``: linear from ``lr/25`` to ``lr`` over the first 15 % of the
      ``epochs · steps_per_epoch`` steps, then :math:`\frac{lr}{2}(1 + \cos(\pi u))`, ``u`` from 0 to 1;
    * ``"inverse_t"``: :math:`c / (t + t_0)` with ``c = lr`` and ``t0 = lr_offset``.
    """
    if t < 1:
        raise ValueError(f"`t` must be >= 1 (steps are counted from 1), got {t}")
    if config.lr_schedule == "constant":
        return config.lr
    if config.lr_schedule == "inverse_t":
        return config.lr / (t + config.lr_offset)
    epoch = (t - 1) // steps_per_epoch
    if config.lr_schedule == "step":
        return config.lr * config.lr_gamma ** sum(epoch >= m for m in config.lr_milestones)
    total = config.epochs * steps_per_epoch  # "onecycle"
    warm = max(1, math.ceil(ONECYCLE_WARMUP * total))
    if t <= warm:
        return config.lr * (ONECYCLE_START + (1 - ONECYCLE_START) * (t - 1) / warm)
    return config.lr * 0.5 * (1 + math.cos(math.pi * (t - warm) / (total - warm + 1)))


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Adam, or SGD with ``config.momentum`` (0: plain SGD); ``weight_decay`` on both. The learning
    rate is set before every step by :func:`step_size`."""
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def make_loss(config: TrainConfig) -> LossFn:
    """``loss_scale · cross_entropy(logits, labels, label_smoothing)`` (mean over the batch)."""
    plain = partial(F.cross_entropy, label_smoothing=config.label_smoothing)
    if config.loss_scale == 1:
        return plain
    return lambda logits, labels: config.loss_scale * plain(logits, labels)


def random_shift(images: Tensor, max_shift: int, gen: torch.Generator) -> Tensor:
    """Shift each image by its own integer offset in ``[-max_shift, max_shift]`` (border replicated)."""
    if max_shift == 0:
        return images
    b, c, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4, mode="replicate")  # [B, C, H+2m, W+2m]
    offsets = torch.randint(0, 2 * max_shift + 1, (2, b), generator=gen)  # (dy, dx) per sample
    rows = offsets[0][:, None] + torch.arange(h)  # [B, H]
    cols = offsets[1][:, None] + torch.arange(w)  # [B, W]
    batch = torch.arange(b)[:, None, None, None]
    chans = torch.arange(c)[None, :, None, None]
    return padded[batch, chans, rows[:, None, :, None], cols[:, None, None, :]]  # [B, C, H, W]


def add_input_noise(images: Tensor, noise_level: float, gen: torch.Generator) -> Tensor:
    r"""``x + N(0, σ²)`` with :math:`σ = \text{noise\_level}\,(x_{max} - x_{min})` per sample."""
    if noise_level == 0:
        return images
    flat = images.flatten(1)  # [B, C*H*W]
    sigma = noise_level * (flat.amax(1) - flat.amin(1))  # [B]
    noise = torch.randn(images.shape, generator=gen, dtype=images.dtype)
    return images + sigma.view(-1, *([1] * (images.dim() - 1))) * noise


def noisy_weight_backward(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    sigma: float,
    n_samples: int,
    gen: torch.Generator,
    loss_fn: LossFn = F.cross_entropy,
) -> float:
    r"""Accumulate into ``.grad`` the Monte-Carlo gradient of the smoothed loss (seed eq. 3).

    .. math:: \nabla_W \mathbb E_V\, \ell(W + V) \approx \frac1m \sum_{j=1}^m \nabla \ell(W + V_j),
              \quad V_j \sim \mathcal N(0, \sigma^2 I)

    The perturbed weights only exist inside :func:`torch.func.functional_call`; the model's
    parameters are never modified. Returns the mean loss over the ``m = n_samples`` draws.
    """
    params = dict(model.named_parameters())
    total = 0.0
    for _ in range(n_samples):
        noisy = {name: p + sigma * torch.randn(p.shape, generator=gen, dtype=p.dtype) for name, p in params.items()}
        loss = loss_fn(functional_call(model, noisy, (inputs,)), labels) / n_samples
        loss.backward()  # d(p + V)/dp = I, so p.grad receives ∇ℓ(W + V_j) / m
        total += float(loss.detach())
    return total


def _generators(seed: int) -> dict[str, torch.Generator]:
    """One generator per source of randomness, so that switching one option on leaves the others' draws."""
    streams = ("order", "shift", "input_noise", "weight_noise")
    return {name: torch.Generator().manual_seed(seed * len(streams) + i) for i, name in enumerate(streams)}


def fit(
    model: nn.Module,
    train: ImageDataset,
    config: TrainConfig,
    on_epoch: EpochCallback | None = None,
    on_step: Callable[[], None] | None = None,
) -> FitResult:
    """Train ``model`` in place on ``train`` as ``config`` says; it ends in eval mode.

    ``on_epoch(epoch, model)`` runs after every epoch (e.g. a progress bar, weight-norm tracking);
    ``on_step()`` after every optimizer step. With ``config.fit_train_accuracy`` the run stops
    after the first epoch whose accuracy on ``train``'s own labels (no augmentation) reaches it.
    """
    gens = _generators(config.seed)
    optimizer = make_optimizer(config, model)
    loss_fn = make_loss(config)
    n = len(train)
    per_epoch = steps_per_epoch(n, config.batch_size)
    result = FitResult(float("nan"), 0, 0)
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(n, generator=gens["order"])
        total = 0.0
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            x, y = train.images[idx], train.labels[idx]
            if config.augment:
                x = random_shift(x, MAX_SHIFT, gens["shift"])
            x = add_input_noise(x, config.input_noise, gens["input_noise"])
            result.steps += 1
            lr = step_size(config, result.steps, per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            if config.weight_noise > 0:
                loss = noisy_weight_backward(
                    model, x, y, config.weight_noise, config.weight_noise_samples, gens["weight_noise"], loss_fn
                )
            else:  # V = 0: one evaluation is the exact expectation
                loss_t = loss_fn(model(x), y)
                loss_t.backward()
                loss = float(loss_t.detach())
            optimizer.step()
            if on_step is not None:
                on_step()
            total += loss * idx.numel()
        result.final_loss, result.epochs_run = total / n, epoch + 1
        if on_epoch is not None:
            on_epoch(epoch, model)
        if config.fit_train_accuracy is not None:
            result.fit_history.append(evaluate(model, train))
            model.train()
            if result.fit_history[-1] >= config.fit_train_accuracy:
                break
    model.eval()
    return result


@torch.no_grad()
def evaluate(model: nn.Module, dataset: ImageDataset, batch_size: int | None = None) -> float:
    """Top-1 accuracy of ``model`` (put in eval mode) on ``dataset`` (rows per call: the library's rule)."""
    model.eval()
    logits = predict(model, dataset.images, batch_size=batch_size)
    return int((logits.argmax(1) == dataset.labels).sum()) / len(dataset)

