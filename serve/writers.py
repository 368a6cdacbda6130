"""Stitching window predictions and writing them as standard files (pure numpy + writers).

* Hi-C: overlapping diagonal windows are averaged per pixel in *balanced space* (model
  outputs are first mapped back from the training scale, :func:`hic_inverse`), then
  written as a .cool whose ``count`` column holds the float predictions, and as a
  multi-resolution ``.mcool`` for HiGlass (:func:`write_mcool`). The ``weight`` column
  is 1 for every bin with a predicted pixel and NaN for bins without one (unmappable,
  outside the predicted regions): ``matrix(balance=True)`` returns the predictions and
  shows unpredicted bins as gaps, not as zero contacts.
* loops: calls (:mod:`mixhic.serve.loopcall`) -> bedpe with a commented header line
  ``#chrom1 start1 end1 chrom2 start2 end2 name score probability cluster_size``
  (anchors = Hi-C bins; ``score`` = round(1000 x probability), the BED/UCSC 0-1000
  convention); :func:`read_loop_calls` reads it back by header names.
* CAGE: per-bin predictions of overlapping windows, mapped back from log2(1 + x) to
  signal units (2^v - 1, >= 0) and averaged -> bigWig of ``resolution``-bp bins, with
  zoom levels (:data:`BIGWIG_ZOOMS`) for browsers.

Every writer writes to a temporary name in the same directory and renames: a file with
the final name is always complete.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = [
    "hic_inverse",
    "cage_inverse",
    "BandAccumulator",
    "BinAccumulator",
    "write_cool",
    "write_mcool",
    "mcool_resolutions",
    "write_bedpe",
    "read_loop_calls",
    "BEDPE_COLUMNS",
    "write_bigwig",
    "BIGWIG_ZOOMS",
]

#: Columns of the loop bedpe (written as a header line starting with ``#``).
BEDPE_COLUMNS = ("chrom1", "start1", "end1", "chrom2", "start2", "end2", "name", "score",
                 "probability", "cluster_size")
#: Zoom levels written into bigWigs (pyBigWig ``addHeader(maxZooms=...)``; 0 = none).
BIGWIG_ZOOMS = 10


def hic_inverse(v: np.ndarray, transform: str, cap: float = 255.0) -> np.ndarray:
    """Model-scale Hi-C (any shape) -> balanced contacts (count scale, >= 0).

    ``log1p_window_max`` scales each window by its own maximum, which a prediction does not
    carry: its values are returned as they are (log scale, per-window relative).
    """
    v = np.asarray(v, dtype=np.float64)
    if transform == "log1p_fixed":
        return np.expm1(np.clip(v, 0.0, 1.0) * np.log1p(cap))
    if transform == "log1p":
        return np.expm1(np.maximum(v, 0.0))
    if transform in ("none", "log1p_window_max"):
        return np.maximum(v, 0.0)
    raise ValueError(f"hic_transform: unknown transform {transform!r}")


def cage_inverse(v: np.ndarray) -> np.ndarray:
    """log2(1 + CAGE) -> CAGE signal (>= 0)."""
    return np.maximum(np.exp2(np.asarray(v, dtype=np.float64)) - 1.0, 0.0)


class BandAccumulator:
    """Sum and count of the pixels ``(i, i + d)``, ``0 <= d < W``, of one chromosome.

    Memory (n_bins, W) float64 x 2: a diagonal band, whatever the chromosome length.
    """

    def __init__(self, n_bins: int, window_bins: int) -> None:
        self.n, self.W = n_bins, window_bins
        self.sum = np.zeros((n_bins, window_bins))
        self.count = np.zeros((n_bins, window_bins), dtype=np.int32)
        a, b = np.meshgrid(np.arange(window_bins), np.arange(window_bins), indexing="ij")
        self._lo = np.minimum(a, b).ravel()  # row offset of each window pixel (upper tri)
        self._d = np.abs(a - b).ravel()  # its diagonal

    def add(self, x: np.ndarray, maps: np.ndarray) -> None:
        """Diagonal windows at bins ``x`` (N,) with values ``maps`` (N, W, W); both halves
        of a window count (a predicted map need not be symmetric)."""
        for xi, m in zip(np.asarray(x, dtype=np.int64), maps):
            rows = xi + self._lo
            np.add.at(self.sum, (rows, self._d), m.ravel())
            np.add.at(self.count, (rows, self._d), 1)

    def pixels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(bin1, bin2, value)`` of every covered pixel, upper triangle, sorted."""
        i, d = np.nonzero(self.count)
        order = np.lexsort((d, i))
        i, d = i[order], d[order]
        return i, i + d, self.sum[i, d] / self.count[i, d]


class BinAccumulator:
    """Sum and count per bin of one chromosome (CAGE)."""

    def __init__(self, n_bins: int) -> None:
        self.sum = np.zeros(n_bins)
        self.count = np.zeros(n_bins, dtype=np.int32)

    def add(self, x: np.ndarray, values: np.ndarray) -> None:
        """Windows at bins ``x`` (N,) with per-bin values (N, W)."""
        w = values.shape[1]
        idx = (np.asarray(x, dtype=np.int64)[:, None] + np.arange(w)).ravel()
        np.add.at(self.sum, idx, values.ravel())
        np.add.at(self.count, idx, 1)

    def bins(self) -> tuple[np.ndarray, np.ndarray]:
        """``(bin, mean)`` of every covered bin."""
        b = np.nonzero(self.count)[0]
        return b, self.sum[b] / self.count[b]


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_cool(path: str | Path, chromsizes: dict[str, int], resolution: int,
               pixels: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
               metadata: dict | None = None) -> Path:
    """A .cool of float ``count`` = predictions, for ``chromsizes`` (in that order).

    ``pixels``: chrom -> (bin1, bin2, value) with bin indices within the chromosome.
    """
    import cooler
    import h5py
    import pandas as pd

    path = Path(path)
    sizes = pd.Series(chromsizes, dtype="int64")
    bins = cooler.binnify(sizes, resolution)
    offsets = np.concatenate([[0], np.cumsum([-(-s // resolution) for s in chromsizes.values()])])
    frames = []
    for k, chrom in enumerate(chromsizes):
        if chrom in pixels:
            b1, b2, v = pixels[chrom]
            frames.append(pd.DataFrame({"bin1_id": np.asarray(b1, np.int64) + offsets[k],
                                        "bin2_id": np.asarray(b2, np.int64) + offsets[k],
                                        "count": np.asarray(v, np.float64)}))
    px = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        {"bin1_id": np.zeros(0, np.int64), "bin2_id": np.zeros(0, np.int64),
         "count": np.zeros(0)})
    tmp = _tmp(path)
    tmp.unlink(missing_ok=True)
    cooler.create_cooler(str(tmp), bins, px, dtypes={"count": np.float64}, ordered=True,
                         metadata=metadata or {})
    with h5py.File(tmp, "r+") as h5:
        _write_unit_weight(h5)
    os.replace(tmp, path)
    return path


def _write_unit_weight(grp, chunk: int = 10_000_000) -> None:
    """``bins/weight`` of a cooler group: 1 for a bin with any pixel (as row or column),
    NaN for a bin with none; multiplicative (``divisive_weights`` False)."""
    n_bins = len(grp["bins"]["start"])
    offsets = np.asarray(grp["indexes"]["bin1_offset"][:], np.int64)
    covered = np.diff(offsets) > 0
    b2 = grp["pixels"]["bin2_id"]
    for lo in range(0, len(b2), chunk):
        covered[np.asarray(b2[lo:lo + chunk], np.int64)] = True
    weight = np.where(covered[:n_bins], 1.0, np.nan)
    if "weight" in grp["bins"]:
        del grp["bins"]["weight"]
    w = grp["bins"].create_dataset("weight", data=weight, dtype="float64")
    w.attrs["divisive_weights"] = False


def mcool_resolutions(chromsizes: dict[str, int], resolution: int) -> list[int]:
    """HiGlass's default zoom levels: ``resolution * 2^k``, k = 0 .. the quad-tree depth of
    256-bin tiles (``cooler.zoomify_cooler``'s binary preset), at least two levels."""
    import math

    total = sum(chromsizes.values())
    depth = max(1, math.ceil(math.log2(max(1, math.ceil(total / (256 * resolution))))))
    return [resolution * 2**k for k in range(depth + 1)]


def write_mcool(path: str | Path, cool: str | Path, resolutions: list[int] | None = None,
                chunksize: int = 10_000_000) -> Path:
    """A multi-resolution ``.mcool`` (``::resolutions/<r>``) from a single-resolution
    prediction ``.cool`` (:func:`write_cool`), with ``cooler.zoomify_cooler``.

    Coarser levels sum the predicted (balanced-space) contacts of their child pixels,
    which is what coarsening contacts means. Every level gets its own ``weight``
    column: 1 for bins with a predicted pixel, NaN for bins without (as :func:`write_cool`
    does). Not ICE (``cooler.balance_cooler``): the predictions are already balanced
    contacts, and equalising the row sums of a matrix predicted only in a band along
    the diagonal (and only where the model ran) would rescale it by its coverage, so
    ``balance=True`` at the base level would no longer return what the model predicted.
    """
    import cooler
    import h5py

    path, cool = Path(path), Path(cool)
    clr = cooler.Cooler(str(cool))
    base = int(clr.binsize)
    sizes = {str(k): int(v) for k, v in clr.chromsizes.items()}
    resolutions = sorted(set(resolutions or mcool_resolutions(sizes, base)) | {base})
    bad = [r for r in resolutions if r % base]
    if bad:
        raise ValueError(f"mcool_resolutions: {bad} are not multiples of the base "
                         f"resolution {base} bp")
    tmp = _tmp(path)
    tmp.unlink(missing_ok=True)
    cooler.zoomify_cooler(str(cool), str(tmp), resolutions, chunksize,
                          dtypes={"count": np.float64})
    with h5py.File(tmp, "r+") as h5:
        for r in resolutions:
            _write_unit_weight(h5[f"resolutions/{r}"])
    os.replace(tmp, path)
    return path


def write_bedpe(path: str | Path, calls: dict, resolution: int, chrom_order: list[str]) -> Path:
    """Loop calls as bedpe (:data:`BEDPE_COLUMNS`, header line starting with ``#``).

    ``calls``: chrom -> :class:`mixhic.serve.loopcall.LoopCalls` (anchor bins ``i < j``),
    or chrom -> ``(i, j, probability)`` (cluster size 1). Rows are sorted by chromosome
    (``chrom_order``) then anchors; names are ``loop<n>`` in file order.
    """
    path = Path(path)
    tmp = _tmp(path)
    n = 0
    with open(tmp, "w") as fh:
        fh.write("#" + "\t".join(BEDPE_COLUMNS) + "\n")
        for chrom in chrom_order:
            if chrom not in calls:
                continue
            c = calls[chrom]
            if isinstance(c, tuple):
                i, j, p = (np.asarray(a) for a in c)
                size = np.ones(len(i), np.int64)
            else:
                i, j, p, size = c.i, c.j, c.probability, c.cluster_size
            order = np.lexsort((j, i))
            for a, b, q, k in zip(i[order], j[order], p[order], size[order]):
                s1, s2 = int(a) * resolution, int(b) * resolution
                n += 1
                fh.write(f"{chrom}\t{s1}\t{s1 + resolution}\t{chrom}\t{s2}\t{s2 + resolution}"
                         f"\tloop{n}\t{int(round(1000 * float(q)))}\t{float(q):.6f}\t{int(k)}\n")
    os.replace(tmp, path)
    return path


def read_loop_calls(path: str | Path) -> dict[str, np.ndarray]:
    """A bedpe written by :func:`write_bedpe` -> column name -> array (by header names)."""
    path = Path(path)
    with open(path) as fh:
        header = fh.readline().rstrip("\n")
        if not header.startswith("#"):
            raise ValueError(f"{path}: no header line (expected '#chrom1\tstart1...')")
        names = header[1:].split("\t")
        missing = [c for c in BEDPE_COLUMNS if c not in names]
        if missing:
            raise ValueError(f"{path}: header lacks columns {missing}")
        rows = [ln.rstrip("\n").split("\t") for ln in fh if ln.strip()]
    out: dict[str, np.ndarray] = {}
    for k, name in enumerate(names):
        vals = [r[k] for r in rows]
        if name in ("start1", "end1", "start2", "end2", "score", "cluster_size"):
            out[name] = np.asarray(vals, dtype=np.int64)
        elif name == "probability":
            out[name] = np.asarray(vals, dtype=np.float64)
        else:
            out[name] = np.asarray(vals, dtype=object)
    return out


def write_bigwig(path: str | Path, chromsizes: dict[str, int], resolution: int,
                 values: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """chrom -> (bin, value) as a bigWig of ``resolution``-bp bins (clipped at chrom ends),
    with up to :data:`BIGWIG_ZOOMS` zoom levels (summaries a browser reads when zoomed out;
    libBigWig picks how many the data needs: one for a small genome)."""
    import pyBigWig

    path = Path(path)
    tmp = _tmp(path)
    bw = pyBigWig.open(str(tmp), "w")
    try:
        bw.addHeader([(c, int(s)) for c, s in chromsizes.items()], maxZooms=BIGWIG_ZOOMS)
        for chrom, size in chromsizes.items():
            if chrom not in values or len(values[chrom][0]) == 0:
                continue
            b, v = values[chrom]
            starts = np.asarray(b, np.int64) * resolution
            ends = np.minimum(starts + resolution, size)
            keep = starts < size
            bw.addEntries([chrom] * int(keep.sum()), starts[keep].tolist(),
                          ends=ends[keep].tolist(), values=np.asarray(v, float)[keep].tolist())
    finally:
        bw.close()
    os.replace(tmp, path)
    return path
