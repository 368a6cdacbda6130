"""``mixhic submit``: unit tests of the runtime env and, on a real ``ray start --head``
cluster (loopback, explicit ports, token auth on), jobs that simulate, prepare and
pre-train, plus a failing job whose status reaches the caller.

The driver talks to the cluster only over the Jobs HTTP API (no ``ray.init`` here), so
the session's ``ray_local`` in the same pytest process is untouched. The cluster is
stopped by signalling the processes it started (by pid), never with ``ray stop``, which
kills every Ray process on the machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import free_port
from mixhic.platform import jobs
from mixhic.platform.errors import MixHicError

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


# --------------------------------------------------------------------------- unit


def test_resolve_address_precedence(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    assert jobs.resolve_address() == "http://127.0.0.1:8265"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:8265")
    assert jobs.resolve_address() == "http://10.0.0.1:8265"
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "https://head.example:443/")
    assert jobs.resolve_address() == "https://head.example:443"
    assert jobs.resolve_address("http://h:1") == "http://h:1"
    with pytest.raises(MixHicError, match="Ray Client address"):
        jobs.resolve_address("ray://h:10001")


def test_resolve_auth_token_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    assert jobs.resolve_auth_token() is None
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("from-home\n")
    assert jobs.resolve_auth_token() == "from-home"
    (tmp_path / "tok").write_text("from-path")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "tok"))
    assert jobs.resolve_auth_token() == "from-path"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert jobs.resolve_auth_token() == "from-env"
    assert jobs.resolve_auth_token("explicit") == "explicit"
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(MixHicError, match="RAY_AUTH_TOKEN_PATH"):
        jobs.resolve_auth_token()


@pytest.mark.parametrize(
    ("status", "driver_code", "expected"),
    [("SUCCEEDED", 0, 0), ("FAILED", 2, 2), ("FAILED", None, 1), ("FAILED", -9, 1),
     ("FAILED", 0, 1), ("STOPPED", None, 130), ("RUNNING", None, 0)],
)
def test_exit_code_for(status, driver_code, expected):
    assert jobs.exit_code_for(status, driver_code) == expected


def test_entrypoint_quotes_arguments():
    ep = jobs.entrypoint_for(["prepare", "my cfg.yaml", "data.splits.val=[chr2]"])
    assert ep == "python -m mixhic.platform.cli prepare 'my cfg.yaml' 'data.splits.val=[chr2]'"


def test_runtime_env_ships_the_package_not_the_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////srv/mlflow.db")
    monkeypatch.setenv("MIXHIC_STORAGE", "s3://bucket/runs")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-forward")
    env = jobs.build_runtime_env(
        tmp_path, env={"EXTRA": "1"}, extra={"env_vars": {"B": 2}, "pip": ["optuna"]}
    )
    assert env["env_vars"]["MLFLOW_TRACKING_URI"] == "sqlite:////srv/mlflow.db"
    assert env["env_vars"]["MIXHIC_STORAGE"] == "s3://bucket/runs"
    assert env["env_vars"]["EXTRA"] == "1" and env["env_vars"]["B"] == "2"
    assert "AWS_SECRET_ACCESS_KEY" not in env["env_vars"]
    assert env["pip"] == ["optuna"] and "working_dir" not in env
    pkg, dist = (Path(p) for p in env["py_modules"])
    assert pkg.name == "mixhic" and dist.name.startswith("mixhic-") and dist.suffix == ".dist-info"
    assert (pkg / "platform" / "cli.py").is_file() and (pkg / "platform" / "jobs.py").is_file()
    assert not (pkg / "platform" / "__init__.py").exists()
    assert not list(pkg.rglob("__pycache__")) and not list(pkg.rglob("test_*.py"))
    assert not (REPO / "build").exists() or (REPO / "build").stat().st_mtime < time.time() - 60
    # the wheel's package equals the source tree file for file
    assert (pkg / "platform" / "jobs.py").read_text() == (REPO / "platform" / "jobs.py").read_text()
    installed = jobs.build_runtime_env(tmp_path / "b", ship="installed")
    assert "py_modules" not in installed


def test_runtime_env_refuses_repo_root_as_working_dir(tmp_path):
    with pytest.raises(MixHicError, match="working_dir"):
        jobs.build_runtime_env(tmp_path, ship="installed", extra={"working_dir": str(REPO)})


def test_wheel_builds_from_the_source_tree(tmp_path):
    wheel = jobs.build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "mixhic/platform/cli.py" in names and "mixhic/pipelines/schema.py" in names
    assert not any(n.startswith(("platform/", "tests/")) for n in names)


def test_cli_errors_are_one_line(capsys):
    with pytest.raises(SystemExit):
        jobs.cli_main(["--address", "http://127.0.0.1:1"])  # no "-- COMMAND"
    with pytest.raises(MixHicError, match="unknown mixhic command 'pretrian'"):
        jobs.cli_main(["--", "pretrian", "x"])
    with pytest.raises(MixHicError, match="cannot itself be 'submit'"):
        jobs.submit(["submit", "--", "pretrain"])
    with pytest.raises(MixHicError, match="--env"):
        jobs.cli_main(["--env", "NOVALUE", "--", "simulate", "/tmp/x"])
    with pytest.raises(MixHicError, match="runtime-env-extra"):
        jobs.cli_main(["--runtime-env-extra", "nope.yaml", "--", "simulate", "/tmp/x"])


def test_unreachable_server_is_a_clear_error():
    port = free_port()  # nothing listens there
    with pytest.raises(MixHicError, match=f"127.0.0.1:{port}"):
        jobs.submit(["simulate", "/tmp/x"], address=f"http://127.0.0.1:{port}", ship="installed")


# --------------------------------------------------------------------------- cluster


@dataclass(frozen=True)
class Cluster:
    address: str
    token: str
    root: Path  # short temp dir: HOME, RAY_TMPDIR, data and runs of the jobs


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) for every process (from /proc; psutil is not a dependency)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            table[int(entry)] = (int(fields[1]), int(fields[2]))
    return table


def _descendants(root: int) -> set[int]:
    table = _proc_table()
    found, frontier = set(), [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in table.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                frontier.append(pid)
    found |= {pid for pid, (_, pgid) in table.items() if pgid == root}
    return found - {root}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_ready(address: str, token: str, proc: subprocess.Popen, log_path: Path) -> None:
    request = urllib.request.Request(
        f"{address}/api/jobs/", headers={"Authorization": f"Bearer {token}"}
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(request, timeout=3) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"job server at {address} not ready in 90 s:\n{log_path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def ray_cluster():
    """A real head node started with ``ray start --head --block`` on loopback."""
    root = Path(tempfile.mkdtemp(prefix="mxj-"))
    token = uuid.uuid4().hex + uuid.uuid4().hex
    dashboard_port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env.update(
        HOME=str(root),
        RAY_TMPDIR=str(root / "r"),
        RAY_AUTH_MODE="token",  # token authentication stays on
        RAY_AUTH_TOKEN=token,
        RAY_USAGE_STATS_ENABLED="0",
        RAY_DEDUP_LOGS="0",
        TQDM_DISABLE="1",
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    cmd = [
        str(VENV_BIN / "ray"), "start", "--head", "--block", "--disable-usage-stats",
        "--node-ip-address", "127.0.0.1",
        "--port", str(free_port()),
        "--include-dashboard", "true",  # the Jobs API is served by the dashboard
        "--dashboard-host", "127.0.0.1",
        "--dashboard-port", str(dashboard_port),
        "--dashboard-agent-listen-port", str(free_port()),
        "--dashboard-agent-grpc-port", str(free_port()),
        "--metrics-export-port", str(free_port()),
        "--runtime-env-agent-port", str(free_port()),
        "--ray-client-server-port", str(free_port()),
        "--num-cpus", "2",
        "--object-store-memory", str(1024**3),
        "--temp-dir", str(root / "r"),
    ]
    log_path = root / "ray-start.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            cmd, env=env, cwd=root, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    address = f"http://127.0.0.1:{dashboard_port}"
    try:
        _wait_ready(address, token, proc, log_path)
        yield Cluster(address, token, root)
    finally:
        pids = _descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)  # `ray start --block` stops what it started
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
        time.sleep(0.5)
        for pid in pids | _descendants(proc.pid):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def _submit(cluster: Cluster, argv: list[str], **kwargs) -> jobs.JobOutcome:
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{cluster.root}/mlflow.db"}
    return jobs.submit(
        argv, address=cluster.address, token=cluster.token, env=env, timeout_s=150,
        on_log=lambda text: None, **kwargs,
    )


@pytest.mark.integration
def test_wrong_token_is_refused(ray_cluster):
    with pytest.raises(MixHicError, match="(?i)auth|forbidden|401|403"):
        jobs.submit(["simulate", "/tmp/x"], address=ray_cluster.address, token="wrong",
                    ship="installed", on_log=lambda text: None)


@pytest.mark.integration
def test_job_runs_the_shipped_wheel_not_the_checkout(ray_cluster, tmp_path):
    """The job imports mixhic from the shipped py_modules and the stdlib's platform."""
    from ray.job_submission import JobSubmissionClient

    runtime_env = jobs.build_runtime_env(tmp_path)
    client = JobSubmissionClient(
        ray_cluster.address, headers={"Authorization": f"Bearer {ray_cluster.token}"}
    )
    code = (
        "import json, platform, importlib.metadata as md, mixhic.platform.cli as cli;"
        "print('RESULT', json.dumps([cli.__file__, platform.__file__, md.version('mixhic')]))"
    )
    sid = client.submit_job(entrypoint=f'python -c "{code}"', runtime_env=runtime_env)
    deadline = time.monotonic() + 60
    while not client.get_job_status(sid).is_terminal() and time.monotonic() < deadline:
        time.sleep(0.5)
    logs = client.get_job_logs(sid)
    assert str(client.get_job_status(sid).value) == "SUCCEEDED", logs
    line = next(x for x in logs.splitlines() if x.startswith("RESULT "))
    cli_file, platform_file, version = json.loads(line[len("RESULT ") :])
    assert not cli_file.startswith(str(REPO)) and "runtime_resources" in cli_file
    assert not platform_file.startswith(str(REPO)) and platform_file.endswith("platform.py")
    assert version == "0.1.0"


@pytest.mark.integration
def test_failing_job_status_reaches_the_caller(ray_cluster):
    outcome = _submit(ray_cluster, ["prepare", "no-such-config"])
    assert outcome.status == "FAILED"
    assert outcome.exit_code == 2  # the CLI's exit code for a user error, passed through
    assert "no-such-config" in outcome.logs
