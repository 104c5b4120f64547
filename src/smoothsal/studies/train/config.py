"""What determines a trained model: :class:`TrainConfig`, and its cache key (:func:`config_key`).

Every field that changes the weights is a field here, so two configs with equal fields train
bit-identical models (on one machine and thread count) and share one cache entry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from smoothsal._core.validation import check_choice, check_nonnegative, check_positive_int

DATASETS: tuple[str, ...] = ("digits", "synthetic", "mnist")
ARCHS: tuple[str, ...] = ("cnn", "cnn_wide", "cnn_deep", "mlp", "lenet", "resnet", "smooth_mlp")
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
#: per-step learning-rate rules (see :func:`smoothsal.studies.train.fit.step_size`)
SCHEDULES: tuple[str, ...] = ("constant", "step", "onecycle", "inverse_t")
SETTINGS: tuple[str, ...] = ("DT", "DR", "DA")
#: image side used when ``image_size`` is left ``None``: MNIST's native 28, else the old default 32
DEFAULT_IMAGE_SIZE: dict[str, int] = {"digits": 32, "synthetic": 32, "mnist": 28}
#: default seeds of the data pipeline; independent of ``TrainConfig.seed`` on purpose
PARTS_SEED = 4321  # disjoint parts of the training set (``split``)
LABEL_SEED = 999  # label permutation of ``shuffle_labels``
#: bump when training or data change so that stale cached weights are not reused
CACHE_VERSION = 2


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model (and its cache key).

    Args:
        dataset: ``"digits"``, ``"synthetic"`` or ``"mnist"``.
        arch: one of :data:`ARCHS` (see :func:`smoothsal.studies.train.build_model`).
        optimizer: ``"adam"`` or ``"sgd"`` (with ``momentum``).
        lr: peak learning rate (> 0); for ``lr_schedule="inverse_t"`` the constant ``c`` of
            the step ``c / (t + lr_offset)``.
        epochs: passes over the training set; with ``fit_train_accuracy`` the most passes.
        batch_size: mini-batch size.
        seed: initialization, batch order and all training noise.
        augment: random shifts of up to ±2 pixels (replicated border).
        input_noise: σ_train as a fraction of each sample's range ``x_max - x_min`` (>= 0).
        weight_noise: σ of the weight perturbation of noisy SGD (absolute, >= 0).
        weight_noise_samples: weight perturbations averaged per step.
        split: ``(i, k)`` trains on the ``i``-th of ``k`` disjoint parts of the training set.
        shuffle_labels: train on randomly permuted labels (data-randomization sanity check).
        image_size: side of the square input images; ``None`` = :data:`DEFAULT_IMAGE_SIZE`
            of the dataset (MNIST accepts only its native 28).
        momentum: SGD momentum in ``[0, 1)`` (0 = plain SGD); unused by Adam.
        weight_decay: L2 penalty coefficient of the optimizer (>= 0).
        lr_schedule: ``"constant"``, ``"step"`` (× ``lr_gamma`` at each epoch of
            ``lr_milestones``), ``"onecycle"`` (linear warm-up, cosine decay) or ``"inverse_t"``
            (``lr / (t + lr_offset)`` at step ``t = 1, 2, ...``).
        lr_milestones: epochs (0-based, increasing, in ``[1, epochs - 1]``) where ``"step"`` decays.
        lr_gamma: decay factor of ``"step"`` (in ``(0, 1)``).
        lr_offset: ``t0 >= 0`` of ``"inverse_t"``; the step ``c / (t + t0)`` never exceeds ``c / t``.
        label_smoothing: label smoothing of the cross-entropy, in ``[0, 1)``.
        loss_scale: factor on the loss (> 0); ``1/√2`` makes cross-entropy 1-Lipschitz in the logits.
        split_seed: seed of the disjoint parts of ``split``.
        label_seed: seed of the label permutation of ``shuffle_labels``.
        fit_train_accuracy: stop once the accuracy on the (possibly permuted) training labels
            reaches this, checked after every epoch; ``None`` = train all ``epochs``.
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
    image_size: int | None = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    lr_offset: int = 0
    label_smoothing: float = 0.0
    loss_scale: float = 1.0
    split_seed: int = PARTS_SEED
    label_seed: int = LABEL_SEED
    fit_train_accuracy: float | None = None

    def __post_init__(self) -> None:
        check_choice(self.dataset, "dataset", DATASETS)
        check_choice(self.arch, "arch", ARCHS)
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        check_choice(self.lr_schedule, "lr_schedule", SCHEDULES)
        for name in ("lr", "loss_scale"):
            if check_nonnegative(getattr(self, name), name) == 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)}")
        for name in ("epochs", "batch_size", "weight_noise_samples"):
            check_positive_int(getattr(self, name), name)
        for name in ("seed", "split_seed", "label_seed", "lr_offset"):
            check_positive_int(getattr(self, name), name, minimum=0)
        for name in ("input_noise", "weight_noise", "weight_decay"):
            check_nonnegative(getattr(self, name), name)
        for name in ("momentum", "label_smoothing"):
            if check_nonnegative(getattr(self, name), name) >= 1:
                raise ValueError(f"`{name}` must be in [0, 1), got {getattr(self, name)}")
        if not 0 < check_nonnegative(self.lr_gamma, "lr_gamma") < 1:
            raise ValueError(f"`lr_gamma` must be in (0, 1), got {self.lr_gamma}")
        for name in ("augment", "shuffle_labels"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"`{name}` must be a bool, got {getattr(self, name)!r}")
        self._check_image_size()
        self._check_schedule()
        if self.split is not None:
            object.__setattr__(self, "split", _check_split(self.split))
        if self.fit_train_accuracy is not None and not 0 < check_nonnegative(
            self.fit_train_accuracy, "fit_train_accuracy"
        ) <= 1:
            raise ValueError(f"`fit_train_accuracy` must be None or in (0, 1], got {self.fit_train_accuracy}")
        floats = ("lr", "input_noise", "weight_noise", "momentum", "weight_decay", "lr_gamma", "label_smoothing",
                  "loss_scale", "fit_train_accuracy")  # fmt: skip
        for name in floats:  # lr=1 and lr=1.0 share one cache key
            if getattr(self, name) is not None:
                object.__setattr__(self, name, float(getattr(self, name)))

    def _check_image_size(self) -> None:
        if self.image_size is None:
            object.__setattr__(self, "image_size", DEFAULT_IMAGE_SIZE[self.dataset])
        check_positive_int(self.image_size, "image_size", minimum=8)
        if self.dataset == "mnist" and self.image_size != DEFAULT_IMAGE_SIZE["mnist"]:
            raise ValueError(f"`image_size` must be 28 (MNIST's native size) for dataset 'mnist', "
                             f"got {self.image_size}")  # fmt: skip

    def _check_schedule(self) -> None:
        milestones = self.lr_milestones
        ints = isinstance(milestones, (tuple, list)) and all(isinstance(m, int) and not isinstance(m, bool) for m in milestones)
        if not ints:
            raise TypeError(f"`lr_milestones` must be a tuple of ints, got {milestones!r}")
        milestones = tuple(milestones)
        object.__setattr__(self, "lr_milestones", milestones)
        if self.lr_schedule == "step":
            increasing = milestones == tuple(sorted(set(milestones)))
            if not milestones or not increasing or not 1 <= milestones[0] <= milestones[-1] < self.epochs:
                raise ValueError(f"`lr_milestones` must be increasing epochs in [1, {self.epochs - 1}] for "
                                 f"lr_schedule='step', got {milestones}")  # fmt: skip
        elif milestones:
            raise ValueError(f"`lr_milestones` applies to lr_schedule='step' only, got {milestones} "
                             f"with {self.lr_schedule!r}")  # fmt: skip
        if self.lr_offset and self.lr_schedule != "inverse_t":
            raise ValueError(f"`lr_offset` applies to lr_schedule='inverse_t' only, got {self.lr_offset} "
                             f"with {self.lr_schedule!r}")  # fmt: skip

    def to_json(self) -> str:
        """Canonical JSON (sorted keys); its SHA-1 is the cache key."""
        return json.dumps(asdict(self), sort_keys=True)

    def describe(self) -> str:
        """A one-line recipe summary for tables and error messages, e.g.
        ``"lenet adam lr=0.003 onecycle bs=128 8ep part 0/2 (split_seed 4322) seed 1"``."""
        parts = [self.arch, self.optimizer]
        if self.optimizer == "sgd":
            parts.append(f"momentum={self.momentum:g}")
        parts += [f"lr={self.lr:g}", self.lr_schedule]
        if self.lr_schedule == "step":
            parts.append(f"x{self.lr_gamma:g}@{list(self.lr_milestones)}")
        if self.lr_schedule == "inverse_t":
            parts.append(f"t0={self.lr_offset}")
        extras = {"wd": self.weight_decay, "ls": self.label_smoothing, "noise": self.input_noise,
                  "wnoise": self.weight_noise}  # fmt: skip
        parts += [f"{k}={v:g}" for k, v in extras.items() if v]
        if self.loss_scale != 1:
            parts.append(f"loss*{self.loss_scale:.4g}")
        if self.augment:
            parts.append("shift±2")
        parts += [f"bs={self.batch_size}", f"{self.epochs}ep" + ("(max)" if self.fit_train_accuracy else "")]
        if self.split is not None:
            parts.append(f"part {self.split[0]}/{self.split[1]} (split_seed {self.split_seed})")
        if self.shuffle_labels:
            parts.append(f"labels permuted (label_seed {self.label_seed})")
        if self.fit_train_accuracy is not None:
            parts.append(f"until train acc>={self.fit_train_accuracy:g}")
        return " ".join(parts + [f"seed {self.seed}"])


def _check_split(split: object) -> tuple[int, int]:
    if not isinstance(split, (tuple, list)) or len(split) != 2:
        raise ValueError(f"`split` must be None or a pair (part, n_parts), got {split!r}")
    part, n_parts = split
    check_positive_int(n_parts, "split[1] (n_parts)")
    check_positive_int(part, "split[0] (part)", minimum=0)
    if part >= n_parts:
        raise ValueError(f"`split` part index must be in [0, {n_parts - 1}], got split={tuple(split)}")
    return (part, n_parts)


def config_key(config: TrainConfig) -> str:
    """SHA-1 of the config's canonical JSON (plus :data:`CACHE_VERSION`): the weights' file stem."""
    payload = json.dumps({"config": json.loads(config.to_json()), "version": CACHE_VERSION}, sort_keys=True)
    return hashlib.sha1(payload.encode()).hexdigest()
