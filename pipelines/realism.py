"""How much a Hi-C map looks like real Hi-C: three figures for any cooler (and loop calls).

    >>> r = realism_report("genome.mcool::resolutions/5000", bedpe="loops.bedpe")
    >>> r["ps_slope"], r["nonzero_mean"], r["p2ll"]

Figures (distances in bp; bins are the cooler's):

``ps_slope``
    The contact-probability exponent: least-squares slope of log10 mean contact vs.
    log10 distance over every diagonal from ``min_distance`` to ``max_distance``
    (20 kb-2 Mb). A diagonal's mean is pooled over chromosomes: the sum of its pixels
    (zeros included) over the number of its pixels, balanced when the weight column
    exists (pixels touching a masked bin left out), raw counts otherwise. Real
    Hi-C bends down with distance, so the figure depends on the range and on fitting
    every diagonal (most of them lie at long range): GM12878 chr1:160-180 Mb at 10 kb
    gives -1.18, its 20-200 kb part -0.86 and its 0.2-2 Mb part -1.35.
    ``ps_slope_short`` and ``ps_slope_long`` are the same fit below and above the
    geometric middle of the range (200 kb for 20 kb-2 Mb).
``nonzero_*``
    Sparsity: the fraction of raw-count pixels > 0 in ``window_bins`` x ``window_bins``
    windows on the diagonal, one every ``window_step`` bins along each chromosome:
    ``nonzero_mean``, ``nonzero_ge_0.1`` (fraction of windows with at least 10 % of
    their pixels non-zero, the QC threshold of ``mixhic prepare``), ``nonzero_min``.
``p2ll``
    Aggregate peak analysis (APA). For every loop whose anchors are ``min_distance`` to
    ``max_distance`` apart and whose +-``apa_flank`` bin square lies inside the
    chromosome, take the observed/expected submatrix (2F+1, 2F+1) centred on the loop
    pixel (expected = the chromosome's mean contact at that distance); average the
    submatrices over loops (NaN pixels skipped). P2LL = the centre pixel of the
    aggregate divided by the mean of its lower-left 3x3 corner (rows nearest the
    second anchor's side of the diagonal: upstream-anchor + F-2..F, downstream-anchor
    - F..-F+2), the Juicer/Rao et al. 2014 definition. ``apa_centre`` is the centre o/e,
    ``n_loops`` the number of loops aggregated. NaN (and ``n_loops`` 0) without loops.

Loop chromosome names are matched to the cooler's like everywhere else in mixhic
(``1`` == ``chr1``, :mod:`mixhic.pipelines.names`); anchors are placed by their
midpoints in the cooler's bins table (which need not start at 0).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from mixhic.core.errors import MixHicError
from mixhic.pipelines.names import match_names
from mixhic.pipelines.bed_reader import read_bedpe
from mixhic.pipelines.hic_reader import open_cooler, resolve_cooler_uri

__all__ = ["realism_report", "ps_slope", "window_nonzero", "apa_p2ll", "format_report"]

log = logging.getLogger(__name__)

_CHUNK_PIXELS = 4_000_000  # pixels read per block (bounds memory on deep files)


def realism_report(
    cool_uri: str,
    bedpe: str | None = None,
    resolution: int | None = None,
    weight: str | None = "weight",
    *,
    chromosomes: Sequence[str] | None = None,
    aliases: Mapping[str, str] | None = None,
    min_distance: int = 20_000,
    max_distance: int = 2_000_000,
    window_bins: int = 50,
    window_step: int = 25,
    apa_flank: int = 10,
) -> dict[str, Any]:
    """P(s) slope, diagonal-window sparsity and APA P2LL of a cooler (see the module doc).

    Args:
        cool_uri: ``x.cool``, ``x.mcool::resolutions/N`` or ``x.mcool`` with ``resolution``.
        bedpe: loop calls (first six columns bedpe); None skips the APA figures.
        weight: balancing weight column; when the file lacks it (or None) raw counts
            are used for P(s) and APA (``balanced`` says which).
        chromosomes: cooler chromosome names to use (default: all).
        aliases: cooler name -> bedpe name, for spellings the automatic match misses.
    Returns:
        dict: ``uri``, ``resolution``, ``balanced``, ``chromosomes``, ``ps_slope``,
        ``ps_points``, ``ps_slope_short``, ``ps_slope_long``, ``nonzero_mean``,
        ``nonzero_ge_0.1``, ``nonzero_min``, ``n_windows``, and with ``bedpe``: ``p2ll``,
        ``apa_centre``, ``n_loops``.
    """
    if min_distance <= 0 or max_distance <= min_distance:
        raise MixHicError(f"realism: need 0 < min_distance < max_distance, got "
                          f"{min_distance}, {max_distance}")
    if window_bins < 2 or window_step < 1 or apa_flank < 2:
        raise MixHicError("realism: window_bins >= 2, window_step >= 1 and apa_flank >= 2")
    uri = resolve_cooler_uri(cool_uri, resolution)
    clr = open_cooler(uri)
    res = clr.binsize
    if res is None:
        raise MixHicError(f"{uri}: variable-size bins are not supported")
    res = int(res)
    names = list(clr.chromnames)
    if chromosomes:
        missing = [c for c in chromosomes if c not in names]
        if missing:
            raise MixHicError(f"{uri}: no chromosome {missing[0]!r} (file has: "
                              f"{', '.join(names[:8])}{', ...' if len(names) > 8 else ''})")
        names = list(chromosomes)
    if not names:
        raise MixHicError(f"{uri}: the cooler has no chromosome")

    columns = list(clr.bins().columns)
    divisive = False
    if weight is not None and weight in columns:
        divisive = _divisive(clr, weight)
    elif weight is not None:
        log.info("realism: %s has no %r column: P(s) and APA from raw counts", uri, weight)
        weight = None

    d_lo = -(-min_distance // res)
    d_hi = max_distance // res
    if d_hi <= d_lo:
        raise MixHicError(f"{uri}: {res} bp bins leave no diagonal in "
                          f"[{min_distance}, {max_distance}] bp")
    D = max(window_bins, d_hi + 2 * apa_flank + 1)
    loops = _loops_by_chrom(bedpe, names, aliases, uri) if bedpe is not None else None

    ps_sum, ps_n = np.zeros(D), np.zeros(D)
    win_fracs: list[np.ndarray] = []
    apa_sum = np.zeros((2 * apa_flank + 1,) * 2)
    apa_n = np.zeros_like(apa_sum)
    n_loops = 0
    used = []
    with clr.open("r") as grp:  # bin ranges from the index (the bins table may not start at 0)
        chrom_offset = np.asarray(grp["indexes/chrom_offset"][:], dtype=np.int64)
    all_names = list(clr.chromnames)
    for chrom in names:
        k = all_names.index(chrom)
        lo, hi = int(chrom_offset[k]), int(chrom_offset[k + 1])
        n = hi - lo
        if n < 2:
            continue
        used.append(chrom)
        raw = _read_band(clr, lo, hi, D)  # (n, D)
        win_fracs.append(window_nonzero(raw, window_bins, window_step))
        if weight is None:
            bal, ok = raw, _in_range(n, D)
        else:
            w = np.asarray(clr.bins()[weight][lo:hi], dtype=np.float64)
            bal, ok = _balance_band(raw, w, divisive)
        s, c = _diag_sums(bal, ok)
        ps_sum += s
        ps_n += c
        if loops is not None and chrom in loops:
            starts = np.asarray(clr.bins()["start"][lo:hi], dtype=np.int64)
            a, b = _loop_bins(loops[chrom], starts, res)
            expected = np.divide(s, c, out=np.full(D, np.nan), where=c > 0)
            agg, cnt, k = _apa_sum(bal, ok, expected, a, b, n, d_lo, d_hi, apa_flank)
            apa_sum += agg
            apa_n += cnt
            n_loops += k
    if not used:
        raise MixHicError(f"{uri}: no chromosome with at least 2 bins")

    slope, points = ps_slope(ps_sum, ps_n, res, d_lo, d_hi)
    d_mid = max(d_lo + 1, int(round(np.sqrt(d_lo * d_hi))))  # 200 kb for 20 kb-2 Mb
    slope_short, _ = ps_slope(ps_sum, ps_n, res, d_lo, d_mid)
    slope_long, _ = ps_slope(ps_sum, ps_n, res, d_mid, d_hi)
    fracs = np.concatenate(win_fracs) if win_fracs else np.zeros(0)
    if not len(fracs):
        log.warning("realism: %s: no chromosome spans a %d-bin window", uri, window_bins)
    report: dict[str, Any] = {
        "uri": uri,
        "resolution": res,
        "balanced": weight is not None,
        "chromosomes": len(used),
        "ps_slope": slope,
        "ps_points": points,
        "ps_slope_short": slope_short,
        "ps_slope_long": slope_long,
        "nonzero_mean": float(fracs.mean()) if len(fracs) else float("nan"),
        "nonzero_ge_0.1": float((fracs >= 0.1).mean()) if len(fracs) else float("nan"),
        "nonzero_min": float(fracs.min()) if len(fracs) else float("nan"),
        "n_windows": int(len(fracs)),
    }
    if loops is not None:
        p2ll, centre = apa_p2ll(apa_sum, apa_n)
        if n_loops == 0:
            log.warning("realism: %s: no loop %d-%d bp long and %d bins from a chromosome "
                        "edge", bedpe, min_distance, max_distance, apa_flank)
        report.update(p2ll=p2ll, apa_centre=centre, n_loops=int(n_loops))
    log.info("realism: %s", format_report(report))
    return report


def format_report(report: Mapping[str, Any]) -> str:
    """One line of ``key=value`` for the figures of :func:`realism_report`."""
    keys = ("ps_slope", "ps_slope_short", "ps_slope_long", "nonzero_mean", "nonzero_ge_0.1",
            "nonzero_min", "n_windows", "p2ll", "apa_centre", "n_loops")
    parts = []
    for k in keys:
        if k in report:
            v = report[k]
            parts.append(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts)


# ---------------------------------------------------------------------------- figures


def ps_slope(sums: np.ndarray, counts: np.ndarray, res: int, d_lo: int,
             d_hi: int) -> tuple[float, int]:
    """Slope of log10(sums/counts) vs log10(d * res) over diagonals d_lo..d_hi.

    ``sums``, ``counts``: (D,) per-diagonal totals. Diagonals with no pixel or a zero
    mean are left out. Returns (slope, number of diagonals fitted); NaN under 2.
    """
    d = np.arange(d_lo, min(d_hi, len(sums) - 1) + 1)
    mean = np.divide(sums[d], counts[d], out=np.zeros(len(d)), where=counts[d] > 0)
    keep = mean > 0
    if keep.sum() < 2:
        return float("nan"), int(keep.sum())
    x, y = np.log10(d[keep] * float(res)), np.log10(mean[keep])
    return float(np.polyfit(x, y, 1)[0]), int(keep.sum())


def window_nonzero(raw: np.ndarray, window_bins: int = 50, step: int = 25) -> np.ndarray:
    """Non-zero fraction of each diagonal ``window_bins`` square of a band. -> (n_windows,)

    ``raw``: (n, D) band, raw[i, d] = count(i, i + d), D >= window_bins. Windows start at
    0, step, 2 step... and end inside the chromosome; the square counts both triangles.
    """
    n = raw.shape[0]
    W = window_bins
    if n < W:
        return np.zeros(0)
    nz = raw[:, :W] > 0  # (n, W)
    tri = np.arange(W)[:, None] + np.arange(W)[None, :] < W  # i - s + d < W
    starts = np.arange(0, n - W + 1, step)
    fr = np.empty(len(starts))
    for k, s in enumerate(starts):
        block = nz[s:s + W] & tri
        fr[k] = (2.0 * block.sum() - block[:, 0].sum()) / (W * W)
    return fr


def apa_p2ll(agg_sum: np.ndarray, agg_n: np.ndarray) -> tuple[float, float]:
    """(P2LL, centre o/e) of an aggregate given as per-pixel sums and counts (2F+1, 2F+1).

    Rows follow the upstream anchor, columns the downstream one; the lower-left 3x3
    corner (last rows, first columns) is the part nearest the diagonal.
    """
    agg = np.divide(agg_sum, agg_n, out=np.full(agg_sum.shape, np.nan), where=agg_n > 0)
    f = agg.shape[0] // 2
    centre = float(agg[f, f])
    ll = agg[-3:, :3]
    if np.isnan(centre) or np.all(np.isnan(ll)) or np.nanmean(ll) <= 0:
        return float("nan"), centre
    return centre / float(np.nanmean(ll)), centre


# ---------------------------------------------------------------------------- helpers


def _read_band(clr, lo: int, hi: int, D: int) -> np.ndarray:
    """Raw counts of bins [lo, hi) as a band (n, D): band[i, d] = count(lo + i, lo + i + d)."""
    n = hi - lo
    band = np.zeros((n, D))
    with clr.open("r") as grp:
        offsets = grp["indexes/bin1_offset"]
        p0, p1 = int(offsets[lo]), int(offsets[hi])
        for a in range(p0, p1, _CHUNK_PIXELS):
            b = min(a + _CHUNK_PIXELS, p1)
            b1 = grp["pixels/bin1_id"][a:b].astype(np.int64) - lo
            b2 = grp["pixels/bin2_id"][a:b].astype(np.int64) - lo
            cnt = grp["pixels/count"][a:b].astype(np.float64)
            d = b2 - b1
            keep = (b2 < n) & (d >= 0) & (d < D)
            band[b1[keep], d[keep]] = cnt[keep]
    return band


def _divisive(clr, weight: str) -> bool:
    """Whether ``weight`` divides counts (hic2cool's KR/VC/VC_SQRT), by the rule of
    :func:`mixhic.pipelines.hic_reader.inspect_hic`: the column's ``divisive_weights``
    attribute, else a hic2cool-made file. (Not ``inspect_hic`` itself: it refuses bin
    tables that do not start at 0, which this report reads fine.)"""
    with clr.open("r") as grp:
        attrs = grp["bins"][weight].attrs
        if "divisive_weights" in attrs:
            return bool(attrs["divisive_weights"])
        generated = str(grp.attrs.get("generated-by", grp.file.attrs.get("generated-by", "")))
    return generated.startswith("hic2cool") and weight in ("KR", "VC", "VC_SQRT")


def _in_range(n: int, D: int) -> np.ndarray:
    """(n, D) bool: i + d inside the chromosome."""
    return np.arange(n)[:, None] + np.arange(D)[None, :] < n


def _balance_band(raw: np.ndarray, w: np.ndarray, divisive: bool):
    """Balanced band and its validity mask (both bins finite, non-zero weight)."""
    n, D = raw.shape
    ok_bin = np.isfinite(w) & (w > 0)
    j = np.minimum(np.arange(n)[:, None] + np.arange(D)[None, :], n - 1)
    ok = _in_range(n, D) & ok_bin[:, None] & ok_bin[j]
    wi, wj = np.where(ok_bin, w, 1.0)[:, None], np.where(ok_bin, w, 1.0)[j]
    bal = raw / (wi * wj) if divisive else raw * wi * wj
    return np.where(ok, bal, 0.0), ok


def _diag_sums(bal: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-diagonal sum and pixel count over valid pixels. -> (D,), (D,)"""
    return np.where(ok, bal, 0.0).sum(0), ok.sum(0).astype(np.float64)


def _loops_by_chrom(bedpe: str, names: list[str], aliases, uri: str) -> dict[str, np.ndarray]:
    """Cis loops of ``bedpe`` per cooler chromosome: (k, 2) anchor midpoints (bp)."""
    t = read_bedpe(bedpe)
    cis = t["chrom1"] == t["chrom2"]
    if len(t["chrom1"]) and not cis.any():
        raise MixHicError(f"{bedpe}: no intra-chromosomal loop (chrom1 == chrom2)")
    file_names = sorted(set(t["chrom1"][cis]))
    match = match_names(names, file_names, aliases)
    if file_names and not match:
        raise MixHicError(f"{bedpe}: no chromosome matches the cooler {uri} (loops on "
                          f"{', '.join(file_names[:8])}; cooler has {', '.join(names[:8])}); "
                          "set `aliases`")
    out = {}
    for chrom, other in match.items():
        sel = cis & (t["chrom1"] == other)
        m1 = (t["start1"][sel] + t["end1"][sel]) // 2
        m2 = (t["start2"][sel] + t["end2"][sel]) // 2
        out[chrom] = np.stack([np.minimum(m1, m2), np.maximum(m1, m2)], axis=1)
    return out


def _loop_bins(mid: np.ndarray, starts: np.ndarray, res: int) -> tuple[np.ndarray, np.ndarray]:
    """Local bins of loop anchors; -1 for anchors outside the bins table."""
    def locate(x):
        k = np.searchsorted(starts, x, side="right") - 1
        return np.where((k >= 0) & (x < starts[np.maximum(k, 0)] + res), k, -1)
    return locate(mid[:, 0]), locate(mid[:, 1])


def _apa_sum(bal, ok, expected, a, b, n, d_lo, d_hi, F):
    """Sum and count of o/e (2F+1, 2F+1) squares around usable loops; and their number."""
    sep = b - a
    use = (a >= F) & (b >= 0) & (b + F < n) & (sep >= d_lo) & (sep <= d_hi)
    a, b = a[use], b[use]
    off = np.arange(-F, F + 1)
    rows = a[:, None, None] + off[None, :, None]  # (k, 2F+1, 1)
    cols = b[:, None, None] + off[None, None, :]  # (k, 1, 2F+1)
    lo, d = np.minimum(rows, cols), np.abs(cols - rows)  # (k, 2F+1, 2F+1)
    val_ok = ok[lo, d] & (expected[d] > 0)
    oe = np.where(val_ok, bal[lo, d] / np.where(val_ok, expected[d], 1.0), 0.0)
    return oe.sum(0), val_ok.sum(0).astype(np.float64), int(len(a))
