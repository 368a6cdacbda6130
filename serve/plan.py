"""Which windows ``mixhic predict`` runs: regions, window grids, unmappable anchors.

Pure numpy over bin indices (plus the Hi-C file's weight column for the mask), so the
driver and every Ray Data actor compute the same plan of a (task, chromosome)
independently and only chunk bounds travel:

* :func:`resolve_regions`   ``regions`` / ``regions_bed`` -> merged bp intervals per
                            chromosome, with errors naming the region and its source
* :func:`plan_windows`      the full grid: diagonal windows (hic, cage) or loop
                            candidates centred on anchor pairs (loops)
* :func:`plan_chromosome`   that grid restricted to regions, minus windows whose anchors
                            are unmappable (counted): a :class:`WindowPlan`
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from mixhic.core.errors import MixHicError
from mixhic.pipelines.names import ChromosomeNameError, resolve_name
from mixhic.serve.config import PredictConfig

__all__ = ["resolve_regions", "region_bins", "plan_windows", "WindowPlan", "plan_chromosome",
           "masked_bins", "plan_for"]

# --------------------------------------------------------------------------- regions


def resolve_regions(cfg: PredictConfig, chromsizes: dict[str, int], source: str
                    ) -> dict[str, np.ndarray] | None:
    """``cfg.regions`` and ``cfg.regions_bed`` -> ``{chrom: (R, 2) int64 [start, end) bp}``
    (canonical names, merged, sorted), or None when neither is set (whole chromosomes).

    Names are matched to the Hi-C file ``source`` (``1`` = ``chr1``); an unknown
    chromosome, ``start >= end`` or an end past the chromosome is a :class:`MixHicError`
    naming the region and where it came from. A bare chromosome name is the whole of it.
    """
    # lazy: pulls readers (+8.5 ms) and windows (+5.6 ms) into mixhic predict --help
    from mixhic.pipelines import readers
    from mixhic.pipelines.windows import merge_regions, parse_region

    if not cfg.regions and not cfg.regions_bed:
        return None
    items: list[tuple[str, int | None, int | None, str]] = []
    for k, entry in enumerate(cfg.regions):
        kind, name, start, end = parse_region(entry)
        where = f"regions[{k}] ({entry!r})"
        if kind == "bed" or (kind == "chrom" and (":" in name or "-" in name)):
            raise MixHicError(f"{where}: expected chrom:start-end (bp), e.g. chr1:0-2000000; "
                              f"give BED files with --regions-bed")
        items.append((name, start, end, where))
    if cfg.regions_bed:
        path = readers.local_path(cfg.regions_bed, "regions_bed")
        bed = readers.read_bed(path)
        if len(bed["chrom"]) == 0:
            raise MixHicError(f"regions_bed: {path} holds no region")
        items += [(str(c), int(a), int(b), f"regions_bed {path} (region {n + 1}, {c}:{a}-{b})")
                  for n, (c, a, b) in enumerate(zip(bed["chrom"], bed["start"], bed["end"]))]
    got: dict[str, list[tuple[int, int]]] = {}
    for name, start, end, where in items:
        try:
            chrom = resolve_name(name, list(chromsizes), f"{where}: in the Hi-C file {source}")
        except ChromosomeNameError as exc:  # predict has no aliases: say what matches
            raise MixHicError(str(exc).replace(
                "check the names or set an alias in `aliases`",
                "check the name (chr1 and 1 match each other)")) from None
        size = chromsizes[chrom]
        a, b = (0, size) if start is None else (start, end)
        if a >= b:
            raise MixHicError(f"{where}: region {name}:{a}-{b} is empty (start >= end)")
        if b > size:
            raise MixHicError(f"{where}: region {name}:{a}-{b} ends past the end of {chrom} "
                              f"({size} bp in {source})")
        got.setdefault(chrom, []).append((a, b))
    order = [c for c in chromsizes if c in got]
    return {c: merge_regions([a for a, _ in got[c]], [b for _, b in got[c]]) for c in order}


def region_bins(regions_bp: np.ndarray | None, n_bins: int, resolution: int
                 ) -> np.ndarray | None:
    """bp regions -> (R, 2) bins ``[lo, hi)`` of the bins they touch, within ``n_bins``."""
    if regions_bp is None:
        return None
    r = np.asarray(regions_bp, np.int64).reshape(-1, 2)
    lo = r[:, 0] // resolution
    hi = np.minimum(-(-r[:, 1] // resolution), n_bins)
    keep = lo < hi
    return np.c_[lo[keep], hi[keep]]


# --------------------------------------------------------------------------- planning


def diagonal_starts(n_bins: int, window_bins: int, step_bins: int) -> np.ndarray:
    """Starts (bins, int64) of the diagonal windows of hic/cage prediction: every
    ``step_bins`` (0: half a window) plus the last whole window, so the end is covered."""
    last = n_bins - window_bins
    if last < 0:
        return np.zeros(0, np.int64)
    step = step_bins or max(1, window_bins // 2)
    return np.unique(np.append(np.arange(0, last + 1, step, dtype=np.int64), last))


def loop_anchor_grid(n_bins: int, window_bins: int, resolution: int,
                     loops) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The loop-candidate grid: anchor bins ``a`` (every ``loops.stride_bins``, each with a
    whole window centred on it) and, per anchor, the index range ``[lo, hi)`` of the
    anchors between ``min_distance`` and ``max_distance`` downstream of it."""
    half, last = window_bins // 2, n_bins - window_bins
    if last < 0:
        empty = np.zeros(0, np.int64)
        return empty, empty.copy(), empty.copy()
    dmin = max(-(-loops.min_distance // resolution), 1)
    dmax = loops.max_distance // resolution
    anchors = np.arange(half, last + half + 1, loops.stride_bins, dtype=np.int64)
    lo = np.searchsorted(anchors, anchors + dmin, side="left")
    hi = np.searchsorted(anchors, anchors + dmax, side="right")
    return anchors, lo, hi


def plan_windows(task: str, n_bins: int, window_bins: int, resolution: int,
                 step_bins: int, loops) -> tuple[np.ndarray, np.ndarray]:
    """Window starts ``(x, y)`` (bin indices, int64) of ``task`` on a chromosome of ``n_bins``
    whole bins. Diagonal grid for hic/cage (covering the end); loop candidates centred on
    anchor pairs of the ``loops.stride_bins`` grid for loops (sorted by anchor i, then j)."""
    if task in ("hic", "cage"):
        x = diagonal_starts(n_bins, window_bins, step_bins)
        return x, x.copy()
    half = window_bins // 2
    anchors, lo, hi = loop_anchor_grid(n_bins, window_bins, resolution, loops)
    count = np.maximum(hi - lo, 0)
    i = np.repeat(anchors, count)
    first = np.repeat(lo, count)
    k = np.arange(int(count.sum()), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    j = anchors[first + k]
    return i - half, j - half


@dataclass(frozen=True)
class WindowPlan:
    """The windows of one (task, chromosome) to predict, and what was left out."""

    x: np.ndarray  # (N,) int64 window starts (bins)
    y: np.ndarray  # (N,) int64
    unmappable: int  # windows skipped for unmappable anchors
    inside: np.ndarray | None  # (n_bins,) bool: bins written (None: all)
    n_bins: int  # whole bins of the chromosome
    n_windows: int  # N (kept by :meth:`counts_only`)

    def counts_only(self) -> WindowPlan:
        """The plan without its window arrays (what a driver needs to track a chromosome
        of tens of millions of loop candidates)."""
        empty = np.zeros(0, np.int64)
        return dataclasses.replace(self, x=empty, y=empty)


def plan_chromosome(task: str, n_bins: int, window_bins: int, resolution: int,
                    step_bins: int, loops, regions: np.ndarray | None = None,
                    masked: np.ndarray | None = None) -> WindowPlan:
    """:func:`plan_windows` restricted to ``regions`` ((R, 2) bins ``[lo, hi)``, None: the
    whole chromosome) minus windows with unmappable anchors (``masked``: (n_bins,) bool,
    None: none). hic/cage windows tile each region (one centred window for a region
    shorter than W) and are skipped when every bin is masked; loop candidates keep the
    chromosome's grid, need both anchors in one region and are skipped when anchor i or
    j is masked."""
    w = window_bins
    inside = None
    if task in ("hic", "cage"):
        if regions is None:
            x, _ = plan_windows(task, n_bins, w, resolution, step_bins, loops)
        else:
            inside = np.zeros(n_bins, bool)
            xs = [np.zeros(0, np.int64)]
            for lo, hi in np.asarray(regions, np.int64).reshape(-1, 2).tolist():
                inside[lo:hi] = True
                if hi - lo < w:
                    lo = min(max(0, lo - (w - (hi - lo)) // 2), n_bins - w)
                    hi = lo + w
                if lo < 0:
                    continue
                xs.append(plan_windows(task, hi - lo, w, resolution, step_bins, loops)[0] + lo)
            x = np.unique(np.concatenate(xs))
        y = x
        if masked is not None and len(x):
            cum = np.r_[0, np.cumsum(masked.astype(np.int64))]
            bad = (cum[x + w] - cum[x]) == w
        else:
            bad = np.zeros(len(x), bool)
    else:
        x, y = plan_windows(task, n_bins, w, resolution, step_bins, loops)
        half = w // 2
        if regions is not None:
            rid = np.full(n_bins, -1, np.int64)
            for k, (lo, hi) in enumerate(np.asarray(regions, np.int64).reshape(-1, 2).tolist()):
                rid[lo:hi] = k
            keep = (rid[x + half] >= 0) & (rid[x + half] == rid[y + half])
            x, y = x[keep], y[keep]
        bad = (masked[x + half] | masked[y + half]) if masked is not None else \
            np.zeros(len(x), bool)
    return WindowPlan(x[~bad].copy(), y[~bad].copy(), int(bad.sum()), inside, n_bins,
                      int((~bad).sum()))


def masked_bins(gw, chrom: str, n_bins: int, enabled: bool) -> np.ndarray | None:
    """Bins of ``chrom`` with no balancing weight (NaN or 0) in the model's Hi-C file."""
    # lazy: pulls pipelines.readers (+8.5 ms) into mixhic predict --help
    from mixhic.pipelines import readers

    if not enabled or gw.hic is None or gw.hic.weight is None:
        return None
    clr = readers.open_cooler(gw.hic.uri)
    return readers.read_bin_mask(clr, gw.hic, chrom, 0, n_bins)


def plan_for(cfg: PredictConfig, gw, task: str, chrom: str,
             regions_bp: dict[str, np.ndarray] | None) -> WindowPlan:
    """The plan of (task, chrom), as both the driver and the actors compute it."""
    card = gw.card
    n_bins = gw.chromsizes[chrom] // card.resolution
    regions = region_bins(None if regions_bp is None else regions_bp[chrom], n_bins,
                          card.resolution)
    masked = masked_bins(gw, chrom, n_bins, cfg.skip_unmappable)
    return plan_chromosome(task, n_bins, card.window_bins, card.resolution, cfg.step_bins,
                           cfg.loops, regions, masked)
