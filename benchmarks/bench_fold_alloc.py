"""What BatchNorm folding and keeping freed memory buy, apart and together (issue 8).

SmoothGrad of EfficientNet-Lite0 (224², the 4 bundled photos, n = 32 per image, 16 rows per call,
``tol=None``) in a fresh subprocess per configuration, so that each starts with glibc's allocator
as it comes:

* ``folding``: :mod:`smoothsal.execution.folding` on (the default) or off (``folding.set_folding(False)``);
* ``allocator``: :mod:`smoothsal.execution.allocator` keeping freed memory (the default) or not
  (``SMOOTHSAL_KEEP_FREED_MEMORY=0``);
* ``Captum``: Captum's ``NoiseTunnel(Saliency)`` (smoothgrad, ``abs=False``, the same 32 samples
  per image and the same 16 rows per call: ``nt_samples_batch_size=4`` of the 4 images; and at
  its default, all 128 rows in one call, ~10 GB) in a process of its own, as a Captum user runs it (glibc's allocator as it comes, the model as
  given). In one process the allocator setting would apply to every library (it is the
  process's), which is why ``bench_anchors.py``, which times all of them in one process, does
  not see it.

Each subprocess makes one warm-up call and then ``--calls`` timed calls, and reports the median
ms per model row, its user and system CPU seconds and minor page faults over the timed calls.
The four configurations are run ``--rounds`` times, interleaved (the order rotates), and the
medians over rounds are printed with their ratio to "both off". Also printed: the relative L2
difference between the folded and the unfolded map (same seed), beside what moving the input by
1e-6 does to the unfolded gradient (the network's own sensitivity to rounding-size changes).

    .venv/bin/python benchmarks/bench_fold_alloc.py [--rounds 3] [--calls 3] [--threads 2]
        [--only "both (defaults)"] [--batch-size 0 (learned)] [--skip-differences]

With ``--batch-size 0`` SmoothGrad learns its rows per call under the default memory budget, so
the figures (CPU time, minor page faults, peak RSS and the allocator's trims) show what the
defaults cost; run it with another source tree first on ``PYTHONPATH`` to compare two trees.

Writes ``benchmarks/results/bench_fold_alloc.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _provenance import command_line, rel

RESULTS = Path(__file__).parent / "results" / "bench_fold_alloc.json"
CONFIGS = {  # name: (folding, keep freed memory)
    "both off": (False, False),
    "folding": (True, False),
    "allocator": (False, True),
    "both (defaults)": (True, True),
    "Captum (own process)": (None, False),
    "Captum default (own process)": ("default", False),
}

_CHILD = r"""
import json, resource, statistics, sys, time, torch
import smoothsal as ss
from smoothsal.zoo import efficientnet_lite0  # the documented name, also in trees before smoothsal.models
fold, threads, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
batch_size = int(sys.argv[4]) or None  # 0: learned under the default memory budget
torch.set_num_threads(threads)
model = efficientnet_lite0()
x = torch.cat([ss.datasets.load_photo(p).tensor for p in ("chelsea", "coffee", "astronaut", "rocket")])
if fold.startswith("captum"):
    import captum.attr
    with torch.no_grad():
        t = model(x).argmax(1)
    sigma = float((0.15 * (x.flatten(1).amax(1) - x.flatten(1).amin(1))).mean())
    nt = captum.attr.NoiseTunnel(captum.attr.Saliency(model))
    class sg:
        attribute = staticmethod(lambda x: nt.attribute(x, nt_type="smoothgrad", nt_samples=32, stdevs=sigma,
                                                         nt_samples_batch_size=None if fold == "captum_default" else 4,
                                                         target=t, abs=False))
else:
    _home = getattr(ss, "execution", None)  # a tree from before smoothsal.execution: the root modules
    (_home.folding if _home is not None else ss.fusion).set_folding(fold == "1")
    sg = ss.SmoothGrad(model, n_samples=32, seed=0, batch_size=batch_size, tol=None)
_alloc = ss.execution.allocator if hasattr(ss, "execution") else ss.allocator
first = sg.attribute(x)
r0 = resource.getrusage(resource.RUSAGE_SELF)
times = []
for _ in range(calls):
    t0 = time.perf_counter()
    sg.attribute(x)
    times.append(time.perf_counter() - t0)
r1 = resource.getrusage(resource.RUSAGE_SELF)
rows = 4 * 32
print(json.dumps({"ms_per_row": 1000 * statistics.median(times) / rows, "user_s": r1.ru_utime - r0.ru_utime,
                  "sys_s": r1.ru_stime - r0.ru_stime, "minor_faults": r1.ru_minflt - r0.ru_minflt,
                  "kept": _alloc.kept(), "peak_rss_mib": r1.ru_maxrss / 1024,
                  "trims": getattr(_alloc, "_state", {}).get("trims")}))
"""

_DIFF = r"""
import json, torch
import smoothsal as ss
from smoothsal.zoo import efficientnet_lite0  # the documented name, also in trees before smoothsal.models
torch.set_num_threads(2)
model = efficientnet_lite0()
x = torch.cat([ss.datasets.load_photo(p).tensor for p in ("chelsea", "coffee", "astronaut", "rocket")])
def rel(a, b):
    return float((a - b).flatten(1).norm(dim=1).div(b.flatten(1).norm(dim=1)).mean())
on = ss.SmoothGrad(model, n_samples=32, seed=0, tol=None).attribute(x)
with ss.execution.folding.folding(False):
    off = ss.SmoothGrad(model, n_samples=32, seed=0, tol=None).attribute(x)
    g = ss.VanillaGradient(model).attribute(x)
    g_moved = ss.VanillaGradient(model).attribute(x + 1e-6 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))
g_fold = ss.VanillaGradient(model).attribute(x)
print(json.dumps({"smoothgrad_folded_vs_not": rel(on, off), "gradient_folded_vs_not": rel(g_fold, g),
                  "gradient_input_moved_1e-6": rel(g_moved, g)}))
"""


def run_child(code: str, args: list[str], env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--only", default=None, help="comma-separated configurations to run (default: all)")
    parser.add_argument("--skip-differences", action="store_true", help="do not measure the folded map's difference")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="rows per call of smoothsal's SmoothGrad (0: learned under the default memory budget)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    names = [n for n in CONFIGS if args.only is None or n in args.only.split(",")]
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            fold, keep = CONFIGS[name]
            env = {"SMOOTHSAL_KEEP_FREED_MEMORY": "1" if keep else "0", "OMP_NUM_THREADS": str(args.threads)}
            mode = {None: "captum", "default": "captum_default"}.get(fold, "1" if fold else "0")
            runs[name].append(run_child(_CHILD, [mode, str(args.threads), str(args.calls), str(args.batch_size)], env))
            print(f"round {r + 1} {name:<16} {runs[name][-1]['ms_per_row']:.1f} ms/row", flush=True)
    table = {}
    for name in names:
        table[name] = {k: statistics.median(run[k] for run in runs[name])
                       for k in ("ms_per_row", "user_s", "sys_s", "minor_faults", "peak_rss_mib")}  # fmt: skip
    base = table["both off"]["ms_per_row"] if "both off" in table else next(iter(table.values()))["ms_per_row"]
    print(f"\n{'configuration':<18}{'ms/row':>8}{'speed-up':>10}{'user s':>8}{'sys s':>7}{'faults':>10}")
    for name, row in table.items():
        row["speedup_vs_both_off"] = base / row["ms_per_row"]
        print(f"{name:<18}{row['ms_per_row']:>8.1f}{row['speedup_vs_both_off']:>9.2f}x{row['user_s']:>8.1f}"
              f"{row['sys_s']:>7.1f}{row['minor_faults']:>10.0f}")
    diff = run_child(_DIFF, [], {"OMP_NUM_THREADS": "2"}) if not args.skip_differences else {}
    print("\nrelative L2 differences:", json.dumps({k: round(v, 5) for k, v in diff.items()}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": command_line(), "settings": vars(args) | {"out": rel(args.out)},
                                    "load_before": load_before,
                                    "table": table, "runs": runs, "differences": diff}, indent=1))  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
