"""mixhic tune: config checks (no Ray) and one real sweep on a local Ray + sqlite MLflow.

The sweep test runs 2 tiny trials, one at a time, with ASHA (grace 1, max_t 2, factor 2).
Trial 1 pretrains with a sane learning rate, trial 2 with lr=5 (Adam moves every weight
by ~5 per step): its fine-tuned CAGE R^2 is far below the first's, so ASHA stops it at the
first rung (its cutoff there is trial 1's value). The sweep is interrupted (as Ctrl+C
does) after the first finished trial and re-run: it resumes without re-running the
finished one, and ASHA cuts the second against the rung replayed from it. (Two trials, not
three at two a time: every trial is two Ray Train fits, and this test was the suite's
slowest at 5 min; the re-opening of an interrupted trial's MLflow runs is tested without
Ray in ``test_restarted_trial_closes_the_runs_its_killed_attempt_left_open``.)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from mixhic.core.config import ConfigError, load_config
from mixhic.core.errors import MixHicError
from mixhic.platform.train_config import PretrainConfig
from mixhic.platform.tune_config import TuneConfig

W, C, L = 50, 2, 2500  # window bins, tracks, epi bins per anchor (the demo's geometry)


# --------------------------------------------------------------------------- helpers
def _tune_yaml(tmp: Path, data_dir: str, **over) -> Path:
    raw = {
        "pretrain_config": "demo-pretrain",
        "finetune_config": "demo-finetune",
        "task": "cage",
        "mode": "bimodal",
        "data_dir": data_dir,
        "trial_pretrain_overrides": {
            "train.epochs": 1, "train.max_steps_per_epoch": 2, "loss.contrastive_warmup_epochs": 0,
            "optim.warmup_epochs": 0, "scaling.num_workers": 1, "scaling.cpus_per_worker": 0.25,
            "scaling.max_failures": 0, "data.shuffle_buffer": 0, "data.eval_batch_size": 64,
            "data.cache": "never",  # 1 epoch: streaming is ~4 s faster than materialising
        },
        "finetune_overrides": {
            "train.epochs": 2, "train.max_steps_per_epoch": 2, "early_stopping.patience": None,
            "optim.warmup_epochs": 0, "scaling.cpus_per_worker": 0.25, "scaling.max_failures": 0,
            "data.shuffle_buffer": 0, "data.eval_batch_size": 64,  # data.cache=auto: val read once
        },
        "search_space": {"con": {"type": "choice", "values": [0.5, 1.0]},
                         "lr": {"type": "choice", "values": [0.001, 5.0]}},
        "search": {"num_samples": 2, "max_concurrent_trials": 1, "points_to_evaluate": [
            {"con": 1.0, "lr": 0.001}, {"con": 0.5, "lr": 5.0}]},
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2, "max_t": 2},
        "resources": {"cpu": 0.25},
        "run": {"name": "sweep", "storage_path": str(tmp / "tune"), "experiment": "tune-test",
                "runs_dir": str(tmp / "runs")},
    }
    raw.update(over)
    path = tmp / "tune.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """A minimal prepared dataset (pretrain + cage) written straight to Parquet with the
    dataset schema: CAGE follows the ATAC track, so a fine-tuned model can learn it."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from mixhic.pipelines.schema import WindowShape, dataset_schema, tensor_column, validate_table

    root = tmp_path_factory.mktemp("tune-data")
    rng = np.random.default_rng(0)
    shape = WindowShape(window_bins=W, n_tracks=C, epi_bins=L)
    splits = ["train"] * 48 + ["val"] * 16 + ["test"] * 8
    n = len(splits)
    d = np.abs(np.arange(W)[:, None] - np.arange(W)[None, :])
    hic = np.log1p(20.0 / (1 + d))[None] * rng.uniform(0.5, 1.5, (n, 1, 1))
    hic = (hic + 0.05 * rng.random((n, W, W))).astype(np.float32)
    epi = rng.gamma(1.0, 1.0, (n, C, 2 * L)).astype(np.float32)
    cage = epi[:, 0, :L].reshape(n, W, L // W).mean(-1).astype(np.float32)
    chroms = {"train": "chr1", "val": "chr2", "test": "chr3"}
    for name in ("pretrain", "cage"):
        cols = {
            "sample": pa.array(["sim"] * n), "chrom": pa.array([chroms[s] for s in splits]),
            "x_start": pa.array(np.arange(n, dtype=np.int64) * 250_000),
            "y_start": pa.array(np.arange(n, dtype=np.int64) * 250_000),
            "resolution": pa.array(np.full(n, 5000, dtype=np.int32)),
            "split": pa.array(splits),
            "hic": tensor_column(hic, (W, W)), "epi": tensor_column(epi, (C, 2 * L)),
            "nonzero_frac": pa.array(np.ones(n, dtype=np.float32)),
            "masked_bins": pa.array(np.zeros(n, dtype=np.int16)),
        }
        if name == "cage":
            cols["cage"] = tensor_column(cage, (W,))
        table = pa.Table.from_pydict(cols, schema=dataset_schema(name, shape))
        validate_table(table, name, shape)
        (root / name).mkdir()
        pq.write_table(table, root / name / "part-0.parquet")
    return root


# --------------------------------------------------------------------------- config errors
def test_shipped_tune_configs_load():
    for name in ("tune-demo", "tune-paper"):
        cfg = load_config(name, TuneConfig)
        assert cfg.search_space.items(), name
        assert cfg.resources.cpu > 0


@pytest.mark.parametrize(
    "over, key",
    [
        ({"search_space": {"con": {"type": "uniform", "low": -0.5, "high": 1.0}}},
         "search_space.con"),
        ({"search_space": {"map": {"type": "choice", "values": [0.5, -1]}}}, "search_space.map"),
        ({"search_space": {}}, "search_space"),
        ({"search_space": {"orth": {"type": "choice", "values": []}}}, "search_space.orth"),
        ({"search_space": {"lr": {"type": "loguniform", "low": 0, "high": 1}}},
         "search_space.lr"),
        ({"search_space": {"bogus": {"type": "choice", "values": [1]}}}, "bogus"),
        ({"task": "tads"}, "task"),
        ({"search": {"algorithm": "bayes"}}, "search.algorithm"),
        ({"resources": {"cpu": 0}}, "resources.cpu"),
        ({"mode": "nonpre"}, "mode"),
        ({"search": {"points_to_evaluate": [{"con": -1.0, "lr": 0.001}]}},
         "points_to_evaluate[0].con"),
        ({"search": {"points_to_evaluate": [{"con": 0.5}]}}, "points_to_evaluate[0]"),
        ({"search": {"points_to_evaluate": [{"con": 0.5, "lr": 0.001},
                                            {"con": 0.5, "lr": 0.001, "map": 0.5}]}},
         "points_to_evaluate[1]"),
        ({"scheduler": {"type": "asha", "reduction_factor": 1}}, "scheduler.reduction_factor"),
    ],
)
def test_bad_config_names_the_key(tmp_path, over, key):
    path = _tune_yaml(tmp_path, str(tmp_path / "nodata"), **over)
    with pytest.raises(ConfigError) as err:
        load_config(path, TuneConfig)
    assert key in str(err.value)


def test_plan_errors_before_any_trial(tmp_path, tiny_data):
    """Errors needing the recipes or the data surface in plan_sweep (no Ray started)."""
    import ray
    from mixhic.platform.tuning import plan_sweep

    was_running = ray.is_initialized()
    # a data dir without the datasets
    cfg = load_config(_tune_yaml(tmp_path, str(tmp_path / "nodata")), TuneConfig)
    with pytest.raises(MixHicError, match="nodata"):
        plan_sweep(cfg)
    # an override of the base recipe that does not exist
    cfg = load_config(_tune_yaml(tmp_path, str(tiny_data),
                                 trial_pretrain_overrides={"loss.bogus": 1}), TuneConfig)
    with pytest.raises(ConfigError, match="bogus"):
        plan_sweep(cfg)
    # max_t beyond the fine-tuning epochs
    cfg = load_config(_tune_yaml(tmp_path, str(tiny_data)), TuneConfig,
                      ["scheduler.max_t=9"])
    with pytest.raises(MixHicError, match="scheduler.max_t"):
        plan_sweep(cfg)
    # optuna/hyperopt configured but not installed -> clear error
    import importlib.util

    for algo in ("optuna", "hyperopt"):
        if importlib.util.find_spec(algo) is None:
            cfg = load_config(_tune_yaml(tmp_path, str(tiny_data)), TuneConfig,
                              [f"search.algorithm={algo}"])
            with pytest.raises(MixHicError, match=f"search.algorithm: {algo} is not installed"):
                plan_sweep(cfg)
    # a good config plans, resolving the metric and the rung budget
    plan = plan_sweep(load_config(_tune_yaml(tmp_path, str(tiny_data)), TuneConfig))
    assert plan.metric == "val_r2" and plan.max_t == 2
    assert plan.finetune["train"]["epochs"] == 2
    # a smaller max_t is the trials' fine-tuning length (they end there by themselves)
    plan = plan_sweep(load_config(_tune_yaml(tmp_path, str(tiny_data)), TuneConfig,
                                  ["scheduler.max_t=1"]))
    assert plan.max_t == 1 and plan.finetune["train"]["epochs"] == 1
    assert Path(plan.trial_pretrain["data"]["data_dir"]).is_absolute()
    assert ray.is_initialized() == was_running


def _fake_trial(trial_id, status, config, iters=0, error=None):
    from types import SimpleNamespace

    last = {"training_iteration": iters, "mlflow_trial_run_id": f"run-{trial_id}"} if iters else {}
    return SimpleNamespace(trial_id=trial_id, status=status, config=config, last_result=last,
                           local_path=f"/sweep/{trial_id}", path=f"/sweep/{trial_id}",
                           get_error=lambda: error)


def test_restarted_trial_closes_the_runs_its_killed_attempt_left_open(tmp_path):
    """A trial restarted after an interruption finds its MLflow run by its tags
    (``find_run``) and closes the child runs its killed attempt left RUNNING, except the
    pretraining run, which Ray Train resumes (real sqlite store, no Ray)."""
    import mlflow

    # this test's own store; the process-wide URI is put back afterwards
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        _restart_bookkeeping(mlflow.MlflowClient())
    finally:
        mlflow.set_tracking_uri(previous)


def _restart_bookkeeping(client) -> None:
    from mixhic.platform.tune_tracking import SWEEP_TAG, TRIAL_TAG, close_children, find_run

    exp = client.create_experiment("restart")
    trial = client.create_run(exp, tags={SWEEP_TAG: "s", TRIAL_TAG: "t1"}).info.run_id
    other = client.create_run(exp, tags={SWEEP_TAG: "s", TRIAL_TAG: "t2"}).info.run_id

    def child(recipe: str, status: str | None) -> str:
        rid = client.create_run(exp, tags={"mlflow.parentRunId": trial,
                                           "mixhic.recipe": recipe}).info.run_id
        if status:
            client.set_terminated(rid, status)
        return rid

    pre, ft, done = child("pretrain", None), child("finetune", None), child("finetune", "FINISHED")
    foreign = client.create_run(exp, tags={"mlflow.parentRunId": other}).info.run_id

    assert find_run("restart", **{SWEEP_TAG: "s", TRIAL_TAG: "t1"}) == trial
    assert find_run("restart", **{SWEEP_TAG: "s", TRIAL_TAG: "t9"}) is None
    close_children(trial, keep_pretrain=True)
    status = {k: client.get_run(r).info.status
              for k, r in {"pre": pre, "ft": ft, "done": done, "foreign": foreign}.items()}
    assert status == {"pre": "RUNNING", "ft": "KILLED", "done": "FINISHED",
                      "foreign": "RUNNING"}
    close_children(trial)
    assert client.get_run(pre).info.status == "KILLED"
    assert client.get_run(trial).info.status == "RUNNING"  # the trial's own run stays open


def test_trial_table_no_result_unfinished_and_best(tmp_path, caplog):
    """The trial table (no Ray): a trial TERMINATED without a result is reported as
    NO_RESULT and left out of the best choice; a cut-off trial means unfinished."""
    from types import SimpleNamespace

    import pandas as pd
    from mixhic.platform.tune_results import (
        TrialState,
        TuneResult,
        best_row,
        format_table,
        trial_rows,
    )

    cfg = load_config(_tune_yaml(tmp_path, "unused"), TuneConfig, ["search.num_samples=4"])
    plan = SimpleNamespace(cfg=cfg, metric="val_r2", max_t=2)
    trials = [
        _fake_trial("t0", "TERMINATED", {"con": 0.5, "lr": 0.001}, iters=2),
        _fake_trial("t1", "TERMINATED", {"con": 1.0, "lr": 5.0}, iters=1),  # ASHA-stopped
        _fake_trial("t2", "TERMINATED", {"con": 0.5, "lr": 5.0}),           # never reported
        _fake_trial("t3", "ERROR", {"con": 1.0, "lr": 0.001}, error="boom"),
    ]
    frames = {"t0": pd.DataFrame({"val_r2": [0.2, 0.4]}), "t1": pd.DataFrame({"val_r2": [-3.0]}),
              "t3": pd.DataFrame()}
    states = lambda ts: [TrialState.of_trial(t, frames.get(t.trial_id)) for t in ts]  # noqa: E731
    with caplog.at_level("WARNING", logger="mixhic.platform.tune_results"):
        rows, unfinished = trial_rows(states(trials), plan)
    assert not unfinished
    by = {r["trial_id"]: r for r in rows}
    assert by["t0"]["metric"] == 0.4 and not by["t0"]["early_stopped"]
    assert by["t0"]["mlflow_run_id"] == "run-t0"
    assert by["t1"]["early_stopped"] and by["t1"]["metric"] == -3.0
    assert by["t2"]["status"] == "NO_RESULT" and math.isnan(by["t2"]["metric"])
    assert "val_r2" in by["t2"]["error"] and not by["t2"]["early_stopped"]
    assert "t2" in caplog.text
    assert by["t3"]["status"] == "ERROR" and by["t3"]["error"] == "boom"
    assert best_row(rows, "max")["trial_id"] == "t0"
    assert best_row(rows, "min")["trial_id"] == "t1"
    assert best_row([by["t2"], by["t3"]], "max") is None
    table = format_table(TuneResult(name="s", path="/sweep", parent_run_id="p", metric="val_r2",
                                    mode="max", trials=rows))
    assert "NO_RESULT" in table and "(stopped)" in table
    # a trial cut off by an interruption, or one not created yet: unfinished
    _, unfinished = trial_rows(states([*trials[:3], _fake_trial("t3", "RUNNING", {})]), plan)
    assert unfinished
    _, unfinished = trial_rows(states(trials[:3]), plan)
    assert unfinished


def test_asha_lets_trials_reaching_max_t_finish():
    """ASHA cuts trials below the rung cutoff, but a trial at max_t is not stopped: it
    ends by itself, after its test evaluation and MLflow end-of-run."""
    from types import SimpleNamespace

    from mixhic.platform.tune_scheduler import ResumableASHA
    from ray.tune.schedulers import TrialScheduler

    asha = ResumableASHA(time_attr="training_iteration", metric="m", mode="max", max_t=2,
                          grace_period=1, reduction_factor=2)
    good, bad, late = (SimpleNamespace(trial_id=i, status="RUNNING") for i in ("a", "b", "c"))
    for t in (good, bad, late):
        asha.on_trial_add(None, t)
    res = lambda it, m: {"training_iteration": it, "m": m}  # noqa: E731
    assert asha.on_trial_result(None, good, res(1, 1.0)) == TrialScheduler.CONTINUE
    assert asha.on_trial_result(None, bad, res(1, 0.0)) == TrialScheduler.STOP
    assert asha.on_trial_result(None, late, res(1, 2.0)) == TrialScheduler.CONTINUE
    assert asha.on_trial_result(None, good, res(2, 1.0)) == TrialScheduler.CONTINUE
    assert asha.on_trial_result(None, late, res(2, 0.5)) == TrialScheduler.CONTINUE


def test_asha_rungs_replayed_from_finished_trials(tmp_path):
    """A restored sweep re-adds its finished trials (TERMINATED): the results they saved
    rebuild ASHA's rungs, so a new trial is cut against them as before the interruption
    (a fresh scheduler without them lets it pass)."""
    import json
    from types import SimpleNamespace

    from mixhic.platform.tune_scheduler import ResumableASHA
    from ray.tune.schedulers import TrialScheduler

    def asha():
        return ResumableASHA(time_attr="training_iteration", metric="m", mode="max", max_t=2,
                             grace_period=1, reduction_factor=2)

    finished = []
    for trial_id, values in (("a", [1.0, 1.2]), ("b", [0.8, 0.9])):
        path = tmp_path / trial_id
        path.mkdir()
        lines = [json.dumps({"training_iteration": i + 1, "m": v}) for i, v in enumerate(values)]
        (path / "result.json").write_text("\n".join([*lines, "{torn"]) + "\n")
        finished.append(SimpleNamespace(trial_id=trial_id, status="TERMINATED",
                                        local_path=str(path)))
    silent = SimpleNamespace(trial_id="s", status="TERMINATED", local_path=str(tmp_path / "s"))
    new = SimpleNamespace(trial_id="c", status="PENDING", local_path=None)
    restored = asha()
    for t in (*finished, silent, new):
        restored.on_trial_add(None, t)
    # rung 1 holds a = 1.0 and b = 0.8: the cutoff (factor 2: the median) is 0.9
    first = {"training_iteration": 1, "m": 0.85}
    assert restored.on_trial_result(None, new, first) == TrialScheduler.STOP
    fresh = asha()
    fresh.on_trial_add(None, new)
    assert fresh.on_trial_result(None, new, first) == TrialScheduler.CONTINUE


# --------------------------------------------------------------------------- the sweep
def test_sweep_asha_mlflow_resume_best_config(tmp_path, tiny_data, ray_local):
    import mlflow
    from mixhic.platform.tune_tracking import ROLE_TAG, TRIAL_TAG
    from mixhic.platform.tuning import tune

    path = _tune_yaml(tmp_path, str(tiny_data))

    # 1) interrupted after 1 finished trial
    first = tune(load_config(path, TuneConfig, ["run.interrupt_after_trials=1"]))
    assert first.interrupted and not first.restored
    finished_first = {r["trial_id"] for r in first.trials if r["status"] == "TERMINATED"}
    assert len(finished_first) == 1, first.trials
    runs_first = _trial_runs(first.parent_run_id)
    # the trials the interruption cut off are unfinished, not "TERMINATED without a result"
    # (Tune's cleanup marks them TERMINATED in memory; the table reads the saved state)
    for r in first.trials:
        if r["trial_id"] in finished_first:
            assert math.isfinite(r["metric"]) and r["mlflow_run_id"], r
            assert runs_first[r["trial_id"]] == [r["mlflow_run_id"]]
        else:
            assert r["status"] in ("RUNNING", "PENDING"), r
    client = mlflow.MlflowClient()
    open_runs = [(t, client.get_run(i).info.status, client.get_run(i).data.tags.get(
                  "mlflow.runName")) for t, ids in runs_first.items() for i in ids]
    assert all(st != "RUNNING" for _, st, _ in open_runs), (open_runs, first.trials)

    # 2) re-run: restored, finished trials kept (same ids, not run again)
    res = tune(load_config(path, TuneConfig))
    assert res.restored and not res.interrupted
    assert res.parent_run_id == first.parent_run_id
    ids = [r["trial_id"] for r in res.trials]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert finished_first <= set(ids)
    assert all(r["status"] == "TERMINATED" for r in res.trials), res.trials
    runs = _trial_runs(res.parent_run_id)
    for trial_id in finished_first:  # one MLflow run each, created in the first sweep only
        assert len(runs[trial_id]) == 1 and runs[trial_id] == runs_first[trial_id]
        pre = mlflow.MlflowClient().search_runs(
            [mlflow.get_experiment_by_name("tune-test").experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{runs[trial_id][0]}'")
        assert len(pre) == 2  # its pretrain + finetune runs, not repeated

    # ASHA stopped the lr=5 trial at the first rung; the first good one ran 2 epochs
    stopped = [r for r in res.trials if r["early_stopped"]]
    assert stopped, res.trials
    assert all(r["iterations"] < 2 for r in stopped)
    assert max(r["iterations"] for r in res.trials) == 2
    bad = [r for r in res.trials if r["lr"] == 5.0]
    good = [r for r in res.trials if r["lr"] == 0.001]
    assert max(b["metric"] for b in bad) < min(g["metric"] for g in good)

    # every trial is an MLflow run under the parent
    assert set(runs) == set(ids)
    for trial_id, run_ids in runs.items():
        run = client.get_run(run_ids[0])
        assert run.data.tags["mlflow.parentRunId"] == res.parent_run_id
        assert run.data.tags[ROLE_TAG] == "trial" and run.data.tags[TRIAL_TAG] == trial_id
    parent = client.get_run(res.parent_run_id)
    arts = {a.path for a in client.list_artifacts(res.parent_run_id, "tune")}
    assert "tune/best-pretrain.yaml" in arts
    assert {a.path for a in client.list_artifacts(res.parent_run_id, "plots")} == {
        "plots/weights_vs_metric.png"}
    assert math.isclose(parent.data.metrics["best_val_r2"], res.best_metric)

    # the best weights as a pretraining config: it loads, it is the base recipe (demo-pretrain
    # on this data) with the best weights and no fixed run name, and it builds the model at
    # the data's geometry (pretrain's checks before its fit; the recipe itself trains in
    # test_pretrain, a Ray Train fit here would add ~20 s)
    from mixhic.core.config import to_dict
    from mixhic.platform import data as data_mod
    from mixhic.platform.pretrain import model_config_for

    assert res.best_params["lr"] == 0.001
    cfg = load_config(res.best_config, PretrainConfig)
    assert cfg.loss.con == res.best_params["con"] and cfg.optim.lr == 0.001
    assert cfg.data.data_dir == str(tiny_data)
    base = load_config("demo-pretrain", PretrainConfig, [
        f"data.data_dir={tiny_data}", f"loss.con={res.best_params['con']}", "optim.lr=0.001",
        "run.run_name=null"])
    assert to_dict(cfg) == to_dict(base)
    geometry = data_mod.read_geometry(cfg.data.data_dir, "pretrain")
    assert model_config_for(cfg.model, geometry).window_bins == W


def _trial_runs(parent_run_id: str) -> dict[str, list[str]]:
    """trial id -> MLflow run ids of the trial runs nested under the sweep's parent."""
    import mlflow
    from mixhic.platform.tune_tracking import TRIAL_TAG

    client = mlflow.MlflowClient()
    exp = client.get_run(parent_run_id).info.experiment_id
    out: dict[str, list[str]] = {}
    for r in client.search_runs([exp], filter_string=(
            f"tags.`mlflow.parentRunId` = '{parent_run_id}'")):
        out.setdefault(r.data.tags[TRIAL_TAG], []).append(r.info.run_id)
    return out


def test_search_space_domains_and_grid_size(tmp_path):
    """Each ParamSpec type maps to its Tune domain; grid params multiply the trial count."""
    from mixhic.platform.tune_search import domain, expected_trials, search_alg
    from ray.tune.search import BasicVariantGenerator
    from ray.tune.search.sample import Categorical, Float, Integer

    cfg = load_config(_tune_yaml(tmp_path, "unused"), TuneConfig, [
        "search_space.con.type=grid", "search_space.lr.type=choice",
        "search.num_samples=3", "search.max_concurrent_trials=2"])
    assert expected_trials(cfg) == 6  # 3 samples x 2 grid values
    dom = {k: domain(s) for k, s in cfg.search_space.items().items()}
    assert dom["con"] == {"grid_search": [0.5, 1.0]}
    assert isinstance(dom["lr"], Categorical)
    alg = search_alg(cfg)
    assert isinstance(alg, BasicVariantGenerator) and alg.max_concurrent == 2
    more = load_config(_tune_yaml(tmp_path, "unused", search_space={
        "map": {"type": "loguniform", "low": 0.01, "high": 1.0},
        "warmup_epochs": {"type": "randint", "low": 0, "high": 3}}), TuneConfig,
        ["search.points_to_evaluate=[]"])
    d = {k: domain(s) for k, s in more.search_space.items().items()}
    assert isinstance(d["map"], Float) and d["map"].lower == 0.01
    assert isinstance(d["warmup_epochs"], Integer)
