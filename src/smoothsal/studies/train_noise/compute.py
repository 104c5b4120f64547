r"""Compute step of ``smoothsal train-noise``: the four cells of the 2 × 2, recorded as they finish.

Units of work (records of :class:`~smoothsal.studies.store.ResultsStore`):

* ``{"kind": "cell", "train", "explain"}``: one cell's numbers (a row of ``results.csv``):
  stability error across the regime's models (trained on disjoint parts of the training set;
  Ye & Farnia 2025, arXiv:2411.05837, eq. 12, DT pairs; raw and norm-scaled, with SSIM and top-k
  IoU) and localization, the share of :math:`|map|` mass on the object
  (:func:`smoothsal.metrics.localization.relevance_mass`, ``relevance="abs"``; chance ≈ the
  object's area fraction), averaged over the models and the fixed test inputs (true labels as
  targets);
* ``{"kind": "grid", "train", "explain", "n_show"}``: the first model's maps of the first
  ``n_show`` inputs, for ``train_noise_grid.png``.

Models are trained (or loaded from the model cache) only for a regime with a unit still missing,
so a finished run is read back without touching a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from smoothsal.registry import build_method
from smoothsal.studies.store import ResultsStore
from smoothsal.studies.train_noise.config import EXPLAIN_REGIMES, TRAIN_REGIMES, TrainNoiseConfig

__all__ = ["FIELDS", "TrainNoiseResults", "compute_train_noise", "load_test_inputs"]

#: columns of ``results.csv``, in order
FIELDS: tuple[str, ...] = (
    "train", "explain", "train_noise", "explain_noise", "n_models", "n_inputs", "n_samples", "test_accuracy",
    "stability_mean", "stability_std", "stability_norm_mean", "stability_norm_std", "ssim_mean", "topk_iou_mean",
    "localization_mean", "localization_std", "mask_fraction", "config_hash",
)  # fmt: skip


@dataclass
class TrainNoiseResults:
    """What the grid and the tables are drawn from.

    Attributes:
        config: the run's settings.
        rows: the four cells (``FIELDS``), in the order plain/gradient, plain/smoothgrad,
            noisy/gradient, noisy/smoothgrad.
        shown: the inputs of the grid ``[n_show, C, H, W]``.
        grid_maps: ``(train, explain) -> [n_show, C, H, W]`` maps of each regime's first model.
        config_hash: the store's hash of the configuration.
    """

    config: TrainNoiseConfig
    rows: list[dict[str, Any]]
    shown: Tensor
    grid_maps: dict[tuple[str, str], np.ndarray]
    config_hash: str


def load_test_inputs(config: TrainNoiseConfig) -> tuple[Tensor, Tensor, Tensor]:
    """The fixed test inputs ``[N, C, H, W]``, their labels ``[N]`` and object masks ``[N, 1, H, W]``.

    ``N = config.n_inputs`` drawn without replacement from the synthetic test split with
    ``config.seed``. Raises ``ValueError`` when the split holds fewer than ``n_inputs`` images.
    """
    from smoothsal.studies.train import held_out_inputs

    sub = held_out_inputs("synthetic", config.train_config().image_size, config.n_inputs, config.seed)
    return sub.images, sub.labels, sub.masks


def _explainer(config: TrainNoiseConfig, explain: str) -> Callable[[torch.nn.Module], Any]:
    """``model -> method`` of one column: the gradient, or SmoothGrad (Smilkov et al. 2017, arXiv:1706.03825)."""
    smooth = config.smooth_kwargs() if explain == "smoothgrad" else None
    return lambda model: build_method("grad", model, smooth)


def _cell(
    config: TrainNoiseConfig,
    train: str,
    explain: str,
    trained: list[Any],
    inputs: Tensor,
    labels: Tensor,
    masks: Tensor,
    config_hash: str,
) -> dict[str, Any]:
    """One cell's row: stability across the regime's models and localization on the masks."""
    from smoothsal.metrics.localization import relevance_mass
    from smoothsal.metrics.tradeoff import attribution_maps, stability_from_maps

    from smoothsal.execution.devices import resolve_device

    make = _explainer(config, explain)
    device = resolve_device(config.device)  # the small models train on the CPU; they are explained here
    maps = [
        attribution_maps(make(t.model.to(device)), inputs, labels, batch_size=config.batch_size).cpu()
        for t in trained
    ]  # [models] × [N, C, H, W]
    stab = stability_from_maps(maps)
    mass = torch.stack([relevance_mass(m, masks, relevance="abs") for m in maps])  # [models, N]
    per_model = mass.mean(dim=1)  # [models]
    return {
        "train": train,
        "explain": explain,
        "train_noise": config.train_noise if train == "noisy" else 0.0,
        "explain_noise": config.explain_noise if explain == "smoothgrad" else 0.0,
        "n_models": config.n_models,
        "n_inputs": config.n_inputs,
        "n_samples": config.n_samples if explain == "smoothgrad" else 0,
        "test_accuracy": sum(float(t.test_accuracy) for t in trained) / len(trained),
        "stability_mean": stab.mean,
        "stability_std": stab.std,
        "stability_norm_mean": stab.mean_normalized,
        "stability_norm_std": stab.std_normalized,
        "ssim_mean": stab.ssim,
        "topk_iou_mean": stab.topk_iou,
        "localization_mean": float(per_model.mean()),
        "localization_std": float(per_model.std()),
        "mask_fraction": float(masks.float().mean()),
        "config_hash": config_hash,
    }


def compute_train_noise(config: TrainNoiseConfig) -> TrainNoiseResults:
    """Compute (or read back) the four cells and the grid's maps of ``config``."""
    from tqdm.auto import tqdm

    from smoothsal.studies.train import models_for_setting

    inputs, labels, masks = load_test_inputs(config)  # checked before the store is touched or a model trained
    store = ResultsStore(config.out_dir, "train_noise", config.to_hash(), fresh=config.fresh)
    show = min(config.n_show, config.n_inputs)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    grid_maps: dict[tuple[str, str], np.ndarray] = {}
    with tqdm(total=len(TRAIN_REGIMES) * len(EXPLAIN_REGIMES), desc="train-noise cells",
              disable=not config.progress) as bar:  # fmt: skip
        for train in TRAIN_REGIMES:
            models: list[Any] = []

            def trained(train: str = train, models: list[Any] = models) -> list[Any]:
                if not models:  # train or load only when a unit of this regime is missing
                    models.extend(models_for_setting(
                        "DT", dataset="synthetic", n_models=config.n_models, base=config.train_config(train),
                        cache_dir=config.cache_dir, progress=config.progress,
                    ))  # fmt: skip
                return models

            for explain in EXPLAIN_REGIMES:
                grid_unit = {"kind": "grid", "train": train, "explain": explain, "n_show": show}
                grid_maps[(train, explain)], _ = store.array(
                    grid_unit,
                    lambda e=explain: (
                        _explainer(config, e)(trained()[0].model).attribute(inputs[:show], labels[:show]),
                        {},
                    ),
                )
                rows[(train, explain)] = store.get_or_compute(
                    {"kind": "cell", "train": train, "explain": explain},
                    lambda t=train, e=explain: _cell(config, t, e, trained(), inputs, labels, masks, store.config_hash),
                )
                bar.update(1)
    order = [(t, e) for t in TRAIN_REGIMES for e in EXPLAIN_REGIMES]
    return TrainNoiseResults(config, [rows[k] for k in order], inputs[:show], grid_maps, store.config_hash)
