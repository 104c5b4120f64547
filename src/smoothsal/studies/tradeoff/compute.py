r"""Compute step of the stability–fidelity study: one store record per (setting, method, σ).

For each setting of Table 1 of Ye & Farnia 2025 (arXiv:2411.05837) -- DT disjoint training
sets, DR different recipes, DA different architectures -- the models are trained (or loaded
from the cache), a seeded set of test inputs is fixed with their **true** labels as targets,
and for each method and σ of the grid one row is recorded:

* the stability error (their eq. 12) :math:`\operatorname{mean}_{i<j}\mathbb E_x\lVert\tilde S_i(x)-\tilde S_j(x)\rVert_2`
  with its std over model pairs, raw and norm-scaled, and SSIM / top-k IoU / Spearman / cosine
  between the models' maps (:func:`~smoothsal.metrics.tradeoff.stability_from_maps`);
* the fidelity error (their eq. 13) :math:`\mathbb E_x\lVert\tilde S_i(x)-S_i(x)\rVert_2` pooled
  over the models and inputs (:func:`~smoothsal.metrics.tradeoff.fidelity_from_maps`),

with :math:`\tilde S = \mathrm{Smooth}_\sigma(S)` and σ = 0 the unsmoothed method. The raw maps
of a (setting, method) are computed once and serve every σ. All models get the same noise draws
(one seed: common random numbers), so the stability error compares maps, not Monte-Carlo draws.

Methods come from the registry (:func:`~smoothsal.registry.build_method`): raw with their raw
settings, smoothed with their smoothed settings; a method that cannot explain a model (Grad-CAM
on an MLP: no conv layer) leaves that model out of its pairs.

With ``config.maps`` (``--maps STORE``) the maps are not computed but read from a store of
``smoothsal explain-dataset`` (:func:`rows_from_store`): the models are the store's models, the
inputs the images every model has maps of, and the rows are computed from those maps by the same
:func:`_row` (setting ``"store"``).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from smoothsal._core.jsontypes import JSON, JSONObject
from smoothsal.registry import MethodSetting
from smoothsal.smoothing_spec import SmoothSpec
from smoothsal.studies.options import RunOptions
from smoothsal.studies.store import ResultsStore
from smoothsal.studies.tradeoff.config import PHOTO_MODELS, TradeoffConfig

if TYPE_CHECKING:
    from smoothsal.studies.train import TrainedModel

__all__ = ["FIELDS", "compute", "curve_rows", "fixed_inputs", "row_unit", "rows_from_store"]

#: columns of ``results.csv``, in order
FIELDS: tuple[str, ...] = (
    "setting", "method", "noise_level", "n_models", "n_pairs", "n_inputs", "n_samples",
    "stability_mean", "stability_std", "stability_norm_mean", "stability_norm_std",
    "fidelity_mean", "fidelity_std", "fidelity_norm_mean", "fidelity_norm_std",
    "ssim_mean", "ssim_std", "topk_iou_mean", "topk_iou_std", "spearman_mean", "cosine_mean",
    "pair_stability", "pair_stability_norm", "pair_ssim", "pair_topk_iou", "models",
)  # fmt: skip


def row_unit(setting: str, method: str, noise_level: float) -> JSONObject:
    """The store unit of one row."""
    return {"setting": setting, "method": method, "noise_level": round(float(noise_level), 10)}


def _models_unit(setting: str) -> JSONObject:
    return {"models_of": setting}


# ---- inputs and models ---------------------------------------------------------------------------
@dataclass
class _Pretrained:
    """A zoo model in the place of a :class:`~smoothsal.studies.train.TrainedModel` (no test split)."""

    name: str
    model: nn.Module
    test_accuracy: float = float("nan")


def fixed_inputs(config: TradeoffConfig, options: RunOptions) -> tuple[Tensor, Tensor]:
    """The explained inputs ``[N, C, S, S]`` and their targets ``[N]``.

    Digits / synthetic: a subset of the test split drawn with ``options.seed``, with its true
    labels. Photos: the first ``n_inputs`` bundled photos at 224² and EfficientNet-Lite0's top-1 classes.
    Your models: the folder's first ``n_inputs`` images and the first model's top-1 classes.
    """
    if config.own_models is not None:
        return config.own_models.inputs(config.n_inputs, options)
    if config.dataset == "photos":
        from smoothsal.datasets.photos import BUNDLED, bundled_photos
        from smoothsal.models.zoo import efficientnet_lite0

        x = torch.cat([p.tensor for p in bundled_photos(list(BUNDLED)[: config.n_inputs])])
        return x, options.predict(efficientnet_lite0(), x).argmax(dim=1)

    from smoothsal.studies.train import held_out_inputs

    sub = held_out_inputs(config.dataset, config.base.image_size, config.n_inputs, options.seed)
    return sub.images, sub.labels


def _model_name(trained: TrainedModel | _Pretrained, index: int) -> str:
    if not hasattr(trained, "config"):  # pretrained, or your own model
        return f"m{index}:{trained.name}"
    cfg = trained.config
    parts = [cfg.arch, cfg.optimizer, f"lr{cfg.lr:g}", f"seed{cfg.seed}"]
    if cfg.augment:
        parts.append("aug")
    if cfg.split is not None:
        parts.append(f"part{cfg.split[0]}of{cfg.split[1]}")
    return f"m{index}:" + "-".join(parts)


def _models(config: TradeoffConfig, options: RunOptions, setting: str) -> list[TrainedModel] | list[_Pretrained]:
    """The setting's models, moved to ``options.device`` (``--device``)."""
    device = options.torch_device()
    if config.own_models is not None:
        return config.own_models.models(device)
    if config.dataset == "photos":
        from smoothsal.models.zoo import efficientnet_lite

        trained = [_Pretrained(name, efficientnet_lite(name)) for name in PHOTO_MODELS]
    else:
        from smoothsal.studies.train import models_for_setting

        trained = models_for_setting(
            setting, dataset=config.dataset, n_models=config.n_models, base=config.base, cache_dir=config.cache_dir,
            progress=options.progress,
        )  # fmt: skip
    for t in trained:
        t.model.to(device)
    return trained


# ---- rows ------------------------------------------------------------------------------------------
def _row(
    sigma: float, raw: list[Tensor], smoothed: list[Tensor], names: list[str], n_samples: int
) -> JSONObject:
    from smoothsal.metrics.tradeoff import fidelity_from_maps, stability_from_maps

    stab = stability_from_maps(smoothed)
    fid = fidelity_from_maps(torch.cat(smoothed), torch.cat(raw))  # pooled over models × inputs
    return {
        "n_models": len(raw),
        "n_pairs": len(stab.pairs),
        "n_inputs": stab.n_inputs,
        "n_samples": n_samples if smoothed is not raw else 0,
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
    }


def curve_rows(
    method: str,
    models: Sequence[nn.Module],
    names: Sequence[str],
    inputs: Tensor,
    targets: Tensor,
    sigmas: Sequence[float],
    *,
    smooth: SmoothSpec,
    options: RunOptions | None = None,
    overrides: Mapping[str, MethodSetting] | None = None,
    label: str = "",
) -> Iterator[tuple[float, JSONObject]]:
    """``(σ, row values)`` of one method on a set of models, for each σ of ``sigmas``.

    The unsmoothed maps are computed once. Models the method cannot explain (its constructor
    raises ``ValueError`` or ``TypeError``, e.g. Grad-CAM without a conv layer or on a TorchScript
    model) are left out; with fewer than two
    left nothing is yielded (with a warning).

    Args:
        method: registered method name.
        models, names: the models compared and their names (same order).
        inputs, targets: ``[N, ...]`` inputs and ``[N]`` classes explained in every model.
        sigmas: noise levels (0 = unsmoothed).
        smooth: the smoothing (samples, seed); its noise level is replaced by each σ of ``sigmas``.
        options: the run's batch size and memory budget (model rows per call; ``None``: defaults).
        overrides: constructor settings the user set (e.g. ``{"steps": 8}`` for IG).
        label: names the curve in warnings.
    """

    options = options if options is not None else RunOptions()
    overrides = dict(overrides or {})
    size = int(inputs.shape[-1]) if inputs.dim() == 4 else None
    chosen, skipped = [], []
    for i, model in enumerate(models):
        try:
            options.build_method(method, model, image_size=size, **overrides)
        except (ValueError, TypeError) as err:  # TypeError: e.g. a layer method on a TorchScript model
            skipped.append(f"{names[i]} ({err})")
        else:
            chosen.append(i)
    if skipped:
        warnings.warn(f"{label or method}: left out {'; '.join(skipped)}", UserWarning, stacklevel=2)
    if len(chosen) < 2:
        warnings.warn(f"{label or method}: fewer than 2 models can be explained; rows skipped", UserWarning, stacklevel=2)
        return
    kept = [models[i] for i in chosen]
    kept_names = [names[i] for i in chosen]
    def maps(model: nn.Module, spec: SmoothSpec | None) -> Tensor:
        built = options.build_method(method, model, spec, image_size=size, **overrides)
        return options.attribution_maps(built, inputs, targets)

    raw = [maps(m, None) for m in kept]  # each [N, C or 1, H, W]
    for sigma in sigmas:
        noisy = sigma > 0 or smooth.weight_noise > 0  # σ = 0 with weight noise: NoiseGrad, not the raw map
        smoothed = [maps(m, smooth.replace(noise_level=float(sigma))) for m in kept] if noisy else raw
        yield float(sigma), _row(float(sigma), raw, smoothed, kept_names, smooth.n_samples)


def compute(
    config: TradeoffConfig,
    options: RunOptions,
    store: ResultsStore,
    *,
    on_row: Callable[[JSONObject], None] | None = None,
) -> tuple[list[JSONObject], dict[str, list[JSON]], int]:
    """Compute every missing row of ``config`` into ``store``, run as ``options`` say.

    Returns:
        ``(rows, models, computed)``: the rows of the requested grid in (setting, method, σ)
        order (each ``{**unit, **values}``), ``{setting: [model info]}``, and how many rows this
        call computed. ``on_row`` is called with each new row after it was recorded.
    """
    from tqdm.auto import tqdm

    if config.maps is not None:
        return rows_from_store(config, store, on_row=on_row)
    wanted = [(s, m, g) for s in config.settings for m in config.methods for g in config.noise_levels]
    pending = [w for w in wanted if row_unit(*w) not in store]
    inputs, labels = fixed_inputs(config, options) if pending else (None, None)
    smooth = SmoothSpec(n_samples=config.n_samples, seed=options.seed, weight_noise=config.weight_noise)  # σ: each row's
    computed = 0
    with tqdm(total=len(pending), desc="tradeoff rows", disable=not options.progress) as bar:
        for setting in config.settings:
            todo = [w for w in pending if w[0] == setting]
            if not todo and _models_unit(setting) in store:
                continue
            trained = _models(config, options, setting)
            names = [_model_name(t, i) for i, t in enumerate(trained)]
            info: list[JSON] = [
                {"name": n, "test_accuracy": float(t.test_accuracy),
                 "config": dataclasses.asdict(t.config) if hasattr(t, "config") else getattr(t, "source", "ImageNet-pretrained")}
                for n, t in zip(names, trained)
            ]  # fmt: skip
            if _models_unit(setting) not in store:
                store.put(_models_unit(setting), {"models": info})
            for method in config.methods:
                sigmas = [w[2] for w in todo if w[1] == method]
                if not sigmas:
                    continue
                produced = 0
                rows = curve_rows(
                    method, [t.model for t in trained], names, inputs, labels, sigmas, smooth=smooth, options=options,
                    overrides=config.method_overrides(method), label=f"{setting}/{method}",
                )  # fmt: skip
                for sigma, values in rows:
                    unit = row_unit(setting, method, sigma)
                    row = {**unit, **store.put(unit, values)}
                    computed, produced = computed + 1, produced + 1
                    bar.update(1)
                    if on_row is not None:
                        on_row(row)
                bar.update(len(sigmas) - produced)  # rows curve_rows had to skip
    rows = []
    for w in wanted:
        found = store.get(row_unit(*w))
        if found is not None:
            rows.append({**row_unit(*w), **found})
    models = {s: (store.get(_models_unit(s)) or {}).get("models", []) for s in config.settings}
    return rows, models, computed


def rows_from_store(
    config: TradeoffConfig,
    store: ResultsStore,
    *,
    on_row: Callable[[JSONObject], None] | None = None,
) -> tuple[list[JSONObject], dict[str, list[JSON]], int]:
    """:func:`compute`'s result with the maps read from the map store ``config.maps``.

    For each method, the inputs are the images that every model of the map store has a map of at
    every σ of the grid (σ = 0 included), in id order; each row is :func:`_row` of those maps,
    under setting ``"store"``. Rows already in ``store`` (the results store) are read back.
    """
    maps = config.map_store  # opened once, by the config's checks
    models = maps.models()
    info: list[JSON] = [{"name": m, "weights_sha1": maps.model_info.get(m, {}).get("weights_sha1")} for m in models]
    setting = "store"
    if _models_unit(setting) not in store:
        store.put(_models_unit(setting), {"models": info})
    computed = 0
    rows = []
    for method in config.methods:
        todo = [g for g in config.noise_levels if row_unit(setting, method, g) not in store]
        if todo:
            have = None
            for model in models:
                for sigma in config.noise_levels:
                    images = set(maps.select(model=model, method=method, sigma=sigma).images())
                    have = images if have is None else have & images
            common = sorted(have or ())
            if not common:
                warnings.warn(f"store/{method}: no image has maps of every model at every σ; rows skipped", UserWarning, stacklevel=2)
                continue
            raw_sel = [maps.select(model=m, method=method, sigma=0.0, images=common) for m in models]
            differ = sum(len({sel[i].target for sel in raw_sel}) > 1 for i in range(len(common)))
            if differ:
                warnings.warn(
                    f"store/{method}: the models explain different classes on {differ} of {len(common)} images "
                    "(explain-dataset --target predicted); --target label explains the same class in every model",
                    UserWarning, stacklevel=2,
                )  # fmt: skip
            raw = [sel.load() for sel in raw_sel]
            for sigma in todo:
                smoothed = raw if sigma == 0 else [
                    maps.select(model=m, method=method, sigma=sigma, images=common).load() for m in models
                ]  # fmt: skip
                unit = row_unit(setting, method, sigma)
                row = {**unit, **store.put(unit, _row(float(sigma), raw, smoothed, models, config.n_samples))}
                computed += 1
                if on_row is not None:
                    on_row(row)
        for g in config.noise_levels:
            found = store.get(row_unit(setting, method, g))
            if found is not None:
                rows.append({**row_unit(setting, method, g), **found})
    return rows, {setting: info}, computed
