r"""One random point per sample on the straight path from a baseline to an input.

Integrated Gradients (Sundararajan et al. 2017, arXiv:1703.01365, eq. 1) is an integral over
:math:`\alpha \in [0, 1]`. Drawing the path point at random instead of on a quadrature grid gives
one model row per sample whose expectation is the *exact* integral:

.. math:: a_j = (x_j - x'_j) \odot \nabla F_c\big(x'_j + \alpha_j (x_j - x'_j)\big), \qquad
          \alpha_j \sim U(0, 1), \qquad
          \mathbb E_{\alpha_j}[a_j] = IG(x_j; x'_j)

so the mean of :math:`n` such rows is unbiased for the expectation of IG over whatever the inputs
:math:`x_j` and baselines :math:`x'_j` are drawn from, and by IG's completeness
:math:`\mathbb E[\sum_i a_{j,i}] = \mathbb E[F_c(x_j) - F_c(x'_j)]`. Expected Gradients (Erion et
al. 2021) draws :math:`x'_j` from a reference set (:mod:`smoothsal.methods.expected_gradients`);
an unbiased smoothed IG draws :math:`x_j = x + \epsilon_j`. Both are built from:

* :func:`stratified_alphas`: the :math:`\alpha_j` of :math:`n` samples, one in each of the
  strata :math:`[k/n, (k+1)/n)`, the strata assigned to the samples in a random order;
* :func:`path_point_attributions`: the rows :math:`a_j` of given inputs, baselines and
  :math:`\alpha_j`, one forward and one backward pass;
* :func:`run_path_rows`: the one place where such rows meet the execution layer (how many rows
  one model call takes: :mod:`smoothsal.execution.runner`);
* :class:`PathEstimate`: the mean of the rows with its per-element standard error.

**Why stratified, and why shuffled.** One :math:`\alpha` per stratum removes most of the
variance that comes from where on the path the points fall (for one input and one baseline and a
path gradient smooth in :math:`\alpha`, the error of the mean falls like :math:`n^{-3/2}` instead of
:math:`n^{-1/2}`; the variance from drawing the inputs or baselines stays). Assigning
the strata to the samples in a random order keeps every single :math:`\alpha_j` marginally
:math:`U(0, 1)` and independent of the sample's other draws, so each row is itself unbiased and
the mean of any subset of the samples is unbiased too; with stratum :math:`j` given to sample
:math:`j` the first samples would all sit near :math:`\alpha = 0`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from smoothsal._core.validation import check_positive_int
from smoothsal.execution.policy import RowContext
from smoothsal.execution.runner import policy_for, run_rows

__all__ = ["PathEstimate", "path_point_attributions", "run_path_rows", "stratified_alphas"]


@dataclass
class PathEstimate:
    r"""A mean of one-point path rows with its standard error (the fields of
    :class:`~smoothsal.smoothing.SmoothEstimate`, which sits a layer above the methods).

    Attributes:
        attributions: the mean map, ``[B, ...]``.
        stderr: per-element standard error of ``attributions`` as an estimate of its expectation
            (the rows' sample standard deviation over :math:`\sqrt n`; ``inf`` for one row).
        n_samples: rows averaged per image, ``[B]``.
    """

    attributions: Tensor
    stderr: Tensor
    n_samples: Tensor

    def relative_stderr(self) -> Tensor:
        r""":math:`\lVert SE\rVert_2 / \lVert \hat M\rVert_2` per image, ``[B]``."""
        num = self.stderr.flatten(1).norm(dim=1)
        den = self.attributions.flatten(1).norm(dim=1)
        return torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), num)


def stratified_alphas(n: int, generator: torch.Generator) -> Tensor:
    r"""Path positions of ``n`` samples, ``[n]`` float64 in [0, 1): one per stratum, strata shuffled.

    :math:`\alpha_j = (\pi_j + u_j) / n` with :math:`\pi` a uniformly random permutation of
    :math:`0..n-1` and :math:`u_j \sim U(0, 1)`: every stratum :math:`[k/n, (k+1)/n)` holds exactly
    one :math:`\alpha`, and each :math:`\alpha_j` alone is :math:`U(0, 1)` (see the module docstring).
    The permutation is drawn first, then the offsets, from ``generator`` (a CPU generator).

    Example:
        >>> a = stratified_alphas(4, torch.Generator().manual_seed(0))
        >>> sorted((a * 4).floor().long().tolist())
        [0, 1, 2, 3]
    """
    check_positive_int(n, "n")
    perm = torch.randperm(n, generator=generator, device=generator.device)
    offsets = torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64)
    return (perm.to(torch.float64) + offsets) / n


def path_point_attributions(
    logits: Callable[[Tensor], Tensor], inputs: Tensor, baselines: Tensor, alphas: Tensor, targets: Tensor
) -> Tensor:
    r"""One row per sample: :math:`(x_j - x'_j) \odot \nabla F_{c_j}(x'_j + \alpha_j (x_j - x'_j))`.

    Args:
        logits: the model as a function ``[R, ...] -> [R, classes]`` (e.g. a method's ``_logits``).
        inputs: :math:`x_j`, ``[R, ...]``.
        baselines: :math:`x'_j`, ``[R, ...]``.
        alphas: :math:`\alpha_j`, ``[R]`` (cast to the inputs' dtype).
        targets: the class :math:`c_j` of each row, LongTensor ``[R]``.
    Returns:
        ``[R, ...]``, detached. The gradient is taken with :func:`torch.autograd.grad`, so no
        ``.grad`` is touched.
    """
    bcast = (-1,) + (1,) * (inputs.dim() - 1)
    diff = inputs - baselines  # [R, ...]
    point = (baselines + alphas.to(device=inputs.device, dtype=inputs.dtype).view(bcast) * diff).detach()
    point.requires_grad_(True)
    with torch.enable_grad():
        out = logits(point)  # [R, classes]
        score = out.gather(1, targets[:, None]).sum()
        (grad,) = torch.autograd.grad(score, point)  # [R, ...]
    return (diff * grad).detach()


def run_path_rows(
    method: object,
    n_rows: int,
    example: Tensor,
    what: Hashable,
    work: Callable[[Tensor], Tensor],
    consume: Callable[[Tensor, Tensor], None],
    *,
    context: RowContext | None = None,
) -> None:
    """Run ``work(rows)`` over ``range(n_rows)`` in the calls the execution layer sizes, handing
    each call's ``(rows [R], work(rows))`` to ``consume`` in row order (then dropped).

    The rows per call come from the caller's ``context`` when there is one (``Smooth`` chose the
    rows of this call: an out-of-memory error reaches its runner), else from the method's
    ``batch_size`` (model rows per call, obeyed) or, with ``batch_size=None``, a
    :class:`~smoothsal.execution.policy.LearnedRows` under the method's ``max_memory``; the
    runner (:func:`smoothsal.execution.runner.run_rows`) halves the calls for good after an
    out-of-memory error and runs the same rows again.

    Args:
        method: the attribution method (its ``model``, ``batch_size`` and ``max_memory``).
        n_rows: rows in all.
        example: one input row's tensor, ``[...]`` (the learned policy's key: shape, dtype, device).
        what: names the work in the learned policy's key (e.g. ``("eg",)``).
        work: ``rows [R] -> [R, ...]``.
        consume: ``consume(rows [R], result [R, ...])``, e.g. into running sums.
        context: the caller's :class:`~smoothsal.execution.policy.RowContext`, or ``None``.
    """
    if context is not None:
        policy = context.policy()
    else:
        model = getattr(method, "model", None)
        policy = policy_for(model if isinstance(model, nn.Module) else None, example, what,
                            batch_size=getattr(method, "batch_size", None),
                            max_memory=getattr(method, "max_memory", None))  # fmt: skip
    device = example.device

    def call(lo: int, hi: int) -> Tensor:
        return work(torch.arange(lo, hi, device=device))

    run_rows(policy, n_rows, call, consume=lambda lo, hi, out: consume(torch.arange(lo, hi, device=device), out))
