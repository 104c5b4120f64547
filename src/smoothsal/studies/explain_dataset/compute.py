r"""Compute step of ``smoothsal explain-dataset``: shard the images over the ranks, fill the store.

**Work.** The images (sorted by id) are cut into chunks of ``chunk_size``; chunk ``c`` goes to
rank ``c mod world_size``. A *unit* is one chunk × method × σ; it is computed by one rank and
committed to the store as one chunk file plus one manifest line
(:class:`~smoothsal.studies.explain_dataset.store.MapWriter`). On start every rank reads the
manifests and skips the committed units, so a job killed anywhere resumes where it stopped,
whatever the number of ranks of the new job.

**Same maps whatever the number of ranks.** A map depends on its image, its chunk (the raw
maps and the predicted targets of a chunk are computed in one batch: the chunks are fixed by
``chunk_size``, not by the ranks), the settings and its *image seed*
(:func:`~smoothsal.studies.explain_dataset.store.image_seed`, from the global seed and the
image id): a smoothed map is :class:`~smoothsal.smoothing.Smooth` on that one image, batched
over its noisy samples, seeded with its image seed. The rows per model call are fixed for the
job (:func:`job_rows`, chosen on rank 0 and sent to all): ``batch_size``, or the element budget of
:func:`smoothsal.execution.calls.rows_per_call`, capped by ``--max-memory`` over the measured memory of a
row; never the timing-learned automatic choice, which may change the last bits of a CPU convolution.

**Cost.** Every image costs, per model, :math:`\sum_{m}\left(c_m + |\Sigma_{>0}|\, n\, r_m\right)`
forward+backward passes, where :math:`c_m` is method ``m``'s raw cost (1 for gradients, ``steps``
for IG), :math:`r_m` its cost per noisy sample (IG: its smoothed ``steps``) and
:math:`|\Sigma_{>0}|` the number of σ > 0; so the job grows linearly in images × methods × σ × n,
and ``torchrun`` divides it by the number of ranks (up to a chunk per rank).

**Distributed.** Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) the process group is started
with gloo on CPU and NCCL on CUDA (each rank on its ``LOCAL_RANK`` GPU); without torchrun the job
is one process and no process group is made. Rank 0 prepares the store; every rank checks that
it loaded the same weights; rank 0 shows one progress bar for the whole job (it counts the maps
every rank commits to the manifests) and prints images/s and maps/s per rank and overall.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from smoothsal.metrics._base import attribution_maps
from smoothsal.studies.explain_dataset.config import ExplainDatasetConfig
from smoothsal.studies.explain_dataset.store import (
    ManifestTail,
    MapStoreError,
    MapWriter,
    append_run,
    image_seed,
    model_key,
    prepare_store,
    register_model,
    unit_key,
)

__all__ = ["DistContext", "JobResult", "compute_dataset", "init_distributed", "rows_for", "weights_digest"]


# ---- the process group ---------------------------------------------------------------------------
@dataclass
class DistContext:
    """Rank and world size of this process; collective calls are no-ops when ``initialized`` is False.

    ``DistContext(rank=1, world=2)`` without a process group runs rank 1's share alone (tests).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialized: bool = False
    backend: str | None = None

    def barrier(self) -> None:
        if self.initialized:
            import torch.distributed as dist

            dist.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (rank order)."""
        if not self.initialized:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.initialized:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def wait_for_all(self, poll: Callable[[], None] | None = None, every: float = 0.25) -> None:
        """A barrier during which rank 0 keeps calling ``poll`` (its progress bar)."""
        if not self.initialized:
            return
        import torch.distributed as dist

        work = dist.barrier(async_op=True)
        while poll is not None and not work.is_completed():
            poll()
            time.sleep(every)
        work.wait()

    def close(self) -> None:
        if self.initialized:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.initialized = False


def under_torchrun() -> bool:
    """Whether this process was started by torchrun (or another launcher setting RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ


def init_distributed(device: torch.device) -> tuple[DistContext, torch.device]:
    """The process group of a torchrun job (gloo on CPU, NCCL on CUDA), or a one-process context.

    Returns the context and the device of this rank (``cuda`` becomes ``cuda:LOCAL_RANK``).
    """
    if not under_torchrun():
        return DistContext(), device
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank, world, local, True, backend), device


# ---- helpers ---------------------------------------------------------------------------------------
def weights_digest(model: nn.Module) -> str:
    """SHA-1 of the model's state (names and bytes): ranks and reruns check they explain one model."""
    h = hashlib.sha1()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def rows_for(example: Tensor, batch_size: int | None) -> int:
    """Model rows per call: ``batch_size``, or the fixed element budget of ``rows_per_call``."""
    from smoothsal.execution.calls import rows_per_call

    return batch_size if batch_size is not None else rows_per_call(example, 1 << 30, None)


def job_rows(model: nn.Module, example: Tensor, batch_size: int | None) -> int:
    """The rows per model call of the whole job (computed once, on rank 0, and sent to every rank).

    ``batch_size`` if given; else :func:`rows_for`'s element budget, capped, when ``--max-memory``
    was given, at the budget over the measured activation memory of one row of a forward+backward
    pass (:func:`smoothsal.execution.measure.row_memory`). Fixed for the job, so the maps do not depend on
    timings or on which rank computed them.
    """
    from smoothsal.execution import measure, memory

    rows = rows_for(example, batch_size)
    if batch_size is not None or memory.get_max_memory() is None:
        return rows

    def forward_backward(x: Tensor) -> Tensor:
        x = x.detach().requires_grad_(True)
        return torch.autograd.grad(model(x)[:, 0].sum(), x)[0]

    per_row = measure.row_memory(forward_backward, example.unsqueeze(0).repeat(2, *([1] * example.dim())))
    return max(1, min(rows, memory.memory_budget(example.device) // per_row))


def _takes_batch_size(name: str) -> bool:
    from smoothsal.registry import method_spec

    try:
        return "batch_size" in inspect.signature(method_spec(name).factory).parameters
    except (TypeError, ValueError):
        return False


def _load_chunk(config: ExplainDatasetConfig, ids: list[str], size: int) -> Tensor:
    from smoothsal.datasets.photos import load_image

    return torch.cat([load_image(config.data_dir / image_id, size).tensor for image_id in ids])


@dataclass
class JobResult:
    """What :func:`compute_dataset` did.

    Attributes:
        ranks: one dict per rank (``rank, host, images, maps, units, seconds``), rank order.
        seconds: the job's compute time (the slowest rank's).
        images, maps: computed by this job, all ranks together.
        total_maps: maps of this model in the store now (computed before or now).
        model: the model's spec; model_key: its key in the store.
        lines: the throughput lines (per rank, then overall).
    """

    ranks: list[dict[str, Any]]
    seconds: float
    images: int
    maps: int
    total_maps: int
    model: str
    model_key: str
    lines: list[str] = field(default_factory=list)


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


def throughput_lines(ranks: list[dict[str, Any]]) -> list[str]:
    """``rank r: I images, M maps in S s (… images/s, … maps/s)`` per rank, then ``overall: ...``."""
    lines = [
        f"rank {r['rank']} ({r['host']}): {r['images']} images, {r['maps']} maps in {r['seconds']:.2f} s "
        f"({_rate(r['images'], r['seconds']):.2f} images/s, {_rate(r['maps'], r['seconds']):.2f} maps/s)"
        for r in ranks
    ]
    seconds = max((r["seconds"] for r in ranks), default=0.0)
    images, maps = sum(r["images"] for r in ranks), sum(r["maps"] for r in ranks)
    lines.append(
        f"overall ({len(ranks)} rank{'s' if len(ranks) != 1 else ''}): {images} images, {maps} maps in {seconds:.2f} s "
        f"({_rate(images, seconds):.2f} images/s, {_rate(maps, seconds):.2f} maps/s)"
    )
    return lines


def _collective_check(ctx: DistContext, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 (on every rank without a process group); every rank raises its error."""
    outcome: tuple[str, Any] = ("ok", None)
    if ctx.rank == 0 or not ctx.initialized:
        try:
            outcome = ("ok", fn())
        except (MapStoreError, ValueError, OSError) as err:
            outcome = ("error", str(err))
    outcome = ctx.broadcast(outcome)
    if outcome[0] == "error":
        raise MapStoreError(outcome[1])
    return outcome[1]


# ---- the job ---------------------------------------------------------------------------------------
def compute_dataset(
    config: ExplainDatasetConfig,
    *,
    ctx: DistContext | None = None,
    echo: Callable[[str], Any] | None = print,
) -> JobResult:
    """Explain every image of ``config.data_dir`` into the store ``config.out_dir`` (resuming).

    Args:
        config: the settings.
        ctx: this process's rank; ``None`` = start the process group of a torchrun job, or run
            as one process without torchrun. A process group started here is closed at the end.
        echo: receives rank 0's messages and throughput lines (``None``: silent).
    Returns:
        :class:`JobResult` (the same on every rank).
    """
    import smoothsal
    from smoothsal.execution.calls import predict
    from smoothsal.execution.devices import resolve_device
    from smoothsal.registry import build_method
    from smoothsal.models.zoo import load_model

    device = resolve_device(config.device)
    own_group = ctx is None
    if ctx is None:
        ctx, device = init_distributed(device)
    try:
        say = echo if (echo is not None and ctx.rank == 0) else (lambda _: None)
        loaded = load_model(config.model, config.image_size)
        model = loaded.model.to(device).eval()
        size = loaded.image_size
        digest = weights_digest(model)
        digests = ctx.gather(digest)
        if len(set(digests)) > 1:
            raise MapStoreError(
                f"`model` {config.model!r} loaded different weights on different ranks ({sorted(set(digests))}); "
                "a factory must be deterministic (seed it)"
            )
        version = smoothsal.__version__
        store_config = config.store_config(size)
        out = config.out_dir
        _collective_check(ctx, lambda: prepare_store(
            out, store_config, fresh=config.fresh, code_version=version, data_dir=config.data_dir
        ))
        ctx.barrier()
        info = {"weights_sha1": digest, "image_size": size, "class_names": loaded.class_names,
                "code_version": version}  # fmt: skip
        key = _collective_check(ctx, lambda: register_model(out, config.model, info))
        key = key or model_key(config.model)
        writer = MapWriter(out, key, ctx.rank)
        tail = ManifestTail(out, key) if ctx.rank == 0 else None
        done = writer.committed()

        ids, labels, classes = list(config.dataset.ids), list(config.dataset.labels), config.dataset.classes
        n_chunks = math.ceil(len(ids) / config.chunk_size)
        grid = [(m, s) for m in config.methods for s in config.noise_levels]
        chunk_ids = lambda c: ids[c * config.chunk_size : (c + 1) * config.chunk_size]  # noqa: E731
        pending = {
            c: [(m, s) for m, s in grid if unit_key(key, c, m, s) not in done] for c in range(n_chunks)
        }
        job_total = sum(len(chunk_ids(c)) * len(units) for c, units in pending.items())
        all_maps = len(ids) * len(grid)
        mine = [c for c in range(ctx.rank, n_chunks, ctx.world) if pending[c]]
        if ctx.rank == 0:
            say(
                f"{len(ids)} images ({config.dataset.layout}) × {len(config.methods)} methods × "
                f"{len(config.noise_levels)} σ = {all_maps} maps for {config.model}; {all_maps - job_total} already in "
                f"{out}, {job_total} to compute on {ctx.world} rank{'s' if ctx.world != 1 else ''} ({device})"
            )
        ctx.barrier()  # the progress tail is set before any rank writes

        rows = 1
        if ctx.rank == 0 or not ctx.initialized:
            rows = job_rows(model, _load_chunk(config, ids[:1], size).to(device)[0], config.batch_size)
        rows = ctx.broadcast(rows)

        bar = None
        if ctx.rank == 0 and config.progress and job_total:
            from tqdm.auto import tqdm

            bar = tqdm(total=job_total, desc="maps", unit="map", dynamic_ncols=True)

        def refresh() -> None:
            if bar is not None and tail is not None:
                bar.n = min(job_total, tail.poll())
                bar.refresh()

        start = time.perf_counter()
        counts = {"images": 0, "maps": 0, "units": 0}
        n_classes: int | None = None  # with `target` 'label': the model's classes, learnt on the first chunk
        for c in mine:
            cids = chunk_ids(c)
            x = _load_chunk(config, cids, size).to(device)  # [K, 3, S, S]
            if config.target == "label":
                targets = torch.tensor([labels[i] for i in range(c * config.chunk_size, c * config.chunk_size + len(cids))])
                if n_classes is None:
                    n_classes = int(predict(model, x[:1], batch_size=rows).shape[1])
                if int(targets.max()) >= n_classes:
                    raise ValueError(f"`target` 'label': class index {int(targets.max())} but the model has {n_classes} classes")
            else:
                targets = predict(model, x, batch_size=rows).argmax(dim=1).cpu()
            seeds = [image_seed(config.seed, i) for i in cids]
            base = [
                {"image": i, "label": labels[c * config.chunk_size + j],
                 "class_name": classes[labels[c * config.chunk_size + j]] if labels[c * config.chunk_size + j] is not None else None,
                 "target": int(targets[j]), "seed": seeds[j]}
                for j, i in enumerate(cids)
            ]  # fmt: skip
            for method, sigma in pending[c]:
                extra = {"batch_size": rows} if _takes_batch_size(method) else {}
                if sigma == 0:
                    explainer = build_method(method, model, image_size=size, **extra)
                    arr = attribution_maps(explainer, x, targets.to(device), batch_size=rows).float().cpu().numpy()
                    entries = [{**b, "n_samples": 0, "rse": None} for b in base]
                else:
                    parts, entries = [], []
                    for j in range(len(cids)):
                        explainer = build_method(
                            method, model, config.smooth_kwargs(sigma, seeds[j], rows), image_size=size, **extra
                        )
                        est = explainer.estimate(x[j : j + 1], targets[j : j + 1].to(device))
                        parts.append(est.attributions.detach().float().cpu())
                        entries.append({**base[j], "n_samples": int(est.n_samples[0]),
                                        "rse": float(est.relative_stderr()[0])})  # fmt: skip
                    arr = torch.cat(parts).numpy()
                record = {"chunk": c, "method": method, "sigma": float(sigma), "model_spec": config.model,
                          "code_version": version, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
                writer.write(unit_key(key, c, method, sigma), np.asarray(arr), record, entries)
                counts["maps"] += len(cids)
                counts["units"] += 1
                refresh()
            counts["images"] += len(cids)
        seconds = time.perf_counter() - start
        ctx.wait_for_all(refresh if bar is not None else None)
        refresh()
        if bar is not None:
            bar.close()
        mine_stats = {"rank": ctx.rank, "host": socket.gethostname(), "device": str(device), **counts, "seconds": seconds}
        ranks = ctx.gather(mine_stats)
        lines = throughput_lines(ranks)
        done = writer.committed()
        total_maps = sum(len(chunk_ids(c)) for c in range(n_chunks) for m, s in grid if unit_key(key, c, m, s) in done)
        result = JobResult(
            ranks=ranks, seconds=max(r["seconds"] for r in ranks), images=sum(r["images"] for r in ranks),
            maps=sum(r["maps"] for r in ranks), total_maps=total_maps, model=config.model, model_key=key, lines=lines,
        )  # fmt: skip
        if ctx.rank == 0:
            append_run(out, {"model": config.model, "world_size": ctx.world, "backend": ctx.backend, "rows_per_call": rows,
                             "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "ranks": ranks,
                             "seconds": result.seconds, "images": result.images, "maps": result.maps,
                             "settings": config.as_dict()})  # fmt: skip
            for line in lines:
                say(line)
        return result
    finally:
        if own_group:
            ctx.close()
