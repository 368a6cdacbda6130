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


# --- defaults: shipped YAML beside each config module (mixhic.core.config.shipped_defaults)

#: The modules whose dataclasses are run configs: their defaults live in ``<stem>.defaults.yaml``.
CONFIG_MODULES = ("platform/train_config.py", "platform/tune_config.py",
                  "pipelines/prepare_config.py", "pipelines/simulate.py", "serve/config.py",
                  "models/config.py")


def _dataclass_defaults_in_code(path: Path) -> list[str]:
    """``Class.field`` of every dataclass field in ``path`` given a default in code, other
    than a nested section's ``field(default_factory=Section)``."""
    import ast

    tree = ast.parse(path.read_text())
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    found = []
    for node in tree.body:
        if not (isinstance(node, ast.ClassDef)
                and any("dataclass" in ast.unparse(d) for d in node.decorator_list)):
            continue
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and stmt.value is not None):
                continue
            v = stmt.value
            nested = (isinstance(v, ast.Call) and ast.unparse(v.func).endswith("field")
                      and [k.arg for k in v.keywords] == ["default_factory"]
                      and isinstance(v.keywords[0].value, ast.Name)
                      and v.keywords[0].value.id in classes)
            if not nested:
                found.append(f"{node.name}.{stmt.target.id} = {ast.unparse(v)}")
    return found


@pytest.mark.parametrize("module", CONFIG_MODULES)
def test_config_defaults_live_in_shipped_yaml_not_code(module):
    """No run-config field carries its default in code; every default in the module's
    ``.defaults.yaml`` is the one the class has, and every key there is a field."""
    import importlib

    path = Path(__file__).resolve().parents[2] / module
    assert _dataclass_defaults_in_code(path) == []
    table = yaml.safe_load(path.with_name(f"{path.stem}.defaults.yaml").read_text())
    top, name = module.split("/")
    package = {"platform": "mixhic.platform", "pipelines": "mixhic.pipelines",
               "serve": "mixhic.serve", "models": "mixhic.models"}[top]
    mod = importlib.import_module(f"{package}.{name[:-3]}")
    assert table, module
    for cls_name, values in table.items():
        fields = {f.name: f for f in dataclasses.fields(getattr(mod, cls_name))}
        for key, value in values.items():
            f = fields[key]
            default = (f.default if f.default is not dataclasses.MISSING
                       else f.default_factory())
            expected = tuple(value) if isinstance(default, tuple) else value
            assert default == expected and type(default) is type(expected), (cls_name, key)


def test_every_yaml_of_a_package_ships_in_it():
    """pyproject's package-data takes every YAML file of an installed package: each config
    module's ``.defaults.yaml``, the preset tables, the shipped configs."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    tool = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = {root / d: pkg for pkg, d in tool["package-dir"].items()}
    dirs[root / "platform" / "configs"] = "mixhic.platform.configs"
    files = [f for d in dirs for f in sorted(d.glob("*.yaml"))]
    assert sum(f.name.endswith(".defaults.yaml") for f in files) == len(CONFIG_MODULES)
    assert {"presets.yaml", "simulate.presets.yaml", "demo.yaml"} <= {f.name for f in files}
    for f in files:
        pkg = dirs[f.parent]
        assert any(f.match(g) for g in tool["package-data"].get(pkg, [])), (f, pkg)


def _import_config_module(tmp_path: Path, monkeypatch, source: str, defaults: str | None,
                          name: str):
    """Import ``source`` as module ``name`` from ``tmp_path``, its ``.defaults.yaml`` beside
    (in ``sys.modules`` for the test: pydantic resolves its annotations there)."""
    import importlib.util
    import textwrap

    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    if defaults is not None:
        (tmp_path / f"{name}.defaults.yaml").write_text(textwrap.dedent(defaults))
    spec = importlib.util.spec_from_file_location(name, tmp_path / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, mod)
    spec.loader.exec_module(mod)
    return mod


_SECTION = """
    from __future__ import annotations
    from dataclasses import dataclass, field
    from mixhic.core.config import shipped_defaults

    @dataclass(frozen=True)
    @shipped_defaults
    class Section:
        name: str
        steps: tuple[int, ...]
        mix: dict[str, float]
        rate: float{code_default}

    @dataclass(frozen=True)
    @shipped_defaults
    class Root:
        required: str
        section: Section = field(default_factory=Section)
    """


def test_shipped_defaults_are_read_from_the_yaml_beside_the_module(tmp_path, monkeypatch):
    mod = _import_config_module(tmp_path, monkeypatch, _SECTION.format(code_default=""), """
        Section: {name: a, steps: [1, 2], mix: {x: 1.0}, rate: 0.5}
        """, "cfg_ok")
    one, two = mod.Root("r"), mod.Root("r")
    assert one.section == mod.Section("a", (1, 2), {"x": 1.0}, 0.5)
    assert one.section.mix is not two.section.mix  # a mapping is copied per instance
    with pytest.raises(TypeError, match="required"):  # left out of the YAML: still required
        mod.Root()
    other = _import_config_module(tmp_path, monkeypatch, _SECTION.format(code_default=""), """
        Section: {name: b, steps: [3], mix: {}, rate: 2.0}
        """, "cfg_other")
    assert other.Root("r").section == other.Section("b", (3,), {}, 2.0)
    built = build(other.Root, {"required": "r", "section": {"rate": 4}})
    assert built.section.rate == 4.0 and built.section.steps == (3,)


@pytest.mark.parametrize("code_default, yaml_text, text", [
    ("", "Section: {name: a, steps: [], mix: {}, rat: 0.5}",
     r"cfg_bad\.defaults\.yaml: Section\.rat: no such field"),
    (" = 0.5", "Section: {name: a, steps: [], mix: {}, rate: 0.5}",
     r"cfg_bad\.defaults\.yaml: Section\.rate: also given a default in code"),
    ("", "Section: [a, b]", r"cfg_bad\.defaults\.yaml: Section: expected a mapping"),
])
def test_a_bad_defaults_file_names_file_class_and_key(tmp_path, monkeypatch, code_default,
                                                      yaml_text, text):
    with pytest.raises(ConfigError, match=text):
        _import_config_module(tmp_path, monkeypatch, _SECTION.format(code_default=code_default),
                              yaml_text, "cfg_bad")


def test_a_missing_defaults_file_names_it(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"cfg_none\.defaults\.yaml: the defaults of "
                                          r"cfg_none's configs are missing"):
        _import_config_module(tmp_path, monkeypatch, _SECTION.format(code_default=""), None,
                              "cfg_none")
