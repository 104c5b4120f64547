"""Peak resident memory and wall time of whole commands (issue: real models must not run out of memory).

Each command runs in its own process; its peak resident set size is read from
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a fresh helper process that runs only that
command (so the peak is the command's own), together with the memory budget the automatic batch
size was allowed (``smoothsal.execution.memory.memory_budget`` at the start) and the wall time.

Rows (each in a fresh output folder, so nothing is resumed):

* ``tradeoff --dataset photos --settings DA --methods grad,gradcam --noise-levels 0,0.15`` at
  ``--samples 50`` and ``--samples 300`` (the command that was killed at 24 GB);
* the same with ``--noise-levels 0.15`` (σ = 0 is added to the grid);
* ``explain`` at its defaults.

Usage::

    python benchmarks/bench_memory.py            # every row (about an hour on 2 cores)
    python benchmarks/bench_memory.py --quick    # the n = 50 row and explain only

Writes ``benchmarks/results/memory.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRADEOFF = ["tradeoff", "--dataset", "photos", "--settings", "DA", "--methods", "grad,gradcam", "--no-progress"]

_RUNNER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - t0
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KiB
print(json.dumps({"rc": proc.returncode, "seconds": seconds, "peak_bytes": peak_kib * 1024,
                  "stderr_tail": proc.stderr[-500:]}))
"""


def measure(args: list[str]) -> dict:
    """Run ``smoothsal ARGS`` in a fresh process; its peak RSS, wall time and exit code."""
    exe = str(Path(sys.executable).with_name("smoothsal"))
    out = subprocess.run([sys.executable, "-c", _RUNNER, exe, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def budget_bytes() -> int:
    from smoothsal.execution.memory import memory_budget

    return int(memory_budget("cpu"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the n = 50 tradeoff row and explain")
    parser.add_argument("--json", default=str(HERE / "results" / "memory.json"))
    opts = parser.parse_args()

    rows = [("tradeoff DA grad,gradcam σ∈{0,0.15} n=50", [*TRADEOFF, "--noise-levels", "0,0.15", "--samples", "50"])]
    if not opts.quick:
        rows += [
            ("tradeoff DA grad,gradcam σ∈{0,0.15} n=300", [*TRADEOFF, "--noise-levels", "0,0.15", "--samples", "300"]),
            ("tradeoff DA grad,gradcam σ∈{0.15} n=300", [*TRADEOFF, "--noise-levels", "0.15", "--samples", "300"]),
        ]
    rows.append(("explain (defaults)", ["explain", "--no-progress"]))

    budget = budget_bytes()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, args) in enumerate(rows):
            res = measure([*args, "--out", str(Path(tmp) / f"run{i}")])
            res.update(label=label, command="smoothsal " + " ".join(args))
            results.append(res)
            print(f"{label}: rc={res['rc']} peak={res['peak_bytes'] / 2**30:.2f} GiB "
                  f"time={res['seconds']:.0f} s", flush=True)

    print(f"\nmemory budget of the automatic batch size at start: {budget / 2**30:.1f} GiB (the default budget)")
    print(f"{'command':48s} {'peak RSS':>10s} {'time':>8s}  within budget")
    for r in results:
        print(f"{r['label']:48s} {r['peak_bytes'] / 2**30:8.2f} GiB {r['seconds']:7.0f} s  "
              f"{'yes' if r['peak_bytes'] <= budget else 'NO'}")
    path = Path(opts.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"budget_bytes": budget, "rows": results,
                                "when": time.strftime("%Y-%m-%d %H:%M")}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
