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

Everything here is pure numpy and tested without Ray or files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mixhic.pipelines.names import name_key

__all__ = [
    "grid_windows",
    "loop_anchor_bins",
    "loop_windows",
    "sample_negatives",
    "tss_windows",
    "assign_split",
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
) -> tuple[np.ndarray, np.ndarray]:
    """Distance-matched negative anchor pairs ``(i, j)`` with non-zero contact.

    Distances are drawn from the positives' distances (in bins) plus a uniform integer
    jitter of +-``jitter_bins`` (a box-kernel density estimate), clipped to
    ``[min_bins, max_bins]``; ``i`` is uniform over the anchors whose centred window fits
    the chromosome (and ``i_range`` when given, e.g. the chunk's rows). A candidate is
    kept if ``has_contact(i, j)`` is true, it is farther than ``exclude_bins`` (Chebyshev)
    from every positive, and it is new. Deterministic for a given ``rng`` state.

    Returns at most ``n_negatives`` pairs (fewer when the chromosome cannot supply them).
    """
    pos_i = np.asarray(pos_i, dtype=np.int64)
    pos_j = np.asarray(pos_j, dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    if n_negatives <= 0 or pos_i.size == 0:
        return empty, empty
    half = window_bins // 2
    lo_i, hi_i = half, n_bins - window_bins + half  # centred window fits: [i-half, j-half+W)
    if i_range is not None:
        lo_i, hi_i = max(lo_i, i_range[0]), min(hi_i, i_range[1])
    if hi_i <= lo_i:
        return empty, empty
    dists = pos_j - pos_i
    pos_keys = set()
    if exclude_bins >= 0:
        r = np.arange(-exclude_bins, exclude_bins + 1)
        di, dj = np.meshgrid(r, r, indexing="ij")
        ii = (pos_i[:, None] + di.ravel()[None, :]).ravel()
        jj = (pos_j[:, None] + dj.ravel()[None, :]).ravel()
        pos_keys = set((ii * n_bins + jj).tolist())
    taken: set[int] = set()
    out_i: list[int] = []
    out_j: list[int] = []
    for _ in range(max_rounds):
        need = n_negatives - len(out_i)
        if need <= 0:
            break
        m = max(4 * need, 16)
        d = rng.choice(dists, size=m) + rng.integers(-jitter_bins, jitter_bins + 1, size=m)
        d = np.clip(d, min_bins, max_bins)
        i = rng.integers(lo_i, hi_i, size=m)
        j = i + d
        ok = j - half + window_bins <= n_bins
        i, j = i[ok], j[ok]
        if i.size == 0:
            continue
        ok = np.asarray(has_contact(i, j), dtype=bool)
        for a, b in zip(i[ok].tolist(), j[ok].tolist()):
            key = a * n_bins + b
            if key in pos_keys or key in taken:
                continue
            taken.add(key)
            out_i.append(a)
            out_j.append(b)
            if len(out_i) == n_negatives:
                break
    return np.asarray(out_i, dtype=np.int64), np.asarray(out_j, dtype=np.int64)


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
