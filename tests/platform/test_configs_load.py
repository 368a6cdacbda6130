"""Every shipped config loads into its typed config (torchtune's test_configs idea)."""

from __future__ import annotations

import importlib

import pytest
from mixhic.core.config import load_config, shipped_configs

# config-name prefix -> "module:Class" (longest prefix wins)
CLASSES = {
    "demo-pretrain": "mixhic.platform.train_config:PretrainConfig",
    "paper-pretrain": "mixhic.platform.train_config:PretrainConfig",
    "demo-finetune": "mixhic.platform.train_config:FinetuneConfig",
    "paper-finetune": "mixhic.platform.train_config:FinetuneConfig",
    "demo": "mixhic.platform.train_config:DemoConfig",
    "ablate": "mixhic.platform.train_config:AblateConfig",
    "prepare": "mixhic.pipelines.prepare:PrepareConfig",
    "serve": "mixhic.serve.config:ServeConfig",
    "predict": "mixhic.serve.config:PredictConfig",
    "tune": "mixhic.platform.tune_config:TuneConfig",
}
OWN = ("demo", "demo-pretrain", "demo-finetune", "ablate-demo", "paper-pretrain",
       "paper-finetune-loops", "paper-finetune-hic", "paper-finetune-cage")


def _class_for(name: str):
    prefix = max((p for p in CLASSES if name == p or name.startswith(p + "-")), key=len,
                 default=None)
    if prefix is None:
        return None
    module, _, cls = CLASSES[prefix].partition(":")
    return getattr(importlib.import_module(module), cls)


def test_training_configs_are_shipped():
    assert set(OWN) <= set(shipped_configs())


@pytest.mark.parametrize("name", shipped_configs())
def test_shipped_config_loads(name):
    cls = _class_for(name)
    assert cls is not None, f"{name}: shipped config with no config class mapped"
    cfg = load_config(name, cls)
    assert type(cfg) is cls


def test_paper_configs_use_the_paper_model_and_gpus():
    from mixhic.platform.train_config import FinetuneConfig, PretrainConfig

    pre = load_config("paper-pretrain", PretrainConfig)
    assert pre.model.preset == "paper-128" and pre.scaling.use_gpu
    assert pre.optim.lr == pytest.approx(1e-5) and pre.loss.contrastive_warmup_epochs == 10
    for task, mode in (("loops", "bimodal"), ("hic", "infer"), ("cage", "bimodal")):
        ft = load_config(f"paper-finetune-{task}", FinetuneConfig)
        assert (ft.task, ft.mode, ft.model.preset) == (task, mode, "paper-128")


def test_demo_configs_use_the_tiny_preset():
    from mixhic.platform.train_config import FinetuneConfig, PretrainConfig

    assert load_config("demo-pretrain", PretrainConfig).model.preset == "tiny"
    assert load_config("demo-finetune", FinetuneConfig).model.preset == "tiny"
