"""ROAD cross-check: smoothsal.metrics.road against pytorch-grad-cam's ROAD on the same maps.

A correctness figure, not a timing. EfficientNet-Lite0 explains the bundled photos with several
methods (the registry's raw settings, SmoothGrad at n = 8, and the two controls); every map is
scored by both implementations, and their per-image scores are compared.

The verdict's rule, fixed before the data (issue 21): the Pearson correlation of the per-image
combined scores over all (method, photo) pairs must be at least 0.95. The MoRF and LeRF means are
compared too, and reported.

Conventions, and how the two are made to see the same thing:

* **Maps.** pytorch-grad-cam takes one 2-D map per image; smoothsal reduces ``[B, C, H, W]`` maps
  to :math:`\\sum_c |a_c|` per pixel. Both get that 2-D map, min–max normalised with the authors'
  :math:`10^{-4}` Gaussian jitter added (their ``ImputedDataset``), so that neither has ties to
  break (pytorch-grad-cam thresholds at a percentile, which removes all tied pixels together and,
  on a CAM's zero region, could remove every pixel; smoothsal breaks ties at random).
* **Levels.** pytorch-grad-cam's ``ROADMostRelevantFirst(percentile=p)`` *keeps* the pixels below
  the p-th percentile, i.e. removes the (100 − p) % most relevant; its LeRF removes the
  (100 − p) % least relevant. Averaged over p = 10..90 these are the same nine levels as
  smoothsal's 10..90 % removed (counts may differ by one pixel: percentile interpolation vs
  ``round``).
* **Scores.** pytorch-grad-cam returns the change of the target's softmax probability
  (``ClassifierOutputSoftmaxTarget``) from the clean image; smoothsal the probability itself. Its
  ``ROADCombined`` is ``(mean LeRF change − mean MoRF change) / 2`` = half of smoothsal's
  ``lerf_auc − morf_auc``; the clean score cancels. Its MoRF/LeRF averages
  (``ROADMostRelevantFirstAverage``, ``ROADLeastRelevantFirstAverage``) plus the clean probability
  are compared with smoothsal's ``morf_auc``/``lerf_auc``, and its combined score is formed from those
  two averages exactly as ``ROADCombined.__call__`` forms it (calling ``ROADCombined`` itself would
  solve every system a second time).
* **Imputation.** The same linear system (the authors' code, which pytorch-grad-cam copies) and σ =
  0.01; the noise draws differ (pytorch-grad-cam draws from torch's global generator, seeded here).

pytorch-grad-cam needs torchvision at import; where the installed torchvision cannot be imported,
the stub of ``bench_anchors.py`` stands in (pytorch-grad-cam's ROAD does not use torchvision).

Run: ``.venv/bin/python benchmarks/road_crosscheck.py [--images chelsea,coffee] [--fresh]``
(needs ``pip install --no-deps grad-cam ttach`` and ``opencv-python-headless``, the bench extra;
writes ``benchmarks/results/road_crosscheck.json``, resuming from it method by method).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from _provenance import command_line, rel

from smoothsal.datasets import bundled_photos
from smoothsal.metrics.road import ROAD_LEVELS, ROAD_NOISE, road_curves
from smoothsal.registry import build_method, method_label
from smoothsal.models.zoo import efficientnet_lite0

RESULTS = Path(__file__).parent / "results" / "road_crosscheck.json"
#: (registered method, smoothed)
ROWS = [("grad", False), ("grad", True), ("ig", False), ("guided", False), ("gradcam", False), ("sobel", False),
        ("random", False)]  # fmt: skip
THRESHOLD = 0.95
JITTER = 1e-4


def _gradcam_road() -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_anchors import _torchvision

    torchvision = _torchvision()
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirstAverage, ROADMostRelevantFirstAverage
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    return {"morf": ROADMostRelevantFirstAverage, "lerf": ROADLeastRelevantFirstAverage,
            "target": ClassifierOutputSoftmaxTarget, "torchvision": torchvision}  # fmt: skip


def _pixel_maps(maps: torch.Tensor, seed: int) -> torch.Tensor:
    """``[B, H, W]``: Σ_c |a_c|, min–max normalised per image, plus the authors' 1e-4 jitter (seeded)."""
    m = maps.detach().double().abs().sum(dim=1)  # [B, H, W]
    lo = m.flatten(1).min(dim=1).values[:, None, None]
    hi = m.flatten(1).max(dim=1).values[:, None, None]
    m = (m - lo) / (hi - lo + 1e-5)
    return (m + JITTER * torch.randn(m.shape, generator=torch.Generator().manual_seed(seed), dtype=m.dtype)).float()


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="", help="comma-separated bundled photos (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--fresh", action="store_true", help="ignore the results already in --out")
    args = parser.parse_args()
    out = Path(args.out)
    gc = _gradcam_road()
    model = efficientnet_lite0()
    photos = bundled_photos([p for p in args.images.split(",") if p] or None)
    names = [p.name for p in photos]
    x = torch.cat([p.tensor for p in photos])
    with torch.no_grad():
        probs = model(x).softmax(dim=1)
    targets = probs.argmax(dim=1)
    clean = probs.gather(1, targets[:, None])[:, 0]
    settings = {"model": "lite0", "images": names, "targets": targets.tolist(), "seed": args.seed,
                "levels": list(ROAD_LEVELS), "noise": ROAD_NOISE, "jitter": JITTER, "score": "prob"}  # fmt: skip
    previous = json.loads(out.read_text()) if out.is_file() and not args.fresh else {}
    done = {r["row"]: r for r in previous.get("rows", [])} if previous.get("settings") == settings else {}
    rows = []
    for k, (name, smoothed) in enumerate(ROWS):
        key = f"{name}{'_smooth' if smoothed else ''}"
        if key in done:
            rows.append(done[key])
            continue
        t0 = time.perf_counter()
        smooth = {"noise_level": 0.15, "n_samples": 8, "seed": args.seed} if smoothed else None
        kw = {"seed": args.seed} if name == "random" else {}
        maps = _pixel_maps(build_method(name, model, smooth, **kw).attribute(x, targets), args.seed + k)  # [B, H, W]
        ours = road_curves(model, x, maps, targets, seed=args.seed)
        cams = maps.numpy()
        their = {}
        for part in ("morf", "lerf"):
            torch.manual_seed(args.seed + (part == "lerf"))  # pytorch-grad-cam's noise: torch's global generator
            their[part] = np.asarray(gc[part]()(x, cams, [gc["target"](int(t)) for t in targets], model), dtype=float)
        their["combined"] = (their["lerf"] - their["morf"]) / 2  # ROADCombined.__call__, on the same two averages
        row = {
            "row": key, "label": method_label(name, smoothed),
            "ours_morf": ours.morf_auc().tolist(), "ours_lerf": ours.lerf_auc().tolist(),
            "ours_combined": ours.combined().tolist(),
            "gradcam_morf": (their["morf"] + clean.numpy()).tolist(), "gradcam_lerf": (their["lerf"] + clean.numpy()).tolist(),
            "gradcam_combined": their["combined"].tolist(),
        }  # fmt: skip
        rows.append(row)
        print(f"{row['label']:<22} combined ours {np.round(row['ours_combined'], 3)}  grad-cam×2 "
              f"{np.round(2 * their['combined'], 3)}  ({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
        out.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2))  # resumable

    def pooled(key: str) -> np.ndarray:
        return np.array([v for r in rows for v in r[key]])

    summary = {}
    for part in ("morf", "lerf", "combined"):
        a, b = pooled(f"ours_{part}"), pooled(f"gradcam_{part}")
        if part == "combined":
            b = 2 * b  # pytorch-grad-cam halves the difference
        summary[part] = {"pearson": float(np.corrcoef(a, b)[0, 1]), "mean_abs_difference": float(np.abs(a - b).mean()),
                         "max_abs_difference": float(np.abs(a - b).max()), "n": int(a.size)}  # fmt: skip
    verdict = "pass" if summary["combined"]["pearson"] >= THRESHOLD else "fail"
    result = {
        "command": command_line(), "settings": settings, "rows": rows, "summary": summary,
        "rule": f"Pearson correlation of the per-image combined scores >= {THRESHOLD} (fixed before the data)",
        "verdict": verdict,
        "versions": {d: _version(d) for d in ("smoothsal", "grad-cam", "torch", "scipy")},
        "torchvision": gc["torchvision"],
    }  # fmt: skip
    out.write_text(json.dumps(result, indent=2))
    for part, s in summary.items():
        print(f"{part:>8}: Pearson {s['pearson']:.4f}, mean |Δ| {s['mean_abs_difference']:.4f}, "
              f"max |Δ| {s['max_abs_difference']:.4f} over {s['n']} (method, photo) pairs")  # fmt: skip
    print(f"verdict: {verdict} (rule: {result['rule']}); wrote {rel(out)}")


if __name__ == "__main__":
    main()
