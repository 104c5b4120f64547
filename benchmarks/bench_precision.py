"""Mixed precision on EfficientNet-Lite0: how much faster, and how far from the float32 maps.

For each precision (bfloat16 on CPU; float16 and bfloat16 on CUDA) it reports, on the bundled
photos at 224², against float32 with the same noise draws:

* ``grad_rel_err``: relative L2 error ‖g_lp − g_32‖ / ‖g_32‖ of one vanilla gradient per image;
* ``smooth_rel_err``: the same for the SmoothGrad map (σ = 15 %, n = ``--samples``);
* ``smooth_rel_se``: the float32 SmoothGrad map's own relative standard error (the Monte-Carlo
  error the user accepts);
* ``speedup``: float32 time / low-precision time of one forward+backward of ``--rows`` rows
  (median of ``--repeats`` interleaved runs).

The verdict rule, fixed before running (see :mod:`smoothsal.execution.precision`): a precision is
*acceptable* for smoothed maps when, on every image, ``smooth_rel_err ≤ 0.5 × tol`` with
``tol = 0.35`` (the library's PRECISION tolerance), i.e. rounding moves the map by at most half
of the Monte-Carlo error already accepted; it is *worth it* only if also ``speedup ≥ 1.2``.

    python benchmarks/bench_precision.py [--samples 64] [--rows 8] [--repeats 5] [--device auto]

Writes ``benchmarks/results/bench_precision.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from smoothsal import SmoothGrad
from smoothsal.datasets.photos import bundled_photos
from smoothsal.execution.devices import resolve_device
from smoothsal.execution.precision import MixedPrecision
from smoothsal.methods.gradient import VanillaGradient
from smoothsal.models.zoo import load_model
from smoothsal.registry import PRECISION

RESULTS = Path(__file__).parent / "results" / "bench_precision.json"
TOL = PRECISION.tol


def rel_err(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    return ((a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).tolist()


def time_fwd_bwd(model: torch.nn.Module, x: torch.Tensor) -> float:
    xi = x.clone().requires_grad_(True)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    model(xi)[:, 0].sum().backward()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = resolve_device(args.device)
    net = load_model("lite0").model.to(device)
    x = torch.cat([p.tensor for p in bundled_photos()]).to(device)
    dtypes = [torch.bfloat16] + ([torch.float16] if device.type == "cuda" else [])
    g32 = VanillaGradient(net).attribute(x)
    s32 = SmoothGrad(net, n_samples=args.samples, seed=0).estimate(x)
    rows: list[dict] = []
    batch = torch.rand(args.rows, *x.shape[1:], device=device)
    for dtype in dtypes:
        low = MixedPrecision(net, dtype)
        glp = VanillaGradient(low).attribute(x)
        slp = SmoothGrad(low, n_samples=args.samples, seed=0).attribute(x)
        times: dict[str, list[float]] = {"float32": [], "low": []}
        time_fwd_bwd(net, batch), time_fwd_bwd(low, batch)  # warm-up
        for _ in range(args.repeats):
            times["float32"].append(time_fwd_bwd(net, batch))
            times["low"].append(time_fwd_bwd(low, batch))
        smooth_err = rel_err(slp, s32.attributions)
        speedup = statistics.median(times["float32"]) / statistics.median(times["low"])
        acceptable = max(smooth_err) <= 0.5 * TOL
        rows.append({
            "dtype": str(dtype).removeprefix("torch."),
            "grad_rel_err": [round(v, 4) for v in rel_err(glp, g32)],
            "smooth_rel_err": [round(v, 4) for v in smooth_err],
            "smooth_rel_se": [round(float(v), 4) for v in s32.relative_stderr()],
            "speedup": round(speedup, 3),
            "acceptable": acceptable,
            "worth_it": acceptable and speedup >= 1.2,
        })  # fmt: skip
    result = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "samples": args.samples,
        "rows": args.rows,
        "repeats": args.repeats,
        "images": [p.name for p in bundled_photos()],
        "rule": "acceptable: max smooth_rel_err <= 0.5 * tol (tol = %.2f); worth it: also speedup >= 1.2" % TOL,
        "results": rows,
    }
    print(f"EfficientNet-Lite0, {len(x)} photos, {device}, SmoothGrad n = {args.samples}")
    print(f"{'dtype':<9} {'1 gradient err':>16} {'SmoothGrad err':>16} {'SmoothGrad SE':>15} {'speed-up':>9}  verdict")
    for r in rows:
        verdict = "worth it" if r["worth_it"] else ("acceptable, not faster" if r["acceptable"] else "too far")
        print(f"{r['dtype']:<9} {max(r['grad_rel_err']):>16.3f} {max(r['smooth_rel_err']):>16.3f} "
              f"{max(r['smooth_rel_se']):>15.3f} {r['speedup']:>8.2f}×  {verdict}")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
