"""Settings of the report card: one frozen dataclass, checked before any work.

:class:`EvaluateConfig` holds every setting of :func:`~smoothsal.studies.evaluate.run_evaluate`;
the CLI and the API build it the same way, through :meth:`EvaluateConfig.preset`, from the
:data:`QUICK` or :data:`FULL` preset plus the settings given. ``__post_init__`` checks every
argument (unknown methods, a negative noise level, a missing image file, a bad model spec, a
localization dataset without masks, ...) before a model is loaded.

Method settings (IG path points, occlusion window) come from the registry
(:func:`smoothsal.registry.build_method`); ``ig_steps`` overrides IG's ``steps`` only when given.

With ``maps`` (``--maps STORE``) the images, their targets and the original model's maps come
from a map store written by ``smoothsal explain-dataset``
(:mod:`smoothsal.studies.explain_dataset.store`): ``__post_init__`` checks that the folder is a
map store and that the model is one of its models; see :mod:`.compute` (:class:`~.compute.MapSource`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from smoothsal._core.jsontypes import JSONObject
from smoothsal._core.validation import check_nonnegative, check_positive_int
from smoothsal.metrics.sanity import INITS, MPRT_THRESHOLD
from smoothsal.registry import MethodSetting
from smoothsal.smoothing_spec import SmoothSpec

if TYPE_CHECKING:
    from torch import Tensor, nn

    from smoothsal.studies.explain_dataset.store import MapStore

__all__ = [
    "BASELINES",
    "CARD_VERSION",
    "DEFAULT_METHODS",
    "DEFAULT_OUT",
    "IMAGE_SETS",
    "FULL",
    "PRESETS",
    "PRUNE_SHARE",
    "QUICK",
    "RANDOMIZATIONS",
    "SANITY_THRESHOLD",
    "SECTIONS",
    "EvaluateConfig",
    "EvaluatePreset",
    "store_model_of",
]  # fmt: skip

DEFAULT_METHODS: tuple[str, ...] = ("grad", "ig", "guided", "gradcam", "gradcam++")
#: Where ``smoothsal evaluate`` writes when no ``--out`` is given.
DEFAULT_OUT = Path("out/evaluate")
#: ``road``: ROAD's MoRF/LeRF under noisy linear imputation (:mod:`smoothsal.metrics.road`) with the
#: authors' settings (levels 10..90 %, σ = 0.01, target probability) and the study's seed
SECTIONS: tuple[str, ...] = ("sanity", "faithfulness", "road", "complexity", "roughness", "pruning", "localization",
                             "data_randomization")  # fmt: skip
#: sanity verdict: the rule and its threshold are fixed once, in :mod:`smoothsal.metrics.sanity`
#: (retained similarity R, pass when its 95 % interval over images lies below this)
SANITY_THRESHOLD = MPRT_THRESHOLD
#: bump when what a record holds changes, so that an old results store is never mixed in
CARD_VERSION = 4  # 3: the repaired sanity rule (r̃ recorded) and MNIST data randomization; 4: MPRT seeds
#: ``"bundled"``: the 4 bundled photos; ``"natural"``: those and 14 more offline natural photos
#: (:func:`smoothsal.datasets.photos.natural_photos`, 18 in all)
IMAGE_SETS: tuple[str, ...] = ("bundled", "natural")
#: re-initialisations of the randomization tests (:data:`smoothsal.metrics.sanity.INITS`)
RANDOMIZATIONS: tuple[str, ...] = INITS
#: pruning column: the smallest kept share of pixels that keeps this share of the target probability
PRUNE_SHARE = 0.9
BASELINES: tuple[str, ...] = ("blur", "black")
BUNDLED_MODELS: tuple[str, ...] = ("lite0", "lite1", "lite2")
#: the data randomization test's label permutations: one random-label MNIST model each, resampled
#: as seeds by the verdict (:func:`smoothsal.metrics.sanity.sanity_verdict`)
DR_LABEL_SEEDS: tuple[int, ...] = (0, 1, 2)


class EvaluatePreset(TypedDict):
    """The settings a preset (:data:`FULL`, :data:`QUICK`) gives :class:`EvaluateConfig`."""

    photos: tuple[str, ...] | None
    image_set: str
    dr_images: int
    n_samples: int
    steps: int
    patch: int
    monotonicity_patch: int
    fc_runs: int
    mprt_checkpoints: int
    mprt_seeds: int
    roughness_pairs: int
    line_steps: int
    loc_images: int
    loc_epochs: int | None
    store_images: int | None


#: Full settings: 18 natural photos, so that every entry gets a meaningful 95 % interval over
#: images. ``patch`` sizes are for 224 px images and scale with the image size. Several CPU-hours
#: on 2 cores with the default methods: the randomization cascades dominate (3 seeds × 3
#: checkpoints, every randomized model explained twice for r̃; smoothed IG's above all), and the
#: run resumes at the grain of one seed of one row (``docs/results/report-card.md``).
FULL: EvaluatePreset = {
    "photos": None,
    "image_set": "natural",
    "dr_images": 64,
    "n_samples": 50,
    "steps": 20,
    "patch": 16,
    "monotonicity_patch": 16,
    "fc_runs": 50,
    "mprt_checkpoints": 3,  # top, middle and bottom of the cascade, under each of the 3 seeds
    "mprt_seeds": 3,  # re-initialisation seeds, resampled with the images by the verdict
    "roughness_pairs": 2,  # 2 pairs × 18 images; the column costs 2 × pairs maps per image and row
    "line_steps": 101,
    "loc_images": 128,
    "loc_epochs": None,
    "store_images": None,
}
#: Quick settings: the 4 bundled photos (intervals over 4 images are wide: most verdicts come out
#: inconclusive, as they should), small samples; a few minutes on 2 CPU cores.
QUICK: EvaluatePreset = {
    "photos": None,
    "image_set": "bundled",
    "dr_images": 16,
    "n_samples": 8,
    "steps": 10,
    "patch": 16,
    "monotonicity_patch": 32,
    "fc_runs": 16,
    "mprt_checkpoints": 3,
    "mprt_seeds": 1,  # one draw of the randomization: the verdict treats it as fixed (the full card resamples 3)
    "roughness_pairs": 2,
    "line_steps": 21,
    "loc_images": 32,
    "loc_epochs": 4,
    "store_images": 4,
}
PRESETS: dict[str, EvaluatePreset] = {"quick": QUICK, "full": FULL}


def module_digest(model: nn.Module) -> str:
    """SHA-1 of a module's class name and weights (identifies a user's model in the store)."""
    h = hashlib.sha1(type(model).__name__.encode())
    for name, p in model.state_dict().items():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def tensor_digest(t: Tensor) -> str:
    """SHA-1 of a tensor's values."""
    return hashlib.sha1(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class EvaluateConfig:
    """Every setting of the report card (defaults: the :data:`FULL` preset).

    Attributes:
        methods: registered method names or aliases (``"smoothgrad"`` is ``"grad"``), a list or a
            comma-separated string; each gives a raw and a smoothed row. The controls ``sobel``
            and ``random`` are always added.
        noise_level: σ of the smoothed rows, a fraction of each image's value range.
        model: ``"lite0"``/``"lite1"``/``"lite2"``, ``"package.module:factory"``, a TorchScript
            file, or an ``nn.Module`` taking ``[B, C, H, W]`` images in [0, 1].
        images: bundled photo names / image files, or a tensor ``[N, C, H, W]``; ``None`` = the
            bundled photos named by ``photos`` (all of them when ``None``).
        localization: ``None`` = on for the bundled models (a small CNN trained on synthetic
            scenes), off for user models; ``True``/``False``; or ``(model, ImageDataset with masks)``.
        baseline: what removed pixels become (deletion, insertion, pruning): ``"blur"``,
            ``"black"`` or a number.
        ig_steps: Integrated Gradients path points, raw and smoothed (``None``: the registry's).
        randomization: re-initialisation of the model-parameter randomization tests:
            ``"scaled"`` (default: weights redrawn with each layer's own mean and std, norm layers
            permuted, running statistics kept), ``"default"`` (PyTorch's initialisation) or
            ``"permute"``; see :mod:`smoothsal.metrics.sanity`.
        data_randomization: the data randomization test on MNIST (LeNet-5 trained on the true
            labels beside three trained on permuted labels, each with its own initialization and
            trained until it fits them: :func:`smoothsal.studies.train.randomization_models`,
            cached); ``None`` = on for the bundled models, off for user models; ``True``/``False``;
            or ``(model, random_label_model or a list of them, images [N, C, H, W])`` of your own
            (trained on permuted labels; several are resampled as seeds).
        image_set: ``"bundled"`` or ``"natural"`` (:data:`IMAGE_SETS`) when neither ``images`` nor
            ``photos`` is given.
        dr_images: held-out MNIST digits explained by the data randomization test.
        sections: the sections to compute (default all of :data:`SECTIONS`; a list or a
            comma-separated string). Not part of the store's key: a run with fewer sections reuses
            (and adds to) the same records.
        photos, n_samples, steps, patch, monotonicity_patch, fc_runs, mprt_checkpoints,
            mprt_seeds, roughness_pairs, line_steps, loc_images, loc_epochs: see :data:`FULL`.
        maps: a map store written by ``smoothsal explain-dataset``. The report's images are the
            store's images of the model (``images``/``photos`` must not be given), read as the job
            read them, with the targets the store's maps explain; the model is still loaded from
            ``model`` (the randomization and perturbation metrics run it) and must be a model of
            the store with the same weights. A row whose (method, σ) the store holds with the same
            settings (``n_samples``, ``seed``, no ``tol``, registry method settings) takes its
            original-model maps from the store; any other row is computed as without ``maps``.
        store_images: with ``maps``, the first ``store_images`` images of the store in id order
            (``None``: all; the quick preset takes 4, as many as its bundled photos).

    How it runs (output folder, device, batch size, memory budget, progress bars) and the seed (of
    the noise, the randomized weights and the random control) are the
    :class:`~smoothsal.studies.options.RunOptions` given beside it.
    """

    methods: tuple[str, ...] = DEFAULT_METHODS
    noise_level: float = 0.15
    model: Any = field(default="lite0", compare=False)
    images: Any = field(default=None, compare=False)
    localization: Any = field(default=None, compare=False)
    baseline: str | float = "blur"
    ig_steps: int | None = None
    randomization: str = "scaled"
    data_randomization: Any = field(default=None, compare=False)
    sections: tuple[str, ...] = SECTIONS
    photos: tuple[str, ...] | None = FULL["photos"]
    image_set: str = FULL["image_set"]
    dr_images: int = FULL["dr_images"]
    n_samples: int = FULL["n_samples"]
    steps: int = FULL["steps"]
    patch: int = FULL["patch"]
    monotonicity_patch: int = FULL["monotonicity_patch"]
    fc_runs: int = FULL["fc_runs"]
    mprt_checkpoints: int = FULL["mprt_checkpoints"]
    mprt_seeds: int = FULL["mprt_seeds"]
    roughness_pairs: int = FULL["roughness_pairs"]
    line_steps: int = FULL["line_steps"]
    loc_images: int = FULL["loc_images"]
    loc_epochs: int | None = FULL["loc_epochs"]
    maps: Path | str | None = None
    store_images: int | None = FULL["store_images"]

    @classmethod
    def preset(cls, name: str = "full", **settings: Any) -> EvaluateConfig:
        """The ``"quick"`` or ``"full"`` preset, with every setting that is not ``None`` replacing it.

        Example:
            >>> EvaluateConfig.preset("quick", n_samples=4, images=None).n_samples
            4
        """
        if name not in PRESETS:
            raise ValueError(f"`preset` must be one of {sorted(PRESETS)}, got {name!r}")
        return cls(**{**PRESETS[name], **{k: v for k, v in settings.items() if v is not None}})

    def __post_init__(self) -> None:
        import torch
        from torch import nn

        from smoothsal.datasets.photos import BUNDLED as _BUNDLED
        from smoothsal.datasets.photos import NATURAL

        BUNDLED = {**_BUNDLED, **NATURAL}  # every photo name the card can load
        from smoothsal.registry import parse_methods

        set_ = lambda name, value: object.__setattr__(self, name, value)
        methods = self.methods.split(",") if isinstance(self.methods, str) else list(self.methods)
        set_("methods", tuple(parse_methods(methods, kinds=("method",))))
        set_("noise_level", check_nonnegative(self.noise_level, "noise_level"))
        if isinstance(self.baseline, str):
            if self.baseline not in BASELINES:
                raise ValueError(f"`baseline` must be one of {list(BASELINES)} or a number, got {self.baseline!r}")
        elif isinstance(self.baseline, bool) or not isinstance(self.baseline, (int, float)) or not math.isfinite(
            self.baseline
        ):
            raise ValueError(f"`baseline` must be one of {list(BASELINES)} or a finite number, got {self.baseline!r}")
        if self.ig_steps is not None:
            check_positive_int(self.ig_steps, "ig_steps", minimum=2)
        sections = self.sections.split(",") if isinstance(self.sections, str) else list(self.sections)
        sections = [x.strip() for x in sections if x.strip()]
        unknown = [x for x in sections if x not in SECTIONS]
        if unknown or not sections:
            raise ValueError(f"`sections` must name some of {list(SECTIONS)}, got {sections}")
        set_("sections", tuple(x for x in SECTIONS if x in sections))
        if self.randomization not in RANDOMIZATIONS:
            raise ValueError(f"`randomization` must be one of {list(RANDOMIZATIONS)}, got {self.randomization!r}")
        if self.image_set not in IMAGE_SETS:
            raise ValueError(f"`image_set` must be one of {list(IMAGE_SETS)}, got {self.image_set!r}")
        dr = self.data_randomization
        if isinstance(dr, tuple):
            rand = list(dr[1]) if len(dr) == 3 and isinstance(dr[1], (list, tuple)) else [dr[1]] if len(dr) == 3 else []
            if (len(dr) != 3 or not isinstance(dr[0], nn.Module) or not rand
                    or not all(isinstance(m, nn.Module) for m in rand) or not isinstance(dr[2], torch.Tensor)):  # fmt: skip
                raise TypeError("`data_randomization` must be None, a bool, or (model, random_label_model(s), images tensor)")
            if dr[2].dim() != 4 or dr[2].shape[0] < 2:
                raise ValueError(f"`data_randomization` images must be [N >= 2, C, H, W], got {tuple(dr[2].shape)}")
        elif dr is not None and not isinstance(dr, bool):
            raise TypeError("`data_randomization` must be None, a bool, or (model, random_label_model, images tensor)")
        check_positive_int(self.dr_images, "dr_images", minimum=2)
        for name in ("n_samples", "steps", "patch", "monotonicity_patch", "roughness_pairs", "loc_images"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.fc_runs, "fc_runs", minimum=2)
        check_positive_int(self.mprt_checkpoints, "mprt_checkpoints")
        check_positive_int(self.mprt_seeds, "mprt_seeds")
        check_positive_int(self.line_steps, "line_steps", minimum=2)
        if self.loc_epochs is not None:
            check_positive_int(self.loc_epochs, "loc_epochs")
        if self.photos is not None:
            photos = (self.photos,) if isinstance(self.photos, str) else tuple(self.photos)
            unknown = [p for p in photos if p not in BUNDLED]
            if unknown or not photos:
                raise ValueError(f"`photos` must be names from {sorted(BUNDLED)}, got {list(photos)}")
            set_("photos", photos)

        # the model: a module, a bundled name, a factory spec or a TorchScript file
        if isinstance(self.model, str):
            spec = self.model
            if spec not in BUNDLED_MODELS and not Path(spec).is_file() and ":" not in spec:
                raise ValueError(
                    f"`model` must be one of {list(BUNDLED_MODELS)}, 'package.module:factory' or a TorchScript "
                    f"file; got {spec!r}"
                )
        elif not isinstance(self.model, nn.Module):
            raise TypeError(f"`model` must be a model spec string or an nn.Module, got {type(self.model).__name__}")

        # the images: a tensor, or bundled names / files
        if isinstance(self.images, torch.Tensor):
            if self.images.dim() != 4 or not self.images.is_floating_point() or self.images.shape[0] == 0:
                raise ValueError(f"`images` must be a float tensor [N, C, H, W], got shape {tuple(self.images.shape)}")
        elif self.images is not None:
            items = (self.images,) if isinstance(self.images, (str, Path)) else tuple(self.images)
            items = tuple(str(p) for p in items)
            for item in items:
                if item not in BUNDLED and not Path(item).is_file():
                    raise FileNotFoundError(
                        f"`images`: {item!r} is neither an image file nor a bundled photo ({sorted(BUNDLED)})"
                    )
            set_("images", items or None)

        loc = self.localization
        if isinstance(loc, tuple):
            if len(loc) != 2 or not isinstance(loc[0], nn.Module):
                raise TypeError("`localization` must be None, a bool, or a (model, ImageDataset with masks) pair")
            if getattr(loc[1], "masks", None) is None:
                raise ValueError("`localization` dataset has no masks; localization needs ground-truth object masks")
        elif loc is not None and not isinstance(loc, bool):
            raise TypeError("`localization` must be None, a bool, or a (model, ImageDataset with masks) pair")
        if self.store_images is not None:
            check_positive_int(self.store_images, "store_images")
        if self.maps is not None:
            self._check_maps()

    def _check_maps(self) -> None:
        """``__post_init__`` with ``maps``: the folder is a map store holding maps of the model."""
        from torch import nn

        from smoothsal.studies.explain_dataset.store import as_location, open_store

        object.__setattr__(self, "maps", as_location(self.maps))  # a folder, or an fsspec URL
        if self.images is not None or self.photos is not None:
            raise ValueError("`maps` and `images`/`photos` exclude each other: with a map store the images are the store's")
        try:
            store = open_store(self.maps)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"`maps`: no map store at {str(self.maps)!r}") from err
        except ValueError as err:  # MapStoreError: not a store, or a corrupted one
            raise ValueError(
                f"`maps`: {err} (a map store is the --out folder of `smoothsal explain-dataset`)"
            ) from err
        if not len(store):
            raise ValueError(f"`maps`: the map store {self.maps} holds no maps yet")
        if isinstance(self.model, nn.Module):
            store_model_of(store, self.model)  # ValueError: no model of the store has these weights
        elif self.model not in store.models():
            raise ValueError(
                f"`model` {self.model!r} has no maps in the map store {self.maps} (it holds maps of {store.models()}); "
                "pass one of these, or run `smoothsal explain-dataset` with this --model into the store"
            )

    # ---- derived -----------------------------------------------------------------------------
    @property
    def bundled_model(self) -> bool:
        return isinstance(self.model, str) and self.model in BUNDLED_MODELS

    @property
    def wants_data_randomization(self) -> bool:
        return self.bundled_model if self.data_randomization is None else self.data_randomization is not False

    @property
    def wants_localization(self) -> bool:
        return self.bundled_model if self.localization is None else self.localization is not False

    def map_store(self) -> MapStore:
        """The map store of ``maps``, opened for reading (:class:`~smoothsal.studies.explain_dataset.store.MapStore`)."""
        from smoothsal.studies.explain_dataset.store import open_store

        if self.maps is None:
            raise ValueError("`maps` is not set: this report card reads no map store")
        return open_store(self.maps)

    def model_id(self) -> str:
        return self.model if isinstance(self.model, str) else f"module:{module_digest(self.model)}"

    def method_overrides(self, name: str) -> dict[str, MethodSetting]:
        """Constructor settings the user set for method ``name`` (only ``ig_steps`` today)."""
        return {"steps": self.ig_steps} if name == "ig" and self.ig_steps is not None else {}

    def smooth_spec(self, seed: int, estimate: int = 0) -> SmoothSpec:
        """The smoothing of the smoothed rows (:class:`~smoothsal.smoothing_spec.SmoothSpec`).

        ``estimate=1`` gives the *independent* second estimate (the sanity checks' reference),
        seeded by :func:`smoothsal.metrics.sanity.second_estimate_seed` of the run's ``seed``.
        """
        from smoothsal.metrics.sanity import second_estimate_seed

        return SmoothSpec(noise_level=self.noise_level, n_samples=self.n_samples,
                          seed=second_estimate_seed(seed, estimate))  # fmt: skip

    def to_hash(self, seed: int) -> JSONObject:
        """The settings that change results (the store's configuration, with the data's digests),
        with the run's ``seed``.

        Methods are not in it (each row is its own unit, so adding a method reuses the others),
        nor are the run options but the seed and the localization data's settings (the
        localization section has its own store, keyed by its own data). With ``maps``: the map
        store's configuration hash, its number of maps (a store that grew or was rewritten gives new
        records) and ``store_images``; without, neither key is there (older results stores stay valid).
        """
        skip = {"methods", "model", "images", "localization", "photos", "loc_images", "loc_epochs", "image_set",
                "data_randomization", "dr_images", "sections", "maps", "store_images"}  # fmt: skip
        out: JSONObject = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}
        out["seed"] = seed
        out["model"] = self.model_id()
        out["card_version"] = CARD_VERSION
        if self.maps is not None:
            store = self.map_store()
            out["maps"] = {"store_config": store.config_hash, "n_maps": len(store), "store_images": self.store_images}
        return out

    def _section_hash(self, seed: int) -> JSONObject:
        """What a section's own store (localization, data randomization) shares with the card's."""
        return {"noise_level": self.noise_level, "n_samples": self.n_samples, "seed": seed, "ig_steps": self.ig_steps,
                "card_version": CARD_VERSION}  # fmt: skip

    def data_randomization_hash(self, seed: int) -> JSONObject:
        """The settings of the data randomization section's own store."""
        dr = self.data_randomization
        if isinstance(dr, tuple):
            rand = dr[1] if isinstance(dr[1], (list, tuple)) else [dr[1]]
            models = "-".join(module_digest(m) for m in [dr[0], *rand])
            return {"source": f"{models}-{tensor_digest(dr[2])}", **self._section_hash(seed)}
        return {"dataset": "mnist", "recipe": "randomization_models", "label_seeds": list(DR_LABEL_SEEDS),
                "dr_images": self.dr_images, **self._section_hash(seed)}  # fmt: skip

    def localization_hash(self, seed: int) -> JSONObject:
        """The settings of the localization section's own store."""
        loc = self.localization
        if isinstance(loc, tuple):
            source = f"{module_digest(loc[0])}-{tensor_digest(loc[1].images)}"
        else:
            source = f"synthetic-{self.loc_epochs}-{self.loc_images}"
        return {"source": source, **self._section_hash(seed)}

    def as_dict(self) -> JSONObject:
        """The settings as JSON-ready values (for ``report.json``)."""
        from smoothsal.studies.store import to_jsonable

        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("model", "images", "localization", "data_randomization")}  # fmt: skip
        out["data_randomization"] = ("user models" if isinstance(self.data_randomization, tuple)
                                     else self.wants_data_randomization)  # fmt: skip
        out["maps"] = None if self.maps is None else str(self.maps)
        out["model"] = self.model_id()
        return to_jsonable(out)


def store_model_of(store: MapStore, model: nn.Module) -> str:
    """The spec of the map store's model whose recorded weights are ``model``'s
    (:func:`~smoothsal.studies.explain_dataset.compute.weights_digest`); ValueError when none is."""
    from smoothsal.studies.explain_dataset.compute import weights_digest

    digest = weights_digest(model)
    for spec in store.models():
        if store.model_info.get(spec, {}).get("weights_sha1") == digest:
            return spec
    raise ValueError(
        f"`model`: no model of the map store {store.path} has these weights (SHA-1 {digest}; the store holds "
        f"{ {s: store.model_info.get(s, {}).get('weights_sha1') for s in store.models()} })"
    )

