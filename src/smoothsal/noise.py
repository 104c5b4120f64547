r"""Noise for smoothing, written once: σ from the value range, standard-noise samplers, generators.

SmoothGrad (Smilkov et al. 2017, arXiv:1706.03825, §3) gives the noise level as a fraction of
the input's value range:

.. math:: \sigma = \text{noise\_level} \cdot (x_{max} - x_{min})

per sample (:func:`noise_sigma`), or of a fixed ``value_range=(lo, hi)`` for every sample.
A sampler returns *standard* noise (zero mean, unit variance), which is then scaled by σ, so
``noise_level`` keeps its meaning whatever the sampler.

Two kinds of sampler (:func:`noise_stream` turns either into the stream Smooth reads):

* a plain callable :data:`Sampler` ``(shape, generator, device, dtype) -> noise``: independent
  draws (``"gaussian"``, ``"uniform"``);
* a :class:`NoiseStream` subclass, created once per estimate: ``start(n_total, shape, generator,
  device, dtype)`` then ``next()`` once per draw, in order. Variance reduction lives here:

  - ``"antithetic"`` (:class:`AntitheticStream`): pairs ``(ε, −ε)``, ε ~ N(0, I). Each draw is
    N(0, I), so the mean is unbiased; the part of the map that is odd in ε cancels exactly in
    each pair. Holds the last draw only.
  - ``"lhs"`` (:class:`LatinHypercubeStream`): Latin hypercube through the normal inverse CDF.
    For ``n_total`` draws, each coordinate's values are one from each of ``n_total``
    equal-probability strata, in an order permuted independently per coordinate. The
    permutations are computed, not stored (a keyed Feistel permutation per coordinate, cycle
    walked to ``n_total``, composed with a uniform random shift), so memory is a few copies of
    one draw whatever ``n_total`` is, and each draw is exactly N(0, I).

Draw ``j`` of a stream never depends on how many draws are asked for per call, so maps do not
depend on the batch size. Under ``Smooth(tol=...)`` an estimate may stop at a multiple of
``min_samples``: antithetic pairs stay complete when ``min_samples`` is even (the default, 16);
a stopped LHS has used a random subset of each coordinate's strata: still unbiased, with less of
the stratification's variance reduction. Scrambled Sobol is not offered: SobolEngine allows at
most 21,201 dimensions, fewer than an image's 3·224·224 = 150,528.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Union

import torch
from torch import Tensor

__all__ = [
    "SAMPLERS",
    "AntitheticStream",
    "LatinHypercubeStream",
    "NoiseStream",
    "Sampler",
    "SeedSpec",
    "derived_generator",
    "independent_draws",
    "make_generator",
    "noise_sigma",
    "noise_stream",
    "standard_sampler",
    "value_span",
]

SeedSpec = Union[int, torch.Generator, None]
#: ``(shape, generator, device, dtype) -> standard noise`` of that shape.
Sampler = Callable[[tuple[int, ...], torch.Generator, torch.device, torch.dtype], Tensor]


def _gaussian(shape: tuple[int, ...], gen: torch.Generator, device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.randn(shape, generator=gen, device=gen.device, dtype=dtype).to(device)


def _uniform(shape: tuple[int, ...], gen: torch.Generator, device: torch.device, dtype: torch.dtype) -> Tensor:
    # uniform on [-sqrt(3), sqrt(3)]: zero mean, unit variance
    u = torch.rand(shape, generator=gen, device=gen.device, dtype=dtype).to(device)
    return (u * 2.0 - 1.0) * math.sqrt(3.0)


class NoiseStream:
    """Standard noise drawn in order, for one estimate of ``n_total`` draws (the stateful protocol).

    Subclasses implement :meth:`start` (called once) and :meth:`next` (one draw ``shape``, in
    order). Draw ``j`` must not depend on how the draws are grouped into calls.
    """

    #: whether the draws are independent. ``Smooth``'s standard error assumes they are: it is
    #: conservative for the mean of dependent (negatively correlated) draws, but not for
    #: SmoothGrad² or VarGrad, which therefore refuse dependent streams.
    independent: bool = False

    def start(
        self, n_total: int, shape: tuple[int, ...], gen: torch.Generator, device: torch.device, dtype: torch.dtype
    ) -> NoiseStream:
        self.n_total, self.shape, self.gen, self.device, self.dtype = int(n_total), tuple(shape), gen, device, dtype
        return self

    def next(self) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class _CallableStream(NoiseStream):
    """Independent draws of a plain :data:`Sampler`."""

    independent = True

    def __init__(self, draw: Sampler) -> None:
        self.draw = draw

    def next(self) -> Tensor:
        return self.draw(self.shape, self.gen, self.device, self.dtype)


class AntitheticStream(NoiseStream):
    """Antithetic pairs: draws ``ε₀, −ε₀, ε₁, −ε₁, …`` with ε ~ N(0, I) (an odd ``n_total`` ends unpaired).

    Example:
        >>> s = AntitheticStream().start(4, (3,), make_generator(0), torch.device("cpu"), torch.float32)
        >>> a, b = s.next(), s.next()
        >>> bool((a == -b).all())
        True
    """

    def start(self, n_total, shape, gen, device, dtype) -> AntitheticStream:
        super().start(n_total, shape, gen, device, dtype)
        self._last: Tensor | None = None
        return self

    def next(self) -> Tensor:
        if self._last is not None:
            out, self._last = -self._last, None
            return out
        self._last = _gaussian(self.shape, self.gen, self.device, self.dtype)
        return self._last


_MASK31 = 0x7FFFFFFF


def _mix(v: Tensor) -> Tensor:
    """A 31-bit integer hash (int64 arithmetic that never overflows)."""
    v = (v * 1103515245 + 12345) & _MASK31
    v = v ^ (v >> 13)
    v = (v * 1597334677) & _MASK31
    return v ^ (v >> 16)


class LatinHypercubeStream(NoiseStream):
    r"""Latin hypercube draws mapped through the normal inverse CDF.

    Draw ``j`` (``0 ≤ j < n_total``), coordinate ``c``: stratum :math:`s_c = (P_c(j) + b_c) \bmod n`
    where :math:`P_c` is a keyed pseudo-random permutation of :math:`\{0..n-1\}` (4-round
    Feistel network on :math:`2^{2h} \ge n` values, cycle-walked into range), and :math:`b_c` a
    uniform random shift; then :math:`u = (s_c + U)/n`, :math:`U \sim U(0, 1)`, and
    :math:`\varepsilon = \Phi^{-1}(u)`. Over ``n_total`` draws each coordinate hits every
    stratum exactly once; because :math:`b_c` is uniform and independent per coordinate, every
    single draw is exactly N(0, I). Draws past ``n_total`` start a fresh hypercube.

    Example:
        >>> s = LatinHypercubeStream().start(8, (5,), make_generator(0), torch.device("cpu"), torch.float64)
        >>> u = torch.special.ndtr(torch.stack([s.next() for _ in range(8)]))
        >>> bool(((u * 8).floor().sort(dim=0).values == torch.arange(8.0).unsqueeze(1)).all())
        True
    """

    ROUNDS = 4

    def start(self, n_total, shape, gen, device, dtype) -> LatinHypercubeStream:
        super().start(n_total, shape, gen, device, dtype)
        self._j = self.n_total  # a new hypercube on the first draw
        return self

    def _new_block(self) -> None:
        n = self.n_total
        self._half = max(1, math.ceil(math.log2(max(n, 2)) / 2))  # bits per Feistel half
        numel = math.prod(self.shape)
        kw = {"generator": self.gen, "device": self.gen.device, "dtype": torch.int64}
        self._key = torch.randint(0, _MASK31 + 1, (numel,), **kw)
        self._shift = torch.randint(0, n, (numel,), **kw)
        self._j = 0

    def _permute(self, j: int) -> Tensor:
        """:math:`P_c(j)` for every coordinate ``c`` (int64, in ``[0, n_total)``)."""
        h, n = self._half, self.n_total
        mask = (1 << h) - 1
        x = torch.full_like(self._key, j)
        todo = torch.ones_like(x, dtype=torch.bool)
        while bool(todo.any()):  # cycle walking: re-encrypt until in range (terminates: j < n)
            v, key = x[todo], self._key[todo]
            left, right = v >> h, v & mask
            for r in range(self.ROUNDS):
                left, right = right, left ^ (_mix(right ^ ((key + r * 0x9E3779B) & _MASK31)) & mask)
            v = (left << h) | right
            x[todo] = v
            todo = x >= n
        return x

    def next(self) -> Tensor:
        if self._j >= self.n_total:
            self._new_block()
        n = self.n_total
        strata = (self._permute(self._j) + self._shift) % n
        self._j += 1
        jitter = torch.rand(self._key.shape, generator=self.gen, device=self.gen.device, dtype=torch.float64)
        u = ((strata.to(torch.float64) + jitter) / n).clamp(1e-12, 1 - 1e-12)
        eps = torch.special.ndtri(u)
        return eps.reshape(self.shape).to(device=self.device, dtype=self.dtype)


#: Named samplers: ``"gaussian"`` (the paper) and ``"uniform"`` (same variance), independent
#: draws; ``"antithetic"`` and ``"lhs"``, variance-reduced streams (:class:`NoiseStream`).
SAMPLERS: dict[str, Sampler | type[NoiseStream]] = {
    "gaussian": _gaussian,
    "uniform": _uniform,
    "antithetic": AntitheticStream,
    "lhs": LatinHypercubeStream,
}


def _is_stream(sampler: object) -> bool:
    return isinstance(sampler, type) and issubclass(sampler, NoiseStream)


def independent_draws(sampler: str | Sampler | type[NoiseStream]) -> bool:
    """Whether ``sampler``'s draws are independent (plain callables are; streams say so)."""
    kind = SAMPLERS.get(sampler) if isinstance(sampler, str) else sampler
    return not (isinstance(kind, type) and issubclass(kind, NoiseStream)) or kind.independent


def standard_sampler(sampler: str | Sampler) -> Sampler:
    """The independent-draw sampler named ``sampler`` (:data:`SAMPLERS`), or ``sampler`` itself if callable.

    Stream samplers (``"antithetic"``, ``"lhs"``) need the number of draws: use :func:`noise_stream`.
    """
    if callable(sampler) and not _is_stream(sampler):
        return sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"`sampler` must be one of {sorted(SAMPLERS)} or a callable, got {sampler!r}")
    if _is_stream(SAMPLERS[sampler]) or _is_stream(sampler):
        raise ValueError(f"sampler {sampler!r} is a stream (it needs n_total): use noise_stream()")
    return SAMPLERS[sampler]


def noise_stream(
    sampler: str | Sampler | type[NoiseStream],
    n_total: int,
    shape: tuple[int, ...],
    gen: torch.Generator,
    device: torch.device,
    dtype: torch.dtype,
) -> NoiseStream:
    """A started :class:`NoiseStream` for one estimate of ``n_total`` draws of ``shape``.

    ``sampler``: a name in :data:`SAMPLERS`, a :class:`NoiseStream` subclass (instantiated with no
    arguments), or a plain :data:`Sampler` callable (independent draws).

    Example:
        >>> s = noise_stream("antithetic", 2, (3,), make_generator(0), torch.device("cpu"), torch.float32)
        >>> bool((s.next() + s.next() == 0).all())
        True
    """
    if isinstance(sampler, str):
        if sampler not in SAMPLERS:
            raise ValueError(f"`sampler` must be one of {sorted(SAMPLERS)} or a callable, got {sampler!r}")
        sampler = SAMPLERS[sampler]
    stream = sampler() if _is_stream(sampler) else _CallableStream(standard_sampler(sampler))
    return stream.start(n_total, shape, gen, device, dtype)


def make_generator(seed: SeedSpec, device: torch.device | str | None = None) -> torch.Generator:
    """A ``torch.Generator`` from ``seed``.

    An int seeds a fresh generator (the same stream every call); a generator is used as is (and
    advanced); ``None`` seeds a fresh generator from the operating system.

    Example:
        >>> a = torch.randn(3, generator=make_generator(7))
        >>> bool((a == torch.randn(3, generator=make_generator(7))).all())
        True
    """
    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device=device if device is not None else "cpu")
    if seed is None:
        gen.seed()
        return gen
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"`seed` must be an int, a torch.Generator or None, got {type(seed).__name__}")
    return gen.manual_seed(seed)


#: what a derived generator's int seed is offset by (times ``stream + 1``), so that its draws and
#: the input noise of one seed are different streams (the input noise keeps the seed itself)
_DERIVED_SEED_OFFSET = 0x5EED_0F_3E16


def derived_generator(seed: SeedSpec, device: torch.device | str | None = None, *, stream: int = 0) -> torch.Generator:
    """A generator for draws of a smoothing other than its input noise (weight noise: stream 0; a
    path method's positions: stream 1), from the input noise's ``seed``.

    An int gives a fresh generator of a stream of its own (the same draws every call); a
    ``torch.Generator`` a new one seeded from it (advancing it once); ``None`` fresh randomness.

    Example:
        >>> a = torch.randn(2, generator=derived_generator(7))
        >>> bool((a == torch.randn(2, generator=derived_generator(7))).all())
        True
        >>> bool((a == torch.randn(2, generator=make_generator(7))).any())
        False
    """
    if isinstance(seed, torch.Generator):
        derived = int(torch.randint(0, 2**62, (1,), generator=seed, device=seed.device).item())
        return torch.Generator(device=seed.device).manual_seed(derived)
    if seed is None:
        return make_generator(None, device)
    return make_generator((int(seed) + _DERIVED_SEED_OFFSET * (1 + int(stream))) % 2**63, device)


def value_span(inputs: Tensor, value_range: tuple[float, float] | None = None) -> Tensor:
    """``x_max − x_min`` of each sample ``[B]``, or ``hi − lo`` for all with ``value_range``."""
    if value_range is not None:
        lo, hi = value_range
        return torch.full((inputs.shape[0],), float(hi - lo), dtype=inputs.dtype, device=inputs.device)
    flat = inputs.detach().flatten(1)
    return flat.amax(dim=1) - flat.amin(dim=1)


def noise_sigma(inputs: Tensor, noise_level: float, value_range: tuple[float, float] | None = None) -> Tensor:
    """σ per sample ``[B]``: ``noise_level × value_span(inputs, value_range)`` (0 for a constant sample)."""
    return noise_level * value_span(inputs, value_range)
