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
set (the stability seed's eq. 12, DT pairs, raw and norm-scaled, with SSIM and top-k IoU), and
localization against the ground-truth masks — the share of :math:`|map|` mass on the object
(:func:`smoothsal.metrics.localization.relevance_mass` with ``relevance="abs"``; chance level ≈
the object's area fraction) — averaged over the models and the fixed test inputs, whose true
labels are the targets. Writes ``results.csv`` (one row per cell, resumable), ``results.json``
and ``train_noise_grid.png`` (rows: test inputs; columns: the input and the four cells for the
first model).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor

from smoothsal._validation import check_nonnegative, check_positive_int
from smoothsal.experiments._results import ResultsFile, config_hash as hash_config, write_json
from smoothsal.metrics.tradeoff import attribution_maps, stability_from_maps

__all__ = ["register_cli", "run_train_noise"]

QUICK = {"n_inputs": 24, "n_samples": 16, "n_models": 2, "epochs": 4}
FULL = {"n_inputs": 128, "n_samples": 50, "n_models": 3, "epochs": None}
TRAIN_REGIMES = ("plain", "noisy")
EXPLAIN_REGIMES = ("gradient", "smoothgrad")
FIELDS = (
    "train", "explain", "train_noise", "explain_noise", "n_models", "n_inputs", "n_samples", "test_accuracy",
    "stability_mean", "stability_std", "stability_norm_mean", "stability_norm_std", "ssim_mean", "topk_iou_mean",
    "localization_mean", "localization_std", "mask_fraction", "config_hash",
)  # fmt: skip
_STR = ("train", "explain", "config_hash")
_INT = ("n_models", "n_inputs", "n_samples")


def _explainer(model: Any, explain: str, explain_noise: float, n_samples: int, seed: int) -> Any:
    from smoothsal.methods.gradient import VanillaGradient

    if explain == "gradient":
        return VanillaGradient(model)
    from smoothsal.smoothing import Smooth

    return Smooth(VanillaGradient(model), noise_level=explain_noise, n_samples=n_samples, seed=seed, batch_size=256)


def run_train_noise(
    out_dir: str | Path,
    quick: bool = False,
    train_noise: float = 0.2,
    explain_noise: float = 0.15,
    n_inputs: int | None = None,
    n_samples: int | None = None,
    n_models: int | None = None,
    base: Any = None,
    seed: int = 0,
    n_show: int = 4,
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    fresh: bool = False,
) -> list[dict[str, Any]]:
    """Run the 2 × 2 (train with/without input noise) × (explain with/without SmoothGrad).

    Args:
        out_dir: folder for ``results.csv``, ``results.json``, ``train_noise_grid.png``.
        quick: small defaults (:data:`QUICK`) that finish in a few minutes on 2 CPU cores.
        train_noise: σ_train of the noisy regime (fraction of the input range).
        explain_noise: SmoothGrad's noise level.
        n_inputs, n_samples, n_models: test inputs, noisy samples, models per regime (trained on
            disjoint parts of the training set; >= 2).
        base: the :class:`smoothsal.train.TrainConfig` to start from (dataset is forced to
            ``"synthetic"``; ``input_noise`` is set per regime).
        seed: picks the test inputs and seeds SmoothGrad. n_show: inputs shown in the grid.
        batch_size: inputs per method call. cache_dir: trained-model cache.
        progress: progress bars. fresh: discard an existing ``results.csv``.
    Returns:
        the four rows (dicts with the CSV columns).
    """
    from tqdm.auto import tqdm

    from smoothsal.metrics.localization import relevance_mass
    from smoothsal.train import TrainConfig, load_split, models_for_setting

    defaults = QUICK if quick else FULL
    train_noise = check_nonnegative(train_noise, "train_noise")
    explain_noise = check_nonnegative(explain_noise, "explain_noise")
    if train_noise == 0 or explain_noise == 0:
        raise ValueError(
            f"`train_noise` and `explain_noise` must be > 0 (the noisy regimes), got {train_noise} and {explain_noise}"
        )
    n_inputs = check_positive_int(n_inputs if n_inputs is not None else defaults["n_inputs"], "n_inputs")
    n_samples = check_positive_int(n_samples if n_samples is not None else defaults["n_samples"], "n_samples")
    n_models = check_positive_int(n_models if n_models is not None else defaults["n_models"], "n_models", minimum=2)
    n_show = check_positive_int(n_show, "n_show")
    if base is None:
        base = TrainConfig(dataset="synthetic")
        if defaults["epochs"] is not None:
            base = dataclasses.replace(base, epochs=defaults["epochs"])
    base = dataclasses.replace(base, dataset="synthetic", input_noise=0.0)
    config = {
        "train_noise": train_noise,
        "explain_noise": explain_noise,
        "n_inputs": n_inputs,
        "n_samples": n_samples,
        "n_models": n_models,
        "seed": seed,
        "base": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(base).items()},
    }
    config_hash = hash_config(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = ResultsFile(out / "results.csv", FIELDS, "run_train_noise", str_fields=_STR, int_fields=_INT)
    existing = results.load(config_hash, fresh=fresh)
    done = {(r["train"], r["explain"]): r for r in existing}

    _, test = load_split("synthetic", image_size=base.image_size)
    if n_inputs > len(test):
        raise ValueError(f"`n_inputs` must be <= {len(test)} (the synthetic test split), got {n_inputs}")
    idx = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:n_inputs]
    sub = test.subset(idx)
    inputs, labels, masks = sub.images, sub.labels, sub.masks  # [N, C, H, W], [N], [N, 1, H, W]
    show = min(n_show, n_inputs)
    grid_maps: dict[tuple[str, str], Tensor] = {}
    with tqdm(total=4, desc="train-noise cells", disable=not progress) as bar:
        for train in TRAIN_REGIMES:
            cfg = dataclasses.replace(base, input_noise=train_noise if train == "noisy" else 0.0)
            trained = models_for_setting(
                "DT", dataset="synthetic", n_models=n_models, base=cfg, cache_dir=cache_dir, progress=progress
            )
            accuracy = sum(float(t.test_accuracy) for t in trained) / len(trained)
            for explain in EXPLAIN_REGIMES:
                explainers = [_explainer(t.model, explain, explain_noise, n_samples, seed) for t in trained]
                grid_maps[(train, explain)] = explainers[0].attribute(inputs[:show], labels[:show])
                if (train, explain) in done:
                    bar.update(1)
                    continue
                maps = [attribution_maps(e, inputs, labels, batch_size) for e in explainers]
                stab = stability_from_maps(maps)
                mass = torch.stack([relevance_mass(m, masks, relevance="abs") for m in maps])  # [models, N]
                per_model = mass.mean(dim=1)  # [models]
                row = {
                    "train": train,
                    "explain": explain,
                    "train_noise": train_noise if train == "noisy" else 0.0,
                    "explain_noise": explain_noise if explain == "smoothgrad" else 0.0,
                    "n_models": n_models,
                    "n_inputs": n_inputs,
                    "n_samples": n_samples if explain == "smoothgrad" else 0,
                    "test_accuracy": accuracy,
                    "stability_mean": stab.mean,
                    "stability_std": stab.std,
                    "stability_norm_mean": stab.mean_normalized,
                    "stability_norm_std": stab.std_normalized,
                    "ssim_mean": stab.ssim,
                    "topk_iou_mean": stab.topk_iou,
                    "localization_mean": float(per_model.mean()),
                    "localization_std": float(per_model.std()) if n_models > 1 else 0.0,
                    "mask_fraction": float(masks.float().mean()),
                    "config_hash": config_hash,
                }
                results.append(row)
                done[(train, explain)] = row
                bar.update(1)

    rows = [done[(t, e)] for t in TRAIN_REGIMES for e in EXPLAIN_REGIMES]
    write_json(out / "results.json", {"config": config, "rows": rows})
    _save_grid(out / "train_noise_grid.png", inputs[:show], grid_maps, train_noise, explain_noise)
    return rows


def _save_grid(
    path: Path, images: Tensor, maps: dict[tuple[str, str], Tensor], train_noise: float, explain_noise: float
) -> Path:
    from smoothsal.render import render_map, save_grid

    order = [(t, e) for t in TRAIN_REGIMES for e in EXPLAIN_REGIMES]
    cells = [
        [images[i].permute(1, 2, 0).clamp(0, 1).numpy()] + [render_map(maps[k][i].numpy(), style="abs") for k in order]
        for i in range(images.shape[0])
    ]
    names = {
        "plain": "train plain",
        "noisy": f"train σ={train_noise:g}",
        "gradient": "gradient",
        "smoothgrad": f"SmoothGrad σ={explain_noise:g}",
    }
    labels = ["input"] + [f"{names[t]}\n{names[e]}" for t, e in order]
    return save_grid(cells, path, col_labels=labels, title="Training noise × SmoothGrad (SmoothGrad paper Figs. 8–9)")


def register_cli(app: Any) -> None:
    """Add ``smoothsal train-noise`` to a :class:`typer.Typer` app."""
    import typer

    @app.command("train-noise")
    def train_noise_command(
        quick: bool = typer.Option(False, "--quick", help="Small run: a few minutes on 2 CPU cores."),
        out: Path = typer.Option(Path("out/train_noise"), "--out", help="Output folder (results resume from it)."),
        train_noise: float = typer.Option(0.2, "--train-noise", help="σ_train of the noisy training regime."),
        explain_noise: float = typer.Option(0.15, "--explain-noise", help="SmoothGrad noise level."),
        samples: Optional[int] = typer.Option(None, "--samples", help="SmoothGrad samples."),
        inputs: Optional[int] = typer.Option(None, "--inputs", help="Test inputs explained."),
        models: Optional[int] = typer.Option(None, "--models", help="Models per regime, on disjoint splits (>= 2)."),
        epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs of every model."),
        fresh: bool = typer.Option(False, "--fresh", help="Discard the results file in --out."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    ) -> None:
        """Train with/without input noise x explain with/without SmoothGrad (SmoothGrad paper Figs. 8-9)."""
        base = None
        if epochs is not None:
            from smoothsal.train import TrainConfig

            base = TrainConfig(dataset="synthetic", epochs=epochs)
        try:
            rows = run_train_noise(
                out,
                quick=quick,
                train_noise=train_noise,
                explain_noise=explain_noise,
                n_inputs=inputs,
                n_samples=samples,
                n_models=models,
                base=base,
                progress=not no_progress,
                fresh=fresh,
            )
        except ValueError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err
        typer.echo(f"wrote results.csv, results.json, train_noise_grid.png to {out}")
        typer.echo("train  explain     stability(norm)  localization  SSIM   top-k IoU")
        for r in rows:
            typer.echo(
                f"{r['train']:<6} {r['explain']:<11} {r['stability_norm_mean']:.3f} ± {r['stability_norm_std']:.3f}"
                f"    {r['localization_mean']:.3f}         {r['ssim_mean']:.3f}  {r['topk_iou_mean']:.3f}"
            )
