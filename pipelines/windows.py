"""Window plans: where the windows of each dataset sit, and slicing them from memory.

Geometry. A window is ``W`` Hi-C bins per axis. Its x-anchor (rows) covers bins
``[x, x+W)`` and its y-anchor (columns) ``[y, y+W)`` of one chromosome; ``y >= x`` always
(the upper triangle; ``y == x`` on the diagonal). Coordinates are bin indices within the
chromosome; ``x_start = x * resolution`` in bp. Windows never cross a chromosome end:
plans drop windows with ``x < 0`` or ``y + W > n_bins``.

Datasets:
    pretrain / hic  a grid: ``x_k = floor(k * step_bp / resolution)`` (the paper's
                    62,500 bp step is 12.5 bins at 5 kb, so starts snap down to a bin),
                    ``y = x + offset`` for each configured offset (0 = diagonal).
    loops           one window centred on each bedpe anchor pair ``(i, j)`` (anchor
                    midpoints' bins): ``x = i - W//2``, ``y = j - W//2``, so the loop pixel
                    sits at ``(W//2, W//2)``; plus distance-matched negatives with
                    non-zero contact (:func:`sample_negatives`).
    cage            diagonal windows centred on each TSS bin: ``x = y = t - W//2``.

Splits. ``val``/``test`` are sets of non-overlapping regions (whole chromosomes, or
``chrom:start-end``, or BED intervals; see :func:`parse_region`). A window's extent is
``[x_start, y_start + W*resolution)`` in bp: it belongs to a split when the extent lies
inside one region of that split, to ``train`` when it overlaps no val/test region, and it
is dropped when it crosses a split boundary (:func:`window_split_codes`).

Hard negatives for loops (:func:`sample_negative_mix`), a mix of kinds
(:data:`NEGATIVE_KINDS`): ``distance`` (distance-matched pixels with contact, the paper's
protocol), ``high_contact`` (distance-matched pixels in the top quantile of contact at
their distance), ``near_loop`` (pixels a few bins, Chebyshev, from a true loop) and
``anchor_signal`` (pairs whose two anchors are both in the top quantile of summed track
signal). Every negative has contact, fits the chromosome, stays farther than
``exclude_bins`` from every loop and does not cross a split boundary.

Everything here is pure numpy and tested without Ray or files.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mixhic.pipelines.names import name_key

__all__ = [
    "grid_windows",
    "loop_anchor_bins",
    "loop_windows",
    "sample_negatives",
    "NEGATIVE_KINDS",
    "negative_quotas",
    "near_loop_candidates",
    "high_contact_negatives",
    "anchor_signal_negatives",
    "sample_negative_mix",
    "tss_windows",
    "assign_split",
    "SPLIT_NAMES",
    "parse_region",
    "merge_regions",
    "window_split_codes",
    "chunk_ranges",
    "slice_hic",
    "slice_epi",
]


def grid_windows(
    n_bins: int,
    window_bins: int,
    step_bp: int,
    resolution: int,
    offsets_bp: Sequence[int] = (0,),
) -> tuple[np.ndarray, np.ndarray]:
    """Grid windows of a chromosome of ``n_bins`` bins: ``(x, y)`` int64 arrays, sorted by x.

    ``offsets_bp`` are the y - x distances (multiples of ``resolution``; 0 = diagonal).
    """
    if step_bp <= 0:
        raise ValueError(f"step_bp must be positive, got {step_bp}")
    last = n_bins - window_bins  # largest valid start
    if last < 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    k_max = (last * resolution) // step_bp
    starts = np.unique((np.arange(k_max + 1, dtype=np.int64) * step_bp) // resolution)
    xs, ys = [], []
    for off in offsets_bp:
        if off % resolution or off < 0:
            raise ValueError(f"offset {off} bp is not a non-negative multiple of {resolution}")
        d = off // resolution
        x = starts[starts + d <= last]
        xs.append(x)
        ys.append(x + d)
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    order = np.lexsort((y, x))
    return x[order], y[order]


def loop_anchor_bins(
    start1: np.ndarray, end1: np.ndarray, start2: np.ndarray, end2: np.ndarray, resolution: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bins of the anchor midpoints, ordered ``i <= j``, and the midpoint distance in bp."""
    m1 = (np.asarray(start1) + np.asarray(end1)) // 2
    m2 = (np.asarray(start2) + np.asarray(end2)) // 2
    lo, hi = np.minimum(m1, m2), np.maximum(m1, m2)
    return lo // resolution, hi // resolution, hi - lo


def loop_windows(
    i: np.ndarray, j: np.ndarray, n_bins: int, window_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows centred on anchor pairs: ``(x, y, keep)``; ``keep`` False past chromosome edges."""
    half = window_bins // 2
    x = np.asarray(i, dtype=np.int64) - half
    y = np.asarray(j, dtype=np.int64) - half
    keep = (x >= 0) & (y + window_bins <= n_bins) & (y >= x)
    return x, y, keep


def _pixel_keys(i: np.ndarray, j: np.ndarray, n_bins: int) -> np.ndarray:
    return np.asarray(i, dtype=np.int64) * n_bins + np.asarray(j, dtype=np.int64)


def _exclusion_keys(pos_i: np.ndarray, pos_j: np.ndarray, n_bins: int, radius: int) -> np.ndarray:
    """Sorted unique keys of every pixel within Chebyshev ``radius`` of a positive."""
    if radius < 0 or len(pos_i) == 0:
        return np.zeros(0, dtype=np.int64)
    r = np.arange(-radius, radius + 1)
    di, dj = np.meshgrid(r, r, indexing="ij")
    ii = (np.asarray(pos_i, np.int64)[:, None] + di.ravel()[None, :]).ravel()
    jj = (np.asarray(pos_j, np.int64)[:, None] + dj.ravel()[None, :]).ravel()
    return np.unique(ii * n_bins + jj)


class _Candidates:
    """The rules every negative pixel obeys; ``ok(i, j)`` checks them all at once."""

    def __init__(self, pos_i, pos_j, n_bins, window_bins, min_bins, max_bins, i_range,
                 exclude_bins, exclude_i, exclude_j, allowed, taken):
        self.n_bins, self.w = n_bins, window_bins
        self.half = window_bins // 2
        self.min_bins, self.max_bins = min_bins, max_bins
        lo, hi = self.half, n_bins - window_bins + self.half  # centred window fits
        if i_range is not None:
            lo, hi = max(lo, i_range[0]), min(hi, i_range[1])
        self.lo_i, self.hi_i = lo, hi
        ei = np.concatenate([np.asarray(pos_i, np.int64), np.asarray(
            exclude_i if exclude_i is not None else [], np.int64)])
        ej = np.concatenate([np.asarray(pos_j, np.int64), np.asarray(
            exclude_j if exclude_j is not None else [], np.int64)])
        self.excluded = _exclusion_keys(ei, ej, n_bins, exclude_bins)
        self.allowed = allowed
        self.taken = taken if taken is not None else set()

    def geometric(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Inside the chromosome and the row range, distance in range, not near a loop."""
        d = j - i
        ok = (i >= self.lo_i) & (i < self.hi_i) & (j - self.half + self.w <= self.n_bins)
        ok &= (d >= self.min_bins) & (d <= self.max_bins)
        if len(self.excluded):
            ok &= ~np.isin(_pixel_keys(i, j, self.n_bins), self.excluded)
        if self.allowed is not None and ok.any():
            ok[ok] = np.asarray(self.allowed(i[ok], j[ok]), dtype=bool)
        return ok

    def take(self, i: np.ndarray, j: np.ndarray, limit: int) -> tuple[list[int], list[int]]:
        """Accept new pixels in order (no repeats, not taken before), at most ``limit``."""
        out_i: list[int] = []
        out_j: list[int] = []
        for a, b in zip(i.tolist(), j.tolist()):
            if len(out_i) >= limit:
                break
            key = a * self.n_bins + b
            if key in self.taken:
                continue
            self.taken.add(key)
            out_i.append(a)
            out_j.append(b)
        return out_i, out_j


def sample_negatives(
    pos_i: np.ndarray,
    pos_j: np.ndarray,
    n_negatives: int,
    n_bins: int,
    window_bins: int,
    has_contact: Callable[[np.ndarray, np.ndarray], np.ndarray],
    rng: np.random.Generator,
    min_bins: int,
    max_bins: int,
    i_range: tuple[int, int] | None = None,
    jitter_bins: int = 2,
    exclude_bins: int = 2,
    max_rounds: int = 50,
    *,
    exclude_i: np.ndarray | None = None,
    exclude_j: np.ndarray | None = None,
    allowed: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    taken: set[int] | None = None,
    _rules: _Candidates | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Distance-matched negative anchor pairs ``(i, j)`` with non-zero contact.

    Distances are drawn from the positives' distances (in bins) plus a uniform integer
    jitter of +-``jitter_bins`` (a box-kernel density estimate), clipped to
    ``[min_bins, max_bins]``; ``i`` is uniform over the anchors whose centred window fits
    the chromosome (and ``i_range`` when given, e.g. the chunk's rows). A candidate is
    kept if ``has_contact(i, j)`` is true, it is farther than ``exclude_bins`` (Chebyshev)
    from every positive (and every ``exclude_i/exclude_j`` pixel: loops of neighbouring
    chunks), ``allowed(i, j)`` holds (e.g. its window crosses no split boundary), and it
    is new (not in ``taken``, a set of ``i * n_bins + j`` keys that is updated).
    Deterministic for a given ``rng`` state.

    Returns at most ``n_negatives`` pairs (fewer when the chromosome cannot supply them).
    """
    pos_i = np.asarray(pos_i, dtype=np.int64)
    pos_j = np.asarray(pos_j, dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    if n_negatives <= 0 or pos_i.size == 0:
        return empty, empty
    rules = _rules or _Candidates(pos_i, pos_j, n_bins, window_bins, min_bins, max_bins, i_range,
                                  exclude_bins, exclude_i, exclude_j, allowed, taken)
    if rules.hi_i <= rules.lo_i:
        return empty, empty
    dists = pos_j - pos_i
    out_i: list[int] = []
    out_j: list[int] = []
    for _ in range(max_rounds):
        need = n_negatives - len(out_i)
        if need <= 0:
            break
        m = max(4 * need, 16)
        d = rng.choice(dists, size=m) + rng.integers(-jitter_bins, jitter_bins + 1, size=m)
        d = np.clip(d, min_bins, max_bins)
        i = rng.integers(rules.lo_i, rules.hi_i, size=m)
        j = i + d
        ok = rules.geometric(i, j)
        i, j = i[ok], j[ok]
        if i.size == 0:
            continue
        ok = np.asarray(has_contact(i, j), dtype=bool)
        a, b = rules.take(i[ok], j[ok], need)
        out_i += a
        out_j += b
    return np.asarray(out_i, dtype=np.int64), np.asarray(out_j, dtype=np.int64)


NEGATIVE_KINDS = ("distance", "high_contact", "near_loop", "anchor_signal")


def negative_quotas(n: int, mix: Mapping[str, float]) -> dict[str, int]:
    """Split ``n`` negatives over the kinds of ``mix`` (fractions) by largest remainder.

    Deterministic: ties go to the earlier kind of :data:`NEGATIVE_KINDS`. Sums to ``n``.
    """
    unknown = set(mix) - set(NEGATIVE_KINDS)
    if unknown:
        raise ValueError(f"unknown negative kinds {sorted(unknown)} (known: {', '.join(NEGATIVE_KINDS)})")
    kinds = [k for k in NEGATIVE_KINDS if mix.get(k, 0) > 0]
    total = sum(mix[k] for k in kinds)
    if n <= 0 or not kinds:
        return {k: 0 for k in kinds}
    exact = {k: n * mix[k] / total for k in kinds}
    out = {k: int(np.floor(v)) for k, v in exact.items()}
    rest = n - sum(out.values())
    order = sorted(kinds, key=lambda k: (-(exact[k] - out[k]), NEGATIVE_KINDS.index(k)))
    for k in order[:rest]:
        out[k] += 1
    return out


def near_loop_candidates(
    pos_i: np.ndarray, pos_j: np.ndarray, min_bins: int, max_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Unique pixels at Chebyshev distance ``[min_bins, max_bins]`` from a positive, sorted.

    (Pixels nearer to another positive are still included; callers exclude them.)
    """
    r = np.arange(-max_bins, max_bins + 1)
    di, dj = np.meshgrid(r, r, indexing="ij")
    cheb = np.maximum(np.abs(di), np.abs(dj))
    ring = (cheb >= min_bins) & (cheb <= max_bins)
    di, dj = di[ring], dj[ring]
    i = (np.asarray(pos_i, np.int64)[:, None] + di[None]).ravel()
    j = (np.asarray(pos_j, np.int64)[:, None] + dj[None]).ravel()
    pairs = np.unique(np.stack([i, j], 1), axis=0).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def _pick(rng: np.random.Generator, i: np.ndarray, j: np.ndarray, rules: _Candidates,
          k: int) -> tuple[list[int], list[int]]:
    """``k`` of the candidate pixels at random (a seeded permutation), new ones only."""
    if k <= 0 or len(i) == 0:
        return [], []
    order = rng.permutation(len(i))
    return rules.take(i[order], j[order], k)


def high_contact_negatives(
    pos_i: np.ndarray, pos_j: np.ndarray, k: int,
    contact: Callable[[np.ndarray, np.ndarray], np.ndarray],
    rng: np.random.Generator, rules: _Candidates, jitter_bins: int = 2,
    top: float = 0.2, max_rounds: int = 20,
) -> tuple[list[int], list[int]]:
    """Distance-matched pixels in the top ``top`` fraction of contact at their distance.

    Distances are drawn like :func:`sample_negatives`; for each distance ``d`` the
    candidates are every valid pixel ``(i, i + d)`` of the row range; those whose contact is
    at or above the ``1 - top`` quantile of the candidates (and non-zero) are eligible.
    """
    dists = np.asarray(pos_j, np.int64) - np.asarray(pos_i, np.int64)
    out_i: list[int] = []
    out_j: list[int] = []
    if k <= 0 or len(dists) == 0 or rules.hi_i <= rules.lo_i:
        return out_i, out_j
    rows = np.arange(rules.lo_i, rules.hi_i, dtype=np.int64)
    for _ in range(max_rounds):
        need = k - len(out_i)
        if need <= 0:
            break
        d = rng.choice(dists, size=need) + rng.integers(-jitter_bins, jitter_bins + 1, size=need)
        d = np.clip(d, rules.min_bins, rules.max_bins)
        got = 0
        for dist, count in zip(*np.unique(d, return_counts=True)):
            i = rows
            j = rows + dist
            ok = rules.geometric(i, j)
            i, j = i[ok], j[ok]
            if len(i) == 0:
                continue
            v = np.asarray(contact(i, j), dtype=np.float64)
            thr = np.quantile(v, 1.0 - top)
            sel = (v >= thr) & (v > 0)
            a, b = _pick(rng, i[sel], j[sel], rules, min(int(count), k - len(out_i)))
            out_i += a
            out_j += b
            got += len(a)
        if got == 0:
            break
    return out_i, out_j


def anchor_signal_negatives(
    k: int, score: np.ndarray, contact: Callable[[np.ndarray, np.ndarray], np.ndarray],
    rng: np.random.Generator, rules: _Candidates, top: float = 0.1,
) -> tuple[list[int], list[int]]:
    """Pairs of bins whose anchors are both in the top ``top`` of ``score`` (no loop).

    Args:
        score: (n_bins,) summed track signal per Hi-C bin of the chromosome; NaN where
            unknown (outside the chunk's band). The quantile is taken over known bins.
    """
    score = np.asarray(score, dtype=np.float64)
    known = np.isfinite(score)
    if k <= 0 or not known.any():
        return [], []
    thr = np.quantile(score[known], 1.0 - top)
    strong = np.flatnonzero(known & (score >= thr) & (score > 0))
    rows = strong[(strong >= rules.lo_i) & (strong < rules.hi_i)]
    if len(rows) == 0:
        return [], []
    i = np.repeat(rows, len(strong))
    j = np.tile(strong, len(rows))
    ok = rules.geometric(i, j)
    i, j = i[ok], j[ok]
    if len(i):
        ok = np.asarray(contact(i, j), dtype=np.float64) > 0
        i, j = i[ok], j[ok]
    return _pick(rng, i, j, rules, k)


def sample_negative_mix(
    pos_i: np.ndarray,
    pos_j: np.ndarray,
    quotas: Mapping[str, int],
    n_bins: int,
    window_bins: int,
    contact: Callable[[np.ndarray, np.ndarray], np.ndarray],
    rng: np.random.Generator,
    min_bins: int,
    max_bins: int,
    *,
    i_range: tuple[int, int] | None = None,
    jitter_bins: int = 2,
    exclude_bins: int = 2,
    exclude_i: np.ndarray | None = None,
    exclude_j: np.ndarray | None = None,
    allowed: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    anchor_score: np.ndarray | None = None,
    high_contact_top: float = 0.2,
    anchor_top: float = 0.1,
    near_bins: tuple[int, int] = (2, 5),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Negatives of several kinds: ``(i, j, kind)``, ``kind`` a str array of kind names.

    ``quotas``: negatives per kind (:func:`negative_quotas`). Hard kinds are drawn first
    (``near_loop``, ``high_contact``, ``anchor_signal``); what they cannot supply is made
    up with ``distance`` negatives, so the total stays ``sum(quotas)`` when the chromosome
    allows. ``contact(i, j)`` gives the contact of pixels (0 where unknown);
    ``anchor_score`` is per bin (see :func:`anchor_signal_negatives`). Rules shared by all
    kinds: see :func:`sample_negatives`. Near-loop pixels sit at Chebyshev distance
    ``max(near_bins[0], exclude_bins + 1) .. near_bins[1]`` from a loop of this call.
    Deterministic for a given ``rng`` state.
    """
    pos_i = np.asarray(pos_i, dtype=np.int64)
    pos_j = np.asarray(pos_j, dtype=np.int64)
    total = int(sum(quotas.values()))
    empty = np.zeros(0, dtype=np.int64)
    if total <= 0 or pos_i.size == 0:
        return empty, empty, np.zeros(0, dtype="<U13")
    rules = _Candidates(pos_i, pos_j, n_bins, window_bins, min_bins, max_bins, i_range,
                        exclude_bins, exclude_i, exclude_j, allowed, None)

    def has_contact(i, j):
        return np.asarray(contact(i, j), dtype=np.float64) > 0

    got: dict[str, tuple[list[int], list[int]]] = {}
    k = quotas.get("near_loop", 0)
    if k > 0:
        ci, cj = near_loop_candidates(pos_i, pos_j, max(near_bins[0], exclude_bins + 1),
                                      near_bins[1])
        ok = rules.geometric(ci, cj)
        ci, cj = ci[ok], cj[ok]
        if len(ci):
            ok = has_contact(ci, cj)
            ci, cj = ci[ok], cj[ok]
        got["near_loop"] = _pick(rng, ci, cj, rules, k)
    k = quotas.get("high_contact", 0)
    if k > 0:
        got["high_contact"] = high_contact_negatives(pos_i, pos_j, k, contact, rng, rules,
                                                     jitter_bins, high_contact_top)
    k = quotas.get("anchor_signal", 0)
    if k > 0 and anchor_score is not None:
        got["anchor_signal"] = anchor_signal_negatives(k, anchor_score, contact, rng, rules,
                                                       anchor_top)
    k = total - sum(len(a) for a, _ in got.values())
    if k > 0:
        di, dj = sample_negatives(pos_i, pos_j, k, n_bins, window_bins, has_contact, rng,
                                  min_bins, max_bins, jitter_bins=jitter_bins, _rules=rules)
        got["distance"] = (di.tolist(), dj.tolist())
    kinds = [kind for kind in NEGATIVE_KINDS if kind in got]
    i = np.asarray([a for kind in kinds for a in got[kind][0]], dtype=np.int64)
    j = np.asarray([b for kind in kinds for b in got[kind][1]], dtype=np.int64)
    kind = np.asarray([kind for kind in kinds for _ in got[kind][0]], dtype="<U13")
    return i, j, kind


def tss_windows(
    positions: np.ndarray, n_bins: int, window_bins: int, resolution: int
) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal windows centred on TSS bins (one per distinct bin): ``(x, y)``, sorted."""
    t = np.unique(np.asarray(positions, dtype=np.int64) // resolution)
    x = t - window_bins // 2
    x = x[(x >= 0) & (x + window_bins <= n_bins)]
    return x, x.copy()


def assign_split(chrom: str, val: Iterable[str], test: Iterable[str]) -> str:
    """``train`` / ``val`` / ``test`` for ``chrom``; names compared spelling-independently."""
    key = name_key(chrom)
    if key in {name_key(c) for c in test}:
        return "test"
    if key in {name_key(c) for c in val}:
        return "val"
    return "train"


SPLIT_NAMES = ("train", "val", "test")  # split codes 0, 1, 2; -1 = crosses a boundary

_REGION = re.compile(r"^(?P<chrom>[^:\s]+):(?P<start>[0-9][0-9,_]*)-(?P<end>[0-9][0-9,_]*)$")


def parse_region(entry: str) -> tuple[str, str, int | None, int | None]:
    """One ``splits`` entry: ``(kind, name, start, end)``.

    ``kind`` is ``"bed"`` (``name`` = the path; entries ending in ``.bed``/``.bed.gz`` or
    holding a ``/``), ``"region"`` (``chr1:1,000,000-2,000,000``; bp, commas or ``_``
    allowed, half-open) or ``"chrom"`` (a whole chromosome; start/end None).
    """
    text = str(entry).strip()
    if text.lower().endswith((".bed", ".bed.gz")) or "/" in text:
        return "bed", text, None, None
    m = _REGION.match(text)
    if m:
        num = lambda t: int(t.replace(",", "").replace("_", ""))  # noqa: E731
        return "region", m["chrom"], num(m["start"]), num(m["end"])
    return "chrom", text, None, None


def merge_regions(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Sorted union of half-open intervals (touching ones merged): (R, 2) int64."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if len(starts) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    out: list[list[int]] = []
    for s, e in zip(starts[order].tolist(), ends[order].tolist()):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return np.asarray(out, dtype=np.int64)


def window_split_codes(start_bp: np.ndarray, end_bp: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Split code of each window extent ``[start_bp, end_bp)``: 0 train, 1 val, 2 test, -1 crossing.

    Args:
        regions: (R, 3) int64 ``[start, end, code]`` of one chromosome's val (1) and test
            (2) regions, sorted by start, non-overlapping (touching regions of one split
            merged). A window inside one region gets its code; a window overlapping none
            is train; any other window crosses a split boundary.
    """
    s = np.asarray(start_bp, dtype=np.int64)
    e = np.asarray(end_bp, dtype=np.int64)
    out = np.zeros(len(s), dtype=np.int8)
    regions = np.asarray(regions, dtype=np.int64).reshape(-1, 3)
    if len(regions) == 0 or len(s) == 0:
        return out
    rs, re_, rc = regions[:, 0], regions[:, 1], regions[:, 2]
    k = np.searchsorted(re_, s, side="right")  # first region ending after the window starts
    kc = np.minimum(k, len(regions) - 1)
    overlap = (k < len(regions)) & (rs[kc] < e)
    inside = overlap & (rs[kc] <= s) & (e <= re_[kc])
    out[overlap] = -1
    out[inside] = rc[kc][inside]
    return out


def chunk_ranges(n_bins: int, chunk_bins: int) -> list[tuple[int, int]]:
    """Consecutive ``[lo, hi)`` ranges of window x-starts covering ``[0, n_bins)``."""
    return [(lo, min(lo + chunk_bins, n_bins)) for lo in range(0, n_bins, chunk_bins)]


def slice_hic(band: np.ndarray, x: np.ndarray, y: np.ndarray, window_bins: int) -> np.ndarray:
    """Windows from an in-memory band: ``band[x:x+W, y:y+W]`` for every pair at once.

    Args:
        band: (R, C) matrix block; ``x``/``y`` are row/column offsets into it.
    Returns:
        (N, W, W) copy, same dtype as ``band``.
    """
    if len(x) == 0:
        return np.zeros((0, window_bins, window_bins), dtype=band.dtype)
    view = sliding_window_view(band, (window_bins, window_bins))  # (R-W+1, C-W+1, W, W)
    return view[np.asarray(x), np.asarray(y)]


def slice_epi(
    tracks: np.ndarray, x: np.ndarray, y: np.ndarray, length: int, per_bin: int
) -> np.ndarray:
    """Per-window epi: x-anchor bins then y-anchor bins for every track.

    Args:
        tracks: (C, E) binned signal; ``x``/``y`` are Hi-C bin offsets into it, each Hi-C bin
            holding ``per_bin`` epi bins; ``length`` = epi bins per anchor (W * per_bin).
    Returns:
        (N, C, 2 * length) float32.
    """
    n = len(x)
    c = tracks.shape[0]
    out = np.empty((n, c, 2 * length), dtype=np.float32)
    if n == 0:
        return out
    view = sliding_window_view(tracks, length, axis=1)  # (C, E-L+1, L)
    out[:, :, :length] = view[:, np.asarray(x) * per_bin].transpose(1, 0, 2)
    out[:, :, length:] = view[:, np.asarray(y) * per_bin].transpose(1, 0, 2)
    return out
