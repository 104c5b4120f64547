"""Speed and memory of :class:`smoothsal.Smooth` against the floor of n forward+backward passes.

Prints, on the bundled EfficientNet-Lite0 and the cat photo (224×224):

* floor: n plain gradient passes on pre-made noisy inputs, in the same batches;
* Smooth: SmoothGrad with the same n and batch size (noise drawn, running sums, standard error);
  the ratio Smooth / floor should be ≈ 1;
* peak resident memory growth for n = 16 vs n = 256 (must not grow with n);
* samples taken by ``tol`` (early stop on the relative standard error) vs the fixed n.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/bench_smooth.py [--n 64] [--batch 16]``).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from smoothsal import SmoothGrad, VanillaGradient
from smoothsal.datasets import load_photo
from smoothsal.models.zoo import efficientnet_lite0


def _floor(model, x: torch.Tensor, n: int, batch: int) -> float:
    grad = VanillaGradient(model)
    target = grad.targets_for(x, None)
    noisy = x + 0.15 * torch.randn(batch, *x.shape[1:])
    t0 = time.perf_counter()
    done = 0
    while done < n:
        s = min(batch, n - done)
        grad.attribute(noisy[:s], target.repeat(s))
        done += s
    return time.perf_counter() - t0


def _smooth(model, x: torch.Tensor, n: int, batch: int) -> float:
    t0 = time.perf_counter()
    SmoothGrad(model, noise_level=0.15, n_samples=n, batch_size=batch).attribute(x)
    return time.perf_counter() - t0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    model = efficientnet_lite0()
    x = load_photo("chelsea").tensor
    _smooth(model, x, args.batch, args.batch)  # warm-up
    floor = min(_floor(model, x, args.n, args.batch) for _ in range(2))
    smooth = min(_smooth(model, x, args.n, args.batch) for _ in range(2))
    print(f"n = {args.n}, batch = {args.batch}, threads = {torch.get_num_threads()}")
    print(f"floor  (n fwd+bwd):   {floor:7.2f} s  ({1000 * floor / args.n:.1f} ms/sample)")
    print(f"Smooth (SmoothGrad):  {smooth:7.2f} s  ratio Smooth/floor = {smooth / floor:.3f}")

    rss0 = _peak_rss_mb()
    _smooth(model, x, 16, args.batch)
    rss16 = _peak_rss_mb()
    _smooth(model, x, 256, args.batch)
    rss256 = _peak_rss_mb()
    print(f"peak RSS: after n=16 {rss16:.0f} MB (+{rss16 - rss0:.0f}), after n=256 {rss256:.0f} MB (+{rss256 - rss16:.0f})")

    for tol in (0.5, 0.3, 0.2):
        t0 = time.perf_counter()
        est = SmoothGrad(model, noise_level=0.15, n_samples=400, batch_size=args.batch, tol=tol).estimate(x)
        print(
            f"tol = {tol:.2f}: stopped at n = {int(est.n_samples[0])} of 400, relative SE "
            f"{float(est.relative_stderr()[0]):.3f}, {time.perf_counter() - t0:.1f} s"
        )


if __name__ == "__main__":
    main()
