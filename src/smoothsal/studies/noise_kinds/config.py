"""The settings of the noise-kinds study (:mod:`smoothsal.studies.noise_kinds`): one frozen, checked value.

Two presets: ``"full"`` (what the committed results come from, designed for about 15 CPU minutes)
and ``"quick"`` (a minute, for tests and a first look).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from smoothsal._core.jsontypes import JSONObject
from smoothsal._core.validation import check_choice, check_nonnegative, check_positive_int
from smoothsal.smoothing_spec import SmoothSpec

__all__ = ["DEFAULT_OUT", "FIDELITY_TARGETS", "GROUPS", "KINDS", "NoiseKindsConfig"]

#: the noises compared: input (SmoothGrad), weights (NoiseGrad), both (FusionGrad)
KINDS: tuple[str, ...] = ("input", "weights", "both")
#: the model sets: MNIST's three retraining settings and the pretrained Lite0/1/2 (setting DA)
GROUPS: tuple[str, ...] = ("mnist:DT", "mnist:DR", "mnist:DA", "photos:DA")
#: the relative fidelity errors at which the kinds are compared (the conclusion's rule, fixed
#: before the data: see the package docstring)
FIDELITY_TARGETS: tuple[float, ...] = (0.3, 0.6)
DEFAULT_OUT = "out/noise_kinds"


@dataclass(frozen=True)
class NoiseKindsConfig:
    """What the study computes.

    Attributes:
        groups: model sets from :data:`GROUPS`.
        kinds: noises from :data:`KINDS`.
        levels: the noise levels of every kind (> 0; level 0, the raw map, is always included):
            σ / (x_max − x_min) for input noise, σ_w (relative to each weight) for weight noise, both
            for ``"both"``.
        n_samples: draws per smoothed map (even: two equal halves for the debiasing).
        n_inputs: held-out MNIST digits explained per pair.
        n_photos: bundled photos explained (at most 4).
        photo_size: side the photos are resized to for Lite0/1/2 (224 is their own size).
        n_pairs: MNIST model pairs per setting.
    """

    groups: tuple[str, ...] = GROUPS
    kinds: tuple[str, ...] = KINDS
    levels: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5)
    n_samples: int = 32
    n_inputs: int = 64
    n_photos: int = 4
    photo_size: int = 128
    n_pairs: int = 3

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("groups", tuple(check_choice(g, "groups", GROUPS) for g in self.groups))
        set_("kinds", tuple(check_choice(k, "kinds", KINDS) for k in self.kinds))
        levels = sorted({check_nonnegative(v, "levels") for v in self.levels} - {0.0})
        if not levels:
            raise ValueError(f"`levels` must hold a level > 0, got {list(self.levels)}")
        set_("levels", tuple(levels))
        check_positive_int(self.n_samples, "n_samples", minimum=2)
        if self.n_samples % 2:
            raise ValueError(f"`n_samples` must be even (two equal halves of the draws), got {self.n_samples}")
        check_positive_int(self.n_inputs, "n_inputs", minimum=2)
        check_positive_int(self.n_photos, "n_photos", minimum=2)
        if self.n_photos > 4:
            raise ValueError(f"`n_photos` must be at most 4 (the bundled photos), got {self.n_photos}")
        check_positive_int(self.photo_size, "photo_size", minimum=32)
        check_positive_int(self.n_pairs, "n_pairs")

    @classmethod
    def preset(cls, name: str, **changes: Any) -> NoiseKindsConfig:
        """``"full"`` or ``"quick"``, with ``changes`` (``None`` values ignored) applied."""
        check_choice(name, "preset", ("full", "quick"))
        base = cls() if name == "full" else cls(levels=(0.1, 0.3), n_samples=8, n_inputs=8, n_photos=4, photo_size=64,
                                                  n_pairs=2)  # fmt: skip
        return replace(base, **{k: v for k, v in changes.items() if v is not None})

    def spec(self, kind: str, level: float, seed: int) -> SmoothSpec:
        """The smoothing of ``kind`` at ``level`` (level 0 is never smoothed: the raw map)."""
        check_choice(kind, "kind", KINDS)
        return SmoothSpec(
            noise_level=level if kind in ("input", "both") else 0.0,
            weight_noise=level if kind in ("weights", "both") else 0.0,
            n_samples=self.n_samples,
            seed=seed,
        )

    def to_hash(self, seed: int) -> JSONObject:
        """The settings that change a unit's numbers, with the run's seed. Left out: what only selects
        units (``groups``, ``kinds``, ``levels``, ``n_pairs``: every unit names its group, pair, kind
        and level), so a run with more of them reuses the units already stored."""
        selection = {"groups", "kinds", "levels", "n_pairs"}
        out: JSONObject = {k: v for k, v in asdict(self).items() if k not in selection}
        out["seed"] = seed
        return out
