"""Trivial baselines, scored on exactly the rows a model is evaluated on.

A metric means little without the figure a trivial predictor reaches on the same rows;
:func:`mixhic.platform.evaluate.evaluate_model` reports these as ``baseline_*`` beside the
model and the difference as ``gain_*``. Numpy (the loop scores reuse the loop head's torch
feature functions), no Ray.

- Hi-C (:class:`DistanceExpected`): the expected contact at each genomic distance, from
  the train split's maps (per chromosome where the chromosome has training windows,
  else pooled over chromosomes). Windows off the diagonal count by their true distance
  ``offset + j - i`` bins, not by their within-window diagonal.
- Loops (:func:`loop_baseline_scores`), one score per window, higher = more loop-like:
  ``oe`` the loop pixel against the mean of the other pixels on its window diagonal (the
  same genomic distance: observed / expected); ``donut`` and ``lowerleft`` the pixel
  against its HiCCUPS-style local backgrounds (Peakachu/HiCCUPS); ``anchor_signal`` the
  summed track signal in the two anchor bins. Values are on the model's log scale, so
  differences are log ratios; AUROC only depends on the order.
- CAGE (:class:`TrackLinearFit`): a least-squares linear fit, on the train split, of
  each bin's CAGE value on the mean signal of every track in that bin (+ intercept).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mixhic.models.heads import LOOP_FEATURES, anchor_signal, loop_contrast_features
from mixhic.models.tasks import HIC_INPUT_MODES, observed_pixels

__all__ = [
    "DistanceExpected",
    "TrackLinearFit",
    "LOOP_BASELINES",
    "loop_baseline_scores",
    "loop_reference_baselines",
    "window_distances",
    "bin_track_means",
]

#: Loop baselines, in the column order of :func:`loop_baseline_scores`: the loop head's
#: own features (:data:`mixhic.models.heads.LOOP_FEATURES`) less the raw centre value.
LOOP_BASELINES = LOOP_FEATURES[1:]


def window_distances(offsets: Any, window_bins: int) -> np.ndarray:
    """(N, W, W) int64 genomic distance in bins of every pixel: ``|offset + j - i|``."""
    off = np.asarray(offsets, dtype=np.int64).reshape(-1)
    i = np.arange(window_bins)
    return np.abs(off[:, None, None] + i[None, None, :] - i[None, :, None])


class DistanceExpected:
    """Mean contact per genomic distance, per chromosome and pooled (streamed).

        >>> exp = DistanceExpected()
        >>> exp.add(train_maps, train_offsets, train_chroms)      # per batch
        >>> pred = exp.predict(test_offsets, test_chroms, W)      # (N, W, W)
    """

    def __init__(self) -> None:
        self._sums: dict[str, np.ndarray] = {}
        self._counts: dict[str, np.ndarray] = {}

    def add(self, maps: Any, offsets: Any, chroms: Sequence[str]) -> None:
        """maps (N, W, W) on the model's scale, offsets (N,) bins, chroms (N,) names;
        NaN and unobserved pixels (:func:`mixhic.models.tasks.observed_pixels`) are left
        out."""
        m = np.asarray(maps, dtype=np.float64)
        n, w, _ = m.shape
        d = window_distances(offsets, w)  # (N, W, W)
        seen = observed_pixels(np.nan_to_num(m))  # masked bins' zeros are not contacts
        chroms = np.asarray(chroms).astype(str)
        for c in np.unique(chroms):
            rows = chroms == c
            dd, mm = d[rows].ravel(), m[rows].ravel()
            ok = np.isfinite(mm) & seen[rows].ravel()
            self._accumulate(str(c), dd[ok], mm[ok])
            self._accumulate("", dd[ok], mm[ok])

    def _accumulate(self, key: str, d: np.ndarray, v: np.ndarray) -> None:
        size = int(d.max()) + 1 if d.size else 0
        s = np.bincount(d, weights=v, minlength=size)
        k = np.bincount(d, minlength=size).astype(np.float64)
        old_s = self._sums.get(key, np.zeros(0))
        old_k = self._counts.get(key, np.zeros(0))
        n = max(len(old_s), len(s))
        self._sums[key] = np.pad(old_s, (0, n - len(old_s))) + np.pad(s, (0, n - len(s)))
        self._counts[key] = np.pad(old_k, (0, n - len(old_k))) + np.pad(k, (0, n - len(k)))

    def table(self, chrom: str | None = None) -> np.ndarray:
        """Expected per distance 0..max (NaN where no training pixel had that distance);
        ``chrom=None`` pooled."""
        key = "" if chrom is None else str(chrom)
        if key not in self._sums:
            raise KeyError(key)
        k = self._counts[key]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(k > 0, self._sums[key] / np.where(k > 0, k, 1), np.nan)

    @staticmethod
    def _lookup(tab: np.ndarray, d: np.ndarray) -> np.ndarray:
        known = np.flatnonzero(np.isfinite(tab))
        # distances never seen take the nearest seen distance's value
        pos = np.clip(np.searchsorted(known, d), 0, len(known) - 1)
        left = np.clip(pos - 1, 0, len(known) - 1)
        near = np.where(np.abs(known[left] - d) < np.abs(known[pos] - d), known[left],
                        known[pos])
        return tab[near]

    def predict(self, offsets: Any, chroms: Sequence[str], window_bins: int) -> np.ndarray:
        """(N, W, W) float64: the expected map of every window."""
        if "" not in self._sums:
            raise ValueError("DistanceExpected: no training maps were added")
        d = window_distances(offsets, window_bins)
        chroms = np.asarray(chroms).astype(str)
        out = np.empty(d.shape, dtype=np.float64)
        pooled = self.table()
        for c in np.unique(chroms):
            rows = chroms == c
            dr = d[rows]
            if str(c) in self._sums:  # the chromosome's own value where it has one
                tab = self.table(c)
                vals = np.where(dr < len(tab), tab[np.minimum(dr, len(tab) - 1)], np.nan)
            else:
                vals = np.full(dr.shape, np.nan)
            missing = ~np.isfinite(vals)
            if missing.any():
                vals[missing] = self._lookup(pooled, dr[missing])
            out[rows] = vals
        return out


def bin_track_means(epi: Any, window_bins: int, anchor: int = 0) -> np.ndarray:
    """(N, C, 2L) epi -> (N, W, C): mean of each track over each Hi-C bin of one anchor
    (0 = x-anchor, 1 = y-anchor)."""
    e = np.asarray(epi, dtype=np.float64)
    n, c, two_l = e.shape
    L = two_l // 2
    per_bin = L // window_bins
    half = e[:, :, anchor * L : (anchor + 1) * L]
    return half.reshape(n, c, window_bins, per_bin).mean(axis=3).transpose(0, 2, 1)


def loop_baseline_scores(hic: Any | None, epi: Any, window_bins: int, radius: int = 5,
                         inner: int = 1) -> np.ndarray:
    """(N, 4) scores in :data:`LOOP_BASELINES` order for loop windows centred on the pair.

    hic (N, W, W) on a log scale (NaN columns when None), epi (N, C, 2L). The map columns
    are :func:`mixhic.models.heads.loop_contrast_features` (o/e against the window
    diagonal, donut, lower-left), in float64.
    """
    import torch

    # the loop head's own features: one definition for model and baseline
    e = torch.as_tensor(np.asarray(epi, dtype=np.float64))
    out = np.full((len(e), len(LOOP_BASELINES)), np.nan)
    out[:, -1] = anchor_signal(e, window_bins).numpy()
    if hic is not None:
        m = torch.as_tensor(np.asarray(hic, dtype=np.float64))
        out[:, :-1] = loop_contrast_features(m, radius=radius, inner=inner).numpy()[:, 1:]
    return out


def loop_reference_baselines(mode: str) -> tuple[str, ...]:
    """The baselines a loop model of ``mode`` must beat: those built from the inputs it
    sees (the map's contrasts need Hi-C; the anchor signal only the tracks)."""
    if mode in HIC_INPUT_MODES:
        return LOOP_BASELINES
    return ("anchor_signal",)


class TrackLinearFit:
    """Least squares ``cage_bin ~ tracks_bin @ w + b`` from streamed normal equations.

        >>> fit = TrackLinearFit()
        >>> fit.add(train_epi, train_cage, W)       # per batch
        >>> pred = fit.predict(test_epi, W)         # (N, W)
    """

    def __init__(self, ridge: float = 1e-6) -> None:
        self.ridge = ridge
        self._xtx: np.ndarray | None = None
        self._xty: np.ndarray | None = None

    @staticmethod
    def _design(epi: Any, window_bins: int) -> np.ndarray:
        x = bin_track_means(epi, window_bins, 0)  # (N, W, C)
        x = x.reshape(-1, x.shape[-1])
        return np.concatenate([x, np.ones((len(x), 1))], axis=1)  # (N*W, C+1)

    def add(self, epi: Any, cage: Any, window_bins: int) -> None:
        x = self._design(epi, window_bins)
        y = np.asarray(cage, dtype=np.float64).reshape(-1)
        xtx, xty = x.T @ x, x.T @ y
        self._xtx = xtx if self._xtx is None else self._xtx + xtx
        self._xty = xty if self._xty is None else self._xty + xty

    @property
    def coef(self) -> np.ndarray:
        if self._xtx is None:
            raise ValueError("TrackLinearFit: no training rows were added")
        a = self._xtx + self.ridge * np.eye(len(self._xtx))
        return np.linalg.solve(a, self._xty)

    def predict(self, epi: Any, window_bins: int) -> np.ndarray:
        n = np.asarray(epi).shape[0]
        return (self._design(epi, window_bins) @ self.coef).reshape(n, window_bins)
