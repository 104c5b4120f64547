r"""The one runner of rows: calls sized by a :class:`~smoothsal.execution.policy.RowPolicy`, out-of-memory halving.

Every method, ``Smooth``, metric, ``predict`` and study that runs many rows does it here:

* :func:`policy_for` — the policy of a job: :class:`~smoothsal.execution.policy.FixedRows` for a
  given ``batch_size``, else :class:`~smoothsal.execution.policy.LearnedRows` under the memory
  budget ``max_memory``;
* :func:`run_rows` — ``n`` items (of ``unit`` model rows each: a noisy input of IG is ``steps``
  rows) in calls of the sizes the policy asks for, each call's result kept (concatenated along
  the first axis) or handed to ``consume`` (a running sum) and dropped;
* :func:`run_call` — one call of a chosen size (``Smooth`` chooses its calls from the policy's
  size itself: whole draws of all its images): after an out-of-memory error the policy halves its
  rows for good (:meth:`~smoothsal.execution.policy.RowPolicy.shrink`) and the same items run
  again in smaller calls, concatenated: the result is the same.

The work is a function ``work(lo, hi)`` of the item range; rows are built inside it, so memory
holds one call's rows. On the CPU, after each call of a learned policy the heap's free part is
given back to the system when it exceeds two memory budgets
(:func:`smoothsal.execution.allocator.trim_above`, :data:`~smoothsal.execution.allocator.FREE_BUDGETS`),
so keeping freed memory for reuse never holds more than that between calls; a new job's learned
policy (:func:`policy_for`) starts with at most one budget free
(:data:`~smoothsal.execution.allocator.START_BUDGETS`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from smoothsal.execution import allocator
from smoothsal.execution.memory import MemorySpec, is_out_of_memory, release_memory
from smoothsal.execution.policy import FixedRows, LearnedRows, RowPolicy

__all__ = ["policy_for", "run_call", "run_rows", "settle"]

T = TypeVar("T")


def policy_for(
    model: nn.Module | None,
    example: Tensor,
    what: Hashable,
    *,
    batch_size: int | None = None,
    max_memory: MemorySpec = None,
    call_share: float = 1.0,
) -> RowPolicy:
    """The policy of a job: ``FixedRows(batch_size)`` when given, else ``LearnedRows`` (keyed by
    ``model``, the row ``example``'s shape, dtype and device, and ``what``) under ``max_memory``,
    its calls within ``call_share`` of the budget.

    A learned policy on the CPU starts its job by giving the heap's free part back beyond
    :data:`~smoothsal.execution.allocator.START_BUDGETS` budgets (what earlier jobs left free)."""
    if batch_size is not None:
        return FixedRows(batch_size)
    policy = LearnedRows(model, example, what, max_memory=max_memory, call_share=call_share)
    if policy.device.type == "cpu":
        allocator.trim_above(allocator.START_BUDGETS * policy.budget)
    return policy


def _after_call(policy: RowPolicy) -> None:
    budget = getattr(policy, "budget", None)
    if budget is not None and getattr(policy, "device", torch.device("cpu")).type == "cpu":
        allocator.trim_above(allocator.FREE_BUDGETS * budget)


def run_call(
    policy: RowPolicy, size: int, n: int, work: Callable[..., Tensor], *, unit: int = 1, sized: bool = False
) -> Tensor:
    """``work(0, n)``, run (and timed by the policy) as the call of ``size`` rows asked for: ``n``
    items of ``unit`` model rows each.

    After an out-of-memory error (and when the policy :attr:`~smoothsal.execution.policy.RowPolicy.retries`)
    the rows per call are halved for good and the same items run again, ``work(lo, hi)`` on
    smaller ranges, concatenated along the first axis. One item that does not fit raises.

    With ``sized``, ``work(lo, hi, batch_size)`` also gets the most model rows one model call
    of it may hold: ``min(size, (hi - lo) * unit)`` (a call of one item of more rows than the
    size, e.g. IG's ``steps`` path points under a smaller size, runs them in several model calls).
    """
    return _run_call(policy, size, n, work, unit, sized)[0]


def _run_call(
    policy: RowPolicy, size: int, n: int, work: Callable[..., Tensor], unit: int, sized: bool
) -> tuple[Tensor, int]:
    """:func:`run_call`, and the rows per call that worked (after any halving)."""
    failed = False
    call = (lambda: work(0, n, min(size, n * unit))) if sized else (lambda: work(0, n))
    try:
        out = policy.run(size, call, rows=n * unit, per_call=min(size, n * unit) if sized else n * unit)
    except Exception as err:  # noqa: BLE001 - only out-of-memory errors are handled
        if not policy.retries or not is_out_of_memory(err) or (n == 1 and (not sized or size <= 1)):
            raise
        failed = True
    if not failed:
        _after_call(policy)
        return out, size
    # outside the except block: the traceback (and the tensors its frames hold) is released
    rows = policy.shrink(min(size, n * unit) if sized else n * unit)
    release_memory()
    parts, lo = [], 0
    while lo < n:  # the rest in calls of the rows that work now (a part may halve them again)
        m = min(n - lo, max(1, rows // unit))
        part = (lambda a, b, k, lo=lo: work(lo + a, lo + b, k)) if sized else (lambda a, b, lo=lo: work(lo + a, lo + b))
        out, rows = _run_call(policy, rows, m, part, unit, sized)
        parts.append(out)
        lo += m
    return torch.cat(parts), rows


def run_rows(
    policy: RowPolicy,
    n: int,
    work: Callable[..., Tensor],
    *,
    unit: int = 1,
    consume: Callable[[int, int, Tensor], None] | None = None,
    sized: bool = False,
) -> Tensor | None:
    """Run items ``0..n`` through ``work(lo, hi)`` in calls the policy sizes (see the module docstring).

    Args:
        policy: the rows-per-call rule (:func:`policy_for`).
        n: items to run, ``>= 0``.
        work: ``work(lo, hi)`` runs items ``lo..hi-1`` and returns a tensor whose first axis is
            those items.
        unit: model rows per item (the policy counts rows; a call holds at least one item).
        consume: ``consume(lo, hi, result)`` takes each call's result (e.g. into a running sum),
            which is then dropped; ``None`` keeps and concatenates them.
        sized: call ``work(lo, hi, batch_size)`` with the most model rows per model call
            (:func:`run_call`), for work that passes them on (a :class:`~smoothsal.execution.policy.RowContext`).

    Returns:
        the concatenated results ``[n, ...]``, or ``None`` with ``consume``.
    """
    parts: list[Tensor] = []
    lo = 0
    while lo < n:
        size = policy.next_size((n - lo) * unit)
        m = max(1, min(n - lo, size // unit))
        if sized:
            out = run_call(policy, size, m, lambda a, b, k, lo=lo: work(lo + a, lo + b, k), unit=unit, sized=True)
        else:
            out = run_call(policy, size, m, lambda a, b, lo=lo: work(lo + a, lo + b), unit=unit)
        if consume is None:
            parts.append(out)
        else:
            consume(lo, lo + m, out)
        del out
        lo += m
    if consume is not None:
        return None
    return torch.cat(parts) if parts else torch.empty(0)


def settle(policy: LearnedRows, work: Callable[[int], Any], *, most: int = 1 << 20) -> int:
    """The size a learned policy settles on, learned on throwaway calls ``work(k)`` of ``k`` rows.

    For a job whose rows per call must be fixed before it starts (``smoothsal explain-dataset``:
    every map of a store is computed with the same grouping, whatever rank or resumed run made
    it): the policy's own rule, run to its end (a clear fall of the rows per second, or the
    memory cap) on ``work``, whose results are dropped; at most ``most`` rows per call.
    """
    while not policy.settled:
        k = policy.next_size(most)
        policy.run(k, lambda k=k: work(k))
        if k >= most:
            break
    return policy.next_size(most)
