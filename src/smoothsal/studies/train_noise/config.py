"""Settings of ``smoothsal train-noise``: one frozen dataclass shared by the CLI and the API.

The field defaults are the full run (:data:`FULL`, what the README's numbers come from);
:data:`QUICK` replaces a few of them for a run of a few minutes on 2 CPU cores
(:meth:`TrainNoiseConfig.quick`). Every argument is checked in ``__post_init__``, before any
data is generated or model trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from smoothsal._core.jsontypes import JSONObject
from smoothsal._core.validation import check_nonnegative, check_positive_int
from smoothsal.smoothing_spec import SmoothSpec

if TYPE_CHECKING:
    from smoothsal.studies.train import TrainConfig

__all__ = ["DEFAULT_OUT", "EXPLAIN_REGIMES", "FULL", "QUICK", "TRAIN_REGIMES", "TrainNoiseConfig", "TrainNoisePreset"]

#: rows of the 2 × 2: train without / with input-noise augmentation
TRAIN_REGIMES: tuple[str, ...] = ("plain", "noisy")
#: columns of the 2 × 2: explain with the gradient / with SmoothGrad
EXPLAIN_REGIMES: tuple[str, ...] = ("gradient", "smoothgrad")
#: Where ``smoothsal train-noise`` writes when no ``--out`` is given.
DEFAULT_OUT = Path("out/train_noise")


class TrainNoisePreset(TypedDict):
    """The settings the quick preset changes (:data:`QUICK`, and their full values :data:`FULL`)."""

    n_inputs: int
    n_samples: int
    n_models: int
    epochs: int | None


#: the quick preset: changes to the defaults for a few minutes on 2 CPU cores
QUICK: TrainNoisePreset = {"n_inputs": 24, "n_samples": 16, "n_models": 2, "epochs": 4}


def _check_positive(value: float, name: str) -> float:
    value = check_nonnegative(value, name)
    if value == 0:
        raise ValueError(f"`{name}` must be > 0 (the noisy regime), got {value}")
    return value


@dataclass(frozen=True)
class TrainNoiseConfig:
    """Settings of one train-noise run (see :mod:`smoothsal.studies.train_noise`).

    Args:
        train_noise: σ_train / (x_max − x_min) of the noisy training regime (> 0).
        explain_noise: SmoothGrad's noise level σ / (x_max − x_min) (> 0).
        n_inputs: fixed test inputs explained (at most the synthetic test split).
        n_samples: SmoothGrad samples per map (fixed, the same in every cell, so that the
            estimator's variance does not differ between the cells compared).
        n_models: models per training regime, trained on disjoint parts of the training set (>= 2).
        epochs: training epochs of every model; ``None`` = ``base``'s.
        base: the :class:`smoothsal.studies.train.TrainConfig` to start from (``None`` = its
            defaults); its dataset is forced to ``"synthetic"`` (the masks are known) and its
            ``input_noise`` is set per regime.
        n_show: test inputs shown in ``train_noise_grid.png``.
        cache_dir: trained-model cache (``None`` = ``$SMOOTHSAL_CACHE/models``).

    How it runs (output folder, device, batch size, memory budget, progress bars) and the seed (it
    picks the test inputs and seeds SmoothGrad) are the :class:`~smoothsal.studies.options.RunOptions`
    given beside it.
    """

    train_noise: float = 0.2
    explain_noise: float = 0.15
    n_inputs: int = 128
    n_samples: int = 50
    n_models: int = 3
    epochs: int | None = None
    base: TrainConfig | None = None
    n_show: int = 4
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        from smoothsal.studies.train import TrainConfig

        self._set("train_noise", _check_positive(self.train_noise, "train_noise"))
        self._set("explain_noise", _check_positive(self.explain_noise, "explain_noise"))
        check_positive_int(self.n_inputs, "n_inputs")
        check_positive_int(self.n_samples, "n_samples")
        check_positive_int(self.n_models, "n_models", minimum=2)
        if self.epochs is not None:
            check_positive_int(self.epochs, "epochs")
        if self.base is not None and not isinstance(self.base, TrainConfig):
            raise TypeError(f"`base` must be a TrainConfig or None, got {type(self.base).__name__}")
        check_positive_int(self.n_show, "n_show")
        if self.cache_dir is not None:
            self._set("cache_dir", Path(self.cache_dir))

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    @classmethod
    def quick(cls, **changes: Any) -> TrainNoiseConfig:
        """The :data:`QUICK` preset, with ``changes`` on top."""
        return cls(**{**QUICK, **changes})

    def replace(self, **changes: Any) -> TrainNoiseConfig:
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)

    # ---- derived settings ---------------------------------------------------------------------
    def train_config(self, train: str = "plain") -> TrainConfig:
        """The :class:`~smoothsal.studies.train.TrainConfig` of the models of regime ``train``."""
        from smoothsal.studies.train import TrainConfig

        base = self.base if self.base is not None else TrainConfig(dataset="synthetic")
        return replace(base, dataset="synthetic", input_noise=self.train_noise if train == "noisy" else 0.0,
                       epochs=self.epochs if self.epochs is not None else base.epochs)  # fmt: skip

    def smooth_spec(self, seed: int) -> SmoothSpec:
        """The smoothing of the SmoothGrad column (:class:`~smoothsal.smoothing_spec.SmoothSpec`), seeded by ``seed``."""
        return SmoothSpec(noise_level=self.explain_noise, n_samples=self.n_samples, seed=seed)

    def to_hash(self, seed: int) -> JSONObject:
        """The settings that change results (the results store's configuration), with the run's ``seed``.

        Left out: ``n_show`` (the grid's units carry it), ``cache_dir`` and the other run options
        (output folder, batch size, device: maps agree to float32 rounding, progress bars, ``fresh``).
        """
        return {
            "train_noise": self.train_noise,
            "explain_noise": self.explain_noise,
            "n_inputs": self.n_inputs,
            "n_samples": self.n_samples,
            "n_models": self.n_models,
            "seed": seed,
            "train": asdict(self.train_config("plain")),
        }


#: The full preset (the defaults) of the settings :data:`QUICK` changes.
FULL: TrainNoisePreset = {"n_inputs": TrainNoiseConfig.n_inputs, "n_samples": TrainNoiseConfig.n_samples,
                          "n_models": TrainNoiseConfig.n_models, "epochs": TrainNoiseConfig.epochs}  # fmt: skip
