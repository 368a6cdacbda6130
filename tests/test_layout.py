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
    import mixhic.platform.config as config

    assert Path(config.__file__).resolve().parent == REPO / "platform"


def test_models_import_no_ray_or_mlflow():
    import re

    for path in (REPO / "models").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(ray|mlflow)\b", text, re.M), path
