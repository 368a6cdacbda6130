"""Region viewer: observed vs predicted contact map, loops and input tracks on one page.

A region (``chr1:0-2000000``, or a whole small chromosome) is read from the genome files
through :class:`~mixhic.serve.regions.GenomeWindows` (so it is normalised exactly as
``mixhic prepare`` and the ``/v1`` routes normalise it) and run through the served
models:

    observed   balanced Hi-C of the region, in the model's training scale    (n, n)
    predicted  the ``hic`` model's diagonal windows (step W/2) averaged      (n, n)
               per pixel; pixels farther than W bins from the diagonal: none
    loops      the ``loops`` model scored on candidate anchor pairs of the region (the
               predict grid, coarsened to a bounded count), called as ``mixhic predict``
               calls them (:mod:`mixhic.serve.loopcall`); known loops from
               ``genome.loops`` (bedpe)
    tracks     the model's input tracks over the region (log2(1 + x), as fed to the
               model), plus the ``cage`` model's prediction per bin when served

Library: :func:`collect_region` (files + models -> :class:`RegionView`),
:func:`report_regions` (the regions ``mixhic predict --report`` shows; the report itself
is :func:`mixhic.predict_region` with ``report=``). The page a view becomes (figures, SVG,
HTML, MLflow artifacts) is :mod:`mixhic.serve.viewer_page`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mixhic.core.errors import MixHicError
from mixhic.pipelines.names import ChromosomeNameError, match_names, resolve_name
from mixhic.pipelines.readers import read_bed, read_bedpe
from mixhic.pipelines.windows import parse_region, slice_epi, slice_hic
from mixhic.serve.config import LoopScan
from mixhic.serve.loopcall import call_loops
from mixhic.serve.plan import diagonal_starts

__all__ = [
    "MAX_VIEW_BINS",
    "MAX_LOOP_WINDOWS",
    "RegionError",
    "Region",
    "Loop",
    "RegionView",
    "parse_view_region",
    "collect_region",
    "report_regions",
    "MAX_REPORTS",
]

log = logging.getLogger(__name__)

#: Largest region a page shows, in Hi-C bins (2 Mb at 5 kb): the map is drawn pixel per bin.
MAX_VIEW_BINS = 600
#: Loop-model windows scored for one page by default (the candidate grid is coarsened to
#: fit): ~1 s for the paper-size model on 2 CPU cores, idle.
MAX_LOOP_WINDOWS = 512
#: Most predicted loops marked (the highest probabilities after suppression).
MAX_LOOPS_SHOWN = 50

Predict = Callable[[str, np.ndarray, "np.ndarray | None", np.ndarray], np.ndarray]


class RegionError(MixHicError):
    """A region that cannot be shown (malformed, unknown chromosome, off the end, too
    large); the message names the region."""


@dataclass(frozen=True)
class Region:
    """Half-open ``[start, end)`` bp of ``chrom``, on whole bins of ``resolution`` bp."""

    chrom: str
    start: int
    end: int
    resolution: int

    @property
    def lo(self) -> int:
        return self.start // self.resolution

    @property
    def hi(self) -> int:
        return self.end // self.resolution

    @property
    def n_bins(self) -> int:
        return self.hi - self.lo

    def __str__(self) -> str:
        return f"{self.chrom}:{self.start}-{self.end}"

    @property
    def label(self) -> str:
        return f"{self.chrom}:{self.start:,}-{self.end:,}"

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{self.chrom}_{self.start}_{self.end}")


@dataclass(frozen=True)
class Loop:
    """An anchor pair (bp, anchor 1 upstream); ``probability`` None for a known loop."""

    kind: str  # "predicted" | "known"
    chrom: str
    start1: int
    end1: int
    start2: int
    end2: int
    probability: float | None = None

    @property
    def mid1(self) -> float:
        return (self.start1 + self.end1) / 2

    @property
    def mid2(self) -> float:
        return (self.start2 + self.end2) / 2


@dataclass
class RegionView:
    """Everything one page shows. Maps are (n, n) over the region's bins in the model's
    training scale (NaN: masked bin / no prediction); tracks are (n * per_bin,) values
    of ``track_bin`` bp each; ``cage`` is (n,) predicted log2(1 + CAGE)."""

    region: Region
    observed: np.ndarray | None = None
    predicted: np.ndarray | None = None
    predicted_loops: list[Loop] = field(default_factory=list)
    known_loops: list[Loop] = field(default_factory=list)
    tracks: dict[str, np.ndarray] = field(default_factory=dict)
    track_bin: int = 0
    cage: np.ndarray | None = None
    models: list[dict[str, Any]] = field(default_factory=list)  # ModelCard.to_json()
    data_files: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    hic_scale: str = ""  # e.g. "log1p_fixed (cap 255)"


# --------------------------------------------------------------------------- regions


def parse_view_region(text: str, chromsizes: Mapping[str, int], resolution: int,
                      min_bins: int = 1, max_bins: int = MAX_VIEW_BINS) -> Region:
    """``chrom:start-end`` (bp; commas allowed) or a chromosome name -> a :class:`Region`
    on whole bins: start rounded down, end up (clipped to the chromosome's last whole
    bin). A region shorter than ``min_bins`` (a model window) is widened around its
    centre. :class:`RegionError` naming the region if malformed, unknown, off the
    chromosome or over ``max_bins``."""
    shown = str(text).strip()
    if not shown or len(shown) > 200 or any(c.isspace() for c in shown):
        raise RegionError(f"region {shown[:200]!r}: expected chrom:start-end, e.g. "
                          f"chr1:0-2000000")
    kind, chrom, start, end = parse_region(shown)
    if kind == "bed" or ":" in chrom:
        raise RegionError(f"region {shown!r}: expected chrom:start-end (bp), e.g. "
                          f"chr1:0-2000000, or a chromosome name")
    try:
        name = resolve_name(chrom, list(chromsizes), "region")
    except ChromosomeNameError:
        known = ", ".join(list(chromsizes)[:10])
        raise RegionError(f"region {shown!r}: unknown chromosome {chrom!r} (known: "
                          f"{known}{', ...' if len(chromsizes) > 10 else ''})") from None
    res = int(resolution)
    n_chrom = int(chromsizes[name]) // res  # whole bins, as prepare and predict use
    if kind == "chrom":
        start, end = 0, n_chrom * res
    if end <= start:
        raise RegionError(f"region {shown!r}: end must be greater than start")
    if start >= n_chrom * res:
        raise RegionError(f"region {shown!r}: starts past the end of {name} "
                          f"({chromsizes[name]:,} bp)")
    lo, hi = start // res, min(-(-end // res), n_chrom)
    if hi - lo > max_bins:
        raise RegionError(f"region {shown!r}: {hi - lo:,} bins of {res:,} bp; a view shows "
                          f"at most {max_bins} bins ({max_bins * res:,} bp): ask for a "
                          f"smaller region")
    if hi - lo < min_bins:
        if n_chrom < min_bins:
            raise RegionError(f"region {shown!r}: {name} has {n_chrom} bins, fewer than a "
                              f"model window ({min_bins} bins)")
        lo = min(max(0, (lo + hi - min_bins) // 2), n_chrom - min_bins)
        hi = lo + min_bins
    return Region(name, lo * res, hi * res, res)


# --------------------------------------------------------------------------- collecting


def _batched(predict: Predict, task: str, epi: np.ndarray, hic: np.ndarray | None,
             batch_size: int, offset: np.ndarray | None = None) -> np.ndarray:
    off = np.zeros(len(epi), np.float32) if offset is None else np.asarray(offset, np.float32)
    outs = [predict(task, epi[i:i + batch_size], None if hic is None else hic[i:i + batch_size],
                    off[i:i + batch_size])
            for i in range(0, len(epi), batch_size)]
    return np.concatenate([np.asarray(o) for o in outs])


def _masked_bins(band: np.ndarray) -> np.ndarray:
    """Rows of a balanced band that are entirely NaN (masked bins), as bool."""
    return np.isnan(band).all(axis=1)


def _predicted_map(gw, card, region: Region, predict: Predict, hic_band: np.ndarray | None,
                   epi_all: np.ndarray, batch_size: int) -> np.ndarray:
    w, n = card.window_bins, region.n_bins
    x = diagonal_starts(n, w, 0)  # offsets into the region
    epi = slice_epi(epi_all, x, x, gw.L, gw.L // w)
    hic = None
    if card.needs_hic:
        hic = gw.hic_transform(slice_hic(hic_band, x, x, w))
    out = _batched(predict, "hic", epi, hic, batch_size).reshape(len(x), w, w)
    total = np.zeros((n, n))
    count = np.zeros((n, n))
    for k, s in enumerate(x):
        total[s:s + w, s:s + w] += out[k]
        count[s:s + w, s:s + w] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _predicted_cage(gw, card, region: Region, predict: Predict, hic_band: np.ndarray | None,
                    epi_all: np.ndarray, batch_size: int) -> np.ndarray:
    w, n = card.window_bins, region.n_bins
    x = diagonal_starts(n, w, 0)
    epi = slice_epi(epi_all, x, x, gw.L, gw.L // w)
    hic = gw.hic_transform(slice_hic(hic_band, x, x, w)) if card.needs_hic else None
    out = _batched(predict, "cage", epi, hic, batch_size).reshape(len(x), w)
    total, count = np.zeros(n), np.zeros(n)
    for k, s in enumerate(x):
        total[s:s + w] += out[k]
        count[s:s + w] += 1
    return total / np.maximum(count, 1)


def _predicted_loops(gw, card, region: Region, predict: Predict, scan, max_windows: int,
                     batch_size: int, notes: list[str]) -> list[Loop]:
    """Score a grid of anchor pairs of the region with the loops model (the scan's grid,
    coarsened to at most ``max_windows`` pairs); the calls, made as ``mixhic predict``
    makes them (:func:`mixhic.serve.loopcall.call_loops` with the scan's settings)."""
    res, w = card.resolution, card.window_bins
    half = w // 2
    n_chrom = gw.chromsizes[region.chrom] // res
    lo, hi = region.start // res, -(-region.end // res)
    # a pair (a, b) is scored in the window centred on it: rows a-half.., cols b-half..
    first, last = max(lo, half), min(hi, n_chrom - w + half)
    dmin = max(1, -(-scan.min_distance // res))
    dmax = scan.max_distance // res
    if last <= first:
        notes.append("loops: the region is too close to the chromosome ends for the "
                     "loop model's window")
        return []
    stride, i, j = scan.stride_bins, None, None
    while True:
        # on the chromosome's grid (multiples of the stride): the predict run's pixels
        anchors = np.arange(-(-first // stride) * stride, last, stride, dtype=np.int64)
        ii, jj = np.meshgrid(anchors, anchors, indexing="ij")
        d = jj - ii
        keep = (d >= dmin) & (d <= dmax)
        i, j = ii[keep], jj[keep]
        if len(i) <= max_windows:
            break
        stride += 1
    if len(i) == 0:
        notes.append(f"loops: no anchor pair {scan.min_distance:,}-{scan.max_distance:,} bp "
                     f"apart in the region")
        return []
    x, y = i - half, j - half
    r0, r1, c0, c1 = int(x.min()), int(x.max()) + w, int(y.min()), int(y.max()) + w
    band = gw.hic_band(region.chrom, (r0, r1), (c0, c1)) if card.needs_hic else None
    skipped = 0
    if band is not None:  # pairs with an unmappable anchor are not scored
        row_masked = _masked_bins(band)
        col_masked = _masked_bins(band.T)
        ok = ~(row_masked[i - r0] | col_masked[j - c0])
        skipped = int((~ok).sum())
        i, j, x, y = i[ok], j[ok], x[ok], y[ok]
    t0, t1 = min(r0, c0), max(r1, c1)
    epi_all = gw.epi_transform(gw.track_bins(region.chrom, t0, t1))
    epi = slice_epi(epi_all, x - t0, y - t0, gw.L, gw.L // w)
    hic = gw.hic_transform(slice_hic(band, x - r0, y - c0, w)) if band is not None else None
    p = _batched(predict, "loops", epi, hic, batch_size, offset=y - x).reshape(-1).astype(
        np.float64)
    rule = scan.call
    if rule.enabled:
        calls = call_loops(i, j, p, threshold=scan.min_probability,
                           cluster_radius=max(rule.cluster_radius_bins, stride),
                           min_separation=rule.min_separation_bp // res, top_n=MAX_LOOPS_SHOWN)
        ci, cj, cp = calls.i, calls.j, calls.probability
    else:
        top = np.argsort(-p, kind="stable")[:MAX_LOOPS_SHOWN]
        top = top[p[top] >= scan.min_probability]
        ci, cj, cp = i[top], j[top], p[top]
    notes.append(f"loops: {len(i):,} anchor pairs scored (every {stride} bin"
                 f"{'s' if stride > 1 else ''}, {scan.min_distance:,}-"
                 f"{min(scan.max_distance, (hi - lo) * res):,} bp apart"
                 + (f"; {skipped} with an unmappable anchor skipped" if skipped else "")
                 + f"); {len(ci)} called at p >= {scan.min_probability:g}"
                 + (f" (max p {p.max():.2f})" if len(p) else ""))
    return [Loop("predicted", region.chrom, int(a) * res, int(a + 1) * res, int(b) * res,
                 int(b + 1) * res, float(q)) for a, b, q in zip(ci, cj, cp)]


def _known_loops(path: str, region: Region, chromsizes: Mapping[str, int]) -> list[Loop]:
    bp = read_bedpe(path)
    spelled = match_names([region.chrom], set(bp["chrom1"].tolist())).get(region.chrom)
    if spelled is None:
        return []
    sel = ((bp["chrom1"] == spelled) & (bp["chrom2"] == spelled)
           & (bp["start1"] >= region.start) & (bp["end2"] <= region.end))
    out = []
    for k in np.flatnonzero(sel):
        a = (int(bp["start1"][k]), int(bp["end1"][k]))
        b = (int(bp["start2"][k]), int(bp["end2"][k]))
        a, b = (a, b) if a <= b else (b, a)
        out.append(Loop("known", region.chrom, *a, *b))
    return out


def collect_region(region: str, cards: Mapping[str, Any], windows: Mapping[str, Any],
                   predict: Predict, known_loops: str | None = None, *, scan=None,
                   max_bins: int = MAX_VIEW_BINS, max_loop_windows: int = MAX_LOOP_WINDOWS,
                   batch_size: int = 32) -> RegionView:
    """Read and predict one region for the page.

    Args:
        region: ``chrom:start-end`` (bp) or a chromosome name.
        cards: ``{task: ModelCard}`` of the models (hic, loops, cage; any subset).
        windows: ``{task: GenomeWindows}`` opened for each card.
        predict: ``predict(task, epi (B, C, 2L), hic (B, W, W) | None)`` -> the task's
            batched output (hic (B, W, W) | loops (B,) | cage (B, W)).
        known_loops: a bedpe of known loops to mark (None: none).
        max_loop_windows: most anchor pairs the loops model scores (0: no loop scan).
        scan: :class:`~mixhic.serve.config.LoopScan`: loop candidates (distances, grid,
            threshold) and calling, as in ``mixhic predict`` (default: its defaults).
    Raises:
        RegionError naming the region (malformed, unknown, off the end, too large).
    """
    if not cards:
        raise MixHicError("models: no model to view")
    scan = scan or LoopScan()
    main = "hic" if "hic" in cards else next(iter(cards))
    card, gw = cards[main], windows[main]
    need = max(c.window_bins * c.resolution for c in cards.values()) // card.resolution
    reg = parse_view_region(region, gw.chromsizes, card.resolution, need, max_bins)
    view = RegionView(region=reg, models=[c.to_json() for c in cards.values()],
                      track_bin=gw.epi_bin)
    lo, hi = reg.lo, reg.hi

    band = None
    if gw.hic is not None:
        band = gw.hic_band(reg.chrom, (lo, hi), (lo, hi))
        masked = _masked_bins(band)
        obs = gw.hic_transform(band[None])[0].astype(np.float64)
        obs[masked, :] = np.nan
        obs[:, masked] = np.nan
        view.observed = obs
        view.hic_scale = gw.norm.hic_transform + (f" (cap {gw.norm.hic_cap:g})" if
                                                  gw.norm.hic_transform == "log1p_fixed" else "")
        if masked.any():
            view.notes.append(f"observed: {int(masked.sum())} masked bins (grey)")
    raw = gw.track_bins(reg.chrom, lo, hi)  # (C, n * per_bin)
    epi_all = gw.epi_transform(raw)
    names = list(card.tracks) or [f"track{k + 1}" for k in range(len(raw))]
    view.tracks = dict(zip(names, epi_all))
    view.data_files = {"Hi-C": gw.hic.uri if gw.hic is not None else None,
                       **{f"track {n}": p for n, p in zip(names, gw.track_paths)},
                       "known loops": known_loops}

    if "hic" in cards:
        view.predicted = _predicted_map(gw, card, reg, predict, band, epi_all, batch_size)
    if "cage" in cards:
        c = cards["cage"]
        if c.resolution == reg.resolution:
            cband = band if band is not None or not c.needs_hic else windows["cage"].hic_band(
                reg.chrom, (lo, hi), (lo, hi))
            cw = windows["cage"]
            cepi = epi_all if cw.L == gw.L and cw.epi_bin == gw.epi_bin else cw.epi_transform(
                cw.track_bins(reg.chrom, lo, hi))
            view.cage = _predicted_cage(cw, c, reg, predict, cband, cepi, batch_size)
        else:
            view.notes.append(f"cage: model at {c.resolution} bp, map at {reg.resolution} bp: "
                              f"not shown")
    if "loops" in cards and max_loop_windows > 0:
        view.predicted_loops = _predicted_loops(windows["loops"], cards["loops"], reg, predict,
                                                scan, max_loop_windows, batch_size,
                                                view.notes)
    if known_loops:
        view.known_loops = _known_loops(known_loops, reg, gw.chromsizes)
    if view.predicted is not None:
        w = card.window_bins
        view.notes.append(f"predicted: {len(diagonal_starts(reg.n_bins, w, 0))} windows of "
                          f"{w} bins (step {max(1, w // 2)}), averaged where they overlap; "
                          f"nothing beyond {w} bins from the diagonal")
    return view


#: Most pages ``mixhic predict --report`` writes (one per region, the first ones).
MAX_REPORTS = 5


def report_regions(cfg, chromsizes: Mapping[str, int], resolution: int) -> list[str]:
    """The regions of a predict run to report: its ``regions`` (else the first of
    ``regions_bed``, else the first 2 Mb of its first chromosome), each cut to its first
    :data:`MAX_VIEW_BINS` bins, at most :data:`MAX_REPORTS`."""
    texts = list(cfg.regions)
    if not texts and cfg.regions_bed:
        bed = read_bed(cfg.regions_bed)
        texts = [f"{c}:{s}-{e}" for c, s, e in zip(bed["chrom"][:MAX_REPORTS],
                                                   bed["start"][:MAX_REPORTS],
                                                   bed["end"][:MAX_REPORTS])]
    if not texts:
        texts = [cfg.chroms[0] if cfg.chroms else next(iter(chromsizes))]
    out = []
    span = min(2_000_000 // resolution, MAX_VIEW_BINS) * resolution
    for text in texts[:MAX_REPORTS]:
        reg = parse_view_region(text, chromsizes, resolution, max_bins=2**62)
        end = min(reg.end, reg.start + span)
        if end < reg.end:
            log.info("report: %s cut to its first %d bp", reg, span)
        out.append(f"{reg.chrom}:{reg.start}-{end}")
    return out
