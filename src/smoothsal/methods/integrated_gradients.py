r"""Integrated Gradients (Sundararajan et al. 2017, arXiv:1703.01365).

The attribution of input feature :math:`i` is the path integral of the gradient along the
straight line from a baseline :math:`x'` to the input :math:`x` (the paper's eq. 1):

.. math:: IG_i(x) = (x_i - x'_i) \int_0^1 \partial_i F\big(x' + \alpha (x - x')\big)\, d\alpha

approximated by a quadrature rule with nodes :math:`\alpha_k` and weights :math:`w_k` on [0, 1]:

.. math:: IG_i(x) \approx (x_i - x'_i) \sum_{k=1}^{n} w_k\, \partial_i F\big(x' + \alpha_k (x - x')\big)

IG satisfies *completeness*, :math:`\sum_i IG_i(x) = F(x) - F(x')` (Proposition 1); the
quadrature error shows up as the completeness gap, reported per sample by
:meth:`~smoothsal.methods.base.Attribution.attribute_with_delta` (absolute and relative). Rules (``n = steps``):

* ``"riemann_left"``: :math:`\alpha_k = (k-1)/n`, :math:`w_k = 1/n`;
* ``"riemann_right"``: :math:`\alpha_k = k/n`, :math:`w_k = 1/n` (the paper's eq. 3);
* ``"riemann_middle"``: :math:`\alpha_k = (k - 1/2)/n`, :math:`w_k = 1/n`;
* ``"riemann_trapezoid"``: :math:`\alpha_k = (k-1)/(n-1)`, :math:`w_k = 1/(n-1)`, halved at both ends
  (needs ``n >= 2``);
* ``"gausslegendre"`` (default): Gauss–Legendre nodes and weights
  (:func:`numpy.polynomial.legendre.leggauss`) mapped from [-1, 1] to [0, 1]; exact for
  polynomial paths up to degree :math:`2n - 1`, so the gap shrinks fastest on smooth networks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from smoothsal._tuner import RowTuner, work_key
from smoothsal._validation import TargetSpec, check_choice, check_positive_int, resolve_targets
from smoothsal.methods.base import Attribution, ConvergenceDelta
from smoothsal.methods.baselines import BaselineSpec, check_baseline_spec, make_baseline

#: quadrature rules understood by :func:`quadrature`.
RULES: tuple[str, ...] = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


def quadrature(steps: int, rule: str = "gausslegendre") -> tuple[Tensor, Tensor]:
    """Nodes ``alphas [steps]`` in [0, 1] and weights ``[steps]`` (summing to 1) of a rule, float64.

    Example:
        >>> a, w = quadrature(3, "riemann_trapezoid")
        >>> a.tolist(), w.tolist()
        ([0.0, 0.5, 1.0], [0.25, 0.5, 0.25])
    """
    check_choice(rule, "rule", RULES)
    check_positive_int(steps, "steps")
    if rule == "riemann_trapezoid" and steps < 2:
        raise ValueError(f"`steps` must be >= 2 for rule='riemann_trapezoid' (it uses both ends), got {steps}")
    n = steps
    k = np.arange(n, dtype=np.float64)
    if rule == "gausslegendre":
        t, wt = np.polynomial.legendre.leggauss(n)
        alphas, weights = (t + 1.0) / 2.0, wt / 2.0
    elif rule == "riemann_trapezoid":
        alphas = k / (n - 1)
        weights = np.full(n, 1.0 / (n - 1))
        weights[[0, -1]] /= 2.0
    else:
        offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[rule]
        alphas, weights = (k + offset) / n, np.full(n, 1.0 / n)
    return torch.from_numpy(alphas), torch.from_numpy(weights)


def _check_batch_size(batch_size: int | None) -> int | None:
    return None if batch_size is None else check_positive_int(batch_size, "batch_size")


class IntegratedGradients(Attribution):
    """Integrated Gradients from a baseline to the inputs, by quadrature (see the module docstring).

    Args:
        model: ``nn.Module`` mapping ``[B, ...]`` to ``[B, classes]`` logits.
        steps: number of quadrature points :math:`n` (``>= 1``; ``>= 2`` for ``"riemann_trapezoid"``).
        baseline: see :func:`~smoothsal.methods.baselines.make_baseline` (``"black"``, ``"blur"``,
            ``"uniform"``, a number, a tensor broadcastable to the inputs, or a callable).
        rule: one of :data:`RULES`.
        batch_size: the most path rows (path points × images) per forward/backward. The
            ``steps × B`` rows are processed in chunks, so memory holds one chunk of path inputs
            (and its graph) plus the running sum ``[B, ...]``. ``None`` = as many rows as fit
            in one call, learned from the calls' timings under the memory budget
            (:mod:`smoothsal._tuner`); an out-of-memory error halves it and retries the same rows.
        seed: int or ``torch.Generator`` for the ``"uniform"`` baseline.

    The target is resolved once on the real inputs (``None`` = the class predicted for ``x``,
    not for the path points). Results do not depend on ``batch_size``.

    Example:
        >>> model = torch.nn.Linear(3, 2).eval()
        >>> x = torch.randn(4, 3)
        >>> attr, delta = IntegratedGradients(model, steps=4).attribute_with_delta(x, target=0)
        >>> bool(delta.absolute.max() < 1e-5)   # a linear model is integrated exactly
        True
    """

    has_convergence_delta = True

    @property
    def rows_per_input(self) -> int:  # type: ignore[override]
        """Model rows (path points) one input costs."""
        return self.steps

    def __init__(
        self,
        model: nn.Module,
        steps: int = 32,
        baseline: BaselineSpec = "black",
        rule: str = "gausslegendre",
        batch_size: int | None = None,
        *,
        seed: int | torch.Generator = 0,
    ) -> None:
        super().__init__(model)
        quadrature(steps, rule)  # validates steps and rule together
        self.steps = steps
        self.baseline = check_baseline_spec(baseline)
        self.rule = rule
        self.batch_size = _check_batch_size(batch_size)
        self.seed = seed

    # ---- implementation ------------------------------------------------------------------
    def _attribute(self, inputs: Tensor, target: TargetSpec) -> Tensor:
        # no gap asked for: F(x') is not needed, and F(x) only to predict the class (target=None);
        # explicit targets (as Smooth passes) are checked against the first path chunk's logits
        baseline = make_baseline(self.baseline, inputs, seed=self.seed)
        targets = None
        if target is None:
            with torch.no_grad():
                targets = resolve_targets(None, self._logits(inputs))
        avg_grad = self._path_average_gradient(inputs, baseline, targets, target)
        return (inputs - baseline) * avg_grad

    def _attribute_and_delta(self, inputs: Tensor, target: TargetSpec) -> tuple[Tensor, ConvergenceDelta]:
        b = inputs.shape[0]
        baseline = make_baseline(self.baseline, inputs, seed=self.seed)
        with torch.no_grad():
            ends = self._logits(torch.cat([inputs, baseline]))  # [2B, classes]: F(x) then F(x')
        targets = resolve_targets(target, ends[:b])
        delta_f = (ends[:b] - ends[b:]).gather(1, targets[:, None]).squeeze(1)  # [B]
        avg_grad = self._path_average_gradient(inputs, baseline, targets)
        attr = (inputs - baseline) * avg_grad
        return attr, ConvergenceDelta.of(attr, delta_f)

    def _path_average_gradient(
        self, inputs: Tensor, baseline: Tensor, targets: Tensor | None, target: TargetSpec = None
    ) -> Tensor:
        r""":math:`\sum_k w_k \nabla F_c(x' + \alpha_k (x - x'))`, ``[B, ...]``, in chunks of path rows.

        Path rows are ordered point-major: row ``r`` is path point ``r // B`` of image ``r % B``.
        ``targets=None`` resolves the explicit ``target`` spec against the first chunk's class count.
        """
        b = inputs.shape[0]
        alphas, weights = quadrature(self.steps, self.rule)
        alphas = alphas.to(device=inputs.device, dtype=inputs.dtype)
        weights = weights.to(device=inputs.device, dtype=inputs.dtype)
        diff = inputs - baseline
        total = torch.zeros_like(inputs)  # running sum [B, ...]
        n_rows = self.steps * b
        bcast = (-1,) + (1,) * (inputs.dim() - 1)
        resolved = [targets]  # None: the explicit `target` spec, checked against the first call's logits

        def path_gradient(rows: Tensor) -> Tensor:
            point, image = rows // b, rows % b  # [R] each
            path = (baseline[image] + alphas[point].view(bcast) * diff[image]).requires_grad_(True)  # [R, ...]
            with torch.enable_grad():
                logits = self._logits(path)  # [R, classes]
                if resolved[0] is None:
                    resolved[0] = resolve_targets(target, logits.new_empty(b, logits.shape[1]))
                score = logits.gather(1, resolved[0][image][:, None]).sum()
                (grad,) = torch.autograd.grad(score, path)  # [R, ...]
            return grad * weights[point].view(bcast)

        fixed = self.outer_rows if self.outer_rows is not None else self.batch_size
        tuner = RowTuner(work_key(self.model, inputs[0], ("ig", self.rule)), device=inputs.device, fixed=fixed)
        start = 0
        while start < n_rows:
            chunk = tuner.next_size(n_rows - start)
            rows = torch.arange(start, start + chunk, device=inputs.device)
            weighted = tuner.run_split(chunk, chunk, lambda lo, hi, rows=rows: path_gradient(rows[lo:hi]))
            total.index_add_(0, rows % b, weighted)
            start += chunk
            del weighted  # release this chunk before the next one is built
        return total


def integrated_gradients(model: nn.Module, inputs: Tensor, target: TargetSpec = None, **kw) -> Tensor:
    """Functional form of :class:`IntegratedGradients`; ``kw`` go to its constructor."""
    return IntegratedGradients(model, **kw).attribute(inputs, target)
