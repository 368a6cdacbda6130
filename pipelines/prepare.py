"""``mixhic prepare CONFIG [key=value ...]``: genome files -> windowed Parquet with Ray Data.

    >>> cfg = load_config("prepare-demo", PrepareConfig, ["root=/tmp/genome", "out=/tmp/data"])
    >>> manifest = prepare(cfg)
    >>> manifest.rows["loops"]          # {"train": ..., "val": ..., "test": ...}

Paths. Relative input paths and ``out`` are resolved against ``root`` (default: the
current directory), so a config can name ``genome.mcool`` and be pointed at any
``mixhic simulate`` output with ``root=/path``. ``out`` may also be a pyarrow filesystem
URI (``file:///...``, ``s3://...``); inputs must be local files (HDF5/bigWig).

Layout of ``out``::

    <out>/pretrain/part-<chunk>.parquet ...   one directory per dataset
    <out>/hic/ ... <out>/loops/ ... <out>/cage/ ...
    <out>/manifest.json                       written last: the output is complete
    <out>/.staging/                           only while running or after an interruption

Splits are regions (``splits.val/test``: chromosomes, ``chrom:start-end`` or BED files;
see :class:`Splits`); a window's split follows from its extent, windows crossing a split
boundary are dropped and counted (``manifest.splits``). Datasets marked ``optional``
whose input files are absent are skipped with a log note (``manifest.skipped``).

The driver validates every input (names, resolution, weights, coordinates, split
regions, windows per split) before any task starts, then runs one Ray Data task per chromosome chunk
(:mod:`mixhic.pipelines.extract`). Interrupted runs resume: chunks whose completion
marker exists in ``.staging`` are skipped, the others are redone with the same file
names; datasets are moved into place only when every chunk is done, then the manifest
is written. A rerun with identical inputs and parameters is a no-op (``run.force=true``
redoes it).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from mixhic.core.config import load_config, to_dict
from mixhic.core.errors import MixHicError
from mixhic.pipelines import readers
from mixhic.pipelines.manifest import (
    Manifest,
    code_version,
    file_checksum,
    fingerprint,
    read_manifest,
    write_manifest,
)
from mixhic.pipelines.names import match_names, resolve_name
from mixhic.pipelines.schema import DATASETS, WindowShape, dataset_schema
from mixhic.pipelines.windows import (
    NEGATIVE_KINDS,
    SPLIT_NAMES,
    chunk_ranges,
    grid_windows,
    loop_anchor_bins,
    loop_windows,
    merge_regions,
    parse_region,
    tss_windows,
    window_split_codes,
)

__all__ = [
    "HicInput",
    "TrackInput",
    "Inputs",
    "GridPlan",
    "LoopPlan",
    "CagePlan",
    "Datasets",
    "Splits",
    "Normalization",
    "QcConfig",
    "RunConfig",
    "PrepareConfig",
    "Job",
    "plan_job",
    "build_tasks",
    "prepare",
    "cli_main",
]

log = logging.getLogger(__name__)


# ============================================================================ config


@dataclass(frozen=True)
class HicInput:
    """The Hi-C file: ``x.cool``, ``x.mcool::resolutions/N``, ``x.mcool::/N`` or ``x.mcool``."""

    uri: str
    resolution: int | None = None  # bp; required for a multi-resolution file without ::group
    weight: str | None = "weight"  # bins column with balancing weights; null = raw counts
    divisive: bool | None = None  # null = from the column's attributes / hic2cool convention
    multiplier: float | None = None  # null = auto (undo unit-marginal balancing)


@dataclass(frozen=True)
class TrackInput:
    name: str
    uri: str


@dataclass(frozen=True)
class Inputs:
    hic: HicInput
    tracks: tuple[TrackInput, ...]
    loops: str | None = None  # bedpe of true loops (loops dataset)
    cage: str | None = None  # CAGE bigWig (cage dataset)
    tss: str | None = None  # TSS BED (cage dataset)
    blacklist: str | None = None  # BED of regions whose windows are dropped

    def __post_init__(self):
        if not self.tracks:
            raise ValueError("tracks: at least one track is needed")
        names = [t.name for t in self.tracks]
        if len(set(names)) != len(names):
            raise ValueError(f"tracks: duplicate track names {names}")


@dataclass(frozen=True)
class GridPlan:
    """Grid windows (pretrain, hic): starts every ``step_bp``; y - x in ``offsets_bp``."""

    enabled: bool = True
    optional: bool = False  # inputs absent: skip with a log note instead of an error
    step_bp: int = 62_500
    offsets_bp: tuple[int, ...] = (0,)

    def __post_init__(self):
        if self.step_bp <= 0:
            raise ValueError(f"step_bp must be positive, got {self.step_bp}")
        if not self.offsets_bp or any(o < 0 for o in self.offsets_bp):
            raise ValueError(f"offsets_bp must be non-negative, got {self.offsets_bp}")


@dataclass(frozen=True)
class LoopPlan:
    """Loop windows: positives from the bedpe plus ``negative_ratio`` negatives each.

    ``negatives``: fractions of the negatives per kind (``windows.NEGATIVE_KINDS``):
    ``distance`` (distance-matched, non-zero contact: the paper's protocol),
    ``high_contact`` (distance-matched, contact in the top ``high_contact_top`` fraction
    at that distance), ``near_loop`` (``near_loop_bins`` bins, Chebyshev, from a loop,
    beyond ``exclude_bins``), ``anchor_signal`` (both anchors in the top ``anchor_top``
    fraction of summed track signal). Kinds that cannot be filled fall back to distance.
    """

    enabled: bool = True
    optional: bool = False  # inputs absent: skip with a log note instead of an error
    min_distance_bp: int = 20_000
    max_distance_bp: int = 2_000_000
    negative_ratio: float = 1.0  # negatives per positive
    jitter_bins: int = 2  # distance kernel half-width for negatives
    exclude_bins: int = 2  # negatives stay farther than this from every positive
    negatives: dict[str, float] = field(default_factory=lambda: {"distance": 1.0})
    high_contact_top: float = 0.2
    anchor_top: float = 0.1
    near_loop_bins: tuple[int, int] = (2, 5)

    def __post_init__(self):
        if not 0 < self.min_distance_bp < self.max_distance_bp:
            raise ValueError("min_distance_bp/max_distance_bp: need 0 < min < max")
        if self.negative_ratio < 0:
            raise ValueError(f"negative_ratio must be >= 0, got {self.negative_ratio}")
        unknown = sorted(set(self.negatives) - set(NEGATIVE_KINDS))
        if unknown:
            raise ValueError(f"negatives: unknown kind {unknown[0]!r} "
                             f"(known: {', '.join(NEGATIVE_KINDS)})")
        if any(v < 0 for v in self.negatives.values()) or \
                abs(sum(self.negatives.values()) - 1.0) > 1e-6:
            raise ValueError(f"negatives: fractions must be >= 0 and sum to 1, got "
                             f"{dict(self.negatives)}")
        for key in ("high_contact_top", "anchor_top"):
            if not 0 < getattr(self, key) <= 1:
                raise ValueError(f"{key} must be in (0, 1], got {getattr(self, key)}")
        lo, hi = self.near_loop_bins
        if not 1 <= lo <= hi or hi <= self.exclude_bins:
            raise ValueError(f"near_loop_bins: need 1 <= min <= max and max > exclude_bins "
                             f"({self.exclude_bins}), got {list(self.near_loop_bins)}")


@dataclass(frozen=True)
class CagePlan:
    enabled: bool = True
    optional: bool = False  # inputs absent: skip with a log note instead of an error


@dataclass(frozen=True)
class Datasets:
    pretrain: GridPlan = field(default_factory=GridPlan)
    hic: GridPlan = field(default_factory=GridPlan)
    loops: LoopPlan = field(default_factory=LoopPlan)
    cage: CagePlan = field(default_factory=CagePlan)


@dataclass(frozen=True)
class Splits:
    """Regions of the validation and test splits; everything else is train.

    Each entry is a chromosome (``chr10``), a region ``chr1:1,000,000-2,500,000`` (bp,
    half-open; quote it in YAML when it holds commas) or a BED file (a path ending in
    ``.bed``/``.bed.gz`` or holding a ``/``; relative paths resolve against ``root``).
    Names match the Hi-C file's spelling-independently (``10`` = ``chr10``); a name the
    file lacks is an error, except a whole chromosome outside an explicit
    ``chromosomes`` list, which that run ignores (a warning). A window
    belongs to a split when its extent (x-anchor start to y-anchor end) lies inside one
    of the split's regions; windows crossing a boundary are dropped and counted. Empty
    lists: no such split. The paper's choice (val chr10, chr11; test chr3, chr13, chr17)
    is in ``prepare-paper.yaml``.
    """

    val: tuple[str, ...] = ()
    test: tuple[str, ...] = ()


@dataclass(frozen=True)
class Normalization:
    hic: Literal["log1p_fixed", "log1p_window_max", "log1p", "none"] = "log1p_fixed"
    hic_cap: float = 255.0  # log1p_fixed: contacts clipped here, then scaled to [0, 1]
    epi: Literal["log2p1", "none"] = "log2p1"
    epi_missing: Literal["fill", "ignore"] = "fill"  # see readers.read_track_bins
    epi_fill: float = 0.0
    require_track_data: bool = True  # a track without data on a chromosome is an error


@dataclass(frozen=True)
class QcConfig:
    min_nonzero_frac: float = 0.1
    max_masked_bins: int = 0  # 0 = the paper's "all finite"

    def __post_init__(self):
        if not 0 <= self.min_nonzero_frac <= 1:
            raise ValueError(f"min_nonzero_frac must be in [0, 1], got {self.min_nonzero_frac}")


@dataclass(frozen=True)
class RunConfig:
    chunk_bins: int = 1000  # window starts per task (5 Mb at 5 kb)
    workers: int | None = None  # concurrent tasks; null = the cluster's CPUs
    num_cpus: int | None = None  # local Ray only
    seed: int = 0
    force: bool = False
    compression: Literal["snappy", "zstd", "lz4", "none"] = "snappy"
    checksum: Literal["fast", "sha256"] = "fast"

    def __post_init__(self):
        if self.chunk_bins <= 0:
            raise ValueError(f"chunk_bins must be positive, got {self.chunk_bins}")


@dataclass(frozen=True)
class PrepareConfig:
    inputs: Inputs
    out: str = "prepared"
    root: str = "."
    sample: str = "sample"
    window_bins: int = 50
    epi_bin: int = 100
    chromosomes: tuple[str, ...] = ()  # empty = every Hi-C chromosome long enough
    aliases: dict[str, str] = field(default_factory=dict)  # Hi-C name -> name in other files
    datasets: Datasets = field(default_factory=Datasets)
    splits: Splits = field(default_factory=Splits)
    normalize: Normalization = field(default_factory=Normalization)
    qc: QcConfig = field(default_factory=QcConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self):
        if self.window_bins < 2:
            raise ValueError(f"window_bins must be >= 2, got {self.window_bins}")
        if self.epi_bin <= 0:
            raise ValueError(f"epi_bin must be positive, got {self.epi_bin}")

    @property
    def enabled(self) -> list[str]:
        return [d for d in DATASETS if getattr(self.datasets, d).enabled]


# ============================================================================ driver


def _resolve(cfg: PrepareConfig, path: str | None) -> str | None:
    if path is None or "://" in path or os.path.isabs(path.split("::")[0]):
        return path
    return os.path.join(cfg.root, path)


def _out_uri(cfg: PrepareConfig) -> str:
    out = _resolve(cfg, cfg.out)
    return out if "://" in out else os.path.abspath(out)


def _chrom_filter(chroms: np.ndarray, hic_names: list[str], aliases, where: str) -> dict[str, str]:
    """Map names used in a text file to Hi-C names (unmatched names are left out)."""
    present = sorted(set(chroms.tolist()))
    fwd = match_names(hic_names, present, aliases)
    return {v: k for k, v in fwd.items()}


def _check_coords(name: str, starts, ends, size: int, where: str) -> None:
    if len(ends) and int(np.max(ends)) > size:
        k = int(np.argmax(ends))
        raise MixHicError(
            f"{where}: region {name}:{int(starts[k])}-{int(ends[k])} is past the end of "
            f"{name} (length {size} bp)"
        )


_DATASET_INPUTS = {"pretrain": (), "hic": (), "loops": ("loops",), "cage": ("cage", "tss")}


def _datasets_to_run(cfg: PrepareConfig) -> tuple[list[str], dict[str, str]]:
    """Enabled datasets whose own inputs exist, and the optional ones skipped (-> reason).

    A required dataset with a missing input is one error listing every missing file and
    the overrides that turn the dataset off or make it optional.
    """
    run, skipped, required = [], {}, []
    for d in cfg.enabled:
        missing = []
        for key in _DATASET_INPUTS[d]:
            value = getattr(cfg.inputs, key)
            path = _resolve(cfg, value) if value else None
            if not path:
                missing.append(f"inputs.{key} (not set)")
            elif "://" not in path and not os.path.exists(path.split("::")[0]):
                missing.append(f"inputs.{key} ({path}: not found)")
        if not missing:
            run.append(d)
        elif getattr(cfg.datasets, d).optional:
            skipped[d] = ", ".join(missing)
            log.info("datasets.%s: skipped (optional; missing %s)", d, skipped[d])
        else:
            required.append((d, missing))
    if required:
        need = "; ".join(f"datasets.{d} needs {', '.join(m)}" for d, m in required)
        fixes = ", ".join(f"datasets.{d}.enabled=false or datasets.{d}.optional=true"
                          for d, _ in required)
        raise MixHicError(f"missing inputs: {need}; provide them or set {fixes}")
    if not run:
        raise MixHicError(f"datasets: every enabled dataset was skipped "
                          f"({', '.join(sorted(skipped))}: inputs missing); nothing to prepare")
    return run, skipped


def _split_chrom(name: str, hic_names: list[str], aliases: dict, where: str, uri: str) -> str:
    """The Hi-C spelling of a split's chromosome, or one line naming the key and the names."""
    inverse = {v: k for k, v in aliases.items()}
    if inverse.get(name) in hic_names:
        return inverse[name]
    hit = match_names([name], hic_names).get(name)
    if hit is not None:
        return hit
    shown = ", ".join(hic_names[:12]) + (", ..." if len(hic_names) > 12 else "")
    with_chr = sum(n.lower().startswith("chr") for n in hic_names)
    hint = ""
    if name.lower().startswith("chr") and with_chr == 0:
        hint = f"; note the file spells names without 'chr' (e.g. {hic_names[0]!r})"
    elif not name.lower().startswith("chr") and with_chr == len(hic_names):
        hint = f"; note the file spells names with 'chr' (e.g. {hic_names[0]!r})"
    raise MixHicError(f"{where}: chromosome {name!r} is not in the Hi-C file {uri} "
                      f"(chromosomes: {shown}){hint}")


def _split_regions(cfg: PrepareConfig, info, chroms: list[str], n_bins: dict[str, int]
                   ) -> tuple[dict[str, np.ndarray], dict]:
    """Resolve and check ``splits``: ``{chrom: (R, 3) [start, end, code]}`` and a summary.

    Codes 1 = val, 2 = test (``windows.SPLIT_NAMES``); regions of one split merged, sorted.
    A whole chromosome (or a region ending at its end) extends to the end of its last bin.
    """
    res, hic_names = info.resolution, info.chromnames
    entries: dict[str, dict[str, list[tuple[int, int, str]]]] = {"val": {}, "test": {}}
    for split in ("val", "test"):
        for k, entry in enumerate(getattr(cfg.splits, split)):
            key = f"splits.{split}[{k}]"
            kind, name, start, end = parse_region(entry)
            if kind == "bed":
                path = readers.local_path(_resolve(cfg, name), f"{key}: BED")
                bed = readers.read_bed(path)
                if len(bed["chrom"]) == 0:
                    raise MixHicError(f"{key}: {path} holds no region")
                items = [(str(c), int(a), int(b), f"{key} ({path}, region {n + 1})")
                         for n, (c, a, b) in enumerate(zip(bed["chrom"], bed["start"], bed["end"]))]
            elif kind == "chrom" and cfg.chromosomes and \
                    name not in match_names(chroms, [name], cfg.aliases).values():
                # a run restricted to some chromosomes ignores whole other ones
                log.warning("%s: %s is not among the selected chromosomes (%s); ignored",
                            key, name, ", ".join(chroms[:8]))
                continue
            else:
                items = [(name, start, end, key)]
            for c, a, b, where in items:
                hc = _split_chrom(c, hic_names, cfg.aliases, where, info.uri)
                size = info.chromsizes[hc]
                if a is None:
                    a, b = 0, size
                if a >= b:
                    raise MixHicError(f"{where}: region {c}:{a}-{b} is empty (start >= end)")
                if b > size:
                    raise MixHicError(f"{where}: region {c}:{a}-{b} ends past the end of {hc} "
                                      f"(length {size} bp)")
                if b == size:
                    b = -(-size // res) * res  # the last (partial) bin belongs to the region
                entries[split].setdefault(hc, []).append((a, b, where))
    regions: dict[str, np.ndarray] = {}
    summary: dict = {"val": [], "test": []}
    for c in chroms:
        parts = []
        merged = {}
        for code, split in ((1, "val"), (2, "test")):
            got = entries[split].get(c, [])
            merged[split] = merge_regions([a for a, _, _ in got], [b for _, b, _ in got])
            parts.append(np.c_[merged[split], np.full(len(merged[split]), code)])
            summary[split] += [f"{c}:{a}-{b}" for a, b in merged[split].tolist()]
        val, test = merged["val"], merged["test"]
        if len(val) and len(test):
            k = np.searchsorted(val[:, 1], test[:, 0], side="right")
            kc = np.minimum(k, len(val) - 1)
            hit = np.flatnonzero((k < len(val)) & (val[kc, 0] < test[:, 1]))
            if len(hit):
                ts, te = test[hit[0]]
                vs, ve = val[kc[hit[0]]]
                vw = next(w for a, b, w in entries["val"][c] if a < te and ts < b)
                tw = next(w for a, b, w in entries["test"][c] if a < ve and vs < b)
                raise MixHicError(f"{vw} overlaps {tw} on {c} (val {c}:{vs}-{ve}, test "
                                  f"{c}:{ts}-{te}); a region cannot be in both val and test")
        both = np.concatenate(parts).astype(np.int64)
        regions[c] = both[np.argsort(both[:, 0], kind="stable")]
    return regions, summary


def _check_planned_splits(cfg: PrepareConfig, planned: dict, summary: dict) -> None:
    """Fail before any work when a configured val/test split would get no window."""
    for split in ("val", "test"):
        if not getattr(cfg.splits, split):
            continue
        if not summary[split]:
            log.warning("splits.%s: none of its regions is on the selected chromosomes; "
                        "the %s split will be empty", split, split)
            continue
        for d, counts in planned.items():
            if counts[split] == 0:
                shown = ", ".join(summary[split][:3]) + (", ..." if len(summary[split]) > 3 else "")
                raise MixHicError(
                    f"splits.{split}: no {d} window lies inside the {split} regions ({shown}); "
                    f"planned {d} windows per split: train {counts['train']}, val "
                    f"{counts['val']}, test {counts['test']}, crossing a split boundary "
                    f"{counts['crossing']}"
                )


def build_tasks(cfg: PrepareConfig) -> tuple[dict, list[dict], dict]:
    """Validate inputs and plan the job: ``(settings, tasks, meta)`` (all JSON-able)."""
    inp = cfg.inputs
    if not cfg.enabled:
        raise MixHicError("datasets: every dataset is disabled; nothing to prepare")
    hic_uri = _resolve(cfg, inp.hic.uri)
    info = readers.inspect_hic(
        hic_uri, inp.hic.resolution, inp.hic.weight, inp.hic.divisive,
        inp.hic.multiplier,
    )
    enabled, skipped = _datasets_to_run(cfg)
    res, w = info.resolution, cfg.window_bins
    if res % cfg.epi_bin:
        raise MixHicError(f"epi_bin {cfg.epi_bin} must divide the Hi-C resolution {res}")
    hic_names = info.chromnames
    if cfg.chromosomes:
        chroms = [resolve_name(c, hic_names, info.uri, cfg.aliases) for c in cfg.chromosomes]
    else:
        chroms = [c for c in hic_names if -(-info.chromsizes[c] // res) >= w]
    if not chroms:
        raise MixHicError(f"{info.uri}: no chromosome holds a {w}-bin window")
    n_bins = {c: -(-info.chromsizes[c] // res) for c in chroms}
    short = [c for c in chroms if n_bins[c] < w]
    if short:
        raise MixHicError(f"{info.uri}: chromosome {short[0]} is shorter than one {w}-bin window")

    # ---- tracks: names per chromosome, data present
    tracks = [{"name": t.name, "uri": readers.local_path(_resolve(cfg, t.uri), f"track {t.name!r}")}
              for t in inp.tracks]
    track_chroms: dict[str, list[str | None]] = {c: [] for c in chroms}
    coverage_checked = []
    for t in tracks:
        bw = readers.open_bigwig(t["uri"], f"track {t['name']!r}")
        try:
            available = list(bw.chroms())
            for c in chroms:
                where = f"{t['uri']} (track {t['name']!r})"
                if cfg.normalize.require_track_data:
                    name = resolve_name(c, available, where, cfg.aliases)
                    readers.check_track_data(bw, name, where)
                else:
                    name = match_names([c], available, cfg.aliases).get(c)
                track_chroms[c].append(name)
            coverage_checked.append(t["name"])
        finally:
            bw.close()

    settings = {
        "sample": cfg.sample,
        "hic": {k: getattr(info, k) for k in info.__dataclass_fields__},
        "window_bins": w,
        "epi_bin": cfg.epi_bin,
        "tracks": tracks,
        "cage_uri": None,
        "datasets": {},
        "hic_transform": cfg.normalize.hic,
        "hic_cap": cfg.normalize.hic_cap,
        "epi_transform": cfg.normalize.epi,
        "epi_missing": cfg.normalize.epi_missing,
        "epi_fill": cfg.normalize.epi_fill,
        "min_nonzero_frac": cfg.qc.min_nonzero_frac,
        "max_masked_bins": cfg.qc.max_masked_bins,
        "seed": cfg.run.seed,
        "compression": cfg.run.compression,
        "staging": None,
    }
    per_chrom: dict[str, dict[str, np.ndarray]] = {c: {} for c in chroms}
    meta: dict = {"inputs": {"hic": hic_uri, "tracks": {t["name"]: t["uri"] for t in tracks}},
                  "dropped": {}, "datasets": enabled, "skipped": skipped}
    for name in ("pretrain", "hic"):
        if name in enabled:
            plan = getattr(cfg.datasets, name)
            for off in plan.offsets_bp:
                if off % res:
                    raise MixHicError(f"datasets.{name}.offsets_bp: {off} is not a multiple of {res}")
            settings["datasets"][name] = {"step_bp": plan.step_bp, "offsets_bp": list(plan.offsets_bp)}

    if "loops" in enabled:
        lp = cfg.datasets.loops
        path = readers.local_path(_resolve(cfg, inp.loops), "bedpe")
        meta["inputs"]["loops"] = path
        bp = readers.read_bedpe(path)
        to_hic = _chrom_filter(np.concatenate([bp["chrom1"], bp["chrom2"]]), hic_names,
                               cfg.aliases, path)
        unknown = sorted((set(bp["chrom1"].tolist()) | set(bp["chrom2"].tolist())) - set(to_hic))
        if unknown:
            raise MixHicError(
                f"{path}: chromosome(s) {unknown[:5]}{' ...' if len(unknown) > 5 else ''} "
                f"are not in the Hi-C file (it has {hic_names[:5]}{' ...' if len(hic_names) > 5 else ''}); "
                "fix the names or map them with aliases"
            )
        c1 = np.asarray([to_hic.get(c) for c in bp["chrom1"]], dtype=object)
        c2 = np.asarray([to_hic.get(c) for c in bp["chrom2"]], dtype=object)
        drops = {"trans": int((c1 != c2).sum()), "distance": 0, "edge": 0, "other_chrom": 0}
        for c in chroms:
            sel = (c1 == c) & (c2 == c)
            _check_coords(c, np.r_[bp["start1"][sel], bp["start2"][sel]],
                          np.r_[bp["end1"][sel], bp["end2"][sel]], info.chromsizes[c], path)
            i, j, dist = loop_anchor_bins(bp["start1"][sel], bp["end1"][sel],
                                          bp["start2"][sel], bp["end2"][sel], res)
            ok = (dist >= lp.min_distance_bp) & (dist <= lp.max_distance_bp)
            drops["distance"] += int((~ok).sum())
            i, j = i[ok], j[ok]
            x, y, keep = loop_windows(i, j, n_bins[c], w)
            drops["edge"] += int((~keep).sum())
            pairs = np.unique(np.stack([i[keep], j[keep]], 1), axis=0).reshape(-1, 2)
            per_chrom[c]["loops"] = pairs
        drops["other_chrom"] = int(((c1 == c2) & ~np.isin(c1, chroms)).sum())
        meta["dropped"]["loops_plan"] = drops
        settings["datasets"]["loops"] = {
            "min_bins": max(1, lp.min_distance_bp // res),
            "max_bins": lp.max_distance_bp // res,
            "negative_ratio": lp.negative_ratio,
            "jitter_bins": lp.jitter_bins,
            "exclude_bins": lp.exclude_bins,
            "negatives": {k: v for k, v in lp.negatives.items() if v > 0},
            "high_contact_top": lp.high_contact_top,
            "anchor_top": lp.anchor_top,
            "near_loop_bins": list(lp.near_loop_bins),
        }

    cage_chroms: dict[str, str | None] = {c: None for c in chroms}
    if "cage" in enabled:
        cage_uri = readers.local_path(_resolve(cfg, inp.cage), "CAGE track")
        settings["cage_uri"] = cage_uri
        settings["datasets"]["cage"] = {}
        meta["inputs"]["cage"] = cage_uri
        bw = readers.open_bigwig(cage_uri, "CAGE track")
        try:
            for c in chroms:
                if cfg.normalize.require_track_data:
                    cage_chroms[c] = resolve_name(c, list(bw.chroms()), cage_uri, cfg.aliases)
                    readers.check_track_data(bw, cage_chroms[c], cage_uri)
                else:
                    cage_chroms[c] = match_names([c], list(bw.chroms()), cfg.aliases).get(c)
        finally:
            bw.close()
        tss_path = readers.local_path(_resolve(cfg, inp.tss), "TSS BED")
        meta["inputs"]["tss"] = tss_path
        bed = readers.read_bed(tss_path)
        to_hic = _chrom_filter(bed["chrom"], hic_names, cfg.aliases, tss_path)
        hc = np.asarray([to_hic.get(c) for c in bed["chrom"]], dtype=object)
        pos = np.where(bed["strand"] == "-", bed["end"] - 1, bed["start"])
        for c in chroms:
            sel = hc == c
            _check_coords(c, bed["start"][sel], bed["end"][sel], info.chromsizes[c], tss_path)
            per_chrom[c]["tss"] = tss_windows(pos[sel], n_bins[c], w, res)[0]

    blacklist: dict[str, np.ndarray] = {}
    if inp.blacklist:
        bl_path = readers.local_path(_resolve(cfg, inp.blacklist), "blacklist BED")
        meta["inputs"]["blacklist"] = bl_path
        bed = readers.read_bed(bl_path)
        to_hic = _chrom_filter(bed["chrom"], hic_names, cfg.aliases, bl_path)
        hc = np.asarray([to_hic.get(c) for c in bed["chrom"]], dtype=object)
        for c in chroms:
            sel = hc == c
            blacklist[c] = np.stack([bed["start"][sel], bed["end"][sel]], 1)

    # ---- splits: regions checked, windows counted per split before any work
    regions, split_summary = _split_regions(cfg, info, chroms, n_bins)
    half = w // 2
    planned = {d: {"train": 0, "val": 0, "test": 0, "crossing": 0} for d in enabled}
    for c in chroms:
        for d in enabled:
            if d in ("pretrain", "hic"):
                spec = settings["datasets"][d]
                x, y = grid_windows(n_bins[c], w, spec["step_bp"], res, spec["offsets_bp"])
            elif d == "loops":
                x, y = per_chrom[c]["loops"][:, 0] - half, per_chrom[c]["loops"][:, 1] - half
            else:
                x = y = per_chrom[c]["tss"]
            codes = window_split_codes(x * res, (y + w) * res, regions[c])
            for code, split in enumerate(SPLIT_NAMES):
                planned[d][split] += int((codes == code).sum())
            planned[d]["crossing"] += int((codes < 0).sum())
    _check_planned_splits(cfg, planned, split_summary)
    meta["splits"] = {**split_summary, "planned": planned}

    # ---- tasks: one per chromosome chunk
    tasks = []
    ex = cfg.datasets.loops.exclude_bins
    for ci, c in enumerate(chroms):
        loops = per_chrom[c].get("loops", np.zeros((0, 2), np.int64))
        tss_x = per_chrom[c].get("tss", np.zeros(0, np.int64))
        for k, (lo, hi) in enumerate(chunk_ranges(n_bins[c] - w + 1, cfg.run.chunk_bins)):
            lsel = (loops[:, 0] - half >= lo) & (loops[:, 0] - half < hi)
            # loops of neighbouring chunks that negatives of this one must stay away from
            near = ~lsel & (loops[:, 0] - half >= lo - ex) & (loops[:, 0] - half < hi + ex)
            tsel = (tss_x >= lo) & (tss_x < hi)
            bl = blacklist.get(c, np.zeros((0, 2), np.int64))
            tasks.append({
                "chunk_id": f"{ci:04d}-{k:05d}",
                "chrom": c,
                "chrom_index": ci,
                "chunk_index": k,
                "n_bins": n_bins[c],
                "lo": lo,
                "hi": hi,
                "split_regions": regions[c].tolist(),
                "track_chroms": track_chroms[c],
                "cage_chrom": cage_chroms[c],
                "loops_i": loops[lsel, 0].tolist(),
                "loops_j": loops[lsel, 1].tolist(),
                "exclude_i": loops[near, 0].tolist(),
                "exclude_j": loops[near, 1].tolist(),
                "tss_x": tss_x[tsel].tolist(),
                "blacklist": bl.tolist(),
            })

    def chrom_split(c: str) -> str:
        r = regions[c]
        if len(r) == 0:
            return "train"
        if len(r) == 1 and r[0, 0] == 0 and r[0, 1] >= n_bins[c] * res:
            return SPLIT_NAMES[r[0, 2]]
        return "regions"

    meta["chromosomes"] = {
        c: {"length": info.chromsizes[c], "bins": n_bins[c], "split": chrom_split(c),
            "split_regions": [[a, b, SPLIT_NAMES[k]] for a, b, k in regions[c].tolist()],
            "tracks": track_chroms[c]}
        for c in chroms
    }
    meta["hic"] = settings["hic"]
    return settings, tasks, meta


def _fs(uri: str):
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(uri)


def _exists(fs, path: str) -> bool:
    import pyarrow.fs as pafs

    return fs.get_file_info(path).type != pafs.FileType.NotFound


def _read_json(fs, path: str):
    with fs.open_input_stream(path) as fh:
        return json.loads(fh.read().decode())


def _write_json(fs, path: str, obj) -> None:
    with fs.open_output_stream(path + ".tmp") as fh:
        fh.write(json.dumps(obj, sort_keys=True).encode())
    fs.move(path + ".tmp", path)


def _run_tasks(settings: dict, tasks: list[dict], workers: int | None) -> None:
    """The Ray Data job: one map task per chunk; rows go to Parquet from the workers."""
    import ray
    from mixhic.pipelines.extract import ChunkWorker

    if not tasks:
        return
    n_cpu = int(ray.cluster_resources().get("CPU", 1))
    workers = max(1, min(workers or n_cpu, len(tasks)))
    ds = ray.data.from_items(
        [{"task": json.dumps(t)} for t in tasks], override_num_blocks=len(tasks)
    )
    ds = ds.map_batches(
        ChunkWorker,
        fn_constructor_args=(json.dumps(settings),),
        batch_size=1,
        concurrency=workers,
        num_cpus=1,
        batch_format="numpy",
    )
    from tqdm.auto import tqdm

    done = 0
    with tqdm(total=len(tasks), desc="prepare: chunks", unit="chunk") as bar:
        for row in ds.iter_rows():
            done += 1
            bar.update(1)
            if done % max(1, len(tasks) // 10) == 0 or done == len(tasks):
                log.info("chunk %s done (%d/%d)", row["chunk_id"], done, len(tasks))


@dataclass
class Job:
    """A planned prepare run: everything the Ray tasks and the commit step need."""

    settings: dict
    tasks: list[dict]
    meta: dict
    out: str  # URI/absolute path of the output directory
    root: str  # the output directory in its filesystem
    staging: str  # staging directory in its filesystem
    inputs: dict  # input key -> checksum record
    params: dict
    code: dict
    fingerprint: str


def plan_job(cfg: PrepareConfig) -> Job:
    """Validate the inputs and plan the chunks (no Ray, no output written)."""
    settings, tasks, meta = build_tasks(cfg)
    out = _out_uri(cfg)
    _, root = _fs(out)
    root = root.rstrip("/")
    staging = f"{root}/.staging"
    settings["staging"] = staging if "://" not in out else out.rstrip("/") + "/.staging"
    inputs = {key: file_checksum(path, cfg.run.checksum) for key, path in _input_files(meta).items()}
    params = to_dict(cfg)
    code = code_version()
    # what determines the rows: everything but how the run is scheduled
    output_params = {**params, "run": {k: v for k, v in params["run"].items()
                                       if k not in ("workers", "num_cpus", "force", "checksum")}}
    fp = fingerprint({"params": output_params, "hic": meta["hic"]},
                     {k: v["digest"] for k, v in inputs.items()}, code["package"])
    return Job(settings, tasks, meta, out, root, staging, inputs, params, code, fp)


def _check_out_writable(fs, root: str, out: str) -> None:
    """Create ``root`` and prove it writable (a probe file), or one clear error line."""
    import pyarrow
    import pyarrow.fs as pafs

    try:
        if fs.get_file_info(root).type == pafs.FileType.File:
            raise MixHicError(f"out {out}: exists and is not a directory")
        fs.create_dir(root, recursive=True)
        probe = f"{root}/.mixhic-write-test"
        with fs.open_output_stream(probe) as f:
            f.write(b"ok")
        fs.delete_file(probe)
    except (OSError, pyarrow.lib.ArrowException) as exc:
        why = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise MixHicError(f"out {out}: cannot write there ({why}); give a writable "
                          "directory or URI (out=...)") from None


def prepare(cfg: PrepareConfig) -> Manifest:
    """Window the configured genome files into Parquet datasets; return the manifest.

    Starts (or joins, with ``RAY_ADDRESS``) Ray. Idempotent: see the module docstring.
    """
    from mixhic.core.runtime import ensure_ray

    job = plan_job(cfg)
    settings, tasks, meta, out, root, staging = (
        job.settings, job.tasks, job.meta, job.out, job.root, job.staging
    )
    fs, _ = _fs(out)
    fp, inputs, params, code = job.fingerprint, job.inputs, job.params, job.code

    existing = read_manifest(out)
    if existing is not None and existing.fingerprint == fp and not cfg.run.force:
        log.info("%s is up to date (fingerprint %s); run.force=true redoes it", out, fp)
        return existing

    # ---- staging: resume only a run of the same fingerprint
    _check_out_writable(fs, root, out)
    plan_path = f"{staging}/_plan.json"
    if _exists(fs, staging):
        same = _exists(fs, plan_path) and _read_json(fs, plan_path).get("fingerprint") == fp
        if not same or cfg.run.force:
            log.info("discarding stale staging directory %s", staging)
            fs.delete_dir(staging)
    fs.create_dir(f"{staging}/_chunks", recursive=True)
    _write_json(fs, plan_path, {"fingerprint": fp, "chunks": len(tasks)})

    todo = []
    for t in tasks:
        m = f"{staging}/_chunks/{t['chunk_id']}.json"
        if _exists(fs, m):
            marker = _read_json(fs, m)
            if all(_exists(fs, f"{staging}/{d}/{f}") for d, f in marker["files"].items()):
                continue
        todo.append(t)
    if len(todo) < len(tasks):
        log.info("resuming: %d of %d chunks already done", len(tasks) - len(todo), len(tasks))
    datasets = list(meta["datasets"])  # enabled, minus optional ones without inputs
    log.info("preparing %s: %d chunks, datasets %s -> %s",
             cfg.sample, len(todo), ", ".join(datasets), out)

    ensure_ray(num_cpus=cfg.run.num_cpus)
    _run_tasks(settings, todo, cfg.run.workers)

    # ---- collect markers, then commit datasets and write the manifest last
    markers = [_read_json(fs, f"{staging}/_chunks/{t['chunk_id']}.json") for t in tasks]
    shape = WindowShape(cfg.window_bins, len(cfg.inputs.tracks),
                        cfg.window_bins * (meta["hic"]["resolution"] // cfg.epi_bin))
    rows = {d: {s: 0 for s in SPLIT_NAMES} for d in datasets}
    dropped = {d: {} for d in datasets}
    kinds: dict[str, dict[str, int]] = {}  # loops: rows per neg_kind and split
    sampled: dict[str, int] = {}  # loops: negatives drawn per kind (before QC)
    covered = np.zeros(len(cfg.inputs.tracks))
    span = 0
    timed = [m["timing"] for m in markers if m.get("timing") and m["timing"].get("cpu_s") is not None]
    timing = {
        "chunks": len(markers),
        "worker_cpu_s": float(sum(t["cpu_s"] for t in timed)),
        "worker_wall_s": (max(t["end"] for t in timed) - min(t["start"] for t in timed)) if timed else 0.0,
    }
    for m in markers:
        for d, per_split in m.get("rows_split", {}).items():
            for split, n in per_split.items():
                rows[d][split] += n
        for kind, per_split in m.get("neg_kinds", {}).items():
            for split, n in per_split.items():
                kinds.setdefault(kind, {sp: 0 for sp in SPLIT_NAMES})[split] += n
        for kind, n in m.get("neg_sampled", {}).items():
            sampled[kind] = sampled.get(kind, 0) + n
        for d, reasons in m["dropped"].items():
            for r, n in reasons.items():
                dropped[d][r] = dropped[d].get(r, 0) + n
        covered += np.asarray(m["covered_bp"], dtype=float)
        span += m["span_bp"]
    if "loops_plan" in meta["dropped"]:
        dropped["loops"].update({f"plan_{k}": v for k, v in meta["dropped"]["loops_plan"].items()})

    import pyarrow.parquet as pq

    manifest_path = f"{root}/manifest.json"
    if _exists(fs, manifest_path):
        fs.delete_file(manifest_path)  # the output is incomplete until the new one is written
    for d in datasets:
        ddir = f"{staging}/{d}"
        fs.create_dir(ddir, recursive=True)
        if sum(rows[d].values()) == 0:
            pq.write_table(dataset_schema(d, shape).empty_table(), f"{ddir}/part-empty.parquet",
                           filesystem=fs)
        final = f"{root}/{d}"
        if _exists(fs, final):
            fs.delete_dir(final)
        fs.move(ddir, final)
    for d in DATASETS:  # a dataset disabled now must not linger from an older run
        if d not in datasets and _exists(fs, f"{root}/{d}"):
            fs.delete_dir(f"{root}/{d}")

    manifest = Manifest(
        sample=cfg.sample,
        fingerprint=fp,
        params=params,
        hic=meta["hic"],
        inputs=inputs,
        shapes={"window_bins": shape.window_bins, "n_tracks": shape.n_tracks,
                "epi_bins": shape.epi_bins, "hic": list(shape.hic_shape),
                "epi": list(shape.epi_shape), "tracks": [t.name for t in cfg.inputs.tracks],
                "resolution": meta["hic"]["resolution"], "epi_bin": cfg.epi_bin,
                "epi_transform": cfg.normalize.epi, "hic_transform": cfg.normalize.hic},
        rows=rows,
        dropped=dropped,
        coverage={t.name: (float(covered[k] / span) if span else 0.0)
                  for k, t in enumerate(cfg.inputs.tracks)},
        chromosomes=meta["chromosomes"],
        code=code,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        datasets=datasets,
        timing=timing,
        splits={**meta["splits"],
                "dropped_split_boundary": {d: dropped[d].get("split_boundary", 0)
                                           for d in datasets}},
        negatives=({"mix": settings["datasets"]["loops"]["negatives"],
                    "negative_ratio": cfg.datasets.loops.negative_ratio,
                    "sampled": sampled, "rows": kinds} if "loops" in datasets else {}),
        skipped=meta["skipped"],
    )
    for split in ("val", "test"):
        for d in datasets:
            if getattr(cfg.splits, split) and meta["splits"][split] and rows[d][split] == 0:
                log.warning("%s: the %s split is empty after QC (rows per split: %s)",
                            d, split, rows[d])
    write_manifest(out, manifest)
    fs.delete_dir(staging)
    log.info("wrote %s: %s", out, {d: sum(r.values()) for d, r in rows.items()})
    return manifest


def _input_files(meta: dict) -> dict[str, str]:
    files = {"hic": meta["inputs"]["hic"].split("::")[0]}
    for name, path in meta["inputs"]["tracks"].items():
        files[f"track:{name}"] = path
    for key in ("loops", "cage", "tss", "blacklist"):
        if key in meta["inputs"]:
            files[key] = meta["inputs"][key]
    return files


# ============================================================================ CLI


def cli_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mixhic prepare",
        description="Window .cool/.mcool + bigWig (+ bedpe, TSS BED) into Parquet datasets "
        "with Ray Data. Relative paths resolve against `root`.",
    )
    parser.add_argument("config", help="YAML file or shipped config name (prepare-demo, prepare-paper)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. root=demo out=data")
    ns = parser.parse_args(argv)
    cfg = load_config(ns.config, PrepareConfig, ns.overrides)
    manifest = prepare(cfg)
    for d in manifest.datasets:
        log.info("%-8s %s", d, manifest.rows[d])
    return 0
