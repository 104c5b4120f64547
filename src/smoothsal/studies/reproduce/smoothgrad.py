r"""Compute step of ``smoothsal reproduce smoothgrad`` (Smilkov et al. 2017, arXiv:1706.03825).

Every unit of work is one record of :class:`~smoothsal.studies.store.ResultsStore` (with its
array), written as soon as it is finished, so an interrupted run resumes:

* ``line``: Fig. 2, one pixel's partial derivative along :math:`x + t\varepsilon`,
  :math:`\varepsilon \sim N(0, (0.01\,(x_{max}-x_{min}))^2)` (the gradient, and SmoothGrad for
  contrast), :func:`smoothsal.metrics.jaggedness.gradient_along_line`;
* ``fig3``: SmoothGrad of every image at one noise level (σ = 0 is the vanilla gradient);
* ``fig4``: SmoothGrad at each sample size, one draw sequence per image
  (:func:`smoothsal.studies.explain.compute.sample_size_series`), and ``fig4_se``: the n at which
  the relative standard error ‖SE‖/‖map‖ reaches ``tol``;
* ``map``: Figs. 5 and 7, each base method raw and smoothed on every image;
* ``disc``: Fig. 6, each method (raw, smoothed) on the cat-beside-the-coffee image for both classes;
* ``digits``: Figs. 8–9, train with / without input noise × explain with gradient / SmoothGrad
  on real 8×8 digits (the paper used MNIST), models trained on disjoint parts of the training set
  (:func:`smoothsal.studies.train.models_for_setting`, setting DT): stability error (Ye & Farnia
  2025, eq. 12), SSIM and top-k IoU between the models' maps, and the first model's maps;
* ``claim_*``: the paper's claims measured (:mod:`smoothsal.studies.reproduce.sg_claims`, rules
  in :mod:`smoothsal.metrics.smoothgrad_claims`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from smoothsal._core.jsontypes import JSONObject
from smoothsal.methods.base import Attribution
from smoothsal.smoothing import Smooth
from smoothsal.smoothing_spec import SmoothSpec
from smoothsal.studies.options import RunOptions
from smoothsal.studies.reproduce.config import SG_DEFAULT_OUT, SmoothGradReproConfig
from smoothsal.studies.store import ResultsStore

if TYPE_CHECKING:
    from tqdm import tqdm

    from smoothsal.studies.train import TrainConfig, TrainedModel

__all__ = ["DIGIT_REGIMES", "SmoothGradResults", "compute_smoothgrad", "discriminativity_classes"]

#: records of the claims (:func:`~smoothsal.studies.reproduce.sg_claims.compute_claims`): σ grid × 2
#: data sets, SSIM-vs-n × 2, discriminativity × 2, training noise
CLAIM_UNITS = 7
#: Figs. 8–9's 2 × 2: (train regime, explain regime).
DIGIT_REGIMES: tuple[tuple[str, str], ...] = (
    ("plain", "gradient"), ("plain", "smoothgrad"), ("noisy", "gradient"), ("noisy", "smoothgrad"),
)  # fmt: skip


@dataclass
class SmoothGradResults:
    """What the figures and tables of ``reproduce smoothgrad`` are drawn from (all from the store)."""

    config: SmoothGradReproConfig
    options: RunOptions
    image_size: int
    class_names: list[str] | None
    names: list[str]
    displays: list[np.ndarray]
    inputs: Tensor
    targets: Tensor
    lines: dict[str, JSONObject] = field(default_factory=dict)
    line_ends: np.ndarray | None = None
    fig3: dict[float, np.ndarray] = field(default_factory=dict)
    fig4_sizes: list[int] = field(default_factory=list)
    fig4: np.ndarray | None = None
    fig4_se: JSONObject = field(default_factory=dict)
    fig4_se_maps: np.ndarray | None = None
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    disc: dict[str, np.ndarray] = field(default_factory=dict)
    disc_classes: list[int] = field(default_factory=list)
    disc_display: np.ndarray | None = None
    digit_rows: list[JSONObject] = field(default_factory=list)
    digit_maps: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    digit_inputs: np.ndarray | None = None
    claims: JSONObject = field(default_factory=dict)
    config_hash: str = ""
    seconds: float = 0.0


def discriminativity_classes(logits: Tensor) -> list[int]:
    """The two classes contrasted in Fig. 6 from the logits ``[2, K]`` of the two single-object photos.

    Each photo's top-1 class; if both photos share it (an untrained model), the second photo's
    best other class, so the two maps always explain different classes.
    """
    first = int(logits[0].argmax())
    order = logits[1].argsort(descending=True).tolist()
    second = next(int(c) for c in order if int(c) != first)
    return [first, second]


def _line(method: Attribution | Smooth, x: Tensor, target: Tensor, res: SmoothGradResults) -> tuple[Tensor, JSONObject]:
    import warnings

    from smoothsal.metrics.jaggedness import gradient_along_line

    config, options = res.config, res.options
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        line = gradient_along_line(
            method, x, target, t_steps=config.line_steps, eps_std=config.line_eps, seed=options.seed,
            batch_size=options.batch_size, max_memory=options.max_memory,
        )  # fmt: skip
    meta: JSONObject = {
        "t": line.t.tolist(), "partials": line.partials.tolist(), "raw_partials": line.raw_partials.tolist(),
        "keeps_class": line.keeps_class.tolist(), "pixel": list(line.pixel), "target": line.target,
        "predicted": line.predicted, "roughness": line.roughness, "warnings": [str(w.message) for w in caught],
    }  # fmt: skip
    ends = torch.cat([x, (x + line.direction).clamp(0, 1)])  # [2, C, H, W]: t = 0 and t = 1
    return ends, meta


def _progress(options: RunOptions, total: int) -> tqdm:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="reproduce smoothgrad", unit="unit", disable=not options.progress)


def compute_smoothgrad(
    config: SmoothGradReproConfig, options: RunOptions | None = None, echo: Callable[[str], object] | None = None
) -> SmoothGradResults:
    """Load the model and photos, then compute (or read back) every unit of ``config``, run as
    ``options`` say (default :class:`~smoothsal.studies.options.RunOptions`: ``out/reproduce/smoothgrad``)."""
    from smoothsal.datasets.photos import bundled_photos, cat_and_coffee
    from smoothsal.models.zoo import load_model
    from smoothsal.studies.explain.compute import DISCRIMINATIVITY_PHOTOS, load_images, sample_size_series

    t0 = time.perf_counter()
    options = options if options is not None else RunOptions()
    loaded = load_model(config.model, image_size=config.image_size)
    net = loaded.model.to(options.torch_device()).eval()
    size = loaded.image_size
    photos = load_images(config.images, size)
    inputs = torch.cat([p.tensor for p in photos])  # [N, 3, S, S] in [0, 1]
    logits = options.predict(net, inputs).cpu()
    targets = logits.argmax(dim=1)
    store = ResultsStore(options.out_dir(SG_DEFAULT_OUT), "reproduce_smoothgrad", config.to_hash(options.seed),
                         fresh=options.fresh)  # fmt: skip
    res = SmoothGradResults(config, options, size, loaded.class_names, [p.name for p in photos],
                            [p.display for p in photos], inputs, targets, config_hash=store.config_hash)  # fmt: skip
    if echo is not None and loaded.class_names is not None:
        echo("targets: " + ", ".join(f"{n}: {loaded.class_names[int(t)].split(',')[0]}" for n, t in zip(res.names, targets)))
    n_methods = len(config.methods)
    bar = _progress(options, 2 + len(config.noise_levels) + 2 + 4 * n_methods + len(DIGIT_REGIMES)
                    + (CLAIM_UNITS if config.claims else 0))  # fmt: skip
    spec = config.smooth_spec(options.seed)

    def method(name: str, smooth: SmoothSpec | None) -> Attribution | Smooth:
        return options.build_method(name, net, smooth, image_size=size, **config.overrides(name, smooth is not None))

    # Fig. 2: the jagged line (gradient) and the same line under SmoothGrad
    x0, t_0 = inputs[:1], targets[:1]
    for kind in ("gradient", "smoothgrad"):
        smooth = None if kind == "gradient" else spec.replace(n_samples=config.line_samples)
        ends, meta = store.array(
            {"kind": "line", "explain": kind, "steps": config.line_steps, "eps": config.line_eps,
             "samples": config.line_samples if smooth else 0},
            lambda smooth=smooth: _line(method("grad", smooth), x0, t_0, res),
        )  # fmt: skip
        res.lines[kind] = meta
        res.line_ends = ends
        bar.update(1)

    # Figs. 5 and 7: each method raw and smoothed
    for name in config.methods:
        for smoothed in (False, True):
            def one(name: str = name, smoothed: bool = smoothed) -> tuple[Tensor, JSONObject]:
                t = time.perf_counter()
                maps = method(name, spec if smoothed else None).attribute(inputs, targets)
                return maps, {"seconds": round(time.perf_counter() - t, 3)}

            res.maps[f"{name}_smooth" if smoothed else name], _ = store.array(
                {"kind": "map", "method": name, "smoothed": smoothed}, one
            )
            bar.update(1)

    # Fig. 3: noise levels × images. Its σ = 0 column is Fig. 5's plain gradient and its
    # σ = config.noise_level column is Fig. 5's SmoothGrad (same inputs, targets, seed and n): those
    # two are reused from Fig. 5's maps (computed above), not computed a second time.
    reuse = {0.0: "grad", config.noise_level: "grad_smooth"} if "grad" in config.methods else {}
    for level in config.noise_levels:
        if level in reuse:
            res.fig3[level] = res.maps[reuse[level]]
            bar.update(1)
            continue

        def at_level(level: float = level) -> tuple[Tensor, JSONObject]:
            smooth = None if level == 0 else spec.replace(noise_level=level)
            return method("grad", smooth).attribute(inputs, targets), {}

        res.fig3[level], _ = store.array({"kind": "fig3", "noise_level": level}, at_level)
        bar.update(1)

    # Fig. 4: sample sizes (one continued draw sequence per image) + the n the standard error asks for
    k = min(config.fig4_images, len(photos))
    sizes = list(config.sample_sizes)

    def series() -> tuple[Tensor, JSONObject]:
        return sample_size_series(net, inputs[:k], targets[:k], sizes, spec, batch_size=options.batch_size,
                                  max_memory=options.max_memory), {}  # fmt: skip

    res.fig4, _ = store.array({"kind": "fig4", "sizes": sizes, "images": k}, series)
    res.fig4_sizes = sizes
    bar.update(1)

    def se_n() -> tuple[Tensor, JSONObject]:
        cap = config.se_max_samples
        sg = options.build_method("grad", net, spec.replace(n_samples=cap, tol=config.tol, min_samples=min(16, cap)))
        est = sg.estimate(inputs[:k], targets[:k])
        return est.attributions, {"n_samples": est.n_samples.tolist(), "relative_stderr": est.relative_stderr().tolist(),
                                  "tol": config.tol, "cap": cap}  # fmt: skip

    res.fig4_se_maps, meta = store.array({"kind": "fig4_se", "tol": config.tol, "images": k,
                                          "cap": config.se_max_samples}, se_n)  # fmt: skip
    res.fig4_se = {key: v for key, v in meta.items() if key != "array"}
    bar.update(1)

    # Fig. 6: discriminativity on the two-object image
    both = cat_and_coffee(size)
    refs = torch.cat([p.tensor for p in bundled_photos(list(DISCRIMINATIVITY_PHOTOS), size)])
    res.disc_classes = discriminativity_classes(options.predict(net, refs).cpu())
    res.disc_display = both.display
    classes = torch.tensor(res.disc_classes)
    pair = both.tensor.expand(2, -1, -1, -1).clone()  # the same image, two targets
    for name in config.methods:
        for smoothed in (False, True):
            res.disc[f"{name}_smooth" if smoothed else name], _ = store.array(
                {"kind": "disc", "method": name, "smoothed": smoothed, "classes": res.disc_classes},
                lambda name=name, smoothed=smoothed: (method(name, spec if smoothed else None).attribute(pair, classes), {}),
            )  # fmt: skip
            bar.update(1)

    # Figs. 8-9: training noise × SmoothGrad on digits
    _compute_digits(res, store, bar)

    # the paper's claims as numbers with intervals, controls and verdicts
    if config.claims:
        from smoothsal.studies.reproduce.sg_claims import compute_claims

        res.claims = compute_claims(config, options, store, net, size, bar, echo)
    bar.close()
    res.seconds = round(time.perf_counter() - t0, 2)
    return res


def _digit_base(config: SmoothGradReproConfig, train: str) -> TrainConfig:
    from smoothsal.studies.train import TrainConfig

    return TrainConfig(dataset="digits", epochs=config.digit_epochs, input_noise=config.digit_noise if train == "noisy" else 0.0)


def _compute_digits(res: SmoothGradResults, store: ResultsStore, bar: tqdm) -> None:
    from smoothsal.metrics.tradeoff import stability_from_maps
    from smoothsal.studies.train import held_out_inputs, models_for_setting

    config, options = res.config, res.options
    base = _digit_base(config, "plain")
    sub = held_out_inputs("digits", base.image_size, config.digit_inputs, options.seed)
    inputs, labels = sub.images, sub.labels
    show = min(config.digit_show, config.digit_inputs)
    res.digit_inputs = inputs[:show].numpy()
    cache: dict[str, list[TrainedModel]] = {}

    def models(train: str) -> list[TrainedModel]:
        if train not in cache:  # trained (or read from the model cache) only when a cell is missing
            trained = models_for_setting("DT", dataset="digits", n_models=config.digit_models,
                                         base=_digit_base(config, train), cache_dir=config.cache_dir,
                                         progress=options.progress)  # fmt: skip
            for t in trained:
                t.model.to(options.torch_device()).eval()
            cache[train] = trained
        return cache[train]

    for train, explain in DIGIT_REGIMES:
        smooth = config.smooth_spec(options.seed) if explain == "smoothgrad" else None

        def cell(train: str = train, explain: str = explain, smooth: SmoothSpec | None = smooth) -> tuple[Tensor, JSONObject]:
            trained = models(train)
            maps = [options.attribution_maps(options.build_method("grad", t.model, smooth), inputs, labels) for t in trained]
            stab = stability_from_maps(maps)
            return maps[0][:show], {
                "train": train, "explain": explain,
                "train_noise": config.digit_noise if train == "noisy" else 0.0,
                "explain_noise": config.noise_level if smooth else 0.0,
                "test_accuracy": sum(float(t.test_accuracy) for t in trained) / len(trained),
                "stability_mean": stab.mean, "stability_norm_mean": stab.mean_normalized,
                "ssim_mean": stab.ssim, "topk_iou_mean": stab.topk_iou,
                "n_models": len(trained), "n_inputs": int(inputs.shape[0]),
            }  # fmt: skip

        arr, meta = store.array({"kind": "digits", "train": train, "explain": explain, "show": show,
                                 "digit_noise": config.digit_noise, "epochs": config.digit_epochs,
                                 "models": config.digit_models, "inputs": config.digit_inputs}, cell)  # fmt: skip
        res.digit_maps[(train, explain)] = arr
        res.digit_rows.append({k: v for k, v in meta.items() if k != "array"})
        bar.update(1)
