"""Metric functions agree with scikit-learn/scipy; evaluation is batch/order invariant."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from mixhic.platform.metrics import (
    PRIMARY_METRIC,
    PredictionStore,
    cage_metrics,
    hic_metrics,
    insulation_score,
    loop_metrics,
    task_metrics,
)


@pytest.fixture()
def maps():
    rng = np.random.default_rng(0)
    true = rng.gamma(2.0, size=(12, 20, 20))
    true = (true + true.transpose(0, 2, 1)) / 2
    pred = 0.7 * true + rng.normal(scale=0.5, size=true.shape)
    return true, pred


def test_hic_flattened_metrics_match_sklearn_scipy(maps):
    true, pred = maps
    m = hic_metrics(true, pred)
    assert m["r2"] == pytest.approx(skm.r2_score(true.ravel(), pred.ravel()), rel=1e-10)
    assert m["pearson"] == pytest.approx(stats.pearsonr(true.ravel(), pred.ravel())[0])
    assert m["spearman"] == pytest.approx(stats.spearmanr(true.ravel(), pred.ravel())[0])


def _mask_bins(true, rng):
    """Zero a few whole rows/columns (masked bins, as prepare stores them): -> (maps,
    observed) with observed False on every pixel of a masked row or column."""
    t = true.copy()
    seen = np.ones(t.shape, bool)
    for k in range(0, len(t), 2):
        i, j = rng.integers(0, t.shape[1], size=2)
        t[k, i, :], t[k, :, j] = 0.0, 0.0
        seen[k, i, :], seen[k, :, j] = False, False
    return t, seen


def test_unobserved_pixels_are_left_out_of_hic_metrics(maps):
    """Masked bins are stored as rows/columns of zeros; they were never measured, so the
    metrics are those of the observed pixels (scipy/sklearn on them) and predictions there
    change nothing."""
    import torch
    from mixhic.models.tasks import observed_pixels

    true, pred = maps
    true, seen = _mask_bins(true, np.random.default_rng(1))
    np.testing.assert_array_equal(observed_pixels(true), seen)
    np.testing.assert_array_equal(observed_pixels(torch.from_numpy(true)).numpy(), seen)
    m = hic_metrics(true, pred)
    assert m["pearson"] == pytest.approx(stats.pearsonr(true[seen], pred[seen])[0])
    assert m["r2"] == pytest.approx(skm.r2_score(true[seen], pred[seen]))
    assert m["spearman"] == pytest.approx(stats.spearmanr(true[seen], pred[seen])[0])
    pr = [stats.pearsonr(t[s], p[s])[0] for t, p, s in zip(true, pred, seen)]
    assert m["pearson_per_map"] == pytest.approx(np.mean(pr))
    other = np.where(seen, pred, 100.0)  # wild values where nothing was measured
    for k, v in hic_metrics(true, other).items():
        assert v == pytest.approx(m[k], nan_ok=True), k
    assert hic_metrics(true, other)["pearson"] > stats.pearsonr(true.ravel(),
                                                                pred.ravel())[0]


def test_r2_argument_order_matters(maps):
    true, pred = maps
    swapped = hic_metrics(pred, true)["r2"]
    assert hic_metrics(true, pred)["r2"] != pytest.approx(swapped, abs=1e-3)
    assert swapped == pytest.approx(skm.r2_score(pred.ravel(), true.ravel()))


def test_per_map_metrics_are_means_of_per_map_scores(maps):
    true, pred = maps
    m = hic_metrics(true, pred)
    r2 = [skm.r2_score(t.ravel(), p.ravel()) for t, p in zip(true, pred)]
    pr = [stats.pearsonr(t.ravel(), p.ravel())[0] for t, p in zip(true, pred)]
    sp = [stats.spearmanr(t.ravel(), p.ravel())[0] for t, p in zip(true, pred)]
    assert m["r2_per_map"] == pytest.approx(np.mean(r2))
    assert m["pearson_per_map"] == pytest.approx(np.mean(pr))
    assert m["spearman_per_map"] == pytest.approx(np.mean(sp))


def test_constant_maps_are_skipped_not_crashing(maps):
    true, pred = maps
    true, pred = true.copy(), pred.copy()
    true[0] = 1.0
    pred[1] = 3.0
    with np.errstate(all="raise"):
        m = hic_metrics(true, pred)
    assert np.isfinite(m["pearson_per_map"]) and np.isfinite(m["r2_per_map"])
    pr = [stats.pearsonr(t.ravel(), p.ravel())[0] for t, p in zip(true[2:], pred[2:])]
    assert m["pearson_per_map"] == pytest.approx(np.mean(pr))


def test_distance_stratified_pearson(maps):
    true, pred = maps
    w = true.shape[1]
    perfect = hic_metrics(true, true.copy())
    ks = [k for k in range(w - 1)]
    assert all(perfect[f"pearson_d{k}"] == pytest.approx(1.0) for k in ks)
    assert perfect["pearson_by_distance_mean"] == pytest.approx(1.0)
    assert perfect["insulation_pearson"] == pytest.approx(1.0)
    assert perfect["r2"] == pytest.approx(1.0)
    m = hic_metrics(true, pred, offsets=[0, 3])
    t3 = np.concatenate([np.diagonal(true, 3, 1, 2).ravel(), np.diagonal(true, -3, 1, 2).ravel()])
    p3 = np.concatenate([np.diagonal(pred, 3, 1, 2).ravel(), np.diagonal(pred, -3, 1, 2).ravel()])
    assert m["pearson_d3"] == pytest.approx(stats.pearsonr(t3, p3)[0])
    assert "pearson_d1" not in m
    assert m["pearson_by_distance_mean"] == pytest.approx((m["pearson_d0"] + m["pearson_d3"]) / 2)


def _tad_map(w: int, boundaries: list[int], rng) -> np.ndarray:
    """Distance decay plus strong contacts inside TADs delimited by ``boundaries``."""
    idx = np.arange(w)
    m = 1.0 / (1.0 + np.abs(idx[:, None] - idx[None, :]))
    edges = [0, *boundaries, w]
    for a, b in zip(edges[:-1], edges[1:]):
        m[a:b, a:b] += 1.0
    return m + rng.normal(scale=0.01, size=m.shape)


def test_insulation_finds_planted_boundaries():
    rng = np.random.default_rng(1)
    w, s = 60, 4
    boundaries = [20, 40]  # TADs [0,20), [20,40), [40,60)
    ins = insulation_score(_tad_map(w, boundaries, rng), s)
    assert ins.shape == (w,)
    assert np.isnan(ins[:s]).all() and np.isnan(ins[w - s :]).all()
    # the two deepest local minima sit at the boundaries (bin b-1 or b)
    valid = np.where(~np.isnan(ins))[0]
    minima = [i for i in valid[1:-1] if ins[i] <= ins[i - 1] and ins[i] <= ins[i + 1]]
    deepest = sorted(minima, key=lambda i: ins[i])[:2]
    for b in boundaries:
        assert any(abs(i - b) <= 1 for i in deepest), (b, deepest)
    # a prediction with the boundaries moved correlates worse than one with them in place
    moved = _tad_map(w, [30, 50], rng)[None]
    same = _tad_map(w, boundaries, rng)[None]
    true = _tad_map(w, boundaries, rng)[None]
    good = hic_metrics(true, same, insulation_window=s)["insulation_pearson"]
    bad = hic_metrics(true, moved, insulation_window=s)["insulation_pearson"]
    assert good > 0.9 and bad < good - 0.3


def test_hic_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        hic_metrics(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="3-D"):
        hic_metrics(np.zeros((4, 4)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="NaN"):
        hic_metrics(np.full((1, 4, 4), np.nan), np.zeros((1, 4, 4)))


def test_distance_decay_baseline():
    """On diagonal windows the expected map is the mean per diagonal offset."""
    from mixhic.platform.baselines import DistanceExpected

    rng = np.random.default_rng(0)
    maps = rng.random((5, 8, 8))
    exp = DistanceExpected()
    exp.add(maps, np.zeros(5), ["chr1"] * 5)
    base = exp.predict([0], ["chr1"], 8)[0]
    assert base.shape == (8, 8)
    np.testing.assert_allclose(base, base.T)
    d2 = np.concatenate([np.diagonal(maps, 2, 1, 2).ravel(), np.diagonal(maps, -2, 1, 2).ravel()])
    assert base[0, 2] == pytest.approx(d2.mean())
    assert base[5, 3] == pytest.approx(d2.mean())
    assert base[4, 4] == pytest.approx(np.diagonal(maps, 0, 1, 2).mean())


def test_loop_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1)
    m = loop_metrics(y, p)
    hard = (p >= 0.5).astype(int)
    assert m["f1"] == pytest.approx(skm.f1_score(y, hard))
    assert m["precision"] == pytest.approx(skm.precision_score(y, hard))
    assert m["recall"] == pytest.approx(skm.recall_score(y, hard))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, hard))
    assert m["auroc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["auprc"] == pytest.approx(skm.average_precision_score(y, p))
    assert loop_metrics(y, p, threshold=0.9)["recall"] < m["recall"]


def test_loop_metrics_single_class_is_nan_with_warning():
    with pytest.warns(RuntimeWarning, match="single class"):
        m = loop_metrics(np.zeros(10), np.linspace(0, 1, 10))
    assert np.isnan(m["auroc"]) and np.isnan(m["auprc"])
    assert m["accuracy"] == pytest.approx(0.5)


def test_loop_metrics_reject_logits_and_bad_labels():
    with pytest.raises(ValueError, match="probabilities"):
        loop_metrics([0, 1], [-2.0, 3.0])
    with pytest.raises(ValueError, match="0 or 1"):
        loop_metrics([0, 2], [0.1, 0.9])


def test_cage_metrics_match_sklearn_scipy():
    rng = np.random.default_rng(0)
    t = rng.gamma(1.0, size=(30, 16))
    p = t + rng.normal(size=t.shape)
    m = cage_metrics(t, p)
    assert m["r2"] == pytest.approx(skm.r2_score(t.ravel(), p.ravel()))
    assert m["pearson"] == pytest.approx(stats.pearsonr(t.ravel(), p.ravel())[0])
    assert m["spearman"] == pytest.approx(stats.spearmanr(t.ravel(), p.ravel())[0])


def test_task_dispatch_and_primary_metrics(maps):
    true, pred = maps
    assert set(PRIMARY_METRIC) == {"hic", "loops", "cage"}
    assert PRIMARY_METRIC["hic"] in task_metrics("hic", true, pred)
    assert PRIMARY_METRIC["cage"] in task_metrics("cage", true[:, 0], pred[:, 0])
    assert PRIMARY_METRIC["loops"] in task_metrics("loops", [0, 1, 1], [0.2, 0.6, 0.9])
    with pytest.raises(ValueError, match="task"):
        task_metrics("tads", true, pred)


def _rows(n=37, seed=0):
    rng = np.random.default_rng(seed)
    keys = {
        "sample": np.array(["gm12878", "k562"])[rng.integers(0, 2, n)],
        "chrom": np.array([f"chr{i}" for i in rng.integers(1, 4, n)]),
        "x_start": np.arange(n) * 5000,
    }
    true = rng.random((n, 12, 12)).astype(np.float32)
    pred = (true + rng.normal(scale=0.3, size=true.shape)).astype(np.float32)
    return keys, true, pred


def _store(keys, true, pred, order, batch):
    store = PredictionStore()
    for i in range(0, len(order), batch):
        idx = order[i : i + batch]
        store.add({k: v[idx] for k, v in keys.items()}, true[idx], pred[idx])
    return store


def test_prediction_store_is_batch_and_order_invariant():
    keys, true, pred = _rows()
    n = len(true)
    rng = np.random.default_rng(3)
    ref = _store(keys, true, pred, np.arange(n), n).finalize()
    ref_m = hic_metrics(ref.true, ref.pred)
    for batch in (1, 4, 7, 50):
        got = _store(keys, true, pred, rng.permutation(n), batch).finalize()
        for k in keys:
            np.testing.assert_array_equal(got.keys[k], ref.keys[k])
        np.testing.assert_array_equal(got.true, ref.true)
        np.testing.assert_array_equal(got.pred, ref.pred)
        got_m = hic_metrics(got.true, got.pred)
        assert list(got_m) == list(ref_m)
        np.testing.assert_array_equal(list(got_m.values()), list(ref_m.values()))  # bit-exact
    assert np.isfinite(list(ref_m.values())).all()
    # sorted by (sample, chrom, x_start)
    tuples = list(zip(ref.keys["sample"], ref.keys["chrom"], ref.keys["x_start"]))
    assert tuples == sorted(tuples)


def test_prediction_store_merge_across_workers_and_torch_input():
    import torch

    keys, true, pred = _rows()
    order = np.random.default_rng(0).permutation(len(true))
    halves = np.array_split(order, 2)
    stores = []
    for h in halves:
        s = PredictionStore()
        s.add({k: list(v[h]) for k, v in keys.items()}, torch.from_numpy(true[h]),
              torch.from_numpy(pred[h]))
        stores.append(s)
    merged = PredictionStore.merge(stores[::-1]).finalize()
    ref = _store(keys, true, pred, np.arange(len(true)), 5).finalize()
    np.testing.assert_array_equal(merged.pred, ref.pred)
    assert len(PredictionStore.merge(stores)) == len(true)


def test_prediction_store_errors():
    s = PredictionStore()
    with pytest.raises(ValueError, match="no predictions"):
        s.finalize()
    s.add({"chrom": ["chr1", "chr1"], "x": [0, 0]}, np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="differ"):
        s.add({"chrom": ["chr1"]}, np.zeros(1), np.zeros(1))
    with pytest.raises(ValueError, match="rows"):
        s.add({"chrom": ["chr1"], "x": [1]}, np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="duplicate"):
        s.finalize()
