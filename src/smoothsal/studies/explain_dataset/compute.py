r"""Compute step of ``smoothsal explain-dataset``: shard the images over the ranks, fill the store.

**Work.** First every image of the folder is checked (:mod:`.validate`; each rank checks a share
and the ranks gather the results): a file that cannot be read is left out with a warning (an
error before any compute with ``strict``). The readable images (sorted by id) are cut into chunks
of ``chunk_size``; chunk ``c`` goes to rank ``c mod world_size``. A *unit* is one chunk × method
× σ; it is computed by one rank and committed to the Zarr store as the chunk's rows of its
(model, method, σ) arrays plus, last, its commit marker
(:class:`~smoothsal.studies.explain_dataset.store.MapWriter`). On start every rank lists the
markers and skips the committed units, so a job killed anywhere resumes where it stopped,
whatever the number of ranks of the new job.

**Same maps whatever the number of ranks.** A map depends on its image, its chunk (the raw
maps and the predicted targets of a chunk are computed in one batch: the chunks are fixed by
``chunk_size``, not by the ranks), the settings and its *image seed*
(:func:`~smoothsal.studies.explain_dataset.store.image_seed`, from the global seed and the
image id): a smoothed map is :class:`~smoothsal.smoothing.Smooth` on that one image, batched
over its noisy samples, seeded with its image seed. The rows per model call are fixed for the
job (:func:`job_batch_size`, chosen on rank 0 and sent to all): ``batch_size``, else the size the
store's last finished job used, else the size the learned policy settles on before the job
(:func:`smoothsal.execution.runner.settle`); never learned during the job, which could change the
last bits of a CPU convolution from one map to the next.

**Cost.** Every image costs, per model, :math:`\sum_{m}\left(c_m + |\Sigma_{>0}|\, n\, r_m\right)`
forward+backward passes, where :math:`c_m` is method ``m``'s raw cost (1 for gradients, ``steps``
for IG), :math:`r_m` its cost per noisy sample (IG: its smoothed ``steps``) and
:math:`|\Sigma_{>0}|` the number of σ > 0; so the job grows linearly in images × methods × σ × n,
and ``torchrun`` divides it by the number of ranks (up to a chunk per rank).

**Distributed.** Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) the process group is started
with gloo on CPU and NCCL on CUDA (each rank on its ``LOCAL_RANK`` GPU); without torchrun the job
is one process and no process group is made. Rank 0 prepares the store and creates the model's
arrays; every rank checks that it loaded the same weights; rank 0 shows one progress bar for the
whole job (it counts the markers every rank commits) and prints images/s and maps/s per rank and
overall.
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from torch import Tensor, nn

from smoothsal.execution.memory import MemorySpec
from smoothsal.metrics._base import attribution_maps
from smoothsal.studies.explain_dataset.config import DEFAULT_OUT, DatasetIndex, ExplainDatasetConfig
from smoothsal.studies.options import RunOptions
from smoothsal.studies.explain_dataset.store import (
    MapStoreError,
    MapWriter,
    image_seed,
    last_batch_size,
    model_key,
    prepare_store,
    register_model,
    sigma_key,
)

__all__ = ["DistContext", "JobResult", "RankStats", "compute_dataset", "init_distributed", "job_batch_size", "weights_digest"]


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


def job_batch_size(
    model: nn.Module, example: Tensor, batch_size: int | None, out: str | os.PathLike[str], spec: str,
    max_memory: MemorySpec = None,
) -> int:
    """The model rows per call of the whole job (computed once, on rank 0, and sent to every rank).

    ``batch_size`` if given; else the ``batch_size`` of the last finished job of this model
    (``spec``) in the store at ``out`` (a resumed job groups its rows as the maps already there);
    else the size :class:`~smoothsal.execution.policy.LearnedRows` settles on for a
    forward+backward of rows like ``example`` under ``max_memory`` (``--max-memory``;
    :func:`smoothsal.execution.runner.settle`: throwaway calls before the job). Fixed for the job,
    so the maps do not depend on timings during it or on which rank computed them.
    """
    from smoothsal.execution.policy import LearnedRows
    from smoothsal.execution.runner import settle

    if batch_size is not None:
        return batch_size
    rows = last_batch_size(out, spec)
    if rows is not None:
        return rows

    def forward_backward(k: int) -> Tensor:
        x = example.unsqueeze(0).repeat(k, *([1] * example.dim())).requires_grad_(True)
        return torch.autograd.grad(model(x)[:, 0].sum(), x)[0]

    return settle(LearnedRows(model, example, "explain-dataset", max_memory=max_memory), forward_backward)


def _load_chunk(config: ExplainDatasetConfig, ids: list[str], size: int) -> Tensor:
    from smoothsal.datasets.photos import load_image

    return torch.cat([load_image(config.data_dir / image_id, size).tensor for image_id in ids])


class RankStats(TypedDict):
    """What one rank did in a job (gathered on every rank; the throughput lines read it)."""

    rank: int
    host: str
    device: str
    images: int
    maps: int
    units: int
    seconds: float


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
        skipped: ``{"image", "reason"}`` of each file of the folder left out (cannot be read as an image).
    """

    ranks: list[RankStats]
    seconds: float
    images: int
    maps: int
    total_maps: int
    model: str
    model_key: str
    lines: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


def throughput_lines(ranks: list[RankStats]) -> list[str]:
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
def readable_images(config: ExplainDatasetConfig, ctx: DistContext) -> tuple[DatasetIndex, list[dict[str, str]]]:
    """The folder's images less the files that cannot be read, and ``{"image", "reason"}`` of each file left out.

    Each rank checks its share (every rank's share without a process group, so that ranks run one
    after the other agree) and the ranks gather the results. With ``config.strict`` a file left
    out is a :class:`ValueError` instead, raised on every rank before any compute.
    """
    from smoothsal.studies.explain_dataset.validate import find_unreadable

    ds = config.dataset
    share = list(ds.ids[ctx.rank :: ctx.world]) if ctx.initialized else list(ds.ids)
    bad = sorted(b for part in ctx.gather(find_unreadable(ds.root, share)) for b in part)
    skipped = [{"image": name, "reason": f"not an image file (its ending {Path(name).suffix or '(none)'})"} for name in ds.other]
    skipped += [{"image": image_id, "reason": reason} for image_id, reason in bad]
    skipped.sort(key=lambda s: s["image"])
    if skipped and config.strict:
        raise ValueError(
            f"`data_dir`: {len(skipped)} file(s) of {ds.root} cannot be read as images (--strict): "
            + "; ".join(f"{s['image']} ({s['reason']})" for s in skipped[:20]) + ("; ..." if len(skipped) > 20 else "")
        )
    kept = ds.without(image_id for image_id, _ in bad)
    if not kept.ids:
        raise ValueError(f"`data_dir`: none of the {len(ds.ids)} image files of {ds.root} can be read")
    return kept, skipped


def _skipped_line(skipped: list[dict[str, str]], n_files: int) -> str:
    names = ", ".join(f"{s['image']} ({s['reason']})" for s in skipped[:10]) + (", ..." if len(skipped) > 10 else "")
    return f"skipped {len(skipped)} of {n_files} files that cannot be read as images: {names}"


def _command_line() -> str:
    """The command that started this job, as typed (``smoothsal explain-dataset ...``), or the API's name."""
    import shlex
    import sys

    if sys.argv and Path(sys.argv[0]).name in ("smoothsal", "cli.py", "__main__.py"):
        return shlex.join(["smoothsal", *sys.argv[1:]])
    return "smoothsal.studies.explain_dataset.run_explain_dataset (Python API)"


def compute_dataset(
    config: ExplainDatasetConfig,
    options: RunOptions | None = None,
    *,
    ctx: DistContext | None = None,
    echo: Callable[[str], Any] | None = print,
) -> JobResult:
    """Explain every image of ``config.data_dir`` into the map store ``options.out`` (resuming).

    Args:
        config: the settings.
        options: how it runs (the store: a folder or an fsspec URL, device, rows per call, memory
            budget, global seed, progress bar, ``fresh``); ``None``:
            :class:`~smoothsal.studies.options.RunOptions` defaults (``out/dataset``).
        ctx: this process's rank; ``None`` = start the process group of a torchrun job, or run
            as one process without torchrun. A process group started here is closed at the end.
        echo: receives rank 0's messages and throughput lines (``None``: silent).
    Returns:
        :class:`JobResult` (the same on every rank).
    """
    import smoothsal
    from smoothsal.execution.calls import predict
    from smoothsal.models.zoo import load_model
    from smoothsal.registry import build_method, method_spec

    options = options if options is not None else RunOptions()
    out = config.check_out(options.out_location(DEFAULT_OUT))
    device = options.torch_device()
    own_group = ctx is None
    if ctx is None:
        ctx, device = init_distributed(device)
    try:
        if ctx.initialized and ctx.world > 1 and str(out).startswith("memory://"):
            raise ValueError(
                f"`out`: {out} lives in one process's memory; the {ctx.world} ranks of a torchrun job "
                "need a store they all reach (a shared folder, or an object store URL)"
            )
        say = echo if (echo is not None and ctx.rank == 0) else (lambda _: None)
        dataset, skipped = readable_images(config, ctx)  # before the model: --strict fails before any compute
        if skipped:
            line = _skipped_line(skipped, len(config.dataset.ids) + len(config.dataset.other))
            if ctx.rank == 0:
                warnings.warn(line, UserWarning, stacklevel=2)
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
        command = _command_line()
        ids, labels = list(dataset.ids), list(dataset.labels)
        _collective_check(ctx, lambda: prepare_store(
            out, config.store_config(size, options.seed, dataset, [s["image"] for s in skipped]), images=ids,
            labels=labels, fresh=options.fresh, code_version=version, data_dir=config.data_dir, skipped=skipped, command=command,
        ))  # fmt: skip
        ctx.barrier()

        rows = 1
        if ctx.rank == 0 or not ctx.initialized:
            example = _load_chunk(config, ids[:1], size).to(device)[0]
            rows = job_batch_size(model, example, options.batch_size, out, config.model, options.max_memory)
        rows = ctx.broadcast(rows)

        grid = [(m, sigma_key(s)) for m in config.methods for s in config.noise_levels]
        info = {"weights_sha1": digest, "image_size": size, "class_names": loaded.class_names,
                "code_version": version}  # fmt: skip
        groups = {
            (m, s): {
                "model": config.model, "model_key": model_key(config.model), "method": m,
                "method_label": method_spec(m).label_for(s > 0),
                "method_settings": method_spec(m).settings(smoothed=s > 0, image_size=size), "sigma": s,
                "smooth": None if s == 0 else {
                    "noise_level": s, "n_samples": config.n_samples, "tol": config.tol, "statistic": "mean",
                    "seed": options.seed, "seed_rule": "each image's seed: image_seed(seed, image id) = 63 bits of "
                                                      "SHA-256 of '<seed>:<image id>'"},
                "n_images": len(ids), "chunk_size": config.chunk_size, "image_size": size, "target": config.target,
                "weights_sha1": digest, "command": command, "code_version": version, "created": time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            for m, s in grid
        }  # fmt: skip

        def create() -> str:
            try:
                return register_model(out, config.model, info, groups=groups)
            except ValueError as err:
                if "map_shapes" not in str(err):
                    raise
            # the arrays need each method's map shape: one raw map per method of the first image
            x0 = _load_chunk(config, ids[:1], size).to(device)
            t0 = predict(model, x0, batch_size=rows).argmax(dim=1)
            shapes = {m: tuple(build_method(m, model, image_size=size).attribute(x0, target=t0).shape[1:])
                      for m in config.methods}  # fmt: skip
            return register_model(out, config.model, info, groups=groups, map_shapes=shapes)

        key = _collective_check(ctx, create) or model_key(config.model)
        ctx.barrier()  # every array exists before any rank writes
        writer = MapWriter(out, key, ctx.rank)
        done = writer.committed(grid)

        n_chunks = math.ceil(len(ids) / config.chunk_size)
        chunk_ids = lambda c: ids[c * config.chunk_size : (c + 1) * config.chunk_size]  # noqa: E731
        pending = {c: [(m, s) for m, s in grid if (m, s, c) not in done] for c in range(n_chunks)}
        job_total = sum(len(chunk_ids(c)) * len(units) for c, units in pending.items())
        all_maps = len(ids) * len(grid)
        mine = [c for c in range(ctx.rank, n_chunks, ctx.world) if pending[c]]
        if ctx.rank == 0:
            say(
                f"{len(ids)} images ({dataset.layout}) × {len(config.methods)} methods × "
                f"{len(config.noise_levels)} σ = {all_maps} maps for {config.model}; {all_maps - job_total} already in "
                f"{out}, {job_total} to compute on {ctx.world} rank{'s' if ctx.world != 1 else ''} ({device})"
            )

        bar = None
        if ctx.rank == 0 and options.progress and job_total:
            from tqdm.auto import tqdm

            bar = tqdm(total=job_total, desc="maps", unit="map", dynamic_ncols=True)
        polled = {"at": 0.0}
        before = all_maps - job_total

        def refresh(force: bool = False) -> None:
            """Rank 0's bar: the markers every rank committed (one listing per (method, σ), at most once a second)."""
            if bar is None or (not force and time.monotonic() - polled["at"] < 1.0):
                return
            polled["at"] = time.monotonic()
            bar.n = max(0, min(job_total, writer.committed_maps(grid, len(ids)) - before))
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
            seeds = [image_seed(options.seed, i) for i in cids]
            for method, sigma in pending[c]:
                if sigma == 0:
                    explainer = build_method(method, model, image_size=size, batch_size=rows)
                    arr = attribution_maps(explainer, x, targets.to(device), batch_size=rows).float().cpu().numpy()
                    n_used, rse = [0] * len(cids), [float("nan")] * len(cids)
                else:
                    parts, n_used, rse = [], [], []
                    for j in range(len(cids)):
                        explainer = build_method(
                            method, model, config.smooth_spec(sigma, seeds[j]), image_size=size, batch_size=rows
                        )
                        est = explainer.estimate(x[j : j + 1], targets[j : j + 1].to(device))
                        parts.append(est.attributions.detach().float().cpu())
                        n_used.append(int(est.n_samples[0]))
                        rse.append(float(est.relative_stderr()[0]))
                    arr = torch.cat(parts).numpy()
                vectors = {"target": [int(t) for t in targets], "seed": seeds, "n_samples": n_used, "rse": rse}
                writer.write(method, sigma, c, np.asarray(arr), vectors)
                counts["maps"] += len(cids)
                counts["units"] += 1
                refresh()
            counts["images"] += len(cids)
        seconds = time.perf_counter() - start
        ctx.wait_for_all(refresh if bar is not None else None)
        refresh(force=True)
        if bar is not None:
            bar.close()
        mine_stats = RankStats(rank=ctx.rank, host=socket.gethostname(), device=str(device), images=counts["images"],
                               maps=counts["maps"], units=counts["units"], seconds=seconds)  # fmt: skip
        ranks = ctx.gather(mine_stats)
        lines = throughput_lines(ranks)
        total_maps = writer.committed_maps(grid, len(ids))
        result = JobResult(
            ranks=ranks, seconds=max(r["seconds"] for r in ranks), images=sum(r["images"] for r in ranks),
            maps=sum(r["maps"] for r in ranks), total_maps=total_maps, model=config.model, model_key=key, lines=lines,
            skipped=skipped,
        )  # fmt: skip
        if ctx.rank == 0:
            writer.add_run({"model": config.model, "world_size": ctx.world, "backend": ctx.backend, "batch_size": rows,
                            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "ranks": ranks,
                            "seconds": result.seconds, "images": result.images, "maps": result.maps,
                            "skipped": len(skipped), "command": command, "code_version": version,
                            "settings": {**config.as_dict(), **options.as_dict()}})  # fmt: skip
            for line in lines:
                say(line)
            if skipped:
                say(_skipped_line(skipped, len(config.dataset.ids) + len(config.dataset.other)))
        return result
    finally:
        if own_group:
            ctx.close()
