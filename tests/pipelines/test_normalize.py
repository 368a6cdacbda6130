"""Normalisation and QC: pure numpy."""

import numpy as np
import pytest

from mixhic.pipelines import normalize as nz


def test_hic_log1p_fixed_range_monotone_and_nan():
    c = np.array([[[0.0, 1.0], [np.nan, 1e6]]])
    v = nz.hic_transform(c, "log1p_fixed", cap=255)
    assert v.dtype == np.float32
    assert v[0, 0, 0] == 0 and v[0, 1, 0] == 0  # NaN (masked) -> 0
    assert v[0, 1, 1] == pytest.approx(1.0)  # clipped at the cap
    assert v[0, 0, 1] == pytest.approx(np.log1p(1) / np.log1p(255), rel=1e-6)
    x = np.linspace(0, 300, 50)[None, None, :]
    out = nz.hic_transform(x, "log1p_fixed")
    assert np.all(np.diff(out[0, 0]) >= 0) and out.min() >= 0 and out.max() <= 1


def test_hic_window_max_and_plain():
    rng = np.random.default_rng(0)
    c = rng.gamma(1.0, 10.0, size=(4, 5, 5))
    c[2] = 0
    v = nz.hic_transform(c, "log1p_window_max")
    assert np.allclose(v[[0, 1, 3]].reshape(3, -1).max(1), 1.0)
    assert np.all(v[2] == 0)
    assert np.allclose(nz.hic_transform(c, "log1p"), np.log1p(c), rtol=1e-6)
    assert np.allclose(nz.hic_transform(c, "none"), c, rtol=1e-6)
    with pytest.raises(ValueError, match="hic transform"):
        nz.hic_transform(c, "zscore")


def test_epi_transform():
    x = np.array([0.0, 1.0, 3.0, -2.0])
    assert np.allclose(nz.epi_transform(x), [0, 1, 2, 0])
    assert np.allclose(nz.epi_transform(x, "none"), x)


def test_nonzero_and_infinite():
    w = np.zeros((3, 4, 4))
    w[0, :2] = 1  # 50%
    w[1, 0, 0] = np.nan
    w[2, 0, 0] = np.inf
    assert np.allclose(nz.nonzero_fraction(w), [0.5, 0.0, 1 / 16])
    assert nz.has_infinite(w).tolist() == [False, False, True]


def test_masked_bin_counts_match_brute_force():
    rng = np.random.default_rng(1)
    masked = rng.random(200) < 0.2
    w = 10
    x = rng.integers(0, 150, 300)
    y = x + rng.integers(0, 40, 300)
    y = np.minimum(y, 190)
    got = nz.masked_bin_counts(masked, x, y, w)
    for k in range(len(x)):
        bins = set(range(x[k], x[k] + w)) | set(range(y[k], y[k] + w))
        assert got[k] == sum(masked[b] for b in bins)


def test_blacklist_overlap_matches_brute_force():
    rng = np.random.default_rng(2)
    bs = rng.integers(0, 10_000, 20)
    be = bs + rng.integers(1, 500, 20)
    starts = rng.integers(0, 10_000, 500)
    got = nz.blacklist_overlap(starts, 250, bs, be)
    want = [any(s < e and s + 250 > b for b, e in zip(bs, be)) for s in starts]
    assert got.tolist() == want
    assert nz.blacklist_overlap(starts, 250, np.array([]), np.array([])).sum() == 0
