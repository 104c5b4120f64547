r"""What a smoothed map is: one typed, validated value, :class:`SmoothSpec`.

SmoothGrad (Smilkov et al. 2017, arXiv:1706.03825, eq. 3) averages a method's maps over noisy
copies of the input, :math:`\hat M_c(x) = \frac1n \sum_j M_c(x + \epsilon_j)` with
:math:`\sigma = \text{noise\_level} \cdot (x_{max} - x_{min})`. Every setting that changes that
estimate lives here, checked once: :class:`~smoothsal.smoothing.Smooth` is built from it
(:meth:`Smooth.from_spec <smoothsal.smoothing.Smooth.from_spec>`), the registry takes it
(:func:`smoothsal.registry.build_method`), and the studies store it as JSON
(:meth:`SmoothSpec.to_dict`, :meth:`SmoothSpec.from_dict`). How the rows run (``batch_size``,
``max_memory``) is not part of it: they never change a map.

A new setting is one field with its default and one check in :meth:`SmoothSpec.__post_init__`;
:meth:`~SmoothSpec.to_dict`, :meth:`~SmoothSpec.from_dict` and :meth:`~SmoothSpec.replace` follow
the fields.

Example:
    >>> spec = SmoothSpec(noise_level=0.2, n_samples=8)
    >>> spec.replace(n_samples=16).n_samples
    16
    >>> SmoothSpec.from_dict(spec.to_dict()) == spec
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from smoothsal._core.jsontypes import JSON, JSONObject
from smoothsal._core.validation import check_choice, check_nonnegative, check_positive_int
from smoothsal.noise import SAMPLERS, Sampler, SeedSpec, independent_draws

__all__ = ["STATISTICS", "SmoothSpec"]

#: The smoothed statistics: the paper's signed mean, SmoothGrad² and VarGrad.
STATISTICS: tuple[str, ...] = ("mean", "square", "var")

#: settings that :meth:`SmoothSpec.to_dict` writes only when they differ from their defaults
_OMITTED_AT_DEFAULT = frozenset({"weight_noise", "weight_noise_layers"})


@dataclass(frozen=True)
class SmoothSpec:
    r"""The settings of one smoothed map, validated when built (frozen: use :meth:`replace`).

    Attributes:
        noise_level: σ as a fraction of each sample's value range,
            σ = noise_level × (x_max − x_min) (the paper's definition; 0.1–0.2 works well for
            ImageNet models). With ``value_range=(lo, hi)``, σ = noise_level × (hi − lo) for all.
        n_samples: number of noisy samples (the maximum when ``tol`` is set).
        statistic: ``"mean"`` (SmoothGrad), ``"square"`` (SmoothGrad²) or ``"var"`` (VarGrad).
        sampler: ``"gaussian"`` (the paper), ``"uniform"`` (same variance), ``"antithetic"``
            (pairs ε, −ε), ``"lhs"`` (Latin hypercube over the ``n_samples`` draws), a callable
            ``(shape, generator, device, dtype) -> standard noise``, or a
            :class:`~smoothsal.noise.NoiseStream` subclass (see :mod:`smoothsal.noise`).
        seed: an int (a fresh generator each call: the same map every call), a
            ``torch.Generator`` (advanced by each call) or ``None`` (fresh randomness).
        value_range: ``(lo, hi)`` of the input space, or ``None`` for each sample's own range.
        tol: an image stops sampling once its relative standard error is ≤ ``tol`` (checked at
            every multiple of ``min_samples`` samples); ``None`` always takes ``n_samples``.
        min_samples: fewest samples before ``tol`` may stop the sampling, and the interval of
            the checks.
        weight_noise: :math:`\sigma_w` of multiplicative noise on the model's weights,
            :math:`\theta \odot (1 + \eta)`, :math:`\eta \sim \mathcal N(0, \sigma_w^2)`, one
            weight draw per sample (NoiseGrad; with ``noise_level > 0`` too, FusionGrad: Bykov et
            al. 2022, :mod:`smoothsal.weight_noise`); 0 (default): the weights are not perturbed.
        weight_noise_layers: names of the model's modules whose parameters get the weight noise
            (``model.named_modules()`` names; one string is one name); ``None``: every parameter.
    """

    noise_level: float = 0.15
    n_samples: int = 50
    statistic: str = "mean"
    sampler: str | Sampler = "gaussian"
    seed: SeedSpec = 0
    value_range: tuple[float, float] | None = None
    tol: float | None = None
    min_samples: int = 16
    weight_noise: float = 0.0
    weight_noise_layers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("noise_level", check_nonnegative(self.noise_level, "noise_level"))
        check_positive_int(self.n_samples, "n_samples")
        check_choice(self.statistic, "statistic", STATISTICS)
        if not callable(self.sampler):
            check_choice(self.sampler, "sampler", tuple(SAMPLERS))
        if not independent_draws(self.sampler) and self.statistic != "mean":
            raise ValueError(
                f"`sampler` {self.sampler!r} draws dependent samples; the standard error of statistic="
                f"{self.statistic!r} assumes independent draws: use sampler='gaussian', or statistic='mean'"
            )
        seed = self.seed
        if seed is not None and not isinstance(seed, (int, torch.Generator)) or isinstance(seed, bool):
            raise TypeError(f"`seed` must be an int, a torch.Generator or None, got {type(seed).__name__}")
        if self.value_range is not None:
            try:
                lo, hi = (float(v) for v in self.value_range)
            except (TypeError, ValueError) as err:
                raise ValueError(f"`value_range` must be (lo, hi) with finite lo < hi, got {self.value_range}") from err
            if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
                raise ValueError(f"`value_range` must be (lo, hi) with finite lo < hi, got {self.value_range}")
            set_("value_range", (lo, hi))
        if self.tol is not None:
            set_("tol", check_nonnegative(self.tol, "tol"))
        check_positive_int(self.min_samples, "min_samples")
        set_("weight_noise", check_nonnegative(self.weight_noise, "weight_noise"))
        layers = self.weight_noise_layers
        if layers is not None:
            layers = (layers,) if isinstance(layers, str) else layers
            if not all(isinstance(n, str) for n in layers) or not layers:
                raise TypeError(f"`weight_noise_layers` must be a non-empty sequence of module names or None, got {layers!r}")
            set_("weight_noise_layers", tuple(layers))

    @property
    def noise_kind(self) -> str:
        """Which noise the map averages over: ``"input"`` (SmoothGrad), ``"weights"`` (NoiseGrad),
        ``"both"`` (FusionGrad) or ``"none"`` (every setting zero: the method's map, repeated)."""
        inp, w = self.noise_level > 0, self.weight_noise > 0
        return {(True, False): "input", (False, True): "weights", (True, True): "both"}.get((inp, w), "none")

    def replace(self, **changes: Any) -> SmoothSpec:
        """A copy with ``changes`` (checked again), e.g. ``spec.replace(noise_level=0.3)``."""
        return replace(self, **changes)

    def to_dict(self) -> JSONObject:
        """Every setting as JSON (``value_range`` as a list), for stored configurations and hashes.

        The weight-noise settings are left out while they are at their defaults, so an input-noise
        spec writes the JSON (and the hash) it wrote before they existed.

        Raises:
            TypeError: the sampler is a callable or a stream class, or the seed a
                ``torch.Generator``: neither has a JSON form.
        """
        if not isinstance(self.sampler, str):
            raise TypeError(f"`sampler` {self.sampler!r} has no JSON form: only a sampler name ({list(SAMPLERS)}) has")
        if isinstance(self.seed, torch.Generator):
            raise TypeError("`seed` is a torch.Generator, which has no JSON form: use an int seed")
        out: JSONObject = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _OMITTED_AT_DEFAULT and value == f.default:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, JSON]) -> SmoothSpec:
        """The spec :meth:`to_dict` wrote (missing keys take their defaults).

        Raises:
            ValueError: a key that is not a setting of :class:`SmoothSpec`.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SmoothSpec settings {unknown}; expected some of {sorted(known)}")
        return cls(**data)  # type: ignore[arg-type]
