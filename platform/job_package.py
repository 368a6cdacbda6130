"""How the project reaches the cluster: the job's ``runtime_env`` (``ship``).

- ``"wheel"`` (default): the package is built into a wheel (``pip wheel --no-deps``
  from a staging copy of the source tree, or the installed package when there is no
  source tree), the wheel is unpacked, and its ``mixhic/`` package and its
  ``.dist-info`` go to the job as ``runtime_env["py_modules"]``. The wheel itself is not
  given to ``py_modules``: Ray installs a ``.whl`` there with ``pip install --target``,
  dependencies included (torch, ray, ...), which needs the network and duplicates the
  image. Dependencies therefore come from the cluster's image (``infra/Dockerfile``).
  The repository root is never the job's ``working_dir``: a checkout on ``sys.path``
  puts a top-level ``platform`` directory next to the standard library's.
- ``"installed"``: the cluster's image already has this version of mixhic installed;
  nothing is shipped. Default when ``MIXHIC_SUBMIT_SHIP=installed``.

The environment variables go through :mod:`mixhic.platform.job_env` (allow-list, no
credentials).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import mixhic
import mixhic.platform.cli as cli
import yaml
from mixhic.core.errors import MixHicError
from mixhic.platform.job_env import check_no_secrets, forwarded_env

__all__ = ["Ship", "build_wheel", "package_modules", "build_runtime_env", "load_extra"]

log = logging.getLogger(__name__)

Ship = Literal["wheel", "installed"]
# Ignored when staging the source tree for the wheel build.
_STAGE_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")


def _project_root() -> Path | None:
    """The source tree this package was installed from (editable install), if any."""
    root = Path(cli.__file__).resolve().parents[1]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "mixhic"' in pyproject.read_text():
        return root
    return None


def _package_dirs(root: Path) -> list[str]:
    """Top-level source folders of the distribution (from pyproject's package-dir)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        return ["platform", "pipelines", "models", "serve"]
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    mapping = meta.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    return sorted({str(Path(p).parts[0]) for p in mapping.values()})


def build_wheel(out_dir: str | Path, project_root: str | Path | None = None) -> Path:
    """Build the mixhic wheel (no dependencies) into ``out_dir`` and return its path.

    The source tree is copied to a staging folder first, so the build leaves no
    ``build/`` or ``*.egg-info`` in the checkout and concurrent builds do not collide.
    The working tree is what gets built (uncommitted edits included).
    """
    root = Path(project_root) if project_root else _project_root()
    if root is None:
        raise MixHicError("submit: no mixhic source tree found to build a wheel from")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mixhic-stage-") as stage:
        stage = Path(stage)
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, stage / name)
        for name in _package_dirs(root):
            if (root / name).is_dir():
                shutil.copytree(root / name, stage / name, ignore=_STAGE_IGNORE)
        cmd = [
            sys.executable, "-m", "pip", "wheel", str(stage),
            "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out_dir),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=stage)
        if proc.returncode != 0:
            raise MixHicError(f"submit: building the mixhic wheel failed:\n{proc.stderr[-2000:]}")
    wheels = sorted(out_dir.glob("mixhic-*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels:
        raise MixHicError(f"submit: pip wheel wrote no mixhic wheel into {out_dir}")
    return wheels[-1]


_PACKAGE_CACHE: dict[str, list[str]] = {}
_PACKAGE_LOCK = threading.Lock()
_CACHE_DIR: tempfile.TemporaryDirectory | None = None


def _source_fingerprint(root: Path) -> str:
    """Changes whenever a file that goes into the wheel changes (path, size, mtime)."""
    parts = []
    for name in ("pyproject.toml", "README.md", *_package_dirs(root)):
        path = root / name
        files = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
                st = f.stat()
                parts.append(f"{f.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def package_modules(work_dir: str | Path | None = None) -> list[str]:
    """Folders to ship as ``py_modules``: ``mixhic/`` and ``mixhic-*.dist-info/``.

    From the source tree (a wheel built and unpacked under ``work_dir``, by default a
    per-process cache reused while the sources are unchanged) or, without a source
    tree, from the installed package.
    """
    global _CACHE_DIR
    root = _project_root()
    if root is None:
        pkg = Path(next(iter(mixhic.__path__)))
        log.info("shipping the installed package %s", pkg)
        return [str(pkg), *map(str, pkg.parent.glob("mixhic-*.dist-info"))]
    with _PACKAGE_LOCK:  # concurrent submits share one build per source state
        key = _source_fingerprint(root)
        if work_dir is None:
            cached = _PACKAGE_CACHE.get(key)
            if cached and all(Path(p).exists() for p in cached):
                return list(cached)
            if _CACHE_DIR is None:
                _CACHE_DIR = tempfile.TemporaryDirectory(prefix="mixhic-ship-")
            # a fresh folder per build: folders already handed out are never modified
            work_dir = tempfile.mkdtemp(prefix=f"{key}-", dir=_CACHE_DIR.name)
        work_dir = Path(work_dir)
        wheel = build_wheel(work_dir / "wheel", project_root=root)
        unpacked = Path(tempfile.mkdtemp(prefix="unpacked-", dir=work_dir))
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(unpacked)
        log.info("shipping %s (%.0f kB)", wheel.name, wheel.stat().st_size / 1e3)
        modules = [str(unpacked / "mixhic"), *map(str, unpacked.glob("mixhic-*.dist-info"))]
        _PACKAGE_CACHE[key] = modules
        return list(modules)


def build_runtime_env(
    work_dir: str | Path | None = None,
    *,
    ship: Ship = "wheel",
    env: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The job's ``runtime_env``: shipped package (built under ``work_dir``, default a
    per-process cache) + forwarded env vars + ``extra``.

    ``extra`` is merged last (``env_vars`` merged key by key, ``py_modules`` appended,
    other keys set). A ``working_dir`` holding a top-level ``platform/`` folder (the
    repository root) is refused.
    """
    if ship not in ("wheel", "installed"):
        raise MixHicError(f"submit: ship must be 'wheel' or 'installed', got {ship!r}")
    runtime_env: dict[str, Any] = {"env_vars": forwarded_env(env)}
    if ship == "wheel":
        runtime_env["py_modules"] = package_modules(work_dir)
    for key, value in (extra or {}).items():
        if key == "env_vars":
            if not isinstance(value, Mapping):
                raise MixHicError("runtime_env.env_vars: expected a mapping of names to values")
            extra_env = {str(k): str(v) for k, v in value.items()}
            check_no_secrets(extra_env)
            runtime_env["env_vars"].update(extra_env)
        elif key == "py_modules":
            runtime_env.setdefault("py_modules", []).extend(value)
        else:
            runtime_env[key] = value
    working_dir = runtime_env.get("working_dir")
    if isinstance(working_dir, str) and (Path(working_dir) / "platform").is_dir():
        raise MixHicError(
            f"runtime_env.working_dir {working_dir}: looks like the mixhic repository root; "
            "on sys.path its platform/ folder sits beside the standard library's platform "
            "module. The package is shipped as py_modules already; use a data-only folder."
        )
    return runtime_env


def load_extra(text: str | None) -> dict[str, Any]:
    """``--runtime-env-extra``: a YAML/JSON file, or an inline YAML/JSON mapping."""
    if not text:
        return {}
    path = Path(text)
    source = f"--runtime-env-extra {text}"
    if path.suffix in (".yaml", ".yml", ".json") or path.is_file():
        if not path.is_file():
            raise MixHicError(f"{source}: file not found")
        text, source = path.read_text(), str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MixHicError(f"{source}: not valid YAML/JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MixHicError(f"{source}: expected a mapping of runtime_env fields")
    return data
