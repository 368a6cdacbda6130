"""Shared fixtures: one session-scoped local Ray, tmp homes, the simulated genome, real files."""

from __future__ import annotations

import os
import shutil
import tempfile
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


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_TMP_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole session (2 CPUs, no dashboard)."""
    import ray

    from mixhic.platform.runtime import ensure_ray

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
