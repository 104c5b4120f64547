r"""SmoothGrad's claims measured (``reproduce smoothgrad`` writes ``claims.csv`` / ``claims.md``).

The claims, their scores, controls and the verdict rules are fixed in
:mod:`smoothsal.metrics.smoothgrad_claims`; this module computes the scores (each unit a record of
the run's :class:`~smoothsal.studies.store.ResultsStore`, so an interrupted run resumes) and turns
them into rows. Data:

* **synthetic** -- the synthetic scenes with object masks and the small CNN trained on them (the
  report card's localization data, :func:`smoothsal.studies.train.train_model`, cached);
* **mnist** -- held-out MNIST digits, the stroke pixels (:math:`x > 0.5`) as the object, the
  plain model of :func:`smoothsal.studies.train.noise_models` (LeNet-5, replicate 0);
* **photos** -- the pretrained model of the run (``config.model``, EfficientNet-Lite0 by
  default) on the bundled and natural photos (claims 3 and 4).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from smoothsal._core.jsontypes import JSONObject
from smoothsal.metrics.intervals import Interval, bootstrap_interval
from smoothsal.studies.options import RunOptions
from smoothsal.studies.reproduce.config import SmoothGradReproConfig
from smoothsal.studies.store import ResultsStore

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["CLAIM_COLUMNS", "ClaimRow", "claim_rows", "compute_claims", "mnist_composites", "photo_composites",
           "stroke_masks", "write_claims"]  # fmt: skip

#: the columns of ``claims.csv`` / ``claims.md``
CLAIM_COLUMNS: tuple[str, ...] = ("claim", "data", "quantity", "ours", "low", "high", "n", "control", "paper",
                                  "verdict", "rule")  # fmt: skip
#: part of every claim record's key: bump when what a record holds changes, so a resumed run never
#: mixes records of older code in
CLAIMS_VERSION = 1
#: claim 3's sample sizes (those up to ``config.claim_max_n``)
CLAIM_SIZES: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 200)


@dataclass
class ClaimRow:
    """One line of ``claims.md``: a claim (or one data set's part of it), our number and interval,
    the control, the paper's statement and the verdict."""

    claim: str
    data: str
    quantity: str
    interval: Interval
    control: str
    paper: str
    verdict: str
    rule: str
    extra: JSONObject = field(default_factory=dict)

    def as_dict(self) -> JSONObject:
        iv = self.interval
        return {"claim": self.claim, "data": self.data, "quantity": self.quantity, "ours": iv.estimate, "low": iv.low,
                "high": iv.high, "n": iv.n, "n_groups": iv.n_groups, "control": self.control, "paper": self.paper,
                "verdict": self.verdict, "rule": self.rule, **self.extra}  # fmt: skip


def stroke_masks(images: Tensor, threshold: float = 0.5) -> Tensor:
    """``[B, 1, H, W]`` MNIST's object: the stroke pixels brighter than ``threshold`` (of [0, 1])."""
    return images.detach().amax(dim=1, keepdim=True) > threshold


def mnist_composites(images: Tensor, labels: Tensor, n_pairs: int, seed: int) -> tuple[Tensor, Tensor]:
    """``n_pairs`` composites ``[n, 1, H, W]`` of two digits of different classes side by side, each
    digit halved (2 × 2 mean) and centred vertically in its half, and ``[n, 2]`` their classes
    (left, right). Pairs are drawn from ``images`` by ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    n, _, h, w = images.shape
    small = torch.nn.functional.avg_pool2d(images.float(), 2)  # [N, 1, h/2, w/2]
    sh, sw = small.shape[-2:]
    top = (h - sh) // 2
    out, classes = [], []
    while len(out) < n_pairs:
        i, j = torch.randint(0, n, (2,), generator=gen).tolist()
        if int(labels[i]) == int(labels[j]):
            continue
        canvas = torch.zeros(1, h, w)
        canvas[:, top : top + sh, :sw] = small[i]
        canvas[:, top : top + sh, w - sw :] = small[j]
        out.append(canvas)
        classes.append([int(labels[i]), int(labels[j])])
    return torch.stack(out), torch.tensor(classes)


def photo_composites(photos: Tensor, classes: Tensor, n_pairs: int) -> tuple[Tensor, Tensor]:
    """Composites of two photos with different classes: the central half-width strip of each photo
    side by side (``[n, C, H, W]``), and ``[n, 2]`` their classes; pairs ``(i, j)``, ``i < j`` in
    order, at most ``n_pairs``."""
    _, _, _, w = photos.shape
    q = w // 4
    out, cls = [], []
    for i, j in itertools.combinations(range(photos.shape[0]), 2):
        if int(classes[i]) == int(classes[j]):
            continue
        out.append(torch.cat([photos[i, :, :, q : q + w // 2], photos[j, :, :, q : q + w // 2]], dim=-1))
        cls.append([int(classes[i]), int(classes[j])])
        if len(out) == n_pairs:
            break
    return torch.stack(out), torch.tensor(cls)


@dataclass
class _Data:
    model: nn.Module
    inputs: Tensor
    targets: Tensor
    masks: Tensor


def _synthetic(config: SmoothGradReproConfig, options: RunOptions) -> _Data:
    from smoothsal.studies.train import TrainConfig, load_split, train_model

    trained = train_model(TrainConfig(dataset="synthetic", arch="cnn"), cache_dir=config.cache_dir, progress=options.progress)
    _, test = load_split("synthetic")
    data = test.subset(list(range(min(config.claim_images, len(test)))))
    return _Data(trained.model.to(options.torch_device()).eval(), data.images.float(), data.labels, data.masks)


def _mnist_models(config: SmoothGradReproConfig, options: RunOptions, n_pairs: int) -> list[tuple[nn.Module, nn.Module]]:
    from smoothsal.studies.train import noise_models

    pairs = noise_models(config.digit_noise, n_pairs=n_pairs, cache_dir=config.cache_dir, progress=options.progress)
    dev = options.torch_device()
    return [(p.model.to(dev).eval(), q.model.to(dev).eval()) for p, q in pairs]


def _mnist(config: SmoothGradReproConfig, options: RunOptions) -> _Data:
    from smoothsal.studies.train import held_out_inputs

    sub = held_out_inputs("mnist", 28, config.claim_images, options.seed)
    x = sub.images.float()
    return _Data(_mnist_models(config, options, 1)[0][0], x, sub.labels, stroke_masks(x))


def _scores(maps: Tensor, masks: Tensor) -> Tensor:
    """``[2, N]``: relevance mass of ``|map|`` inside the mask, pointing game."""
    from smoothsal.metrics.localization import pointing_game, relevance_mass

    return torch.stack([relevance_mass(maps, masks, relevance="abs").double(), pointing_game(maps, masks).double()])


def compute_claims(
    config: SmoothGradReproConfig,
    options: RunOptions,
    store: ResultsStore,
    net: nn.Module,
    size: int,
    bar: tqdm | None = None,
    echo: Callable[[str], object] | None = None,
) -> JSONObject:
    """Compute (or read back) every claim's scores; returns ``{unit name: (array, meta)}`` as JSON-ready
    metadata with the arrays as lists (small: scores per image)."""
    from smoothsal.datasets.photos import NATURAL_PHOTO_NAMES, natural_photos
    from smoothsal.metrics.smoothness import blur_to_smoothness, half_share, total_variation

    t0 = time.perf_counter()
    spec = config.smooth_spec(options.seed)
    levels = list(config.claim_noise_levels)
    out: JSONObject = {}
    loaded: dict[str, _Data] = {}

    def data(name: str) -> _Data:
        if name not in loaded:
            loaded[name] = _synthetic(config, options) if name == "synthetic" else _mnist(config, options)
        return loaded[name]

    def step() -> None:
        if bar is not None:
            bar.update(1)

    # claims 1 and 2: relevance mass over the σ grid, and the matched blur of the gradient
    for name in ("synthetic", "mnist"):
        def sigma_scores(name: str = name) -> tuple[Tensor, JSONObject]:
            d = data(name)
            rows, tv_sg = [], None
            grad = options.attribution_maps(options.build_method("grad", d.model), d.inputs, d.targets)
            for level in levels:
                maps = grad if level == 0 else options.attribution_maps(
                    options.build_method("grad", d.model, spec.replace(noise_level=level)), d.inputs, d.targets)
                rows.append(_scores(maps, d.masks))
                if level == config.noise_level:
                    tv_sg = total_variation(maps)
            if tv_sg is None:
                raise ValueError(f"`claim_noise_levels` must contain the run's noise_level {config.noise_level}")
            match = blur_to_smoothness(grad, tv_sg)
            rows.append(_scores(match.maps, d.masks))
            meta: JSONObject = {"levels": levels, "blur_sigma_mean": float(match.sigmas.mean()),
                                "blur_matched": int(match.matched.sum()), "tv_smoothgrad_mean": float(tv_sg.mean()),
                                "tv_gradient_mean": float(total_variation(grad).mean()),
                                "tv_blur_mean": float(match.tv.mean()), "n_images": int(d.inputs.shape[0])}  # fmt: skip
            return torch.stack(rows), meta  # [levels + 1 (blur), 2, N]

        arr, meta = store.array({"kind": "claim_sigma", "v": CLAIMS_VERSION, "data": name, "levels": levels, "images": config.claim_images,
                                 "n_samples": config.n_samples}, sigma_scores)  # fmt: skip
        out[f"sigma/{name}"] = {"scores": arr.tolist(), **{k: v for k, v in meta.items() if k != "array"}}
        step()

    # claim 3: n at which SSIM to a large-n map of independent draws reaches 0.9
    from smoothsal.metrics.sanity import second_estimate_seed
    from smoothsal.metrics.similarity import ssim_maps
    from smoothsal.studies.explain.compute import sample_size_series

    sizes = [n for n in CLAIM_SIZES if n <= config.claim_max_n]
    photos = natural_photos(list(NATURAL_PHOTO_NAMES[: max(config.claim_photos, config.photo_pairs_from)]), size)
    photo_x = torch.cat([p.tensor for p in photos])
    photo_t = options.predict(net, photo_x).argmax(dim=1).cpu()
    for name in ("mnist", "photos"):
        def ssim_curve(name: str = name) -> tuple[Tensor, JSONObject]:
            if name == "mnist":
                d = data("mnist")
                model, x, t, ref_n = d.model, d.inputs[: config.claim3_images], d.targets[: config.claim3_images], config.claim_ref_n
            else:
                model, x, t, ref_n = net, photo_x[: config.claim_photos], photo_t[: config.claim_photos], config.claim_photo_ref_n
            series = sample_size_series(model, x, t, sizes, spec, batch_size=options.batch_size, max_memory=options.max_memory)
            ref = options.attribution_maps(options.build_method(
                "grad", model, spec.replace(n_samples=ref_n, seed=second_estimate_seed(options.seed))), x, t)
            sims = torch.stack([ssim_maps(series[:, j], ref) for j in range(len(sizes))], dim=1)  # [N, S]
            return sims, {"sizes": sizes, "ref_n": ref_n, "n_images": int(x.shape[0])}

        arr, meta = store.array({"kind": "claim_ssim_n", "v": CLAIMS_VERSION, "data": name, "sizes": sizes, "images": config.claim3_images
                                 if name == "mnist" else config.claim_photos,
                                 "ref_n": config.claim_ref_n if name == "mnist" else config.claim_photo_ref_n},
                                ssim_curve)  # fmt: skip
        out[f"ssim_n/{name}"] = {"ssim": arr.tolist(), **{k: v for k, v in meta.items() if k != "array"}}
        step()

    # claim 4: discriminativity on composites, raw vs smoothed
    for name in ("mnist", "photos"):
        def discrimination(name: str = name) -> tuple[Tensor, JSONObject]:
            if name == "mnist":
                d = data("mnist")
                model = d.model
                x, cls = mnist_composites(d.inputs, d.targets, config.claim_pairs, options.seed)
            else:
                model = net
                x, cls = photo_composites(photo_x[: config.photo_pairs_from], photo_t[: config.photo_pairs_from],
                                          config.photo_pairs)  # fmt: skip
            shares = []
            for smooth in (None, spec):
                method = options.build_method("grad", model, smooth)
                per_side = [half_share(options.attribution_maps(method, x, cls[:, k]), torch.full((x.shape[0],), k))
                            for k in (0, 1)]  # fmt: skip
                shares.append(torch.stack(per_side).mean(dim=0))
            return torch.stack(shares), {"n_pairs": int(x.shape[0]), "classes": cls.tolist()}  # [2 (raw, smoothed), n]

        arr, meta = store.array({"kind": "claim_disc", "v": CLAIMS_VERSION, "data": name, "pairs": config.claim_pairs if name == "mnist"
                                 else config.photo_pairs, "from": config.photo_pairs_from,
                                 "n_samples": config.n_samples}, discrimination)  # fmt: skip
        out[f"disc/{name}"] = {"shares": arr.tolist(), **{k: v for k, v in meta.items() if k != "array"}}
        step()

    # claim 5: training with input noise, scored by claims 1 and 4 (the gradient)
    def noise_training() -> tuple[Tensor, JSONObject]:
        d = data("mnist")
        x, cls = mnist_composites(d.inputs, d.targets, config.claim_pairs, options.seed)
        rows = []
        for plain, noisy in _mnist_models(config, options, config.noise_pairs):
            per_model = []
            for model in (plain, noisy):
                method = options.build_method("grad", model)
                mass = _scores(options.attribution_maps(method, d.inputs, d.targets), d.masks)[0]
                share = torch.stack([half_share(options.attribution_maps(method, x, cls[:, k]), torch.full((x.shape[0],), k))
                                     for k in (0, 1)]).mean(dim=0)  # fmt: skip
                per_model.append(torch.cat([mass, share]))
            rows.append(torch.stack(per_model))
        return torch.stack(rows), {"n_images": int(d.inputs.shape[0]), "n_pairs": int(x.shape[0]),
                                   "noise_level": config.digit_noise}  # [pairs, 2 (plain, noisy), N + P]

    arr, meta = store.array({"kind": "claim_noise_training", "v": CLAIMS_VERSION, "pairs": config.noise_pairs, "images": config.claim_images,
                             "composites": config.claim_pairs, "noise": config.digit_noise}, noise_training)  # fmt: skip
    out["noise_training"] = {"scores": arr.tolist(), **{k: v for k, v in meta.items() if k != "array"}}
    step()
    out["seconds"] = round(time.perf_counter() - t0, 2)
    if echo is not None:
        echo(f"claims: scores ready in {out['seconds']:.1f} s")
    return out


def _fmt_pct(v: float) -> str:
    return f"{100 * v:g} %"


def claim_rows(results: JSONObject, config: SmoothGradReproConfig, seed: int = 0) -> list[ClaimRow]:
    """The rows of ``claims.md`` from :func:`compute_claims`' scores, by the rules of
    :mod:`smoothsal.metrics.smoothgrad_claims` (each claim's parts, then its combined verdict)."""
    from smoothsal.metrics.claims import difference_interval
    from smoothsal.metrics.smoothgrad_claims import (
        PAPER_BEST_SIGMA,
        PAPER_ENOUGH_SAMPLES,
        SSIM_TARGET,
        argmax_interval,
        combine_verdicts,
        direction_verdict,
        median_interval,
        n_reaching,
        range_verdict,
    )

    rows: list[ClaimRow] = []
    levels = list(config.claim_noise_levels)
    at = levels.index(config.noise_level)
    sg = f"SmoothGrad σ = {_fmt_pct(config.noise_level)}, n = {config.n_samples}"

    def summary(claim: str, parts: list[ClaimRow], paper: str, rule: str) -> None:
        verdict = combine_verdicts([p.verdict for p in parts])
        nan = float("nan")
        rows.append(ClaimRow(claim, "all", "combined", Interval(nan, nan, nan, sum(p.interval.n for p in parts)),
                             "", paper, verdict, rule))  # fmt: skip

    # 1. beyond blurring
    parts = []
    for name in ("synthetic", "mnist"):
        r = results[f"sigma/{name}"]
        s = np.asarray(r["scores"])  # [levels + 1, 2, N]
        mass_sg, mass_blur, mass_grad = s[at, 0], s[-1, 0], s[0, 0]
        iv = difference_interval(mass_blur, mass_sg, seed=seed)
        v = direction_verdict(iv, "up")
        extra = {"gradient": bootstrap_interval(mass_grad, seed=seed).format(), "smoothgrad": bootstrap_interval(mass_sg, seed=seed).format(),
                 "blur": bootstrap_interval(mass_blur, seed=seed).format(),
                 "pointing_smoothgrad_minus_blur": difference_interval(s[-1, 1], s[at, 1], seed=seed).format(),
                 "blur_sigma_px": r["blur_sigma_mean"], "tv_matched": f"{r['blur_matched']}/{r['n_images']}"}  # fmt: skip
        parts.append(ClaimRow("1 sharpens beyond blurring", name, f"relevance mass in object: {sg} − matched blur",
                              iv, f"gradient blurred to SmoothGrad's total variation (mean σ_blur {r['blur_sigma_mean']:.2f} px; "
                              f"gradient {extra['gradient']}, SmoothGrad {extra['smoothgrad']}, blur {extra['blur']})",
                              "SmoothGrad maps are visually sharper (Figs. 3, 5)", v, "interval of the difference above 0",
                              extra))  # fmt: skip
    rows += parts
    summary("1 sharpens beyond blurring", parts, "sharper maps", "all parts agree")

    # 2. best σ
    parts = []
    for name in ("synthetic", "mnist"):
        s = np.asarray(results[f"sigma/{name}"]["scores"])[: len(levels), 0]  # [levels, N]
        iv = argmax_interval(s, levels, seed=seed)
        means = {_fmt_pct(lv): float(s[i].mean()) for i, lv in enumerate(levels)}
        parts.append(ClaimRow("2 best noise level", name, "argmax σ of the mean relevance mass", iv,
                              "σ = 0 (the gradient) is on the grid", f"best σ {_fmt_pct(PAPER_BEST_SIGMA[0])}–"
                              f"{_fmt_pct(PAPER_BEST_SIGMA[1])}", range_verdict(iv, *PAPER_BEST_SIGMA),
                              "bootstrap interval of the argmax within [10 %, 20 %]", {"mean_mass_by_sigma": means}))  # fmt: skip
    rows += parts
    summary("2 best noise level", parts, "10–20 %", "all parts agree")

    # 3. n for SSIM 0.9
    parts = []
    for name in ("mnist", "photos"):
        r = results[f"ssim_n/{name}"]
        n_star = n_reaching(r["ssim"], r["sizes"], SSIM_TARGET)
        iv = median_interval(n_star, seed=seed)
        rse = float(iv.se / n_star.mean()) if n_star.mean() > 0 else float("nan")
        censored = int((n_star > max(r["sizes"])).sum())
        parts.append(ClaimRow("3 n ≈ 50 is enough", name, f"median n reaching SSIM {SSIM_TARGET} to an n = {r['ref_n']} map "
                              "of independent draws", iv, f"relative standard error of the mean n across images {rse:.2f}; "
                              f"{censored} image(s) never reached it by n = {max(r['sizes'])}", f"n = {PAPER_ENOUGH_SAMPLES}",
                              range_verdict(iv, 1, PAPER_ENOUGH_SAMPLES), "interval of the median n within [1, 50]",
                              {"mean_n": float(n_star.mean()), "relative_se": rse, "censored": censored}))  # fmt: skip
    rows += parts
    summary("3 n ≈ 50 is enough", parts, "n = 50", "all parts agree")

    # 4. discriminativity
    parts = []
    for name in ("mnist", "photos"):
        r = results[f"disc/{name}"]
        sh = np.asarray(r["shares"])  # [2, P]
        iv = difference_interval(sh[0], sh[1], seed=seed)
        raw, smooth = bootstrap_interval(sh[0], seed=seed).clipped(0, 1), bootstrap_interval(sh[1], seed=seed).clipped(0, 1)
        parts.append(ClaimRow("4 discriminativity", name, f"share of each class's map magnitude on its own half: {sg} − gradient",
                              iv, f"raw gradient {raw.format()}, smoothed {smooth.format()} (0.5: none) over {r['n_pairs']} composites",
                              "smoothed maps single out the class's object better (Fig. 6)",
                              direction_verdict(iv, "up"), "interval of the difference above 0",
                              {"raw": raw.format(), "smoothed": smooth.format()}))  # fmt: skip
    rows += parts
    summary("4 discriminativity", parts, "more discriminative", "all parts agree")

    # 5. training with noise
    r = results["noise_training"]
    s = np.asarray(r["scores"])  # [pairs, 2, N + P]
    n_img = r["n_images"]
    parts = []
    for label, cols in (("relevance mass in strokes (claim 1's score)", slice(0, n_img)),
                        ("own-half share on composites (claim 4's score)", slice(n_img, None))):  # fmt: skip
        plain, noisy = s[:, 0, cols], s[:, 1, cols]
        iv = difference_interval(plain, noisy, seed=seed)
        parts.append(ClaimRow("5 training with noise", "mnist", f"{label}: gradient of noise-trained − plain model",
                              iv, f"plain {plain.mean():.3f}, noise-trained {noisy.mean():.3f}; {s.shape[0]} model pairs × "
                              "images resampled", f"training with noise (σ = {_fmt_pct(r['noise_level'])}) sharpens the "
                              "gradient (Figs. 8–9)", direction_verdict(iv, "up"), "interval of the difference above 0"))  # fmt: skip
    rows += parts
    summary("5 training with noise", parts, "sharper maps", "all parts agree")
    return rows


def write_claims(out: Path, rows: list[ClaimRow], command: str, seconds: float, quick: bool) -> dict[str, Path]:
    """``claims.csv`` (every column) and ``claims.md`` (the table a reader reads) under ``out``."""
    from smoothsal.studies.reproduce import report as rp

    flat = [r.as_dict() for r in rows]
    paths = {"claims.csv": rp.write_csv(out / "claims.csv", flat, list(CLAIM_COLUMNS))}
    table = []
    for r in rows:
        ours = "" if r.quantity == "combined" else r.interval.format()
        if r.claim.startswith("2") and r.quantity != "combined":
            ours = f"{_fmt_pct(r.interval.estimate)} [{_fmt_pct(r.interval.low)}, {_fmt_pct(r.interval.high)}]"
        n = "" if r.quantity == "combined" else (f"{r.interval.n} × {r.interval.n_groups}" if r.interval.n_groups > 1
                                                 else str(r.interval.n))  # fmt: skip
        table.append({"claim": r.claim, "data": r.data, "quantity": r.quantity, "ours [95 % interval]": ours, "n": n,
                      "control / context": r.control, "paper": r.paper,
                      "verdict": f"**{r.verdict}**" if r.quantity == "combined" else r.verdict, "rule": r.rule})  # fmt: skip
    cols = ["claim", "data", "quantity", "ours [95 % interval]", "n", "control / context", "paper", "verdict", "rule"]
    label = " (quick)" if quick else ""
    note = (f"Command: `{command}`{label}; {seconds:.0f} s of compute for the claims. Each claim's number with its "
            "95 % interval over images (model pairs × images for claim 5, both resampled), the control, the paper's "
            "statement and the verdict by the rule fixed before the data in smoothsal.metrics.smoothgrad_claims "
            "(agrees / disagrees / inconclusive); a claim's combined line agrees only when all its parts agree. "
            "n: images (or composites) × model pairs.")  # fmt: skip
    paths["claims.md"] = rp.write_markdown(out / "claims.md", f"SmoothGrad's claims, measured{label}", table, cols, note=note)
    return paths
