"""Every shipped config loads into its typed config (torchtune's test_configs idea)."""

from __future__ import annotations

import importlib

import pytest
import yaml
from mixhic.core.config import build, load_config, shipped_configs, to_dict

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


@pytest.mark.parametrize("name", shipped_configs())
def test_shipped_config_round_trips(name):
    """``build(cls, to_dict(cfg)) == cfg``, also through YAML text (tuples written as lists,
    floats as text): what a run writes out as its config loads back as the same config."""
    cls = _class_for(name)
    cfg = load_config(name, cls)
    assert build(cls, to_dict(cfg)) == cfg
    assert build(cls, yaml.safe_load(yaml.safe_dump(to_dict(cfg)))) == cfg


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


def _config_classes() -> list[type]:
    """Every config dataclass reachable from the shipped configs' root classes."""
    import dataclasses
    import typing

    roots = {_class_for(name) for name in shipped_configs()}
    from mixhic.platform.train_config import EvaluateConfig

    todo, seen = [*roots, EvaluateConfig], []
    while todo:
        cls = todo.pop()
        if cls in seen or not dataclasses.is_dataclass(cls):
            continue
        seen.append(cls)
        for tp in typing.get_type_hints(cls).values():
            stack = [tp]
            while stack:
                t = stack.pop()
                if dataclasses.is_dataclass(t):
                    todo.append(t)
                stack.extend(typing.get_args(t))
    return seen


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [s for v in value for s in _strings(v)]
    return []


def test_config_defaults_hold_no_chromosome_names():
    """Splits, chromosome lists and the like are choices of a run: they live in the shipped
    YAML (prepare-paper, prepare-demo), never in a dataclass default."""
    import dataclasses
    import re

    chrom = re.compile(r"^(chr)?([0-9]{1,2}|[XYM]|MT)(:.*)?$", re.IGNORECASE)
    classes = _config_classes()
    assert len(classes) > 20  # the walk reaches the nested sections
    for cls in classes:
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                value = f.default
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                continue
            for s in _strings(value):
                assert not chrom.match(s) and "chr" not in s.lower(), (
                    f"{cls.__name__}.{f.name}: default {value!r} names a chromosome")


def test_splits_are_in_the_shipped_prepare_configs():
    from mixhic.pipelines.prepare_config import PrepareConfig, Splits

    assert Splits() == Splits(val=(), test=())
    paper = load_config("prepare-paper", PrepareConfig)
    assert paper.splits == Splits(val=("chr10", "chr11"), test=("chr3", "chr13", "chr17"))
    demo = load_config("prepare-demo", PrepareConfig)
    assert demo.splits == Splits(val=("chr2",), test=("chr3",))


def test_one_validation_style_names_the_dotted_key():
    """Config dataclasses validate with core.config.check: a ConfigError naming the key,
    with the section's path added when the section sits in several places."""
    from mixhic.core.config import ConfigError
    from mixhic.pipelines.prepare_config import GridPlan, PrepareConfig
    from mixhic.platform.train_config import PretrainConfig

    with pytest.raises(ConfigError, match=r"datasets\.hic\.step_bp: must be positive"):
        load_config("prepare-demo", PrepareConfig, {"datasets.hic.step_bp": 0})
    with pytest.raises(ConfigError, match=r"datasets\.loops\.negatives: unknown kind"):
        load_config("prepare-demo", PrepareConfig, {"datasets.loops.negatives": {"x": 1.0}})
    with pytest.raises(ConfigError, match=r"^demo-pretrain.yaml: data\.batch_size: must be >= 1"):
        load_config("demo-pretrain", PretrainConfig, {"data.batch_size": 0})
    with pytest.raises(ConfigError) as err:  # built in Python: the key relative to the section
        GridPlan(step_bp=0)
    assert err.value.key == "step_bp"
