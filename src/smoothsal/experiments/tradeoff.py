r"""The stability–fidelity trade-off of Gaussian smoothing: the seed's Table 1 and Figs. 2–5.

For each setting of the seed's Table 1 (DT: disjoint training sets, DR: different training
recipes, DA: different architectures) we train ``n_models`` classifiers
(:func:`smoothsal.train.models_for_setting`), fix a seeded set of test inputs with their **true**
labels as targets, and for each method (Simple-Grad, Integrated-Grad, Grad-CAM, Grad-CAM++) and
each noise level σ of the grid measure

* the stability error (eq. 12) :math:`\operatorname{mean}_{i<j} \mathbb E_x\lVert \tilde S_i(x) - \tilde S_j(x)\rVert_2`
  with its std over model pairs, raw and norm-scaled, and SSIM / top-k IoU / Spearman / cosine
  between the models' maps;
* the fidelity error (eq. 13) :math:`\mathbb E_x\lVert \tilde S_i(x) - S_i(x)\rVert_2` pooled over
  the models and inputs (std over them), raw and norm-scaled;

where :math:`\tilde S = \mathrm{Smooth}_\sigma(S)` and σ = 0 is the unsmoothed method. Every
finished (setting, method, σ) row is appended to ``results.csv`` at once, so an interrupted run
resumes where it stopped. At the end it writes ``results.json``, ``stability_vs_sigma.png``,
``fidelity_vs_sigma.png``, ``pareto.png``, ``table1.md`` (Table 1 layout at σ = 0.15) and
``recommendation.json`` (:func:`~smoothsal.metrics.tradeoff.recommend_noise_level` on the
norm-scaled errors, per curve and over all curves).
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor, nn

from smoothsal._validation import check_choice, check_positive_int
from smoothsal.experiments._results import ResultsFile, config_hash as hash_config, write_json
from smoothsal.metrics.tradeoff import (
    Recommendation,
    attribution_maps,
    check_noise_grid,
    fidelity_from_maps,
    recommend_noise_level,
    stability_from_maps,
)

__all__ = ["METHODS", "SETTINGS", "TradeoffRun", "method_factory", "register_cli", "run_tradeoff"]

#: method key -> display name (the seed's Table 1 names)
METHODS: dict[str, str] = {
    "grad": "Simple-Grad",
    "ig": "Integrated-Grad",
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
}
SETTINGS: dict[str, str] = {
    "DT": "different training sets",
    "DR": "different training recipes",
    "DA": "different architectures",
}
DATASETS = ("digits", "synthetic", "photos")
#: the pretrained models compared on ``dataset="photos"`` (setting DA: same data, other architectures)
PHOTO_MODELS = ("lite0", "lite1", "lite2")
FULL_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
QUICK_GRID = (0.0, 0.05, 0.15, 0.3)
#: quick / full defaults: inputs explained, noisy samples, models per setting, IG steps
QUICK = {"n_inputs": 20, "n_samples": 10, "n_models": 3, "ig_steps": 8, "epochs": 2}
FULL = {"n_inputs": 128, "n_samples": 64, "n_models": 3, "ig_steps": 16, "epochs": None}

FIELDS = (
    "setting", "method", "noise_level", "n_models", "n_pairs", "n_inputs", "n_samples",
    "stability_mean", "stability_std", "stability_norm_mean", "stability_norm_std",
    "fidelity_mean", "fidelity_std", "fidelity_norm_mean", "fidelity_norm_std",
    "ssim_mean", "ssim_std", "topk_iou_mean", "topk_iou_std", "spearman_mean", "cosine_mean",
    "pair_stability", "pair_stability_norm", "pair_ssim", "pair_topk_iou", "models", "config_hash",
)  # fmt: skip
_LIST_FIELDS = ("pair_stability", "pair_stability_norm", "pair_ssim", "pair_topk_iou")
_INT_FIELDS = ("n_models", "n_pairs", "n_inputs", "n_samples")
_STR_FIELDS = ("setting", "method", "models", "config_hash")


@dataclass
class TradeoffRun:
    """What :func:`run_tradeoff` produced.

    Attributes:
        rows: one dict per (setting, method, σ) of the requested grid (the CSV columns, numbers parsed).
        recommendation: the σ recommended over all curves.
        recommendations: ``{"DT/grad": Recommendation, ...}``, one per curve.
        paths: output name -> file.
        computed: rows computed by this call (the others were read back from ``results.csv``).
    """

    rows: list[dict[str, Any]]
    recommendation: Recommendation
    recommendations: dict[str, Recommendation]
    paths: dict[str, Path]
    computed: int


# ---- methods ----------------------------------------------------------------------------------
def method_factory(name: str, ig_steps: int = 16) -> Callable[[nn.Module], Any]:
    """``model -> attribution method`` for a method key of :data:`METHODS` (built by the registry)."""
    from smoothsal.methods.registry import build_method

    check_choice(name, "method", tuple(METHODS))
    kwargs = {"steps": ig_steps} if name == "ig" else {}
    return lambda model: build_method(name, model, **kwargs)


def _has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _key(setting: str, method: str, sigma: float) -> tuple[str, str, float]:
    return setting, method, round(float(sigma), 10)


# ---- one row --------------------------------------------------------------------------------------
def _row(
    setting: str,
    method: str,
    sigma: float,
    raw: list[Tensor],
    smoothed: list[Tensor],
    names: list[str],
    n_samples: int,
    config_hash: str,
) -> dict[str, Any]:
    stab = stability_from_maps(smoothed)
    fid = fidelity_from_maps(torch.cat(smoothed), torch.cat(raw))  # pooled over models x inputs
    return {
        "setting": setting,
        "method": method,
        "noise_level": float(sigma),
        "n_models": len(raw),
        "n_pairs": len(stab.pairs),
        "n_inputs": stab.n_inputs,
        "n_samples": n_samples if sigma > 0 else 0,
        "stability_mean": stab.mean,
        "stability_std": stab.std,
        "stability_norm_mean": stab.mean_normalized,
        "stability_norm_std": stab.std_normalized,
        "fidelity_mean": fid.mean,
        "fidelity_std": fid.std,
        "fidelity_norm_mean": fid.mean_normalized,
        "fidelity_norm_std": fid.std_normalized,
        "ssim_mean": stab.ssim,
        "ssim_std": stab.ssim_std,
        "topk_iou_mean": stab.topk_iou,
        "topk_iou_std": stab.topk_iou_std,
        "spearman_mean": stab.spearman,
        "cosine_mean": stab.cosine,
        "pair_stability": stab.pair_errors.tolist(),
        "pair_stability_norm": stab.pair_errors_normalized.tolist(),
        "pair_ssim": stab.pair_ssim.tolist(),
        "pair_topk_iou": stab.pair_topk_iou.tolist(),
        "models": "+".join(names),
        "config_hash": config_hash,
    }


# ---- the experiment ----------------------------------------------------------------------------------
@dataclass
class _Pretrained:
    """A zoo model in the place of a :class:`~smoothsal.train.TrainedModel` (no test split here)."""

    name: str
    model: nn.Module
    test_accuracy: float = float("nan")


def _pretrained_models() -> list[_Pretrained]:
    from smoothsal.zoo import efficientnet_lite

    return [_Pretrained(name, efficientnet_lite(name)) for name in PHOTO_MODELS]


def _photo_inputs(n_inputs: int) -> tuple[Tensor, Tensor]:
    """The bundled photos at 224² (every Lite variant takes them) and Lite0's top-1 classes."""
    from smoothsal.datasets.photos import BUNDLED, bundled_photos
    from smoothsal.zoo import efficientnet_lite0

    if n_inputs > len(BUNDLED):
        raise ValueError(f"`n_inputs` must be <= {len(BUNDLED)} (the bundled photos), got {n_inputs}")
    x = torch.cat([p.tensor for p in bundled_photos(list(BUNDLED)[:n_inputs])])
    with torch.no_grad():
        labels = efficientnet_lite0()(x).argmax(dim=1)
    return x, labels


def _fixed_inputs(dataset: str, image_size: int, n_inputs: int, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded subset of the test split: images ``[N, C, S, S]`` and their true labels ``[N]``."""
    from smoothsal.train import load_split

    if dataset == "photos":
        return _photo_inputs(n_inputs)

    _, test = load_split(dataset, image_size=image_size)
    if n_inputs > len(test):
        raise ValueError(f"`n_inputs` must be <= {len(test)} (the {dataset} test split), got {n_inputs}")
    idx = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:n_inputs]
    sub = test.subset(idx)
    return sub.images, sub.labels


def _model_name(trained: Any, index: int) -> str:
    if isinstance(trained, _Pretrained):
        return f"m{index}:{trained.name}"
    cfg = trained.config
    parts = [cfg.arch, cfg.optimizer, f"lr{cfg.lr:g}", f"seed{cfg.seed}"]
    if cfg.augment:
        parts.append("aug")
    if cfg.split is not None:
        parts.append(f"part{cfg.split[0]}of{cfg.split[1]}")
    return f"m{index}:" + "-".join(parts)


def run_tradeoff(
    out_dir: str | Path,
    quick: bool = False,
    methods: Sequence[str] = ("grad", "ig", "gradcam", "gradcam++"),
    noise_levels: Sequence[float] | None = None,
    settings: Sequence[str] = ("DT", "DR", "DA"),
    dataset: str = "digits",
    n_inputs: int | None = None,
    n_samples: int | None = None,
    n_models: int | None = None,
    ig_steps: int | None = None,
    base: Any = None,
    seed: int = 0,
    table_noise_level: float = 0.15,
    stability_target: float | None = None,
    fidelity_bound: float | None = None,
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    fresh: bool = False,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> TradeoffRun:
    """Run the stability–fidelity experiment and write its results into ``out_dir``.

    Args:
        out_dir: folder for ``results.csv``/``.json``, the plots, ``table1.md`` and ``recommendation.json``.
        quick: small defaults that finish in minutes on 2 CPU cores, training included
            (:data:`QUICK`, σ grid :data:`QUICK_GRID`); otherwise :data:`FULL` and :data:`FULL_GRID`.
        methods: keys of :data:`METHODS`. noise_levels: the σ grid (fractions of the input range;
            0 = unsmoothed). settings: keys of :data:`SETTINGS`. dataset: ``"digits"`` or ``"synthetic"``.
        n_inputs, n_samples, n_models, ig_steps: override the quick/full defaults.
        base: the :class:`smoothsal.train.TrainConfig` each setting varies (default: the dataset's
            default config, with ``epochs`` shortened in quick mode).
        seed: selects the test inputs and seeds the smoothing noise (the same noise for every model:
            common random numbers).
        table_noise_level: σ of ``table1.md``'s "smoothed" columns (the seed's 0.15).
        stability_target, fidelity_bound: recommendation rules, in norm-scaled units.
        batch_size: inputs per method call. cache_dir: where trained models are cached.
        progress: show progress bars. fresh: discard an existing ``results.csv``.
        on_row: called with each newly computed row after it was saved.
    Returns:
        :class:`TradeoffRun`.
    """
    from smoothsal.train import TrainConfig, models_for_setting

    check_choice(dataset, "dataset", DATASETS)
    methods = [check_choice(m, "methods", tuple(METHODS)) for m in methods]
    settings = [check_choice(s, "settings", tuple(SETTINGS)) for s in settings]
    if not methods or not settings:
        raise ValueError(f"`methods` and `settings` must not be empty, got {methods} and {settings}")
    if dataset == "photos":
        if settings != ["DA"]:
            raise ValueError(
                f"`settings` must be ['DA'] for dataset 'photos' (pretrained EfficientNet-Lite0/1/2: one training "
                f"set, three architectures), got {settings}"
            )
        n_inputs = n_inputs if n_inputs is not None else 4
    defaults = QUICK if quick else FULL
    if noise_levels is None:
        noise_levels = QUICK_GRID if quick else FULL_GRID
    grid = sorted(check_noise_grid(noise_levels))
    n_inputs = check_positive_int(n_inputs if n_inputs is not None else defaults["n_inputs"], "n_inputs")
    n_samples = check_positive_int(n_samples if n_samples is not None else defaults["n_samples"], "n_samples")
    n_models = check_positive_int(n_models if n_models is not None else defaults["n_models"], "n_models", minimum=2)
    ig_steps = check_positive_int(ig_steps if ig_steps is not None else defaults["ig_steps"], "ig_steps", minimum=2)
    check_positive_int(batch_size, "batch_size")
    trains = dataset != "photos"  # photos compare pretrained models: nothing is trained
    if base is None:
        base = TrainConfig(dataset=dataset) if trains else TrainConfig()
        if defaults["epochs"] is not None:
            base = dataclasses.replace(base, epochs=defaults["epochs"])
    elif trains and base.dataset != dataset:
        base = dataclasses.replace(base, dataset=dataset)

    config = {
        "dataset": dataset,
        "n_inputs": n_inputs,
        "n_samples": n_samples,
        "n_models": n_models,
        "ig_steps": ig_steps,
        "seed": seed,
        "base": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(base).items()},
    }
    config_hash = hash_config(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = ResultsFile(out / "results.csv", FIELDS, "run_tradeoff", str_fields=_STR_FIELDS,
                          int_fields=_INT_FIELDS, list_fields=_LIST_FIELDS)  # fmt: skip
    existing = results.load(config_hash, fresh=fresh)
    done = {_key(r["setting"], r["method"], r["noise_level"]): r for r in existing}
    wanted = [(s, m, g) for s in settings for m in methods for g in grid]
    pending = [w for w in wanted if _key(*w) not in done]

    models_path = out / "models.json"
    model_info: dict[str, Any] = json.loads(models_path.read_text()) if models_path.exists() else {}
    inputs, labels = _fixed_inputs(dataset, base.image_size, n_inputs, seed)
    computed = 0
    run_args = {"n_samples": n_samples, "ig_steps": ig_steps, "seed": seed, "batch_size": batch_size}
    run_args["config_hash"] = config_hash
    from tqdm.auto import tqdm

    with tqdm(total=len(pending), desc="tradeoff rows", disable=not progress) as bar:
        for setting in settings:
            todo = [w for w in pending if w[0] == setting]
            if not todo and setting in model_info:
                continue
            if dataset == "photos":
                trained = _pretrained_models()
            else:
                trained = models_for_setting(
                    setting, dataset=dataset, n_models=n_models, base=base, cache_dir=cache_dir, progress=progress
                )
            names = [_model_name(t, i) for i, t in enumerate(trained)]
            model_info[setting] = [
                {"name": n, "test_accuracy": float(t.test_accuracy),
                 "config": dataclasses.asdict(t.config) if hasattr(t, "config") else "ImageNet-pretrained"}
                for n, t in zip(names, trained)
            ]  # fmt: skip
            write_json(models_path, model_info)
            for method in methods:
                rows_left = [w[2] for w in todo if w[1] == method]
                if not rows_left:
                    continue
                produced = 0
                for row in _method_rows(setting, method, rows_left, trained, names, inputs, labels, run_args):
                    done[_key(setting, method, row["noise_level"])] = results.append(row)
                    computed, produced = computed + 1, produced + 1
                    bar.update(1)
                    if on_row is not None:
                        on_row(row)
                bar.update(len(rows_left) - produced)  # rows `_method_rows` had to skip

    rows = [done[_key(*w)] for w in wanted if _key(*w) in done]
    overall, per_curve = _recommend(rows, grid, stability_target, fidelity_bound)
    paths = _write_outputs(out, rows, config, model_info, grid, methods, settings, table_noise_level, overall, per_curve)
    return TradeoffRun(rows, overall, per_curve, paths, computed)


def _method_rows(
    setting: str,
    method: str,
    sigmas: list[float],
    trained: list[Any],
    names: list[str],
    inputs: Tensor,
    labels: Tensor,
    args: dict[str, Any],
) -> Iterator[dict[str, Any]]:
    """Rows of one (setting, method) for ``sigmas``; the unsmoothed maps are computed once.

    CAM methods need a conv layer: models without one (the MLP of DA) are left out of their pairs,
    and the rows are skipped (with a warning) if fewer than two models remain.
    """
    from smoothsal.smoothing import Smooth

    chosen = [i for i, t in enumerate(trained) if method in ("grad", "ig") or _has_conv(t.model)]
    if len(chosen) < 2:
        warnings.warn(
            f"{setting}/{method}: fewer than 2 models have a conv layer; rows skipped", UserWarning, stacklevel=3
        )
        return
    models = [trained[i].model for i in chosen]
    factory = method_factory(method, args["ig_steps"])
    batch = args["batch_size"]
    raw = [attribution_maps(factory(m), inputs, labels, batch) for m in models]  # each [N, C or 1, H, W]
    for sigma in sigmas:
        smoothed = raw
        if sigma > 0:
            smoothers = [
                Smooth(factory(m), noise_level=sigma, n_samples=args["n_samples"], seed=args["seed"], batch_size=256)
                for m in models
            ]
            smoothed = [attribution_maps(sm, inputs, labels, batch) for sm in smoothers]
        model_names = [names[i] for i in chosen]
        yield _row(setting, method, sigma, raw, smoothed, model_names, args["n_samples"], args["config_hash"])


# ---- recommendation ---------------------------------------------------------------------------------
def _recommend(
    rows: list[dict[str, Any]], grid: list[float], stability_target: float | None, fidelity_bound: float | None
) -> tuple[Recommendation, dict[str, Recommendation]]:
    """Per curve (setting/method) and overall (mean over curves) on the norm-scaled errors."""
    curves: dict[str, dict[float, dict[str, Any]]] = {}
    for r in rows:
        curves.setdefault(f"{r['setting']}/{r['method']}", {})[r["noise_level"]] = r
    complete = {k: v for k, v in curves.items() if all(g in v for g in grid)}
    if not complete or len(grid) < 2:
        raise ValueError(f"need at least one curve with every noise level of the grid {grid} to recommend a σ")
    kw = {"stability_target": stability_target, "fidelity_bound": fidelity_bound}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # per-curve misses are reported in their reasons
        per_curve = {
            k: recommend_noise_level(
                grid, [v[g]["stability_norm_mean"] for g in grid], [v[g]["fidelity_norm_mean"] for g in grid], **kw
            )
            for k, v in complete.items()
        }
    stab = [sum(v[g]["stability_norm_mean"] for v in complete.values()) / len(complete) for g in grid]
    fid = [sum(v[g]["fidelity_norm_mean"] for v in complete.values()) / len(complete) for g in grid]
    overall = recommend_noise_level(grid, stab, fid, **kw)
    return overall, per_curve


# ---- outputs ------------------------------------------------------------------------------------------
def _write_outputs(
    out: Path,
    rows: list[dict[str, Any]],
    config: dict[str, Any],
    model_info: dict[str, Any],
    grid: list[float],
    methods: list[str],
    settings: list[str],
    table_sigma: float,
    overall: Recommendation,
    per_curve: dict[str, Recommendation],
) -> dict[str, Path]:
    paths = {"results.csv": out / "results.csv"}
    rec = {
        "basis": "norm-scaled errors; overall = mean over the (setting, method) curves",
        "overall": dataclasses.asdict(overall),
        "per_curve": {k: dataclasses.asdict(v) for k, v in per_curve.items()},
    }
    paths["recommendation.json"] = write_json(out / "recommendation.json", rec)
    paths["results.json"] = write_json(
        out / "results.json",
        {"config": config, "noise_levels": grid, "models": model_info, "rows": rows, "recommendation": rec},
    )
    paths["table1.md"] = out / "table1.md"
    paths["table1.md"].write_text(table1_markdown(rows, methods, settings, table_sigma, config))
    paths["stability_vs_sigma.png"] = plot_curves(rows, methods, settings, "stability", out / "stability_vs_sigma.png")
    paths["fidelity_vs_sigma.png"] = plot_curves(rows, methods, settings, "fidelity", out / "fidelity_vs_sigma.png")
    paths["pareto.png"] = plot_pareto(rows, methods, settings, per_curve, out / "pareto.png")
    return paths


_CURVE_LABELS = {"stability": "stability error", "fidelity": "fidelity error"}


def _series(rows: list[dict[str, Any]], setting: str, method: str, column: str) -> tuple[list[float], list[float]]:
    pts = sorted((r["noise_level"], r[column]) for r in rows if r["setting"] == setting and r["method"] == method)
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_curves(
    rows: list[dict[str, Any]], methods: Sequence[str], settings: Sequence[str], kind: str, path: Path
) -> Path:
    """Error vs σ, one line per method with a ±1 std band, one column per setting (the seed's Figs. 2–5).

    Top row: norm-scaled error (comparable across methods); bottom row: raw error on a log axis
    (map magnitudes differ by orders of magnitude between methods; its band is clipped below at a tenth
    of the mean). ``kind``: "stability" or "fidelity".
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check_choice(kind, "kind", tuple(_CURVE_LABELS))
    spread = "over model pairs" if kind == "stability" else "over inputs"
    fig = Figure(figsize=(4.2 * len(settings), 7.0), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(settings), squeeze=False)
    for j, setting in enumerate(settings):
        for i, (suffix, label) in enumerate((("_norm", "norm-scaled"), ("", "raw"))):
            ax = axes[i][j]
            for method in methods:
                x, y = _series(rows, setting, method, f"{kind}{suffix}_mean")
                if not x:
                    continue
                _, sd = _series(rows, setting, method, f"{kind}{suffix}_std")
                line = ax.plot(x, y, marker="o", ms=3, label=METHODS[method])[0]
                hi = [a + b for a, b in zip(y, sd)]
                lo = [a - b if i == 0 else max(a - b, a / 10) for a, b in zip(y, sd)]  # log axis: clip at y/10
                ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
            if i == 1:
                ax.set_yscale("log", nonpositive="mask")
                ax.set_xlabel("noise level σ / (x_max − x_min)")
            else:
                ax.set_title(f"{setting}: {SETTINGS[setting]}", fontsize=9)
            ax.set_ylabel(f"{_CURVE_LABELS[kind]} ({label})", fontsize=8)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{_CURVE_LABELS[kind].capitalize()} vs σ (band: ±1 std {spread})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_pareto(
    rows: list[dict[str, Any]],
    methods: Sequence[str],
    settings: Sequence[str],
    per_curve: dict[str, Recommendation],
    path: Path,
) -> Path:
    """Norm-scaled stability error against fidelity error, one labelled point per σ; ★ = recommended σ."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(settings), 4.0), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(settings), squeeze=False)[0]
    for ax, setting in zip(axes, settings):
        for method in methods:
            sig, stab = _series(rows, setting, method, "stability_norm_mean")
            if not sig:
                continue
            _, fid = _series(rows, setting, method, "fidelity_norm_mean")
            line = ax.plot(fid, stab, marker="o", ms=3, label=METHODS[method])[0]
            for s, f, y in zip(sig, fid, stab):
                ax.annotate(f"{s:g}", (f, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
            rec = per_curve.get(f"{setting}/{method}")
            if rec is not None and rec.noise_level in sig:
                k = sig.index(rec.noise_level)
                ax.plot([fid[k]], [stab[k]], marker="*", ms=11, color=line.get_color(), mec="black", mew=0.5)
        ax.set_title(f"{setting}: {SETTINGS[setting]}", fontsize=9)
        ax.set_xlabel("fidelity error (norm-scaled)")
        ax.set_ylabel("stability error (norm-scaled)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Stability–fidelity trade-off (labels: σ; ★: knee / recommended σ)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _nearest(sigmas: list[float], target: float) -> float:
    positive = [s for s in sigmas if s > 0]
    return min(positive, key=lambda s: (abs(s - target), s)) if positive else math.nan


def table1_markdown(
    rows: list[dict[str, Any]], methods: Sequence[str], settings: Sequence[str], sigma: float, config: dict[str, Any]
) -> str:
    """The seed's Table 1: method × setting rows; raw vs smoothed SSIM and top-k IoU, better in bold."""
    index = {(r["setting"], r["method"], r["noise_level"]): r for r in rows}
    sigmas = sorted({r["noise_level"] for r in rows})
    used = sigma if sigma in sigmas else _nearest(sigmas, sigma)
    lines = [
        f"# Table 1: similarity of two models' maps, raw vs smoothed (σ = {used:g})",
        "",
        f"Dataset {config['dataset']}, {config['n_inputs']} test inputs (true labels as targets), "
        f"{config['n_models']} models per setting (mean over model pairs), {config['n_samples']} noisy samples. "
        "SSIM on |map| summed over channels, clipped at the 99th percentile, scaled to [0, 1]; "
        "top-k IoU with k = 1 % of the pixels. Higher is better; the better of raw / smoothed is in bold.",
        "",
    ]
    if used != sigma:
        lines += [f"(σ = {sigma:g} is not in the grid; the nearest σ = {used:g} is shown.)", ""]
    lines += [
        "| Method | Setting | SSIM raw | SSIM smoothed | top-k IoU raw | top-k IoU smoothed |",
        "|---|---|---|---|---|---|",
    ]

    def pair(a: float, b: float) -> tuple[str, str]:
        fa, fb = f"{a:.3f}", f"{b:.3f}"
        if math.isnan(a) or math.isnan(b) or fa == fb:
            return fa, fb
        return (f"**{fa}**", fb) if a > b else (fa, f"**{fb}**")

    for method in methods:
        for setting in settings:
            r0, r1 = index.get((setting, method, 0.0)), index.get((setting, method, used))
            if r0 is None or r1 is None:
                continue
            s0, s1 = pair(r0["ssim_mean"], r1["ssim_mean"])
            k0, k1 = pair(r0["topk_iou_mean"], r1["topk_iou_mean"])
            lines.append(f"| {METHODS[method]} | {setting} | {s0} | {s1} | {k0} | {k1} |")
    return "\n".join(lines) + "\n"


# ---- CLI -------------------------------------------------------------------------------------------------
def _split_list(text: str | None, name: str) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"`{name}` must be a comma-separated list, got {text!r}")
    return items


def register_cli(app: Any) -> None:
    """Add ``smoothsal tradeoff`` to a :class:`typer.Typer` app."""
    import typer

    @app.command("tradeoff")
    def tradeoff_command(
        quick: bool = typer.Option(False, "--quick", help="Small run: minutes on 2 CPU cores, training included."),
        out: Path = typer.Option(Path("out/tradeoff"), "--out", help="Output folder (results resume from it)."),
        dataset: str = typer.Option(
            "digits", "--dataset", help="digits | synthetic | photos (pretrained Lite0/1/2 on the bundled photos; use --settings DA)"
        ),
        methods: str = typer.Option("grad,ig,gradcam,gradcam++", "--methods", help="Comma-separated method keys."),
        noise_levels: Optional[str] = typer.Option(None, "--noise-levels", help="Comma-separated σ grid, e.g. 0,0.1,0.2."),
        settings: str = typer.Option("DT,DR,DA", "--settings", help="Comma-separated: DT, DR, DA."),
        samples: Optional[int] = typer.Option(None, "--samples", help="Noisy samples per smoothed map."),
        inputs: Optional[int] = typer.Option(None, "--inputs", help="Test inputs explained."),
        models: Optional[int] = typer.Option(None, "--models", help="Models per setting (>= 2)."),
        epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs of every model."),
        ig_steps: Optional[int] = typer.Option(None, "--ig-steps", help="Integrated Gradients path points."),
        stability_target: Optional[float] = typer.Option(None, "--stability-target", help="Norm-scaled stability target."),
        fidelity_bound: Optional[float] = typer.Option(None, "--fidelity-bound", help="Norm-scaled fidelity bound."),
        fresh: bool = typer.Option(False, "--fresh", help="Discard the results file in --out."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    ) -> None:
        """Stability vs fidelity of smoothed maps (the seed's Table 1, Figs. 2-5) and a recommended σ."""
        base = None
        if epochs is not None:
            from smoothsal.train import TrainConfig

            base = TrainConfig(dataset=dataset, epochs=epochs)
        try:
            grid_items = _split_list(noise_levels, "noise-levels")
            try:
                grid = None if grid_items is None else [float(v) for v in grid_items]
            except ValueError as err:
                raise ValueError(f"`--noise-levels` must be comma-separated numbers, got {noise_levels!r}") from err
            run = run_tradeoff(
                out,
                quick=quick,
                methods=_split_list(methods, "methods"),
                noise_levels=grid,
                settings=_split_list(settings, "settings"),
                dataset=dataset,
                n_inputs=inputs,
                n_samples=samples,
                n_models=models,
                ig_steps=ig_steps,
                base=base,
                stability_target=stability_target,
                fidelity_bound=fidelity_bound,
                progress=not no_progress,
                fresh=fresh,
            )
        except ValueError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err
        typer.echo(f"wrote {', '.join(sorted(run.paths))} to {out} ({run.computed} rows computed)")
        typer.echo(f"recommended noise level: {run.recommendation.noise_level:g}")
        typer.echo(f"  {run.recommendation.reason}")
        for key, rec in run.recommendations.items():
            typer.echo(f"  {key}: σ = {rec.noise_level:g}")
