"""Hard negatives for the loops dataset: pure numpy, no Ray, no files."""

from __future__ import annotations

import numpy as np
import pytest

from mixhic.pipelines import windows as wn

N, W = 1500, 50
MIX = {"distance": 0.5, "high_contact": 0.2, "near_loop": 0.15, "anchor_signal": 0.15}


@pytest.fixture(scope="module")
def genome():
    """Positives, a contact map with distance decay and noise, a per-bin track score."""
    rng = np.random.default_rng(0)
    pi = np.sort(rng.choice(np.arange(60, N - 300), 80, replace=False))
    pj = pi + rng.integers(5, 150, 80)
    d = np.abs(np.subtract.outer(np.arange(N), np.arange(N)))
    contact = (20.0 / (1 + d)) * rng.gamma(2.0, 0.5, (N, N))
    contact[rng.random((N, N)) < 0.2] = 0.0  # empty pixels
    score = rng.gamma(1.0, 1.0, N)
    return pi, pj, contact, score


def _mix(genome, quotas, seed=7, **kw):
    pi, pj, contact, score = genome
    return wn.sample_negative_mix(
        pi, pj, quotas, N, W, lambda i, j: contact[i, j], np.random.default_rng(seed),
        2, 200, anchor_score=score, **kw)


def _cheb(i, j, pi, pj):
    return np.maximum(np.abs(i[:, None] - pi[None]), np.abs(j[:, None] - pj[None])).min(1)


def test_quotas_sum_and_follow_the_fractions():
    for n in (0, 1, 7, 80, 1001):
        q = wn.negative_quotas(n, MIX)
        assert sum(q.values()) == n
        for k, f in MIX.items():
            assert abs(q[k] - f * n) < 1
    assert wn.negative_quotas(5, {"distance": 1.0}) == {"distance": 5}
    with pytest.raises(ValueError, match="unknown negative kinds"):
        wn.negative_quotas(5, {"random": 1.0})


def test_mix_counts_rules_and_seed(genome):
    pi, pj, contact, score = genome
    quotas = wn.negative_quotas(80, MIX)
    i, j, kind = _mix(genome, quotas)
    assert {k: int((kind == k).sum()) for k in quotas} == quotas  # enough supply here
    assert len(set(zip(i.tolist(), j.tolist()))) == len(i)  # unique
    assert np.all(contact[i, j] > 0)  # contact at the centre pixel
    assert np.all(_cheb(i, j, pi, pj) > 2)  # never within exclude_bins of a loop
    assert np.all((j - i >= 2) & (j - i <= 200))
    assert np.all(i - W // 2 >= 0) and np.all(j - W // 2 + W <= N)
    again = _mix(genome, quotas)
    assert all(np.array_equal(a, b) for a, b in zip(again, (i, j, kind)))
    other = _mix(genome, quotas, seed=8)
    assert not np.array_equal(other[0], i)


def test_near_loop_negatives_sit_a_few_bins_from_a_loop(genome):
    pi, pj, _, _ = genome
    i, j, kind = _mix(genome, {"near_loop": 60})
    assert len(i) == 60 and set(kind) == {"near_loop"}
    cheb = _cheb(i, j, pi, pj)
    assert cheb.min() >= 3 and cheb.max() <= 5  # (exclude_bins 2, near_loop_bins 2-5]


def test_high_contact_negatives_beat_the_median_candidate(genome):
    pi, pj, contact, _ = genome
    i, j, kind = _mix(genome, {"high_contact": 60})
    assert len(i) == 60 and set(kind) == {"high_contact"}
    rows = np.arange(W // 2, N - W + W // 2)
    for a, b in zip(i, j):
        d = b - a
        r = rows[rows + d - W // 2 + W <= N]
        cand = contact[r, r + d]
        assert contact[a, b] >= np.quantile(cand, 0.7)  # top 20% (quantile over all rows)
        assert contact[a, b] > np.median(cand)
    # and the distances follow the positives' (like the distance kind)
    assert abs(np.median(j - i) - np.median(pj - pi)) <= 0.2 * np.median(pj - pi)
    d_i, d_j, _ = _mix(genome, {"distance": 60})
    assert np.median(contact[i, j]) > 1.5 * np.median(contact[d_i, d_j])


def test_anchor_signal_negatives_pair_strong_anchors(genome):
    _, _, _, score = genome
    i, j, kind = _mix(genome, {"anchor_signal": 40})
    assert len(i) == 40 and set(kind) == {"anchor_signal"}
    top = np.quantile(score, 0.9)
    assert np.all(score[i] >= top) and np.all(score[j] >= top)


def test_split_rule_exclusions_and_shortfall(genome):
    pi, pj, contact, score = genome
    # a window may not cross position 700 (a split boundary, in bins)
    allowed = lambda i, j: (j - W // 2 + W <= 700) | (i - W // 2 >= 700)  # noqa: E731
    far_i, far_j = np.array([400]), np.array([450])
    i, j, kind = _mix(genome, wn.negative_quotas(80, MIX), allowed=allowed,
                      exclude_i=far_i, exclude_j=far_j)
    assert np.all(allowed(i, j))
    assert np.all(_cheb(i, j, far_i, far_j) > 2)
    # no strong anchor anywhere: the anchor_signal quota is made up with distance negatives
    pi, pj, contact, _ = genome
    i, j, kind = wn.sample_negative_mix(
        pi, pj, {"distance": 10, "anchor_signal": 10}, N, W, lambda a, b: contact[a, b],
        np.random.default_rng(0), 2, 200, anchor_score=np.zeros(N))
    assert len(i) == 20 and set(kind) == {"distance"}
