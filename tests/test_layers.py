"""The import order of the layers: core <- models, pipelines <- platform <- serve <- api.

``mixhic.core`` (``platform/core/``: errors, configs, runtime) imports no other mixhic
package; ``models`` (pure torch) and ``pipelines`` (data) import only core; ``platform``
(training, tracking) imports those; ``serve`` imports those; the top-level package
``mixhic`` (``platform/api/``: the notebook API ``mixhic.prepare``, ``load_model``,
``predict_region``, a facade over the others) may import everything, and nothing imports
it (``from mixhic import prepare`` and ``mixhic._predict`` are the api layer). Every
import counts, at module top or inside a function: a lazy import still ties the layers
together."""

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
    "api": ("platform/api", {"core", "models", "pipelines", "platform", "serve"}),
}


def _package_of(path: Path) -> str:
    rel = path.relative_to(ROOT).as_posix()
    if rel.startswith("platform/core/"):
        return "core"
    if rel.startswith("platform/api/"):
        return "api"
    return rel.split("/")[0]


def _layer_of(name: str) -> str | None:
    """The layer a dotted ``mixhic.X...`` name belongs to (None: not mixhic, or bare)."""
    parts = name.split(".")
    if parts[0] != "mixhic" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS and parts[1] != "api" else "api"


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
            if node.module != "mixhic":  # from mixhic import X: X names the layer
                names.insert(0, node.module)
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
                    target = _layer_of(name)
                    if target is not None and target != package and target not in allowed:
                        shown = "mixhic (api)" if target == "api" else f"mixhic.{target}"
                        bad.append(f"{path.relative_to(ROOT)}:{line} imports {shown}")
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


def test_the_check_sees_an_import_of_the_api(tmp_path, monkeypatch):
    """The top-level package is the top layer: serve (or anything below) importing it, by
    ``from mixhic import ...`` or its modules, is reported; it may import serve."""
    for folder, text in (("serve", "from mixhic import predict_region\n"),
                         ("platform", "import mixhic._predict\n"),
                         ("platform/api", "from mixhic.serve import viewer\nimport mixhic\n"),
                         ("pipelines", "from mixhic import core\n")):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "m.py").write_text(text)
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert _violations() == ["platform/m.py:1 imports mixhic (api)",
                             "serve/m.py:1 imports mixhic (api)"]
