"""The demo, reduced (prepared tiny data, loops only, 1 short epoch per step)."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.integration


def test_reduced_demo_ends_with_table_and_ui_command(ray_local, tiny_data, tmp_path, capsys):
    from mlflow import MlflowClient

    from mixhic.platform.demo import cli_main

    exp = f"test-demo-{uuid.uuid4().hex[:8]}"
    short = "{train.epochs: 1, train.max_steps_per_epoch: 2, data.batch_size: 8, " \
            "scaling.num_workers: 1}"
    rc = cli_main([
        "demo", f"work_dir={tmp_path / 'demo'}", f"data_dir={tiny_data}", "tasks=[loops]",
        f"runs_dir={tmp_path / 'runs'}", f"experiment={exp}",
        f"pretrain_overrides={short}", f"finetune_overrides={short}",
    ])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| loops | bimodal |" in out and "auroc" in out
    assert "mlflow ui --backend-store-uri sqlite:///" in out or "mlflow ui --backend-store-uri" in out
    assert (tmp_path / "demo" / "results.md").is_file()
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name(exp).experiment_id])
    names = {r.info.run_name for r in runs}
    assert any(n.startswith("demo-pretrain-") for n in names)
    assert any(n.startswith("demo-loops-bimodal-") for n in names)
    parent = next(r for r in runs if r.data.tags.get("mixhic.recipe") == "demo")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) >= 2
    assert "results.md" in {a.path for a in client.list_artifacts(parent.info.run_id)}
