"""``smoothsal explain-dataset``: explain a whole image folder across processes and machines.

Shards the images of a folder (or an ImageFolder layout) over the ranks of a ``torchrun`` job
(gloo on CPU, NCCL on GPU; one process without torchrun), runs every method raw and smoothed
(:class:`~smoothsal.smoothing.Smooth`, through :func:`smoothsal.registry.build_method`) and writes
the maps with their metadata into a chunked, resumable Zarr v3 map store, on a folder or an
fsspec URL, that several writers fill at once and readers open lazily (:mod:`.store`;
:func:`open_store`, or ``zarr.open_group`` / ``xarray.open_zarr``). Files of the folder that
cannot be read as images are left out and listed (:mod:`.validate`; ``strict`` makes them an
error before any compute). ``smoothsal tradeoff --maps`` and ``smoothsal evaluate --maps`` read
their maps from such a store, and ``smoothsal report`` summarises it.

Steps: :mod:`.config` (settings) → :mod:`.validate` (readable images) → :mod:`.compute` (units
into the store) → :mod:`.store` (the reader API). ``smoothsal explain-dataset`` is :mod:`.command`.

Example:
    >>> from smoothsal.studies.explain_dataset import ExplainDatasetConfig, open_store, run_explain_dataset
    >>> from smoothsal.studies.options import RunOptions
    >>> run_explain_dataset(ExplainDatasetConfig("images/", model="lite0"), RunOptions(out="maps/"))  # doctest: +SKIP
    >>> open_store("maps/").select(method="grad", sigma=0.15).load().shape  # doctest: +SKIP
"""

from smoothsal.studies.explain_dataset.command import register_cli
from smoothsal.studies.explain_dataset.config import ExplainDatasetConfig, scan_images
from smoothsal.studies.explain_dataset.run import run_explain_dataset
from smoothsal.studies.explain_dataset.store import MapEntry, MapSelection, MapStore, MapStoreError, image_seed, open_store

__all__ = [
    "ExplainDatasetConfig",
    "MapEntry",
    "MapSelection",
    "MapStore",
    "MapStoreError",
    "image_seed",
    "open_store",
    "register_cli",
    "run_explain_dataset",
    "scan_images",
]
