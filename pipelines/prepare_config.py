"""The typed config of ``mixhic prepare`` (:class:`PrepareConfig`): inputs, datasets and
their window plans, splits, normalisation, QC and how the run is scheduled.

    >>> cfg = load_config("prepare-demo", PrepareConfig, ["root=/tmp/genome", "out=/tmp/data"])

Relative input paths and ``out`` resolve against ``root`` (see
:mod:`mixhic.pipelines.prepare`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mixhic.core.config import check, shipped_defaults
from mixhic.pipelines.schema import DATASETS
from mixhic.pipelines.windows import NEGATIVE_KINDS

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
]


@dataclass(frozen=True)
@shipped_defaults
class HicInput:
    """The Hi-C file: ``x.cool``, ``x.mcool::resolutions/N``, ``x.mcool::/N`` or ``x.mcool``."""

    uri: str
    resolution: int | None  # bp; required for a multi-resolution file without ::group
    weight: str | None  # bins column with balancing weights; null = raw counts
    divisive: bool | None  # null = from the column's attributes / hic2cool convention
    multiplier: float | None  # null = auto (undo unit-marginal balancing)


@dataclass(frozen=True)
class TrackInput:
    name: str
    uri: str


@dataclass(frozen=True)
@shipped_defaults
class Inputs:
    hic: HicInput
    tracks: tuple[TrackInput, ...]
    loops: str | None  # bedpe of true loops (loops dataset)
    cage: str | None  # CAGE bigWig (cage dataset)
    tss: str | None  # TSS BED (cage dataset)
    blacklist: str | None  # BED of regions whose windows are dropped

    def __post_init__(self):
        check(self.tracks, "tracks", "at least one track is needed")
        names = [t.name for t in self.tracks]
        check(len(set(names)) == len(names), "tracks", f"duplicate track names {names}")


@dataclass(frozen=True)
@shipped_defaults
class GridPlan:
    """Grid windows (pretrain, hic): starts every ``step_bp``; y - x in ``offsets_bp``."""

    enabled: bool
    optional: bool  # inputs absent: skip with a log note instead of an error
    step_bp: int
    offsets_bp: tuple[int, ...]

    def __post_init__(self):
        check(self.step_bp > 0, "step_bp", f"must be positive, got {self.step_bp}")
        check(self.offsets_bp and all(o >= 0 for o in self.offsets_bp), "offsets_bp",
              f"must be non-negative, got {self.offsets_bp}")


@dataclass(frozen=True)
@shipped_defaults
class LoopPlan:
    """Loop windows: positives from the bedpe plus ``negative_ratio`` negatives each.

    ``negatives``: fractions of the negatives per kind (``windows.NEGATIVE_KINDS``):
    ``distance`` (distance-matched, non-zero contact: the paper's protocol),
    ``high_contact`` (distance-matched, contact in the top ``high_contact_top`` fraction
    at that distance), ``near_loop`` (``near_loop_bins`` bins, Chebyshev, from a loop,
    beyond ``exclude_bins``), ``anchor_signal`` (both anchors in the top ``anchor_top``
    fraction of summed track signal). Kinds that cannot be filled fall back to distance.
    """

    enabled: bool
    optional: bool  # inputs absent: skip with a log note instead of an error
    min_distance_bp: int
    max_distance_bp: int
    negative_ratio: float  # negatives per positive
    jitter_bins: int  # distance kernel half-width for negatives
    exclude_bins: int  # negatives stay farther than this from every positive
    negatives: dict[str, float]
    high_contact_top: float
    anchor_top: float
    near_loop_bins: tuple[int, int]

    def __post_init__(self):
        check(0 < self.min_distance_bp < self.max_distance_bp, "min_distance_bp",
              "need 0 < min_distance_bp < max_distance_bp")
        check(self.negative_ratio >= 0, "negative_ratio",
              f"must be >= 0, got {self.negative_ratio}")
        unknown = sorted(set(self.negatives) - set(NEGATIVE_KINDS))
        check(not unknown, "negatives", f"unknown kind {unknown[0] if unknown else ''!r} "
                                        f"(known: {', '.join(NEGATIVE_KINDS)})")
        check(all(v >= 0 for v in self.negatives.values())
              and abs(sum(self.negatives.values()) - 1.0) <= 1e-6, "negatives",
              f"fractions must be >= 0 and sum to 1, got {dict(self.negatives)}")
        for key in ("high_contact_top", "anchor_top"):
            check(0 < getattr(self, key) <= 1, key, f"must be in (0, 1], got {getattr(self, key)}")
        lo, hi = self.near_loop_bins
        check(1 <= lo <= hi and hi > self.exclude_bins, "near_loop_bins",
              f"need 1 <= min <= max and max > exclude_bins ({self.exclude_bins}), got "
              f"{list(self.near_loop_bins)}")


@dataclass(frozen=True)
@shipped_defaults
class CagePlan:
    enabled: bool
    optional: bool  # inputs absent: skip with a log note instead of an error


@dataclass(frozen=True)
class Datasets:
    pretrain: GridPlan = field(default_factory=GridPlan)
    hic: GridPlan = field(default_factory=GridPlan)
    loops: LoopPlan = field(default_factory=LoopPlan)
    cage: CagePlan = field(default_factory=CagePlan)


@dataclass(frozen=True)
@shipped_defaults
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
    lists (the default: splits are a choice of the run, made in its YAML): no such split,
    and training on that data stops with a ConfigError naming ``splits.val``. The paper's
    choice (val chr10, chr11; test chr3, chr13, chr17) is in ``prepare-paper.yaml``, the
    demo's in ``prepare-demo.yaml``.
    """

    val: tuple[str, ...]
    test: tuple[str, ...]


@dataclass(frozen=True)
@shipped_defaults
class Normalization:
    hic: Literal["log1p_fixed", "log1p_window_max", "log1p", "none"]
    hic_cap: float  # log1p_fixed: contacts clipped here, then scaled to [0, 1]
    epi: Literal["log2p1", "none"]
    epi_missing: Literal["fill", "ignore"]  # see bigwig_reader.read_track_bins
    epi_fill: float
    require_track_data: bool  # a track without data on a chromosome is an error


@dataclass(frozen=True)
@shipped_defaults
class QcConfig:
    min_nonzero_frac: float
    max_masked_bins: int  # 0 = the paper's "all finite"

    def __post_init__(self):
        check(0 <= self.min_nonzero_frac <= 1, "min_nonzero_frac",
              f"must be in [0, 1], got {self.min_nonzero_frac}")


@dataclass(frozen=True)
@shipped_defaults
class RunConfig:
    chunk_bins: int  # window starts per task (5 Mb at 5 kb)
    workers: int | None  # concurrent tasks; null = the cluster's CPUs
    num_cpus: int | None  # local Ray only
    seed: int
    force: bool
    compression: Literal["snappy", "zstd", "lz4", "none"]
    checksum: Literal["fast", "sha256"]

    def __post_init__(self):
        check(self.chunk_bins > 0, "chunk_bins", f"must be positive, got {self.chunk_bins}")


@dataclass(frozen=True)
@shipped_defaults
class PrepareConfig:
    inputs: Inputs
    out: str
    root: str
    sample: str
    window_bins: int
    epi_bin: int
    chromosomes: tuple[str, ...]  # empty = every Hi-C chromosome long enough
    aliases: dict[str, str]  # Hi-C name -> name in other files
    datasets: Datasets = field(default_factory=Datasets)
    splits: Splits = field(default_factory=Splits)
    normalize: Normalization = field(default_factory=Normalization)
    qc: QcConfig = field(default_factory=QcConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self):
        check(self.window_bins >= 2, "window_bins", f"must be >= 2, got {self.window_bins}")
        check(self.epi_bin > 0, "epi_bin", f"must be positive, got {self.epi_bin}")

    @property
    def enabled(self) -> list[str]:
        return [d for d in DATASETS if getattr(self.datasets, d).enabled]
