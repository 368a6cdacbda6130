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

Rendering is server-side and self-contained (matplotlib -> inline SVG, no script, no
external URL), so the page works on an offline machine and as a saved file. DOM hooks:
``#contact-map`` (figure; ``data-chrom/start/end/resolution/bins``), SVG groups
``.loop-mark`` (``data-kind`` predicted|known, ``data-start1``, ``data-start2``,
``data-probability``), ``#tracks`` (figure; one ``#track-<name>`` SVG group per track),
``#loops`` (table, one ``tr.loop-row`` per loop), ``#identity`` (models and files).

Library: :func:`collect_region` (files + models -> :class:`RegionView`),
:func:`render_region_html` (pure), :func:`region_figure` (one matplotlib figure, for
PNG), :func:`write_region_report`, :func:`log_region_report` (MLflow artifact when a run
is active, else a file), :func:`report_regions` (the regions ``mixhic predict --report``
shows; the report itself is :func:`mixhic.predict_region` with ``report=``).
"""

from __future__ import annotations

import html
import io
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
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
    "render_region_html",
    "region_figure",
    "write_region_report",
    "log_region_report",
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


# --------------------------------------------------------------------------- drawing

_FIG_W = 7.0  # inches, both figures (same width and margins: the x axes line up)
_LEFT, _MAP_W, _CBAR_GAP, _CBAR_W = 0.8, 5.4, 0.15, 0.14  # inches
_TRACK_H, _TRACK_GAP = 0.62, 0.12
_COLORS = {"predicted": "#1565c0", "known": "#00897b"}
_TRACK_COLORS = ["#5e35b1", "#ef6c00", "#2e7d32", "#6d4c41", "#c2185b", "#00838f"]


def _cmap():
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list(
        "mixhic-fall", ["#ffffff", "#fff5c2", "#fec44f", "#f07c2c", "#c0262d", "#5a0c18"]
    ).with_extremes(bad="#d9d9d9")


def _map_image(view: RegionView) -> tuple[np.ndarray, float]:
    """(n, n) picture: observed above the diagonal, predicted below; and the colour max."""
    n = view.region.n_bins
    obs = view.observed if view.observed is not None else np.full((n, n), np.nan)
    pred = view.predicted if view.predicted is not None else np.full((n, n), np.nan)
    upper = np.triu(np.ones((n, n), bool))
    img = np.where(upper, obs, pred)
    ref = obs[upper & np.isfinite(obs)] if np.isfinite(obs).any() else pred[np.isfinite(pred)]
    vmax = float(np.percentile(ref, 99.5)) if ref.size else 1.0
    return img, vmax if vmax > 0 else 1.0


def _mb(x: float, _pos=None) -> str:
    return f"{x / 1e6:.2f}"


def _draw_map(fig, rect: tuple[float, float, float, float],
              cbar_rect: tuple[float, float, float, float], view: RegionView):
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    reg = view.region
    ax = fig.add_axes(rect, gid="map-axes")
    img, vmax = _map_image(view)
    extent = (reg.start, reg.end, reg.end, reg.start)
    im = ax.imshow(img, cmap=_cmap(), vmin=0.0, vmax=vmax, extent=extent,
                   interpolation="nearest", aspect="equal")
    ax.plot([reg.start, reg.end], [reg.start, reg.end], color="#555555", lw=0.6, alpha=0.6)
    ax.set_xlim(reg.start, reg.end)
    ax.set_ylim(reg.end, reg.start)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(_mb))
        axis.set_major_locator(MaxNLocator(6))
    ax.xaxis.tick_top()
    ax.tick_params(labelsize=8, length=3)
    ax.set_ylabel(f"{reg.chrom} (Mb)", fontsize=9)
    box = {"boxstyle": "round,pad=0.25", "fc": "white", "ec": "none", "alpha": 0.85}
    ax.text(0.98, 0.03, "predicted", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=9, color="#333333", bbox=box)
    ax.text(0.98, 0.97, "observed", transform=ax.transAxes, ha="right", va="top", fontsize=9,
            color="#333333", bbox=box)
    # known loops on the observed triangle (row = anchor 1, col = anchor 2), predicted on
    # the predicted triangle (mirrored); one SVG group per mark (ids made into classes)
    for k, lp in enumerate(view.known_loops):
        ax.scatter([lp.mid2], [lp.mid1], s=70, marker="s", facecolors="none",
                   edgecolors=_COLORS["known"], linewidths=1.4, gid=f"loop-known-{k}", zorder=3)
    if view.known_loops and view.predicted_loops:  # known loops faintly on the predicted side
        ax.scatter([lp.mid1 for lp in view.known_loops], [lp.mid2 for lp in view.known_loops],
                   s=45, marker="s", facecolors="none", edgecolors=_COLORS["known"],
                   linewidths=0.9, alpha=0.55, zorder=2)
    for k, lp in enumerate(view.predicted_loops):
        ax.scatter([lp.mid1], [lp.mid2], s=40 + 80 * (lp.probability or 0), marker="o",
                   facecolors="none", edgecolors=_COLORS["predicted"], linewidths=1.4,
                   gid=f"loop-predicted-{k}", zorder=3)
    cax = fig.add_axes(cbar_rect, gid="colorbar")
    cb = fig.colorbar(im, cax=cax)
    cb.ax.tick_params(labelsize=7, length=2)
    cb.set_label(f"contacts ({view.hic_scale or 'model scale'})", fontsize=8)
    return ax


def _track_rows(view: RegionView) -> list[tuple[str, str, np.ndarray, int, str]]:
    """(id, label, values, bp per value, colour) of each drawn track."""
    rows = [(f"track-{_slug(name)}", f"{name}", vals, view.track_bin,
             _TRACK_COLORS[k % len(_TRACK_COLORS)]) for k, (name, vals) in
            enumerate(view.tracks.items())]
    if view.cage is not None:
        rows.append(("track-predicted-cage", "CAGE (pred.)", view.cage, view.region.resolution,
                     "#ad1457"))
    return rows


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", str(name))


def _pool(values: np.ndarray, step: int, max_points: int = 1500) -> tuple[np.ndarray, int]:
    """Mean-pool a track to at most ``max_points`` values (the figure has ~1,000 px)."""
    values = np.asarray(values, dtype=np.float64)
    k = max(1, -(-len(values) // max_points))
    n = len(values) // k * k
    if k > 1:
        values = values[:n].reshape(-1, k).mean(axis=1)
    return values, step * k


def _draw_tracks(fig, top: float, view: RegionView) -> list:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    reg = view.region
    fh = fig.get_figheight()
    axes = []
    rows = _track_rows(view)
    for k, (gid, label, vals, step, color) in enumerate(rows):
        y = top - (k + 1) * _TRACK_H - k * _TRACK_GAP
        ax = fig.add_axes((_LEFT / _FIG_W, y / fh, _MAP_W / _FIG_W, _TRACK_H / fh), gid=gid)
        v, s = _pool(vals, step)
        x = reg.start + np.arange(len(v) + 1) * s
        ax.stairs(v, x, fill=True, color=color, alpha=0.85, lw=0)
        ax.set_xlim(reg.start, reg.end)
        top_v = float(np.nanmax(v)) if v.size and np.isfinite(v).any() else 0.0
        ax.set_ylim(0, top_v * 1.05 if top_v > 0 else 1.0)
        ax.set_yticks([0, top_v] if top_v > 0 else [0])
        ax.yaxis.set_major_formatter(FuncFormatter(lambda t, _p: f"{t:.2g}"))
        ax.tick_params(labelsize=7, length=2)
        ax.text(0.005, 0.97, label, transform=ax.transAxes, ha="left", va="top", fontsize=8,
                color=color, fontweight="bold",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if k < len(rows) - 1:
            ax.set_xticklabels([])
        else:
            ax.xaxis.set_major_formatter(FuncFormatter(_mb))
            ax.xaxis.set_major_locator(MaxNLocator(6))
            ax.set_xlabel(f"{reg.chrom} (Mb) · tracks: log2(1 + signal), as fed to the model",
                          fontsize=8)
        axes.append(ax)
    return axes


def _tracks_height(view: RegionView) -> float:
    n = len(_track_rows(view))
    return n * _TRACK_H + max(0, n - 1) * _TRACK_GAP


def _map_figure(view: RegionView):
    from matplotlib.figure import Figure

    top, bottom = 0.45, 0.1
    h = top + _MAP_W + bottom
    fig = Figure(figsize=(_FIG_W, h))
    _draw_map(fig, (_LEFT / _FIG_W, bottom / h, _MAP_W / _FIG_W, _MAP_W / h),
              ((_LEFT + _MAP_W + _CBAR_GAP) / _FIG_W, (bottom + _MAP_W * 0.25) / h,
               _CBAR_W / _FIG_W, _MAP_W * 0.5 / h), view)
    return fig


def _tracks_figure(view: RegionView):
    from matplotlib.figure import Figure

    top, bottom = 0.08, 0.45
    h = top + _tracks_height(view) + bottom
    fig = Figure(figsize=(_FIG_W, h))
    _draw_tracks(fig, h - top, view)
    return fig


def region_figure(view: RegionView):
    """Map over tracks in one matplotlib ``Figure`` (for a PNG / ``mlflow.log_figure``)."""
    from matplotlib.figure import Figure

    top, gap, bottom = 0.65, 0.2, 0.45
    th = _tracks_height(view)
    h = top + _MAP_W + gap + th + bottom
    fig = Figure(figsize=(_FIG_W, h))
    map_bottom = h - top - _MAP_W
    _draw_map(fig, (_LEFT / _FIG_W, map_bottom / h, _MAP_W / _FIG_W, _MAP_W / h),
              ((_LEFT + _MAP_W + _CBAR_GAP) / _FIG_W, (map_bottom + _MAP_W * 0.25) / h,
               _CBAR_W / _FIG_W, _MAP_W * 0.5 / h), view)
    _draw_tracks(fig, map_bottom - gap, view)
    fig.suptitle(f"{view.region.label} · {view.region.resolution:,} bp bins", fontsize=10,
                 y=1 - 0.12 / h, va="top")
    return fig


_OWN_ID = re.compile(r"^(map-axes|colorbar|track-.*|loop-(known|predicted)-\d+)$")


def _svg(fig, prefix: str, marks: Mapping[str, tuple[str, str]] | None = None) -> str:
    """The figure as an inline ``<svg>`` (text kept as text); ``marks`` maps an SVG group
    id to extra attributes added to it (class, data-*) and a tooltip (its ``<title>``).
    Matplotlib's own ids (figure_1,
    clip paths, ...) get ``prefix``, so that two figures on one page share none."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "mixhic",
                                "svg.image_inline": True}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "mixhic"})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    ids = {m for m in re.findall(r'\bid="([^"]+)"', text) if not _OWN_ID.match(m)}
    text = re.sub(r'\bid="([^"]+)"',
                  lambda m: f'id="{prefix}{m[1]}"' if m[1] in ids else m[0], text)
    text = re.sub(r'(url\(#|href="#)([^)"]+)',
                  lambda m: f"{m[1]}{prefix}{m[2]}" if m[2] in ids else m[0], text)
    for gid, (attrs, title) in (marks or {}).items():
        text = text.replace(f'<g id="{gid}">',
                            f'<g id="{gid}" {attrs}><title>{_e(title)}</title>', 1)
    return text


# --------------------------------------------------------------------------- the page

_CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",
       sans-serif; color:var(--ink); background:var(--bg); }
header { padding:14px 24px 10px; background:#fff; border-bottom:1px solid var(--line); }
header h1 { margin:0; font-size:20px; font-weight:600; }
header .sub { margin:2px 0 0; color:var(--muted); font-size:13px; }
.legend { display:inline-flex; gap:14px; margin-left:8px; }
.sw { display:inline-block; width:11px; height:11px; border:2px solid; vertical-align:-1px;
      margin-right:4px; }
.sw.pred { border-color:#1565c0; border-radius:50%; }
.sw.known { border-color:#00897b; }
main { display:grid; grid-template-columns: minmax(520px, 760px) minmax(300px, 1fr);
       gap:18px; padding:16px 24px 24px; align-items:start; }
.panel { background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px; }
figure { margin:0; }
figure svg { display:block; width:100%; height:auto; }
h2 { font-size:14px; margin:0 0 8px; text-transform:uppercase; letter-spacing:.04em;
     color:var(--muted); }
aside .panel + .panel { margin-top:14px; }
table { border-collapse:collapse; width:100%; font-size:12.5px; }
th, td { text-align:left; padding:3px 8px 3px 0; border-bottom:1px solid var(--line);
         vertical-align:top; }
th { color:var(--muted); font-weight:500; white-space:nowrap; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
code { font:12px ui-monospace,SFMono-Regular,Menlo,monospace; word-break:break-all; }
.model { margin-bottom:10px; }
.model h3 { margin:6px 0 4px; font-size:13px; }
.tag { display:inline-block; padding:0 6px; border-radius:9px; background:#e3f2fd;
       color:#0d47a1; font-size:11.5px; margin-left:4px; }
ul.notes { margin:0; padding-left:18px; color:var(--muted); font-size:12.5px; }
.scroll { max-height:280px; overflow:auto; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _mark_attrs(view: RegionView) -> dict[str, tuple[str, str]]:
    marks = {}
    for kind, loops in (("known", view.known_loops), ("predicted", view.predicted_loops)):
        for k, lp in enumerate(loops):
            prob = "" if lp.probability is None else f' data-probability="{lp.probability:.4f}"'
            title = (f"{kind} loop {lp.chrom}:{lp.start1:,}-{lp.end1:,} x "
                     f"{lp.start2:,}-{lp.end2:,}"
                     + ("" if lp.probability is None else f" p={lp.probability:.3f}"))
            marks[f"loop-{kind}-{k}"] = (
                f'class="loop-mark {kind}" data-kind="{kind}" data-chrom="{_e(lp.chrom)}" '
                f'data-start1="{lp.start1}" data-start2="{lp.start2}"{prob}', title)
    return marks


def _identity_html(view: RegionView) -> str:
    parts = []
    for m in view.models:
        version = f" v{_e(m.get('version'))}" if m.get("version") else ""
        rows = [("source", f"<code>{_e(m.get('source'))}</code>"),
                ("mode", _e(m.get("mode"))),
                ("preset", _e(m.get("preset"))),
                ("MLflow run", f"<code>{_e(m.get('run_id'))}</code>" if m.get("run_id") else "—"),
                ("resolution", f"{int(m.get('resolution', 0)):,} bp"),
                ("window", f"{m.get('window_bins')} bins · {m.get('epi_bins')} × "
                           f"{int(m.get('epi_bin', 0)):,} bp track bins per anchor"),
                ("tracks", _e(", ".join(m.get("tracks") or [])) or "—")]
        body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
        parts.append(f'<div class="model" data-task="{_e(m.get("task"))}" '
                     f'data-name="{_e(m.get("name"))}"><h3>{_e(m.get("name"))}{version}'
                     f'<span class="tag">{_e(m.get("task"))}</span></h3>'
                     f"<table>{body}</table></div>")
    files = "".join(f"<tr><th>{_e(k)}</th><td><code>{_e(v)}</code></td></tr>"
                    for k, v in view.data_files.items() if v)
    return (f'<section class="panel" id="identity"><h2>Model and data</h2>{"".join(parts)}'
            f'<table class="files">{files}</table></section>')


def _loops_html(view: RegionView) -> str:
    rows = []
    for lp in view.known_loops + view.predicted_loops:
        prob = "—" if lp.probability is None else f"{lp.probability:.3f}"
        pattr = "" if lp.probability is None else f' data-probability="{lp.probability:.4f}"'
        rows.append(
            f'<tr class="loop-row {lp.kind}" data-kind="{lp.kind}" data-chrom="{_e(lp.chrom)}" '
            f'data-start1="{lp.start1}" data-end1="{lp.end1}" data-start2="{lp.start2}" '
            f'data-end2="{lp.end2}"{pattr}><td>{lp.kind}</td><td class="num">{lp.start1:,}</td>'
            f'<td class="num">{lp.start2:,}</td><td class="num">'
            f'{(lp.start2 - lp.start1) / 1e3:,.0f} kb</td><td class="num">{prob}</td></tr>')
    body = "".join(rows) or '<tr><td colspan="5">no loops in this region</td></tr>'
    return (f'<section class="panel" id="loops-panel"><h2>Loops ({len(view.known_loops)} known, '
            f'{len(view.predicted_loops)} predicted)</h2><div class="scroll"><table id="loops">'
            f"<thead><tr><th>kind</th><th>anchor 1</th><th>anchor 2</th><th>distance</th>"
            f"<th>p</th></tr></thead><tbody>{body}</tbody></table></div></section>")


def render_region_html(view: RegionView, title: str | None = None) -> str:
    """The self-contained page of ``view`` (inline SVG and CSS; no script, no URL)."""
    reg = view.region
    map_svg = _svg(_map_figure(view), "m-", _mark_attrs(view))
    tracks_svg = _svg(_tracks_figure(view), "t-") if _track_rows(view) else ""
    track_names = ",".join(_e(n) for n in view.tracks)
    title = title or f"mixhic · {reg.label}"
    tasks = ", ".join(_e(m.get("task")) for m in view.models)
    notes = "".join(f"<li>{_e(n)}</li>" for n in view.notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body>
<header><h1 id="region">{_e(reg.label)}</h1>
<p class="sub">{reg.n_bins} bins of {reg.resolution:,} bp · models: {tasks} ·
upper triangle observed, lower triangle predicted
<span class="legend"><span><span class="sw known"></span>known loop</span>
<span><span class="sw pred"></span>predicted loop</span></span></p></header>
<main>
<section class="panel" id="viewer">
<figure id="contact-map" data-chrom="{_e(reg.chrom)}" data-start="{reg.start}"
 data-end="{reg.end}" data-resolution="{reg.resolution}" data-bins="{reg.n_bins}"
 data-observed="{int(view.observed is not None)}"
 data-predicted="{int(view.predicted is not None)}">{map_svg}</figure>
<figure id="tracks" data-tracks="{track_names}">{tracks_svg}</figure>
</section>
<aside>
{_identity_html(view)}
{_loops_html(view)}
<section class="panel" id="notes"><h2>Notes</h2><ul class="notes">{notes}</ul></section>
</aside>
</main>
</body></html>
"""


# --------------------------------------------------------------------------- outputs


def write_region_report(path: str | Path, view: RegionView) -> Path:
    """Write the page of ``view`` as a static HTML file (atomically); return its path."""
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_region_html(view), encoding="utf-8")
    os.replace(tmp, path)
    return path


def log_region_report(view: RegionView, out_dir: str | Path | None = None,
                      artifact_dir: str = "viewer") -> dict[str, str]:
    """Log the region's page (HTML) and plot (PNG) to the active MLflow run, if any; write
    them under ``out_dir`` when no run is active (and also when ``out_dir`` is given).
    Returns ``{"html": ..., "png": ...}``: file paths, or artifact paths of the run."""
    name = view.region.slug
    out: dict[str, str] = {}
    run = None
    try:
        import mlflow

        run = mlflow.active_run()
    except ImportError:  # pragma: no cover - mlflow is a dependency
        mlflow = None
    if run is not None:
        page = render_region_html(view)
        mlflow.log_text(page, f"{artifact_dir}/{name}.html")
        mlflow.log_figure(region_figure(view), f"{artifact_dir}/{name}.png")
        out = {"html": f"{artifact_dir}/{name}.html", "png": f"{artifact_dir}/{name}.png"}
        log.info("logged the %s viewer to MLflow run %s", view.region, run.info.run_id)
    if out_dir is not None:
        html_path = write_region_report(Path(out_dir) / f"{name}.html", view)
        png_path = Path(out_dir) / f"{name}.png"
        region_figure(view).savefig(png_path, dpi=110)
        out = {"html": str(html_path), "png": str(png_path)}
        log.info("wrote %s", html_path)
    elif run is None:
        raise MixHicError("out_dir: required when no MLflow run is active")
    return out


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
