"""Reading bigWig tracks: mean signal per bin, with missing data handled explicitly.

Two paths give the same means: the numpy interval reader of
:mod:`mixhic.pipelines._bigwig` (the file's intervals binned by overlap, the default
through :func:`open_track`) and pyBigWig's per-bp ``values()`` (files that reader does
not support, and intervals that overlap). Paths are local files; every failure users can
cause is a one-line :class:`~mixhic.core.errors.MixHicError` naming the file (not a
bigWig, unknown chromosome, a track with no data).
"""

from __future__ import annotations

import logging

import numpy as np
from mixhic.core.errors import MixHicError
from mixhic.pipelines._bigwig import BigWigIndex, UnsupportedBigWig
from mixhic.pipelines.paths import local_path

__all__ = ["open_bigwig", "open_track", "track_chroms", "check_track_data", "read_track_bins"]

log = logging.getLogger(__name__)

_TRACK_BLOCK_BP = 4_000_000  # bp per bigWig values() call (bounds memory)


def open_bigwig(uri: str, what: str = "track"):
    """An open pyBigWig handle (caller closes it)."""
    import pyBigWig

    path = local_path(uri, what)
    try:
        bw = pyBigWig.open(path)
    except RuntimeError:
        bw = None
    if bw is None or not bw.isBigWig():
        raise MixHicError(f"{path}: {what} is not a readable bigWig file")
    return bw


def open_track(uri: str, what: str = "track"):
    """A reader for :func:`read_track_bins`: the numpy interval reader when the file's
    layout allows (every common writer's), else the pyBigWig handle. Caller closes it."""
    open_bigwig(uri, what).close()  # the checks and messages of open_bigwig
    try:
        return BigWigIndex(local_path(uri, what))
    except UnsupportedBigWig as exc:
        log.info("%s: per-bp reads through pyBigWig (%s)", uri, exc)
        return open_bigwig(uri, what)


def track_chroms(uri: str) -> dict[str, int]:
    bw = open_bigwig(uri)
    try:
        return dict(bw.chroms())
    finally:
        bw.close()


def check_track_data(bw, chrom: str, where: str) -> None:
    """Raise MixHicError if the bigWig has no data at all on ``chrom``."""
    size = bw.chroms(chrom)
    if not size:
        raise MixHicError(f"{where}: no chromosome {chrom!r} in the track")
    # zoom-level summary: cheap; None when the chromosome holds no interval
    got = bw.stats(chrom, 0, size, type="coverage")
    if not got or got[0] is None or got[0] == 0:
        raise MixHicError(
            f"{where}: track has no data on {chrom} (set normalize.require_track_data=false "
            "to fill missing chromosomes with normalize.epi_fill)"
        )


def read_track_bins(
    bw,
    chrom: str | None,
    start: int,
    end: int,
    bin_size: int,
    missing: str = "fill",
    fill: float = 0.0,
) -> tuple[np.ndarray, int]:
    """Mean signal in bins of ``bin_size`` bp over ``[start, end)``: one bigWig read per 4 Mb.

    Missing data (bp with no interval) is handled explicitly:
        ``missing="fill"``: missing bp count as ``fill`` in the mean (sparse bigWigs
        omit zero stretches, so ``fill=0`` is their meaning);
        ``missing="ignore"``: the mean of covered bp only; a bin with none -> ``fill``.
    ``chrom=None`` (chromosome absent from the track) gives all-missing bins. Past the end
    of the track's chromosome is missing data too.

    ``bw`` is a pyBigWig handle (per-bp ``values()`` reads, binned by reshape-sum) or,
    from :func:`open_track`, a :class:`~mixhic.pipelines._bigwig.BigWigIndex` (the
    file's intervals binned exactly by overlap: the same means without the per-bp
    expansion).

    Returns ``(values float32 (n_bins,), covered_bp)``; ``n_bins = ceil((end-start)/bin_size)``.
    """
    n = -(-(end - start) // bin_size)
    if missing not in ("fill", "ignore"):
        raise ValueError(f"missing must be 'fill' or 'ignore', got {missing!r}")
    if isinstance(bw, BigWigIndex):
        got = _bin_intervals(bw, chrom, start, n, bin_size, missing, fill)
        if got is not None:
            return got
        bw = bw.pybigwig()  # overlapping intervals: per-bp semantics (the last one wins)
    size = (bw.chroms(chrom) or 0) if chrom is not None else 0
    vals = np.empty(n, dtype=np.float64)
    covered = 0
    per_block = max(1, _TRACK_BLOCK_BP // bin_size)  # bins per values() call
    for k0 in range(0, n, per_block):
        k1 = min(n, k0 + per_block)
        s0, s1 = start + k0 * bin_size, start + k1 * bin_size
        stop = min(s1, size)
        if stop >= s1:  # wholly inside the chromosome: values() fills the block
            raw = bw.values(chrom, s0, s1, numpy=True)
        else:
            raw = np.full((k1 - k0) * bin_size, np.nan, dtype=np.float64)
            if stop > s0:
                raw[: stop - s0] = bw.values(chrom, s0, stop, numpy=True)
        raw = raw.reshape(k1 - k0, bin_size)
        total = raw.sum(axis=1, dtype=np.float64)  # NaN marks the bins with missing bp
        gap = np.flatnonzero(np.isnan(total))
        covered += (k1 - k0 - len(gap)) * bin_size
        if len(gap):
            sub = raw[gap]
            isnan = np.isnan(sub)
            n_nan = isnan.sum(axis=1)
            covered += int(sub.size - n_nan.sum())
            sub[isnan] = fill if missing == "fill" else 0.0
            total[gap] = sub.sum(axis=1)
            if missing == "ignore":
                count = bin_size - n_nan
                total[gap] = np.where(count > 0, total[gap] / np.maximum(count, 1) * bin_size,
                                      fill * bin_size)
        vals[k0:k1] = total / bin_size
    return vals.astype(np.float32), covered


def _bin_intervals(
    reader: BigWigIndex, chrom: str | None, start: int, n: int, bin_size: int,
    missing: str, fill: float,
) -> tuple[np.ndarray, int] | None:
    """:func:`read_track_bins` from the file's intervals; None if intervals overlap.

    Each interval is cut at bin edges; a bin's sum is the sum of value x overlap (bp) of
    its pieces, its coverage the sum of the overlaps (NaN values count as missing, as
    in ``values()``). Data blocks are binned one at a time (small, cache-resident
    arrays) while they come sorted and disjoint, as every common writer lays them out;
    otherwise all intervals are sorted first.
    """
    size = (reader.chroms(chrom) or 0) if chrom is not None else 0
    stop = min(start + n * bin_size, size)  # the last bin is read whole; past the end: missing
    sums = np.zeros(n)
    cov = np.zeros(n)
    if stop > start:
        span = stop - start
        last_end = -(1 << 62)
        for s, e, v in reader.blocks(chrom, start, stop):
            s = s - start  # relative to start
            e = e - start
            if s[0] < last_end or (len(s) > 1 and (s[1:] < e[:-1]).any()):
                break  # not sorted and disjoint: take the general path below
            last_end = int(e[-1])
            a = int(np.searchsorted(e, 0, side="right"))
            b = int(np.searchsorted(s, span, side="left"))
            _accumulate(s[a:b], e[a:b], v[a:b], span, bin_size, sums, cov)
        else:
            return _finish(sums, cov, bin_size, missing, fill)
        s, e, v = reader.intervals(chrom, start, stop)
        if len(s) > 1 and (s[1:] < e[:-1]).any():
            return None
        sums[:] = 0.0
        cov[:] = 0.0
        _accumulate(s - start, e - start, v, span, bin_size, sums, cov)
    return _finish(sums, cov, bin_size, missing, fill)


def _accumulate(s: np.ndarray, e: np.ndarray, v: np.ndarray, span: int, bin_size: int,
                sums: np.ndarray, cov: np.ndarray) -> None:
    """Add sorted, disjoint intervals (relative bp, overlapping ``[0, span)``; ``s``/``e``
    may be modified) to the per-bin ``sums`` (value x bp) and ``cov`` (bp)."""
    if not len(s):
        return
    s[0] = max(s[0], 0)  # only the ends can stick out of the region
    e[-1] = min(e[-1], span)
    nan = np.isnan(v)
    if nan.any():  # NaN values are missing data, as in values()
        s, e, v = s[~nan], e[~nan], v[~nan]
        if not len(s):
            return
    b0 = s // bin_size
    length = e - s
    if ((e - 1) // bin_size != b0).any():  # some interval crosses a bin edge
        pieces = (e - 1) // bin_size - b0 + 1  # bins each interval touches (>= 0)
        idx = np.repeat(np.arange(len(s)), pieces)
        b0 = b0[idx] + (np.arange(len(idx)) - (np.cumsum(pieces) - pieces)[idx])
        length = np.minimum(e[idx], (b0 + 1) * bin_size) - np.maximum(s[idx], b0 * bin_size)
        v = v[idx]
        if not len(b0):
            return
    # in order, repeated bins included; float64 operands: add.at is slow when it casts
    np.add.at(sums, b0, v * length)
    np.add.at(cov, b0, length.astype(np.float64))


def _finish(sums: np.ndarray, cov: np.ndarray, bin_size: int, missing: str, fill: float
            ) -> tuple[np.ndarray, int]:
    covered = int(cov.sum())
    if missing == "fill":
        vals = (sums + fill * (bin_size - cov)) / bin_size
    else:
        vals = np.where(cov > 0, sums / np.maximum(cov, 1), fill)
    return vals.astype(np.float32), covered
