"""Submit a ``mixhic`` command to a Ray cluster as a job (the Ray Jobs API over HTTP).

``mixhic submit --address http://HEAD:8265 -- pretrain paper-pretrain data.data_dir=s3://...``
runs ``python -m mixhic.platform.cli pretrain ...`` as the job's entrypoint on the
cluster, streams the job's logs here and exits with the job's exit status.

How the project reaches the cluster (``ship``):

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

The job's environment gets the non-secret settings of the submitting shell named in
:data:`FORWARDED_ENV` (MLflow URIs and experiment, ``MIXHIC_STORAGE``; nothing else,
other ``MIXHIC_*`` variables included), plus ``env`` given here. Credentials are never
sent: a job's runtime env and entrypoint are stored in the cluster's job table, readable
by anyone with dashboard access. A variable whose name looks secret (``KEY``,
``SECRET``, ``TOKEN``, ``PASSWORD``, ``CREDENTIAL``; :func:`looks_secret`) or a value or
argument holding a URI with userinfo (``https://user:pw@host``) is refused with a
:class:`MixHicError` naming the safer route: give the cluster its own credentials
(instance role / workload identity, a Kubernetes secret mounted as env vars,
``~/.netrc`` or ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` set on the cluster).

Ray token authentication: the client sends ``Authorization: Bearer <token>``, the token
taken from (first found) the ``token`` argument, ``RAY_AUTH_TOKEN``, the file named by
``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token`` -- the same precedence Ray uses. Get a
cluster's token with ``ray get-auth-token`` on its head node (or from the Kubernetes
secret KubeRay created) and copy it to ``~/.ray/auth_token`` on the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from mixhic.core.errors import MixHicError

__all__ = [
    "JobOutcome",
    "submit",
    "build_runtime_env",
    "build_wheel",
    "package_modules",
    "entrypoint_for",
    "resolve_address",
    "resolve_auth_token",
    "exit_code_for",
    "FORWARDED_ENV",
    "looks_secret",
    "check_no_secrets",
    "cli_main",
]

log = logging.getLogger(__name__)

Ship = Literal["wheel", "installed"]
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
# Variables copied from the submitting shell into the job: an allow-list of non-secret
# settings (anything else, secrets above all, stays on this machine).
FORWARDED_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_S3_ENDPOINT_URL",
    "MIXHIC_STORAGE",
)
# Name parts that mark a variable as a credential (matched case-insensitively).
SECRET_MARKERS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL")
_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://([^/?#@\s]*)@")
SAFER_ROUTE = (
    "give the cluster its own credentials instead (an instance role or workload identity, "
    "a Kubernetes secret mounted as env vars, MLFLOW_TRACKING_USERNAME/PASSWORD or "
    "~/.netrc set on the cluster); job env vars and arguments are stored in the job "
    "table, readable by anyone with dashboard access"
)
_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
# Ignored when staging the source tree for the wheel build.
_STAGE_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")


@dataclass(frozen=True)
class JobOutcome:
    """What became of a submitted job.

    ``status`` is Ray's job status (``SUCCEEDED``/``FAILED``/``STOPPED``, or
    ``PENDING``/``RUNNING`` when not waited for); ``exit_code`` is what ``mixhic submit``
    exits with (see :func:`exit_code_for`); ``logs`` holds the streamed driver output.
    """

    submission_id: str
    address: str
    status: str
    exit_code: int
    message: str | None = None
    logs: str = ""


# --------------------------------------------------------------------------- helpers


def resolve_address(address: str | None = None) -> str:
    """The job server URL: ``address``, else ``RAY_API_SERVER_ADDRESS``, ``RAY_ADDRESS``,
    else ``http://127.0.0.1:8265``. A bare ``host:port`` gets ``http://``."""
    address = (
        address
        or os.environ.get("RAY_API_SERVER_ADDRESS")
        or os.environ.get("RAY_ADDRESS")
        or DEFAULT_ADDRESS
    )
    if address.startswith("ray://"):
        raise MixHicError(
            f"--address {address}: that is a Ray Client address; give the job server URL "
            "(the dashboard, http://HEAD:8265)"
        )
    if "://" not in address:
        address = f"http://{address}"
    return address.rstrip("/")


def resolve_auth_token(token: str | None = None) -> str | None:
    """The Ray auth token, looked up like Ray does; ``None`` when there is none."""
    if token:
        return token.strip()
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path_env = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path_env:
        path = Path(path_env).expanduser()
        if not path.is_file() or not path.read_text().strip():
            raise MixHicError(f"RAY_AUTH_TOKEN_PATH={path_env}: no token in that file")
        return path.read_text().strip()
    default = Path.home() / ".ray" / "auth_token"
    if default.is_file() and default.read_text().strip():
        return default.read_text().strip()
    return None


def entrypoint_for(argv: Sequence[str]) -> str:
    """The job's shell entrypoint for ``mixhic ARGV`` (``python -m`` works whether the
    package is installed with its console script or shipped as ``py_modules``)."""
    return "python -m mixhic.platform.cli " + shlex.join(argv)


def exit_code_for(status: str, driver_exit_code: int | None) -> int:
    """``SUCCEEDED`` -> 0; ``FAILED`` -> the driver's exit code (2 for a user error), 1
    when the driver never ran or died by a signal; ``STOPPED`` -> 130."""
    if status == "SUCCEEDED":
        return 0
    if status == "STOPPED":
        return 130
    if status == "FAILED":
        if driver_exit_code is not None and driver_exit_code > 0:
            return int(driver_exit_code)
        return 1
    return 0  # not terminal: submitted without waiting


def _check_command(argv: Sequence[str]) -> None:
    from mixhic.platform.cli import COMMANDS

    if not argv:
        raise MixHicError("submit: no command given (usage: mixhic submit [options] -- CMD ARGS)")
    if argv[0] == "submit":
        raise MixHicError("submit: the job's command cannot itself be 'submit'")
    if argv[0] not in COMMANDS and not argv[0].startswith("-"):
        raise MixHicError(
            f"submit: unknown mixhic command {argv[0]!r} (known: {', '.join(sorted(COMMANDS))})"
        )
    for arg in argv[1:]:
        value = arg.partition("=")[2] if "=" in arg else arg
        relative = value and not os.path.isabs(value) and not value.startswith("~")
        if relative and "://" not in value and Path(value).exists():
            log.warning(
                    "argument %r is a relative path here; the job runs in another directory "
                    "on the cluster: pass an absolute path or a URI",
                    arg,
                )


def looks_secret(name: str) -> bool:
    """True when a variable or config key name looks like a credential
    (contains KEY, SECRET, TOKEN, PASSWORD, PASSWD or CREDENTIAL, any case)."""
    upper = str(name).upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def _mask_userinfo(value: str) -> str:
    return _USERINFO.sub(lambda m: m.group(0).replace(m.group(1), "***"), value)


def check_no_secrets(env: Mapping[str, str], argv: Sequence[str] = ()) -> None:
    """MixHicError if ``env`` names a secret-looking variable, or a value of ``env`` or an
    argument of ``argv`` holds a URI with userinfo (``scheme://user[:password]@host``).
    Messages never repeat the secret."""
    for key, value in env.items():
        if looks_secret(key):
            raise MixHicError(f"submit: env {key}: refused, the name looks like a credential "
                              f"(not sent to the cluster); {SAFER_ROUTE}")
        if _USERINFO.search(str(value)):
            raise MixHicError(f"submit: env {key}={_mask_userinfo(str(value))}: refused, the "
                              f"URI carries credentials in its user part; send it without "
                              f"them and {SAFER_ROUTE}")
    for arg in argv:
        key = arg.partition("=")[0] if "=" in arg and not arg.startswith("-") else ""
        if key and "://" not in key and looks_secret(key.rsplit(".", 1)[-1]):
            raise MixHicError(f"submit: argument {key}=***: refused, the key looks like a "
                              f"credential (not sent to the cluster); {SAFER_ROUTE}")
        if _USERINFO.search(arg):
            raise MixHicError(f"submit: argument {_mask_userinfo(arg)!r}: refused, a URI "
                              f"carries credentials in its user part; {SAFER_ROUTE}")


def _forwarded_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """The allow-listed settings of this shell + ``env``, checked for credentials."""
    out = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    skipped = sorted(k for k in os.environ
                     if k.startswith("MIXHIC_") and k not in FORWARDED_ENV
                     and k != "MIXHIC_SUBMIT_SHIP")
    if skipped:
        log.info("not forwarded to the job (not on the allow-list %s): %s; pass settings "
                 "with --env KEY=VALUE", ", ".join(FORWARDED_ENV), ", ".join(skipped))
    for key, value in (env or {}).items():
        if not isinstance(value, str):
            raise MixHicError(f"submit: env {key}: value must be a string, got "
                              f"{type(value).__name__}")
        out[key] = value
    check_no_secrets(out)
    uri = out.get("MLFLOW_TRACKING_URI", "")
    if uri.startswith("sqlite:") and not uri.startswith("sqlite:////"):
        log.warning("MLFLOW_TRACKING_URI=%s is relative: the job resolves it on the cluster", uri)
    return out


# --------------------------------------------------------------------------- packaging


def _project_root() -> Path | None:
    """The source tree this package was installed from (editable install), if any."""
    import mixhic.platform.cli as cli

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
        import mixhic

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
    runtime_env: dict[str, Any] = {"env_vars": _forwarded_env(env)}
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


def _load_extra(text: str | None) -> dict[str, Any]:
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


# --------------------------------------------------------------------------- client


_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def _without_address_env() -> Iterator[None]:
    """Ray's client lets RAY_ADDRESS / RAY_API_SERVER_ADDRESS override an explicit
    address; hide them while constructing the client so ``--address`` wins."""
    with _ENV_LOCK:
        saved = {k: os.environ.pop(k) for k in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")
                 if k in os.environ}
        try:
            yield
        finally:
            os.environ.update(saved)


def _client(address: str, token: str | None):
    from ray.job_submission import JobSubmissionClient

    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        with _without_address_env():
            return JobSubmissionClient(address, headers=headers)
    except Exception as exc:  # unreachable server, refused token: one clear line
        hint = "" if token else " (no Ray auth token found: see `mixhic submit --help`)"
        raise MixHicError(f"cannot use the Ray job server at {address}: {exc}{hint}") from exc


async def _tail(client, submission_id: str, on_log: Callable[[str], None], chunks: list[str]) -> None:
    async for chunk in client.tail_job_logs(submission_id):
        chunks.append(chunk)
        on_log(chunk)


def _wait(client, submission_id: str, on_log: Callable[[str], None], deadline: float | None,
          chunks: list[str]):
    """Stream the logs (appended to ``chunks``) until the job ends; returns (JobInfo, logs)."""

    async def run() -> None:
        tail = _tail(client, submission_id, on_log, chunks)
        if deadline is None:
            await tail
        else:
            await asyncio.wait_for(tail, max(deadline - time.monotonic(), 1.0))

    try:
        asyncio.run(run())
    except asyncio.TimeoutError:
        raise
    except Exception as exc:  # the log socket dropped: fall back to polling the status
        log.warning("log stream of %s ended early (%s); polling its status", submission_id, exc)
    while True:
        info = client.get_job_info(submission_id)
        if _status_name(info.status) in _TERMINAL:
            break
        if deadline is not None and time.monotonic() > deadline:
            raise asyncio.TimeoutError
        time.sleep(0.5)
    logs = "".join(chunks)
    if not logs:  # no stream (early failure): fetch what the server kept
        with contextlib.suppress(Exception):
            logs = client.get_job_logs(submission_id)
            on_log(logs)
    return info, logs


def _status_name(status: Any) -> str:
    return str(getattr(status, "value", status))


def submit(
    argv: Sequence[str],
    *,
    address: str | None = None,
    ship: Ship | None = None,
    env: Mapping[str, str] | None = None,
    runtime_env_extra: Mapping[str, Any] | None = None,
    wait: bool = True,
    token: str | None = None,
    submission_id: str | None = None,
    timeout_s: float | None = None,
    on_log: Callable[[str], None] | None = None,
) -> JobOutcome:
    """Run ``mixhic ARGV`` as a Ray job on the cluster at ``address``.

    Args:
        argv: the mixhic command and its arguments, e.g. ``["pretrain", "demo-pretrain",
            "train.epochs=1"]``; paths in it must be valid on the cluster.
        address: job server URL (see :func:`resolve_address`).
        ship: ``"wheel"`` or ``"installed"`` (default: ``MIXHIC_SUBMIT_SHIP`` or wheel).
        env: extra environment variables for the job.
        runtime_env_extra: more ``runtime_env`` fields (``pip``, ``env_vars``, ...).
        wait: stream logs and wait for the end; else return once submitted.
        token: Ray auth token (else looked up, see :func:`resolve_auth_token`).
        timeout_s: stop the job and return exit code 124 after this long.
        on_log: called with each chunk of the job's output (default: write to stdout).

    Returns:
        A :class:`JobOutcome`; ``exit_code`` is non-zero for ``FAILED``/``STOPPED``.
    """
    argv = list(argv)
    _check_command(argv)
    extra_env = (runtime_env_extra or {}).get("env_vars") or {}
    check_no_secrets({**dict(env or {}), **(extra_env if isinstance(extra_env, Mapping)
                                             else {})}, argv)  # before anything is sent
    address = resolve_address(address)
    ship = ship or os.environ.get("MIXHIC_SUBMIT_SHIP", "wheel")  # type: ignore[assignment]
    on_log = on_log or (lambda text: (sys.stdout.write(text), sys.stdout.flush()))
    client = _client(address, resolve_auth_token(token))
    submission_id = submission_id or f"mixhic-{argv[0]}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    runtime_env = build_runtime_env(ship=ship, env=env, extra=runtime_env_extra)
    try:
        client.submit_job(
            entrypoint=entrypoint_for(argv),
            submission_id=submission_id,
            runtime_env=runtime_env,
            metadata={"mixhic_command": argv[0], "submitted_by": "mixhic submit"},
        )
    except Exception as exc:
        raise MixHicError(f"submitting to {address} failed: {exc}") from exc
    log.info("submitted %s to %s: mixhic %s", submission_id, address, shlex.join(argv))
    if not wait:
        status = _status_name(client.get_job_status(submission_id))
        return JobOutcome(submission_id, address, status, 0)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    chunks: list[str] = []
    try:
        info, logs = _wait(client, submission_id, on_log, deadline, chunks)
    except asyncio.TimeoutError:
        log.error("job %s ran past %.0f s: stopping it", submission_id, timeout_s)
        with contextlib.suppress(Exception):
            client.stop_job(submission_id)
        logs = "".join(chunks)
        with contextlib.suppress(Exception):
            logs = client.get_job_logs(submission_id) or logs
        return JobOutcome(submission_id, address, "TIMEOUT", 124, "timed out", logs)
    except KeyboardInterrupt:
        log.warning("detached; the job keeps running (ray job stop %s)", submission_id)
        raise
    status = _status_name(info.status)
    code = exit_code_for(status, getattr(info, "driver_exit_code", None))
    (log.info if code == 0 else log.error)(
        "job %s %s (exit %d)%s", submission_id, status, code, f": {info.message}" if code else ""
    )
    return JobOutcome(submission_id, address, status, code, info.message, logs)


# --------------------------------------------------------------------------- CLI

_EPILOG = """\
examples:
  mixhic submit --address http://127.0.0.1:8265 -- pretrain paper-pretrain data.data_dir=s3://bucket/ds
  mixhic submit --ship installed --env MIXHIC_STORAGE=s3://bucket/runs -- tune tune-demo
  mixhic submit --runtime-env-extra '{"pip": ["optuna"]}' --no-wait -- prepare my-prepare.yaml

address: --address, else RAY_API_SERVER_ADDRESS, else RAY_ADDRESS, else http://127.0.0.1:8265.
auth token (Ray token authentication): RAY_AUTH_TOKEN, else the file in RAY_AUTH_TOKEN_PATH,
else ~/.ray/auth_token (copy it from the head node: `ray get-auth-token`).
exit status: the job's (0 succeeded; the command's own code when it failed; 130 stopped).
"""


def cli_main(argv: list[str]) -> int:
    import argparse

    argv = list(argv)
    if "--" in argv:
        split = argv.index("--")
        opts, command = argv[:split], argv[split + 1 :]
    else:
        opts, command = argv, []
    parser = argparse.ArgumentParser(
        prog="mixhic submit",
        usage="mixhic submit [options] -- COMMAND [ARGS ...]",
        description="Run a mixhic command as a job on a Ray cluster; exits with its status.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--address", help="Ray job server URL (the dashboard, http://HEAD:8265)")
    parser.add_argument(
        "--ship",
        choices=("wheel", "installed"),
        default=os.environ.get("MIXHIC_SUBMIT_SHIP", "wheel"),
        help="wheel: ship this package's code (default); installed: the image has it",
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="job environment variable"
    )
    parser.add_argument(
        "--runtime-env-extra",
        metavar="FILE|MAPPING",
        help="extra runtime_env fields: a YAML/JSON file or an inline mapping",
    )
    parser.add_argument("--no-wait", action="store_true", help="return once submitted")
    parser.add_argument("--submission-id", help="job id (default: mixhic-CMD-TIME-RANDOM)")
    parser.add_argument("--timeout", type=float, help="stop the job after this many seconds")
    ns = parser.parse_args(opts)
    if not command:
        parser.error("put the mixhic command after --, e.g. mixhic submit -- pretrain CONFIG")
    env = {}
    for item in ns.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise MixHicError(f"--env {item!r}: expected KEY=VALUE")
        env[key] = value
    outcome = submit(
        command,
        address=ns.address,
        ship=ns.ship,
        env=env,
        runtime_env_extra=_load_extra(ns.runtime_env_extra),
        wait=not ns.no_wait,
        submission_id=ns.submission_id,
        timeout_s=ns.timeout,
    )
    if ns.no_wait:
        log.info("%s is %s; follow it with: ray job logs -f %s", outcome.submission_id,
                 outcome.status, outcome.submission_id)
    return outcome.exit_code
