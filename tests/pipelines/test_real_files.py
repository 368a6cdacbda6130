"""Every real public file in ../shared/data/real either prepares or fails with a clear message.

Hi-C files: the readers with default options either work or raise a MixHicError naming
the problem (no weights, several resolutions, ...); with the fix the message suggests,
a full plan is built and one chunk is processed into schema-valid rows (no Ray). bigWigs:
binned reads with explicit coverage, chromosome names matched, empty chromosomes
reported.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from mixhic.core.config import build
from mixhic.core.errors import MixHicError
from mixhic.pipelines import bigwig_reader, hic_reader
from mixhic.pipelines.extract import open_handles, process_chunk
from mixhic.pipelines.names import name_key, resolve_name
from mixhic.pipelines.prepare import PrepareConfig, build_tasks
from mixhic.pipelines.schema import WindowShape, validate_table

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
FILES = sorted(p.name for p in REAL.iterdir() if p.suffix in (".cool", ".mcool", ".bw")) if REAL.is_dir() else []

# default-option outcome (error regex or None) and the override that makes the file usable
HIC = {
    "yeast.10kb.cool": (None, {}),
    "hg19.GM12878-MboI.matrix.2000kb.cool": (r"no balancing weight column 'weight' \(the file has no weight column\); run `cooler balance", {"weight": None}),
    "mm9_reduced_chr1.cool": (r"no balancing weight column.*cooler balance", {"weight": None}),
    "float_counts.cool": (r"weight columns in the file: ICE, KR, perChromIC, perChromKR", {"weight": "KR"}),
    "GSE63525_GM12878_insitu_primary_2_5mb.cool": (r"weight columns in the file: KR, VC, VC_SQRT", {"weight": "KR"}),
    "dm3.matrix.mcool": (r"several resolutions \(40000, 80000, 160000, 320000, 640000\)", {"resolution": 40000}),
}
# files whose weights are known to be divisive (hic2cool)
DIVISIVE = {"GSE63525_GM12878_insitu_primary_2_5mb.cool"}


def _renamed(name: str) -> str:
    """The other spelling: chr1 <-> 1, so every plan exercises name matching."""
    return name[3:] if name.lower().startswith("chr") else "chr" + name


@pytest.mark.parametrize("name", [f for f in FILES if not f.endswith(".bw")] or ["<none>"])
def test_hic_file_prepares_or_fails_clearly(real_data, make, tmp_path, name):
    path = str(real_data / name)
    expect_error, fix = HIC.get(name, (None, {}))
    try:
        info = hic_reader.inspect_hic(path)
        assert expect_error is None, f"{name}: expected an error matching {expect_error!r}"
    except MixHicError as exc:
        msg = str(exc)
        assert "\n" not in msg and name in msg
        if expect_error is None and name in HIC:
            raise
        if name in HIC:
            assert re.search(expect_error, msg), msg
        else:  # a new file: the message must name a known problem
            assert any(k in msg for k in ("weight", "resolution", "chromosome")), msg
            pytest.skip(f"{name}: {msg}")
        info = hic_reader.inspect_hic(path, resolution=fix.get("resolution"),
                                   weight=fix.get("weight", "weight"))
    if name in DIVISIVE:
        assert info.divisive
    # a track over the same chromosomes, spelled the other way (chr1 <-> 1)
    sizes = {_renamed(c): s for c, s in info.chromsizes.items()}
    ivs = {c: [(0, min(s, 50_000), 1.5), (min(s, 60_000), min(s, 70_000), 3.0)]
           for c, s in sizes.items() if s > 70_000}
    track = make.bigwig(tmp_path / "t.bw", sizes, ivs)
    w = 10
    raw = {
        "inputs": {"hic": {"uri": path, "resolution": info.resolution, "weight": info.weight},
                   "tracks": [{"name": "t", "uri": track}]},
        "out": str(tmp_path / "o"), "window_bins": w, "epi_bin": info.resolution // 10,
        "datasets": {"loops": {"enabled": False}, "cage": {"enabled": False},
                     "hic": {"enabled": False},
                     "pretrain": {"step_bp": info.resolution * 5}},
        "normalize": {"require_track_data": False},
        "qc": {"min_nonzero_frac": 0.0, "max_masked_bins": w},
        "run": {"chunk_bins": 40},
    }
    cfg = build(PrepareConfig, raw)
    settings, tasks, meta = build_tasks(cfg)
    assert tasks, name
    assert all(name_key(t[0]) == name_key(c) for c, v in meta["chromosomes"].items()
               for t in [v["tracks"]] if t[0] is not None)
    handles = open_handles(settings)
    task = max(tasks, key=lambda t: t["hi"] - t["lo"])
    tables, stats = process_chunk(settings, task, handles)
    table = tables["pretrain"]
    validate_table(table, "pretrain", WindowShape(w, 1, w * 10))
    assert table.num_rows > 0, (name, stats)
    hic = table["hic"].combine_chunks().to_numpy_ndarray()
    assert np.isfinite(hic).all() and hic.min() >= 0 and hic.max() <= 1


@pytest.mark.parametrize("name", [f for f in FILES if f.endswith(".bw")] or ["<none>"])
def test_bigwig_reads_with_explicit_coverage(real_data, name):
    path = str(real_data / name)
    bw = bigwig_reader.open_bigwig(path)
    try:
        chroms = bw.chroms()
        assert chroms
        with_data = 0
        for chrom, size in list(chroms.items())[:5]:
            # names resolve from either spelling
            assert resolve_name(_renamed(chrom), list(chroms), path) == chrom
            try:
                bigwig_reader.check_track_data(bw, chrom, path)
                with_data += 1
            except MixHicError as exc:
                assert "no data on" in str(exc) and path in str(exc)
                continue
            end = min(size, 6_000_000)
            vals, covered = bigwig_reader.read_track_bins(bw, chrom, 0, end, 100, "fill", 0.0)
            assert len(vals) == -(-end // 100) and np.isfinite(vals).all()
            assert 0 <= covered <= end
            coarse, cov2 = bigwig_reader.read_track_bins(bw, chrom, 0, end, 5000, "fill", 0.0)
            assert cov2 == covered  # same coverage through the large-bin (stats) path
            assert np.allclose(coarse[: end // 5000],
                               vals[: (end // 5000) * 50].reshape(-1, 50).mean(1), atol=1e-4)
        assert with_data >= 1
        # an absent chromosome is reported by name
        with pytest.raises(MixHicError, match="no chromosome 'chrNope'"):
            bigwig_reader.check_track_data(bw, "chrNope", path)
    finally:
        bw.close()


def test_real_pair_mm9_hic_and_track(real_data, tmp_path):
    """The one real Hi-C + track pair: raw counts (no weights) and a signed PCA track."""
    cool, bw = real_data / "mm9_reduced_chr1.cool", real_data / "mm9_reduced_chr1.pca1.bw"
    if not (cool.exists() and bw.exists()):
        pytest.skip("mm9 pair absent")
    raw = {
        "inputs": {"hic": {"uri": str(cool), "weight": None},
                   "tracks": [{"name": "pca1", "uri": str(bw)}]},
        "out": str(tmp_path / "o"), "window_bins": 50, "epi_bin": 200,
        "datasets": {"loops": {"enabled": False}, "cage": {"enabled": False},
                     "hic": {"enabled": False}, "pretrain": {"step_bp": 250_000}},
        "normalize": {"epi": "none"},
        "run": {"chunk_bins": 500},
    }
    cfg = build(PrepareConfig, raw)
    settings, tasks, meta = build_tasks(cfg)
    tables, stats = process_chunk(settings, tasks[0], open_handles(settings))
    t = tables["pretrain"]
    assert t.num_rows > 10
    epi = t["epi"].combine_chunks().to_numpy_ndarray()
    assert (epi < 0).any() and (epi > 0).any()  # signed track kept as is with epi=none


@pytest.mark.parametrize("reader", ["pybigwig", "intervals"])
@pytest.mark.parametrize("missing", ["fill", "ignore"])
@pytest.mark.parametrize("bin_size", [7, 100, 5000])
def test_track_bins_equal_a_per_bp_mean(real_data, missing, bin_size, reader):
    """Binning (per-bp values() or the numpy interval reader) == the mean of per-bp
    values() (NaN = missing), on real files."""
    import numpy as np
    import pyBigWig

    for name in ("pybigwig_test.bw", "dm3.chrX_2e6_5e6.bw", "mm9_reduced_chr1.pca1.bw"):
        if not (real_data / name).exists():
            continue
        with pyBigWig.open(str(real_data / name)) as bw:
            chrom, size = next(iter(bw.chroms().items()))
            end = min(size, 3_100_000) + 3 * bin_size  # runs past the chromosome end
            src = bw if reader == "pybigwig" else bigwig_reader.open_track(str(real_data / name))
            assert reader == "pybigwig" or type(src).__name__ == "BigWigIndex"
            got, covered = bigwig_reader.read_track_bins(src, chrom, 0, end, bin_size, missing, 0.5)
            if src is not bw:
                src.close()
            full = -(-end // bin_size) * bin_size  # the last bin is read whole
            raw = np.full(full, np.nan)
            raw[: min(size, full)] = bw.values(chrom, 0, min(size, full), numpy=True)
            raw = raw.reshape(-1, bin_size)
            have = ~np.isnan(raw)
            if missing == "fill":
                want = np.where(have, raw, 0.5).mean(axis=1)
            else:
                n = have.sum(axis=1)
                want = np.where(n > 0, np.nansum(raw, axis=1) / np.maximum(n, 1), 0.5)
            assert covered == int(have.sum())
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)
