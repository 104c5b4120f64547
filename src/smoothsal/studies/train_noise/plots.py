"""``train_noise_grid.png``: the 2 × 2 of the SmoothGrad paper's Figs. 8–9, drawn from results only.

Rows: the shown test inputs; columns: the input, then the maps of each cell (train plain/noisy ×
explain gradient/SmoothGrad) of each regime's first model, as |map| capped at the 99th percentile
(Smilkov et al. 2017, arXiv:1706.03825, §3.1).
"""

from __future__ import annotations

from pathlib import Path

from smoothsal.render import render_map, save_grid
from smoothsal.studies.train_noise.compute import TrainNoiseResults
from smoothsal.studies.train_noise.config import EXPLAIN_REGIMES, TRAIN_REGIMES

__all__ = ["save_train_noise_grid"]


def save_train_noise_grid(results: TrainNoiseResults, path: Path) -> Path:
    """Write ``train_noise_grid.png``; returns ``path``."""
    config = results.config
    order = [(t, e) for t in TRAIN_REGIMES for e in EXPLAIN_REGIMES]
    images = results.shown  # [n_show, C, H, W]
    cells = [
        [images[i].permute(1, 2, 0).clamp(0, 1).numpy()]  # [H, W, C]
        + [render_map(results.grid_maps[k][i], style="abs") for k in order]
        for i in range(images.shape[0])
    ]
    names = {
        "plain": "train plain",
        "noisy": f"train σ={config.train_noise:g}",
        "gradient": "gradient",
        "smoothgrad": f"SmoothGrad σ={config.explain_noise:g}",
    }
    labels = ["input"] + [f"{names[t]}\n{names[e]}" for t, e in order]
    return save_grid(cells, path, col_labels=labels, title="Training noise × SmoothGrad (SmoothGrad paper Figs. 8–9)")
