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
    "IMAGENET_PHOTOS",
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

#: Photos (shipped with scikit-image / scikit-learn) that each show an ImageNet class, with that
#: class (the target of every map) and what the photo shows. Left out of the natural photos:
#: textures (brick, grass, gravel), grey test charts, microscopy and sky images with no ImageNet
#: class, and the right half of the stereo motorcycle (the left half is here).
IMAGENET_PHOTOS: dict[str, tuple[int, str]] = {
    "chelsea": (281, "a tabby cat"),
    "coffee": (967, "a cup of espresso"),
    "rocket": (657, "a rocket (missile) on its launch pad"),
    "china": (698, "a Chinese palace / temple"),
    "motorcycle_left": (665, "a motorbike (moped), left stereo view"),
    "camera": (872, "a cameraman at a camera on a tripod"),
    "clock": (892, "a wall clock"),
}


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
    ig_steps: int
    photo_names: tuple[str, ...]
    photo_models: tuple[str, ...]
    photo_samples: int
    photo_max_samples: int
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
#: ``--quick`` of ``reproduce stability``: 16 noise samples instead of 100 at σ = 0.15 and 0.3, 12 test
#: digits, IG with 8 path points (as the full run); at ImageNet scale Lite0 vs Lite1 on 3 photos with 8 samples.
ST_QUICK: StabilityQuick = {
    "noise_levels": (0.0, 0.15, 0.3), "n_samples": 16, "n_inputs": 12, "ig_steps": 8,
    "photo_names": ("chelsea", "coffee", "motorcycle_left"), "photo_models": ("lite0", "lite1"), "photo_samples": 8,
    "photo_max_samples": 8, "n_boot": 200,
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

    The full preset is sized to finish in about 35 minutes on one busy CPU core (its CPU time is
    written into the outputs): 32 test digits × 3 trained pairs × 3 settings, 100 noise samples
    (the paper's) at σ = 0.05, 0.15, 0.3, IG with 8 path points raw and smoothed alike; at ImageNet
    scale only Simple-Grad at σ = 0.15, on 5 photos, 64 to 384 samples a map (a Lite map costs
    ~0.06 CPU s a sample; a relative standard error below 0.3 needs several hundred).

    Attributes:
        settings: Table 1's settings on MNIST (DT, DR, DA), each ``n_pairs`` trained pairs
            (:func:`smoothsal.studies.train.model_pairs`).
        methods: the methods of those settings (the paper's Simple-Grad, Integrated-Grad, Grad-CAM, Grad-CAM++).
        noise_levels: the σ grid (σ / value range; 0 = raw; 0.15 = Table 1's σ).
        n_samples: noise samples per smoothed map (the paper: 100); even, so the draws split into halves.
        n_inputs: held-out test digits (true labels as targets).
        n_pairs: independently trained pairs per setting.
        dataset: ``"mnist"`` (the models of :mod:`smoothsal.studies.train.recipes`, >= 98.5 %) or
            ``"digits"`` (8×8 digits at ``image_size``, ``epochs`` each: for tests).
        epochs: training epochs of the ``"digits"`` models (MNIST's recipes fix their own).
        image_size: the ``"digits"`` input side.
        ig_steps: Integrated Gradients path points, raw and smoothed alike (eq. 13 compares like with like).
        theory: also explain the pair trained in Theorems 5–6's regime (:func:`smoothsal.studies.train.theory_pairs`)
            with ``theory_methods`` over ``noise_levels`` and compute the bounds.
        theory_methods: methods of the theory pair (no Grad-CAM: the theory's network has no conv layer).
        photo_models: the pretrained models of the ImageNet DA setting (every pair of them); empty: not run.
        photo_names: photos that each show an ImageNet class (names of :data:`IMAGENET_PHOTOS`).
        photo_size: input side of the photos (224, the paper's).
        photo_methods, photo_noise_levels: methods and σ grid of the ImageNet settings.
        photo_samples: noise samples per smoothed ImageNet map, at least; then more, ``photo_samples``
            at a time, while its relative standard error is above ``max_rse``, up to ``photo_max_samples``.
        dr_weights: ``(V1, V2)`` weights of torchvision's ResNet50 for the paper's DR row (weight names
            such as ``"IMAGENET1K_V1"`` read from the torch hub cache, or state-dict files; ``"random"``:
            untrained, for tests); empty: that row is "not run".
        table_noise_level: σ of Table 1's smoothed columns (the paper: 0.15).
        n_boot: bootstrap resamples of the intervals and fits.
        max_rse: the ImageNet maps' relative standard error target (reported, map by map).
        quick, cache_dir: see :class:`_ReproRun`.

    How it runs and the seed (it picks the test digits and seeds the noise: the same draws for
    every model) are the :class:`~smoothsal.studies.options.RunOptions` given beside it.
    """

    QUICK = ST_QUICK  # the quick preset (not a field: no annotation)

    settings: tuple[str, ...] = ("DT", "DR", "DA")
    methods: tuple[str, ...] = ("grad", "ig", "gradcam", "gradcam++")
    noise_levels: tuple[float, ...] = (0.0, 0.05, 0.15, 0.3)
    n_samples: int = 100
    n_inputs: int = 32
    n_pairs: int = 3
    dataset: str = "mnist"
    epochs: int = 1
    image_size: int = 32
    ig_steps: int = 8
    theory: bool = True
    theory_methods: tuple[str, ...] = ("grad", "ig")
    photo_models: tuple[str, ...] = ("lite0", "lite1", "lite2")
    photo_names: tuple[str, ...] = ("chelsea", "coffee", "rocket", "motorcycle_left", "camera")
    photo_size: int = 224
    photo_methods: tuple[str, ...] = ("grad",)
    photo_noise_levels: tuple[float, ...] = (0.0, 0.15)
    photo_samples: int = 64
    photo_max_samples: int = 384
    dr_weights: tuple[str, ...] = ()
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
        self._set("theory_methods", _method_names(self.theory_methods, "theory_methods"))
        for name in ("noise_levels", "photo_noise_levels"):
            grid = _floats(getattr(self, name), name)
            grid = grid if 0.0 in grid else (0.0, *grid)
            if len(grid) < 2:
                raise ValueError(f"`{name}` must hold a σ > 0, got {list(getattr(self, name))}")
            self._set(name, grid)
        if check_positive_int(self.n_samples, "n_samples", minimum=2) % 2:
            raise ValueError(f"`n_samples` must be even (two halves of the draws), got {self.n_samples}")
        check_positive_int(self.n_inputs, "n_inputs", minimum=2)
        check_positive_int(self.n_pairs, "n_pairs")
        if self.dataset not in ("mnist", "digits"):
            raise ValueError(f"`dataset` must be 'mnist' or 'digits', got {self.dataset!r}")
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.image_size, "image_size", minimum=11)
        check_positive_int(self.ig_steps, "ig_steps", minimum=2)
        _check_bools(self, ("theory",))
        models = _names(self.photo_models, "photo_models") if self.photo_models else ()
        if len(models) == 1:
            raise ValueError(f"`photo_models` must name 0 or >= 2 models, got {list(models)}")
        self._set("photo_models", models)
        photos = _names(self.photo_names, "photo_names") if self.photo_names else ()
        unknown = [p for p in photos if p not in IMAGENET_PHOTOS]
        if unknown:
            raise ValueError(f"`photo_names` must be photos of ImageNet classes, from {list(IMAGENET_PHOTOS)}; got {unknown}")
        if (models or self.dr_weights) and len(photos) < 2:
            raise ValueError(f"`photo_names` must name >= 2 photos for the ImageNet settings, got {list(photos)}")
        self._set("photo_names", photos)
        raw = self.dr_weights.split(",") if isinstance(self.dr_weights, str) else list(self.dr_weights or ())
        weights = tuple(str(w).strip() for w in raw if str(w).strip())  # V1 and V2 may repeat ("random")
        if weights and len(weights) != 2:
            raise ValueError(f"`dr_weights` must give 2 weights (ResNet50 V1, V2), got {list(weights)}")
        self._set("dr_weights", weights)
        self._set("photo_methods", _method_names(self.photo_methods, "photo_methods"))
        check_positive_int(self.photo_samples, "photo_samples", minimum=2)
        check_positive_int(self.photo_size, "photo_size", minimum=11)
        if check_positive_int(self.photo_max_samples, "photo_max_samples") < self.photo_samples:
            raise ValueError(f"`photo_max_samples` must be >= photo_samples={self.photo_samples}, got {self.photo_max_samples}")
        check_nonnegative(self.table_noise_level, "table_noise_level")
        check_positive_int(self.n_boot, "n_boot", minimum=100)
        check_nonnegative(self.max_rse, "max_rse")
        if not settings and not models and not weights:
            raise ValueError("nothing to run: `settings`, `photo_models` and `dr_weights` are all empty")
        self._check_run_options()

    def train_base(self) -> TrainConfig | None:
        """The recipe each setting varies: ``None`` on MNIST (its own recipes), else the digits'."""
        from smoothsal.studies.train import TrainConfig

        if self.dataset == "mnist":
            return None
        return TrainConfig(dataset="digits", epochs=self.epochs, image_size=self.image_size)

    def to_hash(self, seed: int) -> JSONObject:
        """The store's configuration: only the run's ``seed``. Each row carries the settings it depends
        on (:meth:`digits_params` or :meth:`photo_params`), so changing the photos never discards the
        MNIST rows and the reverse."""
        return {"seed": seed}

    def digits_params(self) -> JSONObject:
        """Settings that change an MNIST (or digits) row."""
        base = self.train_base()
        return {"dataset": self.dataset, "n_samples": self.n_samples, "n_inputs": self.n_inputs,
                "n_pairs": self.n_pairs, "ig_steps": self.ig_steps,
                "train": None if base is None else asdict(base)}  # fmt: skip

    def photo_params(self, setting: str = "DA-ImageNet") -> JSONObject:
        """Settings that change an ImageNet row (the photos by name: a change of list never reuses rows)."""
        out: JSONObject = {"photos": list(self.photo_names), "photo_samples": self.photo_samples,
                           "photo_size": self.photo_size, "ig_steps": self.ig_steps,
                           "models": list(self.photo_models) if setting == "DA-ImageNet" else list(self.dr_weights)}  # fmt: skip
        if self.photo_max_samples > self.photo_samples:  # only then can they change a number
            out["photo_max_samples"] = self.photo_max_samples
            out["max_rse"] = self.max_rse
        return out

    def settings_dict(self) -> JSONObject:
        """Every setting, JSON-ready (``settings`` is a field of this configuration)."""
        return self._json_settings()
