"""Which inner rule should the registry's smoothed IG use: 4 Gauss–Legendre points per sample, or one random point?

A correctness figure, not a timing. EfficientNet-Lite0 explains a few bundled photos (resized to
``--size`` px so that the run takes minutes on a CPU) with SmoothGrad-style smoothed Integrated
Gradients at σ = 15 % and the same budget of ``--rows`` model rows (gradient rows) per image:

* **4-point** (the registry's inner rule until now): ``Smooth(IntegratedGradients(steps=4))``,
  ``rows / 4`` noisy samples, 4 Gauss–Legendre path points each;
* **1-point** (:class:`smoothsal.methods.path_point_ig.PathPointIG`): ``Smooth(PathPointIG)``,
  ``rows`` noisy samples, one random path point each (unbiased for the smoothed exact IG).

Two figures per (photo, seed), averaged over them:

* **completeness gap of the mean**, ``SmoothedDelta.relative_of_mean``:
  :math:`|\\sum_i \\hat M_i - \\overline{\\Delta F}| / |\\overline{\\Delta F}|`, the smoothed map's sum
  against the mean score change of its own noisy samples;
* **map error** at the same rows: the relative L2 distance to a reference map of the same photo,
  the 1-point estimator with ``--ref-rows`` samples and another seed (unbiased for the smoothed
  exact IG, independent of both estimates), with the reference's own Monte-Carlo noise removed:
  :math:`\\sqrt{\\max(0, \\lVert \\hat M - M_{ref}\\rVert^2 - \\lVert SE_{ref}\\rVert^2)} / \\lVert M_{ref}\\rVert`.

**The rule, fixed before the data** (issue 21, item 3): the registry's smoothed IG becomes the
1-point estimator if and only if (a) its mean completeness gap of the mean is at most 5 % and (b)
its mean map error is no larger than the 4-point rule's, both at the same ``--rows`` per image.
Otherwise the 4-point rule stays. Both figures are written either way.

Run: ``python benchmarks/smoothed_ig_rule.py`` (writes ``results/smoothed_ig/summary.json``,
resuming unit by unit from it; ``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from _provenance import command_line, rel

from smoothsal.datasets.photos import load_photo
from smoothsal.methods.integrated_gradients import IntegratedGradients
from smoothsal.methods.path_point_ig import PathPointIG
from smoothsal.models.zoo import efficientnet_lite0
from smoothsal.smoothing import Smooth

OUT = Path(__file__).resolve().parents[1] / "results" / "smoothed_ig" / "summary.json"
GAP_LIMIT = 0.05
NOISE_LEVEL = 0.15
REFERENCE_SEED = 1000


def _load(path: Path, fresh: bool) -> dict:
    if path.is_file() and not fresh:
        return json.loads(path.read_text())
    return {"units": {}}


def _save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def _estimator(kind: str, model: torch.nn.Module, rows: int, seed: int) -> Smooth:
    if kind == "1-point":
        return Smooth(PathPointIG(model), noise_level=NOISE_LEVEL, n_samples=rows, seed=seed)
    return Smooth(IntegratedGradients(model, steps=4), noise_level=NOISE_LEVEL, n_samples=rows // 4, seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", default="chelsea,coffee,astronaut")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--rows", type=int, default=256, help="gradient rows per image of each estimate")
    parser.add_argument("--ref-rows", type=int, default=512)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args(argv)
    if args.rows % 4:
        parser.error("--rows must be a multiple of 4 (the 4-point rule's samples are rows / 4)")
    out = Path(args.out)
    data = _load(out, args.fresh)
    settings = {"images": args.images.split(","), "size": args.size, "rows": args.rows, "ref_rows": args.ref_rows,
                "seeds": args.seeds, "noise_level": NOISE_LEVEL, "model": "lite0"}  # fmt: skip
    if data.get("settings") not in (None, settings):
        data = {"units": {}}  # other settings: start over
    data["settings"] = settings
    data["command"] = command_line([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    data["output"] = rel(out)
    torch.manual_seed(0)
    model = efficientnet_lite0()
    units = data["units"]
    started = time.process_time()
    for name in settings["images"]:
        x = load_photo(name).tensor
        x = torch.nn.functional.interpolate(x, size=args.size, mode="bilinear", antialias=True)
        target = model(x).argmax(1)
        ref_key = f"{name}/reference"
        ref = None
        for seed in range(args.seeds):
            for kind in ("1-point", "4-point"):
                key = f"{name}/{kind}/{seed}"
                if key in units:
                    continue
                if ref is None:
                    ref = _estimator("1-point", model, args.ref_rows, REFERENCE_SEED).estimate(x, target)
                    units[ref_key] = {"relative_stderr": float(ref.relative_stderr()[0])}
                est = _estimator(kind, model, args.rows, seed)
                attr, delta = est.attribute_with_delta(x, target)
                diff2 = float(((attr - ref.attributions) ** 2).sum())
                noise2 = float((ref.stderr**2).sum())
                size = float(ref.attributions.norm())
                units[key] = {
                    "gap_of_mean": float(delta.relative_of_mean[0]),
                    "map_error": max(0.0, diff2 - noise2) ** 0.5 / size,
                    "map_error_plain": diff2**0.5 / size,
                    "samples": est.n_samples,
                    "rows": args.rows,
                }
                _save(out, data)
                print(f"{key}: gap {units[key]['gap_of_mean']:.3f}, error {units[key]['map_error']:.3f}", flush=True)
    summary = {}
    for kind in ("1-point", "4-point"):
        rows = [u for k, u in units.items() if k.split("/")[1] == kind]
        summary[kind] = {
            "mean_gap_of_mean": sum(u["gap_of_mean"] for u in rows) / len(rows),
            "mean_map_error": sum(u["map_error"] for u in rows) / len(rows),
            "units": len(rows),
        }
    one, four = summary["1-point"], summary["4-point"]
    adopt = one["mean_gap_of_mean"] <= GAP_LIMIT and one["mean_map_error"] <= four["mean_map_error"]
    data["summary"] = summary
    data["rule"] = (
        f"the registry's smoothed IG is the 1-point estimator iff its mean completeness gap of the mean <= {GAP_LIMIT} "
        "and its mean map error <= the 4-point rule's, at the same rows per image"
    )
    data["verdict"] = "1-point" if adopt else "4-point"
    data["cpu_seconds_this_run"] = round(time.process_time() - started, 1)
    _save(out, data)
    print(json.dumps({"summary": summary, "verdict": data["verdict"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
