"""Train a model once, then load it: weights cached by the SHA-1 of their recipe (:func:`config_key`).

Weights are cached under ``cache_dir`` (default ``smoothsal._core.paths.cache_dir("models")``) as
``<key>.pt`` with a JSON sidecar (config, accuracies, wall and CPU seconds, epochs run and, for
``"smooth_mlp"``, the theory constants), so a second call with the same :class:`TrainConfig`
loads instead of training. Both files are written atomically and the sidecar last, so an
interrupted run leaves nothing that is reused: a long job of many models resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from smoothsal._core.paths import cache_dir as default_cache_dir
from smoothsal.studies.train.architectures import build_model
from smoothsal.studies.train.config import CACHE_VERSION, TrainConfig, config_key
from smoothsal.studies.train.data import held_out_set, training_set
from smoothsal.studies.train.fit import evaluate, fit
from smoothsal.studies.train.theory import NormTracker, TheoryConstants, theory_constants


@dataclass
class TrainedModel:
    """A trained classifier and where it came from.

    ``model`` is in eval mode, takes ``[B, C, S, S]`` images in ``[0, 1]`` and returns logits
    ``[B, classes]``; ``test_accuracy`` is measured on the held-out split of :func:`load_split`.

    Args:
        model: the trained network (eval mode).
        config: its recipe.
        test_accuracy: top-1 accuracy on the held-out split.
        path: the cached weights.
        train_seconds: wall-clock seconds of the training run (of the original run when cached).
        from_cache: loaded instead of trained.
        train_accuracy: top-1 accuracy on its own training set and labels (permuted ones when
            ``shuffle_labels``), without augmentation.
        cpu_seconds: process CPU seconds (user + sys, all threads) of the training run.
        epochs_run: epochs actually run (fewer than ``config.epochs`` when ``fit_train_accuracy`` stopped it).
        theory: the assumption constants of a ``"smooth_mlp"`` (``None`` for other archs).
    """

    model: nn.Module
    config: TrainConfig
    test_accuracy: float
    path: Path
    train_seconds: float = 0.0
    from_cache: bool = False
    train_accuracy: float = float("nan")
    cpu_seconds: float = float("nan")
    epochs_run: int = 0
    theory: TheoryConstants | None = None

    def summary(self) -> dict[str, Any]:
        """One table row: recipe, accuracies, seconds (JSON-ready)."""
        return {
            "recipe": self.config.describe(),
            "key": self.path.stem,
            "test_accuracy": self.test_accuracy,
            "train_accuracy": self.train_accuracy,
            "train_seconds": self.train_seconds,
            "cpu_seconds": self.cpu_seconds,
            "epochs_run": self.epochs_run,
            "from_cache": self.from_cache,
        }


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
) -> TrainedModel | None:
    """The cached model, or ``None`` if absent or unusable (a warning says why)."""
    if not (weights.exists() and sidecar.exists()):
        return None
    try:
        meta = json.loads(sidecar.read_text())
        if meta.get("config") != json.loads(config.to_json()):
            raise ValueError("its sidecar describes a different config")
        model = build_model(config.arch, in_channels, num_classes, config.image_size)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        theory = TheoryConstants.from_dict(meta["theory"]) if meta.get("theory") else None
        return TrainedModel(
            model.eval(), config, float(meta["test_accuracy"]), weights, float(meta["train_seconds"]), True,
            float(meta["train_accuracy"]), float(meta["cpu_seconds"]), int(meta["epochs_run"]), theory,
        )  # fmt: skip
    except Exception as err:  # noqa: BLE001 - any unreadable cache entry means: train again
        warnings.warn(f"ignoring unusable cached model {weights} ({err}); training it again", stacklevel=3)
        return None


def _init_model(config: TrainConfig, in_channels: int, num_classes: int) -> nn.Module:
    """Build the model with initial weights determined by ``config.seed`` (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return build_model(config.arch, in_channels, num_classes, config.image_size)


def train_model(config: TrainConfig, cache_dir: str | Path | None = None, progress: bool = True) -> TrainedModel:
    """Train the model ``config`` describes, or load it if it is already in the cache.

    Args:
        config: the :class:`TrainConfig`.
        cache_dir: folder of cached weights (default ``smoothsal._core.paths.cache_dir("models")``).
        progress: show a ``tqdm`` bar over epochs (loss per epoch; test accuracy at the end).
    Returns:
        :class:`TrainedModel` with the eval-mode model, its test and training accuracy, the
        weights' path, the wall and CPU seconds of training (of the original run when cached)
        and, for ``"smooth_mlp"``, its :class:`TheoryConstants`.
    Raises:
        RuntimeError: ``config.fit_train_accuracy`` was not reached within ``config.epochs``
            (nothing is cached; the message names the recipe and the accuracy reached).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"`config` must be a TrainConfig, got {type(config).__name__}")
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir("models")
    folder.mkdir(parents=True, exist_ok=True)
    key = config_key(config)
    weights, sidecar = folder / f"{key}.pt", folder / f"{key}.json"

    train_set, test_set = training_set(config), held_out_set(config)
    in_channels, num_classes = train_set.image_shape[0], train_set.num_classes
    cached = _load_cached(config, weights, sidecar, in_channels, num_classes)
    if cached is not None:
        return cached

    model = _init_model(config, in_channels, num_classes)
    tracker = NormTracker(model) if config.arch == "smooth_mlp" else None
    desc = f"train {config.dataset}/{config.arch}"
    with tqdm(total=config.epochs, desc=desc, unit="epoch", disable=not progress) as bar:

        def on_epoch(epoch: int, net: nn.Module) -> None:
            if tracker is not None:
                tracker(epoch, net)
            bar.update(1)

        on_step = (lambda: tracker.step(model)) if tracker is not None else None
        wall, cpu = time.perf_counter(), time.process_time()
        result = fit(model, train_set, config, on_epoch=on_epoch, on_step=on_step)
        seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
        test_accuracy = evaluate(model, test_set)
        train_accuracy = result.fit_history[-1] if result.fit_history else evaluate(model, train_set)
        bar.set_postfix(loss=f"{result.final_loss:.4f}", test_acc=f"{test_accuracy:.4f}",
                        train_acc=f"{train_accuracy:.4f}")  # fmt: skip
    if config.fit_train_accuracy is not None and train_accuracy < config.fit_train_accuracy:
        raise RuntimeError(
            f"{config.describe()} reached training accuracy {train_accuracy:.4f} < fit_train_accuracy "
            f"{config.fit_train_accuracy:g} in {config.epochs} epochs; raise `epochs` or the learning rate"
        )
    theory = theory_constants(model, config, train_set, result.steps, tracker) if tracker is not None else None
    trained = TrainedModel(model, config, test_accuracy, weights, seconds, False, train_accuracy, cpu_seconds,
                           result.epochs_run, theory)  # fmt: skip
    meta = {
        "config": json.loads(config.to_json()),
        **{k: v for k, v in trained.summary().items() if k not in ("key", "from_cache")},
        "final_loss": result.final_loss,
        "fit_history": result.fit_history,
        "steps": result.steps,
        "n_train": len(train_set),
        "n_test": len(test_set),
        "theory": theory.to_dict() if theory is not None else None,
        "cache_version": CACHE_VERSION,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    _atomic_write(weights, lambda p: torch.save(model.state_dict(), p))
    # the sidecar goes last: weights without a sidecar (an interrupted run) are never reused
    _atomic_write(sidecar, lambda p: p.write_text(json.dumps(meta, indent=2)))
    return trained
