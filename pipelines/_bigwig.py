"""A numpy reader of a bigWig's base-level intervals (no per-bp expansion).

pyBigWig's ``values()`` expands every interval to one float per bp, and ``intervals()``
returns Python tuples; both cost far more than binning itself. This module reads the
file's R-tree index and its zlib data blocks directly and returns the intervals of a
region as three arrays, which :func:`mixhic.pipelines.bigwig_reader.read_track_bins` bins
exactly (the same per-bp mean as ``values()``, without the expansion).

Only the layout every bigWig writer produces is read (little-endian, version >= 3, one
section per data block); anything else raises :class:`UnsupportedBigWig` when the file
is opened and the caller keeps pyBigWig's per-bp path. Reference: the bigWig format
(Kent et al. 2010, supplement; UCSC ``bbiFile.h``/``bwgQuery.c``).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator

import numpy as np

__all__ = ["BigWigIndex", "UnsupportedBigWig"]

_BIGWIG_MAGIC = 0x888FFC26
_CHROM_TREE_MAGIC = 0x78CA8C91
_CIR_TREE_MAGIC = 0x2468ACE0
_HEADER = struct.Struct("<IHHQQQHHQQIQ")  # 64 bytes
_CHROM_TREE_HEADER = struct.Struct("<IIIIQQ")  # 32 bytes
_CIR_HEADER_SIZE = 48
_NODE = struct.Struct("<BBH")
_SECTION = struct.Struct("<IIIIIBBH")  # chromId start end itemStep itemSpan type reserved count
_LEAF = np.dtype([("c0", "<u4"), ("b0", "<u4"), ("c1", "<u4"), ("b1", "<u4"),
                  ("offset", "<u8"), ("size", "<u8")])
_BRANCH = np.dtype([("c0", "<u4"), ("b0", "<u4"), ("c1", "<u4"), ("b1", "<u4"),
                    ("offset", "<u8")])
_BEDGRAPH = np.dtype([("start", "<u4"), ("end", "<u4"), ("value", "<f4")])
_VARSTEP = np.dtype([("start", "<u4"), ("value", "<f4")])


class UnsupportedBigWig(ValueError):
    """The file's layout is not one this reader handles (use pyBigWig's per-bp path)."""


class BigWigIndex:
    """Intervals of a local bigWig file as numpy arrays.

    Open it in the worker that reads (it holds a file descriptor). ``chroms()`` mirrors
    pyBigWig's: ``chroms()`` -> {name: length}, ``chroms(name)`` -> length or None.
    """

    def __init__(self, path: str):
        self.path = path
        self._bw = None
        self._fd = os.open(path, os.O_RDONLY)
        try:
            self._read_header()
        except (struct.error, ValueError, zlib.error) as exc:
            os.close(self._fd)
            raise UnsupportedBigWig(f"{path}: {exc}") from None

    # ------------------------------------------------------------------ file structure

    def _read(self, offset: int, size: int) -> bytes:
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise UnsupportedBigWig(f"{self.path}: truncated at byte {offset}")
        return data

    def _read_header(self) -> None:
        (magic, version, _zooms, chrom_tree, _data, index, _fields, _defined, _autosql,
         _summary, uncompress, _ext) = _HEADER.unpack(self._read(0, _HEADER.size))
        if magic != _BIGWIG_MAGIC:
            raise UnsupportedBigWig("not a little-endian bigWig")
        if version < 3:
            raise UnsupportedBigWig(f"bigWig version {version}")
        self._compressed = uncompress > 0
        magic, _block, key_size, val_size, _n, _ = _CHROM_TREE_HEADER.unpack(
            self._read(chrom_tree, _CHROM_TREE_HEADER.size))
        if magic != _CHROM_TREE_MAGIC or val_size != 8:
            raise UnsupportedBigWig("unexpected chromosome tree")
        self._ids: dict[str, int] = {}
        self._sizes: dict[str, int] = {}
        self._walk_chroms(chrom_tree + _CHROM_TREE_HEADER.size, key_size)
        if self._read(index, 4) != struct.pack("<I", _CIR_TREE_MAGIC):
            raise UnsupportedBigWig("unexpected data index")
        self._root = index + _CIR_HEADER_SIZE

    def _walk_chroms(self, offset: int, key_size: int) -> None:
        is_leaf, _, count = _NODE.unpack(self._read(offset, _NODE.size))
        item = key_size + 8
        body = self._read(offset + _NODE.size, count * item)
        for k in range(count):
            rec = body[k * item:(k + 1) * item]
            if is_leaf:
                name = rec[:key_size].rstrip(b"\0").decode()
                cid, size = struct.unpack("<II", rec[key_size:])
                self._ids[name], self._sizes[name] = cid, size
            else:
                self._walk_chroms(struct.unpack("<Q", rec[key_size:])[0], key_size)

    def _blocks(self, cid: int, start: int, end: int) -> np.ndarray:
        """Leaf items (data blocks) overlapping ``cid:[start, end)``, in file order."""
        found = []
        todo = [self._root]
        lo, hi = (cid << 32) | start, (cid << 32) | end
        while todo:
            offset = todo.pop()
            is_leaf, _, count = _NODE.unpack(self._read(offset, _NODE.size))
            dtype = _LEAF if is_leaf else _BRANCH
            items = np.frombuffer(self._read(offset + _NODE.size, count * dtype.itemsize), dtype)
            first = (items["c0"].astype(np.uint64) << np.uint64(32)) | items["b0"]
            last = (items["c1"].astype(np.uint64) << np.uint64(32)) | items["b1"]
            sel = items[(first < np.uint64(hi)) & (last > np.uint64(lo))]
            if is_leaf:
                found.append(sel)
            else:
                todo.extend(int(o) for o in sel["offset"][::-1])
        if not found:
            return np.zeros(0, _LEAF)
        blocks = np.concatenate(found)
        return blocks[np.argsort(blocks["offset"], kind="stable")]

    # ------------------------------------------------------------------ public

    def chroms(self, name: str | None = None):
        if name is None:
            return dict(self._sizes)
        return self._sizes.get(name)

    def blocks(self, chrom: str, start: int, end: int
               ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The intervals of each data block that overlaps ``chrom:[start, end)``, in file
        order (genomic order in files from every common writer), as stored: not clipped,
        not trimmed to the region. Yields ``(starts int64, ends int64, values float32)``.
        """
        cid = self._ids.get(chrom)
        if cid is None or end <= start:
            return
        blocks = self._blocks(cid, start, end)
        if not len(blocks):
            return
        # one read per run of contiguous blocks (writers lay them out back to back)
        offsets = blocks["offset"].astype(np.int64)
        sizes = blocks["size"].astype(np.int64)
        breaks = np.flatnonzero(offsets[1:] != offsets[:-1] + sizes[:-1]) + 1
        for run in np.split(np.arange(len(blocks)), breaks):
            base = int(offsets[run[0]])
            data = self._read(base, int(offsets[run[-1]] + sizes[run[-1]]) - base)
            for k in run:
                a = int(offsets[k]) - base
                raw = data[a:a + int(sizes[k])]
                if self._compressed:
                    raw = zlib.decompress(raw)
                s, e, v = self._section(raw, cid)
                if len(s):
                    yield s, e, v

    def intervals(self, chrom: str, start: int, end: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Intervals overlapping ``chrom:[start, end)``, sorted by start, not clipped.

        Returns ``(starts int64, ends int64, values float32)``; empty for an unknown
        chromosome or a region without data.
        """
        got = list(self.blocks(chrom, start, end))
        if not got:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        s, e, v = (x[0] if len(x) == 1 else np.concatenate(x) for x in zip(*got))
        if len(s) > 1 and (s[1:] < s[:-1]).any():
            order = np.argsort(s, kind="stable")
            s, e, v = s[order], e[order], v[order]
        if len(s) > 1 and (s[1:] < e[:-1]).any():  # overlapping intervals (malformed)
            keep = (e > start) & (s < end)
            return s[keep], e[keep], v[keep]
        # sorted and disjoint: the overlapping ones are one slice (views, no copies)
        a = int(np.searchsorted(e, start, side="right"))
        b = int(np.searchsorted(s, end, side="left"))
        return s[a:b], e[a:b], v[a:b]

    def _section(self, raw: bytes, cid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        chrom, start, _end, step, span, kind, _, count = _SECTION.unpack_from(raw)
        body = np.frombuffer(raw, offset=_SECTION.size, count=-1, dtype=np.uint8)
        if kind == 1:
            dtype = _BEDGRAPH
        elif kind == 2:
            dtype = _VARSTEP
        elif kind == 3:
            dtype = np.dtype("<f4")
        else:
            raise UnsupportedBigWig(f"{self.path}: unknown section type {kind}")
        if len(body) != count * dtype.itemsize:
            raise UnsupportedBigWig(f"{self.path}: a data block holds several sections")
        if chrom != cid:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        items = body.view(dtype)
        if kind == 1:
            s = items["start"].astype(np.int64)
            return s, items["end"].astype(np.int64), items["value"]
        if kind == 2:
            s = items["start"].astype(np.int64)
            return s, s + span, items["value"]
        s = start + step * np.arange(count, dtype=np.int64)
        return s, s + span, items

    def pybigwig(self):
        """A pyBigWig handle on the same file (opened once, closed with this reader)."""
        if self._bw is None:
            import pyBigWig

            self._bw = pyBigWig.open(self.path)
        return self._bw

    def close(self) -> None:
        if self._bw is not None:
            self._bw.close()
            self._bw = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
