r"""Expected Gradients (Erion et al. 2021, "Improving performance of deep learning models with
axiomatic attribution priors and expected gradients", Nature Machine Intelligence 3, 620–631).

Integrated Gradients averaged over baselines :math:`x'` drawn from a reference distribution
:math:`D` (the paper's eq. 3, its reference set being the training data):

.. math:: EG_i(x) = \mathbb E_{x' \sim D,\ \alpha \sim U(0, 1)}
          \Big[ (x_i - x'_i)\, \partial_i F_c\big(x' + \alpha (x - x')\big) \Big]

estimated, as in the paper, with one path point per sample (:mod:`.path_sampling`):

.. math:: \widehat{EG}(x) = \frac1n \sum_{j=1}^n (x - x'_j) \odot
          \nabla F_c\big(x'_j + \alpha_j (x - x'_j)\big)

The draws. Sample :math:`j`'s baseline :math:`x'_j` is drawn uniformly, with replacement, from
the reference set (the paper samples the training data the same way); :math:`\alpha_j` is
stratified over the :math:`n` samples, one per stratum :math:`[k/n, (k+1)/n)` with the strata
shuffled over the samples (:func:`~smoothsal.methods.path_sampling.stratified_alphas`: every row
stays unbiased, and the error from where the points fall on the path shrinks). With an int
``seed`` the draws are made in this fixed order from a fresh generator (the :math:`\alpha` strata
permutation, their offsets, then the :math:`n` reference indices) and are **shared by every image**
of the batch: the map of an image depends only on the image, the reference set, ``seed`` and
``n_samples``, never on ``batch_size`` or on the other images in the batch.

The estimate is a mean of :math:`n` independent unbiased rows, so it comes with its per-element
standard error (:meth:`ExpectedGradients.estimate`, a
:class:`~smoothsal.methods.path_sampling.PathEstimate`: the sample standard deviation of the rows over
:math:`\sqrt n`; the stratification of :math:`\alpha` makes it, if anything, conservative).

Completeness in expectation. IG is complete for every :math:`x'`, so
:math:`\mathbb E[\sum_i \widehat{EG}_i] = F_c(x) - \mathbb E_{x' \sim D}[F_c(x')]`.
:meth:`~smoothsal.methods.base.Attribution.attribute_with_delta` compares the map's sum with
:math:`F_c(x) - \frac1n \sum_j F_c(x'_j)`, the mean over **the baselines actually drawn** (with
their multiplicity), not over the whole reference set: the gap then measures only the path
sampling's error, which has mean zero for every draw of baselines and falls as :math:`n` grows.

References. ``baselines`` is one of:

* a tensor ``[M, ...]``: :math:`M` reference inputs, each shaped like one input;
* a dataset of inputs: an :class:`~smoothsal.datasets.ImageDataset` (its ``images``), or any
  object with ``len()`` and ``[k]`` returning a tensor (or a tuple whose first item is one, as a
  ``torch.utils.data.Dataset`` of ``(image, label)``); only the drawn items are read;
* ``"uniform"``: a reference *distribution* instead of a set, :math:`x'_j \sim U(\min x, \max x)`
  per element (the range taken per image; Sturmfels et al. 2020, "Visualizing the impact of
  feature attribution baselines", Distill), the draw of sample :math:`j` shared by the images. It
  needs no data, so the registry (:mod:`smoothsal.registry`) uses it as ``"eg"``'s default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union

import torch
from torch import Tensor, nn

from smoothsal._core.validation import TargetSpec, check_inputs, check_positive_int, resolve_targets
from smoothsal.execution.calls import forward_rows, resolve_model_targets
from smoothsal.execution.devices import to_model_device
from smoothsal.execution.guard import preserve_model
from smoothsal.execution.memory import MemorySpec
from smoothsal.execution.policy import RowContext
from smoothsal.methods.base import Attribution, ConvergenceDelta
from smoothsal.methods.path_sampling import (
    PathEstimate,
    path_point_attributions,
    run_path_rows,
    stratified_alphas,
)
from smoothsal.noise import make_generator

__all__ = ["ExpectedGradients", "ReferenceSpec", "expected_gradients"]

#: what ``baselines`` may be (see the module docstring).
ReferenceSpec = Union[Tensor, str, Any]


class _References:
    """The reference set or distribution, validated; gives the baseline row of (sample, image) pairs."""

    def __init__(self, spec: ReferenceSpec) -> None:
        self.spec = spec
        self.tensor: Tensor | None = None
        self.dataset: Any = None
        if isinstance(spec, str):
            if spec != "uniform":
                raise ValueError(f"`baselines` must be a tensor [M, ...], a dataset of inputs or 'uniform', got {spec!r}")
            return
        if isinstance(spec, Tensor):
            self.tensor = self._check_tensor(spec, "tensor")
            return
        images = getattr(spec, "images", None)  # an ImageDataset: its images tensor
        if isinstance(images, Tensor):
            self.tensor = self._check_tensor(images, f"{type(spec).__name__}.images")
            return
        if not (hasattr(spec, "__len__") and hasattr(spec, "__getitem__")):
            raise TypeError(
                "`baselines` must be a tensor [M, ...], a dataset of inputs (len() and [k] giving tensors) or "
                f"'uniform', got {type(spec).__name__}"
            )
        if len(spec) == 0:
            raise ValueError("`baselines` is an empty dataset: Expected Gradients needs at least one reference input")
        self.dataset = spec

    @staticmethod
    def _check_tensor(t: Tensor, source: str) -> Tensor:
        if not t.is_floating_point():
            raise TypeError(f"`baselines` {source} must be a floating-point tensor [M, ...], got dtype {t.dtype}")
        if t.dim() < 2:
            raise ValueError(f"`baselines` {source} must have shape [M, ...] (M references), got {tuple(t.shape)}")
        if t.shape[0] == 0:
            raise ValueError("`baselines` is an empty reference set (M = 0): Expected Gradients needs at least one")
        if not torch.isfinite(t).all():
            raise ValueError(f"`baselines` {source} must be finite; it contains NaN or Inf values")
        return t.detach()

    def __repr__(self) -> str:
        if self.tensor is not None:
            return f"<{self.tensor.shape[0]} references of shape {list(self.tensor.shape[1:])}>"
        if self.dataset is not None:
            return f"<{type(self.dataset).__name__} of {len(self.dataset)} references>"
        return repr(self.spec)

    @property
    def is_set(self) -> bool:
        return not isinstance(self.spec, str)

    def __len__(self) -> int:
        return int(self.tensor.shape[0]) if self.tensor is not None else len(self.dataset)

    def _item(self, k: int) -> Tensor:
        item = self.dataset[k]
        if isinstance(item, (tuple, list)) and item:
            item = item[0]
        if not isinstance(item, Tensor) or not item.is_floating_point():
            raise TypeError(f"`baselines`[{k}] must be a floating-point tensor (or a tuple starting with one), "
                            f"got {type(item).__name__}")  # fmt: skip
        if not torch.isfinite(item).all():
            raise ValueError(f"`baselines`[{k}] must be finite; it contains NaN or Inf values")
        return item.detach()

    def load(self, indices: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        """The distinct drawn references ``[U, ...]`` (on ``like``'s device and dtype) and, for each
        sample, the position of its reference among them ``[n]``."""
        unique, position = torch.unique(indices, return_inverse=True)
        if self.tensor is not None:
            refs = self.tensor[unique.to(self.tensor.device)]
        else:
            refs = torch.stack([self._item(int(k)) for k in unique])
        if tuple(refs.shape[1:]) != tuple(like.shape[1:]):
            raise ValueError(
                f"`baselines` must hold references shaped like one input {tuple(like.shape[1:])}, got references of "
                f"shape {tuple(refs.shape[1:])}"
            )
        return refs.to(device=like.device, dtype=like.dtype), position.to(like.device)


class _UniformStream:
    """The ``"uniform"`` references: sample ``j``'s standard field ``u_j ~ U(0, 1)`` shaped like one
    input, drawn in sample order from one generator, kept only while a chunk may still need it."""

    def __init__(self, seed: int, shape: tuple[int, ...]) -> None:
        self.gen = torch.Generator().manual_seed(seed)
        self.shape = shape
        self.drawn: dict[int, Tensor] = {}
        self.next = 0

    def fields(self, samples: Tensor) -> Tensor:
        """``u_j`` of the (non-decreasing) sample indices ``[R]``, ``[R, ...]`` float64 on the CPU."""
        lo, hi = int(samples.min()), int(samples.max())
        for j in [k for k in self.drawn if k < lo]:
            del self.drawn[j]
        while self.next <= hi:
            self.drawn[self.next] = torch.rand(self.shape, generator=self.gen, dtype=torch.float64)
            self.next += 1
        block = torch.stack([self.drawn[j] for j in range(lo, hi + 1)])  # [hi - lo + 1, ...]
        return block[samples.cpu() - lo]


class _BaselineRows:
    """A call's baselines: called with ``(samples [R], images [R])`` gives the rows ``[R, ...]``; for a
    reference set also the distinct drawn references ``refs [U, ...]`` and each sample's ``position`` ``[n]``."""

    def __init__(self, rows: Callable[[Tensor, Tensor], Tensor], refs: Tensor | None = None,
                 position: Tensor | None = None) -> None:
        self.rows, self.refs, self.position = rows, refs, position

    def __call__(self, samples: Tensor, images: Tensor) -> Tensor:
        return self.rows(samples, images)


class ExpectedGradients(Attribution):
    r"""Expected Gradients: IG averaged over baselines from a reference set (see the module docstring).

    Args:
        model: ``nn.Module`` mapping ``[B, ...]`` to ``[B, classes]`` logits.
        baselines: the reference set: a tensor ``[M, ...]``, a dataset of inputs, or ``"uniform"``.
        n_samples: :math:`n`, samples (model rows) per input, ``>= 1``.
        seed: an int (a fresh generator each call: the same map every call) or a ``torch.Generator``
            (advanced by each call).
        batch_size: most model rows per call (a row: one forward(+backward) pass of one
            input-shaped tensor; here one sample of one image); ``None``: learned from the calls'
            timings under the memory budget, as Integrated Gradients' path rows. Never changes the result.
        max_memory: the memory budget when ``batch_size`` is ``None`` (bytes, ``"4GB"``, ``"25%"``;
            ``None``: the default of :func:`smoothsal.execution.memory.memory_budget`).

    The target is resolved once on the real inputs (``None`` = the class predicted for ``x``).
    Wrapped in :class:`~smoothsal.smoothing.Smooth` with an int ``seed``, every noisy copy sees the same
    ``n_samples`` draws of baseline and path point (each call draws them afresh from the seed).

    Example:
        >>> model = torch.nn.Linear(3, 2).eval()
        >>> refs = torch.randn(10, 3)
        >>> eg = ExpectedGradients(model, baselines=refs, n_samples=8)
        >>> x = torch.randn(2, 3)
        >>> alphas, idx = eg.draws()
        >>> expected = (x - refs[idx].mean(0)) * model.weight[0]   # exact on a linear model
        >>> bool(torch.allclose(eg.attribute(x, target=0), expected, atol=1e-5))
        True
    """

    has_convergence_delta = True
    folds_batchnorm = True
    reads_row_context = True

    def __init__(
        self,
        model: nn.Module,
        baselines: ReferenceSpec,
        n_samples: int = 50,
        seed: int | torch.Generator = 0,
        batch_size: int | None = None,
        max_memory: MemorySpec = None,
    ) -> None:
        super().__init__(model)
        self._refs = _References(baselines)
        self.n_samples = check_positive_int(n_samples, "n_samples")
        if isinstance(seed, bool) or not isinstance(seed, (int, torch.Generator)):
            raise TypeError(f"`seed` must be an int or a torch.Generator, got {type(seed).__name__}")
        self.seed = seed
        self.batch_size = None if batch_size is None else check_positive_int(batch_size, "batch_size")
        self.max_memory = max_memory

    @property
    def baselines(self) -> ReferenceSpec:
        """The reference set as given."""
        return self._refs.spec

    @property
    def rows_per_input(self) -> int:  # type: ignore[override]
        """Model rows one input costs: ``n_samples``."""
        return self.n_samples

    def __repr__(self) -> str:
        return (f"ExpectedGradients({type(self.model).__name__}, baselines={self._refs!r}, n_samples={self.n_samples}, "
                f"seed={self.seed!r}, batch_size={self.batch_size})")  # fmt: skip

    def draws(self) -> tuple[Tensor, Tensor | None]:
        r"""The draws every call makes with this int ``seed``: :math:`\alpha_j` ``[n]`` (float64) and the
        reference indices ``[n]`` (``None`` for ``"uniform"``, whose fields are drawn from a seed of their own)."""
        if not isinstance(self.seed, int):
            raise ValueError("`draws()` needs an int `seed` (a torch.Generator gives new draws on every call)")
        alphas, indices, _ = self._draw()
        return alphas, indices

    def _draw(self) -> tuple[Tensor, Tensor | None, int | None]:
        """``(alphas, reference indices, uniform fields' seed)``, drawn in a fixed order from one CPU
        generator (so they do not depend on the device): the α strata permutation, their offsets, then
        the reference indices (a set) or the seed of the uniform fields (``"uniform"``)."""
        gen = make_generator(self.seed)
        alphas = stratified_alphas(self.n_samples, gen)
        if self._refs.is_set:
            return alphas, torch.randint(len(self._refs), (self.n_samples,), generator=gen), None
        return alphas, None, int(torch.randint(2**62, (1,), generator=gen))

    def estimate(self, inputs: Tensor, target: TargetSpec = None) -> PathEstimate:
        """The map with its per-element standard error: a :class:`~smoothsal.methods.path_sampling.PathEstimate`
        (``attributions``, ``stderr``, ``n_samples`` ``[B]``; ``stderr`` is ``inf`` for ``n_samples = 1``)."""
        check_inputs(inputs, ndim=self.required_ndim)
        x = to_model_device(self.model, inputs.detach())
        with preserve_model(self.model):
            mean, stderr, _ = self._estimate(x, target, with_delta=False)
        n = torch.full((x.shape[0],), self.n_samples, dtype=torch.long, device=inputs.device)
        return PathEstimate(attributions=mean.to(inputs.device), stderr=stderr.to(inputs.device), n_samples=n)

    # ---- implementation ------------------------------------------------------------------
    def _attribute(self, inputs: Tensor, target: TargetSpec, *, context: RowContext | None = None) -> Tensor:
        return self._estimate(inputs, target, with_delta=False, context=context)[0]

    def _attribute_and_delta(
        self, inputs: Tensor, target: TargetSpec, *, context: RowContext | None = None
    ) -> tuple[Tensor, ConvergenceDelta]:
        mean, _, delta = self._estimate(inputs, target, with_delta=True, context=context)
        assert delta is not None  # with_delta=True always computes it
        return mean, delta

    def _forward(self, n_rows: int, build: Callable[[int, int], Tensor], example: Tensor,
                 context: RowContext | None) -> Tensor:  # fmt: skip
        """Logits of ``n_rows`` forward rows ``build(lo, hi)``: in calls of the caller's size under a
        context, else of this method's ``batch_size`` or learned under its ``max_memory``."""
        return forward_rows(self.model, n_rows, build, example=example, batch_size=self.batch_size,
                            max_memory=self.max_memory, policy=None if context is None else context.policy(),
                            what=("eg", "forward"))  # fmt: skip

    def _estimate(
        self, x: Tensor, target: TargetSpec, *, with_delta: bool, context: RowContext | None = None
    ) -> tuple[Tensor, Tensor, ConvergenceDelta | None]:
        """``(mean [B, ...], stderr [B, ...], delta or None)`` for inputs on the model's device; the
        rows run as ``context`` says (a caller's), else as this method's ``batch_size``/``max_memory``."""
        b, n = x.shape[0], self.n_samples
        f_x = None
        if with_delta or target is None:
            f_x = self._forward(b, lambda lo, hi: x[lo:hi], x[0], context)  # [B, classes]
            targets = resolve_targets(target, f_x)
        else:
            targets = resolve_model_targets(self.model, x, target, batch_size=self.batch_size, max_memory=self.max_memory)
        alphas, indices, uniform_seed = self._draw()
        alphas = alphas.to(x.device)
        baseline_rows = self._baseline_rows(x, indices, uniform_seed)
        total = torch.zeros(x.shape, dtype=torch.float64, device=x.device)  # Σ_j a_j, [B, ...]
        total_sq = torch.zeros_like(total)  # Σ_j a_j², [B, ...]

        def work(rows: Tensor) -> Tensor:
            sample, image = rows // b, rows % b  # rows are sample-major: row r = sample r // B of image r % B
            return path_point_attributions(self._logits, x[image], baseline_rows(sample, image), alphas[sample],
                                           targets[image])  # fmt: skip

        def add(rows: Tensor, a: Tensor) -> None:
            a64 = a.to(torch.float64)
            total.index_add_(0, rows % b, a64)
            total_sq.index_add_(0, rows % b, a64 * a64)

        run_path_rows(self, n * b, x[0], ("eg",), work, add, context=context)
        mean = total / n
        if n > 1:
            var = (total_sq - total * mean).clamp_min(0.0) / (n - 1)  # unbiased variance of the rows
            stderr = (var / n).sqrt()
        else:
            stderr = torch.full_like(mean, float("inf"))
        mean, stderr = mean.to(x.dtype), stderr.to(x.dtype)
        if not with_delta:
            return mean, stderr, None
        assert f_x is not None
        if baseline_rows.refs is None:  # "uniform": the fields again from the start of their stream
            baseline_rows = self._baseline_rows(x, indices, uniform_seed)
        f_base = self._mean_baseline_score(x, targets, baseline_rows, context)  # [B]
        expected = f_x.gather(1, targets[:, None])[:, 0] - f_base
        steps = torch.full((b,), n, dtype=torch.long, device=x.device)
        return mean, stderr, ConvergenceDelta.of(mean, expected, steps=steps)

    def _baseline_rows(self, x: Tensor, indices: Tensor | None, uniform_seed: int | None) -> _BaselineRows:
        """This call's baselines: ``(samples [R], images [R]) -> x'`` rows ``[R, ...]``."""
        if indices is not None:
            refs, position = self._refs.load(indices, x)  # [U, ...], [n]
            return _BaselineRows(lambda sample, image: refs[position[sample]], refs, position)
        assert uniform_seed is not None
        flat = x.flatten(1)
        view = (-1,) + (1,) * (x.dim() - 1)
        lo = flat.min(dim=1).values.view(view)  # [B, 1, ...]
        span = flat.max(dim=1).values.view(view) - lo
        stream = _UniformStream(uniform_seed, tuple(x.shape[1:]))
        return _BaselineRows(lambda sample, image: lo[image] + span[image] * stream.fields(sample).to(x.device, x.dtype))

    def _mean_baseline_score(
        self, x: Tensor, targets: Tensor, baselines: _BaselineRows, context: RowContext | None = None
    ) -> Tensor:
        r""":math:`\frac1n \sum_j F_{c}(x'_j)` per image ``[B]`` over the drawn baselines (with multiplicity)."""
        b, n = x.shape[0], self.n_samples
        if baselines.refs is not None:  # a set: each distinct drawn reference scored once
            refs = baselines.refs
            logits = self._forward(refs.shape[0], lambda lo, hi: refs[lo:hi], refs[0], context)  # [U, classes]
            counts = torch.bincount(baselines.position, minlength=logits.shape[0]).to(logits.dtype)  # [U]
            return (counts[:, None] * logits[:, targets]).sum(dim=0) / n  # [B]
        # "uniform": every (sample, image) has its own baseline, built per call (sample-major rows)
        def build(lo: int, hi: int) -> Tensor:
            rows = torch.arange(lo, hi, device=x.device)
            return baselines(rows // b, rows % b)

        logits = self._forward(n * b, build, x[0], context)  # [n * B, classes]
        image = torch.arange(n * b, device=x.device) % b
        total = torch.zeros(b, dtype=torch.float64, device=x.device)
        total.index_add_(0, image, logits.gather(1, targets[image][:, None])[:, 0].to(torch.float64))
        return (total / n).to(x.dtype)


def expected_gradients(
    model: nn.Module, inputs: Tensor, target: TargetSpec = None, *, baselines: ReferenceSpec, **kw: Any
) -> Tensor:
    """Functional form of :class:`ExpectedGradients`; ``kw`` go to its constructor."""
    return ExpectedGradients(model, baselines, **kw).attribute(inputs, target)
