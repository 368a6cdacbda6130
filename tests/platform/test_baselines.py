"""Baselines equal a hand computation on tiny fixtures, and their metrics come out of
``baseline_metrics`` aligned with the evaluated rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixhic.models.heads import loop_contrast_features
from mixhic.platform import baselines as bl
from mixhic.platform.metrics import distance_strata_pearson, prediction_warnings


def test_window_distances_count_the_anchor_offset():
    d = bl.window_distances([0, 7], 3)
    assert d[0].tolist() == [[0, 1, 2], [1, 0, 1], [2, 1, 0]]
    assert d[1].tolist() == [[7, 8, 9], [6, 7, 8], [5, 6, 7]]


def test_distance_expected_by_hand():
    # chromosome a: one diagonal window; b: one window 2 bins off the diagonal
    a = np.array([[[4.0, 2.0], [2.0, 4.0]]])
    b = np.array([[[1.0, 3.0], [5.0, 1.0]]])  # distances [[2, 3], [1, 2]]
    exp = bl.DistanceExpected()
    exp.add(a, [0], ["a"])
    exp.add(b, [2], ["b"])
    # pooled: d0 = 4 (two pixels of a), d1 = (2 + 2 + 5) / 3 = 3, d2 = 1, d3 = 3
    np.testing.assert_allclose(exp.table(), [4.0, 3.0, 1.0, 3.0])
    np.testing.assert_allclose(exp.table("a"), [4.0, 2.0])
    # a window on chromosome a at offset 1: distances [[1, 2], [0, 1]]; a has no d2, the
    # pooled table supplies it
    pred = exp.predict([1], ["a"], 2)
    np.testing.assert_allclose(pred[0], [[2.0, 1.0], [4.0, 2.0]])
    # an unseen chromosome uses the pooled table; an unseen distance its nearest one
    np.testing.assert_allclose(exp.predict([3], ["z"], 2)[0], [[3.0, 3.0], [1.0, 3.0]])


def test_distance_expected_leaves_out_masked_bins():
    """A masked bin's zero row/column is not "no contact": the expected ignores it."""
    m = np.array([[[4.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 4.0]]])  # bin 1 masked
    exp = bl.DistanceExpected()
    exp.add(m, [0], ["a"])
    # observed pixels: (0,0)=4 (0,2)=1 (2,0)=1 (2,2)=4 -> d0 = 4, d1 unseen, d2 = 1
    np.testing.assert_allclose(exp.table("a"), [4.0, np.nan, 1.0])


def test_distance_expected_ignores_nan_and_needs_data():
    with pytest.raises(ValueError, match="no training maps"):
        bl.DistanceExpected().predict([0], ["a"], 2)
    exp = bl.DistanceExpected()
    exp.add(np.array([[[np.nan, 1.0], [3.0, 2.0]]]), [0], ["a"])
    np.testing.assert_allclose(exp.table(), [2.0, 2.0])


def test_loop_baselines_by_hand():
    W, C, per_bin = 11, 2, 3
    rng = np.random.default_rng(0)
    hic = rng.random((3, W, W))
    epi = rng.random((3, C, 2 * W * per_bin))
    s = bl.loop_baseline_scores(hic, epi, W, radius=3, inner=1)
    c = W // 2
    for n in range(3):
        m = hic[n]
        diag = np.diagonal(m)
        assert s[n, 0] == pytest.approx(m[c, c] - (diag.sum() - m[c, c]) / (W - 1))
        donut = [m[c + a, c + b] for a in range(-3, 4) for b in range(-3, 4)
                 if (abs(a) > 1 or abs(b) > 1) and a != 0 and b != 0]
        assert s[n, 1] == pytest.approx(m[c, c] - np.mean(donut))
        ll = [m[c + a, c + b] for a in (2, 3) for b in (-3, -2)]
        assert s[n, 2] == pytest.approx(m[c, c] - np.mean(ll))
        L = W * per_bin
        x = epi[n, :, c * per_bin : (c + 1) * per_bin].mean(axis=1).sum()
        y = epi[n, :, L + c * per_bin : L + (c + 1) * per_bin].mean(axis=1).sum()
        assert s[n, 3] == pytest.approx(x + y)
    # the model's loop head reads the same contrasts
    f = loop_contrast_features(torch.tensor(hic), radius=3, inner=1).double().numpy()
    np.testing.assert_allclose(f[:, 1:], s[:, :3], rtol=1e-5, atol=1e-6)
    # epi-only: the map columns are NaN
    assert np.isnan(bl.loop_baseline_scores(None, epi, W)[:, :3]).all()


def test_loop_reference_baselines_follow_the_mode_inputs():
    assert "oe" in bl.loop_reference_baselines("bimodal")
    assert bl.loop_reference_baselines("epi") == ("anchor_signal",)


def test_track_linear_fit_recovers_a_linear_relation():
    rng = np.random.default_rng(0)
    W, C, per_bin = 5, 2, 4
    epi = rng.random((40, C, 2 * W * per_bin))
    means = bl.bin_track_means(epi, W, 0)  # (N, W, C)
    cage = means @ np.array([2.0, -1.0]) + 0.5
    fit = bl.TrackLinearFit()
    fit.add(epi[:20], cage[:20], W)
    fit.add(epi[20:], cage[20:], W)  # streamed in two batches
    np.testing.assert_allclose(fit.coef, [2.0, -1.0, 0.5], atol=1e-4)
    np.testing.assert_allclose(fit.predict(epi, W), cage, atol=1e-4)
    # same as numpy's least squares on the pooled rows
    x = np.concatenate([means.reshape(-1, C), np.ones((40 * W, 1))], axis=1)
    ref = np.linalg.lstsq(x, cage.reshape(-1) + rng.normal(0, 0.1, 40 * W), rcond=None)[0]
    noisy = bl.TrackLinearFit()
    noisy.add(epi, (x @ ref).reshape(40, W), W)
    np.testing.assert_allclose(noisy.coef, ref, atol=1e-4)


def test_distance_strata_pearson_against_scipy():
    from scipy.stats import pearsonr

    rng = np.random.default_rng(0)
    d = rng.integers(0, 3_000_000, size=500)
    t = rng.random(500)
    p = t + rng.normal(0, 0.5, 500)
    out = distance_strata_pearson(t, p, d, edges_kb=(0, 1000, 2000))
    sel = d < 1_000_000
    assert out["pearson_s0-1000kb"] == pytest.approx(pearsonr(t[sel], p[sel])[0])
    sel = d >= 2_000_000
    assert out["pearson_s2000kb+"] == pytest.approx(pearsonr(t[sel], p[sel])[0])


def test_constant_predictions_are_flagged():
    assert prediction_warnings("hic", np.full((4, 3, 3), 0.2))
    assert prediction_warnings("loops", np.linspace(0.500, 0.511, 10))
    assert not prediction_warnings("loops", np.linspace(0.1, 0.9, 10))
    assert not prediction_warnings("cage", np.arange(6.0))


@pytest.mark.integration
def test_noise_ceiling_on_the_simulator(tiny_data, tmp_path):
    """The split-half ceiling cuts exactly the prepared test windows (it checks them) and
    lies between the halves' own agreement and 1."""
    from benchmarks.noise_ceiling import hic_noise_ceiling

    genome = tiny_data.parent / "genome" / "genome.mcool"
    c = hic_noise_ceiling(str(tiny_data), str(genome))
    assert c["max_abs_diff"] <= 1e-3 and c["n_windows"] > 0
    assert 0.0 < c["r_half"] < c["r_full"] < 1.0
    assert c["ceiling_pearson"] == pytest.approx(np.sqrt(2 * c["r_half"] / (1 + c["r_half"])))
    # the same windows said to be made with another transform: caught, not mis-measured
    import json

    man = json.loads((tiny_data / "manifest.json").read_text())
    man["params"]["normalize"]["hic"] = "log1p"
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    (tmp_path / "hic").symlink_to(tiny_data / "hic")
    with pytest.raises(ValueError, match="differ from the prepared"):
        hic_noise_ceiling(str(tmp_path), str(genome))


@pytest.mark.integration
def test_simulator_truth_bounds_the_hic_gain(tiny_data):
    """From the simulator's replayed rates: the re-drawn observed windows match the
    prepared ones (checked inside), a replicate correlates below 1, a truth-knowing oracle
    scores at most about the ceiling, and leaving the TADs out of the truth costs it."""
    from benchmarks.noise_ceiling import replicate_ceiling, structure_oracles

    genome = str(tiny_data.parent / "genome")
    c = replicate_ceiling(str(tiny_data), genome, n_reps=4)
    assert 0.0 < c["r_retest"] < 1.0 and c["n_windows"] > 0
    assert c["ceiling_pearson"] == pytest.approx(np.sqrt(c["r_retest"]))
    assert c["r_retest"] < c["oracle_pearson"] <= c["ceiling_pearson"] + 0.01
    o = structure_oracles(str(tiny_data), genome, n_reps=4)
    assert o["oracle_no_tad"] < o["oracle_full"] - 0.005
    assert 0.0 < o["oracle_structure"] <= o["oracle_full"] + 0.01
