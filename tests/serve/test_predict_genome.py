"""``mixhic predict`` on a simulated genome: .cool, bedpe and bigWig, resumable."""

from __future__ import annotations

import numpy as np
import pytest
from serve_helpers import RES, W, cached_genome, cached_models, direct_model, independent_window

from mixhic.serve.predict import plan_windows
from mixhic.serve.writers import BandAccumulator, cage_inverse, hic_inverse

STEP = 10  # diagonal windows every 10 bins: bins 0..9 are in window 0 only
LOOPS = {"min_distance": 20_000, "max_distance": 150_000, "stride_bins": 4,
         "min_probability": 0.0}  # keep every candidate in the bedpe


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


@pytest.fixture(scope="module")
def predicted(ray_local, tmp_path_factory):
    from mixhic.platform.config import load_config
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
        "num_cpus": 0.5,
        "progress": False,
    })
    return cfg, predict_genome(cfg), genome, models


def _sizes(genome) -> dict[str, int]:
    lines = genome.chrom_sizes.read_text().splitlines()
    return {c: int(n) for c, n in (ln.split() for ln in lines)}


def test_cool_covers_chromosomes_and_holds_the_stitched_predictions(predicted):
    import cooler

    cfg, res, genome, models = predicted
    assert res.chroms == ("chr1", "chr2") and res.cool.name == "predicted_hic.cool"
    clr = cooler.Cooler(str(res.cool))
    sizes = _sizes(genome)
    assert clr.binsize == RES and list(clr.chromnames) == ["chr1", "chr2"]
    assert dict(clr.chromsizes) == {c: sizes[c] for c in ("chr1", "chr2")}
    raw = clr.matrix(balance=False).fetch("chr1")
    np.testing.assert_allclose(clr.matrix(balance=True).fetch("chr1"), raw)
    n = sizes["chr1"] // RES
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


def test_bedpe_scores_every_candidate_pair(predicted):
    cfg, res, genome, models = predicted
    lines = [ln.split("\t") for ln in res.bedpe.read_text().splitlines()]
    assert lines[0][0] == "#chrom1" and lines[0][-1] == "probability"
    rows = lines[1:]
    assert {r[0] for r in rows} == {"chr1", "chr2"}
    expected = 0
    for chrom, size in _sizes(genome).items():
        x, _ = plan_windows("loops", size // RES, W, RES, 0, cfg.loops)
        expected += len(x)
    assert len(rows) == expected
    s1 = np.array([int(r[1]) for r in rows])
    s2 = np.array([int(r[4]) for r in rows])
    p = np.array([float(r[7]) for r in rows])
    assert ((s2 - s1) >= 20_000).all() and ((s2 - s1) <= 150_000).all()
    assert ((p >= 0) & (p <= 1)).all()
    # one call checked against the model on independently read inputs
    r = rows[5]
    x0, y0 = int(r[1]) - (W // 2) * RES, int(r[4]) - (W // 2) * RES
    epi, hic = independent_window(genome, r[0], x0, y0)
    want = direct_model(models)("loops", epi[None], hic[None])[0]
    assert abs(float(r[7]) - want) < 1e-4


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
