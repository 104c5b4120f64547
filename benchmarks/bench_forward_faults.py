"""Where the page faults of the report card's faithfulness section come from, and what the trims cost.

The four forward-only metrics of one faithfulness row of ``smoothsal evaluate --quick`` (deletion
and insertion curves, 10 steps of 16-px patches with the blurred baseline; faithfulness
correlation, 16 runs; monotonicity, 32-px patches) on EfficientNet-Lite0 and the 4 bundled photos
(224²), with a random map, ``--rounds`` times in one fresh subprocess per variant of the
allocator's bounds (:mod:`smoothsal.execution.allocator`):

* ``defaults``: a new job trims the free heap beyond ``START_BUDGETS`` (one) memory budget, a call
  beyond ``FREE_BUDGETS`` (two);
* ``no job-start trim``: only the per-call bound;
* ``no trims``: neither (glibc still trims the heap's top beyond 2 GiB itself).

Per metric call it records the minor page faults, user and system CPU seconds, the trims, the
heap's free part and the resident memory after it; per variant the peak RSS and what the rows
policy learned for this work (the four metrics share it: forward passes of one image shape).
Rows per call are learned (``batch_size=None``) under the default memory budget, so the trims
apply; on a 2-core CPU the rows per second of Lite0's forward passes are flat from 2 to 64 rows
within the timing noise, and the size learned differs from process to process (the JSON records
it). ``--rows 4,32,128`` pins the learned size after one warm-up call (which measures the bytes
per row), to see the cost at each size.

    .venv/bin/python benchmarks/bench_forward_faults.py [--rounds 4] [--only defaults] [--rows 0,4,32,128]

Writes ``benchmarks/results/bench_forward_faults.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _provenance import command_line, rel

RESULTS = Path(__file__).parent / "results" / "bench_forward_faults.json"
VARIANTS = {  # name: (START_BUDGETS, FREE_BUDGETS); None keeps the library's value
    "defaults": (None, None),
    "no job-start trim": (10**6, None),
    "no trims": (10**6, 10**6),
}

_CHILD = r"""
import json, resource, sys, time, torch
torch.set_num_threads(1)
from smoothsal.execution import allocator, policy
start, free, rounds, rows = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if start is not None:
    allocator.START_BUDGETS = start
if free is not None:
    allocator.FREE_BUDGETS = free
from smoothsal.datasets.photos import BUNDLED, natural_photos
from smoothsal.execution.memory import memory_budget
from smoothsal.metrics.faithfulness import deletion_curve, faithfulness_correlation, insertion_curve, monotonicity
from smoothsal.models.zoo import load_model

loaded = load_model("lite0")
model = loaded.model
x = torch.cat([p.tensor for p in natural_photos(list(BUNDLED)[:4], size=loaded.image_size)])
with torch.no_grad():
    t = model(x).argmax(1)


if rows:  # one warm-up call measures the bytes per row; then the learned size is pinned to `rows`
    deletion_curve(model, x, torch.rand(x.shape[0], 1, *x.shape[2:]), t, steps=2, patch=16)
    for state in policy._store.by_model[model].values():
        state.timings, state.settled = {rows: [1.0] * policy.CALLS}, True


def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 >> 20


calls = []
for r in range(rounds):
    maps = torch.rand(x.shape[0], 1, *x.shape[2:], generator=torch.Generator().manual_seed(r))
    metrics = {
        "deletion": lambda: deletion_curve(model, x, maps, t, steps=10, patch=16, baseline="blur"),
        "insertion": lambda: insertion_curve(model, x, maps, t, steps=10, patch=16, baseline="blur"),
        "faithfulness_correlation": lambda: faithfulness_correlation(model, x, maps, t, n_runs=16, patch=16, seed=0),
        "monotonicity": lambda: monotonicity(model, x, maps, t, patch=32),
    }
    for name, run in metrics.items():
        u0, trims0, w0 = resource.getrusage(resource.RUSAGE_SELF), allocator._state["trims"], time.perf_counter()
        run()
        u1 = resource.getrusage(resource.RUSAGE_SELF)
        calls.append({"round": r, "metric": name, "minor_faults": u1.ru_minflt - u0.ru_minflt,
                      "user_s": round(u1.ru_utime - u0.ru_utime, 3), "sys_s": round(u1.ru_stime - u0.ru_stime, 3),
                      "wall_s": round(time.perf_counter() - w0, 3), "trims": allocator._state["trims"] - trims0,
                      "free_heap_mib": allocator.free_heap_bytes() >> 20, "rss_mib": rss_mib()})
learned = [{"key": repr(k), "best": v["best"], "settled": v["settled"], "per_row_bytes": v["per_row"],
            "rows_per_s": {str(s): round(rate, 2) for s, rate in sorted(v["rates"].items())}}
           for k, v in policy.learned_sizes().items()]
print(json.dumps({"calls": calls, "learned": learned, "budget_mib": memory_budget("cpu") >> 20,
                  "start_budgets": allocator.START_BUDGETS, "free_budgets": allocator.FREE_BUDGETS,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10}))
"""


def _run(start: int | None, free: int | None, rounds: int, rows: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(start), json.dumps(free), str(rounds), str(rows)],
                         capture_output=True, text=True, check=True, env=os.environ | {"PYTHONWARNINGS": "ignore"})  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _totals(calls: list[dict], first_round: int) -> dict:
    kept = [c for c in calls if c["round"] >= first_round]
    return {k: round(sum(c[k] for c in kept), 2) for k in ("minor_faults", "user_s", "sys_s", "wall_s", "trims")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--only", default=None, help="comma-separated variants to run (default: all)")
    parser.add_argument("--rows", default="0", help="comma-separated rows per call to pin the learned size to (0: learn it)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",")] if args.only else list(VARIANTS)
    results = {}
    for rows in [int(r) for r in args.rows.split(",")]:
        for name in names:
            res = _run(*VARIANTS[name], args.rounds, rows)
            res["totals_all_rounds"] = _totals(res["calls"], 0)
            res["totals_after_round_0"] = _totals(res["calls"], 1)  # round 0 holds any learning
            label = f"{name}, {rows} rows" if rows else f"{name}, learned"
            results[label] = res
            print(f"{label:>26}: peak {res['peak_rss_mib']:,} MiB; after round 0: {res['totals_after_round_0']}; "
                  f"learned {[(w['best'], w['settled']) for w in res['learned']]}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": command_line(), "settings": vars(args) | {"out": rel(args.out)},
                                    "variants": results}, indent=1) + "\n")  # fmt: skip
    print("wrote", rel(args.out))


if __name__ == "__main__":
    main()
