"""One chunk of one chromosome -> rows of every dataset, written as Parquet parts.

This is the body of the Ray Data job of ``mixhic prepare``. A chunk is the windows whose
x-anchor starts in bins ``[lo, hi)`` of one chromosome. Per chunk, the worker

1. reads ONE band of the balanced matrix (rows ``[lo, max x + W)``, columns
   ``[lo, max y + W)``; the stored pixels of those rows, through datasets opened once
   per worker) and ONE stretch of every track (the bigWig's intervals in that stretch,
   binned exactly to ``epi_bin``; see ``bigwig_reader.read_track_bins``), and the bin mask;
2. transforms the band and the tracks once (log1p / log2(1+x));
3. slices every window of every dataset from memory with numpy views (no per-window I/O)
   and computes QC (non-zero fraction, masked bins, non-finite, blacklist) for all at once;
   each window's split comes from its extent and the task's split regions (windows
   crossing a split boundary are dropped, ``split_boundary``);
4. writes one Parquet file per dataset, ``part-<chunk_id>.parquet`` (temp name +
   rename), then a completion marker ``_chunks/<chunk_id>.json`` with its row counts.
   A chunk is done iff its marker exists; deterministic names make a redo overwrite,
   never duplicate.

Settings and tasks are plain JSON-able dicts (built by :mod:`mixhic.pipelines.prepare`),
so they travel to any worker of a cluster; files are opened in the worker.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import numpy as np
import pyarrow as pa

from mixhic.pipelines import bigwig_reader, hic_reader, normalize
from mixhic.pipelines.schema import WindowShape, dataset_schema, tensor_column, validate_table
from mixhic.pipelines.normalize import nonzero_fraction
from mixhic.pipelines.windows import (
    SPLIT_NAMES,
    grid_windows,
    negative_quotas,
    sample_negative_mix,
    slice_epi,
    slice_hic,
    window_split_codes,
)

__all__ = ["ChunkWorker", "process_chunk", "write_chunk", "marker_path", "open_handles"]

log = logging.getLogger(__name__)

_WRITE_BATCH = 1 << 20  # values per Parquet write batch (pyarrow's default: 1,024)


def _fs(uri: str):
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(uri if "://" in uri else os.path.abspath(uri))


def marker_path(staging_root: str, chunk_id: str) -> str:
    return f"{staging_root.rstrip('/')}/_chunks/{chunk_id}.json"


def open_handles(settings: dict) -> dict[str, Any]:
    """Open the Hi-C file and the bigWigs named in ``settings`` (in the worker process)."""
    handles: dict[str, Any] = {
        "cooler": hic_reader.open_cooler(settings["hic"]["uri"]),
        "hic_pixels": hic_reader.HicPixels.open(settings["hic"]["uri"]),  # open once per worker
        "tracks": [bigwig_reader.open_track(t["uri"]) for t in settings["tracks"]],
        "cage": None,
    }
    if settings.get("cage_uri"):
        handles["cage"] = bigwig_reader.open_track(settings["cage_uri"], "CAGE track")
    return handles


def _plan(settings: dict, task: dict) -> dict[str, dict[str, np.ndarray]]:
    """Static windows of the chunk (absolute bins); loops hold positives only."""
    w = settings["window_bins"]
    res = settings["hic"]["resolution"]
    n, lo, hi = task["n_bins"], task["lo"], task["hi"]
    plans: dict[str, dict[str, np.ndarray]] = {}
    for name in ("pretrain", "hic"):
        spec = settings["datasets"].get(name)
        if spec is None:
            continue
        x, y = grid_windows(n, w, spec["step_bp"], res, spec["offsets_bp"])
        sel = (x >= lo) & (x < hi)
        plans[name] = {"x": x[sel], "y": y[sel]}
    if "loops" in settings["datasets"]:
        half = w // 2
        i = np.asarray(task.get("loops_i", []), dtype=np.int64)
        j = np.asarray(task.get("loops_j", []), dtype=np.int64)
        plans["loops"] = {"x": i - half, "y": j - half, "i": i, "j": j}
    if "cage" in settings["datasets"]:
        x = np.asarray(task.get("tss_x", []), dtype=np.int64)
        plans["cage"] = {"x": x, "y": x.copy()}
    return plans


def _split_regions(task: dict) -> np.ndarray:
    """(R, 3) ``[start, end, code]`` of the chunk's chromosome (older tasks: one split)."""
    if "split_regions" in task:
        return np.asarray(task["split_regions"], dtype=np.int64).reshape(-1, 3)
    code = SPLIT_NAMES.index(task.get("split", "train"))
    return np.asarray([[0, task["n_bins"] * 10**12, code]] if code else [], np.int64).reshape(-1, 3)


def process_chunk(
    settings: dict, task: dict, handles: dict[str, Any]
) -> tuple[dict[str, pa.Table], dict[str, Any]]:
    """Read the chunk once, slice all windows, run QC; return ``(tables, stats)``.

    ``tables`` maps dataset -> Arrow table (schema-valid, possibly empty); ``stats`` holds
    QC drop counts per dataset and covered bp per track.
    """
    w = settings["window_bins"]
    res = settings["hic"]["resolution"]
    epi_bin = settings["epi_bin"]
    per_bin = res // epi_bin
    n, lo = task["n_bins"], task["lo"]
    chrom = task["chrom"]
    shape = WindowShape(w, len(settings["tracks"]), w * per_bin)
    plans = _plan(settings, task)
    loops = settings["datasets"].get("loops")
    rng = np.random.default_rng([settings["seed"], task["chrom_index"], task["chunk_index"]])

    # ---- extent of the band: every window, plus the negatives' search region
    r1 = c1 = lo
    for p in plans.values():
        if len(p["x"]):
            r1 = max(r1, int(p["x"].max()) + w)
            c1 = max(c1, int(p["y"].max()) + w)
    if loops is not None and len(plans["loops"]["x"]):
        half = w // 2
        r1 = max(r1, min(n, task["hi"] + w))
        c1 = max(c1, min(n, task["hi"] + half + loops["max_bins"] + w))
    stats: dict[str, Any] = {"dropped": {}, "covered_bp": [0] * len(settings["tracks"]), "span_bp": 0,
                             "rows_split": {}}
    if r1 == lo:  # no window in this chunk
        return {name: _empty(settings, name, shape) for name in plans}, stats

    # ---- one read per file
    info = hic_reader.HicInfo(**settings["hic"])
    pi, pj, pv, masked = hic_reader.read_band_pixels(
        handles.get("hic_pixels") or handles["cooler"], info, chrom, lo, r1, c1, mirror=False
    )
    # transform the stored (upper) non-zero pixels only (every transform maps 0 to 0),
    # then scatter them and their mirrors below the diagonal inside the band's rows
    mode = settings["hic_transform"]
    inf = np.isinf(pv)
    low = (pj < r1 - lo) & (pj != pi)
    tv = normalize.hic_transform(pv, "log1p" if mode == "log1p_window_max" else mode,
                                 settings["hic_cap"])
    ncol = c1 - lo
    band = np.zeros((r1 - lo, ncol), dtype=np.float32)  # (R, C) transformed contacts
    upper, lower = pi * ncol + pj, pj[low] * ncol + pi[low]  # flat indices: 2x faster
    band.reshape(-1)[upper] = tv
    band.reshape(-1)[lower] = tv[low]
    inf_band = None
    if inf.any():
        inf_band = np.zeros(band.shape, dtype=bool)
        inf_band.reshape(-1)[upper[inf]] = True
        inf_band.reshape(-1)[lower[inf[low]]] = True
        band[inf_band] = 0.0
    tracks = np.empty((len(handles["tracks"]), (c1 - lo) * per_bin), dtype=np.float32)
    for t, (bw, tchrom) in enumerate(zip(handles["tracks"], task["track_chroms"])):
        vals, covered = bigwig_reader.read_track_bins(
            bw, tchrom, lo * res, c1 * res, epi_bin, settings["epi_missing"], settings["epi_fill"]
        )
        tracks[t] = vals
        stats["covered_bp"][t] = covered
    stats["span_bp"] = (c1 - lo) * res
    epi_bad = (~np.isfinite(tracks)).any(axis=0).reshape(-1, per_bin).any(axis=1)  # (C,) per Hi-C bin
    tracks = normalize.epi_transform(np.nan_to_num(tracks, nan=0.0, posinf=0.0, neginf=0.0),
                                     settings["epi_transform"])

    # ---- negatives need the band (contact) and the tracks (anchor signal)
    regions = _split_regions(task)
    if loops is not None and len(plans["loops"]["x"]):
        p = plans["loops"]
        half = w // 2

        def contact(i: np.ndarray, j: np.ndarray) -> np.ndarray:
            ok = (j - lo < band.shape[1]) & (i - lo < band.shape[0]) & (i >= lo) & (j >= lo)
            v = np.zeros(len(i), dtype=np.float32)
            v[ok] = band[i[ok] - lo, j[ok] - lo]
            return v

        mix = loops.get("negatives", {"distance": 1.0})
        score = None
        if mix.get("anchor_signal", 0) > 0:  # summed track signal per Hi-C bin of the band
            score = np.full(n, np.nan)
            score[lo:c1] = tracks.reshape(len(tracks), c1 - lo, per_bin).sum(axis=(0, 2))
        # negatives per split: each split gets negative_ratio x its own positives, drawn
        # from its own positives' distances, and never crosses a split boundary
        pos_code = window_split_codes(p["x"] * res, (p["y"] + w) * res, regions)
        got_i, got_j, got_kind = [], [], []
        stats["neg_sampled"] = {}
        for code in np.unique(pos_code[pos_code >= 0]).tolist():
            sel = pos_code == code

            def same_split(i: np.ndarray, j: np.ndarray, code=code) -> np.ndarray:
                return window_split_codes((i - half) * res, (j - half + w) * res, regions) == code

            quotas = negative_quotas(int(round(loops["negative_ratio"] * sel.sum())), mix)
            ni, nj, kind = sample_negative_mix(
                p["i"][sel], p["j"][sel], quotas, n, w, contact, rng,
                loops["min_bins"], loops["max_bins"],
                i_range=(task["lo"] + half, task["hi"] + half),
                jitter_bins=loops["jitter_bins"], exclude_bins=loops["exclude_bins"],
                exclude_i=np.r_[p["i"][~sel], np.asarray(task.get("exclude_i", []), np.int64)],
                exclude_j=np.r_[p["j"][~sel], np.asarray(task.get("exclude_j", []), np.int64)],
                allowed=same_split, anchor_score=score,
                high_contact_top=loops.get("high_contact_top", 0.2),
                anchor_top=loops.get("anchor_top", 0.1),
                near_bins=tuple(loops.get("near_loop_bins", (2, 5))),
            )
            got_i.append(ni)
            got_j.append(nj)
            got_kind.append(kind)
            for k in quotas:
                stats["neg_sampled"][k] = stats["neg_sampled"].get(k, 0) + int((kind == k).sum())
        ni = np.concatenate(got_i) if got_i else np.zeros(0, np.int64)
        nj = np.concatenate(got_j) if got_j else np.zeros(0, np.int64)
        kind = np.concatenate(got_kind) if got_kind else np.zeros(0, "<U13")
        x = np.concatenate([p["x"], ni - half])
        y = np.concatenate([p["y"], nj - half])
        label = np.concatenate([np.ones(len(p["x"]), np.int8), np.zeros(len(ni), np.int8)])
        kinds = np.concatenate([np.full(len(p["x"]), "positive", dtype="<U13"), kind])
        order = np.lexsort((y, x))
        plans["loops"] = {"x": x[order], "y": y[order], "loop": label[order],
                          "neg_kind": kinds[order]}

    # ---- QC and slicing of every window
    bl = np.asarray(task.get("blacklist", []), dtype=np.int64).reshape(-1, 2)
    cage = None
    if "cage" in plans and handles.get("cage") is not None:
        vals, _ = bigwig_reader.read_track_bins(
            handles["cage"], task["cage_chrom"], lo * res, c1 * res, res,
            settings["epi_missing"], settings["epi_fill"],
        )
        cage = normalize.epi_transform(np.nan_to_num(vals[: c1 - lo]), "log2p1")

    tables: dict[str, pa.Table] = {}
    stats["rows_split"] = {}
    for name, p in plans.items():
        x, y = p["x"] - lo, p["y"] - lo  # offsets into the band
        drops: dict[str, int] = {}
        keep = np.ones(len(x), dtype=bool)
        codes = window_split_codes(p["x"] * res, (p["y"] + w) * res, regions)
        hic = slice_hic(band, x, y, w)  # (N, W, W) f32
        frac = nonzero_fraction(hic)
        nmask = normalize.masked_bin_counts(masked, x, y, w) if len(x) else np.zeros(0, np.int16)
        if len(x):
            bad_epi = np.concatenate([[0], np.cumsum(epi_bad)])
            nonfinite = ((bad_epi[x + w] - bad_epi[x]) + (bad_epi[y + w] - bad_epi[y])) > 0
            if inf_band is not None:
                nonfinite |= slice_hic(inf_band, x, y, w).reshape(len(x), -1).any(axis=1)
            rules = {
                "split_boundary": codes < 0,
                "low_nonzero": frac < settings["min_nonzero_frac"],
                "masked": nmask > settings["max_masked_bins"],
                "nonfinite": nonfinite,
            }
            if len(bl):
                span = w * res
                rules["blacklist"] = normalize.blacklist_overlap(
                    p["x"] * res, span, bl[:, 0], bl[:, 1]
                ) | normalize.blacklist_overlap(p["y"] * res, span, bl[:, 0], bl[:, 1])
            for reason, hit in rules.items():
                drops[reason] = int((hit & keep).sum())
                keep &= ~hit
        stats["dropped"][name] = drops
        x, y, hic, codes = x[keep], y[keep], hic[keep], codes[keep]
        stats["rows_split"][name] = {s: int((codes == k).sum()) for k, s in enumerate(SPLIT_NAMES)}
        if len(x) == 0:
            tables[name] = _empty(settings, name, shape)
            continue
        if mode == "log1p_window_max" and len(hic):
            top = hic.reshape(len(hic), -1).max(axis=1)
            top[top == 0] = 1.0
            hic /= top[:, None, None]
        epi = slice_epi(tracks, x, y, w * per_bin, per_bin)  # (N, C, 2L)
        cols = {
            "sample": pa.array([settings["sample"]] * len(x), pa.string()),
            "chrom": pa.array([chrom] * len(x), pa.string()),
            "x_start": pa.array((x + lo) * res, pa.int64()),
            "y_start": pa.array((y + lo) * res, pa.int64()),
            "resolution": pa.array(np.full(len(x), res), pa.int32()),
            "split": pa.array(np.asarray(SPLIT_NAMES, dtype=object)[codes], pa.string()),
            "hic": tensor_column(hic, shape.hic_shape),
            "epi": tensor_column(epi, shape.epi_shape),
            "nonzero_frac": pa.array(frac[keep], pa.float32()),
            "masked_bins": pa.array(nmask[keep], pa.int16()),
        }
        if name == "loops":
            cols["loop"] = pa.array(p.get("loop", np.ones(0, np.int8))[keep], pa.int8())
            neg_kind = p.get("neg_kind", np.zeros(0, dtype="<U13"))[keep]
            cols["neg_kind"] = pa.array(neg_kind.tolist(), pa.string())
            split_names = np.asarray(SPLIT_NAMES)[codes]
            stats["neg_kinds"] = {
                k: {s: int(((neg_kind == k) & (split_names == s)).sum()) for s in SPLIT_NAMES}
                for k in np.unique(neg_kind).tolist()
            }
        if name == "cage":
            target = (
                np.lib.stride_tricks.sliding_window_view(cage, w)[x]
                if cage is not None and len(x) else np.zeros((len(x), w), np.float32)
            )
            cols["cage"] = tensor_column(target, (w,))
        schema = dataset_schema(name, shape)
        table = pa.table([cols[f.name] for f in schema], schema=schema)
        validate_table(table, name, shape)
        tables[name] = table
    return tables, stats


def _empty(settings: dict, name: str, shape: WindowShape) -> pa.Table:
    return dataset_schema(name, shape).empty_table()


def write_chunk(
    staging: str, task: dict, tables: dict[str, pa.Table], stats: dict, compression: str,
    timing: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Write the chunk's parts (temp + rename) then its completion marker; return the marker."""
    import pyarrow.parquet as pq

    fs, root = _fs(staging)
    root = root.rstrip("/")
    cid = task["chunk_id"]
    files = {}
    for name, table in tables.items():
        if table.num_rows == 0:
            continue
        final = f"{root}/{name}/part-{cid}.parquet"
        tmp = f"{root}/{name}/.part-{cid}.parquet.tmp"
        fs.create_dir(f"{root}/{name}", recursive=True)
        # no dictionary pages or statistics for the float tensors: both cost more than
        # the write itself and help nothing (keys keep them for predicate pushdown);
        # large write batches: the tensors' list levels are encoded ~20% faster
        pq.write_table(table, tmp, filesystem=fs, compression=compression,
                       use_dictionary=["sample", "chrom", "split"],
                       write_statistics=["chrom", "x_start", "y_start", "split"],
                       write_batch_size=_WRITE_BATCH)
        fs.move(tmp, final)
        files[name] = f"part-{cid}.parquet"
    if timing is not None:  # wall start/end and CPU seconds of read + slice + write
        stats["timing"] = {"start": timing[0], "end": time.time(),
                           "cpu_s": time.process_time() - timing[1]}
    marker = {
        "chunk_id": cid,
        "chrom": task["chrom"],
        "rows": {name: t.num_rows for name, t in tables.items()},
        "files": files,
        **stats,
    }
    fs.create_dir(f"{root}/_chunks", recursive=True)
    mpath = marker_path(root, cid)
    with fs.open_output_stream(mpath + ".tmp") as fh:
        fh.write(json.dumps(marker).encode())
    fs.move(mpath + ".tmp", mpath)
    return marker


class ChunkWorker:
    """Ray Data callable class: opens the files once per worker, processes task batches.

    ``__call__`` takes a batch ``{"task": array of JSON strings}`` and returns
    ``{"chunk_id": ..., "marker": JSON strings}`` (the rows themselves go to Parquet).
    """

    def __init__(self, settings_json: str):
        self.settings = json.loads(settings_json)
        self.handles = open_handles(self.settings)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids, markers = [], []
        for text in batch["task"]:
            task = json.loads(str(text))
            t0, c0 = time.time(), time.process_time()
            tables, stats = process_chunk(self.settings, task, self.handles)
            marker = write_chunk(
                self.settings["staging"], task, tables, stats, self.settings["compression"],
                timing=(t0, c0),
            )
            ids.append(task["chunk_id"])
            markers.append(json.dumps(marker))
        return {"chunk_id": np.asarray(ids, dtype=object), "marker": np.asarray(markers, dtype=object)}
