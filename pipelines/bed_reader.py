"""Reading the text formats: BED intervals and bedpe loops, checked line by line.

Header, ``#``, ``track`` and ``browser`` lines are skipped; a malformed line is a
one-line :class:`~mixhic.core.errors.MixHicError` naming the file and line.
"""

from __future__ import annotations

import numpy as np
from mixhic.core.errors import MixHicError
from mixhic.pipelines.paths import local_path

__all__ = ["read_bedpe", "read_bed"]


def _data_lines(path: str):
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            yield lineno, line.rstrip("\n").split("\t") if "\t" in line else line.split()


def _check_interval(path, lineno: int, start_name: str, start: int, end_name: str,
                    end: int) -> None:
    """One clear line for a negative start or a start past the end (BED is 0-based,
    half-open: start <= end)."""
    if start < 0:
        raise MixHicError(f"{path}:{lineno}: {start_name} {start} is negative")
    if start > end:
        raise MixHicError(f"{path}:{lineno}: {start_name} {start} > {end_name} {end}")


def read_bedpe(uri: str) -> dict[str, np.ndarray]:
    """Loops as arrays: chrom1, start1, end1, chrom2, start2, end2 (header lines skipped)."""
    path = local_path(uri, "bedpe")
    cols: dict[str, list] = {k: [] for k in ("chrom1", "start1", "end1", "chrom2", "start2", "end2")}
    for lineno, f in _data_lines(path):
        if len(f) < 6:
            raise MixHicError(f"{path}:{lineno}: bedpe needs 6 columns, got {len(f)}")
        try:
            vals = (f[0], int(f[1]), int(f[2]), f[3], int(f[4]), int(f[5]))
        except ValueError:
            if lineno == 1:  # a header line such as "chrom1 x1 x2 ..."
                continue
            raise MixHicError(f"{path}:{lineno}: bedpe coordinates must be integers") from None
        _check_interval(path, lineno, "start1", vals[1], "end1", vals[2])
        _check_interval(path, lineno, "start2", vals[4], "end2", vals[5])
        for k, v in zip(cols, vals):
            cols[k].append(v)
    return {
        k: np.asarray(v, dtype=object if k.startswith("chrom") else np.int64)
        for k, v in cols.items()
    }


def read_bed(uri: str) -> dict[str, np.ndarray]:
    """Intervals as arrays: chrom, start, end, name ('' if absent), strand ('.' if absent)."""
    path = local_path(uri, "BED")
    chrom, start, end, name, strand = [], [], [], [], []
    for lineno, f in _data_lines(path):
        if len(f) < 3:
            raise MixHicError(f"{path}:{lineno}: BED needs at least 3 columns, got {len(f)}")
        try:
            s, e = int(f[1]), int(f[2])
        except ValueError:
            if lineno == 1:
                continue
            raise MixHicError(f"{path}:{lineno}: BED coordinates must be integers") from None
        _check_interval(path, lineno, "start", s, "end", e)
        chrom.append(f[0])
        start.append(s)
        end.append(e)
        name.append(f[3] if len(f) > 3 else "")
        strand.append(f[5] if len(f) > 5 else ".")
    return {
        "chrom": np.asarray(chrom, dtype=object),
        "start": np.asarray(start, dtype=np.int64),
        "end": np.asarray(end, dtype=np.int64),
        "name": np.asarray(name, dtype=object),
        "strand": np.asarray(strand, dtype=object),
    }
