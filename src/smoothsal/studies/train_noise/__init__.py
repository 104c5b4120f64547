r"""Noise at training time × noise at explanation time (SmoothGrad paper, Smilkov et al. 2017, Figs. 8–9).

The SmoothGrad paper (arXiv:1706.03825, §4.2) trains a network with input-noise augmentation
(:math:`\min_\theta \mathbb E_{\epsilon\sim\mathcal N(0,\sigma_{train}^2)} \ell(f_\theta(x+\epsilon), y)`)
and finds that it also sharpens the gradient maps, and that SmoothGrad at explanation time
(:math:`\hat M(x) = \frac1n\sum_j M(x + \epsilon_j)`) adds to it. We measure the 2 × 2 on the
synthetic shapes dataset, whose object masks are known:

=================  ==========================  ==========================
                   explain: gradient           explain: SmoothGrad
=================  ==========================  ==========================
train: plain       cell 1                      cell 2
train: noisy       cell 3                      cell 4
=================  ==========================  ==========================

For each cell: the stability error across models trained on **disjoint** parts of the training
set (Ye & Farnia 2025, arXiv:2411.05837, eq. 12: DT pairs, raw and norm-scaled, with SSIM and
top-k IoU), and localization against the ground-truth masks (see
:mod:`~smoothsal.studies.train_noise.compute`). Writes ``results.csv`` and ``results.json`` (one
row per cell), and ``train_noise_grid.png`` into the run's output folder (``RunOptions.out``), where the results store lets an
interrupted run resume.

Example:
    >>> from smoothsal.studies.train_noise import TrainNoiseConfig, run_train_noise
    >>> from smoothsal.studies.options import RunOptions
    >>> rows = run_train_noise(TrainNoiseConfig.quick(), RunOptions(out="out/train_noise"))  # doctest: +SKIP
"""

from smoothsal.studies.train_noise.command import register_cli
from smoothsal.studies.train_noise.compute import TrainNoiseResults, compute_train_noise
from smoothsal.studies.train_noise.config import QUICK, TrainNoiseConfig
from smoothsal.studies.train_noise.run import run_train_noise

__all__ = ["QUICK", "TrainNoiseConfig", "TrainNoiseResults", "compute_train_noise", "register_cli", "run_train_noise"]
