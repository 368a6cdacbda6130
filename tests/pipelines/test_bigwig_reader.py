"""The bigWig reader on tiny hand-made bigWigs: both paths (interval reader, pyBigWig
per-bp reads) give the same binned means."""

import numpy as np
import pytest
from mixhic.core.errors import MixHicError
from mixhic.pipelines import bigwig_reader


@pytest.fixture(scope="module")
def track(tmp_path_factory, make):
    d = tmp_path_factory.mktemp("bw")
    return make.bigwig(d / "t.bw", {"1": 10_000, "2": 5_000, "3": 5_000},
                       {"1": [(0, 100, 2.0), (100, 150, 4.0), (300, 400, 1.0)],
                        "2": [(0, 5000, 1.0)]})


def test_track_bins_fill_vs_ignore_and_coverage(track):
    bw = bigwig_reader.open_bigwig(track)
    v, cov = bigwig_reader.read_track_bins(bw, "1", 0, 500, 100, "fill", 0.0)
    assert np.allclose(v, [2.0, 2.0, 0.0, 1.0, 0.0]) and cov == 250
    v, _ = bigwig_reader.read_track_bins(bw, "1", 0, 500, 100, "ignore", -1.0)
    assert np.allclose(v, [2.0, 4.0, -1.0, 1.0, -1.0])
    # past the chromosome end and an absent chromosome are missing data
    v, cov = bigwig_reader.read_track_bins(bw, "2", 4900, 5200, 100, "fill", 0.5)
    assert np.allclose(v, [1.0, 0.5, 0.5]) and cov == 100
    v, cov = bigwig_reader.read_track_bins(bw, None, 0, 300, 100, "fill", 0.0)
    assert np.allclose(v, 0) and cov == 0
    bw.close()


def test_track_without_data_on_a_chromosome(track):
    bw = bigwig_reader.open_bigwig(track)
    bigwig_reader.check_track_data(bw, "1", "t.bw")
    with pytest.raises(MixHicError, match="track has no data on 3"):
        bigwig_reader.check_track_data(bw, "3", "t.bw")
    with pytest.raises(MixHicError, match="no chromosome 'chrZ'"):
        bigwig_reader.check_track_data(bw, "chrZ", "t.bw")
    bw.close()


@pytest.mark.parametrize("opener", ["open_bigwig", "open_track"])
def test_not_a_bigwig(tmp_path, opener):
    """Both openers (pyBigWig and the block reader's) refuse a file that is not a bigWig."""
    p = tmp_path / "x.bw"
    p.write_text("hello")
    with pytest.raises(MixHicError, match="not a readable bigWig"):
        getattr(bigwig_reader, opener)(str(p))


@pytest.mark.parametrize("missing", ["fill", "ignore"])
def test_large_and_small_bins_agree_with_per_bp_mean(tmp_path, make, missing):
    rng = np.random.default_rng(9)
    starts = np.sort(rng.choice(np.arange(0, 49_000, 10), 300, replace=False))
    ivs = [(int(s), int(s) + 7, float(v)) for s, v in zip(starts, rng.random(300) * 5)]
    path = make.bigwig(tmp_path / "big.bw", {"c": 49_500}, {"c": ivs})
    bw = bigwig_reader.open_bigwig(path)
    big, cov = bigwig_reader.read_track_bins(bw, "c", 0, 50_000, 5000, missing, 0.25)
    small, cov2 = bigwig_reader.read_track_bins(bw, "c", 0, 50_000, 500, missing, 0.25)
    raw = np.full(50_000, np.nan)
    raw[:49_500] = bw.values("c", 0, 49_500, numpy=True)
    raw = raw.reshape(10, 5000)
    if missing == "fill":
        want = np.where(np.isnan(raw), 0.25, raw).mean(1)
    else:
        want = np.nanmean(raw, 1)
    assert np.allclose(big, want, rtol=1e-5) and cov == cov2 == 2100
    assert len(small) == 100
    bw.close()


def _three_section_types(path) -> str:
    """bedGraph, varStep and fixedStep sections (one kind per chromosome), NaN included,
    intervals longer than a bin and crossing bin edges, a chromosome without data."""
    import pyBigWig

    rng = np.random.default_rng(5)
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([("a", 30_000), ("b", 20_050), ("c", 9_000), ("d", 5_000)])
    starts = np.sort(rng.choice(np.arange(0, 29_000, 9), 900, replace=False))
    ends = np.minimum(np.r_[starts[1:], 30_000], starts + rng.integers(1, 400, 900))
    vals = rng.random(900) * 4
    vals[::97] = np.nan
    bw.addEntries(["a"] * 900, starts.tolist(), ends=ends.tolist(), values=vals.tolist())
    bw.addEntries("b", np.arange(13, 20_000, 50).tolist(), values=rng.random(400).tolist(),
                  span=37)
    bw.addEntries("c", 250, values=rng.random(60).tolist(), span=130, step=130)
    bw.close()
    return str(path)


@pytest.mark.parametrize("missing", ["fill", "ignore"])
@pytest.mark.parametrize("bin_size", [1, 100, 333, 5000])
def test_interval_reader_equals_per_bp_reads(tmp_path, missing, bin_size):
    """open_track's interval binning == pyBigWig's per-bp path, every section type."""
    path = _three_section_types(tmp_path / "s.bw")
    fast, slow = bigwig_reader.open_track(path), bigwig_reader.open_bigwig(path)
    assert type(fast).__name__ == "BigWigIndex"
    assert fast.chroms() == slow.chroms() and fast.chroms("b") == 20_050
    for chrom in ("a", "b", "c", "d", None):
        for start, end in ((0, 20_000), (777, 20_100), (19_990, 31_000)):
            args = (chrom, start, end, bin_size, missing, 0.5)
            got, cov = bigwig_reader.read_track_bins(fast, *args)
            want, cov2 = bigwig_reader.read_track_bins(slow, *args)
            assert cov == cov2, (chrom, start, end)
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=str(chrom))
    fast.close()
    slow.close()


def test_interval_reader_overlapping_intervals_fall_back_to_per_bp(monkeypatch, track):
    """Overlapping intervals (a malformed file) take the per-bp path: the last one wins."""
    from mixhic.pipelines import _bigwig

    fast = bigwig_reader.open_track(track)
    real = _bigwig.BigWigIndex.blocks

    def overlapping(self, chrom, start, end):
        for s, e, v in real(self, chrom, start, end):
            yield s, e + 60, v

    monkeypatch.setattr(_bigwig.BigWigIndex, "blocks", overlapping)
    v, cov = bigwig_reader.read_track_bins(fast, "1", 0, 500, 100, "fill", 0.0)
    assert np.allclose(v, [2.0, 2.0, 0.0, 1.0, 0.0]) and cov == 250
    fast.close()


@pytest.mark.parametrize("missing", ["fill", "ignore"])
def test_interval_reader_blocks_out_of_order(tmp_path, monkeypatch, missing):
    """Data blocks out of genomic order (allowed by the format): all intervals are sorted
    first, same result as per-bp reads."""
    from mixhic.pipelines import _bigwig

    path = _three_section_types(tmp_path / "s.bw")
    fast, slow = bigwig_reader.open_track(path), bigwig_reader.open_bigwig(path)
    real = _bigwig.BigWigIndex.blocks

    def shuffled(self, chrom, start, end):
        got = list(real(self, chrom, start, end))
        # every block's second half first, then the first halves
        halves = [(s[h:], e[h:], v[h:]) for s, e, v in got for h in [len(s) // 2]]
        halves += [(s[:h], e[:h], v[:h]) for s, e, v in got for h in [len(s) // 2]]
        yield from (x for x in halves if len(x[0]))

    monkeypatch.setattr(_bigwig.BigWigIndex, "blocks", shuffled)
    for chrom in ("a", "b", "c"):
        got, cov = bigwig_reader.read_track_bins(fast, chrom, 500, 19_900, 100, missing, 0.5)
        want, cov2 = bigwig_reader.read_track_bins(slow, chrom, 500, 19_900, 100, missing, 0.5)
        assert cov == cov2
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    fast.close()
    slow.close()
