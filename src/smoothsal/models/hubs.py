"""Models from the hubs users have: ``torchvision:NAME``, ``timm:NAME`` and ``hf:REPO_OR_FOLDER``.

Every model comes back as a :class:`smoothsal.models.wrappers.ZooModel`: its own normalization (mean/std
from the model's metadata) is the first module, so it takes images in **[0, 1]** like the bundled
EfficientNet-Lite models, at ``image_size`` (the model's input crop). Where the preprocessing
comes from:

============  =========================================================================
hub           preprocessing metadata
============  =========================================================================
torchvision   the weights enum's ``transforms()`` (``resize_size``, ``crop_size``, mean/std) and
              ``meta["categories"]`` for the class names (``DEFAULT`` weights of the architecture)
timm          ``timm.data.resolve_data_config`` from the model's ``pretrained_cfg``
              (``input_size``, ``crop_pct``, mean/std, interpolation); class names from
              ``timm.data.ImageNetInfo`` when the head is an ImageNet one
hf            ``AutoImageProcessor`` (``preprocessor_config.json``: ``size``, ``crop_size``,
              ``image_mean``/``image_std``); class names from ``config.id2label``
============  =========================================================================

The resize/crop is recorded in :attr:`ZooModel.preprocessing` (``resize_size``, ``crop_pct``,
``interpolation``); smoothsal's image loaders resize the shorter side to ``image_size`` and crop
the centre square (no crop margin, see :mod:`smoothsal.datasets.photos`).

**Weights, never downloaded.** Pretrained weights come from the hub's local cache
(``~/.cache/torch/hub/checkpoints`` for torchvision, the Hugging Face cache for timm and
transformers) or from a file (``weights="model.pth"`` / ``.safetensors``, a state dict). Loading
runs with ``HF_HUB_OFFLINE=1`` and with torch's URL downloader disabled; when nothing is cached the
error says how to fill the cache on a machine with network. ``random_weights=True`` builds the
architecture untrained (the offline tests use it; for ``hf:`` it still needs ``config.json``).

torchvision note: torchvision's PyPI wheels are CUDA builds whose C++ operators do not load next
to a CPU-only torch, and its import then fails on ``torchvision::nms``. Classification models do
not need those operators, so :func:`import_torchvision` declares the two missing operator schemas
(no kernels: detection ops such as ``nms`` still fail if called) and imports it. timm and
transformers import torchvision too, so every loader here goes through it.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from smoothsal._core.extras import require
from smoothsal.models.wrappers import Normalize, ZooModel

__all__ = ["HUBS", "import_torchvision", "load_hub_model", "offline", "parse_hub_spec"]

#: spec prefix -> what it loads.
HUBS = {
    "torchvision": "torchvision.models architectures (torchvision:resnet50)",
    "timm": "timm architectures (timm:vit_small_patch16_224)",
    "hf": "Hugging Face image classifiers, by repo id or local folder (hf:google/vit-base-patch16-224)",
}

#: ``random_weights=True`` initialises the architecture under this torch seed (the global RNG is
#: left as it was), so an untrained model is the same in every run.
RANDOM_WEIGHTS_SEED = 0

_TV_LIB: list[Any] = []  # keeps the torchvision operator-schema library alive


def parse_hub_spec(spec: str) -> tuple[str, str] | None:
    """``"timm:vit_small_patch16_224"`` -> ``("timm", "vit_small_patch16_224")``; ``None`` if not a hub spec."""
    if not isinstance(spec, str):
        return None
    hub, sep, name = spec.partition(":")
    if not sep or hub not in HUBS:
        return None
    if not name.strip():
        raise ValueError(f"`model` spec {spec!r} names no model after '{hub}:'")
    return hub, name.strip()


def import_torchvision() -> ModuleType:
    """Import torchvision, also when its C++ operators cannot load (CUDA wheel beside CPU torch).

    See the module docstring. Raises :class:`smoothsal._core.extras.MissingExtraError` when torchvision
    is not installed.
    """
    if "torchvision" in sys.modules and hasattr(sys.modules["torchvision"], "models"):
        return sys.modules["torchvision"]
    try:
        return require("torchvision", "torchvision: model specs")
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]  # the half-imported package
    if not _TV_LIB:
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for op in ("nms", "qnms"):
            if not _op_exists(op):
                lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _TV_LIB.append(lib)
    return require("torchvision", "torchvision: model specs")


def _op_exists(op: str) -> bool:
    try:
        getattr(torch.ops.torchvision, op)
        return True
    except (AttributeError, RuntimeError):
        return False


class _NoDownload(RuntimeError):
    pass


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Within the block the hubs cannot download: ``HF_HUB_OFFLINE=1`` and torch's URL fetcher raises."""
    import torch.hub

    saved_env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    constants = sys.modules.get("huggingface_hub.constants")
    saved_const = getattr(constants, "HF_HUB_OFFLINE", None)
    if constants is not None:
        constants.HF_HUB_OFFLINE = True

    def refuse(url: str, *args: Any, **kwargs: Any) -> None:
        raise _NoDownload(f"refusing to download {url}")

    saved_dl = torch.hub.download_url_to_file
    torch.hub.download_url_to_file = refuse
    try:
        yield
    finally:
        torch.hub.download_url_to_file = saved_dl
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if constants is not None:
            constants.HF_HUB_OFFLINE = saved_const


def _no_weights_error(what: str, fetch: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"no pretrained weights for {what} in the local cache, and smoothsal never downloads. "
        f"On a machine with network, fill the cache with: {fetch}; or pass `weights` (--weights FILE, "
        "a state dict .pth/.safetensors), or `random_weights=True` (--random-weights) for an untrained model"
    )


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """A state dict from ``.safetensors`` or a torch file (``weights_only``); unwraps ``{"state_dict": ...}``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"`weights`: no file at {str(p)!r}")
    if p.suffix == ".safetensors":
        state = require("safetensors.torch", "loading .safetensors weights").load_file(str(p), device="cpu")
    else:
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as err:  # pickle errors of all kinds
            raise ValueError(f"`weights`: {str(p)!r} is not a torch state-dict file ({type(err).__name__}: {err})") from err
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"`weights`: {str(p)!r} does not hold a state dict (name -> tensor)")
    return state


def _load_into(net: nn.Module, state: dict[str, Tensor], source: str) -> None:
    result = net.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"`weights`: {source} does not fit the architecture: missing keys {result.missing_keys[:5]}, "
            f"unexpected keys {result.unexpected_keys[:5]}"
        )


def _head_classes(state: dict[str, Tensor], head: str | None) -> int | None:
    """Number of classes of a state dict's classifier ``head`` (its ``.weight`` rows)."""
    if head is None:
        return None
    w = state.get(f"{head}.weight")
    return int(w.shape[0]) if w is not None and w.dim() >= 1 else None


def _last_linear(net: nn.Module) -> str | None:
    names = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else None


# ---- torchvision ------------------------------------------------------------------------------
def _torchvision(name: str, weights: str | Path | None, random_weights: bool) -> tuple[nn.Module, dict, list | None]:
    tv = import_torchvision()
    models = tv.models
    if name not in models.list_models(module=models):
        raise ValueError(
            f"`model`: torchvision has no classification model {name!r}; e.g. "
            f"{', '.join(sorted(models.list_models(module=models))[:8])}, ..."
        )
    builder = models.get_model_builder(name)
    enum = models.get_model_weights(name)
    chosen = enum.DEFAULT
    if isinstance(weights, str) and not Path(weights).exists() and weights in enum.__members__:
        chosen, weights = enum[weights], None  # a weights name such as "IMAGENET1K_V2", from the cache
    names = list(chosen.meta.get("categories") or []) or None
    if random_weights:
        net = builder(weights=None)
    elif weights is not None:
        state = load_state_dict_file(weights)
        n = _head_classes(state, _last_linear(builder(weights=None)))
        kwargs = {} if n is None or n == len(names or ()) else {"num_classes": n}
        if kwargs:
            names = None
        net = builder(weights=None, **kwargs)
        _load_into(net, state, repr(str(weights)))
    else:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(chosen.url)
        if not cached.is_file():
            raise _no_weights_error(
                f"torchvision:{name} ({chosen}; looked for {cached})",
                f'python -c "import torchvision; torchvision.models.get_model({name!r}, weights={str(chosen).split(".")[-1]!r})"',
            )
        with offline():
            net = builder(weights=chosen)
    t = chosen.transforms()
    crop = int(t.crop_size[0])
    resize = int(t.resize_size[0]) if getattr(t, "resize_size", None) else crop
    pre = {
        "source": f"torchvision weights {chosen}",
        "mean": [float(v) for v in t.mean],
        "std": [float(v) for v in t.std],
        "image_size": crop,
        "resize_size": resize,
        "crop_pct": round(crop / resize, 4),
        "interpolation": str(getattr(t.interpolation, "value", t.interpolation)),
    }
    return net, pre, names


# ---- timm -------------------------------------------------------------------------------------
def _timm_class_names(net: nn.Module, n_classes: int) -> list[str] | None:
    try:
        from timm.data import ImageNetInfo, infer_imagenet_subset

        subset = infer_imagenet_subset(net)
        if not subset:
            return None
        names = list(ImageNetInfo(subset).label_descriptions())
    except Exception:  # timm versions differ; names are a convenience
        return None
    return names if len(names) == n_classes else None


def _timm(name: str, weights: str | Path | None, random_weights: bool, **kwargs: Any) -> tuple[nn.Module, dict, list | None]:
    import_torchvision_quietly()
    timm = require("timm", "timm: model specs")
    if not timm.is_model(name):
        raise ValueError(f"`model`: timm has no model {name!r} (see timm.list_models())")
    if random_weights:
        net = timm.create_model(name, pretrained=False, **kwargs)
    elif weights is not None:
        state = load_state_dict_file(weights)
        probe = timm.create_model(name, pretrained=False, **kwargs)
        n = _head_classes(state, probe.pretrained_cfg.get("classifier"))
        if n is not None and n != probe.num_classes:
            kwargs = {**kwargs, "num_classes": n}
        net = timm.create_model(name, pretrained=False, **kwargs)
        _load_into(net, state, repr(str(weights)))
    else:
        try:
            with offline(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                net = timm.create_model(name, pretrained=True, **kwargs)
        except Exception as err:  # huggingface_hub / torch.hub errors when nothing is cached
            if isinstance(err, (ValueError, TypeError)) and "cache" not in str(err).lower() and "offline" not in str(err).lower():
                raise
            raise _no_weights_error(
                f"timm:{name}", f'python -c "import timm; timm.create_model({name!r}, pretrained=True)"'
            ) from err
    args = {}
    if "img_size" in kwargs:  # the pretrained_cfg still states the pretrained resolution
        side = kwargs["img_size"]
        args["input_size"] = (3, *(side if isinstance(side, (tuple, list)) else (side, side)))
    cfg = timm.data.resolve_data_config(args, model=net)
    size = int(cfg["input_size"][-1])
    crop_pct = float(cfg.get("crop_pct") or 1.0)
    pre = {
        "source": f"timm pretrained_cfg of {name}" + (f" ({net.pretrained_cfg.get('tag')})" if net.pretrained_cfg.get("tag") else ""),
        "mean": [float(v) for v in cfg["mean"]],
        "std": [float(v) for v in cfg["std"]],
        "image_size": size,
        "resize_size": int(math.floor(size / crop_pct)),  # timm transforms_factory: floor(size / crop_pct)
        "crop_pct": crop_pct,
        "interpolation": str(cfg.get("interpolation", "bilinear")),
    }
    return net, pre, _timm_class_names(net, int(getattr(net, "num_classes", 0)))


def import_torchvision_quietly() -> None:
    """Make torchvision importable for timm/transformers if it is installed; ignore it if not."""
    from smoothsal._core.extras import MissingExtraError

    with contextlib.suppress(MissingExtraError):
        import_torchvision()


# ---- Hugging Face -----------------------------------------------------------------------------
class HFLogits(nn.Module):
    """A ``transformers`` image classifier as ``pixel_values -> logits`` (drops the output dataclass)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(pixel_values=x).logits


def _hf_size(processor: Any, config: Any) -> tuple[int, int]:
    """``(image_size, resize_size)`` from an image processor (crop if it crops) or the model config."""

    def side(size: Any) -> int | None:
        if size is None:
            return None
        get = size.get if isinstance(size, dict) else (lambda k: getattr(size, k, None))
        for key in ("height", "shortest_edge"):
            if get(key):
                return int(get(key))
        return int(size) if isinstance(size, int) else None

    resize = side(getattr(processor, "size", None)) if processor is not None else None
    crop = side(getattr(processor, "crop_size", None)) if processor is not None and getattr(processor, "do_center_crop", False) else None
    cfg_size = getattr(config, "image_size", None)
    cfg_size = int(cfg_size[0] if isinstance(cfg_size, (list, tuple)) else cfg_size) if cfg_size else None
    image = crop or resize or cfg_size or 224
    crop_pct = getattr(processor, "crop_pct", None) if processor is not None else None
    if crop is None and crop_pct and resize:  # ConvNeXt: resize to shortest_edge / crop_pct, crop shortest_edge
        return resize, int(round(resize / crop_pct))
    return image, resize or image


@contextlib.contextmanager
def _quiet_transformers(transformers: ModuleType) -> Iterator[None]:
    """No "Loading weights" progress bars from transformers within the block."""
    logging = getattr(getattr(transformers, "utils", None), "logging", None)
    enabled = getattr(logging, "is_progress_bar_enabled", lambda: False)()
    if enabled:
        logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()


def _hf(name: str, weights: str | Path | None, random_weights: bool) -> tuple[nn.Module, dict, list | None]:
    import_torchvision_quietly()
    transformers = require("transformers", "hf: model specs")
    local = Path(name).expanduser()
    where = str(local) if local.is_dir() else name
    fetch = (
        f"model.save_pretrained({str(local)!r}) and processor.save_pretrained({str(local)!r}) for the model and its "
        "image processor"
        if local.is_dir()
        else f'python -c "from transformers import AutoModelForImageClassification as M, AutoImageProcessor as P; '
        f'M.from_pretrained({name!r}); P.from_pretrained({name!r})"'
    )
    with offline(), _quiet_transformers(transformers):
        try:
            config = transformers.AutoConfig.from_pretrained(where, local_files_only=True)
        except (OSError, ValueError) as err:
            if local.exists():
                raise ValueError(f"`model`: {name!r} holds no Hugging Face config.json ({err})") from err
            raise _no_weights_error(f"hf:{name} (not even its config.json is cached)", fetch) from err
        auto = transformers.AutoModelForImageClassification
        if random_weights or weights is not None:
            net = auto.from_config(config)
            if weights is not None:
                _load_into(net, load_state_dict_file(weights), repr(str(weights)))
        else:
            try:
                net = auto.from_pretrained(where, local_files_only=True)
            except OSError as err:
                raise _no_weights_error(f"hf:{name}", fetch) from err
        try:
            processor = transformers.AutoImageProcessor.from_pretrained(where, local_files_only=True)
        except (OSError, ValueError):
            processor = None
    if processor is None:
        warnings.warn(
            f"hf:{name} has no preprocessor_config.json: using mean = std = 0.5 (ViTImageProcessor's default) "
            "and the config's image_size",
            UserWarning,
            stacklevel=3,
        )
    image, resize = _hf_size(processor, config)
    normalize = processor is None or getattr(processor, "do_normalize", True)
    mean = list(getattr(processor, "image_mean", None) or [0.5] * 3) if normalize else [0.0] * 3
    std = list(getattr(processor, "image_std", None) or [0.5] * 3) if normalize else [1.0] * 3
    pre = {
        "source": f"{type(processor).__name__} of {name}" if processor is not None else f"defaults (no preprocessor_config.json in {name})",
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "image_size": image,
        "resize_size": resize,
        "crop_pct": round(image / resize, 4),
        "interpolation": str(getattr(getattr(processor, "resample", None), "name", "bilinear")).lower(),
    }
    id2label = getattr(config, "id2label", None) or {}
    labels = [str(id2label.get(i, id2label.get(str(i), ""))) for i in range(int(config.num_labels))]
    default = all(label in ("", f"LABEL_{i}") for i, label in enumerate(labels))
    return HFLogits(net), pre, None if default else labels


# ---- entry point ------------------------------------------------------------------------------
def load_hub_model(
    spec: str, *, weights: str | Path | None = None, random_weights: bool = False, **kwargs: Any
) -> Any:
    """A hub model (``torchvision:NAME``, ``timm:NAME``, ``hf:REPO_OR_FOLDER``) as a [0, 1]-input ZooModel.

    Args:
        spec: the hub spec.
        weights: a state-dict file (``.pth``/``.pt``/``.safetensors``); for torchvision also a
            weights name (``"IMAGENET1K_V2"``) read from the cache. ``None``: the hub's cache.
        random_weights: build the architecture untrained (``weights`` must then be ``None``),
            initialised under :data:`RANDOM_WEIGHTS_SEED` so every run builds the same model.
        kwargs: architecture arguments for ``timm.create_model`` (e.g. ``img_size=64``).
    Returns:
        :class:`smoothsal.models.wrappers.ZooModel` in eval mode, parameters frozen, with ``image_size``,
        ``class_names`` (``None`` when the model has no metadata for them), ``preprocessing``
        (a dict, see the module docstring) and ``spec``.
    Raises:
        FileNotFoundError: no cached weights (the message says how to get them) or no ``weights`` file.
        ValueError: unknown architecture, weights that do not fit it, bad arguments.
    """
    parsed = parse_hub_spec(spec)
    if parsed is None:
        raise ValueError(f"`spec` must start with one of {[h + ':' for h in HUBS]}, got {spec!r}")
    if random_weights and weights is not None:
        raise ValueError("`weights` and `random_weights` exclude each other: pass one")
    hub, name = parsed
    if kwargs and hub != "timm":
        raise ValueError(f"architecture keyword arguments are supported for timm: specs only, got {sorted(kwargs)}")
    loader = {"torchvision": _torchvision, "timm": _timm, "hf": _hf}[hub]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_WEIGHTS_SEED)  # random weights are the same in every run (resumable results)
        net, pre, names = loader(name, weights, random_weights, **kwargs)
    model = ZooModel(net, Normalize(pre["mean"], pre["std"]), pre["image_size"], names)
    model.preprocessing = pre
    model.spec = spec
    model.random_weights = bool(random_weights)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()

