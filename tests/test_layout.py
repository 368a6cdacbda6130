"""The package layout: platform/ must not shadow the standard library's platform module."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_platform_dir_is_a_namespace_package():
    assert not (REPO / "platform" / "__init__.py").exists()


def test_import_platform_from_repo_root_is_stdlib():
    code = "import platform, sys; print(platform.__file__); print(platform.python_version())"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert "site-packages" not in out[0] or "lib/python" in out[0]
    assert Path(out[0]).parent != REPO / "platform"
    assert not out[0].startswith(str(REPO))
    assert out[1].count(".") == 2


def test_mixhic_platform_importable_from_package():
    import mixhic.core.config as config
    import mixhic.platform.data as data

    assert Path(data.__file__).resolve().parent == REPO / "platform"
    assert Path(config.__file__).resolve().parent == REPO / "platform" / "core"


def test_models_import_no_ray_or_mlflow():
    import re

    for path in (REPO / "models").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(ray|mlflow)\b", text, re.M), path


def _root_conftest(config):
    path = REPO / "tests" / "conftest.py"
    return next(p for p in config.pluginmanager.get_plugins()
                if getattr(p, "__file__", None) and Path(p.__file__).resolve() == path)


def test_tests_starting_services_are_marked_integration(request):
    """The tiers: tests/conftest.py marks every test that uses a service fixture (directly
    or through other fixtures) ``integration``, so ``-m "not integration"`` starts no Ray."""
    conftest = _root_conftest(request.config)
    assert {"ray_local", "ray_cluster"} <= conftest.SERVICE_FIXTURES

    class Item:  # a collected test as the hook sees it
        def __init__(self, *names):
            self.fixturenames, self.marks = list(names), []

        def add_marker(self, mark):
            self.marks.append(mark.name)

    items = [Item("tmp_path", "tiny_data", "ray_local"), Item("ray_cluster"), Item("tmp_path")]
    conftest.pytest_collection_modifyitems(request.config, items)
    assert [i.marks for i in items] == [["integration"], ["integration"], []]
    # this session's tests (all of them in a full run)
    for item in request.session.items:
        if conftest.SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            assert item.get_closest_marker("integration") is not None, item.nodeid




def test_no_wall_clock_asserts_in_tests():
    """Timings belong in tests/benchmarks (printed), not in asserts: a loaded CI machine
    would fail them at random."""
    import re

    pattern = re.compile(r"^\s*assert\b.*\b(elapsed|took|duration|wall|seconds?)\b\s*[<>]", re.M)
    offenders = [f"{p.relative_to(REPO)}:{text[:m.start()].count(chr(10)) + 1}"
                 for p in (REPO / "tests").rglob("test_*.py")
                 for text in [p.read_text()] for m in pattern.finditer(text)]
    assert not offenders, offenders
