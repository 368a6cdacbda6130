"""Realism report: P(s) slope, diagonal-window sparsity and APA P2LL, on maps with known
answers (power laws, planted dots), on the ``realistic`` simulator preset and on real
GM12878 Hi-C."""

from __future__ import annotations

import shutil

import cooler
import numpy as np
import pytest
from mixhic.core.errors import MixHicError
from mixhic.pipelines.realism import format_report, realism_report, window_nonzero
from mixhic.pipelines.simulate import cli_main, simulate_genome

RES = 10_000
N = 400  # 4 Mb at 10 kb


def _power_law(alpha: float, scale: float = 1e9) -> np.ndarray:
    """Dense (N, N) contacts scale * max(d, 1)^-alpha: a power law for d >= 1 (the cooler
    stores integer counts: the large scale keeps the rounding negligible)."""
    d = np.abs(np.subtract.outer(np.arange(N), np.arange(N))).astype(float)
    return scale * np.maximum(d, 1.0) ** -alpha


def _dotted_counts(seed: int, fold: float, n_loops: int = 40):
    """Poisson map with distance decay and, if ``fold`` > 0, a Gaussian dot at each loop.

    Returns the symmetric (N, N) int counts and the (n_loops, 2) loop pixels (a < b).
    """
    rng = np.random.default_rng(seed)
    lam = _power_law(1.0, scale=400.0)  # ~4 contacts at 1 Mb
    a = rng.integers(15, N - 120, size=n_loops)
    b = a + rng.integers(4, 100, size=n_loops)  # 40 kb - 1 Mb
    ii, jj = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
    for x, y in zip(a, b):
        dot = fold * np.exp(-((ii - x) ** 2 + (jj - y) ** 2) / (2 * 0.8 ** 2))
        lam *= 1.0 + dot + dot.T
    c = np.triu(rng.poisson(lam))
    return c + np.triu(c, 1).T, np.stack([a, b], axis=1)


def _write_bedpe(path, loops: np.ndarray, chrom: str = "chr1", res: int = RES) -> str:
    path.write_text("".join(f"{chrom}\t{a * res}\t{(a + 1) * res}\t{chrom}\t{b * res}\t"
                            f"{(b + 1) * res}\n" for a, b in loops))
    return str(path)


# ---------------------------------------------------------------------------- known answers


@pytest.mark.parametrize("alpha", [0.75, 1.0, 1.3])
def test_slope_of_a_power_law_is_recovered(tmp_path, make, alpha):
    uri = str(tmp_path / "p.cool")
    make.cooler(uri, {"chr1": N * RES}, RES, _power_law(alpha))
    r = realism_report(uri)
    assert not r["balanced"]
    assert r["ps_slope"] == pytest.approx(-alpha, abs=1e-4)
    assert r["ps_slope_short"] == pytest.approx(-alpha, abs=1e-4)
    assert r["ps_points"] == 2_000_000 // RES - 2 + 1  # diagonals 2..200
    assert r["nonzero_mean"] == r["nonzero_min"] == 1.0  # a dense map


def test_slope_uses_balanced_contacts_and_skips_masked_bins(tmp_path, make):
    """Coverage bias on the raw counts, undone by the weights; a masked bin of junk."""
    rng = np.random.default_rng(0)
    bias = np.exp(0.5 * rng.standard_normal(N))
    raw = _power_law(0.9) * np.outer(bias, bias)
    w = 1.0 / bias
    raw[7, :] = raw[:, 7] = 1e9  # a bin balancing masks
    w[7] = np.nan
    uri = str(tmp_path / "b.cool")
    make.cooler(uri, {"chr1": N * RES}, RES, raw, weights={"weight": w})
    balanced = realism_report(uri)
    assert balanced["balanced"]
    assert balanced["ps_slope"] == pytest.approx(-0.9, abs=1e-3)  # integer counts
    raw_slope = realism_report(uri, weight=None)["ps_slope"]
    assert abs(raw_slope + 0.9) > 0.01


def test_window_nonzero_matches_dense_count():
    rng = np.random.default_rng(3)
    n, W, step = 180, 50, 25
    dense = np.triu((rng.random((n, n)) < rng.random()) * rng.integers(1, 5, (n, n)))
    dense = dense + np.triu(dense, 1).T
    band = np.zeros((n, W))
    for d in range(W):
        band[: n - d, d] = np.diagonal(dense, d)
    got = window_nonzero(band, W, step)
    want = [(dense[s:s + W, s:s + W] > 0).mean() for s in range(0, n - W + 1, step)]
    np.testing.assert_allclose(got, want)
    assert len(window_nonzero(band[:30], W, step)) == 0  # shorter than a window


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_p2ll_above_one_with_planted_dots_and_one_without(tmp_path, make, seed):
    """Property: dots at the listed pixels give P2LL > 1; the same pixels on a map without
    dots give P2LL ~ 1 (o/e at the centre and near the diagonal alike)."""
    p2ll = {}
    for fold in (3.0, 0.0):
        counts, loops = _dotted_counts(seed, fold)
        uri = str(tmp_path / f"m{fold}.cool")
        make.cooler(uri, {"chr1": N * RES}, RES, counts)
        # the loop file spells the chromosome "1": matched to the cooler's "chr1"
        bedpe = _write_bedpe(tmp_path / f"l{fold}.bedpe", loops, chrom="1")
        r = realism_report(uri, bedpe=bedpe)
        assert r["n_loops"] == len(loops)
        p2ll[fold] = r["p2ll"]
    assert p2ll[3.0] > 2.0
    assert 0.85 < p2ll[0.0] < 1.15


def test_loops_near_edges_or_out_of_range_are_left_out(tmp_path, make):
    counts, _ = _dotted_counts(0, 0.0)
    uri = str(tmp_path / "m.cool")
    make.cooler(uri, {"chr1": N * RES}, RES, counts)
    loops = np.array([[5, 60],  # upstream anchor within 10 bins of the start
                      [100, 101],  # 10 kb apart: under 20 kb
                      [200, 395],  # downstream anchor within 10 bins of the end
                      [100, 150]])  # the only usable one
    r = realism_report(uri, bedpe=_write_bedpe(tmp_path / "l.bedpe", loops))
    assert r["n_loops"] == 1
    r = realism_report(uri, bedpe=_write_bedpe(tmp_path / "e.bedpe", loops[:3]))
    assert r["n_loops"] == 0 and np.isnan(r["p2ll"])


# ---------------------------------------------------------------------------- simulator


@pytest.fixture(scope="module")
def realistic(tmp_path_factory):
    return simulate_genome(tmp_path_factory.mktemp("simreal") / "genome", preset="realistic",
                           seed=0)


def test_realistic_preset_looks_like_real_hic(realistic):
    r = realism_report(realistic.mcool_uri(5_000), bedpe=str(realistic.loops))
    assert -1.0 <= r["ps_slope"] <= -0.75
    assert r["ps_slope_short"] > r["ps_slope_long"]  # bends down with distance, like real Hi-C
    assert 0.5 <= r["nonzero_mean"] <= 0.9
    assert r["nonzero_min"] < 0.1  # unmappable gaps leave empty windows
    assert 0.9 <= r["nonzero_ge_0.1"] < 1.0
    assert 2.0 <= r["p2ll"] <= 6.0 and r["n_loops"] >= 100
    w = cooler.Cooler(realistic.mcool_uri(5_000)).bins()["weight"][:].to_numpy()
    assert 0.01 < np.isnan(w).mean() < 0.1  # sparse and unmappable bins masked


def test_tiny_preset_is_denser_and_steeper_than_realistic(sim_genome, realistic):
    """The reason the demo moved off ``tiny``: every window almost full, steeper P(s)."""
    tiny = realism_report(sim_genome.mcool_uri(5_000))
    real = realism_report(realistic.mcool_uri(5_000))
    assert tiny["nonzero_mean"] > 0.9 > real["nonzero_mean"]
    assert tiny["nonzero_min"] > 0.5  # no gaps
    assert tiny["ps_slope"] < -1.0 < real["ps_slope"]


# ---------------------------------------------------------------------------- real Hi-C


def test_real_gm12878_region(real_data, tmp_path):
    src = real_data / "gm12878.chr1_160M_180M.10kb.cool"
    cool = tmp_path / "gm.cool"
    shutil.copy(src, cool)
    cooler.balance_cooler(cooler.Cooler(str(cool)), store=True)
    loops = real_data / "gm12878.loops_10kb.chr1_160M_180M.bedgraph"  # chromosome "1"
    r = realism_report(str(cool), bedpe=str(loops))
    assert r["balanced"] and r["resolution"] == 10_000
    assert -1.4 < r["ps_slope"] < -0.7
    assert r["ps_slope_short"] > r["ps_slope_long"]
    assert r["p2ll"] > 2.0 and r["n_loops"] >= 80
    assert 0.5 < r["nonzero_mean"] <= 1.0


# ---------------------------------------------------------------------------- errors and CLI


def test_errors_name_the_file(tmp_path, make, realistic):
    with pytest.raises(MixHicError, match="not found"):
        realism_report(str(tmp_path / "missing.cool"))
    with pytest.raises(MixHicError, match="resolution 7000"):
        realism_report(str(realistic.mcool), resolution=7_000)
    with pytest.raises(MixHicError, match="several resolutions"):
        realism_report(str(realistic.mcool))
    with pytest.raises(MixHicError, match="chrZ"):
        realism_report(realistic.mcool_uri(5_000), chromosomes=["chrZ"])
    other = tmp_path / "other.bedpe"
    other.write_text("chrQ\t100000\t105000\tchrQ\t300000\t305000\n")
    with pytest.raises(MixHicError, match=f"{other}.*no chromosome matches"):
        realism_report(realistic.mcool_uri(5_000), bedpe=str(other))


def test_cli_report_prints_one_line(realistic, capsys):
    assert cli_main(["--report", str(realistic.mcool), "--resolution", "10000",
                     "--loops", str(realistic.loops)]) == 0
    line = capsys.readouterr().out.strip()
    fields = dict(kv.split("=") for kv in line.split())
    assert {"ps_slope", "nonzero_mean", "nonzero_ge_0.1", "p2ll", "n_loops"} <= set(fields)
    assert float(fields["ps_slope"]) < 0 and int(fields["n_loops"]) > 0
    r = realism_report(realistic.mcool_uri(10_000), bedpe=str(realistic.loops))
    assert line == format_report(r)
    with pytest.raises(MixHicError, match="unexpected argument"):
        cli_main(["--report", str(realistic.mcool), "somewhere"])
    with pytest.raises(MixHicError, match="--report"):
        cli_main(["--loops", str(realistic.loops)])


def test_p2ll_is_centre_over_the_lower_left_corner():
    """Rows follow the upstream anchor: the lower-left corner is the one nearest the diagonal."""
    from mixhic.pipelines.realism import apa_p2ll

    agg = np.ones((21, 21))
    agg[10, 10] = 6.0
    agg[-3:, :3] = 2.0  # near the diagonal
    agg[:3, -3:] = 0.5  # far from it
    p2ll, centre = apa_p2ll(agg, np.ones_like(agg))
    assert (p2ll, centre) == (3.0, 6.0)
    assert np.isnan(apa_p2ll(agg, np.zeros_like(agg))[0])  # no loop aggregated


def test_cli_report_of_a_simulated_genome_dir(realistic, tmp_path, capsys):
    """A simulated genome's directory stands for its base-resolution map and true loops."""
    assert cli_main(["--report", str(realistic.mcool.parent)]) == 0
    fields = dict(kv.split("=") for kv in capsys.readouterr().out.split())
    direct = realism_report(realistic.mcool_uri(5_000), bedpe=str(realistic.loops))
    assert float(fields["ps_slope"]) == pytest.approx(direct["ps_slope"], abs=1e-3)
    assert int(fields["n_loops"]) == direct["n_loops"] > 0
    with pytest.raises(MixHicError, match="without genome.mcool"):
        cli_main(["--report", str(tmp_path)])
