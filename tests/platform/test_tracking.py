"""MLflow tracking against a real sqlite store in tmp_path (no mocks, no server: unit tier)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from mixhic.platform import tracking
from mlflow import MlflowClient


def _uniq(prefix: str) -> str:
    """Experiment / model names unique in a store other test modules may share."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    """This module's runs dir. The store is the session's sqlite MLFLOW_TRACKING_URI set by
    conftest (its tables are created once per session), else an embedded one here."""
    return tmp_path_factory.mktemp("mlflow") / "runs"


@pytest.fixture()
def runs(store_dir):
    """(runs_dir, tracking uri), configured for this test."""
    uri = tracking.configure(store_dir)
    yield store_dir, uri
    while mlflow.active_run() is not None:
        mlflow.end_run()


def test_default_uri_is_sqlite_under_runs_dir_unless_env(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    d = tmp_path / "a" / "runs"
    uri = tracking.default_tracking_uri(d)
    assert uri == f"sqlite:///{d.resolve()}/mlflow.db"
    assert d.is_dir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking.default_tracking_uri(d) == "http://127.0.0.1:5999"


def test_configure_twice_uses_the_new_dir(tmp_path, monkeypatch):
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI: a second configure must not
    # take that for the user's choice. (No store is opened here.)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        first = tracking.configure(tmp_path / "one")
        assert os.environ["MLFLOW_TRACKING_URI"] == first  # exported by mlflow
        other = tmp_path / "other"
        uri = tracking.configure(other)
        assert uri == f"sqlite:///{other.resolve()}/mlflow.db"
        assert mlflow.get_tracking_uri() == uri
        # an explicit URI (what a Ray Train worker is handed) wins
        explicit = f"sqlite:///{tmp_path}/given.db"
        assert tracking.configure(tmp_path / "w", tracking_uri=explicit) == explicit
        assert mlflow.get_tracking_uri() == explicit
    finally:
        mlflow.set_tracking_uri(None)
        tracking._state.update(runs_dir=None, own_uri=None)


def test_pyfunc_input_conversion():
    import pandas as pd
    from mixhic.platform.mlflow_model import to_arrays

    rng = np.random.default_rng(0)
    epi, hic = rng.random((3, 2, 8)), rng.random((3, 4, 4))
    df = pd.DataFrame({"epi": list(epi), "hic": list(hic)})
    for got in (to_arrays(df), to_arrays({"epi": epi.tolist(), "hic": hic})):
        assert got["epi"].dtype == np.float32 and got["epi"].shape == (3, 2, 8)
        np.testing.assert_allclose(got["hic"], hic.astype(np.float32))
    assert set(to_arrays({"epi": epi, "hic": None})) == {"epi"}
    with pytest.raises(ValueError, match="epi"):
        to_arrays({"hic": hic})
    with pytest.raises(ValueError, match="dict"):
        to_arrays(epi)


def test_params_metrics_config_round_trip(runs):
    exp_a = _uniq("exp-a")
    runs_dir, uri = runs

    @dataclasses.dataclass(frozen=True)
    class Opt:
        lr: float = 1e-3
        betas: tuple = (0.9, 0.95)

    cfg = {"train": {"epochs": 3, "opt": Opt()}, "data": {"path": "x" * 7000}, "seed": 1}
    with tracking.start_run(exp_a, run_name="r1", tags={"stage": "test"}) as run_id:
        logged = tracking.log_params_flat(cfg)
        tracking.log_config(cfg)
        for step in range(3):
            tracking.log_metrics({"loss": 1.0 / (step + 1), "bad": "n/a"}, step=step)
    assert set(logged) == {"train.epochs", "train.opt.lr", "train.opt.betas", "data.path", "seed"}

    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "r1"
    assert run.data.tags["stage"] == "test"
    p = run.data.params
    assert p["train.epochs"] == "3" and p["train.opt.lr"] == "0.001"
    assert p["train.opt.betas"] == "[0.9, 0.95]"
    assert len(p["data.path"]) <= 6000 and p["data.path"].endswith("...")
    hist = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in sorted(hist, key=lambda m: m.step)] == [
        (0, 1.0), (1, 0.5), (2, 1.0 / 3)]
    assert "bad" not in run.data.metrics
    # the whole config, untruncated, as a YAML artifact stored locally under runs_dir
    text = mlflow.artifacts.load_text(f"runs:/{run_id}/config.yaml")
    assert yaml.safe_load(text)["data"]["path"] == "x" * 7000
    exp = client.get_experiment_by_name(exp_a)
    assert exp.artifact_location.startswith((runs_dir / "mlartifacts").resolve().as_uri())
    assert list((runs_dir / "mlartifacts").rglob("config.yaml"))


def test_failed_block_marks_run_failed(runs):
    exp_b = _uniq("exp-b")
    _, uri = runs
    with pytest.raises(RuntimeError):
        with tracking.start_run(exp_b) as run_id:
            raise RuntimeError("boom")
    assert MlflowClient(uri).get_run(run_id).info.status == "FAILED"


def test_nested_run_has_parent(runs):
    exp_n = _uniq("exp-n")
    _, uri = runs
    with tracking.start_run(exp_n, run_name="parent") as parent:
        with tracking.start_run(exp_n, run_name="child") as child:
            pass
        # explicit parent id (as a worker process would pass it)
        with tracking.start_run(exp_n, run_name="child2", parent_run_id=parent) as child2:
            pass
    client = MlflowClient(uri)
    for c in (child, child2):
        assert client.get_run(c).data.tags["mlflow.parentRunId"] == parent
    assert "mlflow.parentRunId" not in client.get_run(parent).data.tags


def test_resume_run_by_id(runs):
    exp_r = _uniq("exp-r")
    _, uri = runs
    with tracking.start_run(exp_r) as run_id:
        tracking.log_metrics({"loss": 2.0}, step=0)
    with tracking.start_run(exp_r, run_id=run_id) as again:
        tracking.log_metrics({"loss": 1.0}, step=1)
    assert again == run_id
    assert len(MlflowClient(uri).get_metric_history(run_id, "loss")) == 2


def test_log_figure(runs):
    exp_f = _uniq("exp-f")
    from mixhic.platform.plots import loss_curves_figure

    _, uri = runs
    with tracking.start_run(exp_f) as run_id:
        tracking.log_figure(loss_curves_figure({"train": [3, 2, 1]}), "plots/loss.png")
    names = [f.path for f in MlflowClient(uri).list_artifacts(run_id, "plots")]
    assert names == ["plots/loss.png"]


def _write_tiny_model_dir(path: Path) -> Path:
    """A state_dict in safetensors + a mixhic.json (contract format), no model package."""
    import torch
    from safetensors.torch import save_file

    path.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    save_file({"head.weight": torch.randn(4, 3, generator=g), "head.bias": torch.zeros(4)},
              str(path / "model.safetensors"))
    # model_config is not a real MixHicConfig: MLflow's load-and-predict check of the
    # input example fails fast (a logged warning) instead of building a model.
    meta = {"kind": "finetune", "task": "cage", "mode": "epi", "model_config": {"fake": 1},
            "preset": "tiny", "data": {"window_bins": 10, "epi_bins": 20, "n_tracks": 2},
            "run_id": None, "epoch": 1, "metrics": {}}
    (path / "mixhic.json").write_text(json.dumps(meta))
    return path


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_register_model_alias_and_download_byte_identical(runs, tmp_path):
    reg = _uniq("mixhic-test")
    exp_m = _uniq("exp-m")
    _, uri = runs
    model_dir = _write_tiny_model_dir(tmp_path / "model")
    (model_dir / "train_state.pt").write_bytes(b"optimizer pickle")  # must not be logged
    example = {"epi": np.zeros((2, 2, 40), np.float32)}
    out = np.zeros((2, 10), np.float32)
    with tracking.start_run(exp_m) as run_id:
        mv = tracking.log_and_register_model(model_dir, reg, example,
                                             alias="champion", output_example=out)
    assert mv.name == reg and str(mv.version) == "1"
    assert mv.run_id == run_id
    client = MlflowClient(uri)
    assert str(client.get_model_version_by_alias(reg, "champion").version) == "1"
    # nothing pickled: the pyfunc is code, weights are safetensors
    got = tracking.download_model_dir(f"models:/{reg}@champion", tmp_path / "dl")
    for f in tracking.MODEL_FILES:
        assert _digest(got / f) == _digest(model_dir / f)
    model_root = got
    while not (model_root / "MLmodel").is_file():
        model_root = model_root.parent
    assert not list(model_root.rglob("*.pkl")) and not list(model_root.rglob("*.pt"))
    mlmodel = yaml.safe_load((model_root / "MLmodel").read_text())
    assert mlmodel["signature"]["inputs"] and mlmodel["signature"]["outputs"]
    # a second registration is version 2; the alias stays until moved
    with tracking.start_run(exp_m):
        mv2 = tracking.log_and_register_model(model_dir, reg, example,
                                              output_example=out)
    assert str(mv2.version) == "2"
    assert str(client.get_model_version_by_alias(reg, "champion").version) == "1"
    # a local directory passes through
    assert tracking.download_model_dir(model_dir) == model_dir


def test_register_rejects_incomplete_model_dir(runs, tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(FileNotFoundError, match="mixhic.json"):
        tracking.log_and_register_model(tmp_path / "m", "x", {"epi": np.zeros((1, 2, 4))})


def _models_ready() -> str | None:
    try:
        import mixhic.platform.checkpoints  # noqa: F401
        from mixhic.models import FinetuneModel, get_preset  # noqa: F401
    except ImportError as e:
        return f"models/checkpoints package not ready yet: {e}"
    return None


@pytest.mark.skipif(_models_ready() is not None, reason=str(_models_ready()))
def test_pyfunc_load_and_predict_matches_model(runs, tmp_path):
    reg = _uniq("mixhic-loops")
    exp_p = _uniq("exp-p")
    import torch
    from mixhic.models import FinetuneModel, get_preset
    from mixhic.platform.checkpoints import load_model_dir, save_model_dir

    cfg = get_preset("tiny", window_bins=50, epi_bins=2500, n_tracks=2)
    torch.manual_seed(0)
    model = FinetuneModel(cfg, task="loops", mode="bimodal").eval()
    meta = {"kind": "finetune", "task": "loops", "mode": "bimodal",
            "model_config": dataclasses.asdict(cfg), "preset": "tiny",
            "data": {"window_bins": 50, "epi_bins": 2500, "n_tracks": 2}, "run_id": None,
            "epoch": 0, "metrics": {}}
    model_dir = save_model_dir(tmp_path / "model", model, meta)
    rng = np.random.default_rng(0)
    example = {"epi": rng.random((2, 2, 5000), dtype=np.float32),
               "hic": rng.random((2, 50, 50), dtype=np.float32)}
    with tracking.start_run(exp_p):
        tracking.log_and_register_model(model_dir, reg, example, alias="champion")
    pyfunc = mlflow.pyfunc.load_model(f"models:/{reg}@champion")
    got = pyfunc.predict(example)
    with torch.no_grad():
        want = torch.sigmoid(model(torch.from_numpy(example["epi"]),
                                   hic=torch.from_numpy(example["hic"]))).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    loaded, _ = load_model_dir(tracking.download_model_dir(f"models:/{reg}@champion"))
    assert loaded.state_dict().keys() == model.state_dict().keys()


def test_predict_arrays_passes_the_anchor_offset():
    """Off-diagonal windows: ``offset`` (bins) reaches the model, whose map head reads each
    pixel's genomic distance from it; a wrong length is refused naming it."""
    import torch
    from mixhic.models import FinetuneModel, get_preset
    from mixhic.platform.mlflow_model import predict_arrays

    cfg = get_preset("tiny", window_bins=20, epi_bins=40, n_tracks=2)
    torch.manual_seed(0)
    model = FinetuneModel(cfg, task="hic", mode="infer").eval()
    model.head.init_expected([0, 5, 40], [1.0, 0.3, 0.0])  # a decay, as after training
    meta = {"kind": "finetune", "task": "hic", "mode": "infer"}
    epi = np.random.default_rng(0).random((2, 2, 80), dtype=np.float32)
    offset = np.array([0.0, 30.0], np.float32)
    got = predict_arrays(model, meta, {"epi": epi, "offset": offset})
    with torch.no_grad():
        want = model(torch.from_numpy(epi), offset=torch.from_numpy(offset)).numpy()
        diagonal = model(torch.from_numpy(epi)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.abs(got[1] - diagonal[1]).max() > 0.1  # the distance made a difference
    with pytest.raises(ValueError, match="offset"):
        predict_arrays(model, meta, {"epi": epi, "offset": np.zeros(3, np.float32)})


def test_registered_model_takes_the_anchor_offset(runs, tmp_path):
    """The logged signature names ``offset`` (fine-tuning logs it in the example), and the
    registered pyfunc hands it to the model: an off-diagonal window comes back as the model
    predicts it at that distance, not as a diagonal one."""
    import torch
    from mixhic.models import FinetuneModel, get_preset
    from mixhic.platform.checkpoints import save_model_dir

    reg, exp_o = _uniq("mixhic-hic"), _uniq("exp-o")
    cfg = get_preset("tiny", window_bins=20, epi_bins=40, n_tracks=2)
    torch.manual_seed(0)
    model = FinetuneModel(cfg, task="hic", mode="infer").eval()
    model.head.init_expected([0, 5, 40], [1.0, 0.3, 0.0])
    meta = {"kind": "finetune", "task": "hic", "mode": "infer",
            "model_config": dataclasses.asdict(cfg), "preset": "tiny",
            "data": {"window_bins": 20, "epi_bins": 40, "n_tracks": 2}, "run_id": None,
            "epoch": 0, "metrics": {}}
    model_dir = save_model_dir(tmp_path / "model", model, meta)
    example = {"epi": np.random.default_rng(0).random((2, 2, 80), dtype=np.float32),
               "offset": np.array([0.0, 30.0], np.float32)}
    with tracking.start_run(exp_o):
        mv = tracking.log_and_register_model(model_dir, reg, example)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{reg}/{mv.version}")
    assert "offset" in pyfunc.metadata.get_input_schema().input_names()
    got = pyfunc.predict(example)
    with torch.no_grad():
        want = model(torch.from_numpy(example["epi"]),
                     offset=torch.from_numpy(example["offset"])).numpy()
        diagonal = model(torch.from_numpy(example["epi"])).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.abs(got[1] - diagonal[1]).max() > 0.1
