"""Talking to a Ray job server: its address and auth token (looked up like Ray does), the
client, and streaming a job's logs until it ends.

Ray token authentication: the client sends ``Authorization: Bearer <token>``, the token
taken from (first found) the ``token`` argument, ``RAY_AUTH_TOKEN``, the file named by
``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token`` -- the same precedence Ray uses. Get a
cluster's token with ``ray get-auth-token`` on its head node (or from the Kubernetes
secret KubeRay created) and copy it to ``~/.ray/auth_token`` on the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mixhic.core.errors import MixHicError

__all__ = ["DEFAULT_ADDRESS", "resolve_address", "resolve_auth_token", "connect",
           "wait_for_end", "status_name"]

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


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


def connect(address: str, token: str | None):
    """A ``JobSubmissionClient`` for ``address`` (one clear error line when it fails)."""
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


def wait_for_end(client, submission_id: str, on_log: Callable[[str], None],
                 deadline: float | None, chunks: list[str]):
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
        if status_name(info.status) in _TERMINAL:
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


def status_name(status: Any) -> str:
    """A job status as its plain name (``SUCCEEDED``, ...)."""
    return str(getattr(status, "value", status))
