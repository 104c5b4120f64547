r"""Small offline classifiers for the stability experiments, trained reproducibly and cached.

The stability–fidelity paper (Ye & Farnia 2025, arXiv:2411.05837, Table 1) compares saliency maps of networks that differ in one
way: **DT** the training data (disjoint parts of the training set), **DR** the training recipe
(optimizer, learning rate, augmentation, seed) or **DA** the architecture. This module trains
such models on the bundled digits and on the synthetic shapes (``smoothsal.datasets``), on a
fixed held-out test split so that every model is explained on the same inputs.

Training options beyond plain Adam/SGD:

* **input-noise augmentation** (SmoothGrad paper, Smilkov et al. 2017, "adding noise during
  training", Figs. 8–9): each step trains on :math:`x + \epsilon`,
  :math:`\epsilon \sim \mathcal N(0, \sigma^2 I)`, :math:`\sigma = \text{input\_noise}\,(x_{max} - x_{min})`
  per sample, drawn fresh every step;
* **noisy SGD** (Ye & Farnia 2025, eq. 3): minimise the smoothed loss

  .. math:: \min_W \; \mathbb E_{V \sim \mathcal N(0, \sigma^2 I)}\; \ell(W + V)

  whose gradient :math:`\mathbb E_V \nabla \ell(W + V)` we estimate each step with
  ``weight_noise_samples`` draws of :math:`V`; the averaged gradient is applied to :math:`W`
  (the noisy weights are never stored in the model);
* random shifts of up to ±2 pixels, and label shuffling for the data-randomization sanity check.

Weights are cached under ``cache_dir`` (default ``smoothsal._core.paths.cache_dir("models")``) as
``<sha1 of the config JSON>.pt`` with a JSON sidecar (config, test accuracy, training time), so a
second call with the same :class:`TrainConfig` loads instead of training.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from tqdm.auto import tqdm

from smoothsal._core.paths import cache_dir as default_cache_dir
from smoothsal._core.validation import check_choice, check_nonnegative, check_positive_int
from smoothsal.datasets.base import ImageDataset
from smoothsal.execution.calls import predict
from smoothsal.noise import make_generator

DATASETS: tuple[str, ...] = ("digits", "synthetic")
ARCHS: tuple[str, ...] = ("cnn", "cnn_wide", "cnn_deep", "mlp")
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
SETTINGS: tuple[str, ...] = ("DT", "DR", "DA")

#: fraction of each class held out for testing (the same split for every model)
TEST_FRACTION = 0.25
#: images generated for ``dataset="synthetic"`` (train + test)
SYNTHETIC_SIZE = 3200
#: maximal random shift (pixels) of ``augment=True``
MAX_SHIFT = 2
SGD_MOMENTUM = 0.9
#: learning rates of the alternative optimizer in setting "DR"
DR_SGD_LR, DR_ADAM_LR = 0.05, 1e-3
# Seeds of the fixed parts of the pipeline; independent of ``TrainConfig.seed`` on purpose.
_DATA_SEED = 20240601  # synthetic images
_TEST_SPLIT_SEED = 1234  # train/test split
_PARTS_SEED = 4321  # disjoint parts of the training set (``split``)
_LABEL_SEED = 999  # label permutation of ``shuffle_labels``
#: bump when training or data change so that stale cached weights are not reused
CACHE_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model (and its cache key).

    Args:
        dataset: ``"digits"`` or ``"synthetic"``.
        arch: ``"cnn"``, ``"cnn_wide"``, ``"cnn_deep"`` or ``"mlp"`` (see :func:`build_model`).
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9).
        lr: learning rate (> 0).
        epochs, batch_size: passes over the training set and mini-batch size.
        seed: initialization, batch order and all training noise.
        augment: random shifts of up to ±2 pixels (replicated border).
        input_noise: σ_train as a fraction of each sample's range ``x_max - x_min`` (>= 0).
        weight_noise: σ of the weight perturbation of noisy SGD (absolute, >= 0).
        weight_noise_samples: weight perturbations averaged per step.
        split: ``(i, k)`` trains on the ``i``-th of ``k`` disjoint parts of the training set.
        shuffle_labels: train on randomly permuted labels (data-randomization sanity check).
        image_size: side of the square input images.
    """

    dataset: str = "digits"
    arch: str = "cnn"
    optimizer: str = "adam"
    lr: float = 1e-3
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    augment: bool = False
    input_noise: float = 0.0
    weight_noise: float = 0.0
    weight_noise_samples: int = 1
    split: tuple[int, int] | None = None
    shuffle_labels: bool = False
    image_size: int = 32

    def __post_init__(self) -> None:
        check_choice(self.dataset, "dataset", DATASETS)
        check_choice(self.arch, "arch", ARCHS)
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        if check_nonnegative(self.lr, "lr") == 0:
            raise ValueError(f"`lr` must be > 0, got {self.lr}")
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.seed, "seed", minimum=0)
        check_nonnegative(self.input_noise, "input_noise")
        check_nonnegative(self.weight_noise, "weight_noise")
        check_positive_int(self.weight_noise_samples, "weight_noise_samples")
        check_positive_int(self.image_size, "image_size", minimum=8)
        for name in ("augment", "shuffle_labels"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"`{name}` must be a bool, got {getattr(self, name)!r}")
        if self.split is not None:
            object.__setattr__(self, "split", _check_split(self.split))
        for name in ("lr", "input_noise", "weight_noise"):  # lr=1 and lr=1.0 share one cache key
            object.__setattr__(self, name, float(getattr(self, name)))

    def to_json(self) -> str:
        """Canonical JSON (sorted keys); its SHA-1 is the cache key."""
        return json.dumps(asdict(self), sort_keys=True)


def _check_split(split: object) -> tuple[int, int]:
    if not isinstance(split, (tuple, list)) or len(split) != 2:
        raise ValueError(f"`split` must be None or a pair (part, n_parts), got {split!r}")
    part, n_parts = split
    check_positive_int(n_parts, "split[1] (n_parts)")
    check_positive_int(part, "split[0] (part)", minimum=0)
    if part >= n_parts:
        raise ValueError(f"`split` part index must be in [0, {n_parts - 1}], got split={tuple(split)}")
    return (part, n_parts)


@dataclass
class TrainedModel:
    """A trained classifier and where it came from.

    ``model`` is in eval mode, takes ``[B, C, S, S]`` images in ``[0, 1]`` and returns logits
    ``[B, classes]``; ``test_accuracy`` is measured on the fixed test split of :func:`load_split`.
    """

    model: nn.Module
    config: TrainConfig
    test_accuracy: float
    path: Path
    train_seconds: float = 0.0
    from_cache: bool = False


# ---- data ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _load_split_cached(dataset: str, image_size: int) -> tuple[ImageDataset, ImageDataset]:
    if dataset == "digits":
        from smoothsal.datasets.digits import load_digits_images

        full = load_digits_images(image_size)
    else:
        from smoothsal.datasets.synthetic import make_synthetic

        full = make_synthetic(SYNTHETIC_SIZE, size=image_size, seed=_DATA_SEED)
    gen = torch.Generator().manual_seed(_TEST_SPLIT_SEED)
    test_mask = _stratified_test_mask(full.labels, full.num_classes, TEST_FRACTION, gen)
    train_idx, test_idx = (~test_mask).nonzero()[:, 0], test_mask.nonzero()[:, 0]
    return full.subset(train_idx), full.subset(test_idx)


def load_split(dataset: str, image_size: int = 32) -> tuple[ImageDataset, ImageDataset]:
    """The fixed, stratified train/test split of ``dataset`` (25% of each class held out).

    The split depends only on ``dataset`` and ``image_size``, never on a training seed, so every
    model is evaluated (and explained) on the same held-out inputs.
    """
    check_choice(dataset, "dataset", DATASETS)
    check_positive_int(image_size, "image_size", minimum=8)
    train, test = _load_split_cached(dataset, image_size)
    return train.subset(torch.arange(len(train))), test.subset(torch.arange(len(test)))  # copies


def held_out_inputs(dataset: str, image_size: int, n: int, seed: int) -> ImageDataset:
    """``n`` inputs drawn without replacement from the test split of :func:`load_split`, by ``seed``:
    the fixed set a study explains. Raises ``ValueError`` when the split holds fewer than ``n``."""
    _, test = load_split(dataset, image_size=image_size)
    if n > len(test):
        raise ValueError(f"`n_inputs` must be <= {len(test)} (the {dataset} test split), got {n}")
    return test.subset(torch.randperm(len(test), generator=make_generator(seed))[:n])


def _stratified_test_mask(labels: Tensor, num_classes: int, fraction: float, gen: torch.Generator) -> Tensor:
    """Boolean ``[N]``: ``round(fraction * count)`` random samples of every class."""
    mask = torch.zeros(labels.shape[0], dtype=torch.bool)
    for c in range(num_classes):
        members = (labels == c).nonzero()[:, 0]
        n_test = round(fraction * members.numel())
        mask[members[torch.randperm(members.numel(), generator=gen)[:n_test]]] = True
    return mask


def disjoint_splits(n: int, k: int, seed: int = 0) -> list[Tensor]:
    """``k`` disjoint, sorted index sets that together cover ``range(n)`` (sizes differ by <= 1).

    Example:
        >>> parts = disjoint_splits(10, 3, seed=0)
        >>> [p.numel() for p in parts], sorted(torch.cat(parts).tolist()) == list(range(10))
        ([4, 3, 3], True)
    """
    check_positive_int(n, "n")
    check_positive_int(k, "k")
    check_positive_int(seed, "seed", minimum=0)
    if k > n:
        raise ValueError(f"`k` must be <= n={n} so that no part is empty, got {k}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [part.sort().values for part in torch.tensor_split(perm, k)]


def _training_set(config: TrainConfig) -> ImageDataset:
    train, _ = load_split(config.dataset, config.image_size)
    if config.split is not None:
        part, n_parts = config.split
        if n_parts > len(train):
            raise ValueError(f"`split` n_parts={n_parts} exceeds the {len(train)} training samples")
        train = train.subset(disjoint_splits(len(train), n_parts, seed=_PARTS_SEED)[part])
    if config.shuffle_labels:
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(_LABEL_SEED))
        train = ImageDataset(train.images, train.labels[perm], train.masks, train.num_classes, train.class_names)
    return train


# ---- models -------------------------------------------------------------------------------------
class Standardize(nn.Module):
    """Fixed input scaling ``(x - 0.5) / 0.25`` as the model's first module (inputs stay in [0, 1])."""

    def __init__(self, mean: float = 0.5, std: float = 0.25) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"


def _conv_block(c_in: int, c_out: int, pool: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
    return layers + [nn.MaxPool2d(2)] if pool else layers


def build_model(arch: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """A small classifier for ``[B, in_channels, S, S]`` images in ``[0, 1]``.

    * ``"cnn"``: conv16 → pool → conv32 → pool → linear (3×3 convs, ReLU);
    * ``"cnn_wide"``: the same with twice the channels (32, 64);
    * ``"cnn_deep"``: conv16 → pool → conv32 → pool → conv32 → conv32 → linear;
    * ``"mlp"``: flatten → 256 → 128 → classes.

    Every model starts with :class:`Standardize` and uses a separate ``nn.ReLU`` module per
    layer (non-inplace), so hook-based attribution methods can treat each one on its own.
    """
    check_choice(arch, "arch", ARCHS)
    check_positive_int(in_channels, "in_channels")
    check_positive_int(num_classes, "num_classes", minimum=2)
    check_positive_int(image_size, "image_size", minimum=8)
    pooled = image_size // 4  # two 2×2 max-pools (floor)
    if arch == "mlp":
        body: list[nn.Module] = [
            nn.Flatten(),  # [B, C*S*S]
            nn.Linear(in_channels * image_size**2, 256),
            nn.ReLU(),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, num_classes),
        ]
    else:
        widths = {"cnn": (16, 32), "cnn_wide": (32, 64), "cnn_deep": (16, 32)}[arch]
        body = _conv_block(in_channels, widths[0], pool=True) + _conv_block(widths[0], widths[1], pool=True)
        if arch == "cnn_deep":
            body += _conv_block(widths[1], widths[1], pool=False) + _conv_block(widths[1], widths[1], pool=False)
        body += [nn.Flatten(), nn.Linear(widths[1] * pooled**2, num_classes)]  # [B, C*S/4*S/4] -> logits
    return nn.Sequential(Standardize(), *body)


def _init_model(config: TrainConfig, in_channels: int, num_classes: int) -> nn.Module:
    """Build the model with initial weights determined by ``config.seed`` (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return build_model(config.arch, in_channels, num_classes, config.image_size)


# ---- training steps -----------------------------------------------------------------------------
def random_shift(images: Tensor, max_shift: int, gen: torch.Generator) -> Tensor:
    """Shift each image by its own integer offset in ``[-max_shift, max_shift]`` (border replicated)."""
    if max_shift == 0:
        return images
    b, c, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4, mode="replicate")  # [B, C, H+2m, W+2m]
    offsets = torch.randint(0, 2 * max_shift + 1, (2, b), generator=gen)  # (dy, dx) per sample
    rows = offsets[0][:, None] + torch.arange(h)  # [B, H]
    cols = offsets[1][:, None] + torch.arange(w)  # [B, W]
    batch = torch.arange(b)[:, None, None, None]
    chans = torch.arange(c)[None, :, None, None]
    return padded[batch, chans, rows[:, None, :, None], cols[:, None, None, :]]  # [B, C, H, W]


def add_input_noise(images: Tensor, noise_level: float, gen: torch.Generator) -> Tensor:
    r"""``x + N(0, σ²)`` with :math:`σ = \text{noise\_level}\,(x_{max} - x_{min})` per sample."""
    if noise_level == 0:
        return images
    flat = images.flatten(1)  # [B, C*H*W]
    sigma = noise_level * (flat.amax(1) - flat.amin(1))  # [B]
    noise = torch.randn(images.shape, generator=gen, dtype=images.dtype)
    return images + sigma.view(-1, *([1] * (images.dim() - 1))) * noise


def noisy_weight_backward(
    model: nn.Module, inputs: Tensor, labels: Tensor, sigma: float, n_samples: int, gen: torch.Generator
) -> float:
    r"""Accumulate into ``.grad`` the Monte-Carlo gradient of the smoothed loss (seed eq. 3).

    .. math:: \nabla_W \mathbb E_V\, \ell(W + V) \approx \frac1m \sum_{j=1}^m \nabla \ell(W + V_j),
              \quad V_j \sim \mathcal N(0, \sigma^2 I)

    The perturbed weights only exist inside :func:`torch.func.functional_call`; the model's
    parameters are never modified. Returns the mean loss over the ``m = n_samples`` draws.
    """
    params = dict(model.named_parameters())
    total = 0.0
    for _ in range(n_samples):
        noisy = {name: p + sigma * torch.randn(p.shape, generator=gen, dtype=p.dtype) for name, p in params.items()}
        loss = F.cross_entropy(functional_call(model, noisy, (inputs,)), labels) / n_samples
        loss.backward()  # d(p + V)/dp = I, so p.grad receives ∇ℓ(W + V_j) / m
        total += float(loss.detach())
    return total


def _make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=SGD_MOMENTUM)


def _generators(seed: int) -> dict[str, torch.Generator]:
    """One generator per source of randomness, so that switching one option on leaves the others' draws."""
    streams = ("order", "shift", "input_noise", "weight_noise")
    return {name: torch.Generator().manual_seed(seed * len(streams) + i) for i, name in enumerate(streams)}


def _fit(model: nn.Module, train: ImageDataset, config: TrainConfig, bar: tqdm) -> float:
    """Train ``model`` in place, one ``bar`` step per epoch; returns the last epoch's mean loss."""
    gens = _generators(config.seed)
    optimizer = _make_optimizer(config, model)
    n = len(train)
    epoch_loss = float("nan")
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=gens["order"])
        total = 0.0
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            x, y = train.images[idx], train.labels[idx]
            if config.augment:
                x = random_shift(x, MAX_SHIFT, gens["shift"])
            x = add_input_noise(x, config.input_noise, gens["input_noise"])
            optimizer.zero_grad(set_to_none=True)
            if config.weight_noise > 0:
                loss = noisy_weight_backward(
                    model, x, y, config.weight_noise, config.weight_noise_samples, gens["weight_noise"]
                )
            else:  # V = 0: one evaluation is the exact expectation
                loss_t = F.cross_entropy(model(x), y)
                loss_t.backward()
                loss = float(loss_t.detach())
            optimizer.step()
            total += loss * idx.numel()
        epoch_loss = total / n
        bar.set_postfix(loss=f"{epoch_loss:.4f}")
        bar.update(1)
    model.eval()
    return epoch_loss


@torch.no_grad()
def evaluate(model: nn.Module, dataset: ImageDataset, batch_size: int | None = None) -> float:
    """Top-1 accuracy of ``model`` (put in eval mode) on ``dataset`` (rows per call: the library's rule)."""
    model.eval()
    x = dataset.images
    logits = predict(model, x, batch_size=batch_size)
    return int((logits.argmax(1) == dataset.labels).sum()) / len(dataset)


# ---- cache --------------------------------------------------------------------------------------
def config_key(config: TrainConfig) -> str:
    """SHA-1 of the config's canonical JSON (plus :data:`CACHE_VERSION`): the weights' file stem."""
    payload = json.dumps({"config": json.loads(config.to_json()), "version": CACHE_VERSION}, sort_keys=True)
    return hashlib.sha1(payload.encode()).hexdigest()


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file and ``os.replace`` it, so ``path`` is never half-written."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _load_cached(
    config: TrainConfig, weights: Path, sidecar: Path, in_channels: int, num_classes: int
) -> tuple[nn.Module, float, float] | None:
    """``(model, test accuracy, training seconds)`` from the cache, or ``None`` if absent or
    unusable (a warning says why)."""
    if not (weights.exists() and sidecar.exists()):
        return None
    try:
        meta = json.loads(sidecar.read_text())
        if meta.get("config") != json.loads(config.to_json()):
            raise ValueError("its sidecar describes a different config")
        model = build_model(config.arch, in_channels, num_classes, config.image_size)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        accuracy, seconds = float(meta["test_accuracy"]), float(meta["train_seconds"])
    except Exception as err:  # noqa: BLE001 - any unreadable cache entry means: train again
        warnings.warn(f"ignoring unusable cached model {weights} ({err}); training it again", stacklevel=3)
        return None
    return model.eval(), accuracy, seconds


# ---- public entry points -----------------------------------------------------------------------
def train_model(config: TrainConfig, cache_dir: str | Path | None = None, progress: bool = True) -> TrainedModel:
    """Train the model ``config`` describes, or load it if it is already in the cache.

    Args:
        config: the :class:`TrainConfig`.
        cache_dir: folder of cached weights (default ``smoothsal._core.paths.cache_dir("models")``).
        progress: show a ``tqdm`` bar over epochs (loss per epoch; test accuracy at the end).
    Returns:
        :class:`TrainedModel` with the eval-mode model, its test accuracy on :func:`load_split`'s
        test set, the weights' path and the training time (of the original run when cached).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"`config` must be a TrainConfig, got {type(config).__name__}")
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir("models")
    folder.mkdir(parents=True, exist_ok=True)
    key = config_key(config)
    weights, sidecar = folder / f"{key}.pt", folder / f"{key}.json"

    train_set = _training_set(config)
    _, test_set = load_split(config.dataset, config.image_size)
    in_channels, num_classes = train_set.image_shape[0], train_set.num_classes

    cached = _load_cached(config, weights, sidecar, in_channels, num_classes)
    if cached is not None:
        model, accuracy, seconds = cached
        return TrainedModel(model, config, accuracy, weights, seconds, from_cache=True)

    model = _init_model(config, in_channels, num_classes)
    desc = f"train {config.dataset}/{config.arch}"
    with tqdm(total=config.epochs, desc=desc, unit="epoch", disable=not progress) as bar:
        start = time.perf_counter()
        final_loss = _fit(model, train_set, config, bar)
        seconds = time.perf_counter() - start
        accuracy = evaluate(model, test_set)
        bar.set_postfix(loss=f"{final_loss:.4f}", test_acc=f"{accuracy:.3f}")
    meta = {
        "config": json.loads(config.to_json()),
        "test_accuracy": accuracy,
        "train_seconds": seconds,
        "final_loss": final_loss,
        "n_train": len(train_set),
        "n_test": len(test_set),
        "cache_version": CACHE_VERSION,
        "torch_version": torch.__version__,
    }
    _atomic_write(weights, lambda p: torch.save(model.state_dict(), p))
    # the sidecar goes last: weights without a sidecar (an interrupted run) are never reused
    _atomic_write(sidecar, lambda p: p.write_text(json.dumps(meta, indent=2)))
    return TrainedModel(model, config, accuracy, weights, seconds, False)


def setting_configs(
    setting: str, dataset: str = "digits", n_models: int = 2, base: TrainConfig | None = None
) -> list[TrainConfig]:
    """The configs of one Table-1 setting (see :func:`models_for_setting`)."""
    check_choice(setting, "setting", SETTINGS)
    check_choice(dataset, "dataset", DATASETS)
    check_positive_int(n_models, "n_models", minimum=2)
    base = replace(base if base is not None else TrainConfig(), dataset=dataset)
    if setting == "DT":
        return [replace(base, split=(i, n_models)) for i in range(n_models)]
    full = replace(base, split=None)
    if setting == "DA":
        archs = (full.arch,) + tuple(a for a in ("cnn", "cnn_wide", "mlp", "cnn_deep") if a != full.arch)
        if n_models > len(archs):
            raise ValueError(f"`n_models` must be <= {len(archs)} for setting 'DA' (one per arch), got {n_models}")
        return [replace(full, arch=a) for a in archs[:n_models]]
    if full.optimizer == "adam":
        other = replace(full, optimizer="sgd", lr=DR_SGD_LR)
    else:
        other = replace(full, optimizer="adam", lr=DR_ADAM_LR)
    recipes = [full, other, replace(full, augment=not full.augment)]
    recipes += [replace(full, seed=full.seed + j) for j in range(1, n_models - len(recipes) + 1)]
    return recipes[:n_models]


def models_for_setting(
    setting: str,
    dataset: str = "digits",
    n_models: int = 2,
    base: TrainConfig | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> list[TrainedModel]:
    """Train (or load) ``n_models`` models that differ in one way (Ye & Farnia 2025, Table 1).

    * ``"DT"``: ``base``'s arch and recipe, model ``i`` trained on part ``i`` of ``n_models``
      disjoint parts of the training set (``split=(i, n_models)``); the models share the seed
      (same initial weights), so they differ only in their training data;
    * ``"DR"``: the full training set, different recipes: ``base``; SGD (lr 0.05, momentum 0.9)
      instead of Adam (or Adam lr 1e-3 if ``base`` uses SGD); ``augment`` toggled; then ``base``
      with seeds ``seed + 1, seed + 2, ...``;
    * ``"DA"``: the full training set and ``base``'s recipe, different archs: ``base.arch``, then
      the others of ``cnn, cnn_wide, mlp, cnn_deep`` (at most 4 models).

    ``dataset`` overrides ``base.dataset``. Returns the :class:`TrainedModel` s in that order.
    """
    configs = setting_configs(setting, dataset, n_models, base)
    return [train_model(c, cache_dir=cache_dir, progress=progress) for c in configs]
