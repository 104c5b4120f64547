"""Integrated Gradients on EfficientNet-Lite0: the completeness gap at fixed steps vs ``steps="auto"``.

For each photo and quadrature rule (Gauss–Legendre, the default; the nested trapezoid rule):

* fixed steps ``n`` of the grid: the relative gap |Σ attr − ΔF| / |ΔF|, the absolute gap, and the
  map's relative L2 distance to the finest map of the grid (how far the map itself is from
  converged, which the gap, a sum in which errors cancel, does not show);
* ``steps="auto"`` (tol, map_tol as given): the points each image used, its relative gap, the path
  rows the model evaluated (the cost), whether it met the rule, and the seconds.

Timings on the shared 2-core CPU are contended: compare rows (the cost in model evaluations), and
re-measure seconds on a quiet machine.

Run: ``.venv/bin/python benchmarks/bench_ig_auto.py [--images chelsea,coffee] [--grid 8,16,32,64,128]``
(writes ``benchmarks/results/ig_auto.json`` and prints a table).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _provenance import command_line

from smoothsal import IntegratedGradients
from smoothsal.datasets import load_photo
from smoothsal.models.zoo import efficientnet_lite0

RESULTS = Path(__file__).parent / "results" / "ig_auto.json"


class RowCounter:
    """Counts the rows the model is called on (a forward pre-hook)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.rows = 0
        self.handle = model.register_forward_pre_hook(self._hook)

    def _hook(self, module, args) -> None:
        self.rows += int(args[0].shape[0])


def fixed_steps(model, x, target, rule: str, grid: list[int]) -> list[dict]:
    maps, rows = [], []
    for n in grid:
        steps = n + 1 if rule == "riemann_trapezoid" else n
        attr, delta = IntegratedGradients(model, steps=steps, rule=rule).attribute_with_delta(x, target)
        maps.append(attr)
        rows.append({"rule": rule, "steps": steps, "relative_gap": float(delta.relative[0]),
                     "absolute_gap": float(delta.absolute[0]), "expected": float(delta.expected[0])})
    finest = maps[-1].flatten()
    for row, m in zip(rows, maps):
        row["map_distance_to_finest"] = float((m.flatten() - finest).norm() / finest.norm())
    return rows, finest


def auto_steps(model, x, target, rule: str, tol: float, map_tol: float, max_steps: int) -> dict:
    counter = RowCounter(model)
    t0 = time.perf_counter()
    ig = IntegratedGradients(model, steps="auto", rule=rule, tol=tol, map_tol=map_tol, max_steps=max_steps)
    attr, delta = ig.attribute_with_delta(x, target)
    seconds = time.perf_counter() - t0
    counter.handle.remove()
    return {"rule": rule, "tol": tol, "map_tol": map_tol, "steps": delta.steps.tolist(), "levels": ig.last_levels,
            "converged": delta.converged.tolist(), "relative_gap": delta.relative.tolist(),
            "absolute_gap": delta.absolute.tolist(), "path_rows": counter.rows - 2 * x.shape[0],
            "seconds": round(seconds, 2), "map": attr}


def smoothed_gaps(model, x, target, n: int) -> dict:
    """Relative gaps of Smooth(IG, steps=4) (the registry's smoothed IG) and DeepLIFT, raw and smoothed."""
    from smoothsal import DeepLift, Smooth

    out = {}
    for label, method in (("ig4", IntegratedGradients(model, steps=4)), ("deeplift", DeepLift(model))):
        _, gaps = Smooth(method, noise_level=0.15, n_samples=n, seed=0).attribute_with_delta(x, target)
        out[f"smooth_{label}"] = {k: [float(f"{float(v):.4g}") for v in vals] for k, vals in gaps.summary().items()}
    _, raw = DeepLift(model).attribute_with_delta(x, target)
    out["deeplift"] = {"relative": raw.relative.tolist(), "absolute": raw.absolute.tolist(), "expected": raw.expected.tolist()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="chelsea")
    parser.add_argument("--grid", default="8,16,32,64,128")
    parser.add_argument("--rules", default="gausslegendre,riemann_trapezoid")
    parser.add_argument("--tol", type=float, default=0.01)
    parser.add_argument("--map-tol", type=float, default=0.05)
    parser.add_argument("--max-steps", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 on a shared, oversubscribed box)")
    parser.add_argument("--skip-fixed", action="store_true", help="only the auto runs (their levels give the "
                        "fixed-step gaps of Gauss–Legendre, which recomputes each level)")
    parser.add_argument("--smooth-samples", type=int, default=0, help="also the inner gaps of Smooth(IG, steps=4) "
                        "and of raw/smoothed DeepLIFT with this many noisy samples (σ = 15 %%, seed 0); 0: skip")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = efficientnet_lite0()
    grid = [int(v) for v in args.grid.split(",")]
    out = {"command": command_line(),
           "torch_threads": torch.get_num_threads(), "images": {}}
    for name in args.images.split(","):
        x = load_photo(name).tensor
        with torch.no_grad():
            target = int(model(x).argmax(1))
        res = {"target": target, "fixed": [], "auto": []}
        if args.smooth_samples:
            res["smoothed"] = smoothed_gaps(model, x, target, args.smooth_samples)
            print(f"{name} smoothed:", json.dumps(res["smoothed"]), flush=True)
        for rule in [r for r in args.rules.split(",") if r]:
            if not args.skip_fixed:
                fixed, ref = fixed_steps(model, x, target, rule, grid)
                res["fixed"] += fixed
                print(f"{name} {rule}: fixed", [(r["steps"], round(r["relative_gap"], 4), round(r["map_distance_to_finest"], 3)) for r in fixed], flush=True)
            auto = auto_steps(model, x, target, rule, args.tol, args.map_tol, args.max_steps)
            auto_map = auto.pop("map")
            if args.skip_fixed:
                print(f"{name} {rule}: levels", [(lv["steps"], lv["relative_gap"], lv["map_change"]) for lv in auto["levels"]], flush=True)
                res["auto"].append(auto)
                continue
            finest_steps = fixed[-1]["steps"]
            auto["map_distance_to_finest"] = float((auto_map.flatten() - ref).norm() / ref.norm())
            res["auto"].append(auto)
            print(f"{name} {rule}: auto steps {auto['steps']} gap {auto['relative_gap']} rows {auto['path_rows']} "
                  f"converged {auto['converged']} map distance to {finest_steps}-step map {auto['map_distance_to_finest']:.3f} "
                  f"({auto['seconds']} s)", flush=True)
        out["images"][name] = res
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
