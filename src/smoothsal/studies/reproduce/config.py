"""Settings of ``smoothsal reproduce``: one frozen dataclass per paper, checked before any work.

* :class:`SmoothGradReproConfig`: SmoothGrad (Smilkov et al. 2017, arXiv:1706.03825), Figs. 2–9
  and the visualization lessons, on a pretrained ImageNet model and photos (digits for Figs. 8–9,
  where the paper used MNIST);
* :class:`StabilityReproConfig`: the stability–fidelity trade-off (Ye & Farnia 2025,
  arXiv:2411.05837), Table 1 settings DT / DR / DA on digits and the ImageNet-scale DA setting on
  the pretrained EfficientNet-Lite0/1/2 over natural photos.

Each has a ``full`` preset (the defaults, the run to cite) and a ``quick`` one (minutes on 2 CPU
cores; fewer noise samples, which the outputs say). ``to_hash()`` lists the settings that change
results (the results store's configuration), with the run's seed; the other run options
(:class:`~smoothsal.studies.options.RunOptions`: output folder, device, batch size, memory budget,
progress bars) do not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

from smoothsal._core.jsontypes import JSONObject
from smoothsal._core.validation import check_nonnegative, check_positive_int
from smoothsal.datasets.photos import NATURAL_PHOTO_NAMES
from smoothsal.registry import MethodSetting, parse_methods
from smoothsal.smoothing_spec import SmoothSpec
from smoothsal.studies.tradeoff.config import SETTINGS, _names

if TYPE_CHECKING:
    from smoothsal.studies.train import TrainConfig

__all__ = [
    "SG_DEFAULT_OUT",
    "SG_NOISE_LEVELS",
    "SG_QUICK",
    "SG_SAMPLE_SIZES",
    "ST_DEFAULT_OUT",
    "ST_QUICK",
    "SmoothGradQuick",
    "SmoothGradReproConfig",
    "StabilityQuick",
    "StabilityReproConfig",
]

#: Where each command writes when no ``--out`` is given.
SG_DEFAULT_OUT = Path("out/reproduce/smoothgrad")
ST_DEFAULT_OUT = Path("out/reproduce/stability")

#: SmoothGrad Fig. 3's noise levels σ / (x_max − x_min).
SG_NOISE_LEVELS: tuple[float, ...] = (0.0, 0.025, 0.05, 0.10, 0.15, 0.20, 0.30, 0.50)
#: SmoothGrad Fig. 4's sample sizes (the n the standard error asks for is added at run time).
SG_SAMPLE_SIZES: tuple[int, ...] = (1, 5, 10, 20, 50, 100)


class SmoothGradQuick(TypedDict):
    """What ``--quick`` changes in :class:`SmoothGradReproConfig` (:data:`SG_QUICK`)."""

    n_samples: int
    line_steps: int
    line_samples: int
    max_sample_size: int
    se_max_samples: int
    fig4_images: int
    digit_epochs: int
    digit_models: int
    digit_inputs: int
    claim_images: int
    claim3_images: int
    claim_pairs: int
    photo_pairs: int
    photo_pairs_from: int
    claim_max_n: int
    claim_ref_n: int
    claim_photo_ref_n: int
    noise_pairs: int


class StabilityQuick(TypedDict):
    """What ``--quick`` changes in :class:`StabilityReproConfig` (:data:`ST_QUICK`)."""

    noise_levels: tuple[float, ...]
    n_samples: int
    n_inputs: int
    epochs: int
    photo_inputs: int
    photo_samples: int
    photo_max_samples: int
    photo_methods: tuple[str, ...]
    photo_noise_levels: tuple[float, ...]
    n_boot: int


#: ``--quick`` of ``reproduce smoothgrad``: 10 noisy samples instead of 50, a shorter line, Fig. 4 on one
#: image up to n = 50 with the standard-error column capped at 100 samples, 2-epoch digit models,
#: the claims on fewer images, pairs and draws (said in the outputs).
SG_QUICK: SmoothGradQuick = {
    "n_samples": 10, "line_steps": 41, "line_samples": 4, "max_sample_size": 50, "se_max_samples": 100,
    "fig4_images": 1, "digit_epochs": 2, "digit_models": 2, "digit_inputs": 32,
    "claim_images": 16, "claim3_images": 4, "claim_pairs": 16, "photo_pairs": 4, "photo_pairs_from": 4,
    "claim_max_n": 20, "claim_ref_n": 100, "claim_photo_ref_n": 40, "noise_pairs": 2,
}  # fmt: skip
#: ``--quick`` of ``reproduce stability``: a smaller σ grid, 10 noise samples instead of 100,
#: 8 photos, two methods and 16 samples on the ImageNet models, 2-epoch digit models.
ST_QUICK: StabilityQuick = {
    "noise_levels": (0.0, 0.05, 0.15, 0.3), "n_samples": 10, "n_inputs": 24, "epochs": 2,
    "photo_inputs": 8, "photo_samples": 16, "photo_max_samples": 16, "photo_methods": ("grad", "gradcam"), "photo_noise_levels": (0.0, 0.15, 0.3),
    "n_boot": 200,
}  # fmt: skip


def _floats(values: Any, name: str) -> tuple[float, ...]:
    items = values.split(",") if isinstance(values, str) else list(values)
    out = tuple(sorted({check_nonnegative(float(v), name) for v in items}))
    if not out:
        raise ValueError(f"`{name}` must hold at least one value, got {values!r}")
    return out


def _method_names(value: str | tuple[str, ...], name: str) -> tuple[str, ...]:
    """Registered method names (``"grad,ig"`` or a sequence; aliases resolved), each once."""
    return tuple(parse_methods(list(_names(value, name)), kinds=("method",)))


def _check_bools(obj: Any, names: tuple[str, ...]) -> None:
    for name in names:
        if not isinstance(getattr(obj, name), bool):
            raise TypeError(f"`{name}` must be a bool, got {getattr(obj, name)!r}")


@dataclass(frozen=True)
class _ReproRun:
    """What both reproduce configurations share: ``quick`` and ``cache_dir`` and their checks, the
    quick/full preset rule and ``replace``.

    Attributes:
        quick: recorded in the outputs (a ``--quick`` run says so).
        cache_dir: where trained models are cached; does not change results.
    """

    #: the quick preset's settings (the subclass's :data:`SG_QUICK` / :data:`ST_QUICK`)
    QUICK: ClassVar[SmoothGradQuick | StabilityQuick]

    quick: bool = False
    cache_dir: Path | None = None

    def _set(self, name: str, value: object) -> None:
        """Set a checked field of the frozen configuration (its normalized value)."""
        object.__setattr__(self, name, value)

    def _check_run_options(self) -> None:
        if self.cache_dir is not None:
            self._set("cache_dir", Path(self.cache_dir))
        _check_bools(self, ("quick",))

    @classmethod
    def preset(cls, quick: bool = False, **changes: Any) -> Any:
        """The full (defaults) or quick (:attr:`QUICK`) settings, with ``changes`` (not ``None``) on top."""
        values: dict[str, object] = {**(cls.QUICK if quick else {}), "quick": quick}
        values.update({k: v for k, v in changes.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)

    def _json_settings(self) -> JSONObject:
        """Every setting, JSON-ready (paths as strings, tuples as lists)."""
        from smoothsal.studies.store import to_jsonable

        return to_jsonable({f.name: getattr(self, f.name) for f in fields(self)})


@dataclass(frozen=True)
class SmoothGradReproConfig(_ReproRun):
    """Every setting of ``smoothsal reproduce smoothgrad`` (defaults: the full run).

    Attributes:
        model: ``lite0`` | ``lite1`` | ``lite2`` | ``package.module:factory`` | TorchScript file.
        image_size: side of the model's inputs (``None``: the model's own).
        images: bundled photo names or image files (rows of Figs. 3 and 5; at least 4 for Fig. 3).
        methods: the base methods of Figs. 5–7 (the paper's gradient, IG and Guided Backprop).
        noise_level: σ / (x_max − x_min) of every smoothed map except Fig. 3's (the paper: 10–20 %).
        n_samples: noisy samples per smoothed map (the paper: n ≈ 50).
        noise_levels: Fig. 3's columns (0 = the vanilla gradient, always included).
        sample_sizes: Fig. 4's columns (only those ≤ ``max_sample_size``).
        max_sample_size: the largest n of Fig. 4.
        fig4_images: images of Fig. 4 (the first ones).
        tol: relative standard error ‖SE‖/‖map‖ the "n the standard error asks for" column reaches
            (default: the registry's :data:`~smoothsal.registry.PRECISION`, 0.35), sampling at most
            ``se_max_samples`` (the registry's 400; the figure says when the cap stopped it).
        ig_steps: Integrated Gradients path points of the raw maps (``None``: the registry's 32).
        line_steps, line_eps: Fig. 2's points on x + tε, t ∈ [0, 1], and ε's std as a fraction of
            the value range (the paper: ε ~ N(0, 0.01²)).
        line_samples: noisy samples per point of Fig. 2's SmoothGrad line.
        digit_noise: σ_train of Figs. 8–9's noisy-training regime (fraction of the value range).
        digit_epochs, digit_models, digit_inputs, digit_show: the digits 2 × 2 (models trained on
            disjoint parts of the digits, test inputs scored, inputs shown).
        claim_images: images of claims 1, 2 and 5 (synthetic scenes and MNIST digits each;
            :mod:`smoothsal.studies.reproduce.sg_claims`).
        claim_noise_levels: claim 2's σ grid (``0`` and ``noise_level`` are added).
        claim3_images, claim_photos: MNIST digits and photos of claim 3; ``claim_max_n`` its
            largest n, ``claim_ref_n`` / ``claim_photo_ref_n`` the draws of its reference maps.
        claim_pairs: MNIST composites of claims 4 and 5; ``photo_pairs`` photo composites of claim 4,
            drawn from the first ``photo_pairs_from`` natural photos.
        noise_pairs: model pairs (plain, noise-trained) of claim 5.
        claims: measure the claims (``claims.csv`` / ``claims.md``); ``False`` draws the figures only.
        quick, cache_dir: see :class:`_ReproRun`.

    How it runs and the seed (the noise seed; it also picks the digit test inputs) are the
    :class:`~smoothsal.studies.options.RunOptions` given beside it.
    """

    QUICK = SG_QUICK  # the quick preset (not a field: no annotation)

    model: str = "lite0"
    image_size: int | None = None
    images: tuple[str, ...] = ("chelsea", "coffee", "astronaut", "rocket")
    methods: tuple[str, ...] = ("grad", "ig", "guided")
    noise_level: float = 0.15
    n_samples: int = 50
    noise_levels: tuple[float, ...] = SG_NOISE_LEVELS
    sample_sizes: tuple[int, ...] = SG_SAMPLE_SIZES
    max_sample_size: int = 100
    fig4_images: int = 4
    tol: float = 0.35
    se_max_samples: int = 400
    ig_steps: int | None = None
    line_steps: int = 101
    line_eps: float = 0.01
    line_samples: int = 16
    digit_noise: float = 0.2
    digit_epochs: int = 10
    digit_models: int = 3
    digit_inputs: int = 128
    digit_show: int = 4
    claim_images: int = 64
    claim_noise_levels: tuple[float, ...] = SG_NOISE_LEVELS
    claim3_images: int = 16
    claim_photos: int = 4
    claim_max_n: int = 100
    claim_ref_n: int = 400
    claim_photo_ref_n: int = 200
    claim_pairs: int = 32
    photo_pairs: int = 20
    photo_pairs_from: int = 10
    noise_pairs: int = 3
    claims: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"`model` must be a non-empty model spec, got {self.model!r}")
        if self.image_size is not None:
            check_positive_int(self.image_size, "image_size", minimum=8)
        self._set("images", _names(self.images, "images"))
        if len(self.images) < 4:
            raise ValueError(f"`images` must name at least 4 images (the rows of Fig. 3), got {list(self.images)}")
        self._set("methods", _method_names(self.methods, "methods"))
        if check_nonnegative(self.noise_level, "noise_level") == 0:
            raise ValueError(f"`noise_level` must be > 0, got {self.noise_level}")
        check_positive_int(self.n_samples, "n_samples")
        levels = _floats(self.noise_levels, "noise_levels")
        self._set("noise_levels", levels if 0.0 in levels else (0.0, *levels))
        check_positive_int(self.max_sample_size, "max_sample_size")
        sizes = tuple(sorted({check_positive_int(int(n), "sample_sizes") for n in self.sample_sizes}))
        sizes = tuple(n for n in sizes if n <= self.max_sample_size)
        if not sizes:
            raise ValueError(f"`sample_sizes` must hold a size <= max_sample_size={self.max_sample_size}")
        self._set("sample_sizes", sizes)
        check_positive_int(self.fig4_images, "fig4_images")
        if not 0 < check_nonnegative(self.tol, "tol") < 1:
            raise ValueError(f"`tol` must lie in (0, 1), got {self.tol}")
        check_positive_int(self.se_max_samples, "se_max_samples")
        if self.ig_steps is not None:
            check_positive_int(self.ig_steps, "ig_steps", minimum=2)
        check_positive_int(self.line_steps, "line_steps", minimum=2)
        if check_nonnegative(self.line_eps, "line_eps") == 0:
            raise ValueError(f"`line_eps` must be > 0, got {self.line_eps}")
        check_positive_int(self.line_samples, "line_samples")
        if check_nonnegative(self.digit_noise, "digit_noise") == 0:
            raise ValueError(f"`digit_noise` must be > 0, got {self.digit_noise}")
        check_positive_int(self.digit_epochs, "digit_epochs")
        check_positive_int(self.digit_models, "digit_models", minimum=2)
        check_positive_int(self.digit_inputs, "digit_inputs")
        check_positive_int(self.digit_show, "digit_show")
        grid = self.claim_noise_levels.split(",") if isinstance(self.claim_noise_levels, str) else list(self.claim_noise_levels)
        levels = _floats([*grid, self.noise_level], "claim_noise_levels")  # the run's σ is always on the grid
        self._set("claim_noise_levels", levels if 0.0 in levels else (0.0, *levels))
        for name in ("claim_images", "claim3_images", "claim_photos", "claim_pairs", "photo_pairs", "photo_pairs_from"):
            check_positive_int(getattr(self, name), name, minimum=2)
        check_positive_int(self.claim_max_n, "claim_max_n", minimum=2)
        check_positive_int(self.claim_ref_n, "claim_ref_n")
        check_positive_int(self.claim_photo_ref_n, "claim_photo_ref_n")
        check_positive_int(self.noise_pairs, "noise_pairs")
        _check_bools(self, ("claims",))
        if self.claim3_images > self.claim_images:
            raise ValueError(f"`claim3_images` must be <= claim_images={self.claim_images}, got {self.claim3_images}")
        if max(self.claim_photos, self.photo_pairs_from) > len(NATURAL_PHOTO_NAMES):
            raise ValueError(f"`claim_photos` and `photo_pairs_from` must be <= {len(NATURAL_PHOTO_NAMES)} (the natural photos)")
        self._check_run_options()

    def smooth_spec(self, seed: int) -> SmoothSpec:
        """The smoothing of the smoothed maps (fixed n, seeded by ``seed``); ``.replace()`` for a figure's own."""
        return SmoothSpec(noise_level=self.noise_level, n_samples=self.n_samples, seed=seed)

    def overrides(self, method: str, smoothed: bool) -> dict[str, MethodSetting]:
        """Constructor settings replacing the registry's: ``ig_steps`` for raw Integrated Gradients."""
        return {"steps": self.ig_steps} if method == "ig" and not smoothed and self.ig_steps is not None else {}

    def to_hash(self, seed: int) -> JSONObject:
        """Settings that change results, with the run's ``seed``. Figure axes and methods are not in
        it: each unit carries its own."""
        return {"model": self.model, "image_size": self.image_size, "images": list(self.images),
                "noise_level": self.noise_level, "n_samples": self.n_samples, "seed": seed,
                "ig_steps": self.ig_steps}  # fmt: skip

    def settings(self) -> JSONObject:
        """Every setting, JSON-ready."""
        return self._json_settings()


@dataclass(frozen=True)
class StabilityReproConfig(_ReproRun):
    """Every setting of ``smoothsal reproduce stability`` (defaults: the full run, the one to cite).

    Attributes:
        settings: the digits settings of Table 1 (DT, DR, DA), each with ``n_models`` models.
        methods: the methods of Table 1 (Simple-Grad, Integrated-Grad, Grad-CAM, Grad-CAM++).
        noise_levels: the σ grid of the digits settings (0 = unsmoothed; 0.15 = Table 1's σ).
        n_samples: noise samples per smoothed map (the paper: 100).
        n_inputs: digit test inputs (true labels as targets). n_models: models per setting.
        epochs: training epochs of every digit model. image_size: digit input side.
        photo_models: the pretrained models of the ImageNet-scale DA setting (model specs of
            :func:`smoothsal.models.zoo.load_model`; every model sees the photos at ``photo_size``).
        photo_inputs: natural photos explained (the first of
            :data:`smoothsal.datasets.photos.NATURAL_PHOTO_NAMES`; >= 16 in full).
        photo_methods, photo_noise_levels, photo_samples: methods, σ grid and samples of that setting.
        photo_max_samples: a smoothed ImageNet map whose relative standard error is still above
            ``max_rse`` after ``photo_samples`` samples draws more, ``photo_samples`` at a time, up to
            this many (the same draws for every model: a longer run extends the same sequence).
        table_noise_level: σ of Table 1's smoothed columns (the paper: 0.15).
        n_boot: bootstrap resamples (over inputs) of the power-law fits' intervals.
        max_rse: the maps' relative standard error the full run must stay below (reported).
        quick, cache_dir: see :class:`_ReproRun`.

    How it runs and the seed (it picks the digit inputs and seeds the noise: the same draws for
    every model) are the :class:`~smoothsal.studies.options.RunOptions` given beside it.
    """

    QUICK = ST_QUICK  # the quick preset (not a field: no annotation)

    settings: tuple[str, ...] = ("DT", "DR", "DA")
    methods: tuple[str, ...] = ("grad", "ig", "gradcam", "gradcam++")
    noise_levels: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
    n_samples: int = 100
    n_inputs: int = 128
    n_models: int = 3
    epochs: int = 10
    image_size: int = 32
    photo_models: tuple[str, ...] = ("lite0", "lite1", "lite2")
    photo_inputs: int = 18
    photo_size: int = 224
    photo_methods: tuple[str, ...] = ("grad", "ig", "gradcam", "gradcam++")
    photo_noise_levels: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)
    photo_samples: int = 100
    photo_max_samples: int = 400
    table_noise_level: float = 0.15
    n_boot: int = 1000
    max_rse: float = 0.3

    def __post_init__(self) -> None:
        settings = tuple(_names(self.settings, "settings")) if self.settings else ()
        unknown = [x for x in settings if x not in SETTINGS]
        if unknown:
            raise ValueError(f"`settings` must be names from {list(SETTINGS)}, got unknown {unknown}")
        self._set("settings", settings)
        self._set("methods", _method_names(self.methods, "methods"))
        for name in ("noise_levels", "photo_noise_levels"):
            grid = _floats(getattr(self, name), name)
            grid = grid if 0.0 in grid else (0.0, *grid)
            if len(grid) < 2:
                raise ValueError(f"`{name}` must hold a σ > 0, got {list(getattr(self, name))}")
            self._set(name, grid)
        check_positive_int(self.n_samples, "n_samples")
        check_positive_int(self.n_inputs, "n_inputs", minimum=2)
        check_positive_int(self.n_models, "n_models", minimum=2)
        if "DA" in settings and self.n_models > 4:
            raise ValueError(f"`n_models` must be <= 4 with setting DA (one per architecture), got {self.n_models}")
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.image_size, "image_size", minimum=8)
        models = _names(self.photo_models, "photo_models") if self.photo_models else ()
        if len(models) == 1:
            raise ValueError(f"`photo_models` must name 0 or >= 2 models, got {list(models)}")
        self._set("photo_models", models)
        check_positive_int(self.photo_inputs, "photo_inputs", minimum=2)
        if self.photo_inputs > len(NATURAL_PHOTO_NAMES):
            raise ValueError(f"`photo_inputs` must be <= {len(NATURAL_PHOTO_NAMES)} (the natural photos), got {self.photo_inputs}")
        self._set("photo_methods", _method_names(self.photo_methods, "photo_methods"))
        check_positive_int(self.photo_samples, "photo_samples")
        check_positive_int(self.photo_size, "photo_size", minimum=8)
        if check_positive_int(self.photo_max_samples, "photo_max_samples") < self.photo_samples:
            raise ValueError(f"`photo_max_samples` must be >= photo_samples={self.photo_samples}, got {self.photo_max_samples}")
        check_nonnegative(self.table_noise_level, "table_noise_level")
        check_positive_int(self.n_boot, "n_boot", minimum=10)
        check_nonnegative(self.max_rse, "max_rse")
        if not settings and not models:
            raise ValueError("nothing to run: `settings` and `photo_models` are both empty")
        self._check_run_options()

    def train_base(self) -> TrainConfig:
        """The :class:`~smoothsal.studies.train.TrainConfig` each digits setting varies."""
        from smoothsal.studies.train import TrainConfig

        return TrainConfig(dataset="digits", epochs=self.epochs, image_size=self.image_size)

    def to_hash(self, seed: int) -> JSONObject:
        """The store's configuration: only the run's ``seed``. Each row carries the settings it depends
        on (:meth:`digits_params` or :meth:`photo_params`), so changing the photos never discards the
        digits rows and the reverse."""
        return {"seed": seed}

    def digits_params(self) -> JSONObject:
        """Settings that change a digits row."""
        return {"n_samples": self.n_samples, "n_inputs": self.n_inputs, "n_models": self.n_models,
                "train": asdict(self.train_base())}  # fmt: skip

    def photo_names(self) -> tuple[str, ...]:
        """The natural photos of the ImageNet setting: the first ``photo_inputs`` of
        :data:`~smoothsal.datasets.photos.NATURAL_PHOTO_NAMES`."""
        return NATURAL_PHOTO_NAMES[: self.photo_inputs]

    def photo_params(self) -> JSONObject:
        """Settings that change an ImageNet row (the photos by name: a change of list never reuses rows)."""
        out: JSONObject = {"photo_inputs": self.photo_inputs, "photos": list(self.photo_names()), "photo_samples": self.photo_samples,
               "photo_models": list(self.photo_models), "photo_size": self.photo_size}  # fmt: skip
        if self.photo_max_samples > self.photo_samples:  # only then can they change a number
            out["photo_max_samples"] = self.photo_max_samples
            out["max_rse"] = self.max_rse
        return out

    def settings_dict(self) -> JSONObject:
        """Every setting, JSON-ready (``settings`` is a field of this configuration)."""
        return self._json_settings()
