"""Where a command's peak resident memory goes: malloc's blocks in use, the free heap kept for reuse,
and what lies outside malloc, sampled while the command runs.

Runs a ``smoothsal`` command in this process (``smoothsal.cli.main``); a thread samples every 0.1 s
the resident set (``/proc/self/statm``), malloc's bytes in use (``mallinfo2``: ``uordblks`` +
``hblkhd``), the resident free heap (:func:`smoothsal.execution.allocator.free_heap_bytes`), the
resident memory outside malloc measured at the last trim, and the trims so far. It records the
composition at the peak with the main thread's innermost smoothsal frames, every sample above
``--above`` MiB (every fifth), and every twentieth sample as a series. The bytes in use are glibc's
own count; the resident free heap is smoothsal's estimate, the one its memory bounds act on.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/profile_heap.py \\
        --out benchmarks/results/heap_profile_evaluate_quick.json -- evaluate --quick --out out/evq_profile

Writes ``--out`` (JSON): ``peak`` and each entry of ``above`` as ``{"row": [t_s, rss_mib, in_use_mib,
free_heap_mib, outside_mib, trims], "stack": [...]}``, ``series`` as such rows, and the command.
Linux with glibc only (``mallinfo2``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import traceback
from pathlib import Path

from smoothsal.cli import main
from smoothsal.execution import allocator

MIB = 1 << 20


def _stack(thread: threading.Thread) -> list[str]:
    frame = sys._current_frames().get(thread.ident)
    frames = traceback.extract_stack(frame) if frame is not None else []
    return [f"{f.filename.split('smoothsal/')[-1]}:{f.lineno}:{f.name}" for f in frames if "smoothsal" in f.filename][-8:]


def profile(command: list[str], above_mib: int, period_s: float = 0.1) -> dict[str, object]:
    """Run ``smoothsal COMMAND`` here while sampling the heap (module docstring)."""
    record: dict[str, object] = {"command": ["smoothsal", *command], "peak": None, "above": [], "series": []}
    done = threading.Event()
    runner = threading.main_thread()

    def sample() -> None:
        t0, best, i = time.perf_counter(), 0, 0
        while not done.is_set():
            info, rss = allocator._mallinfo(), allocator._resident_bytes()
            if info is not None and rss is not None:
                row = [round(time.perf_counter() - t0, 1), rss // MIB, (int(info.uordblks) + int(info.hblkhd)) // MIB,
                       allocator.free_heap_bytes() // MIB, allocator._state["outside"] // MIB, allocator._state["trims"]]  # fmt: skip
                if rss > best:
                    best = rss
                    record["peak"] = {"row": row, "stack": _stack(runner)}
                if i % 20 == 0:
                    record["series"].append(row)  # type: ignore[union-attr]
                if row[1] > above_mib and i % 5 == 0:
                    record["above"].append({"row": row, "stack": _stack(runner)[-3:]})  # type: ignore[union-attr]
            i += 1
            time.sleep(period_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        main(command)
    except SystemExit as exit_:
        record["exit_code"] = exit_.code
    finally:
        done.set()
        thread.join()
    return record


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--above", type=int, default=2600, help="MiB above which samples are kept with their stack")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the smoothsal command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the smoothsal command after --")
    record = profile(command, args.above)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print("peak [t_s, rss, in_use, free_heap, outside (MiB), trims]:", record["peak"])


if __name__ == "__main__":
    cli()
