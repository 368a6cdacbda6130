"""Prepared datasets as Ray Datasets: one split, optionally one sample and a few-shot subset.

``mixhic prepare`` writes ``<data_dir>/<dataset>/*.parquet`` (dataset = pretrain | hic |
loops | cage) and ``<data_dir>/manifest.json``. :func:`open_split` reads one dataset with
the split (and sample) filter pushed into the Parquet read, keeps a seeded deterministic
``train_fraction`` of the rows with a vectorised hash of the row keys (no per-row Python),
and selects the columns a recipe needs. Workers then stream batches with
``ray.train.get_dataset_shard(name).iter_torch_batches(...)``.

Geometry (W, C, L) is read from the Parquet schema's fixed-shape tensor types, so a model
always matches the data it is trained on.
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from mixhic.core.errors import MixHicError
from mixhic.pipelines.manifest import read_manifest

__all__ = [
    "KEY_COLUMNS",
    "TARGET_COLUMN",
    "DataGeometry",
    "dataset_uri",
    "dataset_for_task",
    "read_geometry",
    "dataset_schema",
    "anchor_offsets",
    "data_meta",
    "fraction_mask",
    "keep_fraction",
    "open_split",
    "split_rows",
]

log = logging.getLogger(__name__)

#: Columns that identify a row (for deterministic, order-free evaluation).
KEY_COLUMNS = ("sample", "chrom", "x_start", "y_start")
#: The target column of each fine-tuning task (``hic`` is both input and target).
TARGET_COLUMN = {"hic": "hic", "loops": "loop", "cage": "cage"}


def dataset_for_task(task: str | None) -> str:
    """The dataset a recipe reads: ``pretrain`` for pretraining, else the task's."""
    if task is None:
        return "pretrain"
    if task not in TARGET_COLUMN:
        raise MixHicError(f"task: expected one of {sorted(TARGET_COLUMN)}, got {task!r}")
    return task


def _norm(data_dir: str) -> str:
    data_dir = str(data_dir)
    if "://" in data_dir:
        return data_dir.rstrip("/")
    return os.path.abspath(os.path.expanduser(data_dir))


def dataset_uri(data_dir: str, dataset: str) -> str:
    """``<data_dir>/<dataset>`` (local path made absolute, URIs kept)."""
    return f"{_norm(data_dir)}/{dataset}"


def _filesystem(uri: str):
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(uri)


@dataclass(frozen=True)
class DataGeometry:
    """Window geometry of a dataset: W Hi-C bins per axis, C tracks, L epi bins per anchor."""

    window_bins: int
    n_tracks: int
    epi_bins: int


def anchor_offsets(x_start, y_start, resolution):
    """Bins from each window's x-anchor to its y-anchor, ``(y_start - x_start) / resolution``
    rounded: the model's ``offset`` input. Works on numpy arrays and torch tensors alike
    (returns the same kind; float)."""
    return ((y_start - x_start) / resolution).round()


def dataset_schema(data_dir: str, dataset: str):
    """The Arrow schema of a prepared dataset (no rows read); clear error if it is absent."""
    import pyarrow.dataset as pds
    import pyarrow.fs as pafs

    uri = dataset_uri(data_dir, dataset)
    fs, root = _filesystem(uri)
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        raise MixHicError(
            f"{uri}: no '{dataset}' dataset in {data_dir} (run `mixhic prepare` first?)"
        )
    return pds.dataset(root, filesystem=fs, format="parquet").schema


def read_geometry(data_dir: str, dataset: str) -> DataGeometry:
    """Geometry from the Parquet schema (tensor shapes ``hic [W, W]``, ``epi [C, 2L]``)."""
    import pyarrow as pa

    uri = dataset_uri(data_dir, dataset)
    schema = dataset_schema(data_dir, dataset)
    shapes = {}
    for name in ("hic", "epi"):
        if name not in schema.names:
            raise MixHicError(f"{uri}: column {name!r} is missing")
        typ = schema.field(name).type
        if not isinstance(typ, pa.FixedShapeTensorType):
            raise MixHicError(f"{uri}: column {name!r} is {typ}, not a fixed-shape tensor")
        shapes[name] = tuple(typ.shape)
    w, w2 = shapes["hic"]
    c, two_l = shapes["epi"]
    if w != w2 or two_l % 2:
        raise MixHicError(f"{uri}: bad tensor shapes hic {shapes['hic']} epi {shapes['epi']}")
    return DataGeometry(window_bins=w, n_tracks=c, epi_bins=two_l // 2)


def data_meta(data_dir: str, dataset: str) -> dict[str, Any]:
    """The ``data`` block of a model directory's ``mixhic.json`` for this dataset:
    geometry from the schema, resolution / bins / tracks / transform from the manifest."""
    geo = read_geometry(data_dir, dataset)
    meta: dict[str, Any] = {
        "window_bins": geo.window_bins,
        "epi_bins": geo.epi_bins,
        "n_tracks": geo.n_tracks,
        "resolution": None,
        "epi_bin": None,
        "tracks": [],
        "epi_transform": None,
        "sample": None,
        "manifest_fingerprint": None,
    }
    try:
        man = read_manifest(_norm(data_dir))
    except Exception as exc:  # manifest unreadable: geometry alone still describes the model
        log.warning("%s: cannot read manifest.json (%s)", data_dir, exc)
        man = None
    if man is not None:
        shapes = man.shapes or {}
        meta["sample"] = man.sample
        meta["manifest_fingerprint"] = man.fingerprint
        for key in ("resolution", "epi_bin", "epi_transform"):
            meta[key] = shapes.get(key)
        meta["tracks"] = [str(t) for t in shapes.get("tracks", [])]
        meta.update(_normalisation(man))
    return meta


def _normalisation(man) -> dict[str, Any]:
    """How the training data was made from the files (Hi-C weight column and transforms,
    missing-track handling), so Serve and ``mixhic predict`` cut inputs the same way."""
    norm = man.params.get("normalize", {})
    hic = man.params.get("inputs", {}).get("hic", {})
    found = {
        "weight": hic.get("weight"),
        "divisive": hic.get("divisive"),
        "multiplier": hic.get("multiplier"),
        "hic_transform": norm.get("hic"),
        "hic_cap": norm.get("hic_cap"),
        "epi_missing": norm.get("epi_missing"),
        "epi_fill": norm.get("epi_fill"),
    }
    keep = ("weight", "divisive", "multiplier")  # None there means "from the file"
    return {k: v for k, v in found.items() if v is not None or k in keep}


# --------------------------------------------------------------------------- few-shot
def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 (wrapping arithmetic)."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def _string_codes(values: np.ndarray) -> np.ndarray:
    """crc32 of each string, computed once per distinct value -> (N,) uint64."""
    uniq, inverse = np.unique(np.asarray(values).astype(str), return_inverse=True)
    codes = np.array([zlib.crc32(u.encode()) for u in uniq], dtype=np.uint64)
    return codes[inverse.reshape(-1)]


def fraction_mask(keys: dict[str, Any], fraction: float, seed: int = 0) -> np.ndarray:
    """Rows to keep for a ``fraction`` subset: a pure function of each row's key.

    keys: ``sample``, ``chrom`` (strings), ``x_start``, ``y_start`` (ints), each (N,).
    The same row is kept for any batching, order or number of workers; subsets are
    nested (the rows kept at 10% are also kept at 50%). Returns (N,) bool.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"train_fraction: must be in (0, 1], got {fraction}")
    n = len(keys["x_start"])
    if fraction >= 1:
        return np.ones(n, dtype=bool)
    with np.errstate(over="ignore"):
        h = _mix64(np.full(n, seed, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15))
        h = _mix64(h ^ _string_codes(keys["sample"]))
        h = _mix64(h ^ _string_codes(keys["chrom"]))
        h = _mix64(h ^ np.asarray(keys["x_start"]).astype(np.int64).astype(np.uint64))
        h = _mix64(h ^ np.asarray(keys["y_start"]).astype(np.int64).astype(np.uint64))
    u = (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)  # uniform in [0, 1)
    return u < fraction


def keep_fraction(batch, fraction: float, seed: int):
    """Ray Data batch function (pyarrow Table in, Table out) applying :func:`fraction_mask`."""
    import pyarrow as pa

    keys = {k: batch.column(k).to_numpy(zero_copy_only=False) for k in KEY_COLUMNS}
    return batch.filter(pa.array(fraction_mask(keys, fraction, seed)))


# --------------------------------------------------------------------------- datasets
def open_split(
    data_dir: str,
    dataset: str,
    split: str,
    *,
    columns: tuple[str, ...] | list[str] | None = None,
    sample: str | None = None,
    train_fraction: float = 1.0,
    seed: int = 0,
):
    """A Ray Dataset of one split of a prepared dataset.

    columns: the columns to keep (default all); ``sample``: keep only that sample's rows;
    ``train_fraction`` < 1: a deterministic subset (see :func:`fraction_mask`).
    """
    import ray.data
    from ray.data.expressions import col

    uri = dataset_uri(data_dir, dataset)
    read_geometry(data_dir, dataset)  # clear error if the dataset is absent or malformed
    ds = ray.data.read_parquet(uri)
    cond = col("split") == split
    if sample is not None:
        cond = cond & (col("sample") == sample)
    ds = ds.filter(expr=cond)
    if train_fraction < 1:
        ds = ds.map_batches(
            keep_fraction,
            batch_format="pyarrow",
            fn_kwargs={"fraction": train_fraction, "seed": seed},
            zero_copy_batch=True,
        )
    if columns is not None:
        ds = ds.select_columns(list(columns))
    return ds


def split_rows(
    data_dir: str,
    dataset: str,
    split: str,
    *,
    sample: str | None = None,
    train_fraction: float = 1.0,
    seed: int = 0,
) -> int:
    """Rows :func:`open_split` yields, counted from the key columns only (cheap)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pds

    fs, root = _filesystem(dataset_uri(data_dir, dataset))
    table = pds.dataset(root, filesystem=fs, format="parquet").to_table(
        columns=["split", *KEY_COLUMNS]
    )
    mask = pc.equal(table.column("split"), split)
    if sample is not None:
        mask = pc.and_(mask, pc.equal(table.column("sample"), sample))
    table = table.filter(mask)
    if train_fraction < 1 and table.num_rows:
        keys = {k: table.column(k).to_numpy(zero_copy_only=False) for k in KEY_COLUMNS}
        return int(fraction_mask(keys, train_fraction, seed).sum())
    return table.num_rows
