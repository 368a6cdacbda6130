"""Normalisation and QC of windows: pure numpy, tested without files or Ray.

Hi-C (``hic_transform``), from balanced contacts brought back to count scale (see
``hic_reader.inspect_hic``'s multiplier):

    ``log1p_fixed`` (default)  v = min(log1p(c), log1p(cap)) / log1p(cap), in [0, 1].
        With ``cap = 255`` this is the paper's "clip at 255, divide by the chromosome
        maximum" on a log scale: on real 5 kb maps the chromosome maximum after clipping
        is 255, so a fixed cap gives the same divisor without a genome-wide pass, and
        every chunk of a chromosome is scaled identically (chunks are independent tasks).
    ``log1p_window_max``      v = log1p(c) / max(log1p(c)) per window (per-sample scaling).
    ``log1p``                 v = log1p(c), unscaled.
    ``none``                  v = c.
    Masked bins (NaN) become 0; the count of masked bins is kept in the QC columns.

Epigenomic tracks (``epi_transform``): ``log2p1`` = log2(1 + max(x, 0)) (the paper's
fine-tuning transform; negative values, e.g. of a signed track, are clipped at 0 first),
or ``none`` to keep the values as read.

QC (``window_qc``): fraction of non-zero (finite, > 0) pixels, whether any pixel is
+-inf, the number of masked bins of a window, and blacklist overlap.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "HIC_MODES",
    "EPI_MODES",
    "hic_transform",
    "epi_transform",
    "nonzero_fraction",
    "has_infinite",
    "masked_bin_counts",
    "blacklist_overlap",
]

HIC_MODES = ("log1p_fixed", "log1p_window_max", "log1p", "none")
EPI_MODES = ("log2p1", "none")


def hic_transform(windows: np.ndarray, mode: str = "log1p_fixed", cap: float = 255.0) -> np.ndarray:
    """(N, W, W) balanced contacts (NaN = masked) -> (N, W, W) float32 model input."""
    if mode not in HIC_MODES:
        raise ValueError(f"hic transform must be one of {HIC_MODES}, got {mode!r}")
    x = np.array(windows, dtype=np.float32)  # a copy: the steps below work in place
    bad = ~np.isfinite(x)
    np.maximum(x, 0.0, out=x)
    if bad.any():
        x[bad] = 0.0
    if mode == "none":
        return x
    np.log1p(x, out=x)
    if mode == "log1p_fixed":
        top = np.float32(np.log1p(cap))
        np.minimum(x, top, out=x)
        x /= top
    elif mode == "log1p_window_max":
        m = x.reshape(len(x), -1).max(axis=1) if len(x) else np.zeros(0, np.float32)
        m[m == 0] = 1.0
        x /= m[:, None, None]
    return x


def epi_transform(values: np.ndarray, mode: str = "log2p1") -> np.ndarray:
    """Track values (any shape) -> float32 model input."""
    if mode not in EPI_MODES:
        raise ValueError(f"epi transform must be one of {EPI_MODES}, got {mode!r}")
    x = np.asarray(values, dtype=np.float32)
    if mode == "none":
        return x
    x = np.maximum(x, 0.0)
    np.log2(1.0 + x, out=x)
    return x


def nonzero_fraction(windows: np.ndarray) -> np.ndarray:
    """(N, W, W) -> (N,) float32: fraction of pixels that are finite and > 0."""
    n = len(windows)
    if n == 0:
        return np.zeros(0, np.float32)
    flat = windows.reshape(n, -1)
    return (flat > 0).mean(axis=1).astype(np.float32)  # NaN > 0 is False


def has_infinite(windows: np.ndarray) -> np.ndarray:
    """(N, ...) -> (N,) bool: any +-inf value."""
    n = len(windows)
    return np.isinf(windows.reshape(n, -1)).any(axis=1) if n else np.zeros(0, bool)


def masked_bin_counts(
    masked: np.ndarray, x: np.ndarray, y: np.ndarray, window_bins: int
) -> np.ndarray:
    """Masked bins of each window, counting the union of its x- and y-anchor bins.

    Args:
        masked: (B,) bool per bin of the band; ``x``/``y`` window offsets into it.
    Returns:
        (N,) int16.
    """
    cs = np.concatenate([[0], np.cumsum(masked, dtype=np.int64)])
    x = np.asarray(x, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    w = window_bins
    count = (cs[x + w] - cs[x]) + (cs[y + w] - cs[y])
    lo = np.maximum(x, y)
    hi = np.minimum(x, y) + w
    overlap = np.where(hi > lo, cs[np.clip(hi, 0, len(masked))] - cs[np.minimum(lo, len(masked))], 0)
    return (count - overlap).astype(np.int16)


def blacklist_overlap(
    starts: np.ndarray, length: int, bl_starts: np.ndarray, bl_ends: np.ndarray
) -> np.ndarray:
    """(N,) bool: ``[start, start+length)`` overlaps any blacklist interval (one chromosome).

    ``bl_starts``/``bl_ends`` need not be sorted or disjoint.
    """
    starts = np.asarray(starts, dtype=np.int64)
    if len(bl_starts) == 0 or len(starts) == 0:
        return np.zeros(len(starts), dtype=bool)
    order = np.argsort(bl_starts)
    s = np.asarray(bl_starts, dtype=np.int64)[order]
    e = np.maximum.accumulate(np.asarray(bl_ends, dtype=np.int64)[order])
    # the last interval starting before the window's end; with running-max ends it
    # overlaps iff that running end passes the window's start
    k = np.searchsorted(s, starts + length, side="left") - 1
    return (k >= 0) & (e[np.maximum(k, 0)] > starts)
