r"""Compute step of ``smoothsal reproduce stability`` (Ye & Farnia 2025, arXiv:2411.05837).

**Settings.** Table 1's three ways two networks differ, on MNIST with real models
(:func:`smoothsal.studies.train.model_pairs`: every model ≥ 98.5 % test accuracy, ``n_pairs``
independently trained pairs per setting, so intervals cover retraining as well as inputs):
**DT** (one LeNet-5 recipe on two disjoint 30,000-image halves), **DR** (two recipes), **DA**
(LeNet-5 vs a small ResNet); held-out test digits, their true labels as targets. At ImageNet scale:
**DA-ImageNet** (the pretrained EfficientNet-Lite0/1/2, every pair of them, on photos that each
show an ImageNet class, :data:`IMAGENET_PHOTOS`, that class the target) and **DR-ImageNet**
(torchvision's ResNet50 V1 vs V2, the paper's own DR row, where their weights are given).

**One row per (setting, method, σ)** with, for every model pair and image (arrays ``[P, N]``):

* SSIM and top-k IoU between the pair's maps (Table 1), at two named k
  (:func:`~smoothsal.metrics.similarity.topk_choices`: ``"paper_fraction"`` = 1 % of the pixels, the
  paper's k = 500 at 224², 8 pixels on a 28 × 28 digit; ``"ten_percent"`` = 78 pixels there);
* the stability error (eq. 12) :math:`\lVert\tilde S_1(x) - \tilde S_2(x)\rVert_2` and the fidelity error
  (eq. 13) :math:`\lVert\tilde S_i(x) - S_i(x)\rVert_2` (mean over the pair's two models), plain, norm-scaled,
  and **Monte-Carlo debiased**: the cross term of two independent halves of the draws
  (:func:`~smoothsal.metrics.tradeoff.debiased_distance`), unbiased for the squared distance between
  the *expected* maps; every model gets the same draws (one seed: common random numbers);
* each smoothed map's relative standard error :math:`\lVert SE\rVert/\lVert \hat M\rVert`, from the halves
  (:math:`\lVert\hat a - \hat b\rVert^2/4` is unbiased for :math:`\lVert SE\rVert^2`) or, on ImageNet, where the
  samples grow until it is below ``max_rse`` (``Smooth``'s ``tol``), from the running variance.

The smoothed map of a method is the *same* method with the same settings (IG: the same path rule
and ``ig_steps``): :func:`smoothsal.registry.build_method` with ``inner="raw"``, so eq. 13's
fidelity error tends to 0 with σ.

**Theory** (:func:`compute_theory`): the pair trained in Theorems 5–6's regime
(:func:`smoothsal.studies.train.theory_pairs`) explained by Simple-Grad and IG over the σ grid,
with the measured (debiased) fidelity beside Proposition 7's bound and the stability error beside
Theorem 5's / 6's bounds, from the model's :class:`~smoothsal.studies.train.TheoryConstants`.

:func:`fit_power_law` / :func:`bootstrap_power_law` fit :math:`y = c\,\sigma^p` to a measured
curve: a description, never a test of a bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import torch
from torch import Tensor, nn

from smoothsal._core.jsontypes import JSON, JSONObject
from smoothsal.studies.options import RunOptions
from smoothsal.studies.reproduce.config import (
    IMAGENET_PHOTOS,
    ST_DEFAULT_OUT,
    StabilityReproConfig,
)
from smoothsal.studies.store import ResultsStore

__all__ = [
    "DA_IMAGENET",
    "DR_IMAGENET",
    "StabilityExtras",
    "bootstrap_power_law",
    "compute_stability",
    "compute_theory",
    "fit_power_law",
    "pair_values",
]

#: the ImageNet-scale DA setting (pretrained Lite0/1/2 on photos of ImageNet classes)
DA_IMAGENET = "DA-ImageNet"
#: the paper's DR row itself: torchvision ResNet50 V1 vs V2 (run where their weights are given)
DR_IMAGENET = "DR-ImageNet"
#: the per-(pair, image) arrays of a row
PAIR_ARRAYS = ("ssim", "topk_paper_fraction", "topk_ten_percent", "stability", "stability_norm",
               "stability_sq_debiased", "fidelity", "fidelity_norm", "fidelity_sq_debiased")  # fmt: skip


# ---- theory fits (a description) ---------------------------------------------------------------------
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


# ---- maps -------------------------------------------------------------------------------------------
@dataclass
class ModelMaps:
    """One model's maps of every input at one σ.

    Attributes:
        full: ``[N, ...]`` the map (raw at σ = 0, else the smoothed mean of all draws).
        halves: ``(first_half, second_half)`` means of two independent halves of the draws, or ``None``
            (σ = 0, or a smoothing that cannot give them: the samples grew until ``tol``).
        rse: ``[N]`` relative standard error of each map (zeros at σ = 0).
        samples: ``[N]`` noise samples used per map.
    """

    full: Tensor
    halves: tuple[Tensor, Tensor] | None
    rse: Tensor
    samples: Tensor


def pair_values(raw: Sequence[ModelMaps], smoothed: Sequence[ModelMaps], ks: dict[str, int]) -> dict[str, Tensor]:
    """Per-image numbers of one model pair at one σ: ``{name: [N]}`` for every name of :data:`PAIR_ARRAYS`.

    Args:
        raw: the two models' raw maps (σ = 0).
        smoothed: the two models' maps at σ (``raw`` itself at σ = 0).
        ks: ``{"paper_fraction": k1, "ten_percent": k2}`` (:func:`~smoothsal.metrics.similarity.topk_choices`).
    """
    from smoothsal.metrics.similarity import l2_distance, ssim_maps, topk_iou
    from smoothsal.metrics.tradeoff import debiased_distance

    if len(raw) != 2 or len(smoothed) != 2:
        raise ValueError(f"`raw` and `smoothed` must hold a pair's two models, got {len(raw)} and {len(smoothed)}")
    a, b = smoothed[0].full, smoothed[1].full
    out = {
        "ssim": ssim_maps(a, b),
        "topk_paper_fraction": topk_iou(a, b, k=ks["paper_fraction"]),
        "topk_ten_percent": topk_iou(a, b, k=ks["ten_percent"]),
        "stability": l2_distance(a, b),
        "stability_norm": l2_distance(a, b, normalize=True),
    }
    ha, hb = smoothed[0].halves, smoothed[1].halves
    if ha is not None and hb is not None:
        out["stability_sq_debiased"] = debiased_distance(ha, hb).squared
    else:  # raw maps (exact), or maps sampled to a precision: the plain squared distance
        out["stability_sq_debiased"] = out["stability"].double() ** 2
    fid, fid_n, fid_sq = [], [], []
    for s, r in zip(smoothed, raw):
        fid.append(l2_distance(s.full, r.full))
        fid_n.append(l2_distance(s.full, r.full, normalize=True))
        fid_sq.append(debiased_distance(s.halves, r.full).squared if s.halves is not None else fid[-1].double() ** 2)
    out["fidelity"] = torch.stack(fid).mean(dim=0)
    out["fidelity_norm"] = torch.stack(fid_n).mean(dim=0)
    out["fidelity_sq_debiased"] = torch.stack(fid_sq).mean(dim=0)
    return {k: v.detach().double().cpu() for k, v in out.items()}


def _summary(arrays: dict[str, np.ndarray], rse: np.ndarray, samples: np.ndarray, n_samples: int) -> JSONObject:
    """A row's means (over pairs and images) beside its ``[P, N]`` arrays."""
    st_sq, fid_sq = arrays["stability_sq_debiased"], arrays["fidelity_sq_debiased"]
    return {
        "n_pairs": int(arrays["ssim"].shape[0]), "n_inputs": int(arrays["ssim"].shape[1]), "n_samples": n_samples,
        "stability_mean": float(arrays["stability"].mean()), "stability_norm_mean": float(arrays["stability_norm"].mean()),
        "stability_rms": float(np.sqrt((arrays["stability"] ** 2).mean())),
        "stability_rms_debiased": float(np.sqrt(max(0.0, st_sq.mean()))),
        "fidelity_mean": float(arrays["fidelity"].mean()), "fidelity_norm_mean": float(arrays["fidelity_norm"].mean()),
        "fidelity_rms": float(np.sqrt((arrays["fidelity"] ** 2).mean())),
        "fidelity_rms_debiased": float(np.sqrt(max(0.0, fid_sq.mean()))),
        "ssim_mean": float(arrays["ssim"].mean()), "topk_iou_mean": float(arrays["topk_paper_fraction"].mean()),
        "topk_ten_percent_mean": float(arrays["topk_ten_percent"].mean()),
        "rse_mean": float(rse.mean()) if rse.size else 0.0, "rse_max": float(rse.max()) if rse.size else 0.0,
        "n_samples_used_mean": float(samples.mean()) if samples.size else 0.0,
        "n_samples_used_max": int(samples.max()) if samples.size else 0,
        "per_input_stability": arrays["stability"].mean(axis=0).tolist(),
        "per_input_fidelity": arrays["fidelity"].mean(axis=0).tolist(),
        "arrays": {k: v.tolist() for k, v in arrays.items()},
    }  # fmt: skip


# ---- settings ----------------------------------------------------------------------------------------
@dataclass
class _SettingData:
    """One setting's inputs, targets, models (by a stable key) and the pairs compared."""

    inputs: Tensor
    targets: Tensor
    models: dict[str, nn.Module]
    pairs: list[tuple[str, str]]
    info: list[JSON]
    photos: list[JSON]
    smooth_kwargs: dict[str, float | int]


@dataclass
class StabilityExtras:
    """What :func:`compute_stability` gives beside the rows (for the figures and ``results.json``).

    Attributes:
        models: ``{setting: [model info]}`` (name, recipe, test accuracy).
        figure_maps: ``{"setting/method": (maps [4 (raw m0, raw m1, smooth m0, smooth m1), 1, C, H, W], σ)}``.
        photos: the ImageNet photos, each ``{"name", "class_index", "class_name", "shows"}``.
        first_inputs: ``{setting: the first input [C, H, W]}``.
        skipped: ``{setting: why it was not run}``.
        topk: ``{setting: {name: k}}``.
    """

    models: dict[str, list[JSON]] = field(default_factory=dict)
    figure_maps: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)
    photos: list[JSON] = field(default_factory=list)
    first_inputs: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    topk: dict[str, dict[str, int]] = field(default_factory=dict)


def _trained_info(name: str, trained: object) -> JSONObject:
    from smoothsal.studies.train import TrainedModel

    assert isinstance(trained, TrainedModel)
    return {"name": name, "recipe": trained.config.describe(), "test_accuracy": float(trained.test_accuracy)}


def _load_mnist_setting(config: StabilityReproConfig, options: RunOptions, setting: str) -> _SettingData:
    """The setting's ``n_pairs`` trained pairs (cached by recipe) and the held-out test inputs."""
    from smoothsal.studies.train import held_out_inputs, model_pairs

    device = options.torch_device()
    pairs = model_pairs(setting, config.n_pairs, dataset=config.dataset, base=config.train_base(),
                        cache_dir=config.cache_dir, progress=options.progress)  # fmt: skip
    sub = held_out_inputs(config.dataset, None if config.dataset == "mnist" else config.image_size, config.n_inputs,
                          options.seed)  # fmt: skip
    models: dict[str, nn.Module] = {}
    keys: list[tuple[str, str]] = []
    info: list[JSON] = []
    for p, pair in enumerate(pairs):
        names = []
        for trained in pair:
            key = trained.path.stem
            if key not in models:
                models[key] = trained.model.to(device).eval()
            names.append(key)
            info.append({"pair": p, **_trained_info(key, trained)})
        keys.append((names[0], names[1]))
    return _SettingData(sub.images, sub.labels, models, keys, info, [], {"n_samples": config.n_samples})


def _load_imagenet_setting(config: StabilityReproConfig, options: RunOptions, setting: str) -> _SettingData:
    """Pretrained models on the photos of :data:`IMAGENET_PHOTOS` (targets: the class each shows)."""
    from smoothsal.datasets.photos import natural_photos
    from smoothsal.models.zoo import imagenet_classes, load_model

    device = options.torch_device()
    names = list(config.photo_names)
    photos = natural_photos(names, config.photo_size)
    x = torch.cat([p.tensor for p in photos])
    classes = imagenet_classes()
    y = torch.tensor([IMAGENET_PHOTOS[n][0] for n in names])
    listed: list[JSON] = [{"name": n, "class_index": IMAGENET_PHOTOS[n][0], "class_name": classes[IMAGENET_PHOTOS[n][0]],
                           "shows": IMAGENET_PHOTOS[n][1]} for n in names]  # fmt: skip
    models: dict[str, nn.Module] = {}
    info: list[JSON] = []
    if setting == DA_IMAGENET:
        for spec in config.photo_models:
            models[spec] = load_model(spec).model.to(device).eval()
            info.append({"name": spec, "recipe": "ImageNet-pretrained", "test_accuracy": None})
    else:
        for version, weights in zip(("V1", "V2"), config.dr_weights):
            random = weights == "random"
            loaded = load_model("torchvision:resnet50", weights=None if random else weights, random_weights=random)
            models[f"resnet50_{version}"] = loaded.model.to(device).eval()
            info.append({"name": f"resnet50_{version}", "recipe": "random weights (a test)" if random else weights,
                         "test_accuracy": None})  # fmt: skip
    keys = list(models)
    pairs = list(combinations(keys, 2))
    kwargs: dict[str, float | int] = {"n_samples": config.photo_samples}
    if config.photo_max_samples > config.photo_samples:
        kwargs = {"n_samples": config.photo_max_samples, "tol": config.max_rse, "min_samples": config.photo_samples}
    return _SettingData(x, y, models, pairs, info, listed, kwargs)


def _maps_at(method: str, model: nn.Module, sigma: float, data: _SettingData, config: StabilityReproConfig,
             options: RunOptions) -> ModelMaps:  # fmt: skip
    """One model's maps at σ: the raw method (σ = 0) or the same method smoothed (``inner="raw"``)."""
    from smoothsal.metrics.tradeoff import smoothed_halves
    from smoothsal.registry import build_method
    from smoothsal.smoothing import Smooth
    from smoothsal.smoothing_spec import SmoothSpec

    size = int(data.inputs.shape[-1])
    settings = {"steps": config.ig_steps} if method == "ig" else {}
    kw = {"image_size": size, "batch_size": options.batch_size, "max_memory": options.max_memory, **settings}
    x, y = data.inputs.to(options.torch_device()), data.targets.to(options.torch_device())
    n = x.shape[0]
    if sigma == 0:
        built = build_method(method, model, **kw)
        full = options.attribution_maps(built, x, y).detach().cpu()
        return ModelMaps(full, None, torch.zeros(n), torch.zeros(n))
    spec = SmoothSpec(noise_level=float(sigma), seed=options.seed, **data.smooth_kwargs)  # type: ignore[arg-type]
    smooth = build_method(method, model, spec, inner="raw", **kw)
    assert isinstance(smooth, Smooth)
    found = smoothed_halves(smooth, x, y)
    if found is None:  # samples grow to a precision: no independent halves, the running variance's RSE
        est = smooth.estimate(x, y)
        rse = est.relative_stderr().detach().cpu().double()
        return ModelMaps(est.attributions.detach().cpu(), None, rse, torch.as_tensor(est.n_samples).double().cpu())
    full, (a, b), (h1, h2) = found
    full, a, b = full.cpu(), a.cpu(), b.cpu()
    # ‖â − b̂‖² / (1/h1 + 1/h2) estimates tr Σ, the per-draw variance; over n = h1 + h2 draws, ‖SE‖² = tr Σ / n
    se2 = ((a - b).double().flatten(1) ** 2).sum(dim=1) / (1 / h1 + 1 / h2) / (h1 + h2)
    den = full.double().flatten(1).norm(dim=1).clamp_min(torch.finfo(torch.float64).tiny)
    return ModelMaps(full, (a, b), se2.sqrt() / den, torch.full((n,), float(h1 + h2)))


def _row_unit(setting: str, method: str, sigma: float, params: JSONObject) -> JSONObject:
    return {"kind": "row", "setting": setting, "method": method, "noise_level": round(float(sigma), 10), "params": params}


def _models_unit(setting: str, params: JSONObject) -> JSONObject:
    return {"kind": "models", "setting": setting, "params": params}


def _fig_unit(setting: str, method: str, params: JSONObject) -> JSONObject:
    return {"kind": "figure_maps", "setting": setting, "method": method, "params": params}


def _plan(config: StabilityReproConfig) -> list[tuple[str, Sequence[str], Sequence[float]]]:
    plan: list[tuple[str, Sequence[str], Sequence[float]]] = [(s, config.methods, config.noise_levels)
                                                              for s in config.settings]  # fmt: skip
    if config.photo_models:
        plan.append((DA_IMAGENET, config.photo_methods, config.photo_noise_levels))
    if config.dr_weights:
        plan.append((DR_IMAGENET, config.photo_methods, config.photo_noise_levels))
    return plan


def compute_stability(
    config: StabilityReproConfig, options: RunOptions | None = None, echo: Callable[[str], object] | None = None
) -> tuple[list[JSONObject], StabilityExtras, ResultsStore]:
    """Compute (or read back) every row of ``config``, run as ``options`` say (default
    :class:`~smoothsal.studies.options.RunOptions`: ``out/reproduce/stability``).

    Returns:
        ``(rows, extras, store)``: the rows (``{setting, method, noise_level, **values}``) in
        (setting, method, σ) order, and the models, figure maps, photos and first inputs.
    """
    from tqdm.auto import tqdm

    from smoothsal.metrics.similarity import topk_choices

    options = options if options is not None else RunOptions()
    out = options.out_dir(ST_DEFAULT_OUT)
    store = ResultsStore(out, "reproduce_stability", config.to_hash(options.seed), fresh=options.fresh)
    plan = _plan(config)
    extras = StabilityExtras()
    bar = tqdm(total=sum(len(m) * len(g) for _, m, g in plan), desc="reproduce stability rows",
               disable=not options.progress)  # fmt: skip
    rows: list[JSONObject] = []
    shared: dict[tuple[str, str, float], ModelMaps] = {}  # maps by (model key, method, σ): same inputs and draws
    for setting, methods, grid in plan:
        t_setting = time.perf_counter()
        imagenet = setting in (DA_IMAGENET, DR_IMAGENET)
        params = config.photo_params(setting) if imagenet else config.digits_params()
        loaded: list[_SettingData] = []

        def setup(setting: str = setting, loaded: list[_SettingData] = loaded, imagenet: bool = imagenet) -> _SettingData:
            if not loaded:  # models are trained / loaded only when a row of the setting is missing
                load = _load_imagenet_setting if imagenet else _load_mnist_setting
                loaded.append(load(config, options, setting))
            return loaded[0]

        for method in methods:

            def maps(key: str, sigma: float, method: str = method, setup: Callable[[], _SettingData] = setup) -> ModelMaps:
                # by model key: a model in two settings (DA's LeNet is DT's first model) is explained once
                if (key, method, sigma) not in shared:
                    env = setup()
                    shared[(key, method, sigma)] = _maps_at(method, env.models[key], sigma, env, config, options)
                return shared[(key, method, sigma)]

            for sigma in grid:

                def one(sigma: float = sigma, method: str = method, grid: Sequence[float] = grid, setting: str = setting,
                        params: JSONObject = params, imagenet: bool = imagenet) -> JSONObject:  # fmt: skip
                    cpu = time.process_time()
                    env = setup()
                    ks = topk_choices(*env.inputs.shape[-2:])
                    per_pair: list[dict[str, Tensor]] = []
                    rse, samples = [], []
                    for k1, k2 in env.pairs:
                        raw = [maps(k1, 0.0), maps(k2, 0.0)]
                        sm = [maps(k1, sigma), maps(k2, sigma)]
                        per_pair.append(pair_values(raw, sm, ks))
                    for key in dict.fromkeys(k for pair in env.pairs for k in pair):
                        rse.append(maps(key, sigma).rse)
                        samples.append(maps(key, sigma).samples)
                    arrays = {k: torch.stack([p[k] for p in per_pair]).numpy() for k in PAIR_ARRAYS}
                    n_samples = 0 if sigma == 0 else int(env.smooth_kwargs.get("min_samples", env.smooth_kwargs["n_samples"]))
                    values = _summary(arrays, torch.cat(rse).numpy(), torch.cat(samples).numpy(), n_samples)
                    values["topk"] = dict(ks)
                    if imagenet:  # each map's precision: {model: [one value per photo]}
                        keys = list(dict.fromkeys(k for pair in env.pairs for k in pair))
                        values["rse_per_map"] = {k: maps(k, sigma).rse.tolist() for k in keys}
                        values["samples_per_map"] = {k: maps(k, sigma).samples.tolist() for k in keys}
                    table_sigma = config.table_noise_level if config.table_noise_level in grid else max(grid)
                    if sigma == table_sigma:
                        k1, k2 = env.pairs[0]
                        _ = store.array(_fig_unit(setting, method, params), lambda: (torch.stack(
                            [maps(k1, 0.0).full[:1], maps(k2, 0.0).full[:1], maps(k1, sigma).full[:1],
                             maps(k2, sigma).full[:1]]), {"noise_level": sigma}))  # fmt: skip
                    values["cpu_seconds"] = time.process_time() - cpu  # the maps it computed (shared ones once)
                    return values

                unit = _row_unit(setting, method, sigma, params)
                values = store.get_or_compute(unit, one)
                rows.append({"setting": setting, "method": method, "noise_level": unit["noise_level"], **values})
                bar.update(1)
        if loaded or _models_unit(setting, params) not in store:
            env = setup()
            store.get_or_compute(_models_unit(setting, params), lambda env=env: {
                "models": env.info, "photos": env.photos, "topk": topk_choices(*env.inputs.shape[-2:])})  # fmt: skip
        first, _ = store.array({"kind": "first_input", "setting": setting, "params": params}, lambda: (setup().inputs[0], {}))
        extras.first_inputs[setting] = first
        stored = store.get(_models_unit(setting, params)) or {}
        extras.models[setting] = stored.get("models", [])
        extras.topk[setting] = stored.get("topk", {})
        if stored.get("photos"):
            extras.photos = stored["photos"]
        for method in methods:
            found = store.get(_fig_unit(setting, method, params))
            if found is not None and (out / found["array"]).exists():
                arr = np.load(out / found["array"])  # [4 (raw m0, raw m1, smooth m0, smooth m1), 1, C, H, W]
                extras.figure_maps[f"{setting}/{method}"] = (arr, found["noise_level"])
        if echo is not None:
            echo(f"{setting}: {len(methods)} methods × {len(grid)} σ in {time.perf_counter() - t_setting:.1f} s")
    if not config.dr_weights:
        extras.skipped[DR_IMAGENET] = ("torchvision ResNet50 V1 and V2 weights not given (--dr-weights V1,V2: weight names "
                                       "read from the torch hub cache, or state-dict files); nothing is downloaded")
    bar.close()
    return rows, extras, store


# ---- theory --------------------------------------------------------------------------------------------
def compute_theory(
    config: StabilityReproConfig, options: RunOptions, store: ResultsStore
) -> JSONObject:
    """The theory pair (Theorems 5–6's regime) explained by Simple-Grad and IG over ``theory_noise_levels``.

    Returns:
        ``{"models", "constants", "input_ranges", "rows": [{method, noise_level, arrays, ...}]}``: per σ
        the debiased fidelity (``[P, N]``; one pair) and stability, each model's constants
        (:meth:`~smoothsal.studies.train.TheoryConstants.to_dict`), read back from the store when there.
    """
    from smoothsal.metrics.similarity import topk_choices
    from smoothsal.studies.train import held_out_inputs, theory_pairs

    params: JSONObject = {"n_inputs": config.n_inputs, "n_samples": config.n_samples, "dataset": config.dataset,
                          "ig_steps": config.ig_steps}  # fmt: skip
    loaded: list[_SettingData] = []
    constants: list[JSON] = []

    def setup() -> _SettingData:
        if not loaded:
            pair = theory_pairs(1, dataset=config.dataset, cache_dir=config.cache_dir, progress=options.progress)[0]
            sub = held_out_inputs(config.dataset, None if config.dataset == "mnist" else config.image_size,
                                  config.n_inputs, options.seed)  # fmt: skip
            device = options.torch_device()
            models = {t.path.stem: t.model.to(device).eval() for t in pair}
            info: list[JSON] = [_trained_info(t.path.stem, t) for t in pair]
            constants.extend(t.theory.to_dict() for t in pair if t.theory is not None)
            loaded.append(_SettingData(sub.images, sub.labels, models, [tuple(models)], info, [],  # type: ignore[list-item]
                                       {"n_samples": config.n_samples}))  # fmt: skip
        return loaded[0]

    rows: list[JSONObject] = []
    for method in config.theory_methods:
        cache: dict[tuple[str, float], ModelMaps] = {}
        for sigma in config.noise_levels:

            def one(sigma: float = sigma, method: str = method, cache: dict = cache) -> JSONObject:
                cpu = time.process_time()
                env = setup()
                k1, k2 = env.pairs[0]
                for key in (k1, k2):
                    for s in (0.0, sigma):
                        if (key, s) not in cache:
                            cache[(key, s)] = _maps_at(method, env.models[key], s, env, config, options)
                vals = pair_values([cache[(k1, 0.0)], cache[(k2, 0.0)]], [cache[(k1, sigma)], cache[(k2, sigma)]],
                                   topk_choices(*env.inputs.shape[-2:]))  # fmt: skip
                arrays = {k: v[None].numpy() for k, v in vals.items()}
                rse = torch.cat([cache[(k, sigma)].rse for k in (k1, k2)]).numpy()
                values = _summary(arrays, rse, np.zeros(0), 0 if sigma == 0 else config.n_samples)
                values["cpu_seconds"] = time.process_time() - cpu
                return values

            unit = {"kind": "theory_row", "method": method, "noise_level": round(float(sigma), 10), "params": params}
            rows.append({"method": method, "noise_level": unit["noise_level"], **store.get_or_compute(unit, one)})
    models_unit = {"kind": "theory_models", "params": params}
    if loaded or models_unit not in store:
        env = setup()
        ranges = (env.inputs.flatten(1).amax(dim=1) - env.inputs.flatten(1).amin(dim=1)).tolist()
        store.get_or_compute(models_unit, lambda: {"models": env.info, "constants": constants, "input_ranges": ranges})
    stored = store.get(models_unit) or {}
    return {"models": stored.get("models", []), "constants": stored.get("constants", []),
            "input_ranges": stored.get("input_ranges", []), "rows": rows}
