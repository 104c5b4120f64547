"""Settings of ``smoothsal explain``: one frozen dataclass shared by the CLI and the API.

Every argument is checked in :meth:`ExplainConfig.__post_init__`, before a model is loaded or a
map computed: a negative noise level, ``n_samples < 1``, an unknown method name, a missing file
or a file that is not an image all fail at once with a message naming the argument.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from smoothsal._core.jsontypes import JSON, JSONObject
from smoothsal._core.validation import check_nonnegative, check_positive_int
from smoothsal.registry import PRECISION, MethodSetting, method_spec, parse_methods
from smoothsal.smoothing_spec import SmoothSpec

__all__ = [
    "DEFAULT_METHODS",
    "DEFAULT_OUT",
    "NOISE_LEVELS",
    "OVERRIDES",
    "SAMPLE_SIZES",
    "ExplainConfig",
    "check_image_source",
]

#: Methods explained by default: the SmoothGrad paper's gradient, IG and Guided Backprop (its
#: Fig. 7), and Grad-CAM as the coarse-map reference.
DEFAULT_METHODS: tuple[str, ...] = ("grad", "ig", "guided", "gradcam")
#: Noise levels σ/(x_max − x_min) of ``noise_levels.png`` (SmoothGrad Fig. 3 spans 0–50 %); σ = 0
#: is the vanilla gradient, the column the others are compared with, so it must be present.
NOISE_LEVELS: tuple[float, ...] = (0.0, 0.05, 0.10, 0.20, 0.30, 0.50)
#: Sample sizes of ``sample_sizes.png`` (SmoothGrad Fig. 4); those below ``n_samples`` are drawn,
#: plus ``n_samples`` itself.
SAMPLE_SIZES: tuple[int, ...] = (1, 10, 50, 100, 200, 400, 800)

#: Where ``smoothsal explain`` writes when no ``--out`` is given.
DEFAULT_OUT = Path("out/explain")
#: Config fields that override one registered method setting: field -> (method, smoothed, setting).
#: ``None`` (the default) keeps the registry's value (:mod:`smoothsal.registry`).
OVERRIDES: dict[str, tuple[str, bool, str]] = {
    "ig_steps": ("ig", False, "steps"),
    "smooth_ig_steps": ("ig", True, "steps"),
}


def check_image_source(item: str, bundled: Mapping[str, str]) -> str:
    """``item`` as given if it is a readable image file or a bundled photo name; else ValueError.

    A file is opened with PIL and verified (reads the header and checks the data, no decoding
    to pixels), so ``notimage.jpg`` holding text fails here and not after the model is loaded.
    """
    path = Path(item)
    if path.is_file():
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                im.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise ValueError(f"`images`: {item!r} is not an image file PIL can read ({err})") from err
        return item
    if item in bundled:
        return item
    if path.exists():
        raise ValueError(f"`images`: {item!r} is not a file")
    raise FileNotFoundError(
        f"`images`: no image file at {item!r}, and it is not a bundled photo (one of {sorted(bundled)})"
    )


def _file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class ExplainConfig:
    """Settings of one ``smoothsal explain`` run (see :mod:`smoothsal.studies.explain`).

    Args:
        images: image files or bundled photo names (:data:`smoothsal.datasets.photos.BUNDLED`);
            empty = every bundled photo. A name that is also an existing file is the file.
        model: ``"lite0" | "lite1" | "lite2"``, a hub model (``"torchvision:resnet50"``,
            ``"timm:vit_small_patch16_224"``, ``"hf:REPO_OR_FOLDER"``), ``"package.module:factory"``
            or a TorchScript file (:func:`smoothsal.models.zoo.load_model`).
        weights: for hub models, a state-dict file (``.pth``/``.safetensors``) instead of the
            hub's local cache. random_weights: for hub models, the untrained architecture.
        methods: registered method names or aliases, as a sequence or ``"grad,ig"``
            (:func:`smoothsal.registry.parse_methods`); stored resolved.
        noise_level: σ / (x_max − x_min) of the smoothed maps (SmoothGrad's noise level, >= 0).
        weight_noise: σ_w of multiplicative noise on the model's weights in the smoothed maps
            (NoiseGrad; FusionGrad with ``noise_level > 0``: :mod:`smoothsal.weight_noise`), >= 0.
        n_samples, tol: the smoothed maps' sampling rule, default :data:`smoothsal.registry.PRECISION`:
            sample until every map's relative standard error is at most ``tol``, at most
            ``n_samples`` samples. ``tol=None`` (or 0) always takes ``n_samples``.
        target: class explained for every image; ``None`` = each image's top-1 class.
        ig_steps, smooth_ig_steps: override Integrated Gradients' path points, raw and per noisy
            sample (``None`` = the registry's values, see :data:`OVERRIDES`).
        extras: also draw the SmoothGrad paper's Figs. 3, 4 and 6 and the visualization choices.
        noise_levels, sample_sizes: the axes of ``noise_levels.png`` and ``sample_sizes.png``.
        precision: ``"float32"`` or a mixed precision for the forward pass (``"bf16"``, ``"fp16"``;
            :mod:`smoothsal.execution.precision`); part of the hash (it changes the maps).

    How it runs (output folder, device, batch size, memory budget, the noise seed, progress bars)
    is the :class:`~smoothsal.studies.options.RunOptions` given beside it.
    """

    images: tuple[str, ...] = ()
    model: str = "lite0"
    weights: str | None = None
    random_weights: bool = False
    methods: tuple[str, ...] = DEFAULT_METHODS
    noise_level: float = 0.15
    weight_noise: float = 0.0
    n_samples: int = PRECISION.n_samples
    tol: float | None = PRECISION.tol
    target: int | None = None
    ig_steps: int | None = None
    smooth_ig_steps: int | None = None
    extras: bool = True
    noise_levels: tuple[float, ...] = NOISE_LEVELS
    sample_sizes: tuple[int, ...] = SAMPLE_SIZES
    precision: str = "float32"

    def __post_init__(self) -> None:
        from smoothsal.datasets.photos import BUNDLED

        images = (self.images,) if isinstance(self.images, (str, Path)) else tuple(self.images or ())
        self._set("images", tuple(check_image_source(str(p), BUNDLED) for p in images))
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"`model` must be a non-empty model spec string, got {self.model!r}")
        from smoothsal.models.zoo import IMAGE_SIZES

        if self.model not in IMAGE_SIZES and ":" not in self.model and not Path(self.model).is_file():
            raise ValueError(  # the forms smoothsal.models.zoo.load_model accepts; checked without loading
                f"`model` must be one of {sorted(IMAGE_SIZES)}, 'torchvision:NAME', 'timm:NAME', 'hf:REPO_OR_FOLDER', "
                "'package.module:factory' or a TorchScript file; "
                f"got {self.model!r}"
            )
        self._check_weights()
        self._set("methods", tuple(parse_methods(self.methods)))
        self._set("noise_level", check_nonnegative(self.noise_level, "noise_level"))
        self._set("weight_noise", check_nonnegative(self.weight_noise, "weight_noise"))
        check_positive_int(self.n_samples, "n_samples")
        if self.tol is not None:
            tol = check_nonnegative(self.tol, "tol")
            self._set("tol", tol if tol > 0 else None)  # 0 = never stop early, the same as None
        if self.target is not None:
            check_positive_int(self.target, "target", minimum=0)
        for name, (method, _, _) in OVERRIDES.items():
            value = getattr(self, name)
            if value is not None:
                check_positive_int(value, name)
                method_spec(method)  # the override's method is registered
        if not isinstance(self.extras, bool):
            raise TypeError(f"`extras` must be a bool, got {self.extras!r}")
        levels = tuple(check_nonnegative(v, "noise_levels") for v in self.noise_levels)
        if 0.0 not in levels:
            raise ValueError(f"`noise_levels` must include 0 (the vanilla gradient column), got {list(levels)}")
        self._set("noise_levels", tuple(sorted(set(levels))))
        sizes = tuple(check_positive_int(n, "sample_sizes") for n in self.sample_sizes)
        self._set("sample_sizes", tuple(sorted(set(sizes))))
        from smoothsal.execution.precision import parse_precision

        dtype = parse_precision(self.precision)
        self._set("precision", "float32" if dtype is None else str(dtype).removeprefix("torch."))

    def _check_weights(self) -> None:
        from smoothsal.models.hubs import parse_hub_spec

        if not isinstance(self.random_weights, bool):
            raise TypeError(f"`random_weights` must be a bool, got {self.random_weights!r}")
        if self.weights is None and not self.random_weights:
            return
        hub = parse_hub_spec(self.model)
        if hub is None:
            raise ValueError(
                f"`weights`/`random_weights` apply to hub models (torchvision:, timm:, hf:) only; got model {self.model!r}"
            )
        if self.weights is not None and self.random_weights:
            raise ValueError("`weights` and `random_weights` exclude each other: pass one")
        if self.weights is not None:
            self._set("weights", str(self.weights))
            if not Path(self.weights).is_file() and not (hub[0] == "torchvision" and self.weights.isupper()):
                raise FileNotFoundError(f"`weights`: no file at {self.weights!r}")

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    # ---- derived settings ---------------------------------------------------------------------
    def replace(self, **changes: Any) -> ExplainConfig:
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)

    def overrides(self, method: str, smoothed: bool) -> dict[str, MethodSetting]:
        """The constructor settings the user set for ``method`` (raw or smoothed); ``{}`` = registry's."""
        return {
            setting: getattr(self, name)
            for name, (target, smooth_flag, setting) in OVERRIDES.items()
            if target == method and smooth_flag == smoothed and getattr(self, name) is not None
        }

    def method_settings(self, method: str, smoothed: bool, image_size: int | None = None) -> dict[str, MethodSetting]:
        """The full constructor settings of ``method``: the registry's, then the user's overrides."""
        spec = method_spec(method)
        return {**spec.settings(smoothed=smoothed, image_size=image_size), **self.overrides(method, smoothed)}

    @staticmethod
    def registry_default(name: str) -> MethodSetting:
        """The registry's value of override field ``name`` (:data:`OVERRIDES`), e.g. 32 for ``ig_steps``."""
        method, smoothed, setting = OVERRIDES[name]
        return method_spec(method).settings(smoothed=smoothed).get(setting)

    def smooth_spec(self, seed: int) -> SmoothSpec:
        """The smoothing of the smoothed maps (:class:`~smoothsal.smoothing_spec.SmoothSpec`), noise seeded by ``seed``."""
        return SmoothSpec(noise_level=self.noise_level, n_samples=self.n_samples, tol=self.tol, seed=seed,
                          weight_noise=self.weight_noise)  # fmt: skip

    def figure_sample_sizes(self) -> list[int]:
        """The sizes of ``sample_sizes.png``: those of :attr:`sample_sizes` below ``n_samples``, and ``n_samples``."""
        return sorted({n for n in self.sample_sizes if n < self.n_samples} | {self.n_samples})

    def to_hash(self, seed: int) -> JSONObject:
        """The settings every stored result depends on (the results store's configuration), with the
        run's noise ``seed`` (:attr:`RunOptions.seed <smoothsal.studies.options.RunOptions.seed>`).

        Image files and a TorchScript model file enter with a digest of their bytes, so an edited
        file is never explained from stale maps. Left out: what selects units rather than changes
        them (``methods``, ``extras``, the figure axes and the method settings — each unit carries
        its own) and what changes no number (the run options but the seed).
        """
        images: list[JSON] = []
        for item in self.images:
            path = Path(item)
            images.append({"file": str(path), "sha1": _file_digest(path)} if path.is_file() else {"bundled": item})
        model: JSONObject = {"spec": self.model}
        if Path(self.model).is_file():
            model["sha1"] = _file_digest(Path(self.model))
        if self.weights is not None:
            path = Path(self.weights)
            model["weights"] = {"file": str(path), "sha1": _file_digest(path)} if path.is_file() else self.weights
        if self.random_weights:
            model["random_weights"] = True
        return {
            "model": model,
            "images": images,
            "target": self.target,
            "noise_level": self.noise_level,
            **({"weight_noise": self.weight_noise} if self.weight_noise else {}),
            "n_samples": self.n_samples,
            "tol": self.tol,
            "seed": seed,
            **({} if self.precision == "float32" else {"precision": self.precision}),
        }

    def settings(self) -> JSONObject:
        """Every setting, JSON-ready (for ``summary.json``)."""
        return {f.name: list(v) if isinstance(v, tuple) else v for f in fields(self) for v in [getattr(self, f.name)]}
