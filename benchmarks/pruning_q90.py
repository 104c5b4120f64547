"""Does the pruning column rank methods? q90 on the grid vs by bisection, EfficientNet-Lite0.

q90 is the smallest % of pixels (ranked by |map|) that keeps 90 % of the target probability when
every other pixel is set to the baseline (:mod:`smoothsal.metrics.pruning`). On the grid
(1, 2, 5, 10, 20, 50, 100) it reads 100 % for every gradient map and 50 % for every CAM in the
evaluate card's quick mode; the bisection (default resolution 0.25 percentage points) resolves it.

Methods: the registry's raw settings, plus SmoothGrad and Smooth Grad-CAM at the quick mode's
n = 8 samples (σ = 15 %, seed 0); the bundled photos; black baseline (the card's default).

Run: ``.venv/bin/python benchmarks/pruning_q90.py [--images chelsea,coffee] [--threads 1]``
(prints a table, writes ``benchmarks/results/pruning_q90.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _provenance import command_line

from smoothsal.datasets import bundled_photos
from smoothsal.metrics.pruning import attribution_pruning, smallest_q
from smoothsal.models.zoo import efficientnet_lite0
from smoothsal.registry import build_method, method_label
from smoothsal.smoothing_spec import SmoothSpec

RESULTS = Path(__file__).parent / "results" / "pruning_q90.json"
ROWS = [("grad", False), ("gradxinput", False), ("guided", False), ("deeplift", False), ("ig", False),
        ("gradcam", False), ("gradcam++", False), ("grad", True), ("gradcam", True), ("random", False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="", help="comma-separated bundled photos (default: all)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--n-samples", type=int, default=8)
    parser.add_argument("--resolution", type=float, default=0.25)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = efficientnet_lite0()
    photos = bundled_photos([p for p in args.images.split(",") if p] or None)
    x = torch.cat([p.tensor for p in photos])
    with torch.no_grad():
        targets = model(x).argmax(1)
    table = []
    for name, smoothed in ROWS:
        t0 = time.perf_counter()
        smooth = SmoothSpec(noise_level=0.15, n_samples=args.n_samples, seed=0) if smoothed else None
        kw = {"seed": 0} if name == "random" else {}
        maps = build_method(name, model, smooth, **kw).attribute(x, targets)
        res = attribution_pruning(model, x, maps, targets, resolution=args.resolution)
        grid = smallest_q(attribution_pruning(model, x, maps, targets, share=None))
        row = {"method": method_label(name, smoothed), "q90_grid": grid.tolist(), "q90_bisected": res.q_share.tolist(),
               "q90_grid_mean": float(grid.mean()), "q90_bisected_mean": float(res.q_share.mean()),
               "seconds": round(time.perf_counter() - t0, 1)}
        table.append(row)
        print(f"{row['method']:<28} grid {row['q90_grid_mean']:6.1f}  bisected {row['q90_bisected_mean']:6.2f}  "
              f"per image {[round(v, 2) for v in row['q90_bisected']]}", flush=True)
    out = {"command": command_line(),
           "images": [p.name for p in photos], "targets": targets.tolist(), "rows": table}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
