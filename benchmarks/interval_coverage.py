"""Coverage of the report card's bootstrap intervals, by simulation on data with a known answer (issue 20).

Writes ``benchmarks/results/interval_coverage.json`` and ``.md``: the numbers quoted in the
docstring of :mod:`smoothsal.metrics.intervals` (the rule's reason, and :data:`MIN_IMAGES`).

* **one level** (images): for each distribution and n, ``datasets`` simulated datasets with a known
  mean (or ratio of means); the share whose nominal 95 % interval holds the truth, for the
  percentile, BCa and studentized intervals (:func:`smoothsal.metrics.bootstrap.bootstrap_bounds`,
  the card's seed 0 and 2,000 resamples). Monte-Carlo standard error of a coverage near 0.95:
  ``sqrt(0.95 · 0.05 / datasets)``.
* **two levels** (seeds × images, crossed): :math:`x_{si} = a_s + b_i + e_{si}`, ``a ~ N(0, sd_a²)``,
  ``b`` log-normal(0, ½) × ``sd_b``, ``e ~ N(0, 0.3²)``; coverage of the studentized and percentile
  crossed bootstrap (:func:`smoothsal.metrics.bootstrap.two_level_bounds`).
* **power**: for an observed interval at n = 8 with effect |estimate − threshold| / sd, the images
  :func:`smoothsal.metrics.intervals.images_for_power` asks for, and how often a fresh normal sample
  of that size gives a studentized interval that excludes the threshold (should be ≈ 0.8); beside
  it the earlier card's figure (expected half-width = gap, ≈ 50 % power) and its rate.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/interval_coverage.py [--datasets 4000]

(about 4 minutes on one core at the defaults; not a timing.)
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from smoothsal.metrics.bootstrap import bootstrap_bounds, normal_quantile, two_level_bounds
from smoothsal.metrics.intervals import MIN_IMAGES, Interval, images_for_power

OUT = Path(__file__).parent / "results"
SIZES = (3, 4, 5, 6, 8, 12, 18)
METHODS = ("percentile", "bca", "studentized")
#: distributions like the real per-image scores (the reference set of MIN_IMAGES), then stress cases
REFERENCE = ("beta(2,5)", "beta(5,1.2)", "lognormal(0,0.5)", "ratio beta pairs")
STRESS = ("ratio lognormal pairs", "lognormal(0,1)")


def draw(dist: str, shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None, float]:
    """``(x, y or None, truth)``: ``[datasets, n]`` values and the known mean / ratio of means."""
    if dist == "beta(2,5)":
        return rng.beta(2, 5, shape), None, 2 / 7
    if dist == "beta(5,1.2)":
        return rng.beta(5, 1.2, shape), None, 5 / 6.2
    if dist == "lognormal(0,0.5)":
        return rng.lognormal(0, 0.5, shape), None, math.exp(0.125)
    if dist == "lognormal(0,1)":
        return rng.lognormal(0, 1, shape), None, math.exp(0.5)
    if dist == "ratio beta pairs":  # r: reference-like, s = r·u: E s / E r = E u = 0.4
        r = rng.beta(5, 1.5, shape)
        return r * rng.beta(2, 3, shape), r, 0.4
    if dist == "ratio lognormal pairs":
        r = rng.lognormal(0, 0.5, shape)
        return 0.3 * r * rng.lognormal(0, 0.5, shape), r, 0.3 * math.exp(0.125)
    raise ValueError(dist)


def one_level(datasets: int) -> list[dict]:
    rows = []
    for dist in REFERENCE + STRESS:
        for n in SIZES:
            x, y, truth = draw(dist, (datasets, n), np.random.default_rng(1000 + n))
            row = {"distribution": dist, "n": n, "datasets": datasets}
            for method in METHODS:
                b = bootstrap_bounds(x, y, statistic="ratio" if y is not None else "mean", method=method, seed=0)
                row[method] = float(np.mean((b.low <= truth) & (truth <= b.high)))
            rows.append(row)
            print(f"{dist:22s} n={n:2d}  " + "  ".join(f"{m} {row[m]:.3f}" for m in METHODS), flush=True)
    return rows


def two_level(datasets: int) -> list[dict]:
    rows = []
    for s in (3, 5):
        for n in (8, 18):
            for sd_a, sd_b in ((0.0, 1.0), (0.1, 1.0), (0.3, 1.0), (0.5, 0.5)):
                rng = np.random.default_rng(s * 100 + n)
                truth = math.exp(0.125) * sd_b
                hits = {"studentized": 0, "percentile": 0}
                for d in range(datasets):
                    x = rng.normal(0, sd_a, (s, 1)) + sd_b * rng.lognormal(0, 0.5, (1, n)) + rng.normal(0, 0.3, (s, n))
                    for method in hits:
                        b = two_level_bounds(x, method=method, seed=d)
                        hits[method] += bool(b.low <= truth <= b.high)
                row = {"seeds": s, "images": n, "sd_seed": sd_a, "sd_image_scale": sd_b, "datasets": datasets,
                       **{m: h / datasets for m, h in hits.items()}}  # fmt: skip
                rows.append(row)
                print(f"S={s} N={n:2d} sd_a={sd_a} sd_b={sd_b}  studentized {row['studentized']:.3f}  "
                      f"percentile {row['percentile']:.3f}", flush=True)  # fmt: skip
    return rows


def power(datasets: int) -> list[dict]:
    rows = []
    for effect in (0.3, 0.5, 0.8, 1.2):
        observed = Interval(0.5 + effect, float("nan"), float("nan"), 8, se=1 / math.sqrt(8))  # sd = 1 per image
        n80 = images_for_power(observed, 0.5)
        n50 = math.floor((float(normal_quantile(0.975)) / effect) ** 2) + 1  # the earlier card's figure
        row = {"effect": effect, "images_for_80": n80, "earlier_figure": n50, "datasets": datasets}
        for key, m in (("decided_at_80", n80), ("decided_at_earlier", n50)):
            if m < 2:
                row[key] = None
                continue
            x = np.random.default_rng(int(effect * 100) + m).normal(0.5 + effect, 1.0, (datasets, m))
            b = bootstrap_bounds(x, seed=0)
            row[key] = float(np.mean(b.low > 0.5))
        rows.append(row)
        print(row, flush=True)
    return rows


def min_images(rows: list[dict], low: float = 0.93, high: float = 0.97) -> int | None:
    """Smallest n whose studentized coverage is in [low, high] for every reference distribution, at it
    and at every larger n measured."""
    ok = {n: all(low <= r["studentized"] <= high for r in rows if r["n"] == n and r["distribution"] in REFERENCE)
          for n in SIZES}  # fmt: skip
    return next((n for n in SIZES if all(ok[m] for m in SIZES if m >= n)), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=4000, help="simulated datasets per one-level cell")
    parser.add_argument("--two-level-datasets", type=int, default=1000)
    args = parser.parse_args()
    one = one_level(args.datasets)
    two = two_level(args.two_level_datasets)
    pw = power(2000)
    derived = min_images(one)
    result = {
        "command": "OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/interval_coverage.py"
                   + (f" --datasets {args.datasets}" if args.datasets != 4000 else ""),
        "mc_standard_error_at_0.95": math.sqrt(0.95 * 0.05 / args.datasets),
        "reference_distributions": list(REFERENCE),
        "min_images_derived": derived,
        "MIN_IMAGES_in_code": MIN_IMAGES,
        "one_level": one, "two_level": two, "power": pw,
    }  # fmt: skip
    OUT.mkdir(exist_ok=True)
    (OUT / "interval_coverage.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Coverage of nominal 95 % bootstrap intervals (simulated, known truth)", "",
             f"Command: `{result['command']}`. {args.datasets} datasets per one-level cell (MC SE ≈ "
             f"{result['mc_standard_error_at_0.95']:.4f}); seed 0, 2,000 resamples as on the report card.", "",
             f"Smallest n with studentized coverage in [0.93, 0.97] for every reference distribution "
             f"({', '.join(REFERENCE)}) at it and every larger n: **{derived}** (MIN_IMAGES in code: {MIN_IMAGES}).",
             "", "| distribution | n | percentile | BCa | studentized |", "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['distribution']} | {r['n']} | {r['percentile']:.3f} | {r['bca']:.3f} | {r['studentized']:.3f} |"
              for r in one]  # fmt: skip
    lines += ["", "Two levels, crossed (seeds × images):", "",
              "| seeds | images | sd(seed) | image scale | studentized | percentile |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['seeds']} | {r['images']} | {r['sd_seed']} | {r['sd_image_scale']} | {r['studentized']:.3f} | "
              f"{r['percentile']:.3f} |" for r in two]  # fmt: skip
    lines += ["", "Power (fresh normal samples, studentized interval excludes the threshold):", "",
              "| effect (gap/sd) | images for 80 % | decided | earlier figure | decided |", "|---|---|---|---|---|"]
    lines += [f"| {r['effect']} | {r['images_for_80']} | {r['decided_at_80']} | {r['earlier_figure']} | "
              f"{r['decided_at_earlier']} |" for r in pw]  # fmt: skip
    (OUT / "interval_coverage.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / 'interval_coverage.json'}; min images derived {derived}")


if __name__ == "__main__":
    main()
