"""Loop calls from scored candidate pixels, the way a loop caller post-processes them.

``mixhic predict`` scores candidate anchor pairs (pixels ``(i, j)``, bins, ``i < j``) on a
grid of ``stride`` bins. A real loop lights up a patch of neighbouring pixels, so the raw
candidate grid over-counts every loop. :func:`call_loops` turns the scores into calls:

1. **threshold**: pixels with ``probability >= threshold`` are candidates;
2. **clustering**: candidates closer than ``cluster_radius`` bins (Chebyshev distance,
   i.e. in both anchors) are linked; each connected cluster becomes ONE call at its
   highest-probability pixel (ties: the smaller ``(i, j)``), carrying the cluster size
   (as peakachu / HiCCUPS-style callers merge enriched pixels);
3. **non-maximum suppression**: a call within ``min_separation`` bins (Chebyshev) of a
   stronger call is dropped (greedy, strongest first), so the calls are local maxima at
   that scale even when two clusters nearly touch;
4. **top-N**: the ``top_n`` strongest calls are kept (0: all). :func:`top_calls` applies it
   across chromosomes.

Pure numpy/scipy; no file or Ray imports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LoopCalls", "call_loops", "top_calls"]


@dataclass(frozen=True)
class LoopCalls:
    """Calls of one chromosome: anchor bins ``i < j``, probability and cluster size (N,)."""

    i: np.ndarray  # int64
    j: np.ndarray  # int64
    probability: np.ndarray  # float64, in [0, 1]
    cluster_size: np.ndarray  # int64, >= 1: candidate pixels merged into the call

    def __len__(self) -> int:
        return len(self.i)

    def take(self, idx: np.ndarray) -> LoopCalls:
        return LoopCalls(self.i[idx], self.j[idx], self.probability[idx], self.cluster_size[idx])

    @classmethod
    def empty(cls) -> LoopCalls:
        z = np.zeros(0, np.int64)
        return cls(z, z.copy(), np.zeros(0), z.copy())


def _components(i: np.ndarray, j: np.ndarray, radius: int) -> np.ndarray:
    """Connected-component label of each pixel; pixels within Chebyshev ``radius`` link."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(i)
    if n == 0:
        return np.zeros(0, np.int64)
    if radius <= 0:
        return np.arange(n, dtype=np.int64)
    pairs = cKDTree(np.c_[i, j].astype(np.float64)).query_pairs(
        r=radius + 0.5, p=np.inf, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def call_loops(i: np.ndarray, j: np.ndarray, probability: np.ndarray, *, threshold: float,
               cluster_radius: int, min_separation: int = 0, top_n: int = 0) -> LoopCalls:
    """Scored pixels (N,) of one chromosome -> calls (see the module docstring).

    Args:
        i, j: anchor bins of each scored pixel (int, ``i < j``), each pixel once.
        probability: the model's loop probability of each pixel.
        threshold: minimum probability of a candidate pixel.
        cluster_radius: candidates at Chebyshev distance <= this (bins) join one cluster
            (0: every pixel is its own cluster).
        min_separation: calls at Chebyshev distance <= this (bins) of a stronger call are
            suppressed (0: none beyond clustering).
        top_n: keep the ``top_n`` strongest calls (0: all).

    Returns calls sorted by ``(i, j)``.
    """
    i = np.asarray(i, np.int64)
    j = np.asarray(j, np.int64)
    p = np.asarray(probability, np.float64)
    if not (len(i) == len(j) == len(p)):
        raise ValueError(f"i, j, probability: lengths differ ({len(i)}, {len(j)}, {len(p)})")
    keep = p >= threshold
    i, j, p = i[keep], j[keep], p[keep]
    if len(i) == 0:
        return LoopCalls.empty()
    labels = _components(i, j, cluster_radius)
    # the best pixel of each cluster: sort by (label, -p, i, j), take the first per label
    order = np.lexsort((j, i, -p, labels))
    first = np.r_[True, labels[order][1:] != labels[order][:-1]]
    best = order[first]
    sizes = np.bincount(labels)[labels[best]]
    calls = LoopCalls(i[best], j[best], p[best], sizes.astype(np.int64))
    if min_separation > 0 and len(calls) > 1:
        calls = calls.take(_suppress(calls, min_separation))
    if top_n > 0:
        calls = top_calls({"": calls}, top_n)[""]
    order = np.lexsort((calls.j, calls.i))
    return calls.take(order)


def _suppress(calls: LoopCalls, radius: int) -> np.ndarray:
    """Indices of calls surviving greedy non-maximum suppression (strongest first)."""
    from scipy.spatial import cKDTree

    order = np.lexsort((calls.j, calls.i, -calls.probability))
    tree = cKDTree(np.c_[calls.i, calls.j].astype(np.float64))
    alive = np.ones(len(calls), bool)
    for k in order:
        if alive[k]:
            near = tree.query_ball_point([calls.i[k], calls.j[k]], r=radius + 0.5, p=np.inf)
            alive[[n for n in near if n != k]] = False
    return np.flatnonzero(alive)


def top_calls(calls: dict[str, LoopCalls], top_n: int) -> dict[str, LoopCalls]:
    """The ``top_n`` strongest calls over all chromosomes (0: all), kept per chromosome
    in their order. Ties at the cut go to the earlier chromosome, then smaller ``(i, j)``."""
    if top_n <= 0:
        return calls
    names = list(calls)
    p = np.concatenate([calls[c].probability for c in names] or [np.zeros(0)])
    if len(p) <= top_n:
        return calls
    chrom = np.concatenate([np.full(len(calls[c]), k) for k, c in enumerate(names)])
    ii = np.concatenate([calls[c].i for c in names])
    jj = np.concatenate([calls[c].j for c in names])
    order = np.lexsort((jj, ii, chrom, -p))[:top_n]
    keep = np.zeros(len(p), bool)
    keep[order] = True
    out, lo = {}, 0
    for c in names:
        n = len(calls[c])
        out[c] = calls[c].take(np.flatnonzero(keep[lo:lo + n]))
        lo += n
    return out
