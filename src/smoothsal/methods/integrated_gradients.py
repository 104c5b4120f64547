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

**Choosing the steps per image** (``steps="auto"``). A fixed step count guarantees nothing: the
gap depends on the network and the image, and on piecewise-linear (ReLU) networks the gradient
along the path is piecewise constant, so the gap is *not monotone* in the steps: errors of
opposite sign on different features can cancel at one resolution and not at the next (the tests
build such a case with gap exactly 0 at 8 points and not at 16). The automatic rule therefore
refines each image's path by doubling and stops an image at level :math:`j` only when *both*

.. math:: \frac{|\delta_j|}{|F_c(x) - F_c(x')|} \le \text{tol}
          \quad\text{and}\quad
          \frac{\lVert A_j - A_{j-1} \rVert_2}{\lVert A_j \rVert_2} \le \text{map\_tol},

i.e. the completeness gap is small at the current resolution *and* the map itself no longer
moves when the resolution doubles (a gap that is small by cancellation comes with a map that
still changes, so it does not stop the refinement). The first level (``min_steps`` points) can
never stop an image; ``max_steps`` caps the points, and an image that reaches the cap keeps that
level's map and reports its gap (:attr:`~smoothsal.methods.base.ConvergenceDelta.converged` is
then false). An image whose score does not change (:math:`F_c(x) = F_c(x')`) has an infinite
relative gap unless its gap is exactly 0, and is refined to the cap.

How a level is refined: ``"riemann_left"``, ``"riemann_right"`` and ``"riemann_trapezoid"``
*nest* under doubling: the new points are the midpoints of the old intervals, and
:math:`S_{2m} = S_m / 2 + \frac{1}{2m} \sum_{k} \nabla F(\tfrac{2k+1}{2m})`
(:math:`m` intervals; ``steps`` is :math:`m` for left/right and :math:`m + 1` for the trapezoid),
so every gradient evaluated is reused and an image that stops at :math:`n` points cost
:math:`n` path points. Gauss–Legendre and midpoint nodes do not nest under doubling: each level
is recomputed, at most :math:`2n - n_0` path points in all (:math:`n_0` = ``min_steps``). Which
is cheaper depends on the network: on smooth paths Gauss–Legendre needs far fewer points; on
ReLU paths every rule converges like :math:`1/n` and the nested rules cost half. Images leave the
refinement as they converge; :attr:`~smoothsal.methods.base.ConvergenceDelta.steps` reports the
points each used.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from smoothsal._core.validation import TargetSpec, check_choice, check_nonnegative, check_positive_int, resolve_targets
from smoothsal.execution.calls import forward_rows
from smoothsal.execution.memory import MemorySpec
from smoothsal.execution.policy import RowContext, RowPolicy
from smoothsal.execution.runner import policy_for, run_rows
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


#: rules whose nodes nest under doubling (the new nodes are the old intervals' midpoints).
NESTED_RULES: tuple[str, ...] = ("riemann_left", "riemann_right", "riemann_trapezoid")


def _level_steps(rule: str, intervals: int) -> int:
    """Path points of a level with ``intervals`` (``m``) intervals: ``m + 1`` for the trapezoid."""
    return intervals + 1 if rule == "riemann_trapezoid" else intervals


def _midpoints(intervals: int) -> tuple[Tensor, Tensor]:
    """The nodes :math:`(2k+1)/(2m)` added when ``m`` intervals are halved, and their weight ``1/(2m)``."""
    k = torch.arange(intervals, dtype=torch.float64)
    return (2 * k + 1) / (2 * intervals), torch.full((intervals,), 1.0 / (2 * intervals), dtype=torch.float64)


class IntegratedGradients(Attribution):
    r"""Integrated Gradients from a baseline to the inputs, by quadrature (see the module docstring).

    Args:
        model: ``nn.Module`` mapping ``[B, ...]`` to ``[B, classes]`` logits.
        steps: number of quadrature points :math:`n` (``>= 1``; ``>= 2`` for ``"riemann_trapezoid"``),
            or ``"auto"``: each image's path is refined by doubling until its relative
            completeness gap is at most ``tol`` and its map moved at most ``map_tol`` in the last
            doubling, from ``min_steps`` to at most ``max_steps`` points (module docstring).
        baseline: see :func:`~smoothsal.methods.baselines.make_baseline` (``"black"``, ``"blur"``,
            ``"uniform"``, a number, a tensor broadcastable to the inputs, or a callable).
        rule: one of :data:`RULES`.
        batch_size: most model rows per call (a row: one forward(+backward) pass of one input-shaped
            tensor); ``None``: learned from the calls' timings under the memory budget. Never changes the
            result. Here a row is one path point of one image (or a forward row of :math:`F(x)`,
            :math:`F(x')`); memory holds one call's path rows and the running sum ``[B, ...]``; an
            out-of-memory error halves the rows and retries the same rows. Under a caller that batches
            (``Smooth``) the caller's rows rule instead
            (:meth:`~smoothsal.methods.base.Attribution.attribute_rows`).
        max_memory: the memory budget when ``batch_size`` is ``None`` (bytes, ``"4GB"``, ``"25%"``;
            ``None``: the default of :func:`smoothsal.execution.memory.memory_budget`).
        seed: int or ``torch.Generator`` for the ``"uniform"`` baseline.
        tol: ``steps="auto"``: largest relative gap :math:`|\delta| / |F_c(x) - F_c(x')|` to stop at.
        map_tol: ``steps="auto"``: largest relative change :math:`\lVert A_j - A_{j-1}\rVert / \lVert A_j\rVert`
            of the map in the last doubling to stop at.
        min_steps, max_steps: ``steps="auto"``: points of the first level (intervals for the
            trapezoid rule, whose levels have ``min_steps · 2^j + 1`` points: ``max_steps=257``
            allows 256 intervals) and the most points a level may have.

    The target is resolved once on the real inputs (``None`` = the class predicted for ``x``,
    not for the path points). Results do not depend on ``batch_size``. With ``steps="auto"``
    the points each image used are in :attr:`ConvergenceDelta.steps` of
    :meth:`attribute_with_delta`, and in :attr:`last_steps` after any call.

    Example:
        >>> model = torch.nn.Linear(3, 2).eval()
        >>> x = torch.randn(4, 3)
        >>> attr, delta = IntegratedGradients(model, steps=4).attribute_with_delta(x, target=0)
        >>> bool(delta.absolute.max() < 1e-5)   # a linear model is integrated exactly
        True
        >>> _, delta = IntegratedGradients(model, steps="auto").attribute_with_delta(x, target=0)
        >>> delta.steps.tolist()   # exact at the first level, confirmed by the second
        [16, 16, 16, 16]
    """

    has_convergence_delta = True
    folds_batchnorm = True
    reads_row_context = True

    @property
    def rows_per_input(self) -> int:  # type: ignore[override]
        """Model rows (path points) one input costs (the first level's for ``steps="auto"``)."""
        return self.min_steps if self.steps == "auto" else self.steps

    def __init__(
        self,
        model: nn.Module,
        steps: int | str = 32,
        baseline: BaselineSpec = "black",
        rule: str = "gausslegendre",
        batch_size: int | None = None,
        *,
        seed: int | torch.Generator = 0,
        tol: float = 0.01,
        map_tol: float = 0.05,
        min_steps: int = 8,
        max_steps: int = 256,
        max_memory: MemorySpec = None,
    ) -> None:
        super().__init__(model)
        if isinstance(steps, str):
            if steps != "auto":
                raise ValueError(f"`steps` must be an int >= 1 or 'auto', got {steps!r}")
            quadrature(2, rule)  # validates the rule
        else:
            quadrature(steps, rule)  # validates steps and rule together
        self.steps = steps
        self.baseline = check_baseline_spec(baseline)
        self.rule = rule
        self.batch_size = _check_batch_size(batch_size)
        self.max_memory = max_memory
        self.seed = seed
        self.tol = check_nonnegative(tol, "tol")
        self.map_tol = check_nonnegative(map_tol, "map_tol")
        self.min_steps = check_positive_int(min_steps, "min_steps")
        self.max_steps = check_positive_int(max_steps, "max_steps")
        if self.max_steps < self.min_steps:
            raise ValueError(f"`max_steps` must be >= `min_steps` ({self.min_steps}), got {self.max_steps}")
        self.last_steps = None  # set by every call (a property: kept out of the repr)
        self.last_levels = []

    @property
    def last_steps(self) -> Tensor | None:
        """Path points each image of the last call used, ``[B]`` (``None`` before the first call)."""
        return self._last_steps

    @last_steps.setter
    def last_steps(self, value: Tensor | None) -> None:
        self._last_steps = value

    @property
    def last_levels(self) -> list[dict]:
        """``steps="auto"``: one dict per level of the last call: ``steps``, the ``images`` still
        refining, their ``relative_gap`` and ``map_change`` (``None`` at the first level)."""
        return self._last_levels

    @last_levels.setter
    def last_levels(self, value: list[dict]) -> None:
        self._last_levels = value

    # ---- implementation ------------------------------------------------------------------
    def _policy(self, inputs: Tensor, context: RowContext | None) -> RowPolicy:
        """The caller's rows (``context``), else this method's own: ``batch_size`` or learned."""
        if context is not None:
            return context.policy()
        return policy_for(self.model, inputs[0], ("ig", self.rule), batch_size=self.batch_size, max_memory=self.max_memory)

    def _attribute(self, inputs: Tensor, target: TargetSpec, *, context: RowContext | None = None) -> Tensor:
        if self.steps == "auto":  # the rule needs the gap: F(x) and F(x') are computed anyway
            return self._attribute_and_delta(inputs, target, context=context)[0]
        # no gap asked for: F(x') is not needed, and F(x) only to predict the class (target=None);
        # explicit targets (as Smooth passes) are checked against the first path chunk's logits
        policy = self._policy(inputs, context)
        baseline = make_baseline(self.baseline, inputs, seed=self.seed)
        targets = None
        if target is None:
            targets = resolve_targets(None, self._forward(inputs, context))
        alphas, weights = quadrature(self.steps, self.rule)
        avg_grad = self._path_average_gradient(inputs, baseline, targets, target, alphas=alphas, weights=weights,
                                               policy=policy)  # fmt: skip
        self.last_steps = torch.full((inputs.shape[0],), self.steps, dtype=torch.long, device=inputs.device)
        return (inputs - baseline) * avg_grad

    def _attribute_and_delta(
        self, inputs: Tensor, target: TargetSpec, *, context: RowContext | None = None
    ) -> tuple[Tensor, ConvergenceDelta]:
        b = inputs.shape[0]
        policy = self._policy(inputs, context)
        baseline = make_baseline(self.baseline, inputs, seed=self.seed)
        f_x, f_base = self._end_logits(inputs, baseline, context)
        targets = resolve_targets(target, f_x)
        delta_f = (f_x - f_base).gather(1, targets[:, None]).squeeze(1)  # [B]
        if self.steps == "auto":
            attr, steps, converged = self._auto(inputs, baseline, targets, delta_f, policy)
            self.last_steps = steps
            return attr, ConvergenceDelta.of(attr, delta_f, steps=steps, converged=converged)
        alphas, weights = quadrature(self.steps, self.rule)
        avg_grad = self._path_average_gradient(inputs, baseline, targets, alphas=alphas, weights=weights, policy=policy)
        attr = (inputs - baseline) * avg_grad
        steps = torch.full((b,), self.steps, dtype=torch.long, device=inputs.device)
        self.last_steps = steps
        return attr, ConvergenceDelta.of(attr, delta_f, steps=steps)

    def _forward(self, rows: Tensor, context: RowContext | None) -> Tensor:
        """Logits of forward rows: in calls of the caller's size under a context, else of the
        forward policy (:func:`smoothsal.execution.calls.forward_rows`: batch_size or learned)."""
        policy = None if context is None else context.policy()
        return forward_rows(self.model, rows.shape[0], lambda lo, hi: rows[lo:hi], example=rows[0],
                            batch_size=self.batch_size, max_memory=self.max_memory, policy=policy,
                            fold=self.folds_batchnorm, what="ig-ends")  # fmt: skip

    def _end_logits(self, inputs: Tensor, baseline: Tensor, context: RowContext | None = None) -> tuple[Tensor, Tensor]:
        """``(F(x), F(x'))``, ``[B, classes]`` each, as forward rows. A baseline that is the same for
        every row (black, a constant; what ``Smooth`` passes with every noisy copy of an image)
        is run once, not ``B`` times."""
        b = inputs.shape[0]
        if b > 1 and bool((baseline == baseline[:1]).all()):
            ends = self._forward(torch.cat([inputs, baseline[:1]]), context)  # [B + 1, classes]
            return ends[:b], ends[b:].expand(b, -1)
        ends = self._forward(torch.cat([inputs, baseline]), context)  # [2B, classes]: F(x) then F(x')
        return ends[:b], ends[b:]

    def _auto(
        self, inputs: Tensor, baseline: Tensor, targets: Tensor, delta_f: Tensor, policy: RowPolicy
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``steps="auto"``: refine each image's path by doubling until the stopping rule holds.

        Returns the attributions ``[B, ...]``, the points used ``[B]`` and whether the rule was met ``[B]``.
        """
        b = inputs.shape[0]
        nested = self.rule in NESTED_RULES
        diff = inputs - baseline
        attr = torch.zeros_like(inputs)  # final maps, filled as images stop
        steps = torch.zeros(b, dtype=torch.long, device=inputs.device)
        converged = torch.zeros(b, dtype=torch.bool, device=inputs.device)
        active = torch.arange(b, device=inputs.device)  # images still refining
        self.last_levels = []
        running: Tensor | None = None  # nested rules: the path sum of the active images, [A, ...]
        previous: Tensor | None = None  # the active images' map at the previous level, [A, ...]
        intervals = self.min_steps
        while True:
            n = _level_steps(self.rule, intervals)
            x, x0 = inputs[active], baseline[active]
            if nested and running is not None:  # S_2m = S_m / 2 + Σ_mid ∇F / (2m), m = previous intervals
                alphas, weights = _midpoints(intervals // 2)
                running = running / 2 + self._path_average_gradient(x, x0, targets[active], alphas=alphas,
                                                                    weights=weights, policy=policy)  # fmt: skip
            else:  # first level, or a rule whose nodes do not nest: the whole rule at n points
                alphas, weights = quadrature(n, self.rule)
                running = self._path_average_gradient(x, x0, targets[active], alphas=alphas, weights=weights,
                                                      policy=policy)  # fmt: skip
            current = diff[active] * running  # [A, ...]
            gap = ConvergenceDelta.of(current, delta_f[active]).relative  # [A]
            done = torch.zeros_like(gap, dtype=torch.bool)
            moved = None
            if previous is not None:
                change = (current - previous).flatten(1).norm(dim=1)
                size = current.flatten(1).norm(dim=1)
                moved = torch.where(size > 0, change / size.clamp_min(torch.finfo(size.dtype).tiny),
                                    torch.where(change > 0, torch.full_like(change, float("inf")), torch.zeros_like(change)))
                done = (gap <= self.tol) & (moved <= self.map_tol)
            self.last_levels.append({"steps": n, "images": active.tolist(), "relative_gap": gap.tolist(),
                                     "map_change": None if moved is None else moved.tolist()})
            capped = _level_steps(self.rule, 2 * intervals) > self.max_steps
            leave = torch.ones_like(done) if capped else done
            if bool(leave.any()):
                idx = active[leave]
                attr[idx], steps[idx], converged[idx] = current[leave], n, done[leave]
            if capped or bool(leave.all()):
                return attr, steps, converged
            keep = ~leave
            active, running, previous = active[keep], running[keep], current[keep]
            intervals *= 2

    def _path_average_gradient(
        self,
        inputs: Tensor,
        baseline: Tensor,
        targets: Tensor | None,
        target: TargetSpec = None,
        *,
        alphas: Tensor,
        weights: Tensor,
        policy: RowPolicy,
    ) -> Tensor:
        r""":math:`\sum_k w_k \nabla F_c(x' + \alpha_k (x - x'))`, ``[B, ...]``, in calls of path rows.

        ``alphas`` and ``weights`` ``[n]``: the path points and their weights. Path rows are
        ordered point-major: row ``r`` is path point ``r // B`` of image ``r % B``; ``policy``
        sizes the calls (:func:`smoothsal.execution.runner.run_rows`). ``targets=None`` resolves
        the explicit ``target`` spec against the first call's class count.
        """
        b = inputs.shape[0]
        alphas = alphas.to(device=inputs.device, dtype=inputs.dtype)
        weights = weights.to(device=inputs.device, dtype=inputs.dtype)
        diff = inputs - baseline
        total = torch.zeros_like(inputs)  # running sum [B, ...]
        bcast = (-1,) + (1,) * (inputs.dim() - 1)
        resolved = [targets]  # None: the explicit `target` spec, checked against the first call's logits

        def path_gradient(lo: int, hi: int) -> Tensor:
            rows = torch.arange(lo, hi, device=inputs.device)
            point, image = rows // b, rows % b  # [R] each
            path = (baseline[image] + alphas[point].view(bcast) * diff[image]).requires_grad_(True)  # [R, ...]
            with torch.enable_grad():
                logits = self._logits(path)  # [R, classes]
                if resolved[0] is None:
                    resolved[0] = resolve_targets(target, logits.new_empty(b, logits.shape[1]))
                score = logits.gather(1, resolved[0][image][:, None]).sum()
                (grad,) = torch.autograd.grad(score, path)  # [R, ...]
            return grad * weights[point].view(bcast)

        def add(lo: int, hi: int, weighted: Tensor) -> None:
            total.index_add_(0, torch.arange(lo, hi, device=inputs.device) % b, weighted)

        run_rows(policy, alphas.shape[0] * b, path_gradient, consume=add)
        return total


def integrated_gradients(model: nn.Module, inputs: Tensor, target: TargetSpec = None, **kw) -> Tensor:
    """Functional form of :class:`IntegratedGradients`; ``kw`` go to its constructor."""
    return IntegratedGradients(model, **kw).attribute(inputs, target)
