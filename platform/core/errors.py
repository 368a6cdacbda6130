"""Errors a user can act on: they print as one line, without a traceback."""

from __future__ import annotations

__all__ = ["MixHicError", "is_user_error"]


class MixHicError(ValueError):
    """Base class for input/config errors whose message names the file, key or field."""


def is_user_error(exc: BaseException) -> bool:
    """True for errors that should print as one line (ours, config errors, missing files)."""
    # lazy: core.config pulls yaml (+45 ms) into `from mixhic import predict_region`
    from mixhic.core.config import ConfigError

    return isinstance(exc, (MixHicError, ConfigError, FileNotFoundError))
