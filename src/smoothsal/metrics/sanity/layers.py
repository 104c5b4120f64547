r"""Which layers MPRT randomizes, and how one is re-initialised (Adebayo et al. 2018, arXiv:1810.03292).

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
from collections.abc import Iterator, Sequence
from typing import Union

import torch
from torch import Tensor, nn

from smoothsal._core.validation import check_choice, check_positive_int

__all__ = ["INITS", "Seed", "randomizable_layers", "randomize_layers", "spaced_layers"]

Seed = Union[int, torch.Generator]

#: re-initialisations of :func:`randomize_layers`
INITS: tuple[str, ...] = ("default", "scaled", "permute")

_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*, SyncBatchNorm
    nn.GroupNorm,
    nn.LayerNorm,
)


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
