"""The defaults' cost, before and after a change: the demo's main job and the quick report card.

Two jobs, each run at its default settings in a fresh subprocess per run, for every source tree
given (``--trees``, e.g. the checkout before a change and this one), interleaved: in each round
every (job, tree) pair runs once, the trees' order rotating from round to round so that neither
always runs first on a warm or a cold machine:

* ``explain`` — ``smoothsal explain --out DIR``: what ``make demo`` spends its time on;
* ``evaluate`` — ``smoothsal evaluate --quick --out DIR``: the quick report card;
* ``explain-chelsea`` — ``smoothsal explain chelsea --out DIR``: the demo's job on one of its photos
  (the same methods, samples and stopping rule), when the whole demo is too long to repeat.

With ``--parallel`` the trees' runs of a (round, job) start at the same time instead of one after
the other, so that the load of a shared machine falls on both alike (and a round takes the time of
its slowest run); the CPU time of each child is still its own.

Per run it records the wall time, the user and system CPU time, the peak resident set size and
the minor and major page faults of the child (``os.wait4``: the kernel's own accounting, what
``/usr/bin/time -v`` prints), per (job, tree) the median over rounds, and per job each later
tree's CPU time and peak RSS over the first tree's (of the medians and of each round's pair). Wall time is only
meaningful on a quiet machine; CPU time, page faults and peak RSS are meaningful on a shared one.
Every run writes into a fresh folder under ``--work`` (nothing is resumed); the model weights come
from ``SMOOTHSAL_CACHE`` as usual.

    python benchmarks/bench_defaults.py --trees /path/to/before/src,src [--rounds 3] [--jobs explain,evaluate]
        [--parallel] [--out benchmarks/results/bench_defaults.json] [--note TEXT]

Writes ``benchmarks/results/bench_defaults.json`` (paths relative to the repository, and the
commit of each tree), adding to the runs already there for the same trees (an interrupted
measurement resumes where it stopped; ``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bench_defaults.json"
JOBS = {
    "explain": ["explain"],
    "evaluate": ["evaluate", "--quick"],
    "explain-chelsea": ["explain", "chelsea"],
}
_CHILD = "import sys; from smoothsal.cli import main; main(sys.argv[1:])"


def _relative(path: Path) -> str:
    return os.path.relpath(path.resolve(), ROOT)


def _commit(tree: Path) -> dict[str, object]:
    """The commit a source tree is at, and whether it has changes not committed."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, check=False)
        return out.stdout.strip() if out.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "--", "."))}


def start(tree: Path, job: str, work: Path, python: str) -> tuple[subprocess.Popen, float]:
    """Start ``job`` with ``tree`` first on the path, in a fresh process (its output in a log beside its folder)."""
    out_dir = Path(tempfile.mkdtemp(prefix=f"{job}-", dir=work))
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with (out_dir.parent / f"{out_dir.name}.log").open("w") as log:
        child = subprocess.Popen([python, "-c", _CHILD, *JOBS[job], "--out", str(out_dir)], env=env, cwd=work,
                                 stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    return child, time.perf_counter()


def finish(child: subprocess.Popen, started: float) -> dict[str, float | int]:
    """Wait for a run started by :func:`start`; its kernel accounting."""
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    return {
        "returncode": child.returncode,
        "wall_s": wall,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux reports KiB
        "minor_faults": usage.ru_minflt,
        "major_faults": usage.ru_majflt,
    }


def summarize(runs: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Median of each figure per job and tree, over the successful runs."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for job in sorted({r["job"] for r in runs}):
        for tree in sorted({r["tree"] for r in runs if r["job"] == job}):
            ok = [r for r in runs if r["job"] == job and r["tree"] == tree and r["returncode"] == 0]
            if ok:
                keys = ("wall_s", "cpu_s", "user_s", "sys_s", "peak_rss_mib", "minor_faults", "major_faults")
                out.setdefault(job, {})[tree] = {"runs": len(ok), **{k: statistics.median(r[k] for r in ok) for k in keys}}
    return out


def ratios(runs: list[dict], names: list[str]) -> dict[str, dict[str, dict[str, object]]]:
    """Per job and tree after the first: CPU time and peak RSS over the first tree's, of the medians
    and of each round where both ran (a round's pair shared the machine's load)."""
    out: dict[str, dict[str, dict[str, object]]] = {}
    med = summarize(runs)
    ok = {(r["round"], r["job"], r["tree"]): r for r in runs if r["returncode"] == 0}
    for job, by_tree in med.items():
        base = by_tree.get(names[0])
        for name in names[1:]:
            if base is None or name not in by_tree:
                continue
            rounds = sorted({rnd for rnd, j, t in ok if j == job and t == name and (rnd, j, names[0]) in ok})
            out.setdefault(job, {})[name] = {
                "cpu_s_median": by_tree[name]["cpu_s"] / base["cpu_s"],
                "peak_rss_median": by_tree[name]["peak_rss_mib"] / base["peak_rss_mib"],
                "cpu_s_per_round": [ok[(rnd, job, name)]["cpu_s"] / ok[(rnd, job, names[0])]["cpu_s"] for rnd in rounds],
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", required=True, help="comma-separated source trees (folders holding smoothsal/)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", default="explain,evaluate", help=f"comma-separated, of {sorted(JOBS)}")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder for the runs' outputs")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--fresh", action="store_true", help="forget the runs already in --out")
    parser.add_argument("--parallel", action="store_true", help="run the trees of a (round, job) at the same time")
    parser.add_argument("--note", default="", help="a note to record (the conditions of the measurement)")
    args = parser.parse_args()

    trees = [Path(t).resolve() for t in args.trees.split(",") if t]
    for tree in trees:
        if not (tree / "smoothsal" / "cli.py").exists():
            parser.error(f"--trees: {tree} holds no smoothsal/cli.py")
        found = subprocess.run([args.python, "-c", "import smoothsal; print(smoothsal.__file__)"], capture_output=True,
                               text=True, env={**os.environ, "PYTHONPATH": str(tree)}, check=False).stdout.strip()
        if not found.startswith(str(tree)):
            parser.error(f"--trees: with PYTHONPATH={tree}, {args.python} imports smoothsal from {found or 'nowhere'}")
    jobs = [j for j in args.jobs.split(",") if j]
    if unknown := [j for j in jobs if j not in JOBS]:
        parser.error(f"--jobs: unknown {unknown}; expected some of {sorted(JOBS)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_defaults-"))
    work.mkdir(parents=True, exist_ok=True)

    names = [_relative(t) for t in trees]
    record = {} if args.fresh or not args.out.exists() else json.loads(args.out.read_text())
    if sorted(record.get("trees", {})) != sorted(names):
        record = {}  # other trees: a new measurement
    runs: list[dict] = record.get("runs", [])
    done = {(r["round"], r["job"], r["tree"]) for r in runs}

    def write() -> dict:
        """The record of the runs so far, written to ``--out``."""
        record = {
            "command": "python benchmarks/bench_defaults.py --trees " + ",".join(names)
            + f" --rounds {args.rounds} --jobs {','.join(jobs)}" + (" --parallel" if args.parallel else "")
            + ("" if args.out == RESULTS else f" --out {_relative(args.out)}"),
            "jobs": {j: ["smoothsal", *JOBS[j], "--out", "DIR"] for j in jobs},
            "trees": {n: _commit(t) for n, t in zip(names, trees)},
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
            "note": "wall time is meaningful only on a quiet machine; CPU time, page faults and peak RSS on any"
            + ("; the trees of a (round, job) ran at the same time" if args.parallel else "")
            + (f"; {args.note}" if args.note else ""),
            "runs": runs,
            "median": summarize(runs),
            "ratio_to_first_tree": ratios(runs, names),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        return record

    for rnd in range(args.rounds):
        order = names[rnd % len(names):] + names[: rnd % len(names)]  # rotate who goes first
        for job in jobs:
            todo = [name for name in order if (rnd, job, name) not in done]
            for group in ([todo] if todo else []) if args.parallel else [[name] for name in todo]:
                print(f"round {rnd + 1}/{args.rounds}: {job} with {', '.join(group)} ...", flush=True)
                started = [start(trees[names.index(name)], job, work, args.python) for name in group]
                for name, (child, t0) in zip(group, started):
                    result = {"round": rnd, "job": job, "tree": name, "parallel": len(group) > 1, **finish(child, t0)}
                    print(f"   {name}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                     for k, v in result.items() if k not in ("round", "job", "tree")),
                          flush=True)  # fmt: skip
                    runs.append(result)
                write()
    record = write()  # also after a rerun with nothing left to run (a new --note)
    for job, by_tree in record.get("median", {}).items():
        for tree, m in by_tree.items():
            print(f"{job:>9} {tree:>28}: wall {m['wall_s']:8.1f} s  cpu {m['cpu_s']:8.1f} s  "
                  f"peak RSS {m['peak_rss_mib']:8.0f} MiB  minor faults {m['minor_faults']:>11,.0f}  ({m['runs']} runs)")
    print(f"wrote {_relative(args.out)}")


if __name__ == "__main__":
    main()
