r"""Fold eval-mode BatchNorm into the convolution before it: the same function, fewer passes over memory.

In eval mode a ``BatchNorm2d`` is a per-channel affine map with frozen statistics,

.. math:: \mathrm{BN}(z) = \gamma \, \frac{z - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta ,

so when it reads the output of a convolution :math:`z = W * x + b` the two are one convolution
with :math:`W' = W \gamma / \sqrt{\sigma^2 + \epsilon}` and
:math:`b' = (b - \mu)\,\gamma / \sqrt{\sigma^2 + \epsilon} + \beta` (Ioffe & Szegedy 2015,
arXiv:1502.03167, §3.1: at inference the transform "is simply a linear transform applied to each
activation"). The folded network computes the same function and therefore the same input
gradient, up to float rounding, while the BatchNorm's own forward and backward passes, each a full
read and write of an activation tensor, disappear. On EfficientNet-Lite0 (49 BatchNorms, 12 of
its 17 "same" paddings also moved into their convolutions, :func:`fold_batchnorm`) SmoothGrad runs
1.38× faster on a 2-core CPU (``benchmarks/bench_fold_alloc.py``); the gradient differs from the
unfolded one by a relative L2 of 8e-4 (SmoothGrad at n = 32: 2.1e-3), while moving the input by
1e-6 changes the unfolded gradient by 2.8e-2: the network's own jaggedness amplifies rounding.

Who folds: only methods that use the model as a function of its input (:class:`VanillaGradient`,
:class:`GradientXInput`, :class:`IntegratedGradients`, and :class:`~smoothsal.smoothing.Smooth`
around them). Methods that read or rewrite the model's modules (Grad-CAM reads a layer's
activation, which folding would move from before its BatchNorm to after; Guided Backprop and
DeepLIFT change the backward pass of its rectifiers by hooks) always run the model as given.

How, safely, without tracing (``torch.fx`` fails on models with data-dependent control flow,
EfficientNet among them): :func:`fold_batchnorm` runs one forward pass with hooks and folds a
(``nn.Conv2d``, ``nn.BatchNorm2d``) pair only when the BatchNorm's input *is* the convolution's
output tensor, each module runs once per forward, both are exactly those classes (not subclasses
such as timm's ``BatchNormAct2d``, which also applies an activation) and the BatchNorm uses
running statistics. The folding is done on a deep copy (the user's model is never modified) and
checked: the copy's outputs on the probe must equal the original's within
:data:`FOLD_TOLERANCE` of their scale, else the original is used. (A convolution whose output is
also read elsewhere, e.g. by a skip connection before the BatchNorm, fails this check.)

:func:`folded` caches the copy per model and rebuilds it when any parameter or buffer changes
(its storage or its version counter: ``.to(device)``, an optimizer step, ``load_state_dict``).
The cache holds the model weakly (the copy goes when the model is garbage-collected) and keeps
the copies of at most :data:`MAX_FOLDED` models (the least recently used go first): each copy is
a whole model's weights. A model with hooks of its own is never folded (the hooks may expect the
original modules). ``with smoothsal.execution.folding.folding(False):`` turns folding off, e.g.
to compare with another library bit for bit; the switch is a :class:`contextvars.ContextVar`:
it holds in the thread (and ``asyncio`` task) that set it, as a thread-local would, and a
``with`` block restores it on exit.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from smoothsal.execution.guard import MODULE_HOOK_DICTS

__all__ = [
    "FOLD_TOLERANCE",
    "MAX_FOLDED",
    "FoldReport",
    "cached_models",
    "fold_batchnorm",
    "folded",
    "folding",
    "folding_enabled",
    "set_folding",
]

#: the folded copy is used only when ``max |f_folded(x) - f(x)| <= FOLD_TOLERANCE * max(1, max |f(x)|)``
#: on the probe input (float32 rounding gives ~1e-6; a wrong fold gives O(1))
FOLD_TOLERANCE = 1e-3
#: folded copies kept at once (each holds a whole model's weights); the least recently used go first.
MAX_FOLDED = 4

_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar("smoothsal_folding", default=True)


def folding_enabled() -> bool:
    """Whether the methods that may fold BatchNorm do so here (default ``True``)."""
    return _enabled.get()


def set_folding(enabled: bool) -> None:
    """Turn BatchNorm folding on or off in the current context (this thread, until changed);
    prefer ``with folding(enabled):``, which restores it."""
    if not isinstance(enabled, bool):
        raise TypeError(f"`enabled` must be a bool, got {enabled!r}")
    _enabled.set(enabled)


@contextlib.contextmanager
def folding(enabled: bool) -> Iterator[None]:
    """Context manager: BatchNorm folding on or off inside the block, restored afterwards."""
    if not isinstance(enabled, bool):
        raise TypeError(f"`enabled` must be a bool, got {enabled!r}")
    token = _enabled.set(enabled)
    try:
        yield
    finally:
        _enabled.reset(token)


@dataclass(frozen=True)
class FoldReport:
    """What :func:`fold_batchnorm` did.

    Attributes:
        folded: the ``(conv, batchnorm)`` module names folded.
        max_difference: ``max |f_folded(x) − f(x)|`` on the probe (0 when nothing was folded).
        scale: ``max(1, max |f(x)|)``, what the difference is compared with.
        used: whether the folded copy passed the check (else the original model is the result).
        paddings: the convolutions whose ``static_padding`` moved into their own ``padding``.
    """

    folded: tuple[tuple[str, str], ...]
    max_difference: float
    scale: float
    used: bool
    paddings: tuple[str, ...] = ()


def _has_hooks(model: nn.Module) -> bool:
    return any(len(getattr(m, name, ())) for m in model.modules() for name in MODULE_HOOK_DICTS)


def _foldable_pairs(model: nn.Module, probe: Tensor, *, conv_subclasses: bool) -> list[tuple[str, str]]:
    """``(conv name, batchnorm name)`` pairs where the BatchNorm reads the convolution's output directly.

    ``conv_subclasses``: also subclasses of ``nn.Conv2d`` (e.g. TensorFlow-style "same" padding
    convolutions, whose forward pads and then convolves with ``self.weight`` and ``self.bias``).
    """
    names: dict[int, list[str]] = {}
    for name, m in model.named_modules(remove_duplicate=False):
        names.setdefault(id(m), []).append(name)
    calls: dict[int, int] = {}
    conv_of_output: dict[int, nn.Module] = {}
    bn_input: dict[int, Tensor] = {}
    outputs: list[Tensor] = []  # keep the outputs alive so that their ids stay unique

    def on_conv(m: nn.Module, _inp: tuple, out: Tensor) -> None:
        calls[id(m)] = calls.get(id(m), 0) + 1
        outputs.append(out)
        conv_of_output[id(out)] = m

    def on_bn(m: nn.Module, inp: tuple) -> None:
        calls[id(m)] = calls.get(id(m), 0) + 1
        bn_input[id(m)] = inp[0]

    handles = []
    bns = []
    for m in model.modules():
        is_conv = isinstance(m, nn.Conv2d) if conv_subclasses else type(m) is nn.Conv2d
        if is_conv and m.padding_mode == "zeros":
            handles.append(m.register_forward_hook(on_conv))
        elif type(m) is nn.BatchNorm2d and m.track_running_stats and m.running_mean is not None:
            handles.append(m.register_forward_pre_hook(on_bn))
            bns.append(m)
    try:
        with torch.no_grad():
            model(probe)
    finally:
        for h in handles:
            h.remove()
    pairs = []
    for bn in bns:
        x = bn_input.get(id(bn))
        conv = conv_of_output.get(id(x)) if x is not None else None
        if conv is None or calls.get(id(bn)) != 1 or calls.get(id(conv)) != 1:
            continue
        if len(names[id(bn)]) != 1 or len(names[id(conv)]) != 1:  # shared modules: leave them
            continue
        pairs.append((names[id(conv)][0], names[id(bn)][0]))
    return pairs


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)


def fold_batchnorm(model: nn.Module, probe: Tensor) -> tuple[nn.Module, FoldReport]:
    """A copy of ``model`` (eval mode) with every BatchNorm that directly follows a convolution folded into it.

    Args:
        model: any module; it is not modified.
        probe: an input batch ``[B, ...]`` of the model (one row is enough) for the forward pass
            that finds the pairs and checks the result.
    Returns:
        ``(module, report)``: the folded copy when something was folded and it passed the check
        (module docstring), else ``model`` itself.
    """
    modes = [(m, m.training) for m in model.modules()]  # restored module by module (modes may be mixed)
    model.eval()
    try:
        report = FoldReport((), 0.0, 1.0, False)
        if not any(type(m) is nn.BatchNorm2d for m in model.modules()):
            return model, report  # nothing to fold: no probe pass
        # first with convolution subclasses; if that copy fails the check (a subclass that does more
        # than pad and convolve, e.g. weight standardization), again with plain nn.Conv2d only
        for conv_subclasses in (True, False):
            pairs = _foldable_pairs(model, probe, conv_subclasses=conv_subclasses)
            if not pairs or (report.folded and tuple(pairs) == report.folded):
                break
            twin = _fold_pairs(model, pairs)
            paddings = _fold_paddings(twin) if conv_subclasses else ()
            with torch.no_grad():
                want, got = model(probe), twin(probe)
            diff = float((got - want).abs().max())
            scale = max(1.0, float(want.abs().max()))
            report = FoldReport(tuple(pairs), diff, scale, diff <= FOLD_TOLERANCE * scale, paddings)
            if report.used:
                return twin, report
        return model, report
    finally:
        for m, mode in modes:
            m.training = mode


def _fold_paddings(twin: nn.Module) -> tuple[str, ...]:
    """Move each symmetric ``static_padding`` (``nn.ZeroPad2d``) of a convolution into the convolution's own ``padding``.

    EfficientNet-PyTorch's ``Conv2dStaticSamePadding`` (EfficientNet-Lite's convolutions) pads
    with a ``ZeroPad2d`` module and then convolves with ``padding=self.padding`` (0). For a
    symmetric pad the convolution's own zero padding gives the same output without the padded
    copy of the activation and its backward (22 % of a Lite0 forward+backward on a CPU). A
    stride-2 layer's TensorFlow "same" pad is asymmetric (one more at the end) and stays.
    """
    moved = []
    for name, m in twin.named_modules():
        pad = getattr(m, "static_padding", None)
        if not (isinstance(m, nn.Conv2d) and type(pad) is nn.ZeroPad2d and m.padding_mode == "zeros"):
            continue
        left, right, top, bottom = pad.padding
        if left == right and top == bottom and tuple(m.padding) == (0, 0):
            m.padding = (top, left)
            m.static_padding = nn.Identity()
            moved.append(name)
    return tuple(moved)


def _fold_pairs(model: nn.Module, pairs: list[tuple[str, str]]) -> nn.Module:
    """A deep copy of ``model`` with each (conv, batchnorm) pair folded: the conv keeps its class, the BN becomes ``Identity``."""
    twin = copy.deepcopy(model)
    for conv_name, bn_name in pairs:
        conv, bn = twin.get_submodule(conv_name), twin.get_submodule(bn_name)
        fused = fuse_conv_bn_eval(conv, bn)  # a copy of conv (same class) with W' and b'
        if conv.weight.is_contiguous(memory_format=torch.channels_last):
            fused = fused.to(memory_format=torch.channels_last)
        for p in fused.parameters():
            p.requires_grad_(conv.weight.requires_grad)
        _replace(twin, conv_name, fused)
        _replace(twin, bn_name, nn.Identity())
    return twin


def _fingerprint(model: nn.Module) -> tuple:
    return tuple(
        (t.data_ptr(), t._version, t.dtype, t.device, tuple(t.shape))
        for t in (*model.parameters(), *model.buffers())
    )


class _FoldCache:
    """Folded copies per model: the model held weakly, at most :data:`MAX_FOLDED` of them (LRU)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()  # a model's weakref callback may run inside a locked section
        self.entries: OrderedDict[int, tuple[weakref.ref, tuple, nn.Module | None]] = OrderedDict()

    def get(self, model: nn.Module) -> tuple[tuple, nn.Module | None] | None:
        with self.lock:
            hit = self.entries.get(id(model))
            if hit is None or hit[0]() is not model:
                return None
            self.entries.move_to_end(id(model))
            return hit[1], hit[2]

    def put(self, model: nn.Module, key: tuple, twin: nn.Module | None) -> None:
        ident = id(model)

        def forget(ref: weakref.ref, ident: int = ident) -> None:  # the model was garbage-collected
            with self.lock:
                hit = self.entries.get(ident)
                if hit is not None and hit[0] is ref:
                    del self.entries[ident]

        with self.lock:
            self.entries[ident] = (weakref.ref(model, forget), key, twin)
            self.entries.move_to_end(ident)
            while len(self.entries) > MAX_FOLDED:
                self.entries.popitem(last=False)

    def __len__(self) -> int:
        with self.lock:
            return len(self.entries)


_cache = _FoldCache()


def cached_models() -> int:
    """How many models have a folded copy (or a "nothing to fold") cached now."""
    return len(_cache)


def folded(model: nn.Module, probe: Tensor) -> nn.Module:
    """The model to run for a method that uses ``model`` as a function: its BatchNorm-folded copy, or itself.

    Itself when folding is off (:func:`folding`), the model has hooks, is a TorchScript module,
    has nothing to fold or the fold fails its check. The copy is cached per model (weakly, at most
    :data:`MAX_FOLDED` models) and rebuilt when the model's parameters or buffers change.
    """
    if not folding_enabled() or isinstance(model, torch.jit.ScriptModule) or _has_hooks(model):
        return model
    key = _fingerprint(model)
    hit = _cache.get(model)
    if hit is not None and hit[0] == key:
        return hit[1] if hit[1] is not None else model
    twin, report = fold_batchnorm(model, probe[:1].detach())
    _cache.put(model, key, twin if report.used else None)
    return twin
