"""Keeping freed CPU memory (smoothsal.execution.allocator): no page faults on reuse, opt-out by environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from smoothsal.execution import allocator

pytestmark = pytest.mark.skipif(allocator._libc() is None, reason="needs glibc's mallopt")

# In a fresh process: allocate and free a 64 MiB tensor 8 times (what every forward+backward does with
# its activations) and count the minor page faults of the last 7 rounds.
_PROBE = """
import json, resource, sys, torch
import smoothsal
from smoothsal.execution import allocator
if sys.argv[1] == "method":  # what a user's first call does
    smoothsal.VanillaGradient(torch.nn.Linear(3, 2).eval()).attribute(torch.rand(1, 3), 0)
elif sys.argv[1] == "off":
    allocator.keep_freed_memory(False)
torch.ones(16 << 20).sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(7):
    torch.ones(16 << 20).sum()  # 64 MiB, written then freed
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"faults": faults, "kept": allocator.kept(), "free": allocator.free_heap_bytes()}))
"""


def _probe(mode: str, **env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1", **env}, timeout=120)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_method_call_keeps_freed_memory_and_reuse_costs_no_page_faults():
    pages = 7 * (64 << 20) // 4096  # 114,688 pages written in the 7 rounds
    kept = _probe("method")
    assert kept["kept"] and kept["faults"] < pages // 20
    assert kept["free"] >= 64 << 20  # the freed 64 MiB is counted as available for the next call
    plain = _probe("off")  # glibc's defaults: every round maps and faults the 64 MiB again
    assert not plain["kept"] and plain["faults"] > pages // 2


def test_the_environment_variable_opts_out():
    got = _probe("method", **{allocator.ENV: "0"})
    assert not got["kept"] and got["free"] == 0


def test_keep_freed_memory_checks_its_argument():
    with pytest.raises(TypeError, match="enabled"):
        allocator.keep_freed_memory("yes")


# In a fresh process: a 200 MiB block freed below a live one stays a free chunk inside the heap; a trim gives its
# pages back, but malloc still lists the chunk as free (fordblks).
_TRIM_PROBE = """
import json, torch
from smoothsal.execution import allocator
allocator.keep_freed_memory(True)
big = torch.ones(50 << 20)  # 200 MiB written
# a block above it: larger than every free chunk, so malloc must take it from the heap's top
# (a small block could reuse a free chunk below ``big``, and ``big`` would then merge into the top)
above = torch.empty((int(allocator._mallinfo().fordblks) >> 2) + (1 << 18))
del big
out = {"free_before": allocator.free_heap_bytes(), "first": allocator.trim_above(64 << 20)}
out |= {"listed_after": int(allocator._mallinfo().fordblks), "free_after": allocator.free_heap_bytes(),
        "second": allocator.trim_above(64 << 20)}
again = torch.ones(50 << 20)  # the same pages faulted in again, then freed
del again
out |= {"free_reused": allocator.free_heap_bytes(), "third": allocator.trim_above(64 << 20)}
print(json.dumps(out))
"""


def test_a_trim_is_not_asked_for_again_until_freed_pages_are_resident_again():
    out = subprocess.run([sys.executable, "-c", _TRIM_PROBE], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)  # fmt: skip
    got = json.loads(out.stdout.strip().splitlines()[-1])
    mib = 1 << 20
    assert got["free_before"] >= 190 * mib and got["first"] is True
    # malloc still lists the 200 MiB as free, but none of it is resident: no second trim
    assert got["listed_after"] >= 190 * mib and got["free_after"] < 16 * mib and got["second"] is False
    assert got["free_reused"] >= 190 * mib and got["third"] is True
