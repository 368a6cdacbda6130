"""What a submitted job's environment may carry: an allow-list of non-secret settings of
the submitting shell, and never a credential.

The job's environment gets the settings named in :data:`FORWARDED_ENV` (MLflow URIs and
experiment, the S3 endpoint; nothing else, ``MIXHIC_*`` variables included: mixhic
reads its settings from its config and ``key=value``, not from the environment),
plus the ``env`` given to :func:`~mixhic.platform.jobs.submit`. Credentials are never
sent: a job's runtime env and entrypoint are stored in the cluster's job table, readable
by anyone with dashboard access. A variable whose name looks secret (``KEY``,
``SECRET``, ``TOKEN``, ``PASSWORD``, ``CREDENTIAL``; :func:`looks_secret`) or a value or
argument holding a URI with userinfo (``https://user:pw@host``) is refused with a
:class:`MixHicError` naming the safer route: give the cluster its own credentials
(instance role / workload identity, a Kubernetes secret mounted as env vars,
``~/.netrc`` or ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` set on the cluster).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence

from mixhic.core.errors import MixHicError

__all__ = ["FORWARDED_ENV", "SECRET_MARKERS", "looks_secret", "check_no_secrets",
           "forwarded_env"]

log = logging.getLogger(__name__)

# Variables copied from the submitting shell into the job: an allow-list of non-secret
# settings (anything else, secrets above all, stays on this machine).
FORWARDED_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_S3_ENDPOINT_URL",
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


def forwarded_env(env: Mapping[str, str] | None) -> dict[str, str]:
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
