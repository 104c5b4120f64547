"""How a study runs: :class:`RunOptions`, one typed value built once and passed down explicitly.

Every study command takes the same run options (``--out``, ``--device``, ``--max-memory``,
``--batch-size``, ``--seed``, ``--progress/--no-progress``, ``--fresh``); the CLI layer builds
one :class:`RunOptions` from them (:func:`smoothsal.studies._options.with_run_options`) before
any work, and the study's ``run_<study>(config, options)`` hands it to its compute step, which
gives ``batch_size`` and ``max_memory`` to every library call that runs rows. Nothing is set
process-wide: two studies in one process with other options do not see each other's.

What the study computes (its methods, noise levels, images, ...) is its own configuration
(``<Study>Config``); of the run options only ``seed`` changes a number, so only the seed enters
the results store's configuration hash. :meth:`RunOptions.build_method`, :meth:`~RunOptions.predict`
and :meth:`~RunOptions.attribution_maps` are the library's, run with the run's ``batch_size`` and
``max_memory``: the harness runs rows through them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from smoothsal._core.jsontypes import JSONObject
from smoothsal._core.validation import check_positive_int
from smoothsal.execution.memory import MemorySpec
from smoothsal.methods.base import Attribution
from smoothsal.registry import MethodSetting, build_method, method_factory
from smoothsal.smoothing import Smooth
from smoothsal.smoothing_spec import SmoothSpec

__all__ = ["RunOptions"]


def _location(value: str | Path) -> Path | str:
    """A URL with a scheme (``s3://...``, ``memory://...``) as given; a ``file://`` URL or anything
    else as a local :class:`~pathlib.Path` (the rule of the map store's locations)."""
    text = str(value)
    if text.startswith("file://"):
        return Path(text[len("file://"):])
    return text if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text) else Path(text)


@dataclass(frozen=True)
class RunOptions:
    """The run options every study shares, checked when built (a bad ``max_memory`` or device fails
    before any model is loaded).

    Attributes:
        out: the output folder (the results store lives there, so a rerun resumes); ``None``:
            the study's own default (``out/<study>``). A URL with a scheme (``s3://bucket/maps``)
            stays a string: only ``explain-dataset``'s map store may live there
            (:meth:`out_location`); the other studies write a local folder (:meth:`out_dir`).
        device: where the models run: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"``, ``"mps"`` (:func:`smoothsal.execution.devices.resolve_device`). Maps on
            another device agree to float32 rounding: not part of any hash.
        max_memory: the memory budget of the automatic batch size, any form of
            :func:`smoothsal.execution.memory.parse_memory` (``"4GB"``, ``"25%"``, bytes); stored
            parsed (bytes as an int, a fraction as a float); ``None``: the library's default budget.
        batch_size: most model rows per call (noisy inputs × the method's rows per input, masked
            copies, images); ``None``: automatic. Never changes a number.
        seed: the run's seed (noise draws, the inputs a study picks, randomized weights); part of
            every results store's configuration.
        progress: show progress bars. fresh: delete the results store in ``out`` first.

    Example:
        >>> RunOptions(max_memory="4GB", batch_size=16).max_memory
        4000000000
    """

    out: Path | str | None = None
    device: str = "auto"
    max_memory: MemorySpec = None
    batch_size: int | None = None
    seed: int = 0
    progress: bool = True
    fresh: bool = False

    def __post_init__(self) -> None:
        from smoothsal.execution.devices import resolve_device
        from smoothsal.execution.memory import parse_memory

        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        if self.out is not None:
            if not isinstance(self.out, (str, Path)) or not str(self.out).strip():
                raise ValueError(f"`out` must be a folder or a URL, got {self.out!r}")
            set_("out", _location(self.out))
        if not isinstance(self.device, str) or not self.device.strip():
            raise ValueError(f"`device` must be a device name, got {self.device!r}")
        resolve_device(self.device)  # ValueError naming the device when it cannot be used
        if self.max_memory is not None:
            set_("max_memory", parse_memory(self.max_memory))
        if self.batch_size is not None:
            check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.seed, "seed", minimum=0)
        for name in ("progress", "fresh"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"`{name}` must be a bool, got {getattr(self, name)!r}")

    def out_location(self, default: str | Path) -> Path | str:
        """Where the output goes: :attr:`out` (a folder or a URL), or the study's ``default``."""
        return self.out if self.out is not None else Path(default)

    def out_dir(self, default: str | Path) -> Path:
        """The local output folder: :attr:`out`, or the study's ``default`` when none was given.

        Raises:
            ValueError: :attr:`out` is a URL (a study that writes local files cannot use it).
        """
        out = self.out_location(default)
        if not isinstance(out, Path):
            raise ValueError(f"`out` must be a local folder for this study, got the URL {out!r}")
        return out

    def torch_device(self) -> torch.device:
        """:attr:`device` resolved (``"auto"``: CUDA when present, else the CPU)."""
        from smoothsal.execution.devices import resolve_device

        return resolve_device(self.device)

    def build_method(
        self, name: str, model: nn.Module, smooth: SmoothSpec | None = None, *, image_size: int | None = None,
        **settings: MethodSetting,
    ) -> Attribution | Smooth:
        """:func:`smoothsal.registry.build_method` with this run's ``batch_size`` and ``max_memory``."""
        return build_method(name, model, smooth, image_size=image_size, batch_size=self.batch_size,
                            max_memory=self.max_memory, **settings)  # fmt: skip

    def method_factory(
        self, name: str, smooth: SmoothSpec | None = None, *, image_size: int | None = None, **settings: MethodSetting
    ) -> Callable[[nn.Module], Attribution | Smooth]:
        """:func:`smoothsal.registry.method_factory` with this run's ``batch_size`` and ``max_memory``."""
        return method_factory(name, smooth, image_size=image_size, batch_size=self.batch_size,
                              max_memory=self.max_memory, **settings)  # fmt: skip

    def predict(self, model: nn.Module, inputs: Tensor) -> Tensor:
        """The model's logits ``[B, classes]`` (:func:`smoothsal.execution.calls.predict`), run with this
        run's ``batch_size`` and ``max_memory``."""
        from smoothsal.execution.calls import predict

        return predict(model, inputs, batch_size=self.batch_size, max_memory=self.max_memory)

    def attribution_maps(self, method: Attribution | Smooth, inputs: Tensor, targets: Tensor | None = None) -> Tensor:
        """``method``'s maps of ``inputs`` (:func:`smoothsal.metrics.attribution_maps`), run with this
        run's ``batch_size`` and ``max_memory``."""
        from smoothsal.metrics import attribution_maps

        return attribution_maps(method, inputs, targets, batch_size=self.batch_size, max_memory=self.max_memory)

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with ``changes`` (checked again)."""
        return replace(self, **changes)

    def as_dict(self) -> JSONObject:
        """Every option, JSON-ready (for the summaries a study writes)."""
        return {"out": None if self.out is None else str(self.out), "device": self.device, "max_memory": self.max_memory,
                "batch_size": self.batch_size, "seed": self.seed, "progress": self.progress, "fresh": self.fresh}  # fmt: skip
