"""``manifest.json``: what a prepared data directory holds and how it was made.

Written last by ``mixhic prepare`` (its presence with a matching fingerprint means the
datasets beside it are complete). It records every parameter, the resolved Hi-C
settings (file group, weight kind, multiplier), input checksums, row counts per dataset
and split, QC drops, track coverage, tensor shapes and the code version; the resolved split
regions and windows dropped at split boundaries (``splits``), the loops' negatives per
kind (``negatives``) and optional datasets skipped for missing inputs (``skipped``).

Checksums: ``fast`` (default) = size + mtime + sha256 of the first and last MiB of the
file; ``sha256`` = sha256 of the whole file (slow on multi-GB .mcool files). The method
is recorded next to each digest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "MANIFEST_NAME",
    "Manifest",
    "file_checksum",
    "code_version",
    "fingerprint",
    "read_manifest",
    "write_manifest",
]

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
_MIB = 1 << 20


def file_checksum(path: str, method: str = "fast") -> dict[str, Any]:
    """Checksum record of a local file: ``{"path", "size", "method", "digest", ...}``."""
    p = Path(path)
    st = p.stat()
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        if method == "sha256":
            for block in iter(lambda: fh.read(8 * _MIB), b""):
                h.update(block)
        elif method == "fast":
            h.update(str(st.st_size).encode())
            h.update(fh.read(_MIB))
            if st.st_size > 2 * _MIB:
                fh.seek(st.st_size - _MIB)
                h.update(fh.read(_MIB))
        else:
            raise ValueError(f"checksum method must be 'fast' or 'sha256', got {method!r}")
    rec = {"path": str(p.resolve()), "size": st.st_size, "method": method, "digest": h.hexdigest()}
    if method == "fast":
        rec["method"] = "fast: size + mtime + sha256(first and last MiB)"
        rec["mtime"] = int(st.st_mtime)
    return rec


def code_version() -> dict[str, str | None]:
    """Package version and, when run from a git checkout, the commit (``+dirty`` if modified)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("mixhic")
    except PackageNotFoundError:
        ver = "unknown"
    sha = None
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )
        sha = out.stdout.strip() or None
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "."],
            capture_output=True, text=True, timeout=5, check=True,
        )
        if sha and dirty.stdout.strip():
            sha += "+dirty"
    except (OSError, subprocess.SubprocessError):
        pass
    return {"package": ver, "git": sha}


def fingerprint(params: dict[str, Any], checksums: dict[str, Any], package: str) -> str:
    """A short digest of everything that determines the output rows."""
    blob = json.dumps({"params": params, "inputs": checksums, "package": package}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Manifest:
    """Contents of ``manifest.json`` (one per prepared data directory)."""

    sample: str
    fingerprint: str
    params: dict[str, Any]
    hic: dict[str, Any]
    inputs: dict[str, Any]
    shapes: dict[str, Any]
    rows: dict[str, dict[str, int]]  # dataset -> split -> rows
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)  # dataset -> reason -> n
    coverage: dict[str, float] = field(default_factory=dict)  # track -> covered fraction
    chromosomes: dict[str, Any] = field(default_factory=dict)
    code: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    datasets: list[str] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)  # worker CPU / wall seconds
    # split regions, windows planned per split, windows dropped at split boundaries
    splits: dict[str, Any] = field(default_factory=dict)
    # loops: negative mix, negatives drawn per kind, rows per neg_kind and split
    negatives: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # optional dataset -> missing inputs
    version: int = 1

    def total_rows(self, dataset: str) -> int:
        return int(sum(self.rows.get(dataset, {}).values()))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def _fs(out: str):
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(out if "://" in out else os.path.abspath(out))


def read_manifest(out: str) -> Manifest | None:
    """The manifest in directory/URI ``out``, or None when absent."""
    import pyarrow.fs as pafs

    fs, root = _fs(out)
    path = f"{root.rstrip('/')}/{MANIFEST_NAME}"
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as fh:
        return Manifest.from_json(fh.read().decode())


def write_manifest(out: str, manifest: Manifest) -> str:
    """Write ``manifest.json`` atomically (temp file + rename); returns its path."""
    fs, root = _fs(out)
    root = root.rstrip("/")
    tmp = f"{root}/.{MANIFEST_NAME}.tmp"
    with fs.open_output_stream(tmp) as fh:
        fh.write(manifest.to_json().encode())
    fs.move(tmp, f"{root}/{MANIFEST_NAME}")
    return f"{root}/{MANIFEST_NAME}"
