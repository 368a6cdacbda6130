"""Every config key that a message, help text or docstring tells the user to set
(``key.sub=value``) exists: it resolves through the fields of one of the shipped config
dataclasses. A renamed key fails here, not in front of a user."""

from __future__ import annotations

import ast
import dataclasses
import re
import typing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HINT = re.compile(r"(?<![\w./:$-])([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+)=")


def _config_roots() -> list[type]:
    from mixhic.pipelines.prepare import PrepareConfig
    from mixhic.platform.train_config import (AblateConfig, DemoConfig, EvaluateConfig,
                                              FinetuneConfig, PretrainConfig)
    from mixhic.platform.tune_config import TuneConfig
    from mixhic.serve.config import PredictConfig, ServeConfig

    return [PrepareConfig, PretrainConfig, FinetuneConfig, EvaluateConfig, AblateConfig,
            DemoConfig, TuneConfig, PredictConfig, ServeConfig]


def _resolves(cls: type, parts: list[str]) -> bool:
    """Whether ``parts`` names a field path of dataclass ``cls`` (a mapping, ``Any`` or a
    sequence field takes any remainder: its keys are free)."""
    if not parts:
        return True
    if not dataclasses.is_dataclass(cls):
        return False
    hints = typing.get_type_hints(cls)
    if parts[0] not in hints:
        return False
    tp = hints[parts[0]]
    if len(parts) == 1:
        return True
    args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    for a in args:
        origin = typing.get_origin(a) or a
        if a is typing.Any or origin in (dict, list, tuple) or (
                isinstance(origin, type) and issubclass(origin, typing.Mapping)):
            return True
        if dataclasses.is_dataclass(a) and _resolves(a, parts[1:]):
            return True
    return False


def _hints() -> list[tuple[str, int, str]]:
    found = []
    for folder in ("platform", "pipelines", "serve", "models"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    for m in HINT.finditer(node.value):
                        found.append((f"{path.relative_to(ROOT)}:{node.lineno}", 0, m.group(1)))
    return found


def test_the_scan_finds_hints():
    keys = {k for _, _, k in _hints()}
    assert {"inputs.hic.weight", "normalize.require_track_data", "train.epochs"} <= keys


def test_resolver_rejects_a_wrong_key():
    from mixhic.pipelines.prepare import PrepareConfig

    assert _resolves(PrepareConfig, ["inputs", "hic", "weight"])
    assert not _resolves(PrepareConfig, ["hic", "weight"])
    assert not _resolves(PrepareConfig, ["normalize", "require_data"])


@pytest.mark.parametrize("where,key", [(w, k) for w, _, k in _hints()])
def test_hint_names_a_real_config_key(where, key):
    roots = _config_roots()
    assert any(_resolves(cls, key.split(".")) for cls in roots), (
        f"{where}: the hint names {key!r}, which no config ({', '.join(c.__name__ for c in roots)}) "
        "has")
