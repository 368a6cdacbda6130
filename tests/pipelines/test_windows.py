"""Window geometry and negative sampling: pure numpy."""

import numpy as np
import pytest

from mixhic.pipelines import windows as wn


def test_grid_paper_step_snaps_to_bins_and_stays_inside():
    x, y = wn.grid_windows(n_bins=200, window_bins=50, step_bp=62_500, resolution=5000)
    assert np.array_equal(x, y)  # diagonal
    assert x[:5].tolist() == [0, 12, 25, 37, 50]  # 12.5 bins per step, floored
    assert x.max() + 50 <= 200 and x.min() == 0
    # the next start would not fit
    assert ((len(x)) * 62_500) // 5000 + 50 > 200


def test_grid_off_diagonal_offsets():
    x, y = wn.grid_windows(120, 10, 50_000, 5000, offsets_bp=(0, 50_000, 200_000))
    d = y - x
    assert set(d.tolist()) == {0, 10, 40}
    assert np.all(y + 10 <= 120) and np.all(x >= 0)
    # sorted by x, then y
    assert np.all(np.diff(x) >= 0)
    with pytest.raises(ValueError, match="multiple"):
        wn.grid_windows(120, 10, 50_000, 5000, offsets_bp=(2500,))


def test_grid_short_chromosome_is_empty():
    x, y = wn.grid_windows(49, 50, 62_500, 5000)
    assert len(x) == len(y) == 0
    x, _ = wn.grid_windows(50, 50, 62_500, 5000)
    assert x.tolist() == [0]


def test_slice_hic_matches_loops_including_edges():
    rng = np.random.default_rng(0)
    band = rng.random((70, 130))
    w = 8
    x = np.array([0, 62, 10, 30])
    y = np.array([0, 122, 90, 30])  # corner windows, an off-diagonal one
    got = wn.slice_hic(band, x, y, w)
    assert got.shape == (4, w, w)
    for k in range(4):
        assert np.array_equal(got[k], band[x[k]:x[k] + w, y[k]:y[k] + w])
    assert wn.slice_hic(band, np.array([], int), np.array([], int), w).shape == (0, w, w)


def test_slice_epi_is_x_anchor_then_y_anchor():
    rng = np.random.default_rng(1)
    per_bin, w = 5, 4
    tracks = rng.random((2, 30 * per_bin)).astype(np.float32)
    x, y = np.array([0, 3]), np.array([10, 26])
    got = wn.slice_epi(tracks, x, y, w * per_bin, per_bin)
    assert got.shape == (2, 2, 2 * w * per_bin)
    for k in range(2):
        for c in range(2):
            want = np.r_[tracks[c, x[k] * per_bin:(x[k] + w) * per_bin],
                         tracks[c, y[k] * per_bin:(y[k] + w) * per_bin]]
            assert np.array_equal(got[k, c], want)


def test_loop_windows_centre_the_pair_and_drop_edges():
    res, w = 5000, 50
    i, j, dist = wn.loop_anchor_bins(np.array([500_000, 20_000]), np.array([505_000, 25_000]),
                                     np.array([900_000, 300_000]), np.array([905_000, 305_000]), res)
    assert i.tolist() == [100, 4] and j.tolist() == [180, 60]
    assert dist.tolist() == [400_000, 280_000]
    x, y, keep = wn.loop_windows(i, j, n_bins=300, window_bins=w)
    assert keep.tolist() == [True, False]  # the second sits 4 bins from the start
    assert (i[0] - x[0], j[0] - y[0]) == (w // 2, w // 2)  # loop pixel at the window centre
    _, _, keep = wn.loop_windows(np.array([100]), np.array([290]), n_bins=300, window_bins=w)
    assert not keep[0]  # past the chromosome end


def _positives(rng, n_bins, n=60):
    i = rng.integers(40, n_bins - 200, n)
    j = i + rng.integers(4, 120, n)
    return i, j


def test_negatives_distance_matched_with_contact_and_seeded():
    rng = np.random.default_rng(3)
    n_bins, w = 2000, 50
    pi, pj = _positives(rng, n_bins)
    contact = np.random.default_rng(4).random((n_bins, n_bins)) < 0.5  # half the pixels empty

    def has_contact(i, j):
        return contact[i, j]

    kw = dict(n_bins=n_bins, window_bins=w, has_contact=has_contact, min_bins=4, max_bins=400)
    ni, nj = wn.sample_negatives(pi, pj, 90, rng=np.random.default_rng(7), **kw)  # ratio 1.5
    assert len(ni) == 90
    assert np.all(contact[ni, nj])  # non-zero contact
    d_pos, d_neg = pj - pi, nj - ni
    assert d_neg.min() >= 4 and d_neg.max() <= 400
    assert abs(np.median(d_neg) - np.median(d_pos)) <= 8  # distance-matched
    assert abs(d_neg.mean() - d_pos.mean()) < 0.15 * d_pos.mean()
    # far from every positive (Chebyshev > exclude_bins), unique, window inside the chromosome
    cheb = np.maximum(np.abs(ni[:, None] - pi[None]), np.abs(nj[:, None] - pj[None])).min(1)
    assert cheb.min() > 2
    assert len(set(zip(ni.tolist(), nj.tolist()))) == 90
    assert np.all(ni - w // 2 >= 0) and np.all(nj - w // 2 + w <= n_bins)
    # seeded
    again = wn.sample_negatives(pi, pj, 90, rng=np.random.default_rng(7), **kw)
    other = wn.sample_negatives(pi, pj, 90, rng=np.random.default_rng(8), **kw)
    assert np.array_equal(again[0], ni) and np.array_equal(again[1], nj)
    assert not np.array_equal(other[0], ni)


def test_negatives_respect_ratio_range_and_scarcity():
    rng = np.random.default_rng(5)
    n_bins, w = 1000, 50
    pi, pj = _positives(rng, n_bins, 20)
    every = lambda i, j: np.ones(len(i), bool)  # noqa: E731
    ni, _ = wn.sample_negatives(pi, pj, 10, n_bins, w, every, np.random.default_rng(0), 4, 400,
                                i_range=(300, 400))
    assert len(ni) == 10 and ni.min() >= 300 and ni.max() < 400
    none = lambda i, j: np.zeros(len(i), bool)  # noqa: E731
    ni, nj = wn.sample_negatives(pi, pj, 10, n_bins, w, none, np.random.default_rng(0), 4, 400)
    assert len(ni) == 0  # no pixel with contact: no negative, no endless loop
    assert len(wn.sample_negatives(pi, pj, 0, n_bins, w, every, rng, 4, 400)[0]) == 0


def test_tss_windows_centred_unique_inside():
    x, y = wn.tss_windows(np.array([250_000, 251_000, 10_000, 990_000]), n_bins=200,
                          window_bins=50, resolution=5000)
    assert x.tolist() == [25] and np.array_equal(x, y)  # bin 50 centred; edges dropped; dedup


def test_assign_split_ignores_spelling():
    assert wn.assign_split("10", ["chr10", "chr11"], ["chr3"]) == "val"
    assert wn.assign_split("chr3", ["10"], ["3"]) == "test"
    assert wn.assign_split("chr1", ["chr10"], ["chr3"]) == "train"


def test_chunk_ranges_cover_exactly():
    r = wn.chunk_ranges(1001, 300)
    assert r[0][0] == 0 and r[-1][1] == 1001
    assert all(a[1] == b[0] for a, b in zip(r, r[1:]))
