"""Fine-tuning per task and mode on a real local Ray + sqlite MLflow (1 epoch, tiny data)."""

from __future__ import annotations

import math
import uuid

import pytest
from mixhic.core.config import load_config
from mixhic.platform.train_config import FinetuneConfig

pytestmark = pytest.mark.integration

PRIMARY = {"loops": "auroc", "hic": "pearson", "cage": "r2"}


def _cfg(tiny_data, tmp_path, **over) -> FinetuneConfig:
    base = {
        "data.data_dir": str(tiny_data), "data.batch_size": 8, "data.eval_batch_size": 16,
        "train.epochs": 1, "train.max_steps_per_epoch": 2, "scaling.num_workers": 1,
        "run.storage_path": str(tmp_path / "ray"), "run.runs_dir": str(tmp_path / "runs"),
        "run.experiment": f"test-finetune-{uuid.uuid4().hex[:8]}", "run.register": False,
    }
    return load_config("demo-finetune", FinetuneConfig, {**base, **over})


@pytest.mark.parametrize(
    ("task", "mode", "extra"),
    [
        # one Ray Train fit each (~30 s): every task, every kind of start (pretrained with
        # Hi-C input, pretrained epi-only, from scratch), not every task x mode
        ("loops", "bimodal", {"run.register": True}),
        ("loops", "epi", {"data.train_fraction": 0.5}),
        # early stopping: a learning rate too small to change the metric, patience 1, but
        # never before early_stopping.min_epochs (3) epochs
        ("hic", "infer", {"train.epochs": 5, "early_stopping.patience": 1, "optim.lr": 1e-12,
                          "optim.warmup_epochs": 0.0}),
        ("cage", "nonpre", {}),
    ],
)
def test_finetune_task_mode(ray_local, tiny_data, tiny_pretrained, tmp_path, task, mode, extra,
                            caplog):
    from mixhic.platform.checkpoints import load_model_dir
    from mixhic.platform.data import split_rows
    from mixhic.platform.finetune import finetune
    from mlflow import MlflowClient

    cfg = _cfg(tiny_data, tmp_path, task=task, mode=mode, pretrained=str(tiny_pretrained),
               **extra)
    res = finetune(cfg)
    metric = PRIMARY[task]
    assert f"val_{metric}" in res.metrics and f"test_{metric}" in res.metrics
    assert math.isfinite(res.metrics[f"test_{metric}"])
    client = MlflowClient()
    run = client.get_run(res.run_id)
    assert run.data.tags["mixhic.task"] == task and run.data.tags["mixhic.mode"] == mode
    assert [m.step for m in client.get_metric_history(res.run_id, f"val_{metric}")] == \
        list(range(len(res.history)))
    assert f"test_{metric}" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(res.run_id, "plots")}
    assert any(p.startswith("plots/test_") for p in artifacts)
    model, meta = load_model_dir(res.model_dir)
    assert (meta["task"], meta["mode"]) == (task, mode)
    if mode == "nonpre":
        assert res.load_report is None and meta["pretrained"] is None
    else:
        assert res.load_report and res.load_report.startswith("loaded")
    if extra.get("run.register"):
        assert res.model_version is not None
        import mlflow

        mv = client.get_model_version(f"mixhic-{task}", res.model_version)
        schema = mlflow.models.get_model_info(mv.source).signature.inputs
        assert "offset" in schema.input_names()  # loop windows sit off the diagonal
    if "data.train_fraction" in extra:
        n = split_rows(str(tiny_data), task, "train", train_fraction=0.5)
        assert 0 < n < split_rows(str(tiny_data), task, "train")
        # at most two steps of 8 from the halved split (a loaded Ray may cut a block short)
        assert 0 < res.history[0]["train_rows"] <= min(n, 2 * 8)
    if task == "hic":  # no improvement after epoch 0, stopped at min_epochs; best = epoch 0
        # BatchNorm running statistics still drift at lr 1e-12, so the metric may creep
        # up; what must hold is that no run stops before min_epochs
        assert len(res.history) >= 3
        assert meta["epoch"] == res.best_epoch
        for key in ("test_baseline_pearson", "test_gain_pearson", "test_gain_r2",
                    "test_pearson_s0-50kb", "test_baseline_pearson_s0-50kb"):
            assert key in res.metrics, key
        if res.best_epoch == 0:
            assert any("best val_pearson was at epoch 0" in rec.getMessage()
                       for rec in caplog.records), "no warning for a best epoch of 0"
    if task == "loops":
        assert "test_baseline_oe_auroc" in res.metrics
        assert "test_baseline_anchor_signal_auroc" in res.metrics
        assert "test_gain_auroc" in res.metrics


def test_hic_task_refuses_hic_input(tiny_data, tmp_path):
    from mixhic.core.errors import MixHicError
    from mixhic.platform.finetune import finetune

    with pytest.raises(MixHicError, match="mode"):
        finetune(_cfg(tiny_data, tmp_path, task="hic", mode="bimodal"))


def _pretrained_on(tiny_pretrained, tmp_path, **data):
    """A copy of ``tiny_pretrained`` whose recorded training data differs by ``data``."""
    import json
    import shutil

    from mixhic.platform.checkpoints import META_FILE

    dst = tmp_path / "pre-other"
    shutil.copytree(tiny_pretrained, dst)
    meta = json.loads((dst / META_FILE).read_text())
    meta["data"].update(data)
    (dst / META_FILE).write_text(json.dumps(meta))
    return dst


def test_pretrained_on_other_data_is_refused(tiny_data, tiny_pretrained, tmp_path):
    from mixhic.core.errors import MixHicError
    from mixhic.platform.finetune import finetune

    other = _pretrained_on(tiny_pretrained, tmp_path, resolution=10_000, tracks=["ctcf", "smc3"])
    with pytest.raises(MixHicError) as err:
        finetune(_cfg(tiny_data, tmp_path, task="loops", mode="bimodal", pretrained=str(other)))
    text = str(err.value)
    assert "resolution (prepare key inputs.hic.resolution): model 10000, data 5000" in text
    assert "tracks (prepare key inputs.tracks): model ['ctcf', 'smc3'], data ['atac', 'dnase']" \
        in text
    assert "--allow-mismatch" in text and "epi_bin" in text
    assert "epi_transform" not in text  # what matches is not listed


def test_allow_mismatch_warns_per_difference(tiny_data, tiny_pretrained, tmp_path, caplog):
    from mixhic.platform import data as data_mod
    from mixhic.platform.checkpoints import read_meta
    from mixhic.platform.finetune import _check_data_match

    other = _pretrained_on(tiny_pretrained, tmp_path, resolution=10_000, epi_bin=200)
    cfg = _cfg(tiny_data, tmp_path, task="loops", mode="bimodal", pretrained=str(other),
               allow_mismatch=True)
    with caplog.at_level("WARNING", logger="mixhic.platform.finetune"):
        _check_data_match(cfg, read_meta(other), data_mod.data_meta(str(tiny_data), "loops"))
    lines = [r.getMessage() for r in caplog.records if "allow_mismatch" in r.getMessage()]
    assert len(lines) == 2 and any("epi_bin" in m for m in lines)
    # the same data as the pretraining data: nothing to say
    caplog.clear()
    _check_data_match(cfg, read_meta(tiny_pretrained), data_mod.data_meta(str(tiny_data), "loops"))
    assert not caplog.records


def test_geometry_mismatch_explains_the_knobs(tiny_data, tiny_pretrained, tmp_path):
    import json

    from mixhic.core.errors import MixHicError
    from mixhic.platform.checkpoints import META_FILE
    from mixhic.platform.finetune import finetune

    other = _pretrained_on(tiny_pretrained, tmp_path)
    meta = json.loads((other / META_FILE).read_text())
    meta["model_config"]["epi_bins"] = meta["model_config"]["epi_bins"] * 2
    (other / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(MixHicError, match=r"\(W, L, C\).*epi_bin.*window_bins=50 epi_bin=200"):
        finetune(_cfg(tiny_data, tmp_path, task="loops", mode="bimodal", pretrained=str(other)))
