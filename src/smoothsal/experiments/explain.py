"""``smoothsal explain``: every chosen method, raw and smoothed, on photos (SmoothGrad Fig. 5 layout).

Computes, for a batch of images, each method's raw map and its smoothed map (:class:`Smooth`),
then writes

* ``grid.png``: rows = images, columns = the image, then each method raw | smoothed;
* ``maps.npz``: every map (``{method}`` and ``{method}_smooth``, ``[N, C, H, W]``), the images and
  targets;
* ``summary.json``: top-5 classes per image, targets, settings, per-method wall time, the smoothed
  maps' relative standard error, IG's completeness gap and DeepLIFT's summation-to-delta gap;
* with ``extras``: the SmoothGrad paper's other figures on the first image: ``noise_levels.png``
  (Fig. 3: σ from 0 to 50 %), ``sample_sizes.png`` (Fig. 4: n from 1 to ``n_samples``),
  ``visualization.png`` (absolute vs signed vs ×input, capped vs not) and ``discriminativity.png``
  (Fig. 6: the cat beside the coffee, scale(M_cat) − scale(M_coffee)).

Each map is cached in ``out/cache`` under a key of its settings as soon as it is computed, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from smoothsal import render
from smoothsal.datasets.photos import BUNDLED, Photo, bundled_photos, cat_and_coffee, load_image, to_tensor
from smoothsal.methods.registry import build_method, method_label, parse_methods
from smoothsal.smoothing import Smooth, SmoothGrad
from smoothsal.zoo import load_model

DEFAULT_METHODS = ("grad", "ig", "guided", "gradcam")
NOISE_LEVELS = (0.0, 0.05, 0.10, 0.20, 0.30, 0.50)
SAMPLE_SIZES = (1, 10, 50, 100, 200, 400, 800)


def _key(**settings: Any) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _MapCache:
    """One ``.npy`` per computed map, keyed by its settings: an interrupted run resumes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def get_or_compute(self, key: str, compute) -> tuple[Tensor, dict]:
        path, meta_path = self.folder / f"{key}.npy", self.folder / f"{key}.json"
        if path.exists() and meta_path.exists():
            return torch.from_numpy(np.load(path)), json.loads(meta_path.read_text())
        t0 = time.perf_counter()
        value, meta = compute()
        meta = {**meta, "seconds": round(time.perf_counter() - t0, 3)}
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, value.numpy())
        tmp.replace(path)
        meta_path.write_text(json.dumps(meta))
        return value, meta


def _style(name: str) -> str:
    """How each method's map is shown: gradients as the paper's gray |map|, CAMs as overlays."""
    return "overlay" if name in ("gradcam", "gradcam++", "occlusion") else "abs"


def _method_kwargs(name: str, smoothed: bool, ig_steps: int, smooth_ig_steps: int) -> dict:
    if name == "ig":
        return {"steps": smooth_ig_steps if smoothed else ig_steps}
    if name == "occlusion":
        return {"window": 32, "stride": 16}
    return {}


def load_images(images: Sequence[str] | None, size: int) -> list[Photo]:
    """Bundled photos (``None``/empty, or bundled names) and image files, at ``size``."""
    if not images:
        return bundled_photos(size=size)
    return [
        bundled_photos([p], size=size)[0] if p in BUNDLED and not Path(p).exists() else load_image(p, size)
        for p in images
    ]


def top_k(model, x: Tensor, class_names: list[str] | None, k: int = 5) -> list[list[dict]]:
    """Top-k classes and probabilities per image."""
    with torch.no_grad():
        probs = model(x).softmax(dim=1)
    values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
    return [
        [
            {"class": int(i), "name": (class_names[int(i)] if class_names else str(int(i))), "prob": round(float(p), 4)}
            for p, i in zip(vs, ix)
        ]
        for vs, ix in zip(values, indices)
    ]


def run_explain(
    images: Sequence[str] | None = None,
    *,
    model: str = "lite0",
    methods: Sequence[str] | str = DEFAULT_METHODS,
    noise_level: float = 0.15,
    n_samples: int = 50,
    tol: float | None = None,
    target: int | None = None,
    out_dir: str | Path = "out/explain",
    ig_steps: int = 32,
    smooth_ig_steps: int = 8,
    batch_size: int = 16,
    seed: int = 0,
    extras: bool = True,
    progress: bool = True,
    echo=print,
) -> dict:
    """Explain ``images`` with ``methods``, raw and smoothed, and write the figures (module docstring).

    Returns the summary dictionary that is also written to ``summary.json``.
    """
    t_start = time.perf_counter()
    names = parse_methods(list(methods) if not isinstance(methods, str) else methods)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    loaded = load_model(model)
    net, size = loaded.model, loaded.image_size
    photos = load_images(images, size)
    x = torch.cat([p.tensor for p in photos])  # [N, 3, S, S] in [0, 1]
    tops = top_k(net, x, loaded.class_names)
    targets = torch.tensor([t[0]["class"] for t in tops]) if target is None else torch.full((len(photos),), target)
    if target is not None and loaded.class_names and not 0 <= target < len(loaded.class_names):
        raise ValueError(f"`target` must lie in [0, {len(loaded.class_names) - 1}], got {target}")
    for photo, top in zip(photos, tops):
        echo(f"{photo.name}: " + ", ".join(f"{t['name'].split(',')[0]} {t['prob']:.3f}" for t in top))

    smooth_kw = {"noise_level": noise_level, "n_samples": n_samples, "batch_size": batch_size, "seed": seed, "tol": tol}
    base_key = {"model": model, "images": [p.name for p in photos], "targets": targets.tolist(), "size": size}
    cache = _MapCache(out / "cache")
    maps: dict[str, Tensor] = {}
    method_summary: dict[str, dict] = {}
    jobs = [(n, s) for n in names for s in (False, True)]
    bar = tqdm(jobs, desc="explain", disable=not progress, unit="map")
    for name, smoothed in bar:
        bar.set_postfix_str(method_label(name, smoothed))
        kwargs = _method_kwargs(name, smoothed, ig_steps, smooth_ig_steps)
        key = _key(**base_key, method=name, kwargs=kwargs, smooth=smooth_kw if smoothed else None)

        def compute(name=name, smoothed=smoothed, kwargs=kwargs):
            method = build_method(name, net, **kwargs)
            meta: dict[str, Any] = {}
            if smoothed:
                est = Smooth(method, **smooth_kw).estimate(x, targets)
                meta["relative_stderr"] = [round(float(v), 4) for v in est.relative_stderr()]
                meta["n_samples"] = est.n_samples.tolist()
                return est.attributions, meta
            if name == "ig":
                attr, gap = method.attribute_with_gap(x, targets)
                meta["completeness_gap"] = [float(g) for g in gap]
                return attr, meta
            if name == "deeplift":
                attr, delta = method.attribute_with_delta(x, targets)
                meta["summation_to_delta_gap"] = [float(d) for d in delta]
                return attr, meta
            return method.attribute(x, targets), meta

        value, meta = cache.get_or_compute(key, compute)
        maps[f"{name}_smooth" if smoothed else name] = value
        method_summary.setdefault(name, {})["smooth" if smoothed else "raw"] = meta

    _save_main_grid(photos, names, maps, out / "grid.png", noise_level,
                    f"n ≤ {n_samples}, stop at relative SE {tol}" if tol else f"n = {n_samples}")
    np.savez_compressed(
        out / "maps.npz",
        images=x.numpy(),
        targets=targets.numpy(),
        **{k: v.numpy() for k, v in maps.items()},
    )
    figures = ["grid.png"]
    if extras:
        figures += _extras(net, photos[0], int(targets[0]), out, cache, base_key, smooth_kw, progress)
        if loaded.class_names is not None and model in ("lite0", "lite1", "lite2"):
            figures.append(_discriminativity(net, size, out, smooth_kw, loaded.class_names))

    summary = {
        "model": model,
        "image_size": size,
        "settings": {**smooth_kw, "ig_steps": ig_steps, "smooth_ig_steps": smooth_ig_steps, "target": target},
        "images": [
            {"name": p.name, "target": int(t), "top5": top} for p, t, top in zip(photos, targets, tops)
        ],
        "methods": method_summary,
        "figures": figures,
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    echo(f"wrote {', '.join(figures)}, maps.npz and summary.json to {out}/ in {summary['seconds']:.1f} s")
    return summary


def _save_main_grid(photos: list[Photo], names: list[str], maps: dict[str, Tensor], path: Path,
                    noise_level: float, n_label: str) -> None:
    rows, labels = [], ["image"]
    for name in names:
        labels += [method_label(name), method_label(name, smoothed=True)]
    for i, photo in enumerate(photos):
        row = [photo.display]
        for name in names:
            for key in (name, f"{name}_smooth"):
                row.append(render.render_map(maps[key][i], photo.display, style=_style(name)))
        rows.append(row)
    render.save_grid(
        rows, path, row_labels=[p.name for p in photos], col_labels=labels,
        title=f"raw vs smoothed (noise level {noise_level:.0%}, {n_label}); |map|, capped at the 99th percentile",
    )


def _extras(net, photo: Photo, target: int, out: Path, cache: _MapCache, base_key: dict,
            smooth_kw: dict, progress: bool) -> list[str]:
    """The SmoothGrad paper's Figs. 3 and 4 and the visualization lessons, on one photo."""
    x, t = photo.tensor, torch.tensor([target])
    noise_level, n_samples, seed = smooth_kw["noise_level"], smooth_kw["n_samples"], smooth_kw["seed"]
    key = {**base_key, "photo": photo.name, "target": target}

    def sg(level: float) -> Tensor:
        kw = {**smooth_kw, "noise_level": level} if level > 0 else {**smooth_kw, "n_samples": 1, "tol": None}
        k = _key(**key, extra="sg", **kw)  # σ = 0 is the plain gradient: one sample is exact
        return cache.get_or_compute(k, lambda: (SmoothGrad(net, **kw).attribute(x, t), {}))[0][0]

    levels = {lv: sg(lv) for lv in tqdm(NOISE_LEVELS, desc="noise levels", disable=not progress, unit="map")}
    noise_row = [render.render_map(levels[lv]) for lv in NOISE_LEVELS]
    n_label = f"n ≤ {n_samples}, tol {smooth_kw['tol']}" if smooth_kw.get("tol") else f"n = {n_samples}"
    render.save_grid([[photo.display, *noise_row]], out / "noise_levels.png",
                     col_labels=["image", *[f"σ = {lv:.0%}" for lv in NOISE_LEVELS]],
                     title=f"SmoothGrad vs noise level ({n_label}); σ = 0 is the vanilla gradient")

    sizes = sorted({n for n in SAMPLE_SIZES if n < n_samples} | {n_samples})
    k = _key(**key, extra="sizes", sizes=sizes, noise_level=noise_level, seed=seed)
    series = cache.get_or_compute(k, lambda: (_sample_size_series(net, x, t, sizes, smooth_kw, progress), {}))[0]
    render.save_grid([[photo.display, *[render.render_map(m) for m in series]]], out / "sample_sizes.png",
                     col_labels=["image", *[f"n = {n}" for n in sizes]],
                     title=f"SmoothGrad vs sample size (noise level {noise_level:.0%}); each n extends the previous draws")

    vanilla, smooth = levels[0.0], levels.get(noise_level, series[-1])
    styles = [("abs", 99.0, "|map|, 99th pct cap"), ("abs", 100.0, "|map|, no cap"),
              ("signed", 99.0, "signed"), ("x_input", 99.0, "× input")]
    rows = [[render.render_map(m, photo.display, style=s, percentile=p) for s, p, _ in styles] for m in (vanilla, smooth)]
    render.save_grid(rows, out / "visualization.png", row_labels=["gradient", "SmoothGrad"],
                     col_labels=[lab for _, _, lab in styles],
                     title="visualization choices (signed: red +, blue −, gray 0)")
    return ["noise_levels.png", "sample_sizes.png", "visualization.png"]


def _sample_size_series(net, x: Tensor, t: Tensor, sizes: list[int], smooth_kw: dict, progress: bool) -> Tensor:
    """SmoothGrad at each n in ``sizes`` for the cost of ``max(sizes)`` samples.

    One generator is continued from segment to segment, so the map at n is the running mean of the
    first n draws, exactly what ``SmoothGrad(n_samples=n, seed=seed)`` gives.
    """
    gen = torch.Generator().manual_seed(smooth_kw["seed"])
    total, done, maps = torch.zeros_like(x[0]), 0, []
    for n in tqdm(sizes, desc="sample sizes", disable=not progress, unit="map"):
        sg = SmoothGrad(net, noise_level=smooth_kw["noise_level"], n_samples=n - done,
                        batch_size=smooth_kw["batch_size"], seed=gen)
        total += sg.attribute(x, t)[0] * (n - done)
        done = n
        maps.append(total / done)
    return torch.stack(maps)


def _discriminativity(net, size: int, out: Path, smooth_kw: dict, class_names: list[str]) -> str:
    """SmoothGrad Fig. 6: which pixels favour the cat's class over the coffee's, on one two-object image."""
    both = cat_and_coffee(size)
    with torch.no_grad():
        cls_cat = int(net(bundled_photos(["chelsea"], size)[0].tensor).argmax())
        cls_cup = int(net(bundled_photos(["coffee"], size)[0].tensor).argmax())
    x = both.tensor.expand(2, -1, -1, -1)
    t = torch.tensor([cls_cat, cls_cup])
    raw = build_method("grad", net).attribute(x, t)
    smooth = SmoothGrad(net, **smooth_kw).attribute(x, t)
    name_cat, name_cup = class_names[cls_cat].split(",")[0], class_names[cls_cup].split(",")[0]
    rows = []
    for m in (raw, smooth):
        rows.append([
            both.display,
            render.render_map(m[0]),
            render.render_map(m[1]),
            render.diverging_rgb(render.discriminativity(m[0], m[1])),
        ])
    render.save_grid(rows, out / "discriminativity.png", row_labels=["gradient", "SmoothGrad"],
                     col_labels=["image", name_cat, name_cup, f"{name_cat} − {name_cup}"],
                     title="discriminativity: red favours the first class, blue the second")
    return "discriminativity.png"


__all__ = ["run_explain", "load_images", "top_k", "to_tensor"]
