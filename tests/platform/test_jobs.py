"""``mixhic submit``: unit tests of the runtime env and, on a real ``ray start --head``
cluster (loopback, explicit ports, token auth on), jobs that simulate, prepare and
pre-train, plus a failing job whose status reaches the caller.

The driver talks to the cluster only over the Jobs HTTP API (no ``ray.init`` here), so
the session's ``ray_local`` in the same pytest process is untouched. The cluster is
stopped by signalling the processes it started (by pid), never with ``ray stop``, which
kills every Ray process on the machine.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from mixhic.core.config import shipped_configs
from mixhic.core.errors import MixHicError
from mixhic.platform import job_client, job_env, job_package, jobs
from netutil import free_port

REPO = Path(__file__).resolve().parents[2]


VENV_BIN = Path(sys.executable).parent


# --------------------------------------------------------------------------- unit


def test_resolve_address_precedence(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    assert job_client.resolve_address() == "http://127.0.0.1:8265"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:8265")
    assert job_client.resolve_address() == "http://10.0.0.1:8265"
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "https://head.example:443/")
    assert job_client.resolve_address() == "https://head.example:443"
    assert job_client.resolve_address("http://h:1") == "http://h:1"
    with pytest.raises(MixHicError, match="Ray Client address"):
        job_client.resolve_address("ray://h:10001")


def test_resolve_auth_token_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    assert job_client.resolve_auth_token() is None
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("from-home\n")
    assert job_client.resolve_auth_token() == "from-home"
    (tmp_path / "tok").write_text("from-path")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "tok"))
    assert job_client.resolve_auth_token() == "from-path"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert job_client.resolve_auth_token() == "from-env"
    assert job_client.resolve_auth_token("explicit") == "explicit"
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(MixHicError, match="RAY_AUTH_TOKEN_PATH"):
        job_client.resolve_auth_token()


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
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-forward")
    env = job_package.build_runtime_env(env={"EXTRA": "1"},
                                        extra={"env_vars": {"B": 2}, "pip": ["optuna"]})
    assert env["env_vars"]["MLFLOW_TRACKING_URI"] == "sqlite:////srv/mlflow.db"
    assert env["env_vars"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["env_vars"]["EXTRA"] == "1" and env["env_vars"]["B"] == "2"
    assert "AWS_SECRET_ACCESS_KEY" not in env["env_vars"]
    assert env["pip"] == ["optuna"] and "working_dir" not in env
    pkg, dist = (Path(p) for p in env["py_modules"])
    assert pkg.name == "mixhic" and dist.name.startswith("mixhic-") and dist.suffix == ".dist-info"
    assert pkg.parent == dist.parent and sorted(p.name for p in pkg.parent.iterdir()) == sorted(
        [pkg.name, dist.name]
    )  # the wheel held only the package and its metadata (no tests/, no top-level platform/)
    assert (pkg / "platform" / "cli.py").is_file() and (pkg / "pipelines" / "schema.py").is_file()
    assert not (pkg / "platform" / "__init__.py").exists()
    assert not list(pkg.rglob("__pycache__")) and not list(pkg.rglob("test_*.py"))
    assert not (REPO / "build").exists() or (REPO / "build").stat().st_mtime < time.time() - 60
    # the wheel's package equals the source tree file for file
    assert (pkg / "platform" / "jobs.py").read_text() == (REPO / "platform" / "jobs.py").read_text()
    # cached while unchanged
    assert job_package.build_runtime_env()["py_modules"] == env["py_modules"]
    installed = job_package.build_runtime_env(ship="installed")
    assert "py_modules" not in installed


def _clear_forwarded(monkeypatch):
    for key in list(os.environ):
        if key in job_env.FORWARDED_ENV or key.startswith(("MIXHIC_", "MLFLOW_")):
            monkeypatch.delenv(key)


def test_only_allow_listed_settings_are_forwarded(monkeypatch):
    _clear_forwarded(monkeypatch)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example/")
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("MIXHIC_STORAGE", "s3://bucket/runs")  # mixhic reads no env setting
    monkeypatch.setenv("MIXHIC_S3_SECRET_KEY", "s3cr3t-value")
    monkeypatch.setenv("MIXHIC_API_TOKEN", "tok-value")
    monkeypatch.setenv("MIXHIC_SOMETHING_ELSE", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw-value")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-value")
    env = job_package.build_runtime_env(ship="installed")["env_vars"]
    assert env == {"MLFLOW_TRACKING_URI": "https://mlflow.example/",
                   "MLFLOW_S3_ENDPOINT_URL": "http://minio:9000"}
    assert set(job_env.FORWARDED_ENV) >= set(env)
    assert not any(job_env.looks_secret(k) for k in job_env.FORWARDED_ENV)


@pytest.mark.parametrize("name, secret", [
    ("MIXHIC_S3_SECRET_KEY", True), ("MIXHIC_API_TOKEN", True), ("aws_session_token", True),
    ("DB_PASSWORD", True), ("PGPASSWD", True), ("GOOGLE_APPLICATION_CREDENTIALS", True),
    ("HF_APIKEY", True), ("MLFLOW_TRACKING_URI", False), ("MIXHIC_STORAGE", False),
    ("OMP_NUM_THREADS", False),
])
def test_looks_secret(name, secret):
    assert job_env.looks_secret(name) is secret


@pytest.mark.parametrize("where", ["shell", "env", "extra"])
@pytest.mark.parametrize("uri", ["http://user:pa55w0rd@mlflow.example:5000",
                                 "https://tok3n@mlflow.example/", "postgresql://u:p@db/ml"])
def test_uri_userinfo_is_refused_without_echoing_it(monkeypatch, where, uri):
    _clear_forwarded(monkeypatch)
    kwargs = {}
    if where == "shell":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    elif where == "env":
        kwargs["env"] = {"MLFLOW_TRACKING_URI": uri}
    else:
        kwargs["extra"] = {"env_vars": {"MLFLOW_TRACKING_URI": uri}}
    with pytest.raises(MixHicError, match="credentials in its user part") as info:
        job_package.build_runtime_env(ship="installed", **kwargs)
    message = str(info.value)
    assert "pa55w0rd" not in message and "tok3n" not in message
    assert ":p@" not in message and "Kubernetes secret" in message


@pytest.mark.parametrize("name", ["MIXHIC_S3_SECRET_KEY", "MIXHIC_API_TOKEN",
                                  "AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_PASSWORD"])
def test_secret_named_variables_are_refused(monkeypatch, name):
    _clear_forwarded(monkeypatch)
    for kwargs in ({"env": {name: "v4lue"}}, {"extra": {"env_vars": {name: "v4lue"}}}):
        with pytest.raises(MixHicError, match=f"{name}.*looks like a credential") as info:
            job_package.build_runtime_env(ship="installed", **kwargs)
        assert "v4lue" not in str(info.value) and "instance role" in str(info.value)


def test_submit_refuses_secrets_before_contacting_the_server(monkeypatch):
    """Refused up front: the error is the secret's, not the unreachable server's."""
    _clear_forwarded(monkeypatch)
    address = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(MixHicError, match="MIXHIC_API_TOKEN.*credential"):
        jobs.cli_main(["--address", address, "--ship", "installed", "--env",
                       "MIXHIC_API_TOKEN=abc", "--", "simulate", "/tmp/x"])
    with pytest.raises(MixHicError, match="user part") as info:
        jobs.submit(["pretrain", "demo-pretrain", "tracking.uri=https://u:hunter2@h/"],
                    address=address, ship="installed")
    assert "hunter2" not in str(info.value)
    with pytest.raises(MixHicError, match="api_token=\\*\\*\\*.*credential") as info:
        jobs.submit(["pretrain", "demo-pretrain", "tracking.api_token=hunter2"],
                    address=address, ship="installed")
    assert "hunter2" not in str(info.value)


def test_runtime_env_refuses_repo_root_as_working_dir(tmp_path):
    with pytest.raises(MixHicError, match="working_dir"):
        job_package.build_runtime_env(tmp_path, ship="installed", extra={"working_dir": str(REPO)})


def test_cli_errors_are_one_line(capsys):
    with pytest.raises(SystemExit):
        jobs.cli_main(["--address", "http://127.0.0.1:1"])  # no "-- COMMAND"
    with pytest.raises(MixHicError, match="unknown mixhic command 'pretrian'"):
        jobs.cli_main(["--", "pretrian", "x"])
    with pytest.raises(MixHicError, match="cannot itself be 'submit'"):
        jobs.submit(["submit", "--", "pretrain"])
    with pytest.raises(MixHicError, match="--env"):
        jobs.cli_main(["--env", "NOVALUE", "--", "simulate", "out_dir=/tmp/x"])
    with pytest.raises(MixHicError, match="runtime-env-extra"):
        jobs.cli_main(["--runtime-env-extra", "nope.yaml", "--", "simulate", "out_dir=/tmp/x"])


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
    """Processes started under ``root``: its process group (``start_new_session``) and
    every descendant of a member (also after ``root`` exited and they were re-parented)."""
    table = _proc_table()
    found = {pid for pid, (_, pgid) in table.items() if pgid == root}
    frontier = [root, *found]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in table.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                frontier.append(pid)
    return found - {root}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _stop(proc: subprocess.Popen) -> None:
    """Stop a ``ray start --block`` and everything it started, by pid (never `ray stop`,
    which kills every Ray process on the machine)."""
    pids = _descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # --block: stops the processes it started
        try:  # it takes ~30 s to; the test is over, so what is left is killed below
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    time.sleep(0.5)
    for pid in pids | _descendants(proc.pid):
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _wait_ready(address: str, token: str, proc: subprocess.Popen, log_path: Path) -> None:
    """Until `ray start` reports the node up AND the job server answers (auth on)."""
    request = urllib.request.Request(
        f"{address}/api/jobs/", headers={"Authorization": f"Bearer {token}"}
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        if "Ray runtime started" in log_path.read_text():
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
        time.sleep(0.5)
    raise RuntimeError(f"cluster at {address} not ready in 120 s:\n{log_path.read_text()[-3000:]}")


def _start_head(root: Path, token: str) -> tuple[subprocess.Popen, str]:
    dashboard_port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
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
        proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=log_file,
                                stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard_port}"
    try:
        _wait_ready(address, token, proc, log_path)
    except BaseException:
        _stop(proc)
        raise
    return proc, address


@pytest.fixture(scope="module")
def ray_cluster():
    """A real head node started with ``ray start --head --block`` on loopback."""
    root = Path(tempfile.mkdtemp(prefix="mxj-"))
    # The token a client finds (RAY_AUTH_TOKEN, ~/.ray/auth_token under the tests' temp
    # HOME): `mixhic submit` then authenticates the way a user's shell does. A local
    # ray.init() reuses an existing ~/.ray/auth_token, so the session's Ray agrees.
    token = job_client.resolve_auth_token()
    if token is None:
        token = uuid.uuid4().hex + uuid.uuid4().hex
        token_file = Path.home() / ".ray" / "auth_token"
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(token)
        token_file.chmod(0o600)
    try:
        for attempt in range(3):
            try:
                proc, address = _start_head(root, token)
                break
            except RuntimeError as exc:  # Ray gives the raylet a fixed 30 s to register
                if "timed out during startup" not in str(exc):
                    raise
                shutil.rmtree(root / "r", ignore_errors=True)
        else:
            pytest.skip("machine too busy: the raylet did not register within Ray's fixed "
                        "30 s in 3 attempts of `ray start --head`")
        try:
            yield Cluster(address, token, root)
        finally:
            _stop(proc)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _submit(cluster: Cluster, argv: list[str], **kwargs) -> jobs.JobOutcome:
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{cluster.root}/mlflow.db"}
    return jobs.submit(
        argv, address=cluster.address, token=cluster.token, env=env, timeout_s=420,
        on_log=lambda text: None, **kwargs,
    )


_PROBE = (
    "import json, os, platform, importlib.metadata as md, mixhic.platform.cli as cli;"
    "print('RESULT', json.dumps([cli.__file__, platform.__file__, md.version('mixhic'),"
    " dict(os.environ)]))"
)
# Set in the submitting shell while the jobs are built (after the cluster started, so the
# cluster's own environment does not hold them): none may reach a job.
_SHELL_SECRETS = {
    "MIXHIC_S3_SECRET_KEY": f"mxh-s3-{uuid.uuid4().hex}",
    "MIXHIC_API_TOKEN": f"mxh-api-{uuid.uuid4().hex}",
    "AWS_SECRET_ACCESS_KEY": f"mxh-aws-{uuid.uuid4().hex}",
}


def _probe_job(cluster: Cluster) -> str:
    """A job printing where mixhic and platform are imported from; returns its logs."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(
        cluster.address, headers={"Authorization": f"Bearer {cluster.token}"}
    )
    sid = client.submit_job(entrypoint=f'python -c "{_PROBE}"',
                            runtime_env=job_package.build_runtime_env())
    deadline = time.monotonic() + 400
    while not client.get_job_status(sid).is_terminal() and time.monotonic() < deadline:
        time.sleep(0.5)
    status = str(client.get_job_status(sid).value)
    return f"STATUS {status}\n" + client.get_job_logs(sid)


@pytest.fixture(scope="module")
def background_jobs(ray_cluster):
    """Jobs that run beside the pipeline (the cluster has room; saves wall time)."""
    import ray.job_submission  # noqa: F401 - imported here, not half-way in a thread

    saved = {k: os.environ.get(k) for k in _SHELL_SECRETS}
    os.environ.update(_SHELL_SECRETS)
    pool = ThreadPoolExecutor(max_workers=3)
    cli_argv = ["--address", ray_cluster.address, "--ship", "installed", "--",
                "simulate", "/nonexistent-dir/x", "--preset", "no-such-preset"]
    futures = {
        "probe": pool.submit(_probe_job, ray_cluster),
        "failing": pool.submit(_submit, ray_cluster, ["prepare", "no-such-config"]),
        "cli": pool.submit(jobs.cli_main, cli_argv),  # token found like a user's shell
    }
    try:
        yield futures
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.integration
def test_wrong_token_is_refused(ray_cluster):
    with pytest.raises(MixHicError, match="(?i)auth|forbidden|401|403"):
        jobs.submit(["simulate", "/tmp/x"], address=ray_cluster.address, token="wrong",
                    ship="installed", on_log=lambda text: None)


def _pipeline_ready() -> str | None:
    for module in ("mixhic.platform.pretrain", "mixhic.pipelines.prepare"):
        if importlib.util.find_spec(module) is None:  # not imported here: jobs import it
            return f"{module} does not exist yet"
    missing = {"prepare-demo", "demo-pretrain"} - set(shipped_configs())
    return f"configs not shipped yet: {sorted(missing)}" if missing else None


@pytest.mark.integration
def test_submit_simulate_prepare_pretrain_on_uris(ray_cluster, background_jobs):
    """simulate -> prepare (out: file:// URI) -> pretrain (data + storage: file:// URIs)."""
    reason = _pipeline_ready()
    if reason:
        pytest.skip(reason)
    root = ray_cluster.root
    genome, data, storage = root / "genome", f"file://{root}/data", f"file://{root}/ray-runs"

    sim = _submit(ray_cluster, ["simulate", "tiny", f"out_dir={genome}", "seed=0"])
    assert sim.exit_code == 0, sim.logs[-3000:]
    assert (genome / "genome.mcool").is_file() and (genome / "atac.bw").is_file()

    prep = _submit(ray_cluster, [
        "prepare", "prepare-demo", f"root={genome}", f"out={data}",
        "datasets.hic.enabled=false", "datasets.loops.enabled=false",
        "datasets.cage.enabled=false",
    ])
    assert prep.exit_code == 0, prep.logs[-3000:]
    manifest = json.loads((root / "data" / "manifest.json").read_text())
    assert "pretrain" in json.dumps(manifest)
    assert list((root / "data" / "pretrain").glob("*.parquet"))

    run_name = "submit-pretrain"
    pre = _submit(ray_cluster, [
        "pretrain", "demo-pretrain", f"data.data_dir={data}", f"run.storage_path={storage}",
        f"run.run_name={run_name}", f"run.runs_dir={root / 'runs'}", "run.register=false",
        "train.epochs=1", "train.max_steps_per_epoch=2", "scaling.num_workers=1",
        "scaling.cpus_per_worker=0.5",
    ])
    assert pre.exit_code == 0, pre.logs[-3000:]

    # Ray Train's checkpoints and the exported model directory under the storage URI
    run_dir = root / "ray-runs" / run_name
    assert list(run_dir.glob("checkpoint_*/model.safetensors")), sorted(map(str, run_dir.rglob("*")))
    model_dir = run_dir / "model"  # pretrain's documented <storage>/<run>/model
    assert (model_dir / "mixhic.json").is_file(), (
        f"no model directory at {model_dir}: a file:// run.storage_path must be written "
        f"there, not to a relative 'file:' folder (checkpoints.copy_model_dir/save_model_dir)"
    )
    from mixhic.platform.checkpoints import load_model_dir

    model, meta = load_model_dir(f"file://{model_dir}")
    assert meta["kind"] == "pretrain" and sum(p.numel() for p in model.parameters()) > 0

    # the MLflow run the job logged, in the sqlite store it was pointed at
    from mlflow.tracking import MlflowClient

    run_ids = re.findall(r"MLflow run ([0-9a-f]{32})", pre.logs)
    assert run_ids, pre.logs[-3000:]
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    run = client.get_run(run_ids[-1])
    assert run.info.status == "FINISHED"
    assert any("loss" in key for key in run.data.metrics), run.data.metrics
    assert "model" in {a.path for a in client.list_artifacts(run.info.run_id)}


@pytest.mark.integration
def test_job_runs_the_shipped_wheel_not_the_checkout(background_jobs):
    """The job imports mixhic from the shipped py_modules and the stdlib's platform."""
    logs = background_jobs["probe"].result(timeout=420)
    assert logs.startswith("STATUS SUCCEEDED"), logs[-3000:]
    line = next(x for x in logs.splitlines() if x.startswith("RESULT "))
    cli_file, platform_file, version, job_env = json.loads(line[len("RESULT ") :])
    leaked = [k for k, v in job_env.items() if v in _SHELL_SECRETS.values()]
    assert not leaked, f"secrets of the submitting shell reached the job: {leaked}"
    assert not set(_SHELL_SECRETS) & set(job_env)
    assert not cli_file.startswith(str(REPO)) and "runtime_resources" in cli_file
    assert not platform_file.startswith(str(REPO)) and platform_file.endswith("platform.py")
    assert version == "0.1.0"


@pytest.mark.integration
def test_failing_job_status_reaches_the_caller(background_jobs):
    outcome = background_jobs["failing"].result(timeout=420)
    assert outcome.status == "FAILED"
    assert outcome.exit_code == 2  # the CLI's exit code for a user error, passed through
    assert "no-such-config" in outcome.logs


@pytest.mark.integration
def test_cli_exit_status_of_a_failing_job(background_jobs):
    """`mixhic submit` itself (the CLI, token from ~/.ray/auth_token) exits with the
    job's status: argparse's 2 for a bad --preset."""
    assert background_jobs["cli"].result(timeout=420) == 2
