"""2-worker DDP pretraining on a real local Ray + sqlite MLflow: checkpoints, automatic
restart after a worker failure (FailureConfig), and resume when re-run with the same name."""

from __future__ import annotations

import dataclasses
import math
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from mixhic.core.config import load_config
from mixhic.models.losses import pairing_chance
from mixhic.platform.data import read_geometry
from mixhic.platform.train_config import PretrainConfig
from mixhic.platform.train_loop import overlapping_windows

pytestmark = pytest.mark.integration


def _steps(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_ddp_pretrain_restarts_after_failure_and_resumes(ray_local, tiny_data, tmp_path):
    from mixhic.platform.checkpoints import load_model_dir
    from mixhic.platform.pretrain import pretrain
    from mixhic.platform.tracking import download_model_dir
    from mlflow import MlflowClient

    cfg = load_config("demo-pretrain", PretrainConfig, {
        "data.data_dir": str(tiny_data), "data.batch_size": 8, "data.eval_batch_size": 16,
        "train.epochs": 2, "train.max_steps_per_epoch": 2, "train.fail_at_epoch": 0,
        "loss.contrastive_warmup_epochs": 1,
        "scaling.num_workers": 2, "scaling.cpus_per_worker": 0.5, "scaling.max_failures": 1,
        "run.storage_path": str(tmp_path / "ray"), "run.runs_dir": str(tmp_path / "runs"),
        "run.run_name": "pt", "run.experiment": f"test-pretrain-{uuid.uuid4().hex[:8]}",
    })
    # run 1: fails after checkpointing epoch 0, Ray Train restarts it, it resumes at epoch 1
    r1 = pretrain(cfg)
    assert [h["epoch"] for h in r1.history] == [0, 1]
    assert all(h["train_steps"] == 2 for h in r1.history)
    rows = [h["train_rows"] for h in r1.history]  # summed over workers: > 1 worker's 2 x 8
    assert all(2 * 8 < r <= 2 * 2 * 8 for r in rows), rows
    client = MlflowClient()
    # each epoch logged once: epoch 0 was not trained again after the restart
    assert _steps(client, r1.run_id, "train_loss") == [0, 1]
    assert _steps(client, r1.run_id, "val_loss") == [0, 1]
    # the pairing accuracy beside its chance level over the whole val split, where
    # overlapping windows do not compete: recomputed here from the split's keys
    last = r1.history[-1]
    keys = pq.read_table(Path(tiny_data) / "pretrain", filters=[("split", "==", "val")],
                         columns=["chrom", "x_start", "y_start", "resolution"]).to_pandas()
    span = read_geometry(str(tiny_data), "pretrain").window_bins * keys["resolution"].to_numpy()
    overlap = overlapping_windows(keys["chrom"].to_numpy(), keys["x_start"].to_numpy(),
                                  keys["y_start"].to_numpy(), span)
    assert overlap.any()  # the split's windows overlap, so the exclusion is exercised
    assert last["val_baseline_pair_acc"] == pytest.approx(
        pairing_chance(len(keys), torch.as_tensor(overlap)))
    assert 0.0 <= last["val_pair_acc"] <= 1.0
    # the contrastive loss's chance, ln B, over val batches of 16 or fewer
    assert math.log(2) <= last["val_baseline_con"] <= math.log(16)
    ckpts = sorted(p for p in Path(tmp_path / "ray" / "pt").glob("checkpoint_*") if p.is_dir())
    assert ckpts and (ckpts[-1] / "model.safetensors").is_file()
    assert (ckpts[-1] / "train_state.pt").is_file()
    model, meta = load_model_dir(r1.model_dir)
    assert meta["kind"] == "pretrain" and meta["epoch"] == 1 and meta["run_id"] == r1.run_id
    assert Path(download_model_dir(f"runs:/{r1.run_id}/model"), "model.safetensors").is_file()
    run = client.get_run(r1.run_id)
    assert run.data.params["optim.lr"] == str(cfg.optim.lr)
    assert "data_manifest" in run.data.params

    # run 2: same run name, one more epoch -> resumes after epoch 1, same MLflow run
    cfg2 = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=3,
                                                              fail_at_epoch=None))
    r2 = pretrain(cfg2)
    assert r2.run_id == r1.run_id
    assert [h["epoch"] for h in r2.history] == [0, 1, 2]
    assert _steps(client, r1.run_id, "train_loss") == [0, 1, 2]
    assert client.get_run(r1.run_id).data.tags.get("resumed.train.epochs") == "3"
    assert load_model_dir(r2.model_dir)[1]["epoch"] == 2
