"""`mixhic simulate`: real files that open with cooler/pyBigWig, determinism, and the
planted structure (P(s), loops, anchors in ATAC, CAGE vs promoters, coverage bias)."""

from __future__ import annotations

import json

import cooler
import numpy as np
import pandas as pd
import pyBigWig
import pytest
from mixhic.core.errors import MixHicError
from mixhic.pipelines.simulate import SimulatedGenome, cli_main, simulate_genome
from scipy.stats import spearmanr

RES = 5_000
SMALL = {"n_chroms": 2, "chrom_length": 600_000, "resolutions": (5_000, 10_000)}  # ~1 s


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> SimulatedGenome:
    """The full ``tiny`` preset, simulated once for the module."""
    return simulate_genome(tmp_path_factory.mktemp("simtiny") / "genome", preset="tiny", seed=0)


def _sizes(g: SimulatedGenome) -> dict[str, int]:
    rows = [line.split("\t") for line in g.chrom_sizes.read_text().splitlines()]
    return {c: int(n) for c, n in rows}


def _loops(g: SimulatedGenome) -> pd.DataFrame:
    names = ["chrom1", "start1", "end1", "chrom2", "start2", "end2", "name", "score"]
    return pd.read_csv(g.loops, sep="\t", header=None, names=names)


def _track_100bp(path, chrom: str) -> np.ndarray:
    """Values of every 100 bp entry of ``chrom`` (the simulator writes every bin). -> (m,)"""
    with pyBigWig.open(str(path)) as bw:
        return np.asarray([v for _, _, v in bw.intervals(chrom)])


def _per_bin(values: np.ndarray, per_bin: int = RES // 100) -> np.ndarray:
    """Mean of each 5 kb bin (the last one may be partial). -> (n,)"""
    return np.add.reduceat(values, np.arange(0, len(values), per_bin)) / per_bin


# ------------------------------------------------------------------------- files and formats


def test_files_open_with_cooler_and_pybigwig(tiny):
    meta = json.loads(tiny.meta.read_text())
    sizes = _sizes(tiny)
    assert list(sizes) == [f"chr{k}" for k in range(1, 9)]
    resolutions = meta["resolutions"]
    assert resolutions[0] == RES and len(resolutions) >= 3
    listed = cooler.fileops.list_coolers(str(tiny.mcool))
    assert listed == [f"/resolutions/{r}" for r in resolutions]
    for r in resolutions:
        clr = cooler.Cooler(tiny.mcool_uri(r))
        assert clr.binsize == r
        assert clr.chromnames == list(sizes)
        assert dict(zip(clr.chromnames, clr.chromsizes)) == sizes
        assert "weight" in clr.bins().columns
        with clr.open() as grp:
            assert np.all(grp["bins/weight"].attrs["converged"])
        assert np.issubdtype(clr.pixels()[:10]["count"].dtype, np.integer)
    for path in (tiny.atac, tiny.dnase, tiny.cage):
        with pyBigWig.open(str(path)) as bw:
            assert bw.chroms() == sizes
            ivs = bw.intervals("chr2")
            assert ivs[0][0] == 0 and ivs[-1][1] == sizes["chr2"]
            assert {e - s for s, e, _ in ivs} == {100}
    assert not any(p.name.startswith(".") for p in tiny.mcool.parent.parent.iterdir())


def test_tables_and_counts(tiny):
    meta = json.loads(tiny.meta.read_text())
    sizes = _sizes(tiny)
    loops = _loops(tiny)
    tss = pd.read_csv(tiny.tss, sep="\t", header=None)
    assert meta["seed"] == 0 and meta["preset"] == "tiny"
    assert meta["params"]["n_chroms"] == 8
    assert meta["counts"]["loops"] == len(loops) >= 150
    assert meta["counts"]["tss"] == len(tss) >= 200
    assert meta["counts"]["pixels"] == cooler.Cooler(tiny.mcool_uri(RES)).info["nnz"]
    assert (loops.chrom1 == loops.chrom2).all()
    assert (loops.start1 % RES == 0).all() and (loops.start2 % RES == 0).all()
    dist = loops.start2 - loops.start1
    assert dist.min() >= 20_000 and dist.max() <= 2_000_000
    assert (loops.end1 <= loops.chrom1.map(sizes)).all()
    assert tss.shape[1] == 6 and set(tss[5]) == {"+", "-"}
    assert (tss[1] < tss[0].map(sizes)).all()


# ------------------------------------------------------------------------- planted structure


def test_distance_decay(tiny):
    clr = cooler.Cooler(tiny.mcool_uri(RES))
    means = {d: [] for d in (10, 40, 200)}  # 50 kb, 200 kb, 1 Mb
    for chrom in clr.chromnames:
        m = clr.matrix(balance=True).fetch(chrom)
        for d in means:
            means[d].append(np.nanmean(np.diagonal(m, d)))
    p50, p200, p1m = (np.mean(means[d]) for d in (10, 40, 200))
    assert p50 > 2 * p200 > 0 and p200 > 2 * p1m > 0


def test_loops_enriched_over_distance_matched_background(tiny):
    clr = cooler.Cooler(tiny.mcool_uri(RES))
    loops = _loops(tiny)
    ratios = []
    for chrom, grp in loops.groupby("chrom1"):
        m = clr.matrix(balance=True).fetch(chrom)
        for a, b in zip(grp.start1 // RES, grp.start2 // RES):
            background = np.nanmean(np.diagonal(m, b - a))  # distance-matched
            ratios.append(m[a, b] / background)
    ratios = np.asarray(ratios)
    assert np.nanmedian(ratios) > 2.0
    assert np.mean(ratios > 1.5) > 0.8


def test_loop_enrichment_comes_from_the_planted_dots(tmp_path):
    """Control: without dots, TADs or stripes, loop pixels look like their background."""
    flat = {"loop_strength": 0.0, "tad_enrichment": 1.0, "stripe_strength": 0.0,
            "compartment_strength": 0.0}
    g = simulate_genome(tmp_path / "flat", seed=2, **{**SMALL, "chrom_length": 1_000_000}, **flat)
    clr = cooler.Cooler(g.mcool_uri(RES))
    ratios = []
    for chrom, grp in _loops(g).groupby("chrom1"):
        m = clr.matrix(balance=True).fetch(chrom)
        for a, b in zip(grp.start1 // RES, grp.start2 // RES):
            ratios.append(m[a, b] / np.nanmean(np.diagonal(m, b - a)))
    assert len(ratios) >= 5
    assert 0.5 < np.nanmedian(ratios) < 1.5


def test_atac_and_dnase_peak_at_loop_anchors(tiny):
    loops = _loops(tiny)
    ratios, corr = {}, []
    for name in ("atac", "dnase"):
        per_bin = {c: _per_bin(_track_100bp(getattr(tiny, name), c)) for c in _sizes(tiny)}
        genome = np.concatenate(list(per_bin.values()))
        anchors = np.concatenate([per_bin[c][np.r_[g.start1, g.start2] // RES]
                                  for c, g in loops.groupby("chrom1")])
        ratios[name] = np.median(anchors) / np.median(genome)
        corr.append(genome)
    assert ratios["atac"] > 2.0 and ratios["dnase"] > 2.0
    rho = spearmanr(corr[0], corr[1])[0]
    assert 0.3 < rho < 0.99  # correlated, not identical


def test_cage_follows_promoter_accessibility(tiny):
    tss = pd.read_csv(tiny.tss, sep="\t", header=None, names=["chrom", "start", "end", "name",
                                                            "score", "strand"])
    cage_at, atac_at = [], []
    for chrom, grp in tss.groupby("chrom"):
        cage = _track_100bp(tiny.cage, chrom)
        atac = _track_100bp(tiny.atac, chrom)
        for pos in grp.start // 100:
            lo, hi = max(pos - 5, 0), pos + 6
            cage_at.append(cage[lo:hi].sum())
            atac_at.append(atac[lo:hi].mean())
    cage_at = np.asarray(cage_at)
    assert spearmanr(cage_at, atac_at)[0] > 0.3
    # expression is concentrated at TSSs
    total = sum(_track_100bp(tiny.cage, c).sum() for c in _sizes(tiny))
    assert cage_at.sum() > 0.5 * total


def test_coverage_bias_in_raw_marginals_removed_by_balancing(tiny):
    clr = cooler.Cooler(tiny.mcool_uri(RES))
    px = clr.pixels()[:]
    w = clr.bins()["weight"][:].to_numpy()
    px = px[(px.bin2_id - px.bin1_id) >= 2]  # balancing ignores the first two diagonals
    b1, b2 = px.bin1_id.to_numpy(), px.bin2_id.to_numpy()
    raw = px["count"].to_numpy(float)
    n = len(w)
    ok = ~np.isnan(w)

    def marginal(v):
        return np.bincount(b1, v, minlength=n) + np.bincount(b2, v, minlength=n)

    raw_m = marginal(raw)
    bal_m = marginal(np.nan_to_num(raw * w[b1] * w[b2]))
    cv_raw = raw_m[ok].std() / raw_m[ok].mean()
    cv_bal = bal_m[ok].std() / bal_m[ok].mean()
    assert cv_raw > 0.2
    assert cv_bal < 0.01
    # low-coverage bins exist and are masked by balancing
    assert 0 < (~ok).sum() < 0.1 * n
    assert np.median(raw_m[~ok]) < 0.2 * np.median(raw_m[ok])


def test_unmappable_gaps_have_no_contacts_no_signal_and_no_weight(tmp_path):
    g = simulate_genome(tmp_path / "gaps", seed=4, gaps_per_chrom=3.0, gap_size=40_000,
                        low_coverage_frac=0.0, **SMALL)
    clr = cooler.Cooler(g.mcool_uri(RES))
    found = 0
    for chrom in clr.chromnames:
        lo, hi = clr.extent(chrom)
        raw = clr.matrix(balance=False).fetch(chrom)
        w = clr.bins()["weight"][lo:hi].to_numpy()
        empty = raw.sum(0) == 0
        assert np.isnan(w[empty]).all()
        atac = _per_bin(_track_100bp(g.atac, chrom))[: hi - lo]
        assert (atac[empty] == 0).all() and (atac[~empty] > 0).all()
        # gaps are runs of bins, not scattered ones
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, empty.astype(int), 0])))[::2]
        found += int((runs >= 3).sum())
    assert found >= 2


def test_decay_break_bends_the_decay_down():
    """Past ``decay_break`` contacts fall as s^-decay_exponent_long (expected band, no noise)."""
    from mixhic.pipelines._simulate_model import _expected_band
    from mixhic.pipelines.simulate import simulation_params

    flat = {"tad_enrichment": 1.0, "compartment_strength": 0.0, "stripe_strength": 0.0}
    n = 600
    for brk, long_slope in ((0, -0.6), (200_000, -1.3)):
        p = simulation_params("tiny", decay_exponent=0.6, decay_exponent_long=1.4,
                              decay_break=brk, **flat).chrom_params()
        E, _ = _expected_band(n, np.zeros((0, 2), np.int64), np.ones(n),
                              np.zeros((0, 2), np.int64), np.zeros(0), p)
        ps = E[0]
        short = np.log(ps[4] / ps[2]) / np.log(2)
        far = np.log(ps[400] / ps[200]) / np.log(2)
        assert short == pytest.approx(-0.6, abs=0.1 if brk else 1e-9)
        assert far == pytest.approx(long_slope, abs=0.1 if brk else 1e-9)


def test_demo_simulates_a_known_preset():
    from mixhic.core.config import load_config
    from mixhic.pipelines.simulate import PRESETS
    from mixhic.platform.train_config import DemoConfig

    assert load_config("demo", DemoConfig).simulate_preset in PRESETS


# ------------------------------------------------------------------------- determinism


def _content(g: SimulatedGenome) -> dict:
    px = cooler.Cooler(g.mcool_uri(10_000)).pixels()[:]
    w = cooler.Cooler(g.mcool_uri(RES)).bins()["weight"][:].to_numpy()
    return {
        "pixels": px, "weight": w,
        "atac": _track_100bp(g.atac, "chr1"), "cage": _track_100bp(g.cage, "chr2"),
        "loops": g.loops.read_text(), "tss": g.tss.read_text(),
    }


def test_same_seed_same_files_different_seed_different(tmp_path):
    a = _content(simulate_genome(tmp_path / "a", seed=7, **SMALL))
    b = _content(simulate_genome(tmp_path / "b", seed=7, **SMALL))
    c = _content(simulate_genome(tmp_path / "c", seed=8, **SMALL))
    pd.testing.assert_frame_equal(a["pixels"], b["pixels"])
    np.testing.assert_array_equal(a["weight"], b["weight"])
    for key in ("atac", "cage"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["loops"] == b["loops"] and a["tss"] == b["tss"]
    assert json.loads((tmp_path / "a" / "simulation.json").read_text()) == json.loads(
        (tmp_path / "b" / "simulation.json").read_text())
    assert not a["pixels"].equals(c["pixels"])
    assert not np.array_equal(a["atac"], c["atac"])
    assert a["loops"] != c["loops"]


def test_weights_match_cooler_balance(tmp_path):
    """The stored ``weight`` is what ``cooler balance --cis-only`` computes."""
    g = simulate_genome(tmp_path / "g", seed=5, **SMALL)
    for r in (10_000,):  # cooler's own balancing re-reads the file per iteration: keep it small
        clr = cooler.Cooler(g.mcool_uri(r))
        stored = clr.bins()["weight"][:].to_numpy()
        ref, stats = cooler.balance_cooler(clr, cis_only=True, max_iters=2000)
        assert np.all(stats["converged"])
        np.testing.assert_array_equal(np.isnan(stored), np.isnan(ref))
        np.testing.assert_allclose(stored, ref, rtol=1e-3)
        # coarser resolutions are sums of the base pixels
        if r != RES:
            fine = cooler.Cooler(g.mcool_uri(RES)).matrix(balance=False).fetch("chr1")
            coarse = clr.matrix(balance=False).fetch("chr1")
            f = r // RES
            n = fine.shape[0]
            pad = np.zeros((coarse.shape[0] * f, coarse.shape[0] * f), fine.dtype)
            pad[:n, :n] = np.triu(fine)  # stored pixels: upper triangle
            summed = pad.reshape(coarse.shape[0], f, coarse.shape[0], f).sum((1, 3))
            np.testing.assert_array_equal(np.triu(summed), np.triu(coarse))


# ------------------------------------------------------------------------- errors and CLI


@pytest.mark.parametrize(("overrides", "key"), [
    ({"n_chroms": 0}, "n_chroms"),
    ({"chrom_length": "long"}, "chrom_length"),
    ({"loop_strengh": 3.0}, "loop_strengh"),
    ({"corner_loop_prob": 1.5}, "corner_loop_prob"),
    ({"resolutions": [5000, 7000]}, "resolutions"),
    ({"epi_bin": 300}, "epi_bin"),
    ({"gap_size": 1_000}, "gap_size"),
    ({"decay_break": -1}, "decay_break"),
    ({"gaps_per_chrom": -0.5}, "gaps_per_chrom"),
])
def test_bad_override_names_the_key(tmp_path, overrides, key):
    with pytest.raises(MixHicError, match=key):
        simulate_genome(tmp_path / "g", **overrides)
    assert not (tmp_path / "g").exists()


#: (key=value, the key the error names): every check of SimulationParams (tiny preset).
BAD_PARAMS = [
    ("n_chroms=0", "n_chroms"),
    ("n_chroms=201", "n_chroms"),
    ("chrom_length=-1", "chrom_length"),
    ("chrom_length=50000", "chrom_length"),
    ("resolution=0", "resolution"),
    ("epi_bin=0", "epi_bin"),
    ("epi_bin=300", "epi_bin"),
    ("max_distance=-5", "max_distance"),
    ("max_distance=10000", "max_distance"),
    ("tad_size=0", "tad_size"),
    ("tad_size=10", "tad_size"),
    ("min_tad_size=5000", "min_tad_size"),
    ("max_tad_size=0", "max_tad_size"),
    ("length_spread=-0.1", "length_spread"),
    ("length_spread=1.5", "length_spread"),
    ("decay_exponent=0", "decay_exponent"),
    ("decay_exponent_long=-1", "decay_exponent_long"),
    ("decay_break=-1", "decay_break"),
    ("gaps_per_chrom=-0.5", "gaps_per_chrom"),
    ("cage_noise=-1", "cage_noise"),
    ("compartment_switch=1.5", "compartment_switch"),
    ("low_coverage_frac=-0.1", "low_coverage_frac"),
    ("resolutions=[10000]", "resolutions"),
    ("resolutions=[5000,7000]", "resolutions"),
    ("resolutions=[5000,25000,10000]", "resolutions"),
    ("tad_enrichment=0.5", "tad_enrichment"),
    ("contacts_per_bin=0", "contacts_per_bin"),
    ("gap_size=1000", "gap_size"),
    ("loop_width=0", "loop_width"),
]


@pytest.mark.parametrize(("arg", "key"), BAD_PARAMS, ids=[a for a, _ in BAD_PARAMS])
def test_bad_parameter_names_its_key(arg, key):
    """``mixhic simulate tiny out_dir=DIR KEY=BAD`` fails naming KEY (ConfigError style:
    ``simulate: KEY: ...``); nothing is simulated."""
    import re

    from mixhic.pipelines.simulate import config_from_args

    with pytest.raises(MixHicError, match=rf"^simulate: {re.escape(key)}: "):
        config_from_args(["tiny", "out_dir=unused", arg])


def test_bad_preset_and_seed(tmp_path):
    with pytest.raises(MixHicError, match="preset"):
        simulate_genome(tmp_path / "g", preset="huge")
    with pytest.raises(MixHicError, match="seed"):
        simulate_genome(tmp_path / "g", seed=-1)


def test_existing_dir_needs_overwrite(tmp_path):
    out = tmp_path / "g"
    simulate_genome(out, seed=1, **SMALL)
    first = (out / "loops.bedpe").read_text()
    with pytest.raises(MixHicError, match="not empty.*overwrite"):
        simulate_genome(out, seed=2, **SMALL)
    assert (out / "loops.bedpe").read_text() == first
    simulate_genome(out, seed=2, overwrite=True, **SMALL)
    assert (out / "loops.bedpe").read_text() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"]  # no temp dirs left behind
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(MixHicError, match="not a simulated genome"):
        simulate_genome(other, overwrite=True, **SMALL)
    assert (other / "keep.txt").read_text() == "mine"


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    import mixhic.pipelines.simulate as sim

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sim, "_write_mcool", boom)
    with pytest.raises(KeyboardInterrupt):
        sim.simulate_genome(tmp_path / "g", **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_cli(tmp_path, caplog):
    out = tmp_path / "cli"
    assert cli_main(["tiny", f"out_dir={out}", "--seed", "3", "n_chroms=2",
                     "chrom_length=6e5"]) == 0
    meta = json.loads((out / "simulation.json").read_text())
    assert meta["seed"] == 3 and meta["params"]["chrom_length"] == 600_000
    assert meta["params"]["n_chroms"] == 2
    # the old positional OUT_DIR is not a preset: the error says where the directory goes
    with pytest.raises(MixHicError, match="not a preset.*out_dir=DIR"):
        cli_main([str(tmp_path / "x"), "seed=3"])
    with pytest.raises(MixHicError, match="max_distance"):
        cli_main([f"out_dir={tmp_path / 'x'}", "max_distance=-5"])


def test_replayed_rates_reproduce_the_written_reads(tiny):
    """``replay_rates`` rebuilds a chromosome's Poisson rates from simulation.json alone:
    drawing the reads from them with the replayed generator gives exactly the counts in
    the file, and the rates are the reads' expectation (the truth a noise ceiling needs)."""
    from mixhic.pipelines.simulate import replay_rates

    clr = cooler.Cooler(tiny.mcool_uri(RES))
    (rates, rng), = replay_rates(tiny.mcool.parent, ["chr2"]).values()
    counts = rng.poisson(rates.lam)
    r, d = np.nonzero(counts)
    px = clr.matrix(balance=False, as_pixels=True, join=False).fetch("chr2")
    off = clr.offset("chr2")
    np.testing.assert_array_equal(px["bin1_id"].to_numpy() - off, r)
    np.testing.assert_array_equal(px["bin2_id"].to_numpy() - off, r + d)
    np.testing.assert_array_equal(px["count"].to_numpy(), counts[r, d])
    assert rates.lam.sum() == pytest.approx(counts.sum(), rel=0.01)
    with pytest.raises(MixHicError, match="chr99"):
        replay_rates(tiny.mcool.parent, ["chr99"])
