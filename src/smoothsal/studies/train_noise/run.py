"""``run_train_noise``: the study end to end (compute or resume, then figures and reports), for its command and for Python.

The study is described in :mod:`smoothsal.studies.train_noise`, which exports these names.
"""

from __future__ import annotations

from typing import Any

from smoothsal.studies.options import RunOptions
from smoothsal.studies.train_noise.compute import TrainNoiseRow, compute_train_noise
from smoothsal.studies.train_noise.config import DEFAULT_OUT, TrainNoiseConfig

__all__ = ["run_train_noise"]


def run_train_noise(
    config: TrainNoiseConfig | None = None, options: RunOptions | None = None, **settings: Any
) -> list[TrainNoiseRow]:
    """Run the 2 × 2: compute (or resume), write ``results.csv``, ``results.json`` and the grid.

    Args:
        config: the settings; ``None`` = :class:`TrainNoiseConfig` defaults (the full run; use
            ``TrainNoiseConfig.quick()`` for the quick preset).
        options: how it runs (output folder, device, batch size, memory budget, seed, progress
            bars); ``None`` = :class:`~smoothsal.studies.options.RunOptions` defaults (``out/train_noise``).
        settings: fields replacing those of ``config`` (keyword form: ``run_train_noise(n_models=2)``).
    Returns:
        the four rows (the ``results.csv`` columns): plain/gradient, plain/smoothgrad,
        noisy/gradient, noisy/smoothgrad.
    """
    from smoothsal.studies.train_noise import plots, report

    if config is None:
        config = TrainNoiseConfig(**settings)
    elif settings:
        config = config.replace(**settings)
    options = options if options is not None else RunOptions()
    results = compute_train_noise(config, options)
    out = options.out_dir(DEFAULT_OUT)
    report.write_csv(results, out / "results.csv")
    report.write_results_json(results, out / "results.json")
    plots.save_train_noise_grid(results, out / "train_noise_grid.png")
    return results.rows
