"""Compute step of ``smoothsal explain``: every map, recorded in the results store as it finishes.

Units of work (each one record of :class:`~smoothsal.studies.store.ResultsStore`, with its array):

* ``{"kind": "map", "method", "smoothed", "settings"}``: one method's maps of every image,
  raw or smoothed (:class:`~smoothsal.smoothing.Smooth`), ``[N, C, H, W]`` (``[N, 1, H, W]``
  for CAMs). Raw maps of a method with ``has_convergence_delta`` (IG, DeepLIFT) record its
  convergence delta (absolute and relative gap, IG's steps per image); smoothed maps record their
  relative standard error and sample count, and for IG/DeepLIFT the gaps of the inner runs
  (:class:`~smoothsal.smoothing.SmoothedDelta`: mean and max relative gap over the noisy samples);
* ``{"kind": "noise_level", "noise_level"}``: SmoothGrad of the first image at one noise level
  (σ = 0: the vanilla gradient) — SmoothGrad Fig. 3 (Smilkov et al. 2017, arXiv:1706.03825);
* ``{"kind": "sample_sizes", "sizes"}``: SmoothGrad of the first image at each sample size, one
  continued draw sequence (Fig. 4). These are the grid's SmoothGrad of that image at fewer
  samples (:meth:`~smoothsal.smoothing.Smooth.estimate` ``snapshots``), kept while the grid's
  map is computed, so the figure costs no draws of its own and its last panel *is* the grid's
  map; drawn separately (:func:`sample_size_series`, the same draws) only when ``tol`` stopped
  the first image before the largest size, or on a resume that has the grid but not the series;
* ``{"kind": "discriminativity", "image_size"}``: gradient and SmoothGrad of the cat-beside-the-
  coffee image for both classes (Fig. 6), for models with ImageNet class names.

An interrupted run resumes: finished units are read back, bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np
import torch
from torch import Tensor

from smoothsal._core.jsontypes import JSONObject
from smoothsal.datasets.photos import Photo, bundled_photos, cat_and_coffee, load_image
from smoothsal.execution.memory import MemorySpec
from smoothsal.registry import build_method, method_label
from smoothsal.smoothing_spec import SmoothSpec
from smoothsal.studies.explain.config import DEFAULT_OUT, ExplainConfig
from smoothsal.studies.options import RunOptions
from smoothsal.studies.store import ResultsStore

__all__ = [
    "DISCRIMINATIVITY_PHOTOS",
    "Discriminativity",
    "ExplainResults",
    "TopClass",
    "compute_explain",
    "load_images",
    "prediction_line",
    "sample_size_series",
    "top_k",
]

#: The two photos whose top-1 classes the discriminativity figure contrasts (SmoothGrad Fig. 6).
DISCRIMINATIVITY_PHOTOS: tuple[str, str] = ("chelsea", "coffee")

#: One of an image's top classes: its index, name and probability.
TopClass = TypedDict("TopClass", {"class": int, "name": str, "prob": float})


@dataclass
class Discriminativity:
    """SmoothGrad Fig. 6's maps of the two-object image.

    Attributes:
        maps: ``[2 (gradient, SmoothGrad), 2 (classes), C, H, W]``.
        classes: the two classes explained. display: the image as shown.
    """

    maps: np.ndarray
    classes: list[int]
    display: np.ndarray


@dataclass
class ExplainResults:
    """What the figures and the summary are drawn from (all read back from, or written to, the store).

    Attributes:
        config: the run's settings. options: how it ran. image_size: side of the model's inputs.
        class_names: the model's class names, or ``None``.
        photos: the images (model-ready tensor and display copy).
        inputs: ``[N, 3, S, S]`` in [0, 1]. targets: ``[N]`` explained classes.
        top5: per image, the top classes ``{"class", "name", "prob"}``.
        maps: ``"{method}"`` and ``"{method}_smooth"`` -> ``[N, C, H, W]`` arrays.
        meta: ``method -> {"raw": {...}, "smooth": {...}}`` (seconds, convergence delta, relative
            standard error, samples used).
        noise_level_maps: noise level -> map ``[C, H, W]`` of the first image (extras).
        sample_sizes: the sizes of ``sample_size_maps`` ``[len(sizes), C, H, W]`` (extras).
        discriminativity: SmoothGrad Fig. 6's maps (extras, ImageNet models only).
        config_hash: the store's hash of the configuration. seconds: compute wall time.
    """

    config: ExplainConfig
    options: RunOptions
    image_size: int
    class_names: list[str] | None
    photos: list[Photo]
    inputs: Tensor
    targets: Tensor
    top5: list[list[TopClass]]
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, dict[str, JSONObject]] = field(default_factory=dict)
    noise_level_maps: dict[float, np.ndarray] | None = None
    sample_sizes: list[int] | None = None
    sample_size_maps: np.ndarray | None = None
    discriminativity: Discriminativity | None = None
    config_hash: str = ""
    seconds: float = 0.0


def load_images(images: Sequence[str], size: int) -> list[Photo]:
    """Bundled photos (all of them for an empty ``images``) and image files, at ``size``.

    An existing file wins over a bundled photo of the same name (as in :class:`ExplainConfig`).
    """
    if not images:
        return bundled_photos(size=size)
    return [load_image(p, size) if Path(p).is_file() else bundled_photos([p], size)[0] for p in images]


def top_k(logits: Tensor, class_names: list[str] | None, k: int = 5) -> list[list[TopClass]]:
    """The top-``k`` classes and probabilities of each row of ``logits`` ``[N, classes]``."""
    probs = logits.softmax(dim=1)
    values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
    return [
        [
            TopClass({"class": int(i), "name": class_names[int(i)] if class_names else str(int(i)),
                      "prob": round(float(p), 4)})  # fmt: skip
            for p, i in zip(vs, ix)
        ]
        for vs, ix in zip(values, indices)
    ]


def prediction_line(name: str, top: list[TopClass]) -> str:
    """``chelsea: tabby 0.412, tiger cat 0.213, ...`` (first synonym of each class name)."""
    return f"{name}: " + ", ".join(f"{t['name'].split(',')[0]} {t['prob']:.3f}" for t in top)


def sample_size_series(
    model: torch.nn.Module,
    inputs: Tensor,
    targets: Tensor,
    sizes: Sequence[int],
    smooth: SmoothSpec,
    *,
    batch_size: int | None = None,
    max_memory: MemorySpec = None,
) -> Tensor:
    """SmoothGrad of each input at every n of ``sizes`` for the cost of ``max(sizes)`` samples.

    The estimate at n is kept on the way (:meth:`~smoothsal.smoothing.Smooth.estimate`
    ``snapshots``): the mean of the first n draws of one sequence, what ``Smooth(n_samples=n,
    seed=seed)`` gives on its own. Always takes the full n (no ``tol``: the figure is about n).
    Returns ``[B, len(sizes), ...]`` for ``inputs`` ``[B, ...]``.
    """
    sizes = sorted(set(sizes))
    sg = build_method("grad", model, smooth.replace(n_samples=sizes[-1], tol=None), batch_size=batch_size,
                      max_memory=max_memory)  # fmt: skip
    snaps = sg.estimate(inputs, targets, snapshots=sizes).snapshots
    return torch.stack([snaps[n] for n in sizes], dim=1)


def _map_unit(config: ExplainConfig, name: str, smoothed: bool, size: int) -> JSONObject:
    return {
        "kind": "map",
        "method": name,
        "smoothed": smoothed,
        "settings": config.method_settings(name, smoothed, size),
    }


def _compute_map(
    model: torch.nn.Module,
    config: ExplainConfig,
    options: RunOptions,
    name: str,
    smoothed: bool,
    inputs: Tensor,
    targets: Tensor,
    size: int,
    snapshots: Sequence[int] = (),
) -> tuple[Tensor, JSONObject, dict[int, Tensor] | None]:
    """One method's maps of all images, what to record beside them, and (smoothed, ``snapshots``
    given) the running estimates after each of those sample counts (:meth:`Smooth.estimate`)."""
    t0 = time.perf_counter()
    overrides = config.overrides(name, smoothed)
    meta: JSONObject = {}
    snapped = None
    if smoothed:
        method = options.build_method(name, model, config.smooth_spec(options.seed), image_size=size, **overrides)
        with_delta = bool(getattr(method, "has_convergence_delta", False))
        estimate = method.estimate(inputs, targets, with_delta=with_delta, snapshots=snapshots)
        attr, snapped = estimate.attributions, estimate.snapshots
        meta["relative_stderr"] = [round(float(v), 4) for v in estimate.relative_stderr()]
        meta["n_samples"] = [int(n) for n in estimate.n_samples]
        if estimate.delta is not None:  # the inner runs' gaps: mean and max over the noisy samples
            meta["convergence_delta"] = estimate.delta.summary()
    else:
        method = options.build_method(name, model, image_size=size, **overrides)
        if getattr(method, "has_convergence_delta", False):
            attr, delta = method.attribute_with_delta(inputs, targets)
            # |sum(attr) - (F(x) - F(x'))| and that over |F(x) - F(x')| (completeness / summation-to-delta),
            # and IG's path points per image
            meta["convergence_delta"] = delta.summary()
        else:
            attr = method.attribute(inputs, targets)
    meta["seconds"] = round(time.perf_counter() - t0, 3)
    return attr.detach(), meta, snapped


def compute_explain(
    config: ExplainConfig, options: RunOptions | None = None, echo: Callable[[str], object] | None = None
) -> ExplainResults:
    """Load the model and images, then compute (or read back) every unit of ``config``, run as
    ``options`` say (default :class:`~smoothsal.studies.options.RunOptions`: ``out/explain``).

    ``echo`` receives one line per image with its top-5 classes, before any map is computed.
    Raises ``ValueError`` for a ``target`` outside the model's classes (before any map).
    """
    from tqdm.auto import tqdm

    from smoothsal.models.zoo import load_model

    t_start = time.perf_counter()
    from smoothsal.execution.precision import with_precision

    options = options if options is not None else RunOptions()
    loaded = load_model(config.model, weights=config.weights, random_weights=config.random_weights)
    net = with_precision(loaded.model.to(options.torch_device()), config.precision)
    size = loaded.image_size
    photos = load_images(config.images, size)
    inputs = torch.cat([p.tensor for p in photos])  # [N, 3, S, S] in [0, 1]
    logits = options.predict(net, inputs)  # [N, classes]
    n_classes = logits.shape[1]
    if config.target is not None and config.target >= n_classes:
        raise ValueError(
            f"`target` must lie in [0, {n_classes - 1}] (the model has {n_classes} classes), got {config.target}"
        )
    tops = top_k(logits, loaded.class_names)
    if config.target is None:
        targets = torch.tensor([top[0]["class"] for top in tops])
    else:
        targets = torch.full((len(photos),), config.target, dtype=torch.long)
    if echo is not None:
        for photo, top in zip(photos, tops):
            echo(prediction_line(photo.name, top))

    store = ResultsStore(options.out_dir(DEFAULT_OUT), "explain", config.to_hash(options.seed), fresh=options.fresh)
    results = ExplainResults(
        config=config,
        options=options,
        image_size=size,
        class_names=loaded.class_names,
        photos=photos,
        inputs=inputs,
        targets=targets,
        top5=tops,
        config_hash=store.config_hash,
    )
    jobs = [(name, smoothed) for name in config.methods for smoothed in (False, True)]
    bar = tqdm(jobs, desc="explain", disable=not options.progress, unit="map")
    # SmoothGrad Fig. 4 (sample sizes, first image) is the grid's SmoothGrad of that image at fewer
    # samples of the same draws: kept on the way (snapshots) instead of drawn again
    sizes = config.figure_sample_sizes() if config.extras else []
    series: dict[str, Tensor] = {}

    def compute(name: str, smoothed: bool) -> tuple[Tensor, JSONObject]:
        snaps = sizes if (smoothed and name == "grad") else ()
        attr, meta, snapped = _compute_map(net, config, options, name, smoothed, inputs, targets, size, snaps)
        if snapped:
            series["maps"] = torch.stack([snapped[n][0] for n in sizes])  # [len(sizes), C, H, W]
        return attr, meta

    for name, smoothed in bar:
        bar.set_postfix_str(method_label(name, smoothed))
        arr, meta = store.array(
            _map_unit(config, name, smoothed, size), lambda name=name, smoothed=smoothed: compute(name, smoothed)
        )
        results.maps[f"{name}_smooth" if smoothed else name] = arr
        meta = {k: v for k, v in meta.items() if k != "array"}
        results.meta.setdefault(name, {})["smooth" if smoothed else "raw"] = meta

    if config.extras:
        _compute_extras(net, results, store, series.get("maps"))
        if loaded.class_names is not None:
            results.discriminativity = _compute_discriminativity(net, size, results, store)
    results.seconds = round(time.perf_counter() - t_start, 2)
    return results


def _compute_extras(
    net: torch.nn.Module, results: ExplainResults, store: ResultsStore, series: Tensor | None = None
) -> None:
    """SmoothGrad Figs. 3 and 4 on the first image (noise levels, sample sizes).

    ``series``: the sample-size maps kept while the grid's SmoothGrad ran (NaN where ``tol``
    stopped the first image before the largest size; then the series is drawn on its own).
    """
    from tqdm.auto import tqdm

    config, options = results.config, results.options
    x, t = results.inputs[:1], results.targets[:1]
    smooth = config.smooth_spec(options.seed)

    def at_level(level: float) -> tuple[Tensor, JSONObject]:
        if level == 0:  # σ = 0: the vanilla gradient, exactly
            return options.build_method("grad", net).attribute(x, t), {}
        return options.build_method("grad", net, smooth.replace(noise_level=level)).attribute(x, t), {}

    levels = {}
    for level in tqdm(config.noise_levels, desc="noise levels", disable=not options.progress, unit="map"):
        arr, _ = store.array({"kind": "noise_level", "noise_level": level}, lambda level=level: at_level(level))
        levels[level] = arr[0]
    results.noise_level_maps = levels

    sizes = config.figure_sample_sizes()

    def compute_series() -> tuple[Tensor, JSONObject]:
        if series is not None and bool(torch.isfinite(series).all()):
            return series, {"source": "snapshots of the grid's SmoothGrad"}
        return sample_size_series(net, x, t, sizes, smooth, batch_size=options.batch_size,
                                  max_memory=options.max_memory)[0], {}  # fmt: skip

    arr, _ = store.array({"kind": "sample_sizes", "sizes": sizes}, compute_series)
    results.sample_sizes, results.sample_size_maps = sizes, arr


def _compute_discriminativity(
    net: torch.nn.Module, size: int, results: ExplainResults, store: ResultsStore
) -> Discriminativity:
    """SmoothGrad Fig. 6: gradient and SmoothGrad of the two-object image for each object's class."""
    both = cat_and_coffee(size)
    options = results.options

    def compute() -> tuple[Tensor, JSONObject]:
        refs = torch.cat([p.tensor for p in bundled_photos(list(DISCRIMINATIVITY_PHOTOS), size)])
        classes = options.predict(net, refs).argmax(dim=1)  # [2]
        x = both.tensor.expand(2, -1, -1, -1).clone()  # [2, 3, S, S]: the same image, two targets
        raw = options.build_method("grad", net).attribute(x, classes)
        smooth = options.build_method("grad", net, results.config.smooth_spec(options.seed)).attribute(x, classes)
        return torch.stack([raw, smooth]), {"classes": classes.tolist()}  # [2, 2, C, S, S]

    arr, meta = store.array({"kind": "discriminativity", "image_size": size}, compute)
    return Discriminativity(maps=arr, classes=[int(c) for c in meta["classes"]], display=both.display)
