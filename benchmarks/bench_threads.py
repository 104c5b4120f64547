"""Milliseconds per row of one Lite0 forward+backward at a given number of torch threads.

Why: on a 2-core machine, torch's default 2 OpenMP threads spin-wait when another process holds a
core, and the work slows ~9× (563 vs 62 ms per row with 1 thread; 72 ms with
``OMP_WAIT_POLICY=PASSIVE``; 50 ms with 2 threads on a quiet machine). Run it beside a busy
process to see it, e.g.::

    python benchmarks/bench_threads.py 2 8          # threads, rows per call
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_threads.py 2 8
    python benchmarks/bench_threads.py 1 8 & python benchmarks/bench_threads.py 1 8; wait

Prints the median of 7 timed calls after one warm-up.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from smoothsal.models.zoo import load_model


def main() -> None:
    threads, rows = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (torch.get_num_threads(), 8)
    torch.set_num_threads(threads)
    model = load_model("lite0").model.eval()
    x = torch.rand(rows, 3, 224, 224)

    def run() -> None:
        xi = x.clone().requires_grad_(True)
        torch.autograd.grad(model(xi)[:, 281].sum(), xi)

    run()
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    print(f"{threads} thread(s), {rows} rows: {median:.4f} s per call, {median / rows * 1000:.1f} ms per row")


if __name__ == "__main__":
    main()
