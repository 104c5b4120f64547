"""Your own models in the stability–fidelity study: ``smoothsal tradeoff --models A.pt,B.pt --images DIR``.

Ye & Farnia 2025 (arXiv:2411.05837) compare models trained on different data, recipes or
architectures; a user who has two or more classifiers of the same task wants the same curves,
Table 1 and σ recommendation for *them*, in one command. :class:`OwnModels` names the models
(any ``--model`` spec: a TorchScript file, ``package.module:factory``, ``lite0|lite1|lite2``, or a
hub spec ``torchvision:NAME`` / ``timm:NAME`` / ``hf:REPO_OR_FOLDER`` with its own ``--weights``
file) and the image folder; the study then runs as for its other model sets (setting ``"models"``),
through :func:`~smoothsal.studies.tradeoff.compute.curve_rows`: every model explains the same
images for the same class, with the same noise draws.

Choices, fixed before any data:

* **the class explained** is the first model's top-1 class of each image, for every model: the
  stability error compares the maps of one question asked of several models (as the photos
  setting does with Lite0's). Models whose outputs have fewer classes than that index are refused.
* **the images** are the folder's (a plain folder or an ImageFolder layout,
  :func:`~smoothsal.studies.explain_dataset.config.scan_images`, in path order), the first
  ``n_inputs`` of them; files that cannot be read as images are left out with a warning naming
  them (:func:`~smoothsal.studies.explain_dataset.validate.find_unreadable`), as in
  ``explain-dataset``. They are loaded at the first model's input size (``image_size`` overrides),
  in [0, 1], the convention of every ``--model`` spec.
* **the results key** holds each model's spec and the SHA-1 of its loaded weights and the
  folder's digest (names and sizes), so changed weights or images never reuse old rows.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from smoothsal._core.jsontypes import JSONObject
from smoothsal._core.validation import check_positive_int

if TYPE_CHECKING:
    from torch import Tensor, nn

    from smoothsal.models.zoo import LoadedModel
    from smoothsal.studies.options import RunOptions

__all__ = ["OwnModel", "OwnModels", "parse_model_list"]


def parse_model_list(text: str, weights: str | None = None) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    """``--models A.pt,B.pt`` and ``--weights W1,W2`` as specs and one weights file (or ``None``) per spec.

    ``weights`` is empty, or one entry per model (an empty entry: no file for that model); a
    single file for several models is refused (which model would it belong to?).

    Example:
        >>> parse_model_list("timm:resnet18,timm:resnet18", "a.safetensors,b.safetensors")
        (('timm:resnet18', 'timm:resnet18'), ('a.safetensors', 'b.safetensors'))
    """
    specs = tuple(s.strip() for s in text.split(","))
    if len(specs) < 2 or not all(specs):
        raise ValueError(f"`--models` must name >= 2 comma-separated model specs (or be a number of models), got {text!r}")
    if weights is None or not weights.strip():
        return specs, (None,) * len(specs)
    files = tuple(w.strip() or None for w in weights.split(","))
    if len(files) != len(specs):
        raise ValueError(f"`--weights` must give one entry per model ({len(specs)}; leave an entry empty for none), got {weights!r}")
    return specs, files


@dataclass
class OwnModel:
    """One of the user's models, as the study's compute step takes it (name, module, accuracy, origin)."""

    name: str
    model: nn.Module
    test_accuracy: float = float("nan")
    source: str = ""


@dataclass(frozen=True)
class OwnModels:
    """The models and images of ``smoothsal tradeoff --models ... --images DIR``.

    Attributes:
        specs: >= 2 model specs (:func:`smoothsal.models.zoo.load_model`); a spec may repeat
            with different ``weights``.
        images: the image folder (plain, or ImageFolder class subfolders).
        weights: one state-dict file or ``None`` per spec (hub specs only); ``()``: none.
        random_weights: hub specs with their untrained weights (seeded), e.g. to try the command.
        image_size: side of the square input; ``None``: the first model's input size.
    """

    specs: tuple[str, ...]
    images: Path
    weights: tuple[str | None, ...] = ()
    random_weights: bool = False
    image_size: int | None = None

    def __post_init__(self) -> None:
        specs = tuple(str(s).strip() for s in ([self.specs] if isinstance(self.specs, str) else self.specs))
        if len(specs) < 2 or not all(specs):
            raise ValueError(f"`models` must name >= 2 model specs, got {list(specs)}")
        weights = tuple(self.weights) or (None,) * len(specs)
        if len(weights) != len(specs):
            raise ValueError(f"`weights` must hold one entry (a file or None) per model ({len(specs)}), got {list(weights)}")
        for w in weights:
            if w is not None and not Path(w).is_file():
                raise FileNotFoundError(f"`weights`: no file {w}")
        if len(set(zip(specs, weights))) != len(specs):
            raise ValueError(f"`models`: a model is named twice with the same weights: {list(zip(specs, weights))}")
        images = Path(self.images)
        if not images.is_dir():
            raise FileNotFoundError(f"`images`: {images} is not a folder")
        if self.image_size is not None:
            check_positive_int(self.image_size, "image_size", minimum=4)
        object.__setattr__(self, "specs", specs)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "images", images)

    @functools.cached_property
    def loaded(self) -> list[LoadedModel]:
        """The models, loaded once (a bad spec or weights file raises ``ValueError`` naming it)."""
        from smoothsal.models.zoo import load_model

        out = []
        for spec, w in zip(self.specs, self.weights):
            out.append(load_model(spec, self.image_size, weights=w, random_weights=self.random_weights))
        return out

    @property
    def input_size(self) -> int:
        """The side of the square images fed to every model."""
        return int(self.image_size or self.loaded[0].image_size)

    def names(self) -> list[str]:
        """A short name per model: the spec (a file's name only), ``+<weights file name>`` where given."""
        return [
            (Path(spec).name if Path(spec).is_file() else spec) + (f"+{Path(w).name}" if w else "")
            for spec, w in zip(self.specs, self.weights)
        ]

    def models(self, device: object = "cpu") -> list[OwnModel]:
        """The models as the compute step takes them, moved to ``device``."""
        sources = [f"{s}" + (f" with weights {Path(w).name}" if w else "") for s, w in zip(self.specs, self.weights)]
        return [
            OwnModel(name, loaded.model.to(device).eval(), source=source)
            for name, loaded, source in zip(self.names(), self.loaded, sources)
        ]

    @functools.cached_property
    def readable_ids(self) -> list[str]:
        """The folder's readable images, in path order; the files left out are warned about once."""
        from smoothsal.studies.explain_dataset.config import scan_images
        from smoothsal.studies.explain_dataset.validate import find_unreadable

        index = scan_images(self.images)
        bad = dict(find_unreadable(index.root, index.ids))
        skipped = sorted([*bad, *index.other])
        if skipped:
            warnings.warn(f"`images`: left out {len(skipped)} file(s) that are not readable images: {skipped}", UserWarning, stacklevel=2)
        ids = [i for i in index.ids if i not in bad]
        if not ids:
            raise ValueError(f"`images`: {self.images} holds no readable image")
        return ids

    def image_ids(self, n_inputs: int) -> list[str]:
        """The first ``n_inputs`` readable images of the folder, in path order."""
        return self.readable_ids[:n_inputs]

    def inputs(self, n_inputs: int, options: RunOptions) -> tuple[Tensor, Tensor]:
        """The images ``[N, 3, S, S]`` in [0, 1] and the class each model explains (the first model's top-1)."""
        import torch

        from smoothsal.datasets.photos import load_image

        ids = self.image_ids(n_inputs)
        x = torch.cat([load_image(self.images / i, self.input_size).tensor for i in ids])
        first = self.loaded[0].model
        targets = options.predict(first, x).argmax(dim=1)
        for spec, loaded in zip(self.specs[1:], self.loaded[1:]):
            classes = options.predict(loaded.model, x[:1]).shape[1]
            if int(targets.max()) >= classes:
                raise ValueError(
                    f"`models`: {spec} has {classes} classes but the first model ({self.specs[0]}) predicts class "
                    f"{int(targets.max())}; the models must share their classes"
                )
        return x, targets

    def to_hash(self, n_inputs: int) -> JSONObject:
        """What changes the rows: each spec with its weights' SHA-1, the images explained, the input size."""
        from smoothsal.studies.explain_dataset.config import scan_images
        from smoothsal.studies.explain_dataset.compute import weights_digest

        index = scan_images(self.images)
        return {
            "models": [{"spec": s, "weights_sha1": weights_digest(m.model)} for s, m in zip(self.specs, self.loaded)],
            "images": {"folder_digest": index.digest, "n_inputs": n_inputs},
            "image_size": self.input_size,
        }
