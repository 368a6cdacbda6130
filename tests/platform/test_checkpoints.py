"""Model directories and training checkpoints: safetensors + JSON, round trips, errors."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from mixhic.models import FinetuneModel, PretrainModel, get_preset
from mixhic.platform import checkpoints as ck

GEOM = {"window_bins": 20, "epi_bins": 200, "n_tracks": 2}


def _cfg():
    return get_preset("tiny", **GEOM)


def _meta(kind="finetune", task="loops", mode="bimodal"):
    return {"kind": kind, "task": task, "mode": mode,
            "model_config": dataclasses.asdict(_cfg()), "preset": "tiny",
            "data": {**GEOM, "resolution": 5000, "epi_bin": 100, "tracks": ["atac", "dnase"],
                     "epi_transform": "log2p1"},
            "run_id": None, "epoch": 3, "metrics": {"val_auroc": 0.9, "bad": float("nan")}}


def _inputs(b=3):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(b, 2, 400, generator=g), torch.rand(b, 20, 20, generator=g))


@pytest.mark.parametrize(("task", "mode"), [("loops", "bimodal"), ("hic", "infer"),
                                            ("cage", "epi")])
def test_finetune_model_dir_round_trip(tmp_path, task, mode):
    torch.manual_seed(0)
    model = FinetuneModel(_cfg(), task=task, mode=mode).eval()
    path = ck.save_model_dir(tmp_path / "m", model, _meta(task=task, mode=mode))
    assert sorted(p.name for p in path.iterdir()) == [ck.META_FILE, ck.MODEL_FILE]
    loaded, meta = ck.load_model_dir(path)
    assert meta["task"] == task and meta["epoch"] == 3
    assert meta["metrics"]["bad"] is None  # NaN is stored as JSON null
    assert not loaded.training
    epi, hic = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(epi, hic), model(epi, hic), rtol=0, atol=0)


def test_weights_are_plain_safetensors(tmp_path):
    from safetensors import safe_open

    model = PretrainModel(_cfg())
    path = ck.save_model_dir(tmp_path / "p", model, _meta("pretrain", None, None))
    with safe_open(str(path / ck.MODEL_FILE), framework="pt") as f:
        assert set(f.keys()) == set(model.state_dict())
    assert json.loads((path / ck.META_FILE).read_text())["kind"] == "pretrain"


def test_ddp_style_wrapper_is_unwrapped(tmp_path):
    class Wrapper(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    model = FinetuneModel(_cfg(), task="loops", mode="epi")
    path = ck.save_model_dir(tmp_path / "w", Wrapper(model), _meta(mode="epi"))
    loaded, _ = ck.load_model_dir(path)
    assert set(loaded.state_dict()) == set(model.state_dict())


@pytest.mark.parametrize(
    ("change", "needle"),
    [({"kind": "other"}, "kind"), ({"model_config": None}, "model_config"),
     ({"task": None}, "task"), ({"data": {"window_bins": 20}}, "data")],
)
def test_bad_meta_is_refused(tmp_path, change, needle):
    model = FinetuneModel(_cfg(), task="loops", mode="epi")
    with pytest.raises(ValueError, match=needle):
        ck.save_model_dir(tmp_path / "x", model, {**_meta(mode="epi"), **change})


def test_load_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        ck.load_model_dir(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="mixhic.json"):
        ck.load_model_dir(tmp_path / "empty")
    path = ck.save_model_dir(tmp_path / "m", FinetuneModel(_cfg(), "loops", "epi"),
                             _meta(mode="epi"))
    meta = json.loads((path / ck.META_FILE).read_text())
    meta["mode"] = "bimodal"  # weights no longer match the declared model
    (path / ck.META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not match"):
        ck.load_model_dir(path)


def test_train_checkpoint_resumes_optimizer_and_scheduler(tmp_path):
    torch.manual_seed(0)
    model = FinetuneModel(_cfg(), task="loops", mode="epi")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    epi, _ = _inputs(4)
    for _ in range(3):
        opt.zero_grad()
        model.loss(model(epi), torch.tensor([0.0, 1.0, 0.0, 1.0])).backward()
        opt.step()
        sched.step()
    state = {"epoch": 2, "best_score": 0.7, "history": [{"epoch": 0}]}
    ck.save_train_checkpoint(tmp_path / "c", model, _meta(mode="epi"), opt, sched, state)

    model2 = FinetuneModel(_cfg(), task="loops", mode="epi")
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-3)
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, lambda s: 1.0 / (1 + s))
    got = ck.load_train_checkpoint(tmp_path / "c", model2, opt2, sched2)
    assert got == state
    assert sched2.last_epoch == sched.last_epoch and sched2.get_last_lr() == sched.get_last_lr()
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    torch.testing.assert_close(s1[0]["exp_avg"], s2[0]["exp_avg"], rtol=0, atol=0)
    # the model-dir part alone is a loadable model directory
    loaded, meta = ck.load_model_dir(tmp_path / "c")
    assert meta["epoch"] == 3


def test_copy_model_dir_keeps_only_model_files(tmp_path):
    model = FinetuneModel(_cfg(), task="loops", mode="epi")
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    ck.save_train_checkpoint(tmp_path / "c", model, _meta(mode="epi"), opt, sched, {"epoch": 0})
    out = ck.copy_model_dir(tmp_path / "c", f"file://{tmp_path}/out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [ck.META_FILE, ck.MODEL_FILE]
    assert str(out).endswith("out")
