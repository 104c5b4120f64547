r"""Fewer samples for the same map? Variance-reduced noise samplers for SmoothGrad and smoothed IG.

For each model (EfficientNet-Lite0 on 224×224 photos; a random small CNN on 32×32 copies of
the same photos), method (SmoothGrad = Smooth(VanillaGradient); smoothed IG =
Smooth(IntegratedGradients(black baseline))) and sampler, we measure the relative error of the
n-sample map against a plain-Gaussian reference map M_ref of ``n_ref`` samples, drawn with a
seed no estimate uses:

.. math:: e(n) = \lVert M_n - M_{ref} \rVert_2 / \lVert M_{ref} \rVert_2

noise_level = 0.15 (σ = 0.15 × each photo's value range), target = the predicted class.

Samplers: ``gaussian`` (the paper), ``antithetic`` (pairs ε, −ε), ``lhs`` (Latin hypercube
per coordinate through the normal inverse CDF). Not run: scrambled Sobol (SobolEngine allows
≤ 21,201 dimensions; Lite0's input has 150,528, and a Sobol subspace would leave the other
coordinates' variance untouched); stratified radii (‖ε‖ has relative spread
1/√(2d) ≈ 0.2% at d = 150,528 and 0.9% at the CNN's d = 3,072: the radius is already almost
constant, so stratifying it cannot remove a visible share of the variance).

Estimates: gaussian and antithetic take one stream of n_max draws per seed and read the running
mean at each n of the grid (antithetic prefixes at even n are complete pairs); lhs needs n in
advance, so it runs once per (n, seed). Seeds 0, 1, …; the reference uses seed 1,000,003.

Error statistic (fixed before looking at results). M_ref carries its own Monte-Carlo error,
which adds E‖M_ref − M‖² = Σ SE_ref² to E‖M_n − M_ref‖² (independent seeds) and would flatten
every curve toward the reference's floor, against the variance-reduced schemes. We therefore
report both:

* ``raw``: the mean over seeds and images of ‖M_n − M_ref‖₂/‖M_ref‖₂ (as asked);
* ``corrected`` (used by the verdict): per image,
  sqrt(max(0, mean_seeds ‖M_n − M_ref‖² − Σ SE_ref²) / (‖M_ref‖² − Σ SE_ref²)), with SE_ref the
  reference's per-pixel standard error; then the root-mean-square over images.

VERDICT RULE (fixed before looking at results): a scheme qualifies if, at the n where Gaussian
reaches relative error e (interpolated, for the e values reached at Gaussian n = 64 and
n = 256), the scheme reaches e at ≤ 0.7 × that n, on both models and both methods. "Reaches e
at n" is found by linear interpolation of log e against log n between grid points (and
extrapolation from the last two grid points past n_max). The ratio n_scheme / n_gauss comes with a
bootstrap interval over seeds (a crude one with 2–4 seeds). A scheme that qualifies is offered
as ``Smooth(sampler=...)``; the others are reported with their numbers.

Supporting statistic for antithetic (exact, cheap): with pairs g± = M(x ± σε), the even part
e = (g+ + g−)/2 and odd part o = (g+ − g−)/2 are uncorrelated; a Gaussian sample's variance is
V_e + V_o and an antithetic pair's mean has variance V_e, so antithetic/Gaussian MSE at equal n is
exactly 2 V_e / (V_e + V_o) (reported as ``antithetic_ratio_from_pairs``).

Budget (2 CPU cores, uncontended Lite0 ≈ 0.04 s per forward+backward row): the ``full`` preset
uses n_ref = 2000 on the small CNN, n_ref = 512 (SmoothGrad) and 256 (IG, 4 Gauss–Legendre steps)
on Lite0, and fewer lhs grid points and seeds on Lite0; ``--preset quick`` is a smoke run.

Run: ``.venv/bin/python benchmarks/bench_samplers.py [--preset full|quick] [--models cnn,lite0]``
(writes ``benchmarks/results/samplers.json`` and prints a table; ``--append`` adds to the
results already there, e.g. ``--preset full --models cnn`` then
``--preset lite0-min --models lite0 --methods smoothgrad --append``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from smoothsal import IntegratedGradients, VanillaGradient
from smoothsal.datasets import load_photo
from smoothsal.noise import make_generator, noise_sigma, noise_stream

NOISE_LEVEL = 0.15
REF_SEED = 1_000_003
SCHEMES = ("gaussian", "antithetic", "lhs")
RESULTS = Path(__file__).parent / "results" / "samplers.json"

PRESETS = {
    "full": {
        "cnn": {"images": ["chelsea", "coffee"], "n_ref": 2000, "seeds": 3, "grid": [8, 16, 32, 64, 128, 256],
                "lhs_grid": [16, 32, 64, 128, 256], "ig_steps": 8, "rows": 256},
        "lite0": {"images": ["chelsea", "coffee"], "n_ref": 512, "seeds": 2, "grid": [16, 32, 64, 128, 256],
                  "lhs_grid": [32, 64, 128, 256], "ig_steps": 4, "ig_n_ref": 256, "ig_images": ["chelsea"],
                  "ig_seeds": 1, "rows": 32},
    },
    # what fits a contended 2-core machine (Lite0 ≈ 0.5 s/row): Lite0 SmoothGrad on one photo
    "lite0-min": {
        "lite0": {"images": ["chelsea"], "n_ref": 256, "seeds": 1, "grid": [16, 32, 64],
                  "lhs_grid": [64], "ig_steps": 2, "ig_n_ref": 64, "ig_images": ["chelsea"],
                  "ig_seeds": 1, "rows": 32},
    },
    "quick": {
        "cnn": {"images": ["chelsea"], "n_ref": 500, "seeds": 2, "grid": [8, 32, 64, 256],
                "lhs_grid": [32, 64, 256], "ig_steps": 8, "rows": 256},
        "lite0": {"images": ["chelsea"], "n_ref": 128, "seeds": 1, "grid": [16, 64],
                  "lhs_grid": [64], "ig_steps": 2, "ig_n_ref": 64, "ig_images": ["chelsea"],
                  "ig_seeds": 1, "rows": 32},
    },
}


def small_cnn(seed: int = 0, classes: int = 10) -> nn.Module:
    """A random small CNN (3×32×32 → 10 logits; ReLU, max-pool: a piecewise-linear, jagged gradient)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 8 * 8, classes),
    ).eval()


def _inputs(model_name: str, image: str) -> torch.Tensor:
    x = load_photo(image).tensor
    if model_name == "cnn":
        x = F.interpolate(x, size=(32, 32), mode="area")
    return x


def _method(model: nn.Module, method: str, steps: int):
    if method == "smoothgrad":
        return VanillaGradient(model)
    return IntegratedGradients(model, steps=steps, baseline="black", batch_size=10**6)


class _Sampled:
    """Maps of x + σ ε_j for a stream's draws, in calls of ``rows`` noisy inputs."""

    def __init__(self, method, x: torch.Tensor, rows: int) -> None:
        self.method, self.x, self.rows = method, x, rows
        self.target = method.targets_for(x, None) if hasattr(method, "targets_for") else None
        if self.target is None:
            self.target = method.model(x).argmax(1)
        self.sigma = float(noise_sigma(x, NOISE_LEVEL)[0])
        self.calls = 0

    def stream(self, sampler: str, n: int, seed: int, on_chunk) -> None:
        s = noise_stream(sampler, n, tuple(self.x.shape[1:]), make_generator(seed), self.x.device, self.x.dtype)
        done = 0
        while done < n:
            b = min(self.rows, n - done)
            eps = torch.stack([s.next() for _ in range(b)])
            maps = self.method.attribute(self.x + self.sigma * eps, target=self.target.repeat(b)).detach()
            on_chunk(done, maps.to(torch.float64))
            self.calls += b
            done += b


def _reference(sampled: _Sampled, n_ref: int) -> tuple[torch.Tensor, float]:
    """Mean map and Σ SE² (per-pixel unbiased variance / n) of a plain Gaussian run."""
    acc = {"s1": 0.0, "s2": 0.0}

    def add(_, maps):
        acc["s1"] = acc["s1"] + maps.sum(0)
        acc["s2"] = acc["s2"] + (maps * maps).sum(0)

    sampled.stream("gaussian", n_ref, REF_SEED, add)
    mean = acc["s1"] / n_ref
    var = (acc["s2"] / n_ref - mean * mean).clamp_min(0) * n_ref / (n_ref - 1)
    return mean, float(var.sum() / n_ref)


def _prefix_run(sampled: _Sampled, sampler: str, grid: list[int], seed: int, pairs: dict | None):
    """Running means at each n of ``grid`` of one stream of max(grid) draws."""
    out, acc = {}, {"s": 0.0}
    wanted = sorted(grid)

    def add(start, maps):
        for i in range(maps.shape[0]):
            acc["s"] = acc["s"] + maps[i]
            if start + i + 1 in wanted:
                out[start + i + 1] = acc["s"] / (start + i + 1)
        if pairs is not None:  # antithetic: rows come in (ε, −ε) pairs (rows per call is even)
            ev, od = (maps[0::2] + maps[1::2]) / 2, (maps[0::2] - maps[1::2]) / 2
            pairs["n"] += ev.shape[0]
            pairs["e1"] = pairs["e1"] + ev.sum(0)
            pairs["e2"] += float((ev * ev).sum())
            pairs["o2"] += float((od * od).sum())

    sampled.stream(sampler, max(grid), seed, add)
    return out


def _crossing(ns: list[int], errs: list[float], e: float) -> float:
    """n at which the curve (log-log linear between points) reaches e."""
    pts = [(math.log(n), math.log(max(v, 1e-300))) for n, v in zip(ns, errs)]
    le = math.log(e)
    if len(pts) == 1:  # one grid point: assume the 1/√n law through it
        return math.exp(pts[0][0] + 2.0 * (pts[0][1] - le))
    for (a, fa), (b, fb) in itertools.pairwise(pts):
        if (fa - le) * (fb - le) <= 0 and fa != fb:
            return math.exp(a + (le - fa) * (b - a) / (fb - fa))
    (a, fa), (b, fb) = (pts[0], pts[1]) if le > pts[0][1] else (pts[-2], pts[-1])
    slope = (fb - fa) / (b - a) if b != a else -0.5
    slope = slope if slope < 0 else -0.5  # a flat or rising noisy end: assume the 1/√n law
    return math.exp(b + (le - fb) / slope)


def _curves(sq: dict, refs: dict) -> dict:
    """sq[scheme][image][n] = list over seeds of ‖M_n − M_ref‖²; refs[image] = (‖M_ref‖², Σ SE²)."""
    res = {}
    for scheme, per_image in sq.items():
        res[scheme] = {}
        ns = sorted(next(iter(per_image.values())))
        for n in ns:
            raw, corr = [], []
            for image, by_n in per_image.items():
                norm2, se2 = refs[image]
                raw += [math.sqrt(v / norm2) for v in by_n[n]]
                mse = sum(by_n[n]) / len(by_n[n])
                corr.append(max(0.0, mse - se2) / (norm2 - se2))
            res[scheme][n] = {"raw": sum(raw) / len(raw), "corrected": math.sqrt(sum(corr) / len(corr))}
    return res


def _ratios(curves: dict, gauss_at: tuple[int, ...] = (64, 256)) -> dict:
    out = {}
    g = curves["gaussian"]
    for scheme, curve in curves.items():
        if scheme == "gaussian":
            continue
        ns = sorted(curve)
        out[scheme] = {}
        for n0 in gauss_at:
            if n0 not in g:
                continue
            e = g[n0]["corrected"]
            n_s = _crossing(ns, [curve[n]["corrected"] for n in ns], e)
            out[scheme][n0] = {"e": e, "n_scheme": n_s, "ratio": n_s / n0}
    return out


def _bootstrap(sq: dict, refs: dict, reps: int = 200) -> dict:
    """95% interval of each ratio, resampling seeds (the same resample for every scheme)."""
    rng = random.Random(0)
    any_scheme = next(iter(sq.values()))
    n_seeds = len(next(iter(next(iter(any_scheme.values())).values())))
    draws: dict = {}
    for _ in range(reps):
        idx = [rng.randrange(n_seeds) for _ in range(n_seeds)]
        sub = {
            s: {im: {n: [v[i] for i in idx] for n, v in by_n.items()} for im, by_n in pi.items()}
            for s, pi in sq.items()
        }
        for scheme, by_n0 in _ratios(_curves(sub, refs)).items():
            for n0, r in by_n0.items():
                draws.setdefault((scheme, n0), []).append(r["ratio"])
    out = {}
    for (scheme, n0), v in draws.items():
        v.sort()
        out.setdefault(scheme, {})[n0] = [v[int(0.025 * len(v))], v[min(len(v) - 1, int(0.975 * len(v)))]]
    return out


def run_config(model_name: str, model: nn.Module, method_name: str, cfg: dict) -> dict:
    steps = cfg["ig_steps"]
    images = cfg.get("ig_images", cfg["images"]) if method_name == "ig" else cfg["images"]
    n_ref = cfg.get("ig_n_ref", cfg["n_ref"]) if method_name == "ig" else cfg["n_ref"]
    seeds = cfg.get("ig_seeds", cfg["seeds"]) if method_name == "ig" else cfg["seeds"]
    method = _method(model, method_name, steps)
    rows = cfg["rows"] if method_name == "smoothgrad" else max(2, cfg["rows"] // steps // 2 * 2)
    t0 = time.perf_counter()
    sq: dict = {s: {} for s in SCHEMES}
    refs, pair_stats, calls = {}, {}, 0
    for image in images:
        x = _inputs(model_name, image)
        sampled = _Sampled(method, x, rows)
        ref, se2 = _reference(sampled, n_ref)
        refs[image] = (float((ref * ref).sum()), se2)
        pairs = {"n": 0, "e1": 0.0, "e2": 0.0, "o2": 0.0}
        for scheme in SCHEMES:
            by_n: dict = {}
            for seed in range(seeds):
                if scheme == "lhs":
                    maps = {n: _prefix_run(sampled, "lhs", [n], seed, None)[n] for n in cfg["lhs_grid"]}
                else:
                    maps = _prefix_run(sampled, scheme, cfg["grid"], seed, pairs if scheme == "antithetic" else None)
                for n, m in maps.items():
                    by_n.setdefault(n, []).append(float(((m - ref) ** 2).sum()))
            sq[scheme][image] = by_n
        p = pairs["n"]
        ve = pairs["e2"] / p - float((pairs["e1"] / p).pow(2).sum())
        vo = pairs["o2"] / p
        pair_stats[image] = {"V_even": ve, "V_odd": vo, "ratio": 2 * ve / (ve + vo), "pairs": p}
        calls += sampled.calls
    curves = _curves(sq, refs)
    ratios = _ratios(curves)
    ci = _bootstrap(sq, refs) if seeds > 1 else {}
    for scheme, by_n0 in ratios.items():
        for n0, r in by_n0.items():
            r["ci95"] = ci.get(scheme, {}).get(n0)
    return {
        "model": model_name, "method": method_name, "images": images, "n_ref": n_ref, "seeds": seeds,
        "ig_steps": steps if method_name == "ig" else None, "grid": cfg["grid"], "lhs_grid": cfg["lhs_grid"],
        "ref_rel_se": {im: math.sqrt(se2 / norm2) for im, (norm2, se2) in refs.items()},
        "curves": {s: {str(n): v for n, v in c.items()} for s, c in curves.items()},
        "ratios": {s: {str(n0): r for n0, r in rr.items()} for s, rr in ratios.items()},
        "antithetic_ratio_from_pairs": pair_stats,
        "method_calls": calls, "seconds": time.perf_counter() - t0,
    }


def verdicts(results: list[dict]) -> dict:
    out = {}
    for scheme in SCHEMES[1:]:
        worst = max(float(r["ratios"][scheme][n0]["ratio"]) for r in results for n0 in r["ratios"][scheme])
        # a verdict needs every model × method; a partial run can only rule a scheme out
        covered = {(r["model"], r["method"]) for r in results}
        complete = covered >= {(m, k) for m in ("cnn", "lite0") for k in ("smoothgrad", "ig")}
        out[scheme] = {"worst_ratio": worst, "qualifies": worst <= 0.7 and complete, "complete": complete}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="full", choices=sorted(PRESETS))
    ap.add_argument("--models", default="cnn,lite0")
    ap.add_argument("--methods", default="smoothgrad,ig")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--append", action="store_true", help="keep the other model/method results already in --out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    results = []
    for model_name in args.models.split(","):
        if model_name == "lite0":
            from smoothsal.models.zoo import efficientnet_lite0

            model = efficientnet_lite0()
        else:
            model = small_cnn()
        for method_name in args.methods.split(","):
            r = run_config(model_name, model, method_name, PRESETS[args.preset][model_name])
            results.append(r)
            print(f"[{model_name}/{method_name}] {r['method_calls']} samples in {r['seconds']:.0f} s", flush=True)
    if args.append and Path(args.out).exists():
        old = json.loads(Path(args.out).read_text())
        new = {(r["model"], r["method"]) for r in results}
        kept = [dict(r, preset=old.get("preset")) for r in old["results"] if (r["model"], r["method"]) not in new]
        results = kept + [dict(r, preset=args.preset) for r in results]
    out = {"preset": args.preset, "noise_level": NOISE_LEVEL, "threads": args.threads,
           "seconds": time.perf_counter() - t0, "results": results, "verdicts": verdicts(results)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print_table(out)


def print_table(out: dict) -> None:
    for r in out["results"]:
        print(f"\n{r['model']} / {r['method']}  (images {','.join(r['images'])}; n_ref {r['n_ref']}, "
              f"ref rel. SE {', '.join(f'{v:.3f}' for v in r['ref_rel_se'].values())}; seeds {r['seeds']})")
        ns = sorted({int(n) for c in r["curves"].values() for n in c})
        print("  scheme       " + "".join(f"{'n=' + str(n):>14}" for n in ns) + "   (corrected / raw)")
        for scheme, c in r["curves"].items():
            cells = "".join(
                f"{c[str(n)]['corrected']:>7.3f}/{c[str(n)]['raw']:<6.3f}" if str(n) in c else " " * 14 for n in ns
            )
            print(f"  {scheme:<12} {cells}")
        for scheme, rr in r["ratios"].items():
            txt = "; ".join(
                f"e@G{n0}={v['e']:.3f}: n={v['n_scheme']:.0f}, ratio {v['ratio']:.2f}"
                + (f" [{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}]" if v.get("ci95") else "")
                for n0, v in rr.items()
            )
            print(f"  {scheme:<12} {txt}")
        pr = "; ".join(f"{im}: {v['ratio']:.3f} (V_odd/V_even {v['V_odd'] / v['V_even']:.2f})"
                       for im, v in r["antithetic_ratio_from_pairs"].items())
        print(f"  antithetic MSE ratio from pair decomposition 2Ve/(Ve+Vo): {pr}")
    print("\nverdict (≤ 0.7 × Gaussian's n at both e, both models, both methods):")
    for scheme, v in out["verdicts"].items():
        print(f"  {scheme:<12} worst ratio {v['worst_ratio']:.2f} -> {'QUALIFIES' if v['qualifies'] else 'does not qualify'}")
    print(f"total {out['seconds']:.0f} s")


if __name__ == "__main__":
    main()
