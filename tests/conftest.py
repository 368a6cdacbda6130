"""Shared fixtures: one session-scoped local Ray, tmp homes, the simulated genome, real files.

Test tiers: a test that starts Ray (and through it Ray Train / Tune / Serve) is marked
``integration`` here, from the fixtures it uses (directly or through other fixtures), so
the marker cannot be forgotten; ``pytest -m "not integration"`` is the quick unit tier.
A test outside that tier that starts Ray itself fails (see ``_unit_tests_start_no_ray``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest
from netutil import free_port  # noqa: F401  (re-exported for tests)

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "real"

# Ray writes ~/.ray/auth_token and session dirs: keep them out of the real home.
# Unix socket paths must stay short, hence a short prefix under /tmp.
_TMP_HOME = Path(tempfile.mkdtemp(prefix="mxh-"))
os.environ["HOME"] = str(_TMP_HOME)
os.environ.setdefault("RAY_TMPDIR", str(_TMP_HOME / "ray"))
os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{_TMP_HOME}/mlflow.db")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.pop("RAY_ADDRESS", None)
# The Serve app's default HTTP path (HAProxy ingress) needs its settings before Ray starts.
from mixhic.serve.config import HAPROXY_ENV  # noqa: E402

for _key, _value in HAPROXY_ENV.items():
    os.environ.setdefault(_key, _value)


# Fixtures that start services: the session's local Ray (Train, Tune, Serve and the
# fixtures built on it: tiny_data, prepared, predicted, server, ...) and a `ray start` head.
SERVICE_FIXTURES = frozenset({"ray_local", "ray_cluster"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(config, items):
    """Mark every test using a service fixture, directly or through others, integration."""
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _unit_tests_start_no_ray(request):
    """A test not marked integration must not start Ray (e.g. by calling a recipe
    without the ``ray_local`` fixture): it would slow the unit tier down unseen."""
    ray = sys.modules.get("ray")
    before = ray is not None and ray.is_initialized()
    yield
    ray = sys.modules.get("ray")
    if (not before and ray is not None and ray.is_initialized()
            and request.node.get_closest_marker("integration") is None):
        pytest.fail(f"{request.node.nodeid} started Ray but is not marked integration: use "
                    "the ray_local fixture (which marks it) or mark it", pytrace=False)


def _processes_of_this_session() -> dict[int, str]:
    """``{pid: command line}`` of the processes (this one left out) whose environment holds
    this session's throwaway ``HOME``: everything the tests started (Ray, Train, Tune,
    Serve, MLflow servers, CLI runs), whatever its parent now is; the home is made here,
    so no process that started pytest has it (Linux ``/proc``; empty elsewhere)."""
    mark = f"HOME={_TMP_HOME}".encode()
    found = {}
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
            if pid != os.getpid() and mark in env:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                found[pid] = cmd.decode(errors="replace").strip()[:120]
        except OSError:  # gone meanwhile, or another user's
            continue
    return found


def _stop_leftover_processes(grace_s: float = 10.0) -> None:
    """Kill what the tests left running after their teardown (once: an orphaned
    ``ray::TrainController`` of the session's Ray), so that a run leaves nothing behind;
    names them."""
    deadline = time.monotonic() + grace_s  # ray.shutdown() lets its daemons exit on their own
    while (left := _processes_of_this_session()) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if left:
        sys.stderr.write("conftest: killed processes the tests left running:\n"
                         + "".join(f"  {pid} {cmd}\n" for pid, cmd in left.items()))


def pytest_sessionfinish(session, exitstatus):
    _stop_leftover_processes()
    shutil.rmtree(_TMP_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole session (2 CPUs, no dashboard)."""
    import ray
    from mixhic.core.runtime import ensure_ray

    # On a loaded host the raylet can time out waiting for its agents: retry the start.
    for attempt in range(3):
        try:
            ensure_ray(num_cpus=2, object_store_gb=1.5)
            break
        except Exception:  # noqa: BLE001 - Ray raises several types for a failed start
            ray.shutdown()
            if attempt == 2:
                raise
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip("../shared/data/real is absent (fresh clone): real-file tests skipped")
    return REAL_DATA
