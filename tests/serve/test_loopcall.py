"""Loop calling from scored pixels: threshold, clustering, non-maximum suppression, top-N."""

from __future__ import annotations

import numpy as np
import pytest

from mixhic.serve.loopcall import LoopCalls, call_loops, top_calls


def _blobs(rng, n_blobs: int, size: int = 60, stride: int = 1):
    """Pixels of a (size x size) upper-triangle grid scored by separated Gaussian blobs:
    ``(i, j, p, centres)``; each blob's maximum is at its centre."""
    centres = []
    while len(centres) < n_blobs:
        c = rng.integers(0, size, 2)
        if c[0] + 4 < c[1] and all(max(abs(c - o)) > 12 for o in centres):
            centres.append(c)
    centres = np.array(centres)
    i, j = np.meshgrid(np.arange(0, size, stride), np.arange(0, size, stride), indexing="ij")
    i, j = i.ravel(), j.ravel()
    keep = i < j
    i, j = i[keep], j[keep]
    p = np.zeros(len(i))
    for k, (a, b) in enumerate(centres):
        height = 0.6 + 0.04 * k + rng.uniform(0, 0.01)
        p = np.maximum(p, height * np.exp(-((i - a) ** 2 + (j - b) ** 2) / 6.0))
    return i, j, p, centres


@pytest.mark.parametrize("seed", range(6))
def test_one_call_per_cluster_at_its_maximum(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5))
    i, j, p, centres = _blobs(rng, n)
    perm = rng.permutation(len(i))  # input order does not matter
    calls = call_loops(i[perm], j[perm], p[perm], threshold=0.3, cluster_radius=1)
    assert len(calls) == n
    got = sorted(zip(calls.i.tolist(), calls.j.tolist()))
    assert got == sorted(map(tuple, centres.tolist()))
    for ci, cj, cp, cs in zip(calls.i, calls.j, calls.probability, calls.cluster_size):
        near = (np.abs(i - ci) <= 3) & (np.abs(j - cj) <= 3)
        assert cp == p[near].max()  # the call is its cluster's maximum
        assert cs == int(((p >= 0.3) & (np.abs(i - ci) <= 6) & (np.abs(j - cj) <= 6)).sum())
    assert calls.cluster_size.sum() == int((p >= 0.3).sum())  # every candidate in one cluster
    assert np.all(np.diff(calls.i * 10_000 + calls.j) > 0)  # sorted by (i, j)


def test_threshold_radius_separation_and_top_n():
    i = np.array([10, 10, 11, 30, 32, 50])
    j = np.array([40, 41, 41, 60, 62, 90])
    p = np.array([0.9, 0.8, 0.95, 0.7, 0.75, 0.4])
    calls = call_loops(i, j, p, threshold=0.5, cluster_radius=1)
    assert list(zip(calls.i, calls.j)) == [(11, 41), (30, 60), (32, 62)]
    assert list(calls.cluster_size) == [3, 1, 1]
    # stride-2 grid neighbours merge with radius 2
    calls = call_loops(i, j, p, threshold=0.5, cluster_radius=2)
    assert list(zip(calls.i, calls.j)) == [(11, 41), (32, 62)]
    assert list(calls.cluster_size) == [3, 2]
    # suppression: a weaker call within min_separation of a stronger one goes
    calls = call_loops(i, j, p, threshold=0.5, cluster_radius=1, min_separation=25)
    assert list(zip(calls.i, calls.j)) == [(11, 41)]
    calls = call_loops(i, j, p, threshold=0.0, cluster_radius=0, top_n=2)
    assert list(zip(calls.i, calls.j)) == [(10, 40), (11, 41)]
    assert len(call_loops(i, j, p, threshold=0.99, cluster_radius=1)) == 0
    with pytest.raises(ValueError, match="lengths differ"):
        call_loops(i, j[:2], p, threshold=0.5, cluster_radius=1)


def test_top_calls_across_chromosomes():
    a = LoopCalls(np.array([1, 5]), np.array([9, 20]), np.array([0.9, 0.6]), np.array([1, 1]))
    b = LoopCalls(np.array([2]), np.array([8]), np.array([0.7]), np.array([4]))
    top = top_calls({"chr1": a, "chr2": b}, 2)
    assert list(top["chr1"].probability) == [0.9] and list(top["chr2"].probability) == [0.7]
    assert top_calls({"chr1": a}, 0)["chr1"] is a
