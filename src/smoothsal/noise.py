r"""Noise for smoothing, written once: σ from the value range, standard-noise samplers, generators.

SmoothGrad (Smilkov et al. 2017, arXiv:1706.03825, §3) gives the noise level as a fraction of
the input's value range:

.. math:: \sigma = \text{noise\_level} \cdot (x_{max} - x_{min})

per sample (:func:`noise_sigma`), or of a fixed ``value_range=(lo, hi)`` for every sample.
A sampler returns *standard* noise (zero mean, unit variance), which is then scaled by σ, so
``noise_level`` keeps its meaning whatever the sampler.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Union

import torch
from torch import Tensor

__all__ = ["SAMPLERS", "Sampler", "SeedSpec", "make_generator", "noise_sigma", "standard_sampler", "value_span"]

SeedSpec = Union[int, torch.Generator, None]
#: ``(shape, generator, device, dtype) -> standard noise`` of that shape.
Sampler = Callable[[tuple[int, ...], torch.Generator, torch.device, torch.dtype], Tensor]


def _gaussian(shape: tuple[int, ...], gen: torch.Generator, device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.randn(shape, generator=gen, device=gen.device, dtype=dtype).to(device)


def _uniform(shape: tuple[int, ...], gen: torch.Generator, device: torch.device, dtype: torch.dtype) -> Tensor:
    # uniform on [-sqrt(3), sqrt(3)]: zero mean, unit variance
    u = torch.rand(shape, generator=gen, device=gen.device, dtype=dtype).to(device)
    return (u * 2.0 - 1.0) * math.sqrt(3.0)


#: Named samplers: ``"gaussian"`` (the paper) and ``"uniform"`` (same variance).
SAMPLERS: dict[str, Sampler] = {"gaussian": _gaussian, "uniform": _uniform}


def standard_sampler(sampler: str | Sampler) -> Sampler:
    """The sampler named ``sampler`` (:data:`SAMPLERS`), or ``sampler`` itself if callable."""
    if callable(sampler):
        return sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"`sampler` must be one of {sorted(SAMPLERS)} or a callable, got {sampler!r}")
    return SAMPLERS[sampler]


def make_generator(seed: SeedSpec, device: torch.device | str | None = None) -> torch.Generator:
    """A ``torch.Generator`` from ``seed``.

    An int seeds a fresh generator (the same stream every call); a generator is used as is (and
    advanced); ``None`` seeds a fresh generator from the operating system.

    Example:
        >>> a = torch.randn(3, generator=make_generator(7))
        >>> bool((a == torch.randn(3, generator=make_generator(7))).all())
        True
    """
    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device=device if device is not None else "cpu")
    if seed is None:
        gen.seed()
        return gen
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"`seed` must be an int, a torch.Generator or None, got {type(seed).__name__}")
    return gen.manual_seed(seed)


def value_span(inputs: Tensor, value_range: tuple[float, float] | None = None) -> Tensor:
    """``x_max − x_min`` of each sample ``[B]``, or ``hi − lo`` for all with ``value_range``."""
    if value_range is not None:
        lo, hi = value_range
        return torch.full((inputs.shape[0],), float(hi - lo), dtype=inputs.dtype, device=inputs.device)
    flat = inputs.detach().flatten(1)
    return flat.amax(dim=1) - flat.amin(dim=1)


def noise_sigma(inputs: Tensor, noise_level: float, value_range: tuple[float, float] | None = None) -> Tensor:
    """σ per sample ``[B]``: ``noise_level × value_span(inputs, value_range)`` (0 for a constant sample)."""
    return noise_level * value_span(inputs, value_range)
