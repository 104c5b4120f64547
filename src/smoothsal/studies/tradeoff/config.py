"""Settings of the stability–fidelity study: one frozen dataclass, checked before any work.

:class:`TradeoffConfig` holds every setting of :func:`~smoothsal.studies.tradeoff.run_tradeoff`;
the CLI and the API build it the same way, through :meth:`TradeoffConfig.preset`, from the
:data:`QUICK` or :data:`FULL` preset plus the settings given. Every argument is checked in
``__post_init__`` (unknown methods, settings or dataset, negative noise levels, ``epochs = 0``, ...)
so a mistake is reported before a single model is trained.

The σ grid always holds σ = 0: the fidelity error (Ye & Farnia 2025, arXiv:2411.05837, eq. 13)
is measured against the unsmoothed map and the recommendation needs the σ = 0 end of the curve,
so a grid without it gets it added (``zero_added`` says so).

With ``own_models`` (``--models A.pt,B.pt --images DIR``) nothing is trained: the user's models
explain the images of a folder (:mod:`smoothsal.studies.tradeoff.own_models`; setting ``"models"``).

With ``maps`` (``--maps STORE``) nothing is trained or explained: the rows come from the maps of
a store written by ``smoothsal explain-dataset``
(:mod:`smoothsal.studies.explain_dataset.store`), the models being the models of the store
(setting ``"store"``), the methods and σ grid those of the store unless narrowed.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from smoothsal._core.jsontypes import JSONObject
from smoothsal._core.validation import check_nonnegative, check_positive_int
from smoothsal.registry import MethodSetting

if TYPE_CHECKING:
    from smoothsal.studies.explain_dataset.store import MapStore
    from smoothsal.studies.tradeoff.own_models import OwnModels
    from smoothsal.studies.train import TrainConfig

__all__ = [
    "DATASETS", "DEFAULT_OUT", "FULL", "PHOTO_MODELS", "PRESETS", "QUICK", "SETTINGS", "SETTING_LABELS", "TradeoffConfig",
    "TradeoffPreset",
]  # fmt: skip

#: Where ``smoothsal tradeoff`` writes when no ``--out`` is given.
DEFAULT_OUT = Path("out/tradeoff")

#: Table 1's three ways two models differ (Ye & Farnia 2025, arXiv:2411.05837, §6).
SETTINGS: dict[str, str] = {
    "DT": "different training sets",
    "DR": "different training recipes",
    "DA": "different architectures",
}
#: Titles of the settings in figures: Table 1's, and ``"store"``: the models of a map store (``--maps``).
SETTING_LABELS: dict[str, str] = {**SETTINGS, "store": "models of a map store", "models": "your models"}
#: ``digits``, ``synthetic`` and ``mnist`` train classifiers; ``photos`` compares pretrained models.
DATASETS: tuple[str, ...] = ("digits", "synthetic", "mnist", "photos")
#: the pretrained models compared on ``dataset="photos"`` (setting DA: same data, other architectures)
PHOTO_MODELS: tuple[str, ...] = ("lite0", "lite1", "lite2")



class TradeoffPreset(TypedDict, total=False):
    """Settings a preset (:data:`QUICK`, :data:`FULL`, :data:`PHOTOS`, :data:`MNIST`) gives :class:`TradeoffConfig`."""

    noise_levels: tuple[float, ...]
    n_inputs: int
    n_samples: int
    n_models: int
    epochs: int | None
    settings: tuple[str, ...]


#: Full run: Table 1's setup at a size a CPU finishes overnight (``epochs=None``: TrainConfig's default).
FULL: TradeoffPreset = {
    "noise_levels": (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5),
    "n_inputs": 128,
    "n_samples": 64,
    "n_models": 3,
    "epochs": None,
}
#: Quick run: minutes on 2 CPU cores, training included.
QUICK: TradeoffPreset = {
    "noise_levels": (0.0, 0.05, 0.15, 0.3),
    "n_inputs": 20,
    "n_samples": 10,
    "n_models": 3,
    "epochs": 2,
}
#: Defaults of ``dataset="photos"`` (three pretrained networks, a handful of photos).
PHOTOS: TradeoffPreset = {"settings": ("DA",), "n_inputs": 4, "epochs": None}
#: Defaults of ``dataset="mnist"``: a pair per setting (MNIST's DR and DA have two recipes / archs)
MNIST: TradeoffPreset = {"n_models": 2}
PRESETS: dict[str, TradeoffPreset] = {"quick": QUICK, "full": FULL}


def _names(value: Any, name: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    out = tuple(str(v).strip() for v in items if str(v).strip())
    if not out:
        raise ValueError(f"`{name}` must name at least one entry, got {value!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"`{name}` must not repeat entries, got {list(out)}")
    return out


def _optional_nonnegative(value: Any, name: str) -> float | None:
    return None if value is None else check_nonnegative(value, name)


@dataclass(frozen=True)
class TradeoffConfig:
    """Every setting of the stability–fidelity study (defaults: the :data:`FULL` preset).

    Attributes:
        dataset: ``"digits"``, ``"synthetic"``, ``"mnist"`` (classifiers trained by
            :mod:`smoothsal.studies.train`; MNIST: its recipes, two models per setting) or
            ``"photos"`` (pretrained EfficientNet-Lite0/1/2 on the bundled photos; setting DA only).
        methods: registered method names (:data:`smoothsal.registry.METHODS`, aliases allowed).
        settings: keys of :data:`SETTINGS`.
        noise_levels: the σ grid, fractions of each input's value range; σ = 0 is added if missing.
        n_inputs: test inputs explained (their true labels are the targets).
        n_samples: noisy samples per smoothed map (a fixed number, the same noise for every model).
        n_models: models per setting (>= 2).
        epochs: training epochs of every model (``None``: ``base``'s, or TrainConfig's default).
        ig_steps: Integrated Gradients path points; ``None`` keeps the registry's settings.
        base: the :class:`~smoothsal.studies.train.TrainConfig` each setting varies (default: the
            dataset's default config).
        table_noise_level: σ of ``table1.md``'s smoothed columns (Table 1's 0.15).
        stability_target, fidelity_bound: recommendation rules on the norm-scaled errors.
        cache_dir: where trained models are cached (default: ``$SMOOTHSAL_CACHE``).
        maps: a map store of ``smoothsal explain-dataset`` to read the maps from instead of
            training and explaining (``dataset`` becomes ``"store"``, settings ``("store",)``,
            ``n_models``/``n_inputs``/``n_samples`` those of the store).
        own_models: the user's models and image folder
            (:class:`~smoothsal.studies.tradeoff.own_models.OwnModels`; ``dataset`` becomes
            ``"models"``, settings ``("models",)``, ``n_models`` the number of models; ``n_inputs``
            the first images of the folder).
        weight_noise: σ_w of multiplicative weight noise in every smoothed map (FusionGrad at each
            σ > 0; at σ = 0 NoiseGrad instead of the raw map: :mod:`smoothsal.weight_noise`); 0: none.
            The study ``smoothsal noise-kinds`` compares the kinds of noise themselves.
        zero_added: set when σ = 0 was not in the requested grid and was added.

    How it runs (output folder, device, batch size, memory budget, progress bars) and the seed (it
    picks the test inputs and seeds the smoothing noise) are the
    :class:`~smoothsal.studies.options.RunOptions` given beside it.
    """

    dataset: str = "digits"
    methods: tuple[str, ...] = ("grad", "ig", "gradcam", "gradcam++")
    settings: tuple[str, ...] = ("DT", "DR", "DA")
    noise_levels: tuple[float, ...] = FULL["noise_levels"]
    n_inputs: int = FULL["n_inputs"]
    n_samples: int = FULL["n_samples"]
    n_models: int = FULL["n_models"]
    epochs: int | None = FULL["epochs"]
    ig_steps: int | None = None
    base: TrainConfig | None = None
    table_noise_level: float = 0.15
    stability_target: float | None = None
    fidelity_bound: float | None = None
    cache_dir: Path | None = None
    maps: Path | str | None = None
    own_models: OwnModels | None = None
    weight_noise: float = 0.0
    zero_added: bool = field(default=False, init=False)

    @classmethod
    def preset(cls, name: str = "full", **settings: Any) -> TradeoffConfig:
        """The ``"quick"`` or ``"full"`` preset, with every setting that is not ``None`` replacing it.

        ``dataset="photos"`` defaults to setting DA and 4 photos.

        Example:
            >>> TradeoffConfig.preset("quick", n_inputs=None, n_samples=5).n_samples
            5
        """
        if name not in PRESETS:
            raise ValueError(f"`preset` must be one of {sorted(PRESETS)}, got {name!r}")
        given = {k: v for k, v in settings.items() if v is not None}
        if given.get("maps") is not None:  # the store says what there is; the preset's grid does not apply
            return cls(**given)
        if given.get("own_models") is not None:  # nothing is trained: the preset's model count and epochs do not apply
            values = {k: v for k, v in PRESETS[name].items() if k in ("noise_levels", "n_inputs", "n_samples")}
            return cls(**{**values, **given})
        values: dict[str, object] = dict(PRESETS[name])
        if given.get("dataset") == "photos":
            values.update(PHOTOS)
        if given.get("dataset") == "mnist":
            values.update(MNIST)
        if "base" in given:  # a given TrainConfig keeps its own epochs unless `epochs` is given too
            values["epochs"] = None
        values.update(given)
        return cls(**values)

    def __post_init__(self) -> None:
        from smoothsal.datasets.photos import BUNDLED
        from smoothsal.studies.train import MNIST_BASE, TrainConfig, setting_configs

        set_ = lambda name, value: object.__setattr__(self, name, value)
        set_("weight_noise", check_nonnegative(self.weight_noise, "weight_noise"))
        if self.maps is not None and self.weight_noise:
            raise ValueError("`weight_noise` does not apply to `maps` (the store's maps are already made)")
        if self.maps is not None:
            if self.own_models is not None:
                raise ValueError("`maps` and `own_models` exclude each other: the maps of a store, or your models explained now")
            self._check_maps()
            return
        if self.own_models is not None:
            self._check_own_models()
            return
        if self.cache_dir is not None:
            set_("cache_dir", Path(self.cache_dir))
        if self.dataset not in DATASETS:
            raise ValueError(f"`dataset` must be one of {list(DATASETS)}, got {self.dataset!r}")
        settings = _names(self.settings, "settings")
        unknown = [s for s in settings if s not in SETTINGS]
        if unknown:
            raise ValueError(f"`settings` must be names from {list(SETTINGS)}, got unknown {unknown}")
        set_("settings", settings)
        self._check_methods_grid_counts()
        check_positive_int(self.n_models, "n_models", minimum=2)
        if self.epochs is not None:
            check_positive_int(self.epochs, "epochs")
        self._check_recommendation()

        if self.dataset == "photos":
            if settings != ("DA",):
                raise ValueError(
                    f"`settings` must be ['DA'] for dataset 'photos' (pretrained EfficientNet-Lite0/1/2: one "
                    f"training set, three architectures), got {list(settings)}"
                )
            if self.n_inputs > len(BUNDLED):
                raise ValueError(f"`n_inputs` must be <= {len(BUNDLED)} (the bundled photos), got {self.n_inputs}")
            if self.n_models != len(PHOTO_MODELS):
                set_("n_models", len(PHOTO_MODELS))
            if self.base is not None or self.epochs is not None:
                raise ValueError("`base` and `epochs` do not apply to dataset 'photos' (nothing is trained)")
            set_("base", None)
            set_("epochs", None)
            return
        if self.base is not None:
            base = self.base
        else:
            base = MNIST_BASE if self.dataset == "mnist" else TrainConfig(dataset=self.dataset)
        if not isinstance(base, TrainConfig):
            raise TypeError(f"`base` must be a smoothsal.studies.train.TrainConfig or None, got {type(base).__name__}")
        base = dataclasses.replace(base, dataset=self.dataset, epochs=self.epochs if self.epochs is not None else base.epochs)
        set_("base", base)
        for setting in settings:  # checks n_models against the setting (DA has 4 architectures)
            setting_configs(setting, self.dataset, self.n_models, base)

    def _check_methods_grid_counts(self) -> None:
        """The methods (registered names), the σ grid (σ = 0 added where missing, one σ > 0 at least),
        ``n_inputs``, ``n_samples`` and ``ig_steps``: checked alike for trained and for your own models."""
        from smoothsal.metrics.tradeoff import check_noise_grid
        from smoothsal.registry import parse_methods

        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("methods", tuple(parse_methods(list(_names(self.methods, "methods")), kinds=("method",))))
        grid = sorted(check_noise_grid(list(self.noise_levels)))
        if 0.0 not in grid:
            grid = [0.0] + grid
            set_("zero_added", True)
        if len(grid) < 2:
            raise ValueError(f"`noise_levels` must hold a σ > 0 to smooth with, got {list(self.noise_levels)}")
        set_("noise_levels", tuple(grid))
        check_positive_int(self.n_inputs, "n_inputs")
        check_positive_int(self.n_samples, "n_samples")
        if self.ig_steps is not None:
            check_positive_int(self.ig_steps, "ig_steps", minimum=2)

    def _check_own_models(self) -> None:
        """``__post_init__`` of a config on the user's models: setting ``"models"``, nothing trained."""
        from smoothsal.studies.tradeoff.own_models import OwnModels

        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        own = self.own_models
        if not isinstance(own, OwnModels):
            raise TypeError(f"`own_models` must be a smoothsal.studies.tradeoff.own_models.OwnModels, got {type(own).__name__}")
        if self.base is not None or self.epochs is not None:
            raise ValueError("`base` and `epochs` do not apply to your own models (nothing is trained)")
        self._check_methods_grid_counts()
        set_("n_inputs", len(own.image_ids(self.n_inputs)))  # at most the folder's readable images
        set_("dataset", "models")
        set_("settings", ("models",))
        set_("n_models", len(own.specs))
        self._check_recommendation()

    def _check_recommendation(self) -> None:
        """The table's σ and the recommendation rules (with or without ``maps``)."""
        check_nonnegative(self.table_noise_level, "table_noise_level")
        object.__setattr__(self, "stability_target", _optional_nonnegative(self.stability_target, "stability_target"))
        object.__setattr__(self, "fidelity_bound", _optional_nonnegative(self.fidelity_bound, "fidelity_bound"))

    @functools.cached_property
    def map_store(self) -> MapStore | None:
        """The map store ``maps``, opened once (its index read once) for the checks, the hash and
        the rows; ``None`` without ``maps``. Cached in the instance's ``__dict__``, outside the
        dataclass fields, so the config stays frozen and its hash and equality are unchanged."""
        if self.maps is None:
            return None
        from smoothsal.studies.explain_dataset.store import open_store

        return open_store(self.maps)

    def _check_maps(self) -> None:
        """``__post_init__`` of a config reading a map store: settings from the store, checked against it."""
        from smoothsal.registry import parse_methods
        from smoothsal.studies.explain_dataset.store import as_location, sigma_key

        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("maps", as_location(self.maps))  # a folder, or an fsspec URL
        store = self.map_store
        models = store.models()
        if len(models) < 2:
            raise ValueError(
                f"`maps`: the store {self.maps} holds maps of {len(models)} model(s) {models}; stability needs >= 2 "
                "(run explain-dataset with another --model into the same --out)"
            )
        default_methods = {f.name: f.default for f in dataclasses.fields(self)}["methods"]
        methods = store.methods() if self.methods == default_methods else parse_methods(list(_names(self.methods, "methods")))
        missing = [m for m in methods if m not in store.methods()]
        if missing:
            raise ValueError(f"`methods`: {missing} have no maps in {self.maps} (it holds {store.methods()})")
        set_("methods", tuple(methods))
        grid = sorted(sigma_key(s) for s in (self.noise_levels if self.noise_levels != FULL["noise_levels"] else store.sigmas()))
        if 0.0 not in grid:
            grid = [0.0] + grid
            set_("zero_added", True)
        absent = [s for s in grid if s not in store.sigmas()]
        if absent:
            raise ValueError(
                f"`noise_levels`: σ {absent} have no maps in {self.maps} (it holds {store.sigmas()}; the fidelity error needs σ = 0)"
            )
        if len(grid) < 2:
            raise ValueError(f"`noise_levels` must hold a σ > 0; the store {self.maps} holds {store.sigmas()}")
        set_("noise_levels", tuple(grid))
        set_("settings", ("store",))
        set_("dataset", "store")
        set_("n_models", len(models))
        set_("n_inputs", len(store.images()))
        set_("n_samples", int(store.config.get("n_samples", 0)))
        set_("base", None)
        set_("epochs", None)
        self._check_recommendation()

    def to_hash(self, seed: int) -> JSONObject:
        """The settings that change a row's numbers (the store's configuration), with the run's ``seed``.

        Methods, settings and the σ grid are not in it: each row is keyed by its own
        (setting, method, σ), so adding a method or a σ reuses the finished rows. The other run
        options (output folder, progress bars, batch size, device) do not change results. With
        ``maps``: the store's configuration, models and number of maps (a store that grew gives new
        rows); the seed plays no part (nothing is drawn).
        """
        if self.maps is not None:
            store = self.map_store
            return {
                "maps": str(self.maps.resolve()) if isinstance(self.maps, Path) else self.maps,
                "store_config": store.config_hash,
                "models": {k: v.get("weights_sha1") for k, v in sorted(store.model_info.items())},
                "n_maps": len(store),
            }
        if self.own_models is not None:
            return {"own_models": self.own_models.to_hash(self.n_inputs), "n_samples": self.n_samples,
                    "ig_steps": self.ig_steps, "seed": seed}  # fmt: skip
        return {
            "dataset": self.dataset,
            "n_inputs": self.n_inputs,
            "n_samples": self.n_samples,
            "n_models": self.n_models,
            "ig_steps": self.ig_steps,
            **({"weight_noise": self.weight_noise} if self.weight_noise else {}),
            "seed": seed,
            "base": None if self.base is None else dataclasses.asdict(self.base),
        }

    def method_overrides(self, name: str) -> dict[str, MethodSetting]:
        """Constructor settings the user set for method ``name`` (only ``--ig-steps`` today)."""
        return {"steps": self.ig_steps} if name == "ig" and self.ig_steps is not None else {}

    def as_dict(self) -> JSONObject:
        """Every setting as plain JSON-ready values (for ``results.json``)."""
        from smoothsal.studies.store import to_jsonable

        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["base"] = None if self.base is None else dataclasses.asdict(self.base)
        own = self.own_models
        out["own_models"] = None if own is None else {
            "specs": list(own.specs), "weights": list(own.weights), "images": str(own.images),
            "random_weights": own.random_weights, "image_size": own.image_size,
        }  # fmt: skip
        return to_jsonable(out)

