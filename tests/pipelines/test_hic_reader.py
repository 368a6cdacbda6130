"""The Hi-C reader on tiny hand-made cooler files (.cool, .mcool in both layouts)."""

import numpy as np
import pytest
from mixhic.core.errors import MixHicError
from mixhic.pipelines import hic_reader

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
    assert hic_reader.resolve_cooler_uri(hic["cool"]).endswith("m.cool::/")
    assert hic_reader.resolve_cooler_uri("file://" + hic["cool"]).endswith("m.cool::/")
    assert hic_reader.resolve_cooler_uri(hic["mcool"], 1000).endswith("::/resolutions/1000")
    assert hic_reader.resolve_cooler_uri(hic["mcool"] + "::resolutions/2000").endswith("/resolutions/2000")
    assert hic_reader.resolve_cooler_uri(hic["legacy"] + "::/1").endswith("legacy.mcool::/1")
    assert hic_reader.resolve_cooler_uri(hic["legacy"], 1000).endswith("legacy.mcool::/1")
    assert hic_reader.list_resolutions(hic["legacy"]) == {2000: "/0", 1000: "/1"}


def test_resolution_errors_list_available(hic):
    with pytest.raises(MixHicError, match=r"resolution 5000 bp is not in the file \(available: 1000, 2000\)"):
        hic_reader.resolve_cooler_uri(hic["mcool"], 5000)
    with pytest.raises(MixHicError, match="several resolutions"):
        hic_reader.resolve_cooler_uri(hic["mcool"])
    with pytest.raises(MixHicError, match="holds 2000 bp bins"):
        hic_reader.resolve_cooler_uri(hic["mcool"] + "::resolutions/2000", 1000)
    with pytest.raises(MixHicError, match="no cooler at"):
        hic_reader.resolve_cooler_uri(hic["legacy"] + "::/7")


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
    info = hic_reader.inspect_hic(hic["cool"])
    assert not info.divisive and info.weight == "weight"
    assert info.multiplier == pytest.approx(np.nanmedian(1 / hic["w"] ** 2))
    band = hic_reader.read_band(hic_reader.open_cooler(info.uri), info, "chr1", rows, cols)
    want = _expected(hic, hic["w"], False, np.arange(*rows), np.arange(*cols), info.multiplier)
    assert band.shape == want.shape
    assert np.allclose(band, want, equal_nan=True)


def test_band_divisive_weights_and_chromosome_offset(hic):
    info = hic_reader.inspect_hic(hic["cool"], weight="KR")
    assert info.divisive and info.multiplier == 1.0
    band = hic_reader.read_band(hic_reader.open_cooler(info.uri), info, "chr2", (0, 61), (0, 61))
    want = _expected(hic, hic["kr"], True, np.arange(100, 161), np.arange(100, 161), 1.0)
    assert np.allclose(band, want)
    forced = hic_reader.inspect_hic(hic["cool"], weight="KR", divisive=False, multiplier=2.0)
    assert not forced.divisive and forced.multiplier == 2.0


@pytest.mark.parametrize("weight", ["weight", "KR", None])
@pytest.mark.parametrize("chrom,r0,r1,c1", [("chr1", 0, 30, 45), ("chr1", 40, 90, 100),
                                           ("chr2", 3, 20, 61)])
def test_band_pixels_open_group_and_unmirrored(hic, monkeypatch, weight, chrom, r0, r1, c1):
    """The worker's open HicPixels == a Cooler; mirror=False + mirroring == mirror=True; rows
    from the bin1_offset index == the stored bin1_id, also across pixel blocks."""
    info = hic_reader.inspect_hic(hic["cool"], weight=weight)
    clr, grp = hic_reader.open_cooler(info.uri), hic_reader.HicPixels.open(info.uri)

    def dense(i, j, v):
        m = np.zeros((r1 - r0, c1 - r0))
        m[i, j] = v
        return m

    i, j, v, masked = hic_reader.read_band_pixels(clr, info, chrom, r0, r1, c1)
    want = hic_reader.read_band(clr, info, chrom, (r0, r1), (r0, c1))
    assert np.array_equal(masked, np.isnan(want).all(axis=0))
    assert np.allclose(dense(i, j, v)[:, ~masked][~masked[: r1 - r0]],
                       want[:, ~masked][~masked[: r1 - r0]])
    monkeypatch.setattr(hic_reader, "_PIXEL_BLOCK", 7)  # several blocks
    ui, uj, uv, masked2 = hic_reader.read_band_pixels(grp, info, chrom, r0, r1, c1, mirror=False)
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
    info = hic_reader.inspect_hic(hic["cool"])
    mask = hic_reader.read_bin_mask(hic_reader.open_cooler(info.uri), info, "chr2", 0, 61)
    assert mask.tolist() == [b == 20 for b in range(61)]  # bin 120 overall


def test_no_weight_column_says_what_to_do(hic):
    with pytest.raises(MixHicError) as err:
        hic_reader.inspect_hic(hic["raw"])
    assert "cooler balance" in str(err.value) and "raw.cool" in str(err.value)
    with pytest.raises(MixHicError, match=r"weight columns in the file: KR, weight; pick one"):
        hic_reader.inspect_hic(hic["cool"], weight="ICE")
    info = hic_reader.inspect_hic(hic["raw"], weight=None)  # raw counts on request
    band = hic_reader.read_band(hic_reader.open_cooler(info.uri), info, "chr1", (0, 5), (0, 5))
    assert np.array_equal(band, hic["counts"][:5, :5])


def test_region_errors(hic):
    info = hic_reader.inspect_hic(hic["cool"])
    clr = hic_reader.open_cooler(info.uri)
    with pytest.raises(MixHicError, match="past the end of chr2"):
        hic_reader.read_band(clr, info, "chr2", (0, 70), (0, 70))
    with pytest.raises(MixHicError, match="unknown chromosome 'chr9'"):
        hic_reader.read_band(clr, info, "chr9", (0, 5), (0, 5))
    # the partial last bin is inside the chromosome
    assert hic_reader.read_band(clr, info, "chr2", (55, 61), (55, 61)).shape == (6, 6)
