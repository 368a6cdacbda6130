"""The config core (``mixhic.core.config``): pydantic validation of the config dataclasses,
errors that start with the dotted key, and ``${...}`` references. Unit tests, no Ray."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from mixhic.core.config import (
    ConfigError,
    Overrides,
    as_overrides,
    build,
    check,
    interpolate,
    load_config,
    to_dict,
)
from mixhic.models.config import MixHicConfig
from mixhic.models.presets import get_preset, preset_names
from mixhic.pipelines.prepare_config import PrepareConfig
from mixhic.platform.train_config import DemoConfig, PretrainConfig


# A small config tree with every kind of field the shipped configs use (module level:
# pydantic resolves the string annotations in this module's namespace).
@dataclass(frozen=True)
class Item:
    name: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        check(self.weight >= 0, "weight", f"must be >= 0, got {self.weight}")  # relative key


@dataclass(frozen=True)
class Section:
    items: tuple[Item, ...] = ()
    mode: Literal["fast", "slow"] = "fast"
    count: int = 1
    ratio: float = 0.5
    flag: bool = False
    label: str = "x"
    pair: tuple[int, int] = (1, 2)
    limit: int | None = None
    where: str | Path = "here"
    extra: dict[str, Any] = field(default_factory=dict)
    overrides: Overrides = field(default_factory=dict)


@dataclass(frozen=True)
class Root:
    name: str
    section: Section = field(default_factory=Section)
    other: Section | None = None

    def __post_init__(self) -> None:
        check(self.name != "root", "name", "must not be 'root'")


def _error(cls: type, raw: Any, prefix: str = "") -> ConfigError:
    with pytest.raises(ConfigError) as err:
        build(cls, raw, prefix)
    return err.value


# --------------------------------------------------------------------------- messages
@pytest.mark.parametrize(("raw", "key", "text"), [
    ({"name": "n", "section": {"items": [{"name": "a"}, {"name": "b", "bogus": 1}]}},
     "section.items[1].bogus", "unknown key section.items[1].bogus (known: name, weight)"),
    ({"name": "n", "other": {"bogus": 1}}, "other.bogus", "unknown key other.bogus (known: "),
    ({"name": "n", "bogus": 1}, "bogus", "unknown key bogus (known: name, other, section)"),
    ({"section": {}}, "name", "name: required key is missing"),
    ({"name": "n", "section": {"items": [{"weight": 2}]}}, "section.items[0].name",
     "section.items[0].name: required key is missing"),
    ({"name": "n", "section": {"items": [{"name": "a", "weight": "heavy"}]}},
     "section.items[0].weight", "section.items[0].weight: expected a number, got 'heavy'"),
    ({"name": "n", "other": {"count": 2.5}}, "other.count",
     "other.count: expected an integer, got 2.5"),
    ({"name": "n", "section": {"flag": "yes"}}, "section.flag",
     "section.flag: expected true/false, got 'yes'"),
    ({"name": "n", "section": {"label": [1]}}, "section.label",
     "section.label: expected a string, got [1]"),
    ({"name": "n", "section": {"mode": "medium"}}, "section.mode",
     "section.mode: must be one of ['fast', 'slow'], got 'medium'"),
    ({"name": "n", "section": {"pair": [1, 2, 3]}}, "section.pair", "section.pair: "),
    ({"name": "n", "section": {"limit": "none"}}, "section.limit",
     "section.limit: expected an integer, got 'none'"),
    ({"name": "n", "section": {"where": 3.5j}}, "section.where", "section.where: "),
    ({"name": "n", "section": 5}, "section", "section: "),
    # a check() with a key relative to its section gets the section's path
    ({"name": "n", "section": {"items": [{"name": "a", "weight": -1}]}},
     "section.items[0].weight", "section.items[0].weight: must be >= 0, got -1.0"),
    ({"name": "n", "other": {"items": [{"name": "a"}, {"name": "b", "weight": -2}]}},
     "other.items[1].weight", "other.items[1].weight: must be >= 0"),
    ({"name": "root"}, "name", "name: must not be 'root'"),
    ({"name": "n", "other": {"overrides": ["train.epochs=1"]}}, "other.overrides",
     "other.overrides: a list of key=value strings is not read any more"),
])
def test_every_error_starts_with_its_dotted_key(raw, key, text):
    err = _error(Root, raw)
    assert err.key == key
    assert str(err).startswith(text), str(err)
    assert isinstance(err, ValueError)


def test_the_prefix_leads_every_key():
    err = _error(Item, {"name": "a", "weight": -1}, prefix="scan.items[2]")
    assert (err.key, str(err)) == ("scan.items[2].weight",
                                   "scan.items[2].weight: must be >= 0, got -1.0")
    assert _error(Item, {"nme": "a"}, prefix="scan").key == "scan.nme"


def test_all_problems_are_reported_the_first_key_kept():
    err = _error(Root, {"name": "n", "section": {"count": "many", "ratio": "half"}})
    assert err.key == "section.count"
    assert "section.count: expected an integer" in str(err)
    assert "section.ratio: expected a number" in str(err)


def test_shipped_configs_name_file_and_key():
    with pytest.raises(ConfigError, match=r"^prepare-demo\.yaml: unknown key inputs\.hic\.bogus "
                                          r"\(known: .*resolution"):
        load_config("prepare-demo", PrepareConfig, {"inputs.hic.bogus": 1})
    with pytest.raises(ConfigError, match=r"^demo-pretrain\.yaml: optim\.lr: expected a number, "
                                          r"got 'fast'") as err:
        load_config("demo-pretrain", PretrainConfig, ["optim.lr=fast"])
    assert err.value.key == "optim.lr"
    with pytest.raises(ConfigError, match=r"^demo\.yaml: pretrain_overrides: a list of key=value"):
        load_config("demo", DemoConfig, ["pretrain_overrides=[train.epochs=1]"])


# --------------------------------------------------------------------------- type rules
def _section(**values: Any) -> Section:
    return build(Root, {"name": "n", "section": values}).section


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("flag", True, True),
    ("count", 3, 3),
    ("count", 3.0, 3),  # YAML 3.0 or 1.0e+3 for an integer
    ("ratio", 2, 2.0),
    ("ratio", "1e-4", 1e-4),  # PyYAML reads 1e-4 as text
    ("label", 2024, "2024"),  # name: 2024
    ("label", 0.5, "0.5"),
    ("pair", [3, 4], (3, 4)),
    ("items", [{"name": "a"}], (Item("a"),)),
    ("limit", None, None),
    ("limit", 7, 7),
    ("where", "there", "there"),
    ("where", Path("p"), Path("p")),
    ("extra", {"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}),
    ("overrides", {"train": {"epochs": 1}, "data.x": 2}, {"train.epochs": 1, "data.x": 2}),
])
def test_values_yaml_gives_are_taken(name, value, expected):
    got = getattr(_section(**{name: value}), name)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(("name", "value"), [
    ("flag", 1), ("flag", "true"), ("flag", None),
    ("count", True), ("count", "3"), ("count", 3.5),
    ("ratio", True), ("ratio", "fast"), ("ratio", None),
    ("label", True), ("label", None),
    ("pair", "ab"), ("pair", [1]),
    ("mode", "FAST"),
    ("items", [{"name": "a", "weight": False}]),
])
def test_values_of_the_wrong_type_are_refused(name, value):
    err = _error(Root, {"name": "n", "section": {name: value}})
    assert err.key.startswith(f"section.{name}")


def test_an_instance_is_taken_as_is_even_inside_a_mapping():
    section = Section(count=4)
    assert build(Section, section) is section
    assert build(Root, {"name": "n", "section": section}).section is section


def test_overrides_field_stays_flat_and_refuses_lists():
    assert build(DemoConfig, {"pretrain_overrides": {"train": {"epochs": 1}}}
                 ).pretrain_overrides == {"train.epochs": 1}
    with pytest.raises(ConfigError) as err:
        build(DemoConfig, {"finetune_overrides": ["data.data_dir=d"]})
    assert err.value.key == "finetune_overrides"
    assert str(err.value) == str(pytest.raises(ConfigError, as_overrides, ["data.data_dir=d"],
                                               "finetune_overrides").value)


# --------------------------------------------------------------------------- round trips
def _yaml_round_trip(cfg: Any) -> Any:
    """The config as a YAML file would hold it (tuples as lists, floats as text)."""
    return yaml.safe_load(yaml.safe_dump(to_dict(cfg)))


@pytest.mark.parametrize("name", preset_names())
def test_model_presets_round_trip(name):
    """``mixhic.models.config`` stays pure torch; platform code validates it with ``build``."""
    cfg = get_preset(name)
    assert build(MixHicConfig, to_dict(cfg)) == cfg
    assert build(MixHicConfig, _yaml_round_trip(cfg)) == cfg
    changed = dataclasses.replace(cfg, hic_depths=tuple(d + 1 for d in cfg.hic_depths))
    assert build(MixHicConfig, to_dict(changed)) == changed != cfg


def test_model_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"^model\.embed_dim: expected an integer"):
        build(MixHicConfig, {"embed_dim": "wide"}, prefix="model")
    with pytest.raises(ConfigError, match=r"^unknown key model\.embed_dimm \(known: "):
        build(MixHicConfig, {"embed_dimm": 8}, prefix="model")


# --------------------------------------------------------------------------- references
def test_interpolate_resolves_typed_embedded_and_chained_references():
    raw = {"base": {"lr": 1e-3, "epochs": 4, "tags": ["a", "b"]},
           "optim": {"lr": "${base.lr}", "name": "lr=${base.lr}, ${base.epochs} epochs"},
           "chain": "${optim.lr}", "section": "${base}",
           "escaped": "$${base.lr} and ${ base.epochs }"}
    got = interpolate(raw)
    assert got["optim"]["lr"] == 1e-3 and got["chain"] == 1e-3  # a value, typed
    assert got["optim"]["name"] == "lr=0.001, 4 epochs"  # text
    assert got["section"] == raw["base"] and got["section"] is not raw["base"]
    assert got["escaped"] == "${base.lr} and 4"
    assert raw["optim"]["lr"] == "${base.lr}"  # the input is left alone


@pytest.mark.parametrize(("raw", "key", "text"), [
    ({"train": {"lr": 1}, "finetune": {"lr": "${train.lr2}"}}, "finetune.lr",
     "finetune.lr: ${train.lr2}: no such key"),
    ({"a": "x${b.c}y", "b": 1}, "a", "a: ${b.c}: no such key"),
    ({"a": "${b}", "b": "${c}", "c": "${a}"}, "c", "c: ${a}: reference cycle (a -> b -> c -> a)"),
    ({"a": {"b": "${a}"}}, "a.b", "a.b: ${a}: reference cycle"),
    ({"a": ["${a}"]}, "a[0]", "a[0]: ${a}: reference cycle"),
])
def test_a_missing_or_cyclic_reference_names_its_key(raw, key, text):
    with pytest.raises(ConfigError) as err:
        interpolate(raw)
    assert err.value.key == key and str(err.value).startswith(text), str(err.value)


def test_load_config_resolves_references_in_yaml_and_overrides(tmp_path):
    path = tmp_path / "pre.yaml"
    path.write_text("data: {data_dir: runs/d, batch_size: 8,\n"
                    "       eval_batch_size: '${data.batch_size}'}\n"
                    "train: {epochs: 3}\n"
                    "optim: {lr: 2.0e-4, weight_decay: '${optim.lr}'}\n"
                    "run: {run_name: 'bs${data.batch_size}-e${train.epochs}'}\n")
    cfg = load_config(path, PretrainConfig)
    assert cfg.data.eval_batch_size == 8 and cfg.optim.weight_decay == pytest.approx(2e-4)
    assert cfg.run.run_name == "bs8-e3"
    cfg = load_config(path, PretrainConfig, ["train.epochs=5", "optim.lr=${optim.warmup_epochs}",
                                             "optim.warmup_epochs=0.25"])
    assert cfg.run.run_name == "bs8-e5"  # resolved after the overrides
    assert cfg.optim.lr == cfg.optim.weight_decay == 0.25
    with pytest.raises(ConfigError, match=r"^pre\.yaml: optim\.lr: \$\{train\.lr2\}: no such key"):
        load_config(path, PretrainConfig, ["optim.lr=${train.lr2}"])


def test_command_line_references():
    """``mixhic pretrain demo-pretrain run.run_name=e${train.epochs}`` (and without CONFIG)."""
    from mixhic.core.cliargs import ConfigCommand
    from mixhic.platform.pretrain import config_from_args

    cfg = config_from_args(["demo-pretrain", "train.epochs=6", "run.run_name=e${train.epochs}"])
    assert cfg.run.run_name == "e6"
    cmd = ConfigCommand("t", "t", default_config=None, config_class=Item)
    assert cmd.config_from_args(["name=${weight}", "weight=2"]) == Item("2", 2.0)


def test_a_reference_for_an_overridden_config_is_escaped():
    """References inside an Overrides mapping resolve in the config holding them; ``$${``
    passes one on to the config it overrides (the demo's pretrain config here)."""
    demo = load_config("demo", DemoConfig, ["pretrain_overrides.run.run_name=e$${train.epochs}",
                                            "pretrain_overrides.train.epochs=${seed}", "seed=2"])
    assert demo.pretrain_overrides == {"run.run_name": "e${train.epochs}", "train.epochs": 2}
    pre = load_config("demo-pretrain", PretrainConfig, demo.pretrain_overrides)
    assert (pre.train.epochs, pre.run.run_name) == (2, "e2")


# --------------------------------------------------------------------------- import cost
def test_importing_the_config_core_does_not_import_pydantic():
    """pydantic is imported on the first build (see ``_validator``), not by the modules the
    CLI imports to parse its arguments."""
    code = ("import sys, mixhic.core.config, mixhic.core.cliargs, mixhic.platform.train_config\n"
            "assert 'pydantic' not in sys.modules, 'pydantic imported'\n"
            "from mixhic.core.config import build\n"
            "from mixhic.platform.train_config import TrainConfig\n"
            "build(TrainConfig, {'epochs': 2})\n"
            "assert 'pydantic' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
