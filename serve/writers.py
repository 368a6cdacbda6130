"""Stitching window predictions and writing them as standard files (pure numpy + writers).

* Hi-C: overlapping diagonal windows are averaged per pixel in *balanced space* (model
  outputs are first mapped back from the training scale, :func:`hic_inverse`), then
  written as a .cool whose ``count`` column holds the float predictions: both
  ``Cooler(p).matrix(balance=False)`` and ``matrix(balance=True)`` (a ``weight`` column of
  ones is added, which HiGlass and cooltools expect) return them.
* loops: candidate anchor pairs with their probability -> bedpe
  (``chrom1 start1 end1 chrom2 start2 end2 name probability``, anchors = Hi-C bins).
* CAGE: per-bin predictions of overlapping windows, mapped back from log2(1 + x) to
  signal units (2^v - 1, >= 0) and averaged -> bigWig of ``resolution``-bp bins.

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
    "write_bedpe",
    "write_bigwig",
]


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
    with h5py.File(tmp, "r+") as h5:  # unit weights: balance=True gives the same values
        w = h5["bins"].create_dataset("weight", data=np.ones(len(bins)), dtype="float64")
        w.attrs["divisive_weights"] = False
    os.replace(tmp, path)
    return path


def write_bedpe(path: str | Path, rows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                resolution: int, chrom_order: list[str]) -> Path:
    """Loop calls: chrom -> (bin i, bin j, probability) as bedpe with a header line."""
    path = Path(path)
    tmp = _tmp(path)
    with open(tmp, "w") as fh:
        fh.write("#chrom1\tstart1\tend1\tchrom2\tstart2\tend2\tname\tprobability\n")
        for chrom in chrom_order:
            if chrom not in rows:
                continue
            i, j, p = rows[chrom]
            order = np.lexsort((j, i))
            for a, b, q in zip(i[order], j[order], p[order]):
                s1, s2 = int(a) * resolution, int(b) * resolution
                fh.write(f"{chrom}\t{s1}\t{s1 + resolution}\t{chrom}\t{s2}\t{s2 + resolution}"
                         f"\tloop\t{q:.6f}\n")
    os.replace(tmp, path)
    return path


def write_bigwig(path: str | Path, chromsizes: dict[str, int], resolution: int,
                 values: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """chrom -> (bin, value) as a bigWig of ``resolution``-bp bins (clipped at chrom ends)."""
    import pyBigWig

    path = Path(path)
    tmp = _tmp(path)
    bw = pyBigWig.open(str(tmp), "w")
    try:
        bw.addHeader([(c, int(s)) for c, s in chromsizes.items()], maxZooms=4)
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
