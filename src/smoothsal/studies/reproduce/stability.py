r"""Compute step of ``smoothsal reproduce stability`` (Ye & Farnia 2025, arXiv:2411.05837), and the theory fits.

Rows (one store record per (setting, method, σ)), each with the paper's **raw** errors as the
primary numbers and the norm-scaled ones beside them:

* stability error (eq. 12) :math:`\operatorname{mean}_{i<j}\mathbb E_x\lVert\tilde S_i(x)-\tilde S_j(x)\rVert_2`
  over the models of a setting, with SSIM and top-k IoU between their maps (Table 1);
* fidelity error (eq. 13) :math:`\mathbb E_x\lVert\tilde S_i(x)-S_i(x)\rVert_2`, averaged over models;
* per input (averaged over model pairs / models), so the power-law fits can be bootstrapped over
  inputs; and the smoothed maps' relative standard error ‖SE‖/‖map‖ (Monte-Carlo precision).

Settings: DT / DR / DA on real 8×8 digits (small CNNs trained by :mod:`smoothsal.studies.train`,
true labels as targets) and ``DA-ImageNet``: the pretrained EfficientNet-Lite0/1/2 on natural
photos (the first ``photo_inputs`` of :data:`~smoothsal.datasets.photos.NATURAL_PHOTO_NAMES`, loaded by
:func:`~smoothsal.datasets.photos.natural_photos`, all at 224², Lite0's top-1
class as the target of every model). Every model gets the same noise draws (one seed).

Theory (§4 of the paper): Theorem 6 bounds the smoothed stability error by a term falling as
:math:`\sigma^{-1/(\beta c+1)}`, an exponent in (−1, 0); Proposition 7 bounds the fidelity error by
:math:`\gamma\sigma\sqrt m` (:mod:`smoothsal.metrics.theory`). :func:`fit_power_law` fits
:math:`y = c\,\sigma^{p}` on σ > 0 by least squares in log–log and :func:`bootstrap_power_law` gives
its interval over inputs: a description of the measured curve, not a test of a bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from smoothsal._core.jsontypes import JSON, JSONObject
from smoothsal.methods.base import Attribution
from smoothsal.smoothing import Smooth
from smoothsal.smoothing_spec import SmoothSpec
from smoothsal.studies.options import RunOptions
from smoothsal.studies.reproduce.config import ST_DEFAULT_OUT, StabilityReproConfig
from smoothsal.studies.store import ResultsStore

__all__ = [
    "IMAGENET_SETTING",
    "StabilityExtras",
    "bootstrap_power_law",
    "compute_stability",
    "fit_power_law",
    "row_values",
]

#: name of the ImageNet-scale DA setting (pretrained Lite0/1/2 on natural photos)
IMAGENET_SETTING = "DA-ImageNet"


# ---- theory fits ---------------------------------------------------------------------------------
def fit_power_law(sigmas: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    r"""Least-squares fit of :math:`y = c\,\sigma^{p}` on the points with σ > 0 and y > 0, in log–log.

    Returns:
        ``(p, c)``; ``(nan, nan)`` with fewer than two usable points.

    Example:
        >>> p, c = fit_power_law([0.1, 0.2, 0.4], [10.0, 5.0, 2.5])
        >>> round(p, 6), round(c, 6)
        (-1.0, 1.0)
    """
    s = np.asarray(sigmas, dtype=float)
    y = np.asarray(values, dtype=float)
    if s.shape != y.shape:
        raise ValueError(f"`sigmas` and `values` must have the same length, got {s.shape} and {y.shape}")
    ok = (s > 0) & (y > 0) & np.isfinite(y)
    if ok.sum() < 2:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(np.log(s[ok]), np.log(y[ok]), 1)
    return float(slope), float(np.exp(intercept))


def bootstrap_power_law(
    sigmas: Sequence[float], per_input: np.ndarray, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """The exponent of :func:`fit_power_law` on the mean over inputs, with a percentile bootstrap interval.

    Args:
        sigmas: ``[S]`` noise levels.
        per_input: ``[S, N]`` the error of each input at each σ (the same inputs at every σ).
        n_boot: resamples of the inputs (with replacement). level: interval coverage.
    Returns:
        ``{"exponent", "low", "high", "coef", "n_inputs"}``.
    """
    values = np.asarray(per_input, dtype=float)
    if values.ndim != 2 or values.shape[0] != len(sigmas):
        raise ValueError(f"`per_input` must be [len(sigmas), N], got shape {values.shape}")
    p, c = fit_power_law(sigmas, values.mean(axis=1))
    rng = np.random.default_rng(seed)
    n = values.shape[1]
    draws = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        draws.append(fit_power_law(sigmas, values[:, idx].mean(axis=1))[0])
    draws_arr = np.asarray([d for d in draws if np.isfinite(d)])
    if draws_arr.size == 0:
        return {"exponent": p, "low": float("nan"), "high": float("nan"), "coef": c, "n_inputs": n}
    alpha = (1 - level) / 2
    low, high = np.quantile(draws_arr, [alpha, 1 - alpha])
    return {"exponent": p, "low": float(low), "high": float(high), "coef": c, "n_inputs": n}


# ---- rows ------------------------------------------------------------------------------------------
def row_values(raw: list[Tensor], smoothed: list[Tensor], rse: list[float], n_samples: int) -> JSONObject:
    """One row from the models' unsmoothed and smoothed maps (each ``[N, C, H, W]``, same inputs)."""
    from smoothsal.metrics.tradeoff import fidelity_from_maps, stability_from_maps

    stab = stability_from_maps(smoothed)
    fids = [fidelity_from_maps(s, r) for s, r in zip(smoothed, raw)]
    fid_in = torch.stack([f.per_input for f in fids]).mean(dim=0)  # [N], mean over models
    fid_norm_in = torch.stack([f.per_input_normalized for f in fids]).mean(dim=0)
    stab_in = stab.per_input.mean(dim=0)  # [N], mean over model pairs
    stab_norm_in = stab.per_input_normalized.mean(dim=0)
    return {
        "n_models": len(raw), "n_pairs": len(stab.pairs), "n_inputs": int(raw[0].shape[0]), "n_samples": n_samples,
        "stability_mean": stab.mean, "stability_std": stab.std,
        "stability_norm_mean": stab.mean_normalized, "stability_norm_std": stab.std_normalized,
        "fidelity_mean": float(fid_in.mean()), "fidelity_std": float(fid_in.std()) if fid_in.numel() > 1 else 0.0,
        "fidelity_norm_mean": float(fid_norm_in.mean()),
        "fidelity_norm_std": float(fid_norm_in.std()) if fid_norm_in.numel() > 1 else 0.0,
        "ssim_mean": stab.ssim, "ssim_std": stab.ssim_std, "topk_iou_mean": stab.topk_iou,
        "topk_iou_std": stab.topk_iou_std,
        "rse_mean": float(np.mean(rse)) if rse else 0.0, "rse_max": float(np.max(rse)) if rse else 0.0,
        "per_input_stability": stab_in.tolist(), "per_input_stability_norm": stab_norm_in.tolist(),
        "per_input_fidelity": fid_in.tolist(), "per_input_fidelity_norm": fid_norm_in.tolist(),
    }  # fmt: skip


def _maps(
    method: Attribution | Smooth, inputs: Tensor, targets: Tensor, options: RunOptions
) -> tuple[Tensor, tuple[list[float], list[int]]]:
    """Maps ``[N, ...]`` (CPU) and, for a smoothed method, each map's relative standard error and
    samples used (``Smooth`` runs its rows as it was built to, the run's; the maps do not depend on it)."""
    if not isinstance(method, Smooth):
        return options.attribution_maps(method, inputs, targets).cpu(), ([], [])
    est = method.estimate(inputs, targets)
    rse = [float(v) for v in est.relative_stderr()]
    used = [int(v) for v in est.n_samples]
    return est.attributions.detach().cpu(), (rse, used)


def _row_unit(setting: str, method: str, sigma: float, params: JSONObject) -> JSONObject:
    return {"kind": "row", "setting": setting, "method": method, "noise_level": round(float(sigma), 10), "params": params}


@dataclass
class _SettingData:
    """One setting's inputs, targets, models (on the run's device) and what is recorded of them."""

    inputs: Tensor
    targets: Tensor
    models: list[nn.Module]
    info: list[JSON]
    photos: list[str]
    n_samples: int


@dataclass
class StabilityExtras:
    """What :func:`compute_stability` gives beside the rows (for the figures and ``results.json``).

    Attributes:
        models: ``{setting: [model info]}``.
        figure_maps: ``{"setting/method": (maps [4 (raw m0, raw m1, smooth m0, smooth m1), 1, C, H, W], σ)}``.
        photos: the natural photos of the ImageNet setting, by name.
        first_inputs: ``{setting: the first input [C, H, W]}``.
    """

    models: dict[str, list[JSON]] = field(default_factory=dict)
    figure_maps: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)
    photos: list[str] = field(default_factory=list)
    first_inputs: dict[str, np.ndarray] = field(default_factory=dict)


def _load_setting(config: StabilityReproConfig, options: RunOptions, setting: str) -> _SettingData:
    """The setting's data: the ImageNet models on natural photos, or digit models trained (or cached)."""

    device = options.torch_device()
    if setting == IMAGENET_SETTING:
        from smoothsal.datasets.photos import natural_photos
        from smoothsal.models.zoo import load_model

        photos = natural_photos(list(config.photo_names()), config.photo_size)
        names, x = [p.name for p in photos], torch.cat([p.tensor for p in photos])
        models = [load_model(m).model.to(device).eval() for m in config.photo_models]
        y = options.predict(models[0], x).argmax(dim=1).cpu()
        info: list[JSON] = [{"name": m, "test_accuracy": None, "config": "ImageNet-pretrained"} for m in config.photo_models]
        return _SettingData(x, y, models, info, names, config.photo_samples)
    from dataclasses import asdict

    from smoothsal.studies.train import held_out_inputs, models_for_setting

    base = config.train_base()
    sub = held_out_inputs("digits", base.image_size, config.n_inputs, options.seed)
    trained = models_for_setting(setting, dataset="digits", n_models=config.n_models, base=base,
                                 cache_dir=config.cache_dir, progress=options.progress)  # fmt: skip
    info = [{"name": f"m{i}:{t.config.arch}-{t.config.optimizer}-aug{int(t.config.augment)}"
             f"-split{t.config.split}", "test_accuracy": float(t.test_accuracy),
             "config": asdict(t.config)} for i, t in enumerate(trained)]  # fmt: skip
    return _SettingData(sub.images, sub.labels, [t.model.to(device).eval() for t in trained], info, [], config.n_samples)


def compute_stability(
    config: StabilityReproConfig, options: RunOptions | None = None, echo: Callable[[str], object] | None = None
) -> tuple[list[JSONObject], StabilityExtras, ResultsStore]:
    """Compute (or read back) every row of ``config``, run as ``options`` say (default
    :class:`~smoothsal.studies.options.RunOptions`: ``out/reproduce/stability``).

    Returns:
        ``(rows, extras, store)``: the rows (``{**unit, **values}``) in (setting, method, σ) order,
        and the models, figure maps, photos and first inputs (:class:`StabilityExtras`).
    """
    from tqdm.auto import tqdm

    options = options if options is not None else RunOptions()
    out = options.out_dir(ST_DEFAULT_OUT)
    store = ResultsStore(out, "reproduce_stability", config.to_hash(options.seed), fresh=options.fresh)
    plan: list[tuple[str, Sequence[str], Sequence[float]]] = [
        (s, config.methods, config.noise_levels) for s in config.settings
    ]
    if config.photo_models:
        plan.append((IMAGENET_SETTING, config.photo_methods, config.photo_noise_levels))
    total = sum(len(m) * len(g) for _, m, g in plan)
    extras = StabilityExtras()
    bar = tqdm(total=total, desc="reproduce stability rows", disable=not options.progress)
    rows: list[JSONObject] = []
    for setting, methods, grid in plan:
        t_setting = time.perf_counter()
        params = config.photo_params() if setting == IMAGENET_SETTING else config.digits_params()
        loaded: list[_SettingData] = []

        def setup(setting: str = setting, loaded: list[_SettingData] = loaded) -> _SettingData:
            if not loaded:  # the models are trained or loaded only when a row of the setting is missing
                loaded.append(_load_setting(config, options, setting))
            return loaded[0]

        for method in methods:
            raw_maps: list[Tensor] = []
            kept: list[nn.Module] = []

            def raw(method: str = method, raw_maps: list[Tensor] = raw_maps, kept: list[nn.Module] = kept) -> list[Tensor]:
                if not raw_maps:
                    env = setup()
                    size = int(env.inputs.shape[-1])
                    for m in env.models:
                        try:  # Grad-CAM cannot explain an MLP (no conv layer): that model is left out
                            built = options.build_method(method, m, image_size=size)
                        except ValueError:
                            continue
                        kept.append(m)
                        raw_maps.append(_maps(built, env.inputs, env.targets, options)[0])
                    if len(raw_maps) < 2:
                        raise ValueError(f"{setting}/{method}: fewer than 2 models can be explained")
                return raw_maps

            for sigma in grid:
                def one(sigma: float = sigma, method: str = method) -> JSONObject:
                    env = setup()
                    size = int(env.inputs.shape[-1])
                    n = env.n_samples
                    if sigma == 0:
                        return row_values(raw(), raw(), [], 0)
                    smooth = SmoothSpec(noise_level=float(sigma), n_samples=n, seed=options.seed)
                    if setting == IMAGENET_SETTING and config.photo_max_samples > n:
                        # at least n samples; then n more at a time until ‖SE‖/‖map‖ ≤ max_rse (or the cap)
                        smooth = smooth.replace(n_samples=config.photo_max_samples, tol=config.max_rse, min_samples=n)
                    smoothed, rse, used = [], [], []
                    raw()
                    for m in kept:
                        built = options.build_method(method, m, smooth, image_size=size)
                        maps, (r, u) = _maps(built, env.inputs, env.targets, options)
                        smoothed.append(maps)
                        rse, used = rse + r, used + u
                    values = row_values(raw(), smoothed, rse, n)
                    values["n_samples_used_mean"] = float(np.mean(used)) if used else float(n)
                    values["n_samples_used_max"] = int(max(used)) if used else n
                    if sigma == config.table_noise_level or (sigma == max(grid) and config.table_noise_level not in grid):
                        _ = store.array(_fig_unit(setting, method, params), lambda: (torch.stack(
                            [raw()[0][:1], raw()[1][:1], smoothed[0][:1], smoothed[1][:1]]), {"noise_level": sigma}))
                    return values

                unit = _row_unit(setting, method, sigma, params)
                values = store.get_or_compute(unit, one)
                rows.append({"setting": setting, "method": method, "noise_level": unit["noise_level"], **values})
                bar.update(1)
        if loaded or _models_unit(setting, params) not in store:
            env = setup()
            store.get_or_compute(_models_unit(setting, params), lambda env=env: {"models": env.info, "photos": env.photos})
        first, _ = store.array({"kind": "first_input", "setting": setting, "params": params}, lambda: (setup().inputs[0], {}))
        extras.first_inputs[setting] = first
        stored = store.get(_models_unit(setting, params)) or {}
        extras.models[setting] = stored.get("models", [])
        if stored.get("photos"):
            extras.photos = stored["photos"]
        for method in methods:
            unit = _fig_unit(setting, method, params)
            found = store.get(unit)
            if found is not None and (out / found["array"]).exists():
                arr = np.load(out / found["array"])  # [4 (raw m0, raw m1, smooth m0, smooth m1), 1, C, H, W]
                extras.figure_maps[f"{setting}/{method}"] = (arr, found["noise_level"])
        if echo is not None:
            echo(f"{setting}: {len(methods)} methods × {len(grid)} σ in {time.perf_counter() - t_setting:.1f} s")
    bar.close()
    return rows, extras, store


def _models_unit(setting: str, params: JSONObject) -> JSONObject:
    return {"kind": "models", "setting": setting, "params": params}


def _fig_unit(setting: str, method: str, params: JSONObject) -> JSONObject:
    return {"kind": "figure_maps", "setting": setting, "method": method, "params": params}
