"""The import order of the layers: core <- models, pipelines <- platform <- serve.

``mixhic.core`` (``platform/core/``: errors, configs, runtime) imports no other mixhic
package; ``models`` (pure torch) and ``pipelines`` (data) import only core; ``platform``
(training, tracking) imports those; ``serve`` may import everything. Every import counts,
at module top or inside a function: a lazy import still ties the layers together."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# package -> (source folder, packages it may import)
LAYERS = {
    "core": ("platform/core", set()),
    "models": ("models", {"core"}),
    "pipelines": ("pipelines", {"core"}),
    "platform": ("platform", {"core", "models", "pipelines"}),
    "serve": ("serve", {"core", "models", "pipelines", "platform"}),
}


def _package_of(path: Path) -> str:
    rel = path.relative_to(ROOT).as_posix()
    if rel.startswith("platform/core/"):
        return "core"
    return rel.split("/")[0]


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            yield node.lineno, names
        elif isinstance(node, ast.Import):
            yield node.lineno, [a.name for a in node.names]


def _violations() -> list[str]:
    bad = []
    for package, (folder, allowed) in LAYERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            if _package_of(path) != package:
                continue
            for line, names in _imports(path):
                for name in names:
                    parts = name.split(".")
                    if parts[0] != "mixhic" or len(parts) < 2:
                        continue
                    target = parts[1]
                    if target in LAYERS and target != package and target not in allowed:
                        bad.append(f"{path.relative_to(ROOT)}:{line} imports mixhic.{target}")
    return sorted(set(bad))


def test_layers_import_only_downwards():
    assert not _violations(), "\n".join(_violations())


def test_the_check_sees_a_violation(tmp_path, monkeypatch):
    """The scan is not vacuous: an upward import in a model file is reported."""
    fake = tmp_path / "models"
    fake.mkdir()
    (fake / "bad.py").write_text("def f():\n    from mixhic.platform import data\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert _violations() == ["models/bad.py:2 imports mixhic.platform"]
