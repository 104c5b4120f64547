r"""Gaussian smoothing of ANY attribution method: SmoothGrad, SmoothGrad², VarGrad.

SmoothGrad (Smilkov et al. 2017, arXiv:1706.03825, eq. 3) averages a method's maps over noisy
copies of the input:

.. math:: \hat M_c(x) = \frac{1}{n} \sum_{j=1}^{n} M_c(x + \epsilon_j), \quad
          \epsilon_j \sim \mathcal N(0, \sigma^2), \quad
          \sigma = \text{noise\_level} \cdot (x_{max} - x_{min})

``statistic`` names the variant (never a boolean flag):

* ``"mean"``: the paper's signed SmoothGrad, :math:`\frac1n\sum_j M(x+\epsilon_j)`;
* ``"square"``: SmoothGrad² (Hooker et al. 2019), :math:`\frac1n\sum_j M(x+\epsilon_j)^2`;
* ``"var"``: VarGrad (Adebayo et al. 2018), :math:`\frac1n\sum_j (M(x+\epsilon_j) - \hat M)^2`.

How it runs:

* noisy copies are evaluated in calls of several rows (images × draws) of the wrapped method,
  and folded into running sums: memory holds one call's copies, whatever ``n_samples`` is. The
  rows per call are chosen, not guessed (``batch_size=None``): learned from the timings of the
  real calls under a memory budget (:mod:`smoothsal.execution.policy`,
  :mod:`smoothsal.execution.memory`), and an out-of-memory error halves them and retries
  (:mod:`smoothsal.execution.runner`); a given ``batch_size`` is obeyed. A method that batches
  rows itself (Integrated Gradients: ``steps`` rows per noisy input) runs each call's rows as
  ``Smooth`` says (:meth:`~smoothsal.methods.base.Attribution.attribute_rows` with a
  :class:`~smoothsal.execution.policy.RowContext` that also names each input's draw); the images
  whose running sums are held at once are those that fit an eighth of the budget
  (:func:`smoothsal.execution.memory.items_in_budget`);
* every sample carries noise (no noise-free sample, unlike Zennit's last sample, which biases
  fidelity measurements);
* draw ``j`` is the same standard-normal tensor for every image of the batch (scaled by each
  image's own σ), drawn in order from one generator: the map of an image depends only on the image,
  the ``seed`` and ``n_samples``, not on ``batch_size`` or on which other images share its batch. Shared
  draws are also common random numbers: two models smoothed with one seed see the same noise, which
  lowers the variance of the *difference* of their maps (the stability experiments);
* the per-pixel standard error of the estimate comes with it (:meth:`Smooth.estimate`), and with
  ``tol`` each image stops sampling as soon as its relative standard error
  :math:`\lVert SE\rVert_2 / \lVert \hat M\rVert_2` is at most ``tol``: no more samples than
  the map's precision asks for. It is checked at every multiple of ``min_samples`` samples (no
  call crosses one), so the samples used, like the map, do not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from smoothsal._core.validation import TargetSpec, check_inputs, check_positive_int
from smoothsal.execution.calls import resolve_model_targets
from smoothsal.execution.devices import to_model_device
from smoothsal.execution.memory import MemorySpec, items_in_budget
from smoothsal.execution.policy import RowContext, RowPolicy
from smoothsal.execution.runner import policy_for, run_call
from smoothsal.methods.base import ConvergenceDelta, model_of
from smoothsal.noise import Sampler, SeedSpec, make_generator, noise_sigma, noise_stream
from smoothsal.smoothing_spec import STATISTICS, SmoothSpec  # noqa: F401 (STATISTICS: its old home)
from smoothsal.weight_noise import WeightNoise, weight_generator


@dataclass
class SmoothEstimate:
    """The result of :meth:`Smooth.estimate`.

    Attributes:
        attributions: the smoothed map, shaped like the method's output ``[B, ...]``.
        stderr: per-element standard error of ``attributions`` as an estimate of its expectation.
        n_samples: how many noisy samples each image used (``[B]``; less than the maximum when
            ``tol`` stopped the sampling early).
    """

    attributions: Tensor
    stderr: Tensor
    n_samples: Tensor
    #: completeness of the inner runs (``estimate(..., with_delta=True)`` of IG, DeepLIFT), else ``None``.
    delta: SmoothedDelta | None = None
    #: ``estimate(..., snapshots=(n, ...))``: ``{n: [B, ...]}`` the estimate after the first n draws
    #: of the same sequence (NaN for an image that ``tol`` stopped before n), else ``None``.
    snapshots: dict[int, Tensor] | None = None

    def relative_stderr(self) -> Tensor:
        """:math:`\\lVert SE\\rVert_2 / \\lVert \\hat M\\rVert_2` per image, ``[B]``."""
        num = self.stderr.flatten(1).norm(dim=1)
        den = self.attributions.flatten(1).norm(dim=1)
        return torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), num)


@dataclass
class SmoothedDelta:
    r"""Completeness of a smoothed completeness method (IG, DeepLIFT): the gaps of its inner runs.

    Each noisy sample :math:`x_j = x + \epsilon_j` is explained from its own baseline, so its map
    should sum to :math:`\Delta F_j = F_c(x_j) - F_c(x'_j)`; its gap is
    :math:`\delta_j = \sum_i A_i(x_j) - \Delta F_j`. Per image ``[B]``, over its noisy samples:

    Attributes:
        relative_mean, relative_max: mean and max of the relative gaps :math:`|\delta_j| / |\Delta F_j|`.
        absolute_mean, absolute_max: mean and max of :math:`|\delta_j|`.
        relative_of_mean: the smoothed map's own gap, :math:`|\sum_j \delta_j| / |\sum_j \Delta F_j|`
            (the averaged map against the average score change).
        steps_mean: mean path points per sample (IG; ``None`` for DeepLIFT).
        n_samples: noisy samples per image.

    ``relative`` and ``absolute`` (the means) read like :class:`~smoothsal.methods.base.ConvergenceDelta`'s.
    """

    relative_mean: Tensor
    relative_max: Tensor
    absolute_mean: Tensor
    absolute_max: Tensor
    relative_of_mean: Tensor
    n_samples: Tensor
    steps_mean: Tensor | None = None

    @property
    def relative(self) -> Tensor:
        return self.relative_mean

    @property
    def absolute(self) -> Tensor:
        return self.absolute_mean

    def summary(self) -> dict[str, list]:
        """Plain lists (JSON-ready), one value per image."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v.tolist() for k, v in values.items() if v is not None}


class _DeltaSums:
    """Per-image running sums of the inner runs' gaps (for :class:`SmoothedDelta`)."""

    def __init__(self, n_images: int, device: torch.device) -> None:
        z = lambda: torch.zeros(n_images, dtype=torch.float64, device=device)  # noqa: E731
        self.n, self.rel, self.abs, self.delta, self.expected, self.steps = z(), z(), z(), z(), z(), z()
        self.rel_max, self.abs_max = z(), z()
        self.has_steps = True

    def add(self, delta: Any, rows: Tensor, s: int) -> None:
        """``delta``: a ConvergenceDelta of ``s × len(rows)`` samples (draw-major) of the images ``rows``."""
        g = rows.numel()
        rel = delta.relative.to(torch.float64).reshape(s, g)
        ab = delta.absolute.to(torch.float64).reshape(s, g)
        self.n[rows] += s
        self.rel[rows] += rel.sum(0)
        self.abs[rows] += ab.sum(0)
        self.rel_max[rows] = torch.maximum(self.rel_max[rows], rel.max(0).values)
        self.abs_max[rows] = torch.maximum(self.abs_max[rows], ab.max(0).values)
        self.delta[rows] += delta.delta.to(torch.float64).reshape(s, g).sum(0)
        self.expected[rows] += delta.expected.to(torch.float64).reshape(s, g).sum(0)
        steps = getattr(delta, "steps", None)
        if steps is None:
            self.has_steps = False
        else:
            self.steps[rows] += steps.to(torch.float64).reshape(s, g).sum(0)

    def finish(self) -> SmoothedDelta:
        n = self.n.clamp_min(1)
        of_mean = ConvergenceDelta(self.delta, self.expected).relative  # the gap of the summed runs
        return SmoothedDelta(
            relative_mean=self.rel / n, relative_max=self.rel_max, absolute_mean=self.abs / n,
            absolute_max=self.abs_max, relative_of_mean=of_mean, n_samples=self.n.to(torch.long),
            steps_mean=self.steps / n if self.has_steps else None,
        )


class _RunningMoments:
    """Per-image streaming sums of a per-sample statistic: mean, variance and (VarGrad) 4th moment.

    Sums are kept in float64 around a shift (each image's first sample), which avoids the
    cancellation of the naive ``E[a²] − E[a]²``. Each image keeps its own count, so images can
    stop sampling at different times (``tol``).
    """

    def __init__(self, need_fourth: bool, n_images: int) -> None:
        self.need_fourth = need_fourth
        self.n_images = n_images
        self.n: Tensor | None = None  # [B] samples per image
        self.shift: Tensor | None = None
        self.s1 = self.s2 = self.s3 = self.s4 = None

    def add(self, batch: Tensor, rows: Tensor) -> None:
        """``batch`` ``[s, A, ...]``: s new samples for the A images ``rows``.

        The differences from the shift are taken in the batch's dtype (exact to its rounding:
        the shift cancels the bulk) and summed straight into float64, so no float64 copy of the
        batch is made; when ``rows`` are all the images in order (every image still sampling),
        the sums are updated in place instead of gathered and scattered.
        """
        if self.shift is None:
            shape = (self.n_images, *batch.shape[2:])
            self.shift = torch.zeros(shape, dtype=batch.dtype, device=batch.device)
            self.s1 = torch.zeros(shape, dtype=torch.float64, device=batch.device)
            self.s2 = torch.zeros_like(self.s1)
            if self.need_fourth:
                self.s3, self.s4 = torch.zeros_like(self.s1), torch.zeros_like(self.s1)
            self.n = torch.zeros(self.n_images, dtype=torch.float64, device=batch.device)
        first = self.n[rows] == 0  # images seen for the first time: their first sample is the shift
        if bool(first.any()):
            self.shift[rows[first]] = batch[0, first].to(self.shift.dtype)
        every = rows.numel() == self.n_images and bool((rows == torch.arange(self.n_images, device=rows.device)).all())
        d = batch - (self.shift if every else self.shift[rows])
        d2 = d * d
        sums = [d.sum(0, dtype=torch.float64), d2.sum(0, dtype=torch.float64)]
        if self.need_fourth:
            sums += [(d2 * d).sum(0, dtype=torch.float64), (d2 * d2).sum(0, dtype=torch.float64)]
        for acc, add in zip((self.s1, self.s2, self.s3, self.s4), sums):
            if every:
                acc += add
            else:
                acc.index_add_(0, rows, add)
        self.n[rows] += batch.shape[0]

    def _count(self) -> Tensor:
        return self.n.view(-1, *([1] * (self.s1.dim() - 1)))  # [B, 1, ...]

    def mean(self) -> Tensor:
        return self.shift.to(torch.float64) + self.s1 / self._count()

    def central2(self) -> Tensor:
        """Population variance :math:`\\frac1n\\sum (a - \\bar a)^2` per element."""
        m1 = self.s1 / self._count()
        return (self.s2 / self._count() - m1 * m1).clamp_min(0.0)

    def central4(self) -> Tensor:
        m1, m2, m3, m4 = (t / self._count() for t in (self.s1, self.s2, self.s3, self.s4))
        return (m4 - 4 * m3 * m1 + 6 * m2 * m1 * m1 - 3 * m1**4).clamp_min(0.0)


class Smooth:
    r"""Smooth any attribution method by averaging over Gaussian-noised inputs.

    Args:
        method: any object with ``attribute(inputs, target)`` (every smoothsal method; also a
            user's own). Its ``.model`` is used to resolve ``target=None``. A Captum attribution
            object is adapted by :func:`smoothsal.interop.from_captum` (its model is its
            ``forward_func``).
        noise_level, n_samples, statistic, sampler, seed, value_range, tol, min_samples: the
            smoothed map's settings, checked as one :class:`~smoothsal.smoothing_spec.SmoothSpec`
            (each is described there): σ = noise_level × (x_max − x_min) of each sample (or of
            ``value_range``), ``n_samples`` noisy samples (the most, with ``tol``), the statistic
            ``"mean"`` (SmoothGrad), ``"square"`` (SmoothGrad²) or ``"var"`` (VarGrad), the
            sampler, and the seed (an int: the same map every call; a ``torch.Generator``:
            advanced by each call).
        batch_size: most model rows per call: noisy inputs, times the wrapped method's rows per
            input where it has them (IG's ``steps``); ``None`` (default):
            chosen automatically, learned from the calls' timings under the memory budget
            ``max_memory``. Never changes the result.
        max_memory: the memory budget of the automatic ``batch_size`` (any form of
            :func:`smoothsal.execution.memory.parse_memory`: ``"4GB"``, ``"25%"``, bytes); ``None``:
            the default budget (:func:`smoothsal.execution.memory.memory_budget`). Never changes the result.
        weight_noise, weight_noise_layers: multiplicative noise :math:`\theta \odot (1 + \eta)`,
            :math:`\eta \sim \mathcal N(0, \sigma_w^2)` with ``σ_w = weight_noise``, on the wrapped
            method's model's parameters (every one, or those of the named modules), one weight draw per
            sample: NoiseGrad with ``noise_level=0``, FusionGrad with both (:mod:`smoothsal.weight_noise`).
            The user's model is never written: each draw is swapped in for the calls and the original
            parameters put back.

    The settings that make the map (all but ``method``, ``batch_size`` and ``max_memory``) form one
    :class:`~smoothsal.smoothing_spec.SmoothSpec`, validated once: :attr:`spec` gives it back, and
    :meth:`from_spec` builds a ``Smooth`` from one.

    Example:
        >>> import torch
        >>> from smoothsal.methods.gradient import VanillaGradient
        >>> model = torch.nn.Linear(4, 3)
        >>> sg = Smooth(VanillaGradient(model), noise_level=0.2, n_samples=8)
        >>> sg.attribute(torch.rand(2, 4), target=1).shape
        torch.Size([2, 4])
    """

    def __init__(
        self,
        method: Any,
        noise_level: float = 0.15,
        n_samples: int = 50,
        statistic: str = "mean",
        sampler: str | Sampler = "gaussian",
        batch_size: int | None = None,
        seed: SeedSpec = 0,
        value_range: tuple[float, float] | None = None,
        tol: float | None = None,
        min_samples: int = 16,
        *,
        max_memory: MemorySpec = None,
        weight_noise: float = 0.0,
        weight_noise_layers: Sequence[str] | None = None,
    ) -> None:
        spec = SmoothSpec(
            noise_level=noise_level, n_samples=n_samples, statistic=statistic, sampler=sampler, seed=seed,
            value_range=value_range, tol=tol, min_samples=min_samples, weight_noise=weight_noise,
            weight_noise_layers=weight_noise_layers,
        )  # fmt: skip
        self._setup(method, spec, batch_size, max_memory)

    @classmethod
    def from_spec(
        cls, method: Any, spec: SmoothSpec, *, batch_size: int | None = None, max_memory: MemorySpec = None
    ) -> Smooth:
        """``Smooth`` around ``method`` with the settings of ``spec`` (a :class:`SmoothSpec`).

        ``batch_size`` and ``max_memory`` say how the rows run (see the class); they never change the map.

        Example:
            >>> from smoothsal.methods.gradient import VanillaGradient
            >>> sg = Smooth.from_spec(VanillaGradient(torch.nn.Linear(4, 3)), SmoothSpec(n_samples=8))
            >>> sg.n_samples, sg.spec.noise_level
            (8, 0.15)
        """
        obj = cls.__new__(cls)
        obj._setup(method, spec, batch_size, max_memory)
        return obj

    def _setup(self, method: Any, spec: SmoothSpec, batch_size: int | None, max_memory: MemorySpec) -> None:
        from smoothsal.execution.memory import parse_memory
        from smoothsal.interop import as_method

        if not isinstance(spec, SmoothSpec):
            raise TypeError(f"`spec` must be a SmoothSpec, got {type(spec).__name__}")
        method = as_method(method)  # a Captum attribution object is adapted (smoothsal.interop)
        if not callable(getattr(method, "attribute", None)):
            raise TypeError(f"`method` must have an attribute(inputs, target) method, got {type(method).__name__}")
        self.method = method
        self._spec = spec
        self.batch_size = check_positive_int(batch_size, "batch_size") if batch_size is not None else None
        if max_memory is not None:
            parse_memory(max_memory)  # a bad budget fails here, before any work
        self.max_memory = max_memory
        self._weight_noise(spec)  # bad layer names fail here, before any work

    # ---- the settings (read from the spec; a Smooth never changes them) ------------------------
    @property
    def spec(self) -> SmoothSpec:
        """The smoothing settings (:class:`SmoothSpec`): ``Smooth.from_spec(method, s.spec)`` builds the same."""
        return self._spec

    @property
    def noise_level(self) -> float:
        return self._spec.noise_level

    @property
    def n_samples(self) -> int:
        return self._spec.n_samples

    @property
    def statistic(self) -> str:
        return self._spec.statistic

    @property
    def sampler(self) -> str | Sampler:
        return self._spec.sampler

    @property
    def seed(self) -> SeedSpec:
        return self._spec.seed

    @property
    def value_range(self) -> tuple[float, float] | None:
        return self._spec.value_range

    @property
    def tol(self) -> float | None:
        return self._spec.tol

    @property
    def min_samples(self) -> int:
        return self._spec.min_samples

    @property
    def weight_noise(self) -> float:
        return self._spec.weight_noise

    @property
    def weight_noise_layers(self) -> tuple[str, ...] | None:
        return self._spec.weight_noise_layers

    def _weight_noise(self, spec: SmoothSpec) -> WeightNoise | None:
        if spec.weight_noise == 0:
            return None
        model = self.model
        if not isinstance(model, nn.Module):
            raise ValueError(
                f"`weight_noise` needs the wrapped method's model as a torch.nn.Module (its `.model`); "
                f"{type(self.method).__name__} exposes {type(model).__name__}"
            )
        return WeightNoise(model, spec.weight_noise, spec.weight_noise_layers)

    @property
    def model(self) -> nn.Module | None:
        """The wrapped method's model (so a ``Smooth`` can itself be wrapped or evaluated)."""
        return model_of(self.method)

    @property
    def output_kind(self) -> str:
        return getattr(self.method, "output_kind", "input")

    @property
    def has_convergence_delta(self) -> bool:
        """Whether the wrapped method has one (IG, DeepLIFT): :meth:`attribute_with_delta` then
        reports the gaps of its inner runs (:class:`SmoothedDelta`)."""
        return bool(getattr(self.method, "has_convergence_delta", False))

    def __repr__(self) -> str:
        weights = f", weight_noise={self.weight_noise}" if self.weight_noise else ""
        return (
            f"Smooth({self.method!r}, noise_level={self.noise_level}{weights}, n_samples={self.n_samples}, "
            f"statistic={self.statistic!r})"
        )

    # ---- public API --------------------------------------------------------------------------
    def attribute(self, inputs: Tensor, target: TargetSpec = None) -> Tensor:
        """The smoothed map ``[B, ...]`` (shaped like the wrapped method's output)."""
        return self.estimate(inputs, target).attributions

    __call__ = attribute

    def attribute_with_delta(self, inputs: Tensor, target: TargetSpec = None) -> tuple[Tensor, SmoothedDelta]:
        """The smoothed map and the completeness gaps of the inner runs (:class:`SmoothedDelta`).

        Only for a wrapped method with :attr:`has_convergence_delta`; each noisy call runs the
        method's ``attribute_with_delta`` (IG: two more forward rows per noisy input, F(x_j) and F(x'_j)).
        """
        if not self.has_convergence_delta:
            raise TypeError(f"{type(self.method).__name__} has no convergence delta (has_convergence_delta is False)")
        est = self.estimate(inputs, target, with_delta=True)
        return est.attributions, est.delta

    def sigma(self, inputs: Tensor) -> Tensor:
        """Noise standard deviation per sample, ``[B]`` (:func:`smoothsal.noise.noise_sigma`)."""
        return noise_sigma(inputs, self.noise_level, self.value_range)

    def estimate(
        self, inputs: Tensor, target: TargetSpec = None, *, with_delta: bool = False, snapshots: Sequence[int] = ()
    ) -> SmoothEstimate:
        """The smoothed map with its per-element standard error and the samples used.

        ``target=None`` is resolved ONCE on the clean inputs (the class predicted for ``x``, not
        for each noisy copy), so every sample explains the same class. ``with_delta`` (a method
        with :attr:`has_convergence_delta`): also the inner runs' gaps, :attr:`SmoothEstimate.delta`.
        ``snapshots``: sample counts (each at most ``n_samples``) at which the running estimate is
        also kept, :attr:`SmoothEstimate.snapshots`: the estimate at n is what ``n_samples=n``
        with the same seed gives (the draws are the same sequence), so a convergence figure over
        n costs no extra samples. No call crosses a snapshot, so the map itself is unchanged.
        """
        if with_delta and not self.has_convergence_delta:
            raise TypeError(f"{type(self.method).__name__} has no convergence delta (has_convergence_delta is False)")
        snaps = tuple(sorted({check_positive_int(n, "snapshots") for n in snapshots}))
        if snaps and snaps[-1] > self.n_samples:
            raise ValueError(f"`snapshots` must be at most n_samples={self.n_samples}, got {snaps[-1]}")
        check_inputs(inputs)
        device = inputs.device
        inputs = to_model_device(self.model, inputs.detach())  # inputs (and noise) follow the model
        targets = self._resolve_targets(inputs, target)
        per_chunk = self._images_held(inputs)
        results = [
            self._estimate_chunk(inputs[i : i + per_chunk], targets[i : i + per_chunk], with_delta, snaps)
            for i in range(0, inputs.shape[0], per_chunk)
        ]
        delta = None
        if with_delta:
            parts = [r.delta for r in results]
            joined = {}
            for f in fields(SmoothedDelta):  # each field's per-image values, chunk after chunk
                values = [getattr(d, f.name) for d in parts]
                joined[f.name] = None if any(v is None for v in values) else torch.cat(values).to(device)
            delta = SmoothedDelta(**joined)
        return SmoothEstimate(
            attributions=torch.cat([r.attributions for r in results]).to(device),
            stderr=torch.cat([r.stderr for r in results]).to(device),
            n_samples=torch.cat([r.n_samples for r in results]).to(device),
            delta=delta,
            snapshots={n: torch.cat([r.snapshots[n] for r in results]).to(device) for n in snaps} if snaps else None,
        )

    # ---- internals ---------------------------------------------------------------------------
    def _resolve_targets(self, inputs: Tensor, target: TargetSpec) -> Tensor:
        model = self.model
        if model is None:
            if target is None:
                raise ValueError("`target` must be given: the wrapped method exposes no `.model` to predict it")
            return torch.as_tensor(target, dtype=torch.long).reshape(-1).expand(inputs.shape[0]).clone()
        return resolve_model_targets(model, inputs, target, batch_size=self.batch_size, max_memory=self.max_memory)

    def _images_held(self, inputs: Tensor) -> int:
        """Images whose running sums are held at once: float64 sums take 3 (5 for VarGrad) copies
        of each image, plus the shift in the input's dtype; an eighth of the memory budget goes to them."""
        copies = 5 if self.statistic == "var" else 3
        per_image = inputs[0].numel() * (8 * copies + inputs.element_size())
        return items_in_budget(inputs.shape[0], per_image, inputs.device, self.max_memory, share=1 / 8)

    def _policy(self, x: Tensor, rows_per_input: int) -> RowPolicy:
        what = ("smooth", type(self.method).__name__, rows_per_input)
        return policy_for(self.model, x[0], what, batch_size=self.batch_size, max_memory=self.max_memory)

    def _estimate_chunk(
        self, x: Tensor, targets: Tensor, with_delta: bool = False, snapshots: tuple[int, ...] = ()
    ) -> SmoothEstimate:
        """Smooth a chunk of images.

        Draw ``j`` is one standard-noise tensor shared by the images still sampling. Each call
        takes the rows the policy asks for: several draws of all active images, or, when fewer
        rows than images are asked for, one draw of a group of images. With ``tol`` an image
        leaves as soon as its relative standard error is small enough (checked at multiples of
        ``min_samples``), and the images left get more draws per call. With weight noise each
        draw also has its own weights (one draw per call, the images' inputs as its rows).
        """
        b = x.shape[0]
        sigma = self.sigma(x).view(b, *([1] * (x.dim() - 1)))  # [B, 1, ...]
        gen = make_generator(self.seed, x.device)
        stream = noise_stream(self.sampler, self.n_samples, tuple(x.shape[1:]), gen, x.device, x.dtype)
        r = max(1, int(getattr(self.method, "rows_per_input", 1)))  # model rows per noisy input
        policy = self._policy(x, r)
        moments = _RunningMoments(need_fourth=self.statistic == "var", n_images=b)
        gaps = _DeltaSums(b, x.device) if with_delta else None  # the inner runs' completeness gaps
        active = torch.arange(b, device=x.device)  # images still sampling
        snapped: dict[int, Tensor] = {}
        # the model's parameters as they are now (a module replaced since the Smooth was built is perturbed too)
        weight_noise = self._weight_noise(self._spec)
        weight_gen = weight_generator(self.seed, x.device) if weight_noise is not None else None
        done = 0
        while done < self.n_samples and active.numel() > 0:
            a = active.numel()
            stop = self.n_samples
            if self.tol is not None:  # no call crosses a check
                stop = min(stop, (done // self.min_samples + 1) * self.min_samples)
            stop = min([stop, *(n for n in snapshots if n > done)])  # nor a snapshot
            k = policy.next_size((stop - done) * a * r)  # model rows asked for
            m = max(1, k // r)  # noisy inputs this call
            s = min(max(1, m // a), stop - done) if weight_gen is None else 1  # draws this call
            # draws in order, one per sample, shared by the images: the batch never changes the map
            eps = torch.stack([stream.next() for _ in range(s)])  # [s, ...]
            weights = weight_noise.applied(weight_noise.draw(weight_gen)) if weight_noise is not None else nullcontext()
            with weights:
                for group in active.split(m) if s == 1 else (active,):
                    noisy = x[group].unsqueeze(0) + sigma[group].unsqueeze(0) * eps.unsqueeze(1)  # [s, G, ...]
                    deltas: list | None = [] if gaps is not None else None
                    draws = torch.arange(done, done + s, device=x.device).repeat_interleave(group.numel())  # [s*G]
                    rows, row_targets = noisy.flatten(0, 1), targets[group].repeat(s)  # [s*G, ...], draw-major
                    attr = self._attribute_rows(policy, k, rows, row_targets, r, draws, deltas)  # [s*G, ...]
                    attr = attr.reshape(s, group.numel(), *attr.shape[1:])
                    if gaps is not None:
                        gaps.add(ConvergenceDelta.cat(deltas), group, s)
                    moments.add(attr * attr if self.statistic == "square" else attr, group)
            done += s
            if done in snapshots:  # the images that stopped earlier have no estimate at this n
                value = self._finish(moments, attr.dtype).attributions
                reached = (moments.n == done).view(-1, *([1] * (value.dim() - 1)))
                snapped[done] = torch.where(reached, value, torch.full_like(value, float("nan")))
            if self.tol is not None and done % self.min_samples == 0 and done < self.n_samples:
                converged = self._finish(moments, attr.dtype).relative_stderr()[active] <= self.tol
                active = active[~converged]
        out = self._finish(moments, attr.dtype)
        out.delta = gaps.finish() if gaps is not None else None
        nan = torch.full_like(out.attributions, float("nan"))
        out.snapshots = {n: snapped.get(n, nan) for n in snapshots}  # n never reached: every image stopped
        return out

    def _attribute_rows(
        self, policy: RowPolicy, k: int, rows: Tensor, targets: Tensor, r: int, draws: Tensor,
        deltas: list | None = None,
    ) -> Tensor:
        """The wrapped method on the noisy inputs ``rows`` (``r`` model rows each, draw ``draws[i]``
        each), as the call of ``k`` rows the policy asked for (:func:`smoothsal.execution.runner.run_call`:
        an out-of-memory error halves the calls for good). A method with ``attribute_rows`` (every
        smoothsal method, the Captum adapter) is told to run each call's rows in one model call
        (:class:`~smoothsal.execution.policy.RowContext`), so one policy, this one, chooses the rows
        of both; another method is called with ``attribute``. With a list ``deltas``, the method's
        delta is computed too and each call's ConvergenceDelta appended, in row order."""
        nested = getattr(self.method, "attribute_rows", None)

        def work(lo: int, hi: int) -> Tensor:
            t = targets[lo:hi]
            if nested is not None:
                context = RowContext((hi - lo) * r, draws[lo:hi], self.n_samples)
                out = nested(rows[lo:hi], t, context, with_delta=deltas is not None)
            elif deltas is None:
                out = self.method.attribute(rows[lo:hi], target=t)
            else:
                out = self.method.attribute_with_delta(rows[lo:hi], target=t)
            if deltas is None:
                return out
            attr, delta = out
            deltas.append(delta)
            return attr

        return run_call(policy, k, rows.shape[0], work, unit=r)

    def _finish(self, moments: _RunningMoments, dtype: torch.dtype) -> SmoothEstimate:
        n = moments._count()  # [B, 1, ...]
        var = moments.central2()  # population variance of the accumulated quantity
        if self.statistic == "var":
            value = var
            # delta method: Var(s²) ≈ (μ4 − σ⁴) / n
            se = ((moments.central4() - var * var).clamp_min(0.0) / n).sqrt()
        else:
            value = moments.mean()
            # unbiased variance / n; one sample gives no error estimate
            se = torch.where(n > 1, (var / (n - 1).clamp_min(1)).sqrt(), torch.full_like(var, float("inf")))
        return SmoothEstimate(
            attributions=value.to(dtype),
            stderr=se.to(dtype),
            n_samples=moments.n.to(torch.long),
        )


class SmoothGrad(Smooth):
    """SmoothGrad: :class:`Smooth` around :class:`~smoothsal.methods.gradient.VanillaGradient`.

    ``SmoothGrad(model, **kw)`` is ``Smooth(VanillaGradient(model), **kw)`` (the same keyword
    arguments); ``SmoothGrad.from_spec(model, spec)`` is ``Smooth.from_spec(VanillaGradient(model), spec)``.
    """

    def __init__(self, model: nn.Module, **kwargs: Any) -> None:
        from smoothsal.methods.gradient import VanillaGradient

        super().__init__(VanillaGradient(model), **kwargs)

    @classmethod
    def from_spec(  # type: ignore[override]
        cls, model: nn.Module, spec: SmoothSpec, *, batch_size: int | None = None, max_memory: MemorySpec = None
    ) -> SmoothGrad:
        """SmoothGrad of ``model`` with the settings of ``spec`` (a :class:`SmoothSpec`)."""
        from smoothsal.methods.gradient import VanillaGradient

        obj = cls.__new__(cls)
        obj._setup(VanillaGradient(model), spec, batch_size, max_memory)
        return obj


def smooth(method: Any, inputs: Tensor, target: TargetSpec = None, **kwargs: Any) -> Tensor:
    """Functional form of :class:`Smooth`: ``Smooth(method, **kwargs).attribute(inputs, target)``."""
    return Smooth(method, **kwargs).attribute(inputs, target)
