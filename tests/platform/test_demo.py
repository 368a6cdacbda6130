"""The demo, reduced (prepared tiny data, loops only, 1 short epoch per step)."""

from __future__ import annotations

import uuid

import pytest


def test_results_table_sets_each_metric_beside_its_baseline():
    """No Ray: the table's model, baseline and gain columns come from the rows' metrics;
    the pretraining row shows the val pairing accuracy beside chance."""
    from mixhic.platform.demo import results_table

    rows = [
        {"task": "pretrain", "mode": "-", "split": "val", "best_epoch": 3, "metrics": {
            "pair_acc": 0.40, "baseline_pair_acc": 0.0625, "con": 1.2, "baseline_con": 2.77}},
        {"task": "loops", "mode": "bimodal", "best_epoch": 1, "metrics": {
            "auroc": 0.90, "baseline_auroc": 0.95, "f1": 0.5}},
        {"task": "hic", "mode": "infer", "best_epoch": 0, "metrics": {"pearson": 0.7}},
    ]
    lines = results_table(rows).splitlines()[2:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert cells[0][:8] == ["pretrain", "-", "3", "pair_acc (val)", "0.400", "0.062",
                            "+0.338", "yes"]
    assert cells[0][8] == "con 1.200, baseline_con 2.770"
    assert cells[1][3:8] == ["auroc", "0.900", "0.950", "-0.050", "no"]  # never hidden
    assert cells[2][4:8] == ["0.700", "nan", "+nan", "n/a"]  # no baseline: says so


@pytest.mark.integration
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
    assert "| pretrain | - |" in out and "pair_acc (val)" in out
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
