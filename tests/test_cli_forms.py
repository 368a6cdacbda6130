"""One command-line form for every command: unit tests, no Ray.

``mixhic COMMAND [CONFIG] [key=value ...] [flags]``: each command with a config exposes
``config_from_args(argv)`` (the typed config it would run, without running it) and a
``CLI`` (:class:`mixhic.core.cliargs.ConfigCommand`) whose flag aliases stand for one
``key=value`` each. The commands come from the registry in ``mixhic.platform.cli``, so a
new command is covered here without editing this file (one without a config must be
listed in :data:`NO_CONFIG`, one with required keys in :data:`REQUIRED`).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging

import pytest
import yaml
from mixhic.core.cliargs import Alias, ConfigCommand, split_global_flags
from mixhic.core.config import ConfigError, to_dict
from mixhic.core.errors import MixHicError, is_user_error
from mixhic.pipelines.simulate import simulation_params
from mixhic.platform.cli import COMMANDS, log_level, main

NO_CONFIG = {"submit"}  # commands that take no config: the global flags only
# key=value a command needs before its config builds (keys without a default)
REQUIRED = {
    "evaluate": ["model=runs/m", "data_dir=runs/d"],
    "simulate": ["out_dir=runs/sim"],
}
BAD = "no_such_key=1"


def _module(name):
    return importlib.import_module(COMMANDS[name][0])


CONFIG_COMMANDS = sorted(set(COMMANDS) - NO_CONFIG)


def test_registry_commands_have_the_form():
    """Every registered command but NO_CONFIG parses with the shared helper."""
    assert NO_CONFIG <= set(COMMANDS)
    for name in CONFIG_COMMANDS:
        module = _module(name)
        assert callable(module.cli_main), name
        assert callable(getattr(module, "config_from_args", None)), \
            f"{name}: no config_from_args(argv) (or list it in NO_CONFIG)"
        assert isinstance(module.CLI, ConfigCommand), name


def _cli(name) -> ConfigCommand:
    return _module(name).CLI


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_exits_0_and_shows_the_form(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "key=value" in out
    assert "-v/--verbose" in out and "-q/--quiet" in out  # the global flags


def test_top_level_help_states_the_form(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "mixhic COMMAND [CONFIG] [key=value ...] [flags]" in out
    assert "before or after the command" in out


@pytest.mark.parametrize("where", ["after", "before"])
@pytest.mark.parametrize("name", CONFIG_COMMANDS)
def test_verbose_anywhere_and_a_bad_key_named(name, where):
    """``-v`` after the command is taken by ``mixhic`` (the command's parser would stop
    with "unrecognized arguments"); with it, the bad key's error is raised, not folded."""
    argv = [name, BAD, "-v"] if where == "after" else ["-v", name, BAD]
    with pytest.raises((ConfigError, MixHicError), match="no_such_key") as exc:
        main(argv)
    assert is_user_error(exc.value)


@pytest.mark.parametrize("name", CONFIG_COMMANDS)
def test_quiet_after_the_command_prints_the_bad_key_in_one_line(name, caplog):
    with caplog.at_level(logging.ERROR):
        assert main([name, *REQUIRED.get(name, []), BAD, "-q"]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "no_such_key" in errors[0] and "\n" not in errors[0]


@pytest.mark.parametrize("name", CONFIG_COMMANDS)
def test_config_from_args_names_a_bad_key(name):
    parse = _module(name).config_from_args
    with pytest.raises((ConfigError, MixHicError), match="no_such_key"):
        parse([*REQUIRED.get(name, []), BAD])
    with pytest.raises(SystemExit):  # a second bare word is not key=value
        parse(["not-an-override-either", "stray"])
    assert parse(REQUIRED.get(name, [])) == parse(REQUIRED.get(name, []))  # builds


def _dotted(alias: Alias) -> list[str]:
    """The ``key=value`` an alias stands for, written by hand (not by the helper)."""
    if alias.kind == "true":
        return [f"{alias.key}=true"]
    if alias.kind == "false":
        return [f"{alias.key}=false"]
    if alias.kind in ("append", "list"):
        return [f"{alias.key}=[{alias.example}]"]
    if alias.kind == "mapping":
        name, _, value = alias.example.partition("=")
        return [f"{alias.key}.{name}={value}"]
    return [f"{alias.key}={alias.example}"]


def _alias_cases():
    for name in CONFIG_COMMANDS:
        for alias in _cli(name).aliases:
            yield pytest.param(name, alias, id=f"{name}{alias.flag}")


@pytest.mark.parametrize(("name", "alias"), list(_alias_cases()))
def test_a_flag_alias_is_its_dotted_key(name, alias):
    parse = _module(name).config_from_args
    base = REQUIRED.get(name, [])
    flag = [alias.flag] if alias.kind in ("true", "false") else [alias.flag, alias.example]
    by_flag = parse([*base, *flag])
    assert by_flag == parse([*base, *_dotted(alias)])
    assert by_flag != parse(base), f"{alias.flag} {alias.example}: changes nothing"
    assert parse([*flag, *base]) == by_flag  # flags may sit anywhere


def test_every_command_with_flags_has_aliases_of_keys():
    """The convenience flags of the commands that had them are aliases now."""
    flags = {name: {a.flag for a in _cli(name).aliases} for name in CONFIG_COMMANDS}
    assert {"--task", "--mode", "--pretrained", "--allow-mismatch"} <= flags["finetune"]
    assert {"--model", "--checkpoint", "--host", "--port"} <= flags["serve"]
    assert {"--model", "--checkpoint", "--out", "--region", "--track"} <= flags["predict"]
    assert {"--model", "--data-dir", "--split", "--no-mlflow"} <= flags["evaluate"]
    assert {"--out", "--preset", "--seed", "--overwrite"} <= flags["simulate"]


def test_submit_takes_global_flags_before_the_command_line():
    """submit has no config; its own -v/-q go before ``--``, the job's after it."""
    with pytest.raises(MixHicError, match="NOVALUE"):  # -v: raised, not folded to rc 2
        main(["submit", "--env", "NOVALUE", "-v", "--", "simulate", "out_dir=x"])
    assert main(["submit", "-q", "--env", "NOVALUE", "--", "simulate", "out_dir=x"]) == 2


# ------------------------------------------------------------------ the shared helper


def test_split_global_flags():
    assert split_global_flags(["-v", "prepare", "x", "-vv", "--quiet", "a=1"]) == (
        3, 1, ["prepare", "x", "a=1"])
    assert split_global_flags(["submit", "-q", "--", "pretrain", "-v"]) == (
        0, 1, ["submit", "--", "pretrain", "-v"])  # after --: the submitted command's
    assert split_global_flags(["prepare", "--verbose", "-vq"]) == (1, 0, ["prepare", "-vq"])


def test_log_level():
    assert log_level(0, 0) == logging.INFO and log_level(1, 0) == logging.INFO
    assert log_level(2, 0) == logging.DEBUG
    assert log_level(0, 1) == logging.WARNING and log_level(0, 2) == logging.ERROR


def test_parse_config_overrides_and_aliases():
    cmd = ConfigCommand("mixhic x", "X.", default_config="demo", aliases=[
        Alias("--task", "task", choices=("hic", "loops")),
        Alias("--model", "models", kind="append"), Alias("--ckpt", "models", kind="append"),
        Alias("--track", "genome.tracks", kind="mapping"),
        Alias("--no-log", "log", kind="false"),
    ])
    args = cmd.parse(["task=hic", "--ckpt", "c", "--model", "m", "--task", "loops",
                      "--track", "atac=a.bw", "a.b=[1, 2]", "--no-log"])
    assert args.config == "demo"
    assert args.overrides == {"task": "loops", "a.b": [1, 2], "models": ["m", "c"],
                              "genome.tracks.atac": "a.bw", "log": False}
    args = cmd.parse(["other.yaml", "x=0.5"])
    assert (args.config, args.overrides) == ("other.yaml", {"x": 0.5})
    with pytest.raises(SystemExit):
        cmd.parse(["demo", "extra"])
    with pytest.raises(ConfigError, match="--track 'atac'"):
        cmd.parse(["--track", "atac"])
    with pytest.raises(SystemExit):
        cmd.parse(["--task", "cage"])  # choices checked


@pytest.mark.parametrize("name", CONFIG_COMMANDS)
def test_print_config_prints_every_key_and_loads_back_as_config(name, tmp_path, capsys):
    """``--print-config`` prints the complete config (defaults filled in) and exits 0, like
    --help; the YAML it prints, given back as CONFIG, runs the same config."""
    argv = [*REQUIRED.get(name, []), *(["seed=7"] if name == "simulate" else [])]
    with pytest.raises(SystemExit) as exc:
        main([name, *argv, "--print-config"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    printed = yaml.safe_load(out)
    want = _module(name).config_from_args(argv)
    if name == "simulate":  # every simulation parameter is spelled out
        assert set(dataclasses.asdict(simulation_params("tiny"))) <= set(printed)
        assert printed["seed"] == 7
    else:
        assert printed == to_dict(want)  # every key, in the config's own nesting
    path = tmp_path / "printed.yaml"
    path.write_text(out)
    got = _module(name).config_from_args([str(path)])
    if name == "simulate":  # the same run, its parameters now all given explicitly
        def run(r):
            return r.out_dir, r.preset, r.seed, r.overwrite, simulation_params(r.preset, **r.params)
        assert run(got) == run(want)
    else:
        assert got == want
    # the help names the flag
    assert "--print-config" in _cli(name).parser.format_help()


def test_simulate_reads_a_yaml_of_keys_and_names_a_bad_one(tmp_path):
    from mixhic.pipelines.simulate import config_from_args

    path = tmp_path / "genome.yaml"
    path.write_text("preset: small\nn_chroms: 3\nout_dir: runs/g\n")
    run = config_from_args([str(path), "seed=2"])
    assert (run.preset, run.seed, run.out_dir) == ("small", 2, "runs/g")
    assert simulation_params(run.preset, **run.params).n_chroms == 3
    path.write_text("preset: small\nn_chrom: 3\n")
    with pytest.raises((ConfigError, MixHicError), match="n_chrom"):
        config_from_args([str(path), "out_dir=runs/g"])
    with pytest.raises(ConfigError, match="missing.yaml: config file not found"):
        config_from_args([str(tmp_path / "missing.yaml"), "out_dir=runs/g"])
