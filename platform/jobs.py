"""Submit a ``mixhic`` command to a Ray cluster as a job (the Ray Jobs API over HTTP).

``mixhic submit --address http://HEAD:8265 -- pretrain paper-pretrain data.data_dir=s3://...``
runs ``python -m mixhic.platform.cli pretrain ...`` as the job's entrypoint on the
cluster, streams the job's logs here and exits with the job's exit status.

    >>> outcome = submit(["pretrain", "paper-pretrain"], address="http://HEAD:8265")

Its parts: how the project reaches the cluster (``ship``: a wheel or the image's
install) in :mod:`mixhic.platform.job_package`; what the job's environment may carry
(an allow-list, never a credential) in :mod:`mixhic.platform.job_env`; the job server's
address, auth token and log streaming in :mod:`mixhic.platform.job_client`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixhic.core.cliargs import command_parser
from mixhic.core.errors import MixHicError
from mixhic.platform.cli import COMMANDS
from mixhic.platform.job_client import (
    connect,
    resolve_address,
    resolve_auth_token,
    status_name,
    wait_for_end,
)
from mixhic.platform.job_env import check_no_secrets
from mixhic.platform.job_package import Ship, build_runtime_env, load_extra

__all__ = ["JobOutcome", "submit", "entrypoint_for", "exit_code_for", "cli_main"]

log = logging.getLogger(__name__)


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
    client = connect(address, resolve_auth_token(token))
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
        status = status_name(client.get_job_status(submission_id))
        return JobOutcome(submission_id, address, status, 0)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    chunks: list[str] = []
    try:
        info, logs = wait_for_end(client, submission_id, on_log, deadline, chunks)
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
    status = status_name(info.status)
    code = exit_code_for(status, getattr(info, "driver_exit_code", None))
    (log.info if code == 0 else log.error)(
        "job %s %s (exit %d)%s", submission_id, status, code, f": {info.message}" if code else ""
    )
    return JobOutcome(submission_id, address, status, code, info.message, logs)


# --------------------------------------------------------------------------- CLI

_EPILOG = """\
examples:
  mixhic submit --address http://127.0.0.1:8265 -- pretrain paper-pretrain data.data_dir=s3://bucket/ds
  mixhic submit --ship installed --env MLFLOW_S3_ENDPOINT_URL=http://minio:9000 -- tune tune-demo run.storage_path=s3://bucket/tune
  mixhic submit --runtime-env-extra '{"pip": ["optuna"]}' --no-wait -- prepare my-prepare.yaml

address: --address, else RAY_API_SERVER_ADDRESS, else RAY_ADDRESS, else http://127.0.0.1:8265.
auth token (Ray token authentication): RAY_AUTH_TOKEN, else the file in RAY_AUTH_TOKEN_PATH,
else ~/.ray/auth_token (copy it from the head node: `ray get-auth-token`).
exit status: the job's (0 succeeded; the command's own code when it failed; 130 stopped).
"""


def cli_main(argv: list[str]) -> int:
    argv = list(argv)
    if "--" in argv:
        split = argv.index("--")
        opts, command = argv[:split], argv[split + 1 :]
    else:
        opts, command = argv, []
    parser = command_parser(
        "mixhic submit",
        "Run a mixhic command as a job on a Ray cluster; exits with its status. The command "
        "after -- has its own form, COMMAND [CONFIG] [key=value ...] [flags]; global flags "
        "before -- are this submission's, after it the job's.",
        usage="mixhic submit [flags] -- COMMAND [CONFIG] [key=value ...] [flags]",
        epilog=_EPILOG,
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
        runtime_env_extra=load_extra(ns.runtime_env_extra),
        wait=not ns.no_wait,
        submission_id=ns.submission_id,
        timeout_s=ns.timeout,
    )
    if ns.no_wait:
        log.info("%s is %s; follow it with: ray job logs -f %s", outcome.submission_id,
                 outcome.status, outcome.submission_id)
    return outcome.exit_code
