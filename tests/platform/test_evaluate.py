"""Evaluation of a model dir: deterministic (batch-size invariant), logged, cross-sample."""

from __future__ import annotations

import dataclasses
import uuid

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def _model_dir(tiny_data, tmp_path, task, mode):
    import torch
    from mixhic.models import FinetuneModel, get_preset
    from mixhic.platform.checkpoints import save_model_dir
    from mixhic.platform.data import data_meta

    dm = data_meta(str(tiny_data), task)
    cfg = get_preset("tiny", window_bins=dm["window_bins"], epi_bins=dm["epi_bins"],
                     n_tracks=dm["n_tracks"])
    torch.manual_seed(1)
    meta = {"kind": "finetune", "task": task, "mode": mode,
            "model_config": dataclasses.asdict(cfg), "preset": "tiny", "data": dm,
            "run_id": None, "epoch": 0, "metrics": {}}
    return save_model_dir(tmp_path / f"{task}-{mode}", FinetuneModel(cfg, task, mode), meta)


@pytest.mark.parametrize(("task", "mode"), [("loops", "bimodal"), ("hic", "infer"),
                                            ("cage", "epi")])
def test_metrics_do_not_depend_on_batch_size(ray_local, tiny_data, tmp_path, task, mode):
    from mixhic.platform.checkpoints import load_model_dir
    from mixhic.platform.evaluate import evaluate_model

    model, meta = load_model_dir(_model_dir(tiny_data, tmp_path, task, mode))
    m3, p3 = evaluate_model(model, meta, str(tiny_data), split="test", batch_size=3)
    m16, p16 = evaluate_model(model, meta, str(tiny_data), split="test", batch_size=16)
    for k in p3.keys:
        np.testing.assert_array_equal(p3.keys[k], p16.keys[k])
    np.testing.assert_allclose(p3.pred, p16.pred, rtol=1e-5, atol=1e-6)
    assert m3.keys() == m16.keys()
    for k in m3:
        assert m3[k] == pytest.approx(m16[k], rel=1e-5, abs=1e-6, nan_ok=True), k


def test_evaluate_logs_to_mlflow_and_selects_a_sample(ray_local, tiny_data, tmp_path):
    from mixhic.core.errors import MixHicError
    from mixhic.platform.evaluate import cli_main, evaluate
    from mixhic.platform.train_config import EvaluateConfig
    from mlflow import MlflowClient

    path = _model_dir(tiny_data, tmp_path, "loops", "epi")
    exp = f"test-eval-{uuid.uuid4().hex[:8]}"
    cfg = EvaluateConfig(model=str(path), data_dir=str(tiny_data), split="val",
                         sample="sim-a", batch_size=7, experiment=exp,
                         runs_dir=str(tmp_path / "runs"))
    metrics = evaluate(cfg)
    assert 0.0 <= metrics["auroc"] <= 1.0
    client = MlflowClient()
    run = client.search_runs([client.get_experiment_by_name(exp).experiment_id])[0]
    assert run.data.metrics["val_auroc"] == pytest.approx(metrics["auroc"])
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} == \
        {"plots/val_roc_pr.png"}
    with pytest.raises(MixHicError, match="no rows"):
        evaluate(dataclasses.replace(cfg, sample="another-cell-line", log_to_mlflow=False))
    with pytest.raises(MixHicError, match="fine-tuned"):
        from mixhic.platform.checkpoints import load_model_dir
        from mixhic.platform.evaluate import evaluate_model

        _, meta = load_model_dir(path)
        evaluate_model(None, {**meta, "kind": "pretrain"}, str(tiny_data))
    assert cli_main([f"model={path}", "--data-dir", str(tiny_data), "--no-mlflow",
                     "batch_size=5"]) == 0


def test_decay_baseline_is_fit_on_the_rows_the_model_trained_on(ray_local, tiny_data, tmp_path):
    """With ``train_fraction`` < 1 the model saw a subset of the train split; the distance
    baseline must learn from that subset, not the whole split (hand computation over the
    rows ``fraction_mask`` keeps)."""
    import pyarrow.dataset as pds
    from mixhic.platform import baselines as bl
    from mixhic.platform import data as data_mod
    from mixhic.platform.checkpoints import load_model_dir
    from mixhic.platform.evaluate import BaselineTrain, evaluate_model
    from mixhic.platform.metrics import task_metrics

    model, meta = load_model_dir(_model_dir(tiny_data, tmp_path, "hic", "infer"))
    part = BaselineTrain(str(tiny_data), train_fraction=0.2, seed=3)
    m_part, preds = evaluate_model(model, meta, str(tiny_data), train=part)
    m_all, _ = evaluate_model(model, meta, str(tiny_data))

    t = pds.dataset(data_mod.dataset_uri(str(tiny_data), "hic"), format="parquet").to_table(
        filter=pds.field("split") == "train").to_pydict()
    keys = {k: np.asarray(t[k]) for k in ("sample", "chrom", "x_start", "y_start")}
    keep = data_mod.fraction_mask(keys, 0.2, seed=3)
    assert 0 < keep.sum() < len(keep)
    w = preds.true.shape[-1]
    hic = np.stack([np.asarray(v, np.float32).reshape(w, w) for v in t["hic"]])[keep]
    res = int(t["resolution"][0])
    exp = bl.DistanceExpected()
    exp.add(hic, data_mod.anchor_offsets(keys["x_start"][keep], keys["y_start"][keep], res),
            keys["chrom"][keep])
    offsets = data_mod.anchor_offsets(preds.keys["x_start"], preds.keys["y_start"], res)
    hand = task_metrics("hic", preds.true, exp.predict(offsets, preds.keys["chrom"], w))
    assert m_part["baseline_pearson"] == pytest.approx(hand["pearson"], rel=1e-6)
    assert m_part["baseline_pearson"] != pytest.approx(m_all["baseline_pearson"], rel=1e-6)
    assert m_part["gain_pearson"] == pytest.approx(m_part["pearson"] - hand["pearson"], rel=1e-6)
