"""Ray Tune through its public API only (in ``platform/`` and ``pipelines/``).

Private Tune internals change without notice in minor releases (the review of issue 15
found ASHA's ``self._trial_info`` and ``ResultGrid._experiment_analysis`` in use). The
check, on every module's AST:

- no import of a private Tune module or name (``ray.tune.x._y``, ``from ray.tune.x
  import _y``);
- no ``._trial_info`` / ``._experiment_analysis`` anywhere (attribute or string);
- in a module that imports Ray Tune (at top or inside a function), no access to any
  private attribute at all (``obj._x``): a Tune object's, or a Tune base class's through
  ``self``. Our own state in such modules uses public names.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("platform", "pipelines")
KNOWN_PRIVATE = {"_trial_info", "_experiment_analysis"}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _tune_module(name: str) -> bool:
    return name == "ray.tune" or name.startswith("ray.tune.")


def _tune_imports(tree: ast.AST):
    """(line, dotted names) of every import of Ray Tune in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if _tune_module(node.module):
                yield node.lineno, [node.module, *(a.name for a in node.names)]
            elif node.module == "ray" and any(a.name == "tune" for a in node.names):
                yield node.lineno, ["ray.tune"]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if _tune_module(a.name)]
            if names:
                yield node.lineno, names


def _violations(root: Path = ROOT) -> list[str]:
    bad = []
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            tree = ast.parse(path.read_text())
            imports = list(_tune_imports(tree))
            for line, names in imports:
                parts = [p for n in names for p in n.split(".")]
                if any(_private(p) for p in parts):
                    bad.append(f"{rel}:{line} imports a private Ray Tune name: {names}")
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and _private(node.attr):
                    if node.attr in KNOWN_PRIVATE or imports:
                        bad.append(f"{rel}:{node.lineno} uses the private attribute .{node.attr}")
                elif isinstance(node, ast.Constant) and node.value in KNOWN_PRIVATE:
                    bad.append(f"{rel}:{node.lineno} names the private attribute {node.value}")
    return sorted(set(bad))


def test_only_public_ray_tune_apis():
    assert not _violations(), "\n".join(_violations())


def test_the_check_sees_private_tune_use(tmp_path):
    """The scan is not vacuous: each kind of private use is reported."""
    (tmp_path / "platform").mkdir()
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "platform" / "sched.py").write_text(
        "from ray.tune.schedulers import ASHAScheduler\n"
        "from ray.tune.schedulers.async_hyperband import _Bracket\n"
        "class A(ASHAScheduler):\n"
        "    def f(self):\n"
        "        return self._metric\n")
    (tmp_path / "platform" / "table.py").write_text(
        "def rows(results):\n"
        "    return results._experiment_analysis.trials\n")
    (tmp_path / "pipelines" / "other.py").write_text(
        "def g(asha, obj):\n"
        "    obj._own = 1\n"  # a module without Ray Tune keeps its own private names
        "    return getattr(asha, '_trial_info')\n")
    assert _violations(tmp_path) == [
        "pipelines/other.py:3 names the private attribute _trial_info",
        "platform/sched.py:2 imports a private Ray Tune name: "
        "['ray.tune.schedulers.async_hyperband', '_Bracket']",
        "platform/sched.py:5 uses the private attribute ._metric",
        "platform/table.py:2 uses the private attribute ._experiment_analysis",
    ]
