"""Readers on tiny hand-made cooler / bigWig / bedpe / BED files."""

import numpy as np
import pytest
from mixhic.core.errors import MixHicError
from mixhic.pipelines import readers

CHROMS = {"chr1": 100_000, "chr2": 61_000}  # 1 kb bins: 100 + 61 bins (last one partial)


@pytest.fixture(scope="module")
def hic(tmp_path_factory, make):
    """A .cool with multiplicative `weight`, divisive `KR`, and an .mcool in both layouts."""
    d = tmp_path_factory.mktemp("hic")
    counts = make.counts(161, seed=3).astype(float)
    rng = np.random.default_rng(0)
    w = rng.uniform(0.5, 1.5, 161)
    w[[5, 120]] = np.nan  # masked bins
    kr = rng.uniform(0.5, 1.5, 161)
    cool = str(d / "m.cool")
    make.cooler(cool, CHROMS, 1000, counts, {"weight": w, "KR": kr}, {"KR": True})
    mcool = str(d / "m.mcool")
    make.cooler(mcool + "::/resolutions/1000", CHROMS, 1000, counts, {"weight": w})
    coarse = make.counts(81, seed=4)
    make.cooler(mcool + "::/resolutions/2000", CHROMS, 2000, coarse)
    legacy = str(d / "legacy.mcool")
    make.cooler(legacy + "::/0", CHROMS, 2000, coarse)
    make.cooler(legacy + "::/1", CHROMS, 1000, counts, {"weight": w})
    raw = str(d / "raw.cool")
    make.cooler(raw, CHROMS, 1000, counts)
    return {"cool": cool, "mcool": mcool, "legacy": legacy, "raw": raw, "counts": counts,
            "w": w, "kr": kr}


def test_uri_forms(hic):
    assert readers.resolve_cooler_uri(hic["cool"]).endswith("m.cool::/")
    assert readers.resolve_cooler_uri("file://" + hic["cool"]).endswith("m.cool::/")
    assert readers.resolve_cooler_uri(hic["mcool"], 1000).endswith("::/resolutions/1000")
    assert readers.resolve_cooler_uri(hic["mcool"] + "::resolutions/2000").endswith("/resolutions/2000")
    assert readers.resolve_cooler_uri(hic["legacy"] + "::/1").endswith("legacy.mcool::/1")
    assert readers.resolve_cooler_uri(hic["legacy"], 1000).endswith("legacy.mcool::/1")
    assert readers.list_resolutions(hic["legacy"]) == {2000: "/0", 1000: "/1"}


def test_resolution_errors_list_available(hic):
    with pytest.raises(MixHicError, match=r"resolution 5000 bp is not in the file \(available: 1000, 2000\)"):
        readers.resolve_cooler_uri(hic["mcool"], 5000)
    with pytest.raises(MixHicError, match="several resolutions"):
        readers.resolve_cooler_uri(hic["mcool"])
    with pytest.raises(MixHicError, match="holds 2000 bp bins"):
        readers.resolve_cooler_uri(hic["mcool"] + "::resolutions/2000", 1000)
    with pytest.raises(MixHicError, match="no cooler at"):
        readers.resolve_cooler_uri(hic["legacy"] + "::/7")


def test_missing_file(tmp_path):
    with pytest.raises(MixHicError, match="not found"):
        readers.inspect_hic(str(tmp_path / "nope.mcool"), 5000)
    with pytest.raises(MixHicError, match="not found"):
        readers.open_bigwig(str(tmp_path / "nope.bw"))
    with pytest.raises(MixHicError, match="local file"):
        readers.local_path("s3://bucket/x.cool")


def _expected(hic, w, divisive, r, c, mult):
    counts, out = hic["counts"], None
    if divisive:
        out = counts / np.outer(w, w)
    else:
        out = counts * np.outer(w, w)
    return out[np.ix_(r, c)] * mult


@pytest.mark.parametrize("rows,cols", [((0, 30), (0, 30)), ((10, 40), (10, 90)), ((60, 100), (60, 100)),
                                       ((20, 30), (50, 100))])
def test_band_is_balanced_matrix_multiplicative(hic, rows, cols):
    info = readers.inspect_hic(hic["cool"])
    assert not info.divisive and info.weight == "weight"
    assert info.multiplier == pytest.approx(np.nanmedian(1 / hic["w"] ** 2))
    band = readers.read_band(readers.open_cooler(info.uri), info, "chr1", rows, cols)
    want = _expected(hic, hic["w"], False, np.arange(*rows), np.arange(*cols), info.multiplier)
    assert band.shape == want.shape
    assert np.allclose(band, want, equal_nan=True)


def test_band_divisive_weights_and_chromosome_offset(hic):
    info = readers.inspect_hic(hic["cool"], weight="KR")
    assert info.divisive and info.multiplier == 1.0
    band = readers.read_band(readers.open_cooler(info.uri), info, "chr2", (0, 61), (0, 61))
    want = _expected(hic, hic["kr"], True, np.arange(100, 161), np.arange(100, 161), 1.0)
    assert np.allclose(band, want)
    forced = readers.inspect_hic(hic["cool"], weight="KR", divisive=False, multiplier=2.0)
    assert not forced.divisive and forced.multiplier == 2.0


@pytest.mark.parametrize("weight", ["weight", "KR", None])
@pytest.mark.parametrize("chrom,r0,r1,c1", [("chr1", 0, 30, 45), ("chr1", 40, 90, 100),
                                           ("chr2", 3, 20, 61)])
def test_band_pixels_open_group_and_unmirrored(hic, monkeypatch, weight, chrom, r0, r1, c1):
    """The worker's open HicPixels == a Cooler; mirror=False + mirroring == mirror=True; rows
    from the bin1_offset index == the stored bin1_id, also across pixel blocks."""
    info = readers.inspect_hic(hic["cool"], weight=weight)
    clr, grp = readers.open_cooler(info.uri), readers.HicPixels.open(info.uri)

    def dense(i, j, v):
        m = np.zeros((r1 - r0, c1 - r0))
        m[i, j] = v
        return m

    i, j, v, masked = readers.read_band_pixels(clr, info, chrom, r0, r1, c1)
    want = readers.read_band(clr, info, chrom, (r0, r1), (r0, c1))
    assert np.array_equal(masked, np.isnan(want).all(axis=0))
    assert np.allclose(dense(i, j, v)[:, ~masked][~masked[: r1 - r0]],
                       want[:, ~masked][~masked[: r1 - r0]])
    monkeypatch.setattr(readers, "_PIXEL_BLOCK", 7)  # several blocks
    ui, uj, uv, masked2 = readers.read_band_pixels(grp, info, chrom, r0, r1, c1, mirror=False)
    assert np.array_equal(masked, masked2) and (uj >= ui).all()
    low = (uj < r1 - r0) & (uj != ui)
    got = dense(np.r_[ui, uj[low]], np.r_[uj, ui[low]], np.r_[uv, uv[low]])
    assert np.array_equal(got, dense(i, j, v))
    off = int(clr.offset(chrom))
    px = clr.pixels()[:]
    b1, b2 = px.bin1_id.to_numpy() - off - r0, px.bin2_id.to_numpy() - off - r0
    sel = (b1 >= 0) & (b1 < r1 - r0) & (b2 < c1 - r0)
    sel[sel] &= ~masked[b1[sel]] & ~masked[b2[sel]]
    assert sorted(zip(ui.tolist(), uj.tolist())) == sorted(zip(b1[sel].tolist(), b2[sel].tolist()))
    grp.close()


def test_bin_mask(hic):
    info = readers.inspect_hic(hic["cool"])
    mask = readers.read_bin_mask(readers.open_cooler(info.uri), info, "chr2", 0, 61)
    assert mask.tolist() == [b == 20 for b in range(61)]  # bin 120 overall


def test_no_weight_column_says_what_to_do(hic):
    with pytest.raises(MixHicError) as err:
        readers.inspect_hic(hic["raw"])
    assert "cooler balance" in str(err.value) and "raw.cool" in str(err.value)
    with pytest.raises(MixHicError, match=r"weight columns in the file: KR, weight; pick one"):
        readers.inspect_hic(hic["cool"], weight="ICE")
    info = readers.inspect_hic(hic["raw"], weight=None)  # raw counts on request
    band = readers.read_band(readers.open_cooler(info.uri), info, "chr1", (0, 5), (0, 5))
    assert np.array_equal(band, hic["counts"][:5, :5])


def test_region_errors(hic):
    info = readers.inspect_hic(hic["cool"])
    clr = readers.open_cooler(info.uri)
    with pytest.raises(MixHicError, match="past the end of chr2"):
        readers.read_band(clr, info, "chr2", (0, 70), (0, 70))
    with pytest.raises(MixHicError, match="unknown chromosome 'chr9'"):
        readers.read_band(clr, info, "chr9", (0, 5), (0, 5))
    # the partial last bin is inside the chromosome
    assert readers.read_band(clr, info, "chr2", (55, 61), (55, 61)).shape == (6, 6)


@pytest.fixture(scope="module")
def track(tmp_path_factory, make):
    d = tmp_path_factory.mktemp("bw")
    return make.bigwig(d / "t.bw", {"1": 10_000, "2": 5_000, "3": 5_000},
                       {"1": [(0, 100, 2.0), (100, 150, 4.0), (300, 400, 1.0)],
                        "2": [(0, 5000, 1.0)]})


def test_track_bins_fill_vs_ignore_and_coverage(track):
    bw = readers.open_bigwig(track)
    v, cov = readers.read_track_bins(bw, "1", 0, 500, 100, "fill", 0.0)
    assert np.allclose(v, [2.0, 2.0, 0.0, 1.0, 0.0]) and cov == 250
    v, _ = readers.read_track_bins(bw, "1", 0, 500, 100, "ignore", -1.0)
    assert np.allclose(v, [2.0, 4.0, -1.0, 1.0, -1.0])
    # past the chromosome end and an absent chromosome are missing data
    v, cov = readers.read_track_bins(bw, "2", 4900, 5200, 100, "fill", 0.5)
    assert np.allclose(v, [1.0, 0.5, 0.5]) and cov == 100
    v, cov = readers.read_track_bins(bw, None, 0, 300, 100, "fill", 0.0)
    assert np.allclose(v, 0) and cov == 0
    bw.close()


def test_track_without_data_on_a_chromosome(track):
    bw = readers.open_bigwig(track)
    readers.check_track_data(bw, "1", "t.bw")
    with pytest.raises(MixHicError, match="track has no data on 3"):
        readers.check_track_data(bw, "3", "t.bw")
    with pytest.raises(MixHicError, match="no chromosome 'chrZ'"):
        readers.check_track_data(bw, "chrZ", "t.bw")
    bw.close()


@pytest.mark.parametrize("opener", ["open_bigwig", "open_track"])
def test_not_a_bigwig(tmp_path, opener):
    """Both openers (pyBigWig and the block reader's) refuse a file that is not a bigWig."""
    p = tmp_path / "x.bw"
    p.write_text("hello")
    with pytest.raises(MixHicError, match="not a readable bigWig"):
        getattr(readers, opener)(str(p))


def test_bedpe_and_bed(tmp_path):
    p = tmp_path / "l.bedpe"
    p.write_text("#chrom1\tx1\tx2\tchrom2\ty1\ty2\nchr1\t10\t20\tchr1\t100\t200\tname\t3\n"
                 "track name=x\n\n1\t5\t6\t2\t7\t8\n")
    bp = readers.read_bedpe(str(p))
    assert bp["chrom1"].tolist() == ["chr1", "1"] and bp["end2"].tolist() == [200, 8]
    p.write_text("chr1\t10\t20\tchr1\t100\n")
    with pytest.raises(MixHicError, match=r"l.bedpe:1: bedpe needs 6 columns"):
        readers.read_bedpe(str(p))
    p.write_text("chr1\t10\t20\tchr1\t100\t200\nchr1\tx\t20\tchr1\t100\t200\n")
    with pytest.raises(MixHicError, match=r"l.bedpe:2: bedpe coordinates"):
        readers.read_bedpe(str(p))
    b = tmp_path / "t.bed"
    b.write_text("chr1 5 6 g1 0 -\nchr2\t7\t8\n")
    bed = readers.read_bed(str(b))
    assert bed["strand"].tolist() == ["-", "."] and bed["name"].tolist() == ["g1", ""]


@pytest.mark.parametrize("missing", ["fill", "ignore"])
def test_large_and_small_bins_agree_with_per_bp_mean(tmp_path, make, missing):
    rng = np.random.default_rng(9)
    starts = np.sort(rng.choice(np.arange(0, 49_000, 10), 300, replace=False))
    ivs = [(int(s), int(s) + 7, float(v)) for s, v in zip(starts, rng.random(300) * 5)]
    path = make.bigwig(tmp_path / "big.bw", {"c": 49_500}, {"c": ivs})
    bw = readers.open_bigwig(path)
    big, cov = readers.read_track_bins(bw, "c", 0, 50_000, 5000, missing, 0.25)
    small, cov2 = readers.read_track_bins(bw, "c", 0, 50_000, 500, missing, 0.25)
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
    fast, slow = readers.open_track(path), readers.open_bigwig(path)
    assert type(fast).__name__ == "BigWigIndex"
    assert fast.chroms() == slow.chroms() and fast.chroms("b") == 20_050
    for chrom in ("a", "b", "c", "d", None):
        for start, end in ((0, 20_000), (777, 20_100), (19_990, 31_000)):
            got, cov = readers.read_track_bins(fast, chrom, start, end, bin_size, missing, 0.5)
            want, cov2 = readers.read_track_bins(slow, chrom, start, end, bin_size, missing, 0.5)
            assert cov == cov2, (chrom, start, end)
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=str(chrom))
    fast.close()
    slow.close()


def test_interval_reader_overlapping_intervals_fall_back_to_per_bp(monkeypatch, track):
    """Overlapping intervals (a malformed file) take the per-bp path: the last one wins."""
    from mixhic.pipelines import _bigwig

    fast = readers.open_track(track)
    real = _bigwig.BigWigIndex.blocks

    def overlapping(self, chrom, start, end):
        for s, e, v in real(self, chrom, start, end):
            yield s, e + 60, v

    monkeypatch.setattr(_bigwig.BigWigIndex, "blocks", overlapping)
    v, cov = readers.read_track_bins(fast, "1", 0, 500, 100, "fill", 0.0)
    assert np.allclose(v, [2.0, 2.0, 0.0, 1.0, 0.0]) and cov == 250
    fast.close()


@pytest.mark.parametrize("missing", ["fill", "ignore"])
def test_interval_reader_blocks_out_of_order(tmp_path, monkeypatch, missing):
    """Data blocks out of genomic order (allowed by the format): all intervals are sorted
    first, same result as per-bp reads."""
    from mixhic.pipelines import _bigwig

    path = _three_section_types(tmp_path / "s.bw")
    fast, slow = readers.open_track(path), readers.open_bigwig(path)
    real = _bigwig.BigWigIndex.blocks

    def shuffled(self, chrom, start, end):
        got = list(real(self, chrom, start, end))
        # every block's second half first, then the first halves
        halves = [(s[h:], e[h:], v[h:]) for s, e, v in got for h in [len(s) // 2]]
        halves += [(s[:h], e[:h], v[:h]) for s, e, v in got for h in [len(s) // 2]]
        yield from (x for x in halves if len(x[0]))

    monkeypatch.setattr(_bigwig.BigWigIndex, "blocks", shuffled)
    for chrom in ("a", "b", "c"):
        got, cov = readers.read_track_bins(fast, chrom, 500, 19_900, 100, missing, 0.5)
        want, cov2 = readers.read_track_bins(slow, chrom, 500, 19_900, 100, missing, 0.5)
        assert cov == cov2
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    fast.close()
    slow.close()


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ("chr1\t-5\t100\tchr1\t500\t600", "start1 -5 is negative"),
        ("chr1\t300\t100\tchr1\t500\t600", "start1 300 > end1 100"),
        ("chr1\t100\t200\tchr1\t700\t600", "start2 700 > end2 600"),
    ],
)
def test_bad_bedpe_rows_name_line_and_field(tmp_path, row, match):
    from mixhic.core.errors import MixHicError
    from mixhic.pipelines.readers import read_bedpe

    p = tmp_path / "loops.bedpe"
    p.write_text("chr1\t0\t100\tchr1\t500\t600\n" + row + "\n")
    with pytest.raises(MixHicError, match=rf"loops.bedpe:2: {match}"):
        read_bedpe(str(p))
    p.write_text("chr1\t0\t100\tchr1\t500\t600\n")
    assert read_bedpe(str(p))["start2"].tolist() == [500]


def test_bad_bed_rows_are_refused(tmp_path):
    from mixhic.core.errors import MixHicError
    from mixhic.pipelines.readers import read_bed

    p = tmp_path / "tss.bed"
    p.write_text("chr1\t10\t5\tg1\t0\t+\n")
    with pytest.raises(MixHicError, match=r"tss.bed:1: start 10 > end 5"):
        read_bed(str(p))
