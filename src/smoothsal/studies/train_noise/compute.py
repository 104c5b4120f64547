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
from typing import TYPE_CHECKING, TypedDict, Union

import numpy as np
import torch
from torch import Tensor, nn

from smoothsal.methods.base import Attribution
from smoothsal.smoothing import Smooth
from smoothsal.studies.options import RunOptions
from smoothsal.studies.store import ResultsStore
from smoothsal.studies.train_noise.config import DEFAULT_OUT, EXPLAIN_REGIMES, TRAIN_REGIMES, TrainNoiseConfig

if TYPE_CHECKING:
    from smoothsal.studies.train import TrainedModel

__all__ = ["FIELDS", "TrainNoiseResults", "TrainNoiseRow", "compute_train_noise", "load_test_inputs"]


class TrainNoiseRow(TypedDict):
    """One cell of the 2 × 2: a row of ``results.csv``, in column order."""

    train: str
    explain: str
    train_noise: float
    explain_noise: float
    n_models: int
    n_inputs: int
    n_samples: int
    test_accuracy: float
    stability_mean: float
    stability_std: float
    stability_norm_mean: float
    stability_norm_std: float
    ssim_mean: float
    topk_iou_mean: float
    localization_mean: float
    localization_std: float
    mask_fraction: float
    config_hash: str


#: columns of ``results.csv``, in order
FIELDS: tuple[str, ...] = tuple(TrainNoiseRow.__annotations__)


@dataclass
class TrainNoiseResults:
    """What the grid and the tables are drawn from.

    Attributes:
        config: the run's settings. options: how it ran.
        rows: the four cells (``FIELDS``), in the order plain/gradient, plain/smoothgrad,
            noisy/gradient, noisy/smoothgrad.
        shown: the inputs of the grid ``[n_show, C, H, W]``.
        grid_maps: ``(train, explain) -> [n_show, C, H, W]`` maps of each regime's first model.
        config_hash: the store's hash of the configuration.
    """

    config: TrainNoiseConfig
    options: RunOptions
    rows: list[TrainNoiseRow]
    shown: Tensor
    grid_maps: dict[tuple[str, str], np.ndarray]
    config_hash: str


def load_test_inputs(config: TrainNoiseConfig, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """The fixed test inputs ``[N, C, H, W]``, their labels ``[N]`` and object masks ``[N, 1, H, W]``.

    ``N = config.n_inputs`` drawn without replacement from the synthetic test split with
    ``seed`` (the run's). Raises ``ValueError`` when the split holds fewer than ``n_inputs`` images.
    """
    from smoothsal.studies.train import held_out_inputs

    sub = held_out_inputs("synthetic", config.train_config().image_size, config.n_inputs, seed)
    return sub.images, sub.labels, sub.masks


def _explainer(
    config: TrainNoiseConfig, options: RunOptions, explain: str
) -> Callable[[nn.Module], Union[Attribution, Smooth]]:
    """``model -> method`` of one column: the gradient, or SmoothGrad (Smilkov et al. 2017, arXiv:1706.03825)."""
    smooth = config.smooth_spec(options.seed) if explain == "smoothgrad" else None
    return options.method_factory("grad", smooth)


def _cell(
    results: TrainNoiseResults,
    train: str,
    explain: str,
    trained: list[TrainedModel],
    inputs: Tensor,
    labels: Tensor,
    masks: Tensor,
) -> TrainNoiseRow:
    """One cell's row: stability across the regime's models and localization on the masks."""
    from smoothsal.metrics.localization import relevance_mass
    from smoothsal.metrics.tradeoff import stability_from_maps

    config, options = results.config, results.options
    make = _explainer(config, options, explain)
    device = options.torch_device()  # the small models train on the CPU; they are explained here
    maps = [
        options.attribution_maps(make(t.model.to(device)), inputs, labels).cpu()
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
        "config_hash": results.config_hash,
    }


def compute_train_noise(config: TrainNoiseConfig, options: RunOptions | None = None) -> TrainNoiseResults:
    """Compute (or read back) the four cells and the grid's maps of ``config``, run as ``options`` say
    (default :class:`~smoothsal.studies.options.RunOptions`: ``out/train_noise``)."""
    from tqdm.auto import tqdm

    from smoothsal.studies.train import models_for_setting

    options = options if options is not None else RunOptions()
    inputs, labels, masks = load_test_inputs(config, options.seed)  # checked before the store is touched or a model trained
    store = ResultsStore(options.out_dir(DEFAULT_OUT), "train_noise", config.to_hash(options.seed), fresh=options.fresh)
    show = min(config.n_show, config.n_inputs)
    results = TrainNoiseResults(config, options, [], inputs[:show], {}, store.config_hash)
    rows: dict[tuple[str, str], TrainNoiseRow] = {}
    with tqdm(total=len(TRAIN_REGIMES) * len(EXPLAIN_REGIMES), desc="train-noise cells",
              disable=not options.progress) as bar:  # fmt: skip
        for train in TRAIN_REGIMES:
            models: list[TrainedModel] = []

            def trained(train: str = train, models: list[TrainedModel] = models) -> list[TrainedModel]:
                if not models:  # train or load only when a unit of this regime is missing
                    models.extend(models_for_setting(
                        "DT", dataset="synthetic", n_models=config.n_models, base=config.train_config(train),
                        cache_dir=config.cache_dir, progress=options.progress,
                    ))  # fmt: skip
                return models

            for explain in EXPLAIN_REGIMES:
                grid_unit = {"kind": "grid", "train": train, "explain": explain, "n_show": show}
                results.grid_maps[(train, explain)], _ = store.array(
                    grid_unit,
                    lambda e=explain: (
                        _explainer(config, options, e)(trained()[0].model).attribute(inputs[:show], labels[:show]),
                        {},
                    ),
                )
                rows[(train, explain)] = store.get_or_compute(  # type: ignore[assignment]
                    {"kind": "cell", "train": train, "explain": explain},
                    lambda t=train, e=explain: _cell(results, t, e, trained(), inputs, labels, masks),
                )
                bar.update(1)
    results.rows = [rows[(t, e)] for t in TRAIN_REGIMES for e in EXPLAIN_REGIMES]
    return results
