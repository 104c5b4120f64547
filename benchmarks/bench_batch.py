"""Batch size of SmoothGrad-like work on EfficientNet-Lite0: fixed sizes against the automatic choice.

The work: 2 bundled photos (224×224) × 50 noisy samples = 100 rows, each a forward pass and the
backward pass of the target logit (what :class:`smoothsal.Smooth` around a vanilla gradient does),
run in batches of 4, 8, 16, 32, 64 rows and of the size the learned policy settles on
(:class:`smoothsal.execution.policy.LearnedRows`, run to its end by
:func:`smoothsal.execution.runner.settle`). The sizes are run interleaved, 3 rounds; the table gives
the median time and its ratio to the fastest fixed size, all from this one run. Also printed: the
row memory measured by :func:`smoothsal.execution.measure.row_memory` (the peak of the live
tensors) against the CPU allocator's real peak from the PyTorch profiler's memory trace, the cost
of the choice (row memory + learning), and the largest difference between the maps of different
batch sizes (must be float rounding only).

Run: ``.venv/bin/python benchmarks/bench_batch.py`` (writes ``benchmarks/results/batch.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from smoothsal.datasets import load_photo
from smoothsal.execution import measure, memory
from smoothsal.execution.policy import LearnedRows, clear_learned
from smoothsal.execution.runner import settle
from smoothsal.models.zoo import efficientnet_lite0

FIXED = (4, 8, 16, 32, 64)


def _profiler_peak(call) -> int:
    """Peak of the CPU allocator's live bytes during ``call()``, from the profiler's memory events."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    events = [
        e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    ]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "batch.json"
    )
    args = parser.parse_args()

    model = efficientnet_lite0()
    x = torch.cat(
        [load_photo(name).tensor for name in ("chelsea", "coffee")]
    )  # [2, 3, 224, 224]
    with torch.no_grad():
        targets = model(x).argmax(1)  # [2]
    n_images = x.shape[0]
    gen = torch.Generator().manual_seed(0)
    eps = torch.randn(
        args.samples, *x.shape[1:], generator=gen
    )  # draw j shared by the images
    sigma = 0.15  # [0, 1] pixel space: noise level 0.15 of the value range
    n_rows = args.samples * n_images  # row r = (draw r // B, image r % B)

    def grad_rows(rows: torch.Tensor, row_targets: torch.Tensor) -> torch.Tensor:
        inputs = rows.detach().requires_grad_(True)
        score = model(inputs).gather(1, row_targets[:, None]).sum()
        (grad,) = torch.autograd.grad(score, inputs)
        return grad

    def rows_of(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        r = torch.arange(start, stop)
        return x[r % n_images] + sigma * eps[r // n_images], targets[r % n_images]

    def smoothgrad(batch: int) -> torch.Tensor:
        total = torch.zeros_like(x, dtype=torch.float64)
        for start in range(0, n_rows, batch):
            stop = min(start + batch, n_rows)
            rows, row_targets = rows_of(start, stop)
            grad = grad_rows(rows, row_targets).double()
            total.index_add_(0, torch.arange(start, stop) % n_images, grad)
        return (total / args.samples).float()

    # ---- memory of one row: the live-tensor peak vs the allocator's real peak -------------------
    example, example_targets = rows_of(0, 4)
    t0 = time.perf_counter()
    row_bytes = measure.row_memory(
        lambda rows: grad_rows(rows, example_targets[: rows.shape[0]]), example
    )
    t_row_memory = time.perf_counter() - t0
    peak2 = _profiler_peak(lambda: grad_rows(example[:2], example_targets[:2]))
    peak4 = _profiler_peak(lambda: grad_rows(example, example_targets))
    profiler_row = (peak4 - peak2) / 2

    # ---- the automatic choice -----------------------------------------------------------------
    budget = memory.memory_budget(x.device)
    clear_learned()
    learned = LearnedRows(None, x[0], "bench_batch:grad")
    t0 = time.perf_counter()
    auto = settle(learned, lambda k: grad_rows(*rows_of(0, k)), most=n_rows)
    t_choose = time.perf_counter() - t0
    probe_rates = learned.state.rates

    # ---- interleaved timing -------------------------------------------------------------------
    sizes = list(FIXED) + ([auto] if auto not in FIXED else [])
    times: dict[int, list[float]] = {b: [] for b in sizes}
    maps: dict[int, torch.Tensor] = {}
    smoothgrad(8)  # warm-up
    for _ in range(args.rounds):
        for b in sizes:
            t0 = time.perf_counter()
            maps[b] = smoothgrad(b)
            times[b].append(time.perf_counter() - t0)
    median = {b: statistics.median(ts) for b, ts in times.items()}
    best_fixed = min(FIXED, key=lambda b: median[b])
    max_diff = max(float((maps[b] - maps[FIXED[0]]).abs().max()) for b in sizes)
    scale = float(maps[FIXED[0]].abs().max())

    print(
        f"SmoothGrad-like work: {n_images} images x {args.samples} samples = {n_rows} rows, "
        f"EfficientNet-Lite0 224x224, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(
        f"row memory: {memory.format_bytes(row_bytes)}/row measured (live peak), "
        f"{memory.format_bytes(profiler_row)}/row allocator peak (profiler); measured in {t_row_memory:.1f} s"
    )
    print(
        f"budget {memory.format_bytes(budget)} -> cap {budget // row_bytes} rows; learned rows/s "
        + ", ".join(f"{k}: {r:.1f}" for k, r in sorted(probe_rates.items()))
        + f"; chose {auto} in {t_choose:.1f} s"
    )
    print(
        f"{'batch':>8} {'median s':>9} {'runs (s)':>24} {'vs best fixed':>14} {'vs 32':>7}"
    )
    for b in sizes:
        label = (
            f"auto={b}"
            if b == auto and b not in FIXED
            else (f"{b} (auto)" if b == auto else str(b))
        )
        runs = " ".join(f"{t:.2f}" for t in times[b])
        print(
            f"{label:>8} {median[b]:9.2f} {runs:>24} {median[b] / median[best_fixed]:14.2f} "
            f"{median[b] / median[32]:7.2f}"
        )
    print(f"max |map(batch) - map(4)| = {max_diff:.2e} (map max {scale:.2e})")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "command": "python benchmarks/bench_batch.py",
        "work": {
            "images": n_images,
            "samples": args.samples,
            "rows": n_rows,
            "model": "efficientnet_lite0",
        },
        "machine": {
            "platform": platform.platform(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "row_bytes_counted": row_bytes,
        "row_bytes_profiler": profiler_row,
        "row_memory_seconds": t_row_memory,
        "budget_bytes": budget,
        "cap_rows": budget // row_bytes,
        "learned_rows_per_s": {str(k): r for k, r in sorted(probe_rates.items())},
        "auto_batch": auto,
        "choose_seconds": t_choose,
        "rounds": args.rounds,
        "seconds": {str(b): times[b] for b in sizes},
        "median_seconds": {str(b): median[b] for b in sizes},
        "best_fixed": best_fixed,
        "max_abs_map_difference": max_diff,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
