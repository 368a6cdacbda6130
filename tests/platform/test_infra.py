"""infra/: every file parses, and the commands, configs, import paths and override keys
it references exist in the package; nothing binds the dashboard/Serve publicly unnoted."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
import yaml
from mixhic.core.config import as_overrides, load_config, shipped_configs
from mixhic.platform.cli import COMMANDS

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
YAML_FILES = sorted(p for p in INFRA.rglob("*.y*ml"))
DOCKERFILES = sorted(p for p in INFRA.rglob("Dockerfile"))
TEXT_FILES = YAML_FILES + DOCKERFILES + [REPO / "README.md"]  # "Run on a cluster" lives there

# Commands whose CONFIG (shipped name or YAML path) the files write first, before any flag.
# (every command but submit: `mixhic COMMAND [CONFIG] [key=value ...] [flags]`)
CONFIG_COMMANDS = {"prepare", "pretrain", "finetune", "evaluate", "tune", "predict", "ablate",
                   "serve", "demo"}
# Config classes for validating `key=value` overrides found in infra files.
CONFIG_CLASSES = {
    "prepare": "mixhic.pipelines.prepare:PrepareConfig",
    "pretrain": "mixhic.platform.train_config:PretrainConfig",
    "finetune": "mixhic.platform.train_config:FinetuneConfig",
    "tune": "mixhic.platform.tune_config:TuneConfig",
    "evaluate": "mixhic.platform.train_config:EvaluateConfig",
    "serve": "mixhic.serve.config:ServeConfig",
}
# `mixhic CMD ...` where a command starts: line start (after comment/prompt/list marks),
# after a shell separator, a YAML key, or a Dockerfile RUN.
_CMD = re.compile(
    r"(?:^|&&|;|\||\$\(|`|entrypoint:|RUN)[\s#$>-]*mixhic[ \t]+(?P<args>[^\n`#;&|)]*)",
    re.M,
)


def _load(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _yaml_docs(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _placeholders(text: str) -> str:
    """Angle-bracket placeholders (<BUCKET>) become plain words for shlex."""
    return re.sub(r"<([A-Z_]+)>", r"\1", text)


def _commands(text: str) -> list[list[str]]:
    """Every ``mixhic ...`` invocation in ``text`` as argv (without 'mixhic'); a
    ``mixhic submit ... -- CMD ...`` also yields ``[CMD, ...]``."""
    out = []
    for m in _CMD.finditer(_placeholders(text)):
        argv = shlex.split(m.group("args").strip().rstrip("\\"))
        out.append(argv)
        if argv and argv[0] == "submit" and "--" in argv:
            out.append(argv[argv.index("--") + 1 :])
    return out


def _all_commands() -> list[tuple[Path, list[str]]]:
    found = []
    for path in TEXT_FILES:
        text = path.read_text()
        found += [(path, argv) for argv in _commands(text)]
        if path.suffix in (".yaml", ".yml"):  # folded YAML strings (RayJob entrypoints)
            for doc in _yaml_docs(path):
                entry = (doc.get("spec") or {}).get("entrypoint") if isinstance(doc, dict) else None
                if entry:
                    found += [(path, argv) for argv in _commands(entry)]
    return found


def test_infra_has_the_promised_files():
    names = {p.relative_to(INFRA).as_posix() for p in INFRA.rglob("*") if p.is_file()}
    for required in ("Dockerfile", "cluster-aws.yaml", "kuberay/raycluster.yaml",
                     "kuberay/rayjob-prepare.yaml", "kuberay/rayjob-pretrain.yaml",
                     "kuberay/rayservice.yaml", "mlflow/mlflow.yaml", "mlflow/Dockerfile",
                     "README.md"):
        assert required in names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_yaml_parses(path):
    docs = _yaml_docs(path)
    assert docs and all(isinstance(d, dict) for d in docs)
    for doc in docs:
        if "apiVersion" in doc:  # a Kubernetes object
            assert doc.get("kind") and doc.get("metadata", {}).get("name"), path
    assert "CHANGE" in path.read_text(), f"{path}: say where a user must change something"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_dockerfile_parses(path):
    known = {"FROM", "ARG", "RUN", "COPY", "ADD", "ENV", "WORKDIR", "USER", "EXPOSE",
             "ENTRYPOINT", "CMD", "LABEL", "SHELL", "HEALTHCHECK", "VOLUME"}
    logical, lines = "", []
    for raw in path.read_text().splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        logical += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            lines.append(logical.strip())
            logical = ""
    assert not logical, f"{path}: dangling line continuation"
    instructions = [line.split()[0] for line in lines]
    assert set(instructions) <= known, set(instructions) - known
    assert "FROM" in instructions
    for line in lines:
        if line.startswith("COPY") and "--from" not in line:
            for src in line.split()[1:-1]:
                if not src.startswith("--"):
                    assert (REPO / src).exists(), f"{path}: COPY source {src} not in the repo"


def test_main_image_installs_the_package_without_putting_the_repo_on_sys_path():
    text = (INFRA / "Dockerfile").read_text()
    assert re.search(r"pip install[^\n]*/tmp/mixhic-src", text)
    assert "PYTHONPATH" not in text and "pip install -e" not in text
    assert "RAY_AUTH_MODE=token" in text
    ray_pin = re.search(r"rayproject/ray:(\d+\.\d+)", text).group(1)
    assert f"ray[data,train,tune,serve]>={ray_pin}" in (REPO / "pyproject.toml").read_text()


def test_every_referenced_command_and_config_exists():
    found = _all_commands()
    assert len(found) >= 5, "infra files should show the mixhic commands they run"
    configs = set(shipped_configs())
    for path, argv in found:
        if not argv or argv[0].startswith("-") or argv[0].isupper():  # COMMAND: the form
            continue
        cmd, rest = argv[0], argv[1:]
        assert cmd in COMMANDS, f"{path}: `mixhic {cmd}` is not a command ({sorted(COMMANDS)})"
        # CONFIG is optional: a first bare word (a flag's value is not one)
        positional = rest[:1] if rest and not rest[0].startswith("-") and "=" not in rest[0] \
            else []
        if positional and positional[0].isupper():  # a placeholder in prose: CONFIG
            continue
        if positional and positional[0].endswith((".yaml", ".yml")):  # a user's own file
            continue
        if cmd in CONFIG_COMMANDS and positional:
            assert positional[0] in configs, f"{path}: config {positional[0]!r} is not shipped"
        if cmd == "simulate" and positional:  # its CONFIG is a preset
            from mixhic.pipelines.simulate import PRESETS

            assert positional[0] in PRESETS, f"{path}: {positional[0]!r} is not a preset"
        if cmd in CONFIG_CLASSES and positional:
            overrides = [a for a in rest if "=" in a and not a.startswith("-")]
            load_config(positional[0], _load(CONFIG_CLASSES[cmd]), overrides)


def test_rayjobs_run_prepare_and_pretrain():
    entries = {}
    for path in (INFRA / "kuberay").glob("rayjob-*.yaml"):
        for doc in _yaml_docs(path):
            assert doc["kind"] == "RayJob"
            entries[doc["metadata"]["name"]] = doc["spec"]["entrypoint"]
    cmds = {argv[0] for entry in entries.values() for argv in _commands(entry)}
    assert {"prepare", "pretrain"} <= cmds


def test_rayservice_matches_the_serve_app():
    docs = _yaml_docs(INFRA / "kuberay" / "rayservice.yaml")
    (service,) = [d for d in docs if d["kind"] == "RayService"]
    serve_cfg = yaml.safe_load(service["spec"]["serveConfigV2"])
    ServeConfig = _load(CONFIG_CLASSES["serve"])
    for app in serve_cfg["applications"]:
        builder = _load(app["import_path"])
        assert callable(builder)
        args = app.get("args", {})
        assert args.get("config", "serve-demo") in shipped_configs()
        overrides = {**as_overrides(args.get("overrides") or {}, "overrides"),
                     "models": list(args.get("models", []))}
        load_config(args.get("config", "serve-demo"), ServeConfig, overrides)
    shipped = REPO / "serve" / "serve-config.yaml"
    if shipped.exists():  # `serve deploy` config of the Serve app: same import path
        local = yaml.safe_load(shipped.read_text())
        assert {a["import_path"] for a in local["applications"]} == {
            a["import_path"] for a in serve_cfg["applications"]
        }
        assert local.get("http_options", {}).get("host", "127.0.0.1") == "127.0.0.1"


def test_token_auth_and_no_public_exposure():
    """Token auth on every Ray cluster; every 0.0.0.0 bind / Service is noted and ClusterIP."""
    for path in YAML_FILES:
        text = path.read_text()
        for doc in _yaml_docs(path):
            kind = doc.get("kind")
            if kind in ("RayCluster", "RayJob", "RayService"):
                spec = doc["spec"]
                if kind == "RayJob" and "clusterSelector" in spec:
                    continue
                cluster = spec.get("rayClusterSpec") or spec.get("rayClusterConfig") or spec
                assert cluster.get("authOptions", {}).get("mode") == "token", path
                assert cluster["headGroupSpec"].get("serviceType", "ClusterIP") == "ClusterIP"
            if kind == "Service":
                assert doc["spec"].get("type", "ClusterIP") == "ClusterIP", path
            assert kind != "Ingress", f"{path}: an Ingress exposes the cluster"
        if "0.0.0.0" in text.replace("0.0.0.0/0", ""):  # a CIDR in a comment is no bind
            assert "ClusterIP" in text, f"{path}: binds 0.0.0.0 without saying it stays in-cluster"
    launcher = (INFRA / "cluster-aws.yaml").read_text()
    assert "--dashboard-host=127.0.0.1" in launcher and "RAY_AUTH_MODE=token" in launcher
    assert "0.0.0.0" not in launcher.replace("0.0.0.0/0", "")
    readme = (REPO / "README.md").read_text().split("## Run on a cluster", 1)[1]
    assert "auth_token" in readme and "127.0.0.1" in readme
