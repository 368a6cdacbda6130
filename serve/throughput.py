"""How long genome-wide prediction takes: window counts and whole-genome projections.

``mixhic predict`` measures windows per second per core (model actors' busy time, so
Ray start-up and model loading are left out) and projects the wall time of a whole
human genome (GRCh38 chr1-22, X, Y) at 5 kb with the same model geometry and scan
settings: ``windows / (rate_per_core * cores)``. Counting is closed-form per anchor
(no window list is built), so projecting 30 M loop candidates is instant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixhic.serve.plan import diagonal_starts, loop_anchor_grid

__all__ = ["GRCH38_SIZES", "count_windows", "genome_windows", "Projection", "project"]

#: GRCh38 primary chromosome lengths (bp), chr1-22, X, Y (UCSC hg38.chrom.sizes).
GRCH38_SIZES = {
    "chr1": 248_956_422, "chr2": 242_193_529, "chr3": 198_295_559, "chr4": 190_214_555,
    "chr5": 181_538_259, "chr6": 170_805_979, "chr7": 159_345_973, "chr8": 145_138_636,
    "chr9": 138_394_717, "chr10": 133_797_422, "chr11": 135_086_622, "chr12": 133_275_309,
    "chr13": 114_364_328, "chr14": 107_043_718, "chr15": 101_991_189, "chr16": 90_338_345,
    "chr17": 83_257_441, "chr18": 80_373_285, "chr19": 58_617_616, "chr20": 64_444_167,
    "chr21": 46_709_983, "chr22": 50_818_468, "chrX": 156_040_895, "chrY": 57_227_415,
}


def count_windows(task: str, n_bins: int, window_bins: int, resolution: int, step_bins: int,
                  loops) -> int:
    """Number of windows :func:`mixhic.serve.predict.plan_windows` plans (no regions or
    mask), computed without building them."""
    if task in ("hic", "cage"):
        return len(diagonal_starts(n_bins, window_bins, step_bins))
    _, lo, hi = loop_anchor_grid(n_bins, window_bins, resolution, loops)
    return int(np.maximum(hi - lo, 0).sum())


def genome_windows(tasks: dict[str, int], resolution: int, step_bins: int, loops,
                   sizes: dict[str, int] | None = None) -> dict[str, int]:
    """Windows per task over a genome (default GRCh38) at ``resolution``.

    ``tasks``: task -> window_bins of its model.
    """
    sizes = GRCH38_SIZES if sizes is None else sizes
    return {t: sum(count_windows(t, s // resolution, w, resolution, step_bins, loops)
                   for s in sizes.values()) for t, w in tasks.items()}


@dataclass(frozen=True)
class Projection:
    """A measured rate and the whole-genome wall time it implies."""

    windows: int  # windows measured
    busy_core_s: float  # model actors' busy time x their cores
    genome_windows: dict[str, int]  # task -> windows of the projected genome
    resolution: int

    @property
    def rate_per_core(self) -> float:
        """Windows per second per core."""
        return self.windows / self.busy_core_s if self.busy_core_s > 0 else float("nan")

    def hours(self, cores: int) -> float:
        """Projected wall hours for every task's genome windows on ``cores`` cores."""
        return sum(self.genome_windows.values()) / (self.rate_per_core * cores) / 3600.0

    def to_json(self) -> dict:
        return {"windows": self.windows, "busy_core_s": round(self.busy_core_s, 3),
                "windows_per_s_per_core": round(self.rate_per_core, 3),
                "genome": "GRCh38 chr1-22,X,Y", "genome_resolution": self.resolution,
                "genome_windows": self.genome_windows,
                "genome_hours_32_cores": round(self.hours(32), 3)}


def project(windows: int, busy_core_s: float, tasks: dict[str, int], step_bins: int, loops,
            resolution: int = 5000) -> Projection:
    """:class:`Projection` of a run that predicted ``windows`` in ``busy_core_s`` core-seconds."""
    return Projection(windows, busy_core_s,
                      genome_windows(tasks, resolution, step_bins, loops), resolution)
