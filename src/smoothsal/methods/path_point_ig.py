r"""Integrated Gradients at one random path point per input: the unbiased inner method of a smoothed IG.

Integrated Gradients (Sundararajan et al. 2017, arXiv:1703.01365, eq. 1) integrates the gradient
along the straight path from a baseline :math:`x'` to the input :math:`x`. One point drawn
uniformly on the path (:mod:`.path_sampling`) is an unbiased one-row estimate of that integral:

.. math:: a = (x - x') \odot \nabla F_c\big(x' + \alpha (x - x')\big), \qquad
          \alpha \sim U(0, 1), \qquad \mathbb E_\alpha[a] = IG(x; x').

Alone it is a noisy map. Under :class:`~smoothsal.smoothing.Smooth` it is the smoothed IG with
**one model row per noisy sample**: sample :math:`j` explains :math:`\tilde x_j = x + \epsilon_j`
at its own :math:`\alpha_j`, so the mean over the :math:`n` samples is unbiased for the smoothed
*exact* IG :math:`\mathbb E_\epsilon[IG(x + \epsilon; x')]`, and its completeness gap
:math:`|\sum_i \hat M_i - \overline{\Delta F}| / |\overline{\Delta F}|` goes to 0 as :math:`n`
grows. A fixed inner quadrature (the registry's 4 Gauss–Legendre points per sample) has a bias
that no :math:`n` removes.

How :math:`\alpha_j` is drawn. ``Smooth`` tells the method which of its :math:`n` draws each noisy
input is (:class:`~smoothsal.execution.policy.RowContext`: ``draws``, ``n_draws``); draw :math:`j`
takes :math:`\alpha_j` of a table stratified (:func:`~smoothsal.methods.path_sampling.stratified_alphas`)
within consecutive blocks of ``block`` draws (16, ``Smooth``'s default ``min_samples``), drawn from
the method's ``seed``. Every block holds one :math:`\alpha` in each of its strata, so the estimate at
every ``tol`` check (a multiple of ``min_samples``) has whole blocks, and the two halves of the draws
that the trade-off metrics take (:func:`smoothsal.metrics.tradeoff.smoothed_halves`) are independent
when the half is a multiple of ``block``; each :math:`\alpha_j` alone is :math:`U(0, 1)`, so every row
is unbiased. Called directly (no draws) the method draws one :math:`\alpha` from its ``seed``, shared
by every image of the batch (so the map of an image does not depend on the batch).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from smoothsal._core.validation import TargetSpec, check_positive_int, resolve_targets
from smoothsal.execution.calls import forward_rows, resolve_model_targets
from smoothsal.execution.policy import RowContext
from smoothsal.execution.runner import run_rows
from smoothsal.methods.base import Attribution, ConvergenceDelta
from smoothsal.methods.baselines import BaselineSpec, check_baseline_spec, make_baseline
from smoothsal.methods.path_sampling import path_point_attributions, stratified_alphas
from smoothsal.noise import make_generator

__all__ = ["PathPointIG", "block_stratified_alphas"]


def block_stratified_alphas(n: int, block: int, generator: torch.Generator) -> Tensor:
    r"""Path positions of ``n`` samples, ``[n]`` float64: :func:`stratified_alphas` within consecutive
    blocks of ``block`` samples (the last block may be shorter), blocks drawn in order.

    Example:
        >>> a = block_stratified_alphas(6, 4, torch.Generator().manual_seed(0))
        >>> sorted((a[:4] * 4).floor().long().tolist()), sorted((a[4:] * 2).floor().long().tolist())
        ([0, 1, 2, 3], [0, 1])
    """
    parts = [stratified_alphas(min(block, n - start), generator) for start in range(0, n, block)]
    return torch.cat(parts)


class PathPointIG(Attribution):
    r"""Integrated Gradients estimated at one uniformly random path point per input (module docstring).

    Args:
        model: the model to explain.
        baseline: :math:`x'`, as for :class:`~smoothsal.methods.integrated_gradients.IntegratedGradients`
            (``"black"``, ``"zeros"``, ``"blur"``, ``"uniform"``, a number, a tensor or a callable).
        seed: the seed of the path positions (and of a random baseline).
        block: draws per stratification block under ``Smooth`` (module docstring).

    :meth:`attribute_with_delta` reports each row's gap from :math:`F_c(x) - F_c(x')`; only a mean
    over many rows is complete (in expectation).

    Example:
        >>> model = torch.nn.Linear(3, 2).eval()
        >>> x = torch.randn(4, 3)
        >>> a = PathPointIG(model, baseline="zeros").attribute(x, target=0)
        >>> torch.allclose(a, x * model.weight[0])  # a linear model's gradient is the same everywhere
        True
    """

    has_convergence_delta = True
    folds_batchnorm = True
    reads_row_context = True

    def __init__(
        self, model: nn.Module, baseline: BaselineSpec = "black", seed: int | torch.Generator = 0, block: int = 16
    ) -> None:
        super().__init__(model)
        self.baseline = check_baseline_spec(baseline)
        self.seed = seed
        self.block = check_positive_int(block, "block")

    def alphas(self, n_inputs: int, context: RowContext | None = None) -> Tensor:
        """The path positions ``[n_inputs]`` (float64) of a call's inputs: by their draws under a
        ``Smooth`` context, else one position from ``seed`` for all."""
        if context is None or context.draws is None or context.n_draws is None:
            return stratified_alphas(1, make_generator(self.seed)).expand(n_inputs)
        table = block_stratified_alphas(int(context.n_draws), self.block, make_generator(self.seed))
        return table[context.draws.to("cpu")]

    def _attribute(self, inputs: Tensor, target: TargetSpec, *, context: RowContext | None = None) -> Tensor:
        return self._compute(inputs, target, context, with_delta=False)[0]

    def _attribute_and_delta(
        self, inputs: Tensor, target: TargetSpec, *, context: RowContext | None = None
    ) -> tuple[Tensor, ConvergenceDelta]:
        attr, delta = self._compute(inputs, target, context, with_delta=True)
        assert delta is not None
        return attr, delta

    def _compute(
        self, x: Tensor, target: TargetSpec, context: RowContext | None, *, with_delta: bool
    ) -> tuple[Tensor, ConvergenceDelta | None]:
        b = x.shape[0]
        alphas = self.alphas(b, context)
        baseline = make_baseline(self.baseline, x, seed=self.seed)
        policy = None if context is None else context.policy()
        ends = None
        if with_delta or target is None:  # F(x) and F(x'): the gap (and the predicted class)
            both = torch.cat([x, baseline])
            ends = forward_rows(self.model, 2 * b, lambda lo, hi: both[lo:hi], example=x[0], policy=policy,
                                what=("path_point_ig", "ends"))  # fmt: skip
            targets = resolve_targets(target, ends[:b])
        else:
            targets = resolve_model_targets(self.model, x, target)
        if context is None or b <= context.batch_size:
            attr = path_point_attributions(self._logits, x, baseline, alphas, targets)
        else:
            attr = run_rows(policy, b, lambda lo, hi: path_point_attributions(
                self._logits, x[lo:hi], baseline[lo:hi], alphas[lo:hi], targets[lo:hi]))  # fmt: skip
        if not with_delta:
            return attr, None
        delta_f = (ends[:b] - ends[b:]).gather(1, targets[:, None]).squeeze(1)
        return attr, ConvergenceDelta.of(attr, delta_f, steps=torch.ones(b, dtype=torch.long, device=x.device))
