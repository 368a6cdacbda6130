"""Reading Hi-C files: cooler (.cool/.mcool) through cooler, and contact bands straight
from the HDF5 pixel table.

Everything here takes paths/URIs and returns numpy arrays; handles are opened by the caller
(a Ray worker) and never travel between processes. Every failure users can cause is a
:class:`~mixhic.core.errors.MixHicError` whose one-line message names the file and the
problem (missing file, resolution not in the file, no weight column, unknown chromosome,
region past the end of a chromosome).

Cooler URIs accepted (``file://`` prefix optional):
    ``x.cool``                        a single-resolution file
    ``x.mcool::resolutions/5000``     a multi-resolution file, standard layout
    ``x.mcool::/2``                   legacy multi-resolution layout (groups ``/0``, ``/1``...)
    ``x.mcool`` + ``resolution=5000`` the group of that bin size, whichever layout

Balancing weights (the ``weight`` option): cooler's own ``cooler balance`` writes a
*multiplicative* ``weight`` column (balanced = w_i * w_j * count); hic2cool writes
*divisive* ``KR``/``VC``/``VC_SQRT`` columns (balanced = count / (w_i * w_j)). The kind is
read from the column's ``divisive_weights`` attribute when present, else inferred
(hic2cool-made file + KR/VC/VC_SQRT -> divisive), and can be forced with ``divisive``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from mixhic.core.errors import MixHicError
from mixhic.pipelines.paths import local_path

__all__ = [
    "parse_cooler_uri",
    "list_resolutions",
    "resolve_cooler_uri",
    "HicInfo",
    "inspect_hic",
    "open_cooler",
    "read_band",
    "HicPixels",
    "read_band_pixels",
    "read_bin_mask",
    "check_region",
]

log = logging.getLogger(__name__)

_DIVISIVE_NAMES = ("KR", "VC", "VC_SQRT")


def parse_cooler_uri(uri: str) -> tuple[str, str | None]:
    """Split ``path::group`` into ``(local path, group or None)``; checks the file exists."""
    text = str(uri)
    path, sep, group = text.partition("::")
    path = local_path(path, "Hi-C")
    return path, (group if sep else None)


def list_resolutions(path: str) -> dict[int, str]:
    """Bin size -> group path of every cooler in ``path`` (one entry for a .cool)."""
    import h5py

    out: dict[int, str] = {}

    def visit(name: str, grp) -> None:
        if all(k in grp for k in ("bins", "chroms", "pixels", "indexes")):
            binsize = grp.attrs.get("bin-size")
            if binsize is not None and np.isfinite(float(binsize)):
                out.setdefault(int(binsize), "/" + name.strip("/") if name else "/")

    try:
        with h5py.File(path, "r") as h5:
            visit("", h5)
            h5.visititems(lambda n, obj: visit(n, obj) if isinstance(obj, h5py.Group) else None)
    except OSError as exc:
        raise MixHicError(f"{path}: not a cooler/HDF5 file ({exc})") from None
    return out


def resolve_cooler_uri(uri: str, resolution: int | None = None) -> str:
    """The full ``path::group`` URI of the cooler to read, choosing ``resolution`` if given.

    Raises MixHicError listing the available resolutions when ``resolution`` is absent.
    """
    path, group = parse_cooler_uri(uri)
    available = list_resolutions(path)
    if not available:
        raise MixHicError(f"{path}: contains no cooler")
    listing = ", ".join(str(r) for r in sorted(available))
    if group not in (None, "", "/"):
        g = "/" + group.strip("/")
        by_group = {v: k for k, v in available.items()}
        if g not in by_group:
            raise MixHicError(
                f"{uri}: no cooler at {g!r} (resolutions in the file: {listing})"
            )
        if resolution is not None and by_group[g] != resolution:
            raise MixHicError(
                f"{uri}: holds {by_group[g]} bp bins but resolution={resolution} was asked "
                f"(resolutions in the file: {listing})"
            )
        return f"{path}::{g}"
    if resolution is None:
        if len(available) > 1:
            raise MixHicError(
                f"{path}: holds several resolutions ({listing}); choose one with `resolution`"
            )
        return f"{path}::{next(iter(available.values()))}"
    if resolution not in available:
        raise MixHicError(
            f"{path}: resolution {resolution} bp is not in the file (available: {listing})"
        )
    return f"{path}::{available[resolution]}"


@dataclass(frozen=True)
class HicInfo:
    """What a worker needs to read a Hi-C file: all plain values (picklable)."""

    uri: str  # full path::group
    resolution: int
    chromsizes: dict[str, int]
    weight: str | None  # None = raw counts
    divisive: bool
    multiplier: float  # applied to balanced contacts to bring them back to count scale

    @property
    def chromnames(self) -> list[str]:
        return list(self.chromsizes)


def open_cooler(uri: str):
    """A ``cooler.Cooler`` for a full ``path::group`` URI (cheap; reopens per read)."""
    import cooler

    try:
        return cooler.Cooler(uri)
    except (OSError, KeyError, ValueError) as exc:
        raise MixHicError(f"{uri}: cannot open as a cooler ({exc})") from None


def inspect_hic(
    uri: str,
    resolution: int | None = None,
    weight: str | None = "weight",
    divisive: bool | None = None,
    multiplier: float | None = None,
) -> HicInfo:
    """Open a Hi-C file, choose the resolution, check the weight column, return :class:`HicInfo`.

    Args:
        weight: bins column holding balancing weights, or None for raw counts.
        divisive: force the weight kind; None = from the column's attributes / hic2cool.
        multiplier: factor on balanced contacts; None = automatic (multiplicative weights:
            the column's ``scale`` attribute, else the median of 1/w^2, which both undo
            cooler's unit-marginal rescaling; divisive or raw: 1).
    """
    import h5py

    full = resolve_cooler_uri(uri, resolution)
    clr = open_cooler(full)
    binsize = clr.binsize
    if binsize is None:
        raise MixHicError(f"{full}: variable-size bins are not supported")
    chromsizes = {str(k): int(v) for k, v in clr.chromsizes.items()}
    _check_bin_table(clr, full[:-3] if full.endswith("::/") else full, int(binsize), chromsizes)
    if weight is None:
        return HicInfo(full, int(binsize), chromsizes, None, False, float(multiplier or 1.0))
    columns = [c for c in clr.bins().columns if c not in ("chrom", "start", "end")]
    shown = full[:-3] if full.endswith("::/") else full
    if weight not in columns:
        hint = (
            f"weight columns in the file: {', '.join(columns)}; pick one with "
            "inputs.hic.weight=<name>"
            if columns
            else "the file has no weight column"
        )
        raise MixHicError(
            f"{shown}: no balancing weight column {weight!r} ({hint}); run "
            f"`cooler balance {shown}` to add one, or set inputs.hic.weight=null for raw counts"
        )
    path, group = full.split("::", 1)
    with h5py.File(path, "r") as h5:
        attrs = dict(h5[group]["bins"][weight].attrs)
        generated = str(h5[group].attrs.get("generated-by", h5.attrs.get("generated-by", "")))
    if divisive is None:
        if "divisive_weights" in attrs:
            divisive = bool(attrs["divisive_weights"])
        else:
            divisive = generated.startswith("hic2cool") and weight in _DIVISIVE_NAMES
    if multiplier is None:
        multiplier = 1.0
        if not divisive:
            scale = attrs.get("scale")
            if scale is not None and np.ndim(scale) == 0 and np.isfinite(scale):
                multiplier = float(scale)
            else:
                w = np.asarray(clr.bins()[weight][:], dtype=np.float64)
                w = w[np.isfinite(w) & (w > 0)]
                if w.size == 0:
                    raise MixHicError(f"{full}: weight column {weight!r} has no finite value")
                multiplier = float(np.median(1.0 / w**2))
    log.info(
        "%s: %d bp, weight %s (%s), multiplier %.4g",
        full, binsize, weight, "divisive" if divisive else "multiplicative", multiplier,
    )
    return HicInfo(full, int(binsize), chromsizes, weight, bool(divisive), float(multiplier))


def _check_bin_table(clr, shown: str, binsize: int, chromsizes: dict[str, int]) -> None:
    """Bins must tile every chromosome from 0 (bin ``k`` of a chromosome = ``k * binsize``
    bp): the readers, like cooler's own region queries, index bins that way."""
    with clr.open("r") as grp:
        offsets = np.asarray(grp["indexes"]["chrom_offset"][:], dtype=np.int64)
        starts = np.asarray(grp["bins"]["start"][:], dtype=np.int64)
    for k, (c, size) in enumerate(chromsizes.items()):
        n = int(offsets[k + 1] - offsets[k])
        want = -(-size // binsize)
        first = int(starts[offsets[k]]) if n else 0
        if n != want or first != 0:
            raise MixHicError(
                f"{shown}: the bin table of chromosome {c} has {n} bins starting at {first} bp "
                f"where {want} bins from 0 tile its {size} bp; rewrite the file with bins "
                f"tiling each chromosome from 0 (pixels shifted accordingly)"
            )


def check_region(chrom: str, start: int, end: int, chromsizes: dict[str, int], where: str) -> None:
    """Raise MixHicError unless ``chrom:start-end`` lies within the chromosome."""
    if chrom not in chromsizes:
        shown = ", ".join(list(chromsizes)[:8])
        raise MixHicError(f"{where}: unknown chromosome {chrom!r} (file has: {shown}, ...)")
    size = chromsizes[chrom]
    if start < 0 or end > size or start >= end:
        raise MixHicError(
            f"{where}: region {chrom}:{start}-{end} is past the end of {chrom} "
            f"(length {size} bp)" if end > size else
            f"{where}: invalid region {chrom}:{start}-{end}"
        )


def read_band(
    clr, info: HicInfo, chrom: str, rows: tuple[int, int], cols: tuple[int, int]
) -> np.ndarray:
    """Balanced contacts of bins ``rows`` x ``cols`` (bin indices within ``chrom``).

    Returns float64 ``(rows[1]-rows[0], cols[1]-cols[0])``; masked bins (NaN weight) are
    NaN; contacts are multiplied by ``info.multiplier``.
    """
    res = info.resolution
    if chrom not in info.chromsizes:
        check_region(chrom, 0, 1, info.chromsizes, info.uri)
    size = info.chromsizes[chrom]
    r0, r1 = rows
    c0, c1 = cols
    n_bins = -(-size // res)
    for lo, hi in (rows, cols):
        if hi > n_bins:
            raise MixHicError(
                f"{info.uri}: region {chrom}:{lo * res}-{hi * res} is past the end of {chrom} "
                f"(length {size} bp)"
            )
        if not 0 <= lo < hi:
            raise MixHicError(f"{info.uri}: invalid region {chrom}:{lo * res}-{hi * res}")
    region1 = (chrom, r0 * res, min(r1 * res, size))
    region2 = (chrom, c0 * res, min(c1 * res, size))
    if r0 == c0 and c1 >= r1:
        i, j, v, masked = read_band_pixels(clr, info, chrom, r0, r1, c1)
        mat = np.zeros((r1 - r0, c1 - c0))
        mat[i, j] = v
        mat[masked[: r1 - r0], :] = np.nan
        mat[:, masked] = np.nan
        return mat
    if info.weight is None:
        mat = clr.matrix(balance=False).fetch(region1, region2).astype(np.float64)
    else:
        mat = clr.matrix(balance=info.weight, divisive_weights=info.divisive).fetch(
            region1, region2
        )
    if info.multiplier != 1.0:
        mat *= info.multiplier
    return mat


_PIXEL_BLOCK = 4_000_000  # pixels read per h5py slice (bounds memory on dense maps)


class HicPixels:
    """The HDF5 datasets of one cooler that :func:`read_band_pixels` reads, looked up once.

    ``HicPixels.open(uri)`` keeps the file open (a worker reading many bands; close it
    with :meth:`close`); ``HicPixels(group)`` wraps an already open cooler group.
    """

    def __init__(self, grp, file=None):
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in grp["chroms"]["name"][:]]
        offsets = grp["indexes"]["chrom_offset"][: len(names)]
        self.chrom_offset = {n: int(o) for n, o in zip(names, offsets)}
        self.bin1_offset = grp["indexes"]["bin1_offset"]
        self.bin2_id = grp["pixels"]["bin2_id"]
        self.count = grp["pixels"]["count"]
        self._bins = grp["bins"]
        self._weights: dict[str, object] = {}
        self._file = file

    @classmethod
    def open(cls, uri: str) -> "HicPixels":
        import h5py

        path, _, group = uri.partition("::")
        try:
            h5 = h5py.File(path, "r")
        except OSError as exc:
            raise MixHicError(f"{uri}: cannot open as a cooler ({exc})") from None
        try:
            return cls(h5[group or "/"], h5)
        except KeyError as exc:
            h5.close()
            raise MixHicError(f"{uri}: cannot open as a cooler ({exc})") from None

    def weight(self, name: str):
        if name not in self._weights:
            self._weights[name] = self._bins[name]
        return self._weights[name]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_band_pixels(
    clr, info: HicInfo, chrom: str, r0: int, r1: int, c1: int, mirror: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Non-zero balanced contacts of the block rows ``[r0, r1)`` x columns ``[r0, c1)``.

    A block that starts on the diagonal holds its lower-triangle part as mirrors of its
    own rows' pixels, so a few contiguous slices of the pixel table (rows ``[r0, r1)``)
    give all of it; ``mirror=False`` returns the stored (upper-triangle) pixels only,
    for a caller that mirrors them itself (pixel ``(i, j)`` with ``j < r1 - r0`` and
    ``j != i`` is also at ``(j, i)``). Pixels of masked bins (NaN/zero weight) are left
    out. ``clr`` is a ``cooler.Cooler`` or a :class:`HicPixels` (a worker's open file).

    Returns ``(i, j, v, masked)``: int64 row/column offsets into the block, float64 values
    (balanced, times ``info.multiplier``) and the bool mask of bins ``[r0, c1)``. Rows
    come from the ``bin1_offset`` index, so only ``bin2_id`` and ``count`` are read.
    """
    if not isinstance(clr, HicPixels):
        with clr.open("r") as grp:
            return read_band_pixels(HicPixels(grp), info, chrom, r0, r1, c1, mirror)
    px = clr
    off = px.chrom_offset[chrom]
    g0, g1, gc = off + r0, off + r1, off + c1
    masked = np.zeros(c1 - r0, dtype=bool)
    row_off = np.asarray(px.bin1_offset[g0:g1 + 1], dtype=np.int64)
    p0, p1 = int(row_off[0]), int(row_off[-1])
    w = None
    if info.weight is not None:
        w = np.asarray(px.weight(info.weight)[g0:gc], dtype=np.float64)
        masked = ~np.isfinite(w) | (w == 0)
        if info.divisive:
            w = 1.0 / np.where(w == 0, np.nan, w)
    ii, jj, vv = [], [], []
    rows = np.arange(r1 - r0)
    for a in range(p0, p1, _PIXEL_BLOCK):
        b = min(a + _PIXEL_BLOCK, p1)
        b1 = np.repeat(rows, np.diff(np.clip(row_off, a, b)))  # row of each pixel
        b2 = np.asarray(px.bin2_id[a:b], dtype=np.int64)
        b2 -= g0
        v = px.count[a:b]
        sel = b2 < gc - g0
        if not sel.all():
            b1, b2, v = b1[sel], b2[sel], v[sel]
        v = v.astype(np.float64)
        if w is not None:
            v *= w[b1]
            v *= w[b2]
        if info.multiplier != 1.0:
            v *= info.multiplier
        keep = ~np.isnan(v)
        if not keep.all():
            b1, b2, v = b1[keep], b2[keep], v[keep]
        ii.append(b1)
        jj.append(b2)
        vv.append(v)
    if not ii:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), masked
    i, j, v = ((x[0] if len(x) == 1 else np.concatenate(x)) for x in (ii, jj, vv))
    if mirror:
        low = (j < r1 - r0) & (j != i)  # mirrored pixels inside the block's rows
        i, j, v = np.concatenate([i, j[low]]), np.concatenate([j, i[low]]), np.concatenate([v, v[low]])
    return i, j, v, masked


def read_bin_mask(clr, info: HicInfo, chrom: str, lo: int, hi: int) -> np.ndarray:
    """Bool ``(hi-lo,)``: True where the bin is masked (NaN/zero weight)."""
    if info.weight is None:
        return np.zeros(hi - lo, dtype=bool)
    offset = int(clr.offset(chrom))
    w = np.asarray(clr.bins()[info.weight][offset + lo : offset + hi], dtype=np.float64)
    return ~np.isfinite(w) | (w == 0)
