"""``mixhic predict`` on a simulated genome: .cool/.mcool, bedpe calls and bigWig, resumable,
restricted to regions, skipping unmappable anchors."""

from __future__ import annotations

import numpy as np
import pytest
from mixhic.core.errors import MixHicError
from mixhic.serve.plan import plan_chromosome, plan_windows
from mixhic.serve.writers import BandAccumulator, cage_inverse, hic_inverse, read_loop_calls
from serve_helpers import RES, W, cached_genome, cached_models, direct_model, independent_window

STEP = 10  # diagonal windows every 10 bins: bins 0..9 are in window 0 only
LOOPS = {"min_distance": 20_000, "max_distance": 150_000, "stride_bins": 4,
         "min_probability": 0.0,  # keep every candidate ...
         "call": {"enabled": False}}  # ... each as its own call in the bedpe


def test_plan_windows_geometry():
    from mixhic.serve.config import LoopScan

    x, y = plan_windows("hic", 205, 20, RES, 10, None)
    assert (x == y).all() and x[0] == 0 and x[-1] == 185 and np.all(np.diff(x) > 0)
    scan = LoopScan(min_distance=20_000, max_distance=100_000, stride_bins=2)
    x, y = plan_windows("loops", 205, 20, RES, 0, scan)
    d = (y - x) * RES
    assert len(x) and d.min() >= 20_000 and d.max() <= 100_000
    assert x.min() >= 0 and y.max() + 20 <= 205
    assert len(set(zip(x.tolist(), y.tolist()))) == len(x)


def test_band_accumulator_averages_overlaps():
    acc = BandAccumulator(6, 4)
    acc.add(np.array([0, 2]), np.stack([np.full((4, 4), 1.0), np.full((4, 4), 3.0)]))
    b1, b2, v = acc.pixels()
    got = {(i, j): val for i, j, val in zip(b1, b2, v)}
    assert got[(0, 0)] == 1 and got[(2, 2)] == 2 and got[(2, 3)] == 2 and got[(4, 5)] == 3
    assert (0, 4) not in got and all(j - i < 4 for i, j in got)


def test_loop_grid_matches_its_definition():
    """The vectorised loop grid = every pair of stride-grid anchors at an allowed distance."""
    from mixhic.serve.config import LoopScan
    from mixhic.serve.throughput import count_windows

    for n_bins, stride, dmax in ((205, 2, 100_000), (97, 3, 60_000), (30, 1, 200_000),
                                 (10, 1, 50_000)):
        scan = LoopScan(min_distance=10_000, max_distance=dmax, stride_bins=stride)
        x, y = plan_windows("loops", n_bins, 20, RES, 0, scan)
        half, last = 10, n_bins - 20
        anchors = range(half, last + half + 1, stride)
        want = [(a - half, b - half) for a in anchors for b in anchors
                if 2 <= b - a <= dmax // RES]
        assert list(zip(x.tolist(), y.tolist())) == want
        assert count_windows("loops", n_bins, 20, RES, 0, scan) == len(want)
        assert count_windows("hic", n_bins, 20, RES, 7, scan) == len(
            plan_windows("hic", n_bins, 20, RES, 7, scan)[0])


def test_plan_chromosome_regions_and_unmappable_anchors():
    from mixhic.serve.config import LoopScan

    scan = LoopScan(min_distance=10_000, max_distance=100_000, stride_bins=1)
    masked = np.zeros(200, bool)
    masked[[50, 120]] = True
    full = plan_chromosome("loops", 200, 20, RES, 0, scan)
    plan = plan_chromosome("loops", 200, 20, RES, 0, scan, masked=masked)
    i, j = full.x + 10, full.y + 10
    bad = masked[i] | masked[j]
    assert plan.unmappable == bad.sum() > 0 and len(plan.x) == (~bad).sum()
    assert not (masked[plan.x + 10] | masked[plan.y + 10]).any()
    # regions: both anchors in one region, on the chromosome's grid
    regions = np.array([[30, 70], [100, 180]])
    plan = plan_chromosome("loops", 200, 20, RES, 0, scan, regions=regions, masked=masked)
    i, j = plan.x + 10, plan.y + 10
    in_a = (i >= 30) & (j < 70)
    in_b = (i >= 100) & (j < 180)
    assert (in_a | in_b).all() and in_a.any() and in_b.any()
    inside = np.zeros(200, bool)
    inside[30:70] = inside[100:180] = True
    sub = ~(masked[full.x + 10] | masked[full.y + 10])
    fi, fj = full.x[sub] + 10, full.y[sub] + 10
    same = ((fi >= 30) & (fj < 70)) | ((fi >= 100) & (fj < 180))
    assert len(i) == same.sum()  # exactly the full grid's pairs inside a region
    # diagonal windows tile each region; a region shorter than W gets one centred window
    plan = plan_chromosome("hic", 200, 20, RES, 10, None, regions=np.array([[0, 45], [150, 155]]))
    assert plan.x.tolist() == [0, 10, 20, 25, 143]
    assert plan.inside[:45].all() and plan.inside[150:155].all() and plan.inside.sum() == 50
    # a diagonal window whose bins are all masked is skipped
    masked = np.zeros(200, bool)
    masked[0:30] = True
    plan = plan_chromosome("cage", 200, 20, RES, 10, None, masked=masked)
    assert plan.unmappable == 2 and plan.x[0] == 20


def test_regions_resolve_or_fail_naming_the_region(tmp_path):
    from mixhic.serve.config import PredictConfig
    from mixhic.serve.plan import resolve_regions

    sizes = {"chr1": 1_000_000, "chr2": 500_000}

    def regions(*entries, bed=None):
        return resolve_regions(PredictConfig(regions=entries, regions_bed=bed), sizes, "g.mcool")

    assert regions() is None
    got = regions("1:100,000-200000", "chr1:150000-300000", "chr2:0-10")
    assert list(got) == ["chr1", "chr2"]
    assert got["chr1"].tolist() == [[100_000, 300_000]] and got["chr2"].tolist() == [[0, 10]]
    assert regions("chr2")["chr2"].tolist() == [[0, 500_000]]
    for entry, match in (("chr9:0-100", r"regions\[0\] \('chr9:0-100'\).*no chromosome"),
                         ("chr1:500-500", r"chr1:500-500.*start >= end"),
                         ("chr2:0-600000", r"chr2:0-600000.*past the end of chr2"),
                         ("chr1:5-", r"chr1:5-.*expected chrom:start-end")):
        with pytest.raises(MixHicError, match=match):
            regions(entry)
    bed = tmp_path / "r.bed"
    bed.write_text("chr1\t0\t1000\nchr3\t0\t10\n")
    with pytest.raises(MixHicError, match=r"r\.bed \(region 2, chr3:0-10\).*no chromosome"):
        regions(bed=str(bed))
    bed.write_text("chr1\t0\t10\nchr1\t5\tx\n")
    with pytest.raises(MixHicError, match=r"r\.bed:2"):
        regions(bed=str(bed))
    with pytest.raises(MixHicError, match="missing.bed"):
        regions(bed=str(tmp_path / "missing.bed"))
    with pytest.raises(ValueError, match="either chroms or regions"):
        PredictConfig(chroms=("chr1",), regions=("chr1:0-10",))


def test_mcool_and_bigwig_writers_zoom(tmp_path):
    """Two resolutions of each file, opened with cooler and pyBigWig (no Ray)."""
    import cooler
    import pyBigWig
    from mixhic.serve.writers import write_bigwig, write_cool, write_mcool

    sizes = {"chr1": 203_000, "chr2": 90_000}
    acc = BandAccumulator(40, 8)
    rng = np.random.default_rng(0)
    acc.add(np.arange(0, 33, 4), rng.uniform(0, 5, (9, 8, 8)))
    b1, b2, v = acc.pixels()
    cool = write_cool(tmp_path / "p.cool", sizes, 5000, {"chr1": (b1, b2, v)})
    mcool = write_mcool(tmp_path / "p.mcool", cool, [5000, 10000, 20000])
    base = cooler.Cooler(f"{mcool}::/resolutions/5000")
    m5 = np.triu(np.nan_to_num(base.matrix(balance=True).fetch("chr1")))
    for r in (10000, 20000):
        clr = cooler.Cooler(f"{mcool}::/resolutions/{r}")
        assert clr.binsize == r and dict(clr.chromsizes) == sizes
        bins = clr.bins()[:]
        assert len(bins) == sum(-(-s // r) for s in sizes.values())
        assert bins["weight"].notna().any() and bins.query("chrom == 'chr2'")["weight"].isna().all()
        f = r // 5000
        n = m5.shape[0] // f * f
        coarse = np.triu(np.nan_to_num(clr.matrix(balance=True).fetch("chr1")))
        want = m5[:n, :n].reshape(n // f, f, n // f, f).sum(axis=(1, 3))
        np.testing.assert_allclose(coarse[: n // f, : n // f], want, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="not multiples"):
        write_mcool(tmp_path / "q.mcool", cool, [5000, 7500])
    vals = {"chr1": (np.arange(40), np.linspace(0, 10, 40)), "chr2": (np.arange(18), np.ones(18))}
    bw = pyBigWig.open(str(write_bigwig(tmp_path / "c.bw", sizes, 5000, vals)))
    assert bw.header()["nLevels"] > 0  # zoom levels written
    exact = bw.stats("chr1", 0, 200_000, nBins=4, exact=True)
    zoomed = bw.stats("chr1", 0, 200_000, nBins=4)  # from a zoom level
    np.testing.assert_allclose(zoomed, exact, rtol=0.05)
    np.testing.assert_allclose(bw.values("chr1", 0, 10_000),
                               [0.0] * 5000 + [vals["chr1"][1][1]] * 5000, rtol=1e-6)
    bw.close()


@pytest.fixture(scope="module")
def predicted(ray_local, tmp_path_factory):
    from mixhic.core.config import load_config
    from mixhic.serve.config import PredictConfig
    from mixhic.serve.predict import predict_genome

    genome, models = cached_genome(), cached_models()
    out = tmp_path_factory.mktemp("predict")
    cfg = load_config("predict-demo", PredictConfig, {
        "models": [str(p) for p in models.values()],
        "out_dir": str(out),
        "chroms": ["1", "chr2"],  # name matching: 1 -> chr1
        "genome": {"mcool": str(genome.mcool),
                   "tracks": {"atac": str(genome.atac), "dnase": str(genome.dnase)}},
        "step_bins": STEP,
        "loops": LOOPS,
        "batch_size": 16,
        "chunk_windows": 300,
        "num_cpus": 0.5,
        "progress": False,
    })
    return cfg, predict_genome(cfg), genome, models


def _sizes(genome) -> dict[str, int]:
    lines = genome.chrom_sizes.read_text().splitlines()
    return {c: int(n) for c, n in (ln.split() for ln in lines)}


def _masked(genome, chrom: str) -> np.ndarray:
    """Bins of ``chrom`` without a balancing weight, read with cooler directly."""
    import cooler

    w = cooler.Cooler(f"{genome.mcool}::/resolutions/{RES}").bins().fetch(chrom)["weight"]
    return ~np.isfinite(w.to_numpy()) | (w.to_numpy() == 0)


def test_cool_covers_chromosomes_and_holds_the_stitched_predictions(predicted):
    import cooler

    cfg, res, genome, models = predicted
    assert res.chroms == ("chr1", "chr2") and res.cool.name == "predicted_hic.cool"
    clr = cooler.Cooler(str(res.cool))
    sizes = _sizes(genome)
    assert clr.binsize == RES and list(clr.chromnames) == ["chr1", "chr2"]
    assert dict(clr.chromsizes) == {c: sizes[c] for c in ("chr1", "chr2")}
    raw = clr.matrix(balance=False).fetch("chr1")
    n = sizes["chr1"] // RES  # whole bins; the partial last bin is not predicted
    balanced = clr.matrix(balance=True).fetch("chr1")
    np.testing.assert_allclose(balanced[:n, :n], raw[:n, :n])  # weight 1 where predicted
    assert np.isnan(balanced[n:]).all() and raw.shape[0] == n + 1  # NaN: no prediction
    i, j = np.triu_indices(n)
    inside = j - i < W
    assert np.isfinite(raw).all() and (raw >= 0).all()
    assert (raw[i[~inside], j[~inside]] == 0).all()  # nothing outside the diagonal band
    # every pixel of a window is written (zeros included: a random model predicts < 0)
    covered = np.zeros((n, n), bool)
    for x in plan_windows("hic", n, W, RES, STEP, None)[0]:
        covered[x:x + W, x:x + W] = True
    assert len(clr.pixels().fetch("chr1")) == np.triu(covered).sum()
    # bins 0..9 of chr1 lie in window 0 only: the value is that window's prediction
    epi, _ = independent_window(genome, "chr1", 0, 0)
    pred = direct_model(models)("hic", epi[None])[0]
    expect = hic_inverse(pred, "log1p_fixed")  # both halves of the window are averaged
    sym = (expect + expect.T) / 2
    np.testing.assert_allclose(raw[:STEP, :STEP][np.triu_indices(STEP)],
                               sym[:STEP, :STEP][np.triu_indices(STEP)], rtol=1e-4, atol=1e-4)
    assert clr.pixels()[:]["count"].dtype == np.float64


def test_mcool_and_bigwig_open_at_two_resolutions(predicted):
    """HiGlass-ready files: the .mcool's levels hold the summed predictions with a weight
    column; the bigWig has zoom levels agreeing with its base data."""
    import cooler
    import pyBigWig

    cfg, res, genome, models = predicted
    assert cooler.fileops.list_coolers(str(res.mcool)) == ["/resolutions/5000",
                                                           "/resolutions/10000"]
    base = cooler.Cooler(str(res.cool)).matrix(balance=True).fetch("chr2")
    sizes = _sizes(genome)
    for r in (5000, 10000):
        clr = cooler.Cooler(f"{res.mcool}::/resolutions/{r}")
        assert clr.binsize == r and dict(clr.chromsizes) == {c: sizes[c] for c in res.chroms}
        w = clr.bins().fetch("chr2")["weight"].to_numpy()
        assert np.isfinite(w[:-1]).all() and np.isnan(w[-1])  # partial last bin: none
        m = np.triu(np.nan_to_num(clr.matrix(balance=True).fetch("chr2")))
        f = r // RES
        n = (base.shape[0] - 1) // f * f
        want = np.triu(np.nan_to_num(base))[:n, :n].reshape(n // f, f, n // f, f).sum(axis=(1, 3))
        np.testing.assert_allclose(m[: n // f, : n // f], want, rtol=1e-9, atol=1e-12)
    bw = pyBigWig.open(str(res.bigwig))
    assert bw.header()["nLevels"] > 0
    size = sizes["chr1"] // RES * RES
    np.testing.assert_allclose(bw.stats("chr1", 0, size, nBins=3),  # zoom level
                               bw.stats("chr1", 0, size, nBins=3, exact=True), rtol=0.05)
    bw.close()


def test_bedpe_scores_every_mappable_candidate_pair(predicted):
    import json

    cfg, res, genome, models = predicted
    header = res.bedpe.read_text().splitlines()[0]
    assert header == "#chrom1\tstart1\tend1\tchrom2\tstart2\tend2\tname\tscore\tprobability" \
                     "\tcluster_size"
    calls = read_loop_calls(res.bedpe)
    assert set(calls["chrom1"]) == {"chr1", "chr2"} and (calls["cluster_size"] == 1).all()
    summary = json.loads(res.summary.read_text())
    expected, n_bad = 0, 0
    for chrom, size in _sizes(genome).items():
        masked = _masked(genome, chrom)
        x, y = plan_windows("loops", size // RES, W, RES, 0, cfg.loops)
        bad = masked[x + W // 2] | masked[y + W // 2]
        n_bad += int(bad.sum())
        assert summary["windows"]["loops"][chrom] == {"predicted": int((~bad).sum()),
                                                     "unmappable_skipped": int(bad.sum())}
        expected += int((~bad).sum())
        rows = calls["chrom1"] == chrom
        assert not masked[calls["start1"][rows] // RES].any()
        assert not masked[calls["start2"][rows] // RES].any()
    assert n_bad > 0  # the simulator masks ~4 % of the bins
    assert len(calls["name"]) == expected == summary["loops"]["calls"]
    d = calls["start2"] - calls["start1"]
    p = calls["probability"]
    assert (d >= 20_000).all() and (d <= 150_000).all() and ((p >= 0) & (p <= 1)).all()
    assert (np.abs(calls["score"] - 1000 * p) <= 0.5 + 1e-6).all()  # p is printed to 6 dp
    # one call checked against the model on independently read inputs
    k = 5
    x0, y0 = calls["start1"][k] - (W // 2) * RES, calls["start2"][k] - (W // 2) * RES
    epi, hic = independent_window(genome, calls["chrom1"][k], x0, y0)
    offset = np.array([(y0 - x0) // RES], dtype=np.float32)  # the pair's anchor offset
    want = direct_model(models)("loops", epi[None], hic[None], offset)[0]
    assert abs(p[k] - want) < 1e-4
    assert summary["throughput"]["windows_per_s_per_core"] > 0
    assert summary["throughput"]["genome_hours_32_cores"] > 0


def test_bigwig_holds_cage_per_bin(predicted):
    import pyBigWig

    cfg, res, genome, models = predicted
    bw = pyBigWig.open(str(res.bigwig))
    sizes = _sizes(genome)
    assert bw.chroms() == {c: sizes[c] for c in ("chr1", "chr2")}
    vals = bw.intervals("chr2")
    assert len(vals) == sizes["chr2"] // RES
    assert all(e - s == RES for s, e, _ in vals)
    epi, hic = independent_window(genome, "chr2", 0, 0)
    want = cage_inverse(direct_model(models)("cage", epi[None], hic[None])[0])
    got = np.array([v for _, _, v in vals[:STEP]])
    np.testing.assert_allclose(got, want[:STEP], rtol=1e-4, atol=1e-4)
    bw.close()


def test_resume_skips_done_chromosomes_and_redoes_a_missing_part(predicted):
    import dataclasses

    from mixhic.serve.predict import predict_genome

    cfg, first, genome, models = predicted
    bedpe = first.bedpe.read_text()
    again = predict_genome(cfg)
    assert again.skipped == ("chr1", "chr2")
    assert again.bedpe.read_text() == bedpe
    parts = first.bedpe.parent / "parts"
    (parts / "chr2.done").unlink()
    (parts / "chr2.loops.npz").unlink()
    third = predict_genome(cfg)
    assert third.skipped == ("chr1",)
    assert third.bedpe.read_text() == bedpe
    assert (parts / "chr2.done").is_file()
    # a changed setting invalidates only the parts it affects (no stale resume)
    from mixhic.serve.predict import _cards, _fingerprint

    cards = _cards(cfg.models)
    changed = dataclasses.replace(cfg, loops=dataclasses.replace(cfg.loops, stride_bins=8))
    assert _fingerprint(changed, cards["loops"]) != _fingerprint(cfg, cards["loops"])
    assert _fingerprint(changed, cards["hic"]) == _fingerprint(cfg, cards["hic"])
    region = np.array([[0, 100_000]])
    assert _fingerprint(cfg, cards["hic"], region) != _fingerprint(cfg, cards["hic"])
    unmasked = dataclasses.replace(cfg, skip_unmappable=False)
    assert _fingerprint(unmasked, cards["loops"]) != _fingerprint(cfg, cards["loops"])
    with pytest.raises(MixHicError, match=r"mcool_resolutions: \[7500\] must be multiples"):
        predict_genome(dataclasses.replace(cfg, mcool_resolutions=(7500,)))  # before any work
    recall = dataclasses.replace(cfg, loops=dataclasses.replace(
        cfg.loops, call=dataclasses.replace(cfg.loops.call, top_n=3)))
    assert _fingerprint(recall, cards["loops"]) == _fingerprint(cfg, cards["loops"])


# ---------------------------------------------------------------- regions, planted loops

REGION1 = (150_000, 480_000)  # chr1: holds the simulator's loop chr1:170000 x 455000
REGION2 = (100_000, 140_000)  # chr2: shorter than a window (W * RES = 100 kb)


@pytest.fixture(scope="module")
def regional(ray_local, tmp_path_factory):
    """Every task over two regions (one given on the command line, one in a BED file),
    loops on a stride-1 grid, called with a threshold."""
    from mixhic.serve.predict import config_from_args, predict_genome

    genome, models = cached_genome(), cached_models()
    out = tmp_path_factory.mktemp("regional")
    bed = out.parent / "regions.bed"
    bed.write_text(f"2\t{REGION2[0]}\t{REGION2[1]}\n")  # 2 -> chr2
    # loops.min_probability: the untrained loops model's o/e + donut prior scores the
    # planted loop's pixel 0.64 and its neighbours <= 0.49 (masked bins left out of the
    # contrasts' means)
    argv = [*(f"--checkpoint={p}" for p in models.values()), "--out", str(out),
            "--mcool", str(genome.mcool), "--track", f"atac={genome.atac}",
            "--track", f"dnase={genome.dnase}", "--region", f"chr1:{REGION1[0]}-{REGION1[1]}",
            "--regions-bed", str(bed), f"step_bins={STEP}", "loops.stride_bins=1",
            "loops.max_distance=400000", "loops.min_probability=0.6", "num_cpus=0.5",
            "chunk_windows=128", "progress=false"]
    cfg = config_from_args(argv)
    return cfg, predict_genome(cfg), genome, argv


def test_region_restriction_covers_only_the_regions(regional):
    import cooler
    import pyBigWig

    cfg, res, genome, _ = regional
    assert res.chroms == ("chr1", "chr2")
    a1, b1 = (v // RES for v in REGION1)
    a2, b2 = (v // RES for v in REGION2)
    clr = cooler.Cooler(str(res.cool))
    for chrom, (a, b) in (("chr1", (a1, b1)), ("chr2", (a2, b2))):
        px = clr.pixels(join=False).fetch(chrom)
        offset = clr.offset(chrom)
        i, j = px["bin1_id"].to_numpy() - offset, px["bin2_id"].to_numpy() - offset
        assert (i >= a).all() and (j < b).all()
        inside = set(zip(i.tolist(), j.tolist()))
        assert all((k, k) in inside for k in range(a, b))  # the whole region is covered
        w = clr.bins().fetch(chrom)["weight"].to_numpy()
        assert np.isfinite(w[a:b]).all() and np.isnan(w[:a]).all() and np.isnan(w[b:]).all()
    bw = pyBigWig.open(str(res.bigwig))
    for chrom, (a, b) in (("chr1", (a1, b1)), ("chr2", (a2, b2))):
        iv = bw.intervals(chrom)
        assert [s // RES for s, _, _ in iv] == list(range(a, b))
    bw.close()
    calls = read_loop_calls(res.bedpe)
    assert len(calls["name"]) and set(calls["chrom1"]) == {"chr1"}  # chr2's region: < 20 kb
    assert (calls["start1"] >= REGION1[0]).all() and (calls["end2"] <= REGION1[1]).all()


def test_planted_loop_is_called(regional):
    """The tiny loops model starts from its o/e + donut prior, so the simulator's strong
    loop in the region is called, at (within one bin of) its true pixel."""
    from mixhic.pipelines.bed_reader import read_bedpe

    cfg, res, genome, _ = regional
    truth = read_bedpe(str(genome.loops))
    ti, tj = truth["start1"] // RES, truth["start2"] // RES
    inside = (truth["chrom1"] == "chr1") & (truth["start1"] >= REGION1[0]) & \
        (truth["end2"] <= REGION1[1])
    assert inside.any()
    calls = read_loop_calls(res.bedpe)
    ci, cj = calls["start1"] // RES, calls["start2"] // RES
    near = [np.min(np.maximum(np.abs(ci - a), np.abs(cj - b)), initial=99)
            for a, b in zip(ti[inside], tj[inside])]
    assert min(near) <= 1  # a planted loop is found
    best = int(np.argmax(calls["probability"]))
    assert np.min(np.maximum(np.abs(ti - ci[best]), np.abs(tj - cj[best]))) <= 1
    assert (calls["probability"] >= 0.6).all() and (calls["cluster_size"] >= 1).all()


def test_resume_after_a_crash_gives_identical_files(regional, tmp_path):
    """``mixhic predict`` killed (SIGKILL) mid-run in its own process leaves saved chunks
    and parts but no final files; the rerun predicts only what is missing and writes the
    same files as an uninterrupted run."""
    import json
    import os
    import subprocess
    import sys
    import time

    import cooler
    import pyBigWig
    import ray
    from mixhic.serve.predict import config_from_args, predict_genome

    cfg, first, genome, argv = regional
    out = tmp_path / "crashed"
    argv = [*argv[:argv.index("--out") + 1], str(out), *argv[argv.index("--out") + 2:]]
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    code = ("import sys, json, logging; logging.basicConfig(level=logging.INFO); "
            "from mixhic.serve.predict import config_from_args, predict_genome; "
            "predict_genome(config_from_args(json.loads(sys.argv[1])))")
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(argv)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            if len(list((out / "parts").glob("*.chunks/*.npz"))) >= 3:
                break
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    saved = list((out / "parts").glob("*.chunks/*.npz"))
    assert proc.returncode == -9 and saved, "the run ended before it could be killed"
    assert not (out / "predicted_loops.bedpe").exists()
    # the run may have completed a part (and removed its chunk dir) between the glob and
    # the kill: the debris goes into a chunk dir that is still there
    for chunks in [d for d in (out / "parts").glob("*.chunks") if d.is_dir()][:1]:
        (chunks / ".999.npz.tmp.npz").write_bytes(b"half-written")  # a write cut short
        (chunks / "999999.npz").write_bytes(b"PK\x03\x04 torn")  # a foreign file
    (out / "parts" / "chr1.done").write_text("{torn")  # a marker cut short

    again = predict_genome(config_from_args(argv))
    assert again.skipped == ()
    assert not list((out / "parts").glob("*.chunks"))  # chunk files go once parts are whole
    assert again.bedpe.read_text() == first.bedpe.read_text()
    assert cooler.Cooler(str(again.cool)).pixels()[:].equals(
        cooler.Cooler(str(first.cool)).pixels()[:])
    for r in (5000, 10000):
        assert cooler.Cooler(f"{again.mcool}::/resolutions/{r}").pixels()[:].equals(
            cooler.Cooler(f"{first.mcool}::/resolutions/{r}").pixels()[:])
    a, b = pyBigWig.open(str(again.bigwig)), pyBigWig.open(str(first.bigwig))
    assert all(a.intervals(c) == b.intervals(c) for c in again.chroms)
    a.close()
    b.close()
    summary = json.loads(again.summary.read_text())
    assert summary["throughput"]["windows"] < sum(  # only the unsaved chunks were predicted
        v["predicted"] for per in summary["windows"].values() for v in per.values())
