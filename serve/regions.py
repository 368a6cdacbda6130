"""Windows read from genome files, normalised exactly as ``mixhic prepare`` does.

:class:`GenomeWindows` opens a Hi-C file and the bigWig tracks a model was trained on
and cuts model inputs from them:

    hic (W, W)    balanced contacts (``readers.read_band``), then ``normalize.hic_transform``
    epi (C, 2L)   mean signal in ``epi_bin`` bins (``readers.read_track_bins``) of the
                  x-anchor then the y-anchor, then ``normalize.epi_transform``

Normalisation parameters come from the model's ``mixhic.json`` ``data`` section (what the
training dataset was prepared with); absent keys take ``mixhic prepare``'s defaults
(:data:`PREPARE_DEFAULTS`, read from the prepare config's dataclasses: one definition). Chromosome names are matched across files (``1`` = ``chr1``);
the Hi-C file's spelling is canonical. A window is ``W`` bins from ``x_start`` (rows) and
``y_start`` (columns), ``y_start >= x_start``, both multiples of the resolution, inside
the chromosome.
"""

from __future__ import annotations

import threading
from dataclasses import MISSING, dataclass, fields

import numpy as np
from mixhic.core.errors import MixHicError
from mixhic.pipelines import normalize, readers
from mixhic.pipelines.names import ChromosomeNameError, match_names, resolve_name
from mixhic.pipelines.prepare_config import HicInput, Normalization
from mixhic.serve.api import RequestError
from mixhic.serve.config import GenomeFiles
from mixhic.serve.engine import ModelCard
from mixhic.serve.schemas import WindowEcho

__all__ = ["PREPARE_FIELDS", "PREPARE_DEFAULTS", "Normalisation", "GenomeWindows"]

#: key of a model's ``data`` section -> the prepare config field it records
#: (``mixhic.platform.data`` writes them from the dataset's manifest).
PREPARE_FIELDS = {
    "weight": (HicInput, "weight"),
    "divisive": (HicInput, "divisive"),  # None: from the weight column's attributes
    "multiplier": (HicInput, "multiplier"),  # None: automatic
    "hic_transform": (Normalization, "hic"),
    "hic_cap": (Normalization, "hic_cap"),
    "epi_transform": (Normalization, "epi"),
    "epi_missing": (Normalization, "epi_missing"),
    "epi_fill": (Normalization, "epi_fill"),
}


def _field_default(cls: type, name: str):
    (f,) = [f for f in fields(cls) if f.name == name]
    return f.default if f.default is not MISSING else f.default_factory()


#: ``mixhic prepare``'s defaults for keys a model's ``data`` section may leave out, read
#: from the prepare config's dataclasses (not copied).
PREPARE_DEFAULTS = {key: _field_default(cls, name) for key, (cls, name) in PREPARE_FIELDS.items()}


@dataclass(frozen=True)
class Normalisation:
    """The transforms a model's training data went through (from ``mixhic.json`` data)."""

    weight: str | None
    hic_transform: str
    hic_cap: float
    epi_transform: str
    epi_missing: str
    epi_fill: float
    divisive: bool | None = None
    multiplier: float | None = None

    @classmethod
    def from_data(cls, data: dict) -> Normalisation:
        d = {**PREPARE_DEFAULTS, **{k: v for k, v in data.items() if k in PREPARE_DEFAULTS}}
        return cls(
            weight=d["weight"],
            hic_transform=str(d["hic_transform"]),
            hic_cap=float(d["hic_cap"]),
            epi_transform=str(d["epi_transform"]),
            epi_missing=str(d["epi_missing"]),
            epi_fill=float(d["epi_fill"]),
            divisive=None if d["divisive"] is None else bool(d["divisive"]),
            multiplier=None if d["multiplier"] is None else float(d["multiplier"]),
        )


class GenomeWindows:
    """Model inputs cut from a Hi-C file and bigWigs for one model (its geometry/transforms).

    Files are opened here, in the process that reads them (a Serve replica, a Ray Data
    actor); instances are not meant to travel between processes.
    """

    def __init__(self, genome: GenomeFiles, card: ModelCard) -> None:
        self.card = card
        self.norm = Normalisation.from_data(card.data)
        self.W, self.res = card.window_bins, card.resolution
        self.L, self.epi_bin = card.epi_bins, card.epi_bin
        if self.L * self.epi_bin != self.W * self.res:
            raise MixHicError(
                f"{card.source}: data.epi_bins * epi_bin ({self.L} x {self.epi_bin}) != "
                f"window_bins * resolution ({self.W} x {self.res})"
            )
        self.hic = None
        if genome.mcool:
            self.hic = readers.inspect_hic(genome.mcool, card.resolution, self.norm.weight,
                                           self.norm.divisive, self.norm.multiplier)
        elif card.needs_hic:
            raise MixHicError(f"genome.mcool: the {card.task} model ({card.mode}) needs a "
                              f"Hi-C file for region requests")
        self.track_paths = self._track_paths(genome, card)
        self._bws = [readers.open_bigwig(p) for p in self.track_paths]
        self._lock = threading.Lock()  # pyBigWig handles are not thread-safe
        if self.hic is not None:
            self.chromsizes = dict(self.hic.chromsizes)
        else:
            self.chromsizes = {str(k): int(v) for k, v in self._bws[0].chroms().items()}
        # canonical name -> spelling in each track (None: chromosome absent from the track)
        self._track_names = [match_names(self.chromsizes, bw.chroms()) for bw in self._bws]

    @staticmethod
    def _track_paths(genome: GenomeFiles, card: ModelCard) -> list[str]:
        if card.tracks:
            missing = [t for t in card.tracks if t not in genome.tracks]
            if missing:
                raise MixHicError(
                    f"genome.tracks: no file for track {missing[0]!r} (the model was trained "
                    f"on {list(card.tracks)}; configured: {sorted(genome.tracks)})"
                )
            return [genome.tracks[t] for t in card.tracks]
        if len(genome.tracks) != card.n_tracks:
            raise MixHicError(f"genome.tracks: the model takes {card.n_tracks} tracks, "
                              f"{len(genome.tracks)} configured")
        return list(genome.tracks.values())

    def close(self) -> None:
        for bw in self._bws:
            bw.close()
        self._bws = []

    # ------------------------------------------------------------------ requests

    def check_window(self, chrom: str, start: int, start2: int | None) -> tuple[str, int, int]:
        """Canonical chrom and bin offsets (x, y) of a region, or RequestError naming the field."""
        try:
            name = resolve_name(chrom, self.chromsizes, "chrom")
        except ChromosomeNameError as exc:
            raise RequestError("chrom", str(exc).removeprefix("chrom: ")) from None
        start2 = start if start2 is None else start2
        for field, value in (("start", start), ("start2", start2)):
            if value % self.res:
                raise RequestError(field, f"{value} is not a multiple of the resolution "
                                          f"({self.res} bp)")
        if start2 < start:
            raise RequestError("start2", f"must be >= start ({start2} < {start}): windows "
                                         f"are in the upper triangle")
        size = self.chromsizes[name]
        span = self.W * self.res
        for field, value in (("start", start), ("start2", start2)):
            if value + span > size:
                raise RequestError(field, f"window {name}:{value}-{value + span} runs past "
                                          f"the end of {name} ({size} bp)")
        return name, start // self.res, start2 // self.res

    def request_window(self, chrom: str, start: int, start2: int | None = None):
        """``(epi (C, 2L), hic (W, W) | None, WindowEcho)`` for a region request."""
        name, x, y = self.check_window(chrom, start, start2)
        epi = self.epi(name, x, y)
        hic = self.hic_window(name, x, y) if self.card.needs_hic else None
        return epi, hic, WindowEcho(chrom=name, x_start=x * self.res, y_start=y * self.res,
                                    resolution=self.res)

    # ------------------------------------------------------------------ reading

    def track_bins(self, chrom: str, lo: int, hi: int) -> np.ndarray:
        """Raw mean signal (C, (hi-lo) * per_bin) over Hi-C bins [lo, hi) of ``chrom``."""
        out = []
        with self._lock:
            for bw, names in zip(self._bws, self._track_names):
                vals, _ = readers.read_track_bins(
                    bw, names.get(chrom), lo * self.res, hi * self.res, self.epi_bin,
                    missing=self.norm.epi_missing, fill=self.norm.epi_fill,
                )
                out.append(vals)
        return np.stack(out)

    def epi(self, chrom: str, x: int, y: int) -> np.ndarray:
        """Transformed tracks (C, 2L): x-anchor bins then y-anchor bins."""
        ex = self.track_bins(chrom, x, x + self.W)
        ey = ex if y == x else self.track_bins(chrom, y, y + self.W)
        return self.epi_transform(np.concatenate([ex, ey], axis=1))

    def epi_transform(self, raw: np.ndarray) -> np.ndarray:
        """Raw binned tracks -> model input, as prepare transforms them (non-finite -> 0)."""
        raw = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
        return normalize.epi_transform(raw, self.norm.epi_transform)

    def hic_band(self, chrom: str, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """Balanced contacts (count scale) of a block of bins; masked bins NaN."""
        clr = readers.open_cooler(self.hic.uri)
        return readers.read_band(clr, self.hic, chrom, rows, cols)

    def hic_transform(self, windows: np.ndarray) -> np.ndarray:
        """(N, W, W) balanced windows -> model input, as prepare transforms them."""
        return normalize.hic_transform(windows, self.norm.hic_transform, self.norm.hic_cap)

    def hic_window(self, chrom: str, x: int, y: int) -> np.ndarray:
        """Transformed Hi-C window (W, W) at bin offsets (x, y)."""
        band = self.hic_band(chrom, (x, x + self.W), (y, y + self.W))
        return self.hic_transform(band[None])[0]
