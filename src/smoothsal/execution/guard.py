"""The model guard: a model is explained in eval mode and afterwards put back exactly as it was.

Every method (:class:`~smoothsal.methods.base.Attribution`), :func:`~smoothsal.execution.calls.predict`
and the metrics that rewrite a model run inside :func:`preserve_model`: each module's train/eval
flag, ``inplace`` flag, forward override and hook dictionary is restored, also when the block
raises midway. A model in training mode gets a warning (dropout and batch-norm statistics would
make the map random).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["MODULE_HOOK_DICTS", "preserve_model"]

#: the ``nn.Module`` attributes that hold hooks (what ``preserve_model`` restores and what makes
#: :func:`smoothsal.execution.folding.folded` leave a model unfolded)
MODULE_HOOK_DICTS: tuple[str, ...] = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
)


@contextlib.contextmanager
def preserve_model(model: nn.Module, *, warn_training: bool = True) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore it exactly afterwards.

    Restored on exit, whether the block returns or raises: each module's ``training`` flag,
    ``inplace`` attribute, any instance-level ``forward`` override, and the hooks registered on
    it (hooks the block added are removed; hooks the user had stay).

    The parameters keep ``requires_grad``: every method takes :func:`torch.autograd.grad` with
    respect to the inputs (or an activation), which already skips the weight gradients; freezing
    them was measured to change neither time nor saved memory (``benchmarks/bench_modes.py``).
    """
    modules = list(model.modules())
    training = [m.training for m in modules]
    inplace = [getattr(m, "inplace", None) for m in modules]
    forwards = [m.__dict__.get("forward") for m in modules]
    hooks = [{name: dict(getattr(m, name)) for name in MODULE_HOOK_DICTS if hasattr(m, name)} for m in modules]
    if warn_training and model.training:
        warnings.warn(
            "the model is in training mode; smoothsal explains it in eval mode (dropout and batch-norm "
            "statistics would make the map random) and restores training mode afterwards. "
            "Call model.eval() to silence this warning.",
            UserWarning,
            stacklevel=4,
        )
    model.eval()
    try:
        yield model
    finally:
        # restore only what changed (TorchScript modules refuse writes to constants such as `inplace`)
        for m, was_training, inp, fwd, hk in zip(modules, training, inplace, forwards, hooks):
            if m.training != was_training:
                m.train(was_training) if isinstance(m, torch.jit.ScriptModule) else setattr(m, "training", was_training)
            if inp is not None and getattr(m, "inplace", None) != inp:
                m.inplace = inp
            if m.__dict__.get("forward") is not fwd:
                if fwd is None:
                    m.__dict__.pop("forward", None)
                else:
                    m.__dict__["forward"] = fwd
            for name, saved in hk.items():
                current = getattr(m, name)
                if current.keys() != saved.keys():
                    current.clear()
                    current.update(saved)
