"""Where the readers find input files: local paths only (HDF5 and bigWig readers cannot
stream remote URIs)."""

from __future__ import annotations

import os
from pathlib import Path

from mixhic.core.errors import MixHicError

__all__ = ["local_path"]


def local_path(uri: str | os.PathLike, what: str = "input") -> str:
    """A local filesystem path for ``uri`` (``file://`` stripped); checks that it exists."""
    text = str(uri)
    if text.startswith("file://"):
        text = text[len("file://"):]
    elif "://" in text:
        raise MixHicError(
            f"{text}: {what} must be a local file (HDF5/bigWig readers cannot stream "
            f"remote URIs); copy it to the workers' filesystem first"
        )
    if not Path(text).exists():
        raise MixHicError(f"{text}: {what} file not found")
    return text
