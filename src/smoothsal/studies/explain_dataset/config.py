"""Settings of ``smoothsal explain-dataset``: one frozen dataclass, checked before any work.

:class:`ExplainDatasetConfig` holds every setting; the CLI and the API build it the same way.
``__post_init__`` checks every argument and scans the image folder
(:func:`scan_images`: a plain folder of images, or an ImageFolder layout of class subfolders),
so a typo fails before a model is loaded or a process group is started. Whether each image can
be read is checked by the job itself (:mod:`.validate`, shared between the ranks).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypedDict

from smoothsal._core.jsontypes import JSONObject
from smoothsal._core.validation import check_nonnegative, check_positive_int
from smoothsal.smoothing_spec import SmoothSpec

__all__ = [
    "DEFAULT_OUT", "IMAGE_EXTENSIONS", "QUICK", "TARGETS", "DatasetIndex", "ExplainDatasetConfig", "QuickPreset",
    "scan_images",
]  # fmt: skip

#: File endings read as images (case-insensitive), as torchvision's ImageFolder.
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
#: ``predicted``: explain each image's top-1 class; ``label``: its ImageFolder class index.
TARGETS: tuple[str, ...] = ("predicted", "label")
#: Where ``smoothsal explain-dataset`` writes its map store when no ``--out`` is given.
DEFAULT_OUT = Path("out/dataset")


class QuickPreset(TypedDict):
    """What ``--quick`` changes (:data:`QUICK`)."""

    max_images: int
    n_samples: int


#: ``--quick``: the first 16 images (in id order) and 8 samples (unless ``--samples`` is given).
QUICK: QuickPreset = {"max_images": 16, "n_samples": 8}


@dataclass(frozen=True)
class DatasetIndex:
    """The images of a folder, in a fixed order.

    Attributes:
        ids: each image's path relative to the folder, ``/``-separated, sorted: the image id.
        labels: the class index of each image (ImageFolder), or ``None`` each (plain folder).
        classes: the class folder names, sorted (index = label); empty for a plain folder.
        layout: ``"imagefolder"`` or ``"plain"``.
        digest: SHA-1 of the ids, labels and file sizes (part of the store's configuration).
        root: the folder. other: the files of the folder that are not images by their ending
            (``notes.txt``), relative ids as ``ids``; hidden files (``.DS_Store``) are not listed.
    """

    ids: tuple[str, ...]
    labels: tuple[int | None, ...]
    classes: tuple[str, ...]
    layout: str
    digest: str
    root: Path = Path(".")
    other: tuple[str, ...] = ()

    def without(self, drop: Iterable[str]) -> DatasetIndex:
        """The index less the images ``drop`` (ids), its digest recomputed."""
        gone = set(drop)
        keep = [(i, label) for i, label in zip(self.ids, self.labels) if i not in gone]
        return replace(self, ids=tuple(i for i, _ in keep), labels=tuple(label for _, label in keep),
                       digest=_digest(self.root, keep))  # fmt: skip


def _digest(root: Path, items: Iterable[tuple[str, int | None]]) -> str:
    h = hashlib.sha1()
    for image_id, label in items:
        h.update(f"{image_id}\t{label}\t{(root / image_id).stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _is_other(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() not in IMAGE_EXTENSIONS and not path.name.startswith(".")


def scan_images(folder: str | Path, max_images: int | None = None) -> DatasetIndex:
    """The images of ``folder``: a plain folder of image files, or an ImageFolder layout.

    ImageFolder (as torchvision's): one subfolder per class, images anywhere below it; the
    label is the index of the class folder in sorted order. A folder with image files at its top
    level is a plain folder (its subfolders, if any, are not read); ``max_images`` keeps the first
    images in id order. Files of other endings are listed in ``other``, not read.

    Raises:
        FileNotFoundError: ``folder`` does not exist. ValueError: not a folder, or no images.
    """
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"`data_dir`: no folder at {str(root)!r}")
    if not root.is_dir():
        raise ValueError(f"`data_dir`: {str(root)!r} is not a folder")
    top = sorted(p for p in root.iterdir() if _is_image(p))
    other = [p.name for p in sorted(root.iterdir()) if _is_other(p)]
    items: list[tuple[str, int | None, Path]] = []
    classes: list[str] = []
    if top:
        layout = "plain"
        items = [(p.name, None, p) for p in top]
    else:
        layout = "imagefolder"
        classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        for label, name in enumerate(classes):
            for p in sorted((root / name).rglob("*")):
                if _is_image(p):
                    items.append((p.relative_to(root).as_posix(), label, p))
                elif _is_other(p) and not any(part.startswith(".") for part in p.relative_to(root).parts):
                    other.append(p.relative_to(root).as_posix())
    if not items:
        raise ValueError(
            f"`data_dir`: {str(root)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}) at its top level or in class subfolders"
        )
    items.sort(key=lambda t: t[0])
    if max_images is not None:
        items = items[:max_images]
    return DatasetIndex(
        ids=tuple(t[0] for t in items),
        labels=tuple(t[1] for t in items),
        classes=tuple(classes),
        layout=layout,
        digest=_digest(root, [(t[0], t[1]) for t in items]),
        root=root,
        other=tuple(sorted(other)),
    )


def _floats(value: Any, name: str) -> tuple[float, ...]:
    items = value.split(",") if isinstance(value, str) else ([value] if isinstance(value, (int, float)) else list(value))
    try:
        out = [float(v) for v in items if str(v).strip()]
    except (TypeError, ValueError) as err:
        raise ValueError(f"`{name}` must be numbers, got {value!r}") from err
    if not out:
        raise ValueError(f"`{name}` must hold at least one value, got {value!r}")
    return tuple(sorted({check_nonnegative(v, name) for v in out}))


@dataclass(frozen=True)
class ExplainDatasetConfig:
    """Every setting of one ``smoothsal explain-dataset`` job.

    Attributes:
        data_dir: a folder of images, or an ImageFolder layout (class subfolders).
        model: ``lite0|lite1|lite2``, ``package.module:factory`` or a TorchScript file
            (:func:`smoothsal.models.zoo.load_model`). A store holds the maps of any number of models.
        methods: registered method names (aliases allowed).
        noise_levels: σ / (x_max − x_min) of the smoothed maps; 0 = the raw method.
        n_samples: noisy samples per smoothed map (the most, with ``tol``).
        tol: stop sampling once a map's ‖SE‖₂/‖map‖₂ ≤ ``tol`` (``None``: always ``n_samples``).
        target: ``"predicted"`` (each image's top-1 class) or ``"label"`` (its ImageFolder class).
        image_size: side of the square model input (``None``: the model's ``image_size``, else 224).
        chunk_size: images per chunk: the unit of work, of sharding over ranks and of storage.
        max_images: keep only the first images in id order (``None``: all).
        strict: a file of the folder that cannot be read as an image (damaged, truncated, not an
            image) is an error raised before any compute; default: it is left out with a
            warning and listed in the run summary and the store (:mod:`.validate`).

    How it runs is the :class:`~smoothsal.studies.options.RunOptions` given beside it: the map
    store (``out``: a folder, or an fsspec URL, ``s3://bucket/maps`` with s3fs installed,
    ``memory://`` in tests), the device (under torchrun with CUDA each rank takes its local GPU),
    the rows per model call (``batch_size``; ``None``: a fixed rule of the image size, so that maps
    never depend on timings; see :mod:`.compute`), the memory budget, the global seed (each
    image's noise seed is derived from it and the image's id,
    :func:`~smoothsal.studies.explain_dataset.store.image_seed`), the progress bar (rank 0) and
    ``fresh`` (clear the store first).
    """

    data_dir: Path
    model: str = "lite0"
    methods: tuple[str, ...] = ("grad",)
    noise_levels: tuple[float, ...] = (0.0, 0.15)
    n_samples: int = 50
    tol: float | None = None
    target: str = "predicted"
    image_size: int | None = None
    chunk_size: int = 16
    max_images: int | None = None
    strict: bool = False
    dataset: DatasetIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from smoothsal.registry import parse_methods
        from smoothsal.models.zoo import IMAGE_SIZES

        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("data_dir", Path(self.data_dir))
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"`model` must be a non-empty model spec string, got {self.model!r}")
        if self.model not in IMAGE_SIZES and ":" not in self.model and not Path(self.model).is_file():
            raise ValueError(
                f"`model` must be one of {sorted(IMAGE_SIZES)}, 'package.module:factory' or a TorchScript file; "
                f"got {self.model!r}"
            )
        set_("methods", tuple(parse_methods(self.methods)))
        set_("noise_levels", _floats(self.noise_levels, "noise_levels"))
        check_positive_int(self.n_samples, "n_samples")
        if self.tol is not None:
            tol = check_nonnegative(self.tol, "tol")
            set_("tol", tol if tol > 0 else None)
        if self.target not in TARGETS:
            raise ValueError(f"`target` must be one of {list(TARGETS)}, got {self.target!r}")
        if self.image_size is not None:
            check_positive_int(self.image_size, "image_size", minimum=4)
        check_positive_int(self.chunk_size, "chunk_size")
        if self.max_images is not None:
            check_positive_int(self.max_images, "max_images")
        if not isinstance(self.strict, bool):
            raise TypeError(f"`strict` must be a bool, got {self.strict!r}")
        index = scan_images(self.data_dir, self.max_images)
        if self.target == "label" and index.layout != "imagefolder":
            raise ValueError(f"`target` 'label' needs an ImageFolder layout (class subfolders); {self.data_dir} is a plain folder")
        set_("dataset", index)

    @classmethod
    def quick(cls, **settings: Any) -> ExplainDatasetConfig:
        """The ``--quick`` preset (:data:`QUICK`) under the settings given (``None`` = the preset's)."""
        values = {**QUICK, **{k: v for k, v in settings.items() if v is not None}}
        return cls(**values)

    def replace(self, **changes: Any) -> ExplainDatasetConfig:
        """A copy with ``changes`` (checked again)."""
        return replace(self, **changes)

    def check_out(self, out: Path | str) -> Path | str:
        """``out`` (the map store: a folder, or an fsspec URL), unless it is the image folder itself (ValueError)."""
        from smoothsal.studies.explain_dataset.store import as_location

        out = as_location(out)
        if isinstance(out, Path) and out.resolve() == self.data_dir.resolve():
            raise ValueError("`out` must not be the image folder itself")
        return out

    def smooth_spec(self, sigma: float, seed: int) -> SmoothSpec:
        """The smoothing of one image at ``sigma`` (:class:`~smoothsal.smoothing_spec.SmoothSpec`), seeded by its image seed."""
        return SmoothSpec(noise_level=float(sigma), n_samples=self.n_samples, tol=self.tol, seed=int(seed))

    def store_config(
        self, image_size: int, seed: int, dataset: DatasetIndex | None = None, skipped: Iterable[str] = ()
    ) -> JSONObject:
        """The settings every map of the store depends on, models aside (the store's configuration),
        with the run's global ``seed``.

        ``dataset``: the images explained (default: the folder's; the job passes it less the
        unreadable files, whose ids ``skipped`` are part of the configuration too). Left out: the
        model (a store holds several), ``strict`` and the other run options (output folder,
        device, batch size, progress bar, ``fresh``). A run whose store configuration differs
        from the store's is refused.
        """
        ds = self.dataset if dataset is None else dataset
        return {
            "dataset": {"layout": ds.layout, "n_images": len(ds.ids), "digest": ds.digest, "classes": list(ds.classes),
                        "skipped": sorted(skipped)},
            "methods": list(self.methods),
            "noise_levels": list(self.noise_levels),
            "n_samples": self.n_samples,
            "tol": self.tol,
            "statistic": "mean",
            "seed": seed,
            "target": self.target,
            "image_size": int(image_size),
            "chunk_size": self.chunk_size,
        }  # fmt: skip

    def as_dict(self) -> JSONObject:
        """Every setting, JSON-ready."""
        from smoothsal.studies.store import to_jsonable

        return to_jsonable({f.name: getattr(self, f.name) for f in fields(self) if f.name != "dataset"})
