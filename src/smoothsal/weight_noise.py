r"""Noise on the model's weights: NoiseGrad and FusionGrad (Bykov et al., AAAI 2022, arXiv:2106.10185).

SmoothGrad perturbs the input; NoiseGrad perturbs the *model*, the analogue of the randomness of
training. Its weights are multiplied by noise (the paper's eq. 4, multiplicative Gaussian noise
centred on 1):

.. math:: \tilde\theta_j = \theta \odot (1 + \eta_j), \qquad \eta_j \sim \mathcal N(0, \sigma_w^2 I),

and a method's map is averaged over the perturbed models,
:math:`\frac1n \sum_j M_c(x; \tilde\theta_j)`. FusionGrad perturbs both, each sample :math:`j`
taking its own weight draw and its own input draw, :math:`M_c(x + \epsilon_j; \tilde\theta_j)`.
:class:`~smoothsal.smoothing.Smooth` runs both (``Smooth(method, noise_level=σ_in,
weight_noise=σ_w)``); this module holds the weight half:

* :class:`WeightNoise`: which parameters are perturbed (every parameter, or those of the named
  layers), and the draws, in a fixed order from one generator: draw :math:`j` is the same whatever
  the batch size, and every image of a batch sees it (common random numbers, as for the input noise);
* :meth:`WeightNoise.applied`: a context in which the model computes with :math:`\tilde\theta_j`. It swaps
  the modules' parameter *entries* for new tensors and puts the original ``nn.Parameter`` objects
  back on exit, also when the block raises (the mechanism of :func:`torch.func.functional_call`,
  kept here as a context because an attribution method calls the model itself, through its hooks
  and layers). The user's tensors are never written: the parameters afterwards are the same
  objects with the same values and version counters. BatchNorm folding is off inside the block
  (a folded copy would hold the unperturbed weights).

**Why one weight draw per sample.** Pairing each weight draw with one input draw keeps the
:math:`n` samples independent, so :class:`~smoothsal.smoothing.Smooth`'s per-pixel standard
error, ``tol`` and VarGrad keep their meaning; the mean estimates the same expectation as the
paper's :math:`M \times N` double average. A model call evaluates one weight draw, with every image's
input draw of that sample as its rows.

**Memory.** One draw holds one perturbed copy of the chosen parameters (of the named layers only,
with ``layers``), freed before the next.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from smoothsal._core.validation import check_nonnegative
from smoothsal.execution.folding import folding
from smoothsal.noise import SeedSpec, derived_generator

__all__ = ["WeightNoise", "weight_generator"]

#: the weight draws' stream of :func:`smoothsal.noise.derived_generator`
WEIGHT_STREAM = 0


@dataclass(frozen=True)
class _Slot:
    """One parameter entry of one module: ``module._parameters[name]``."""

    module: nn.Module
    name: str


class WeightNoise:
    r"""Multiplicative Gaussian noise on a model's parameters, :math:`\theta \odot (1 + \eta)`, :math:`\eta \sim \mathcal N(0, \sigma_w^2)`.

    Args:
        model: the model whose parameters are perturbed (never modified).
        sigma: :math:`\sigma_w`, the standard deviation of the relative noise (0.2: each weight
            moves by about 20 % of its own size).
        layers: names of modules of ``model`` (as in ``model.named_modules()``) whose parameters,
            their submodules' included, are perturbed; ``None``: every parameter.

    Raises:
        ValueError: ``sigma`` is negative, a name in ``layers`` is not a module of ``model``, or the
            chosen layers hold no parameter.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
        >>> noise = WeightNoise(model, 0.2, layers=["2"])
        >>> noise.names
        ('2.weight', '2.bias')
    """

    def __init__(self, model: nn.Module, sigma: float, layers: Sequence[str] | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module to perturb its weights, got {type(model).__name__}")
        self.sigma = check_nonnegative(sigma, "weight_noise")
        self.model = model
        modules = dict(model.named_modules())
        if layers is None:
            chosen = [("", model)]
        else:
            if isinstance(layers, str):
                layers = (layers,)
            unknown = [name for name in layers if name not in modules]
            if unknown:
                sample = [n for n in modules if n][:12]
                raise ValueError(
                    f"`weight_noise_layers` names {unknown}, which are not modules of the model; "
                    f"expected names from model.named_modules(), e.g. {sample}"
                )
            chosen = [(name, modules[name]) for name in layers]
        # unique tensors in a fixed order, each with every module entry that holds it (tied weights
        # share one draw)
        self._tensors: list[Tensor] = []
        self._names: list[str] = []
        self._slots: list[list[_Slot]] = []
        index: dict[int, int] = {}
        for prefix, root in chosen:
            for mod_name, module in root.named_modules():
                for p_name, p in module._parameters.items():
                    if p is None:
                        continue
                    k = index.get(id(p))
                    if k is None:
                        k = index[id(p)] = len(self._tensors)
                        self._tensors.append(p)
                        self._names.append(".".join(s for s in (prefix, mod_name, p_name) if s))
                        self._slots.append([])
                    slot = _Slot(module, p_name)
                    if slot not in self._slots[k]:
                        self._slots[k].append(slot)
        if not self._tensors:
            where = f"the modules {list(layers)}" if layers is not None else "the model"
            raise ValueError(f"`weight_noise`: {where} hold(s) no parameter to perturb")

    @property
    def names(self) -> tuple[str, ...]:
        """The perturbed parameters' names, in the order they are drawn."""
        return tuple(self._names)

    def __repr__(self) -> str:
        return f"WeightNoise(sigma={self.sigma}, parameters={len(self._names)})"

    def draw(self, generator: torch.Generator) -> list[Tensor]:
        r"""One draw :math:`\theta \odot (1 + \eta)` of every chosen parameter, in :attr:`names` order.

        The standard noise of each parameter is drawn from ``generator`` in that order (on the
        generator's device, in the parameter's dtype), so draw :math:`j` of a generator never
        depends on anything but :math:`j`.
        """
        out = []
        for p in self._tensors:
            eta = torch.randn(p.shape, generator=generator, device=generator.device, dtype=p.dtype).to(p.device)
            out.append((p.detach() * (1.0 + self.sigma * eta)).requires_grad_(p.requires_grad))
        return out

    @contextlib.contextmanager
    def applied(self, values: Sequence[Tensor]) -> Iterator[None]:
        """Context: the model computes with ``values`` (a :meth:`draw`) in place of its parameters."""
        with _swapped([s for slots in self._slots for s in slots],
                       [v for v, slots in zip(values, self._slots) for _ in slots]):  # fmt: skip
            yield


@contextlib.contextmanager
def _swapped(slots: Sequence[_Slot], values: Sequence[Tensor]) -> Iterator[None]:
    """Context: each ``slot.module._parameters[slot.name]`` is ``value`` inside, the original after.

    The original entries (the user's ``nn.Parameter`` objects) are put back on exit whether the
    block returns or raises; their data is never written. BatchNorm folding is off inside.
    """
    saved = [(s, s.module._parameters[s.name]) for s in slots]
    try:
        for s, v in zip(slots, values):
            s.module._parameters[s.name] = v
        with folding(False):
            yield
    finally:
        for s, original in saved:
            s.module._parameters[s.name] = original


def weight_generator(seed: SeedSpec, device: torch.device | str | None = None) -> torch.Generator:
    """The generator of the weight draws for ``seed``, the input noise's seed (:func:`smoothsal.noise.derived_generator`, stream 0)."""
    return derived_generator(seed, device, stream=WEIGHT_STREAM)
