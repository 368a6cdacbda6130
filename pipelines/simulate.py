"""``mixhic simulate``: a seeded, realistic genome written as real files.

    >>> g = simulate_genome("data/sim", preset="tiny", seed=0, n_chroms=4)
    >>> g.mcool   # data/sim/genome.mcool  (::resolutions/5000, 10000, 25000, 50000)

Files in ``out_dir``:

==================  =============================================================
genome.mcool        Hi-C, 5 kb base, ``::resolutions/N``, balanced ``weight`` column
atac.bw, dnase.bw   accessibility, 100 bp bins, every bin written
cage.bw             CAGE signal, 100 bp bins
loops.bedpe         true loops: chrom1 start1 end1 chrom2 start2 end2 name score
tss.bed             TSSs, BED6 with strand
anchors.bed         CTCF-like sites, BED6 with orientation
chrom.sizes         chromosome lengths
simulation.json     every parameter, the seed, the counts
==================  =============================================================

The generative model is described in :mod:`mixhic.pipelines._simulate_model`. Output is
written into a temporary directory beside ``out_dir`` and renamed at the end, so an
interrupted run never leaves a genome that looks complete.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mixhic.core.cliargs import Alias, ConfigArgs, ConfigCommand
from mixhic.core.config import (
    ConfigError,
    build,
    check,
    read_config_file,
    resolve_config_path,
    shipped_defaults,
    to_dict,
)
from mixhic.core.errors import MixHicError
from mixhic.pipelines._simulate_balance import ice_cis, store_weight
from mixhic.pipelines._simulate_model import (
    ChromParams,
    ChromRates,
    ChromSim,
    chromosome_rates,
    simulate_chromosome,
)
from mixhic.pipelines.realism import format_report, realism_report

__all__ = [
    "SimulationParams",
    "SimulatedGenome",
    "PRESETS",
    "simulation_params",
    "simulate_genome",
    "replay_rates",
    "SimulateRun",
    "config_from_args",
    "cli_main",
]

log = logging.getLogger(__name__)

MAX_LOOP_BP = 2_000_000
MIN_LOOP_BP = 20_000
FILES = {
    "mcool": "genome.mcool",
    "atac": "atac.bw",
    "dnase": "dnase.bw",
    "cage": "cage.bw",
    "loops": "loops.bedpe",
    "tss": "tss.bed",
    "chrom_sizes": "chrom.sizes",
    "meta": "simulation.json",
    "anchors": "anchors.bed",
}


@dataclass(frozen=True)
@shipped_defaults
class SimulationParams:
    """Sizes and strengths of the simulated genome (bp unless named otherwise)."""

    n_chroms: int
    chrom_length: int  # mean length; chr1 is longest
    length_spread: float  # chr1 ~ (1 + spread/2) x mean, chrN ~ (1 - spread/2) x mean
    resolution: int
    resolutions: tuple[int, ...]
    epi_bin: int
    max_distance: int  # contacts simulated up to this distance
    contacts_per_bin: float  # mean cis contacts per base bin, before bias
    decay_exponent: float  # P(s) ~ s^-decay_exponent
    decay_exponent_long: float  # ... bending to s^-decay_exponent_long past decay_break
    decay_break: int  # bp; 0 = a pure power law
    tad_size: int  # median
    tad_size_sigma: float  # log-normal spread
    min_tad_size: int
    max_tad_size: int
    tad_enrichment: float  # within-TAD contact fold
    compartment_strength: float  # log-fold, same vs. different compartment
    compartment_switch: float  # probability the next TAD changes compartment
    corner_loop_prob: float
    nested_loop_prob: float
    spanning_loop_prob: float
    loop_strength: float  # median dot amplitude (fold over background - 1)
    loop_strength_sigma: float
    loop_width: float  # dot Gaussian sigma, in base bins
    stripe_strength: float
    bias_sigma: float  # log-normal coverage bias
    low_coverage_frac: float  # bins with ~2% coverage (masked by balancing)
    gaps_per_chrom: float  # mean number of unmappable gaps (no coverage, no tracks)
    gap_size: int  # median gap length
    ctcf_decoys_per_mb: float  # CTCF-like sites that anchor no loop
    enhancers_per_mb: float
    tss_per_mb: float
    noise_peaks_per_mb: float  # weak track-specific peaks
    track_noise: float  # log-sd of per-track peak heights (ATAC vs DNase)
    cage_noise: float

    def __post_init__(self) -> None:
        positive_int = ("n_chroms", "chrom_length", "resolution", "epi_bin", "max_distance",
                        "tad_size", "min_tad_size", "max_tad_size")
        for name in positive_int:
            check(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        non_negative = ("length_spread", "decay_exponent", "decay_exponent_long",
                        "decay_break", "gaps_per_chrom", "tad_size_sigma",
                        "compartment_strength", "loop_strength", "loop_strength_sigma",
                        "stripe_strength", "bias_sigma", "ctcf_decoys_per_mb",
                        "enhancers_per_mb", "tss_per_mb", "noise_peaks_per_mb",
                        "track_noise", "cage_noise")
        for name in non_negative:
            check(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        for name in ("compartment_switch", "corner_loop_prob", "nested_loop_prob",
                     "spanning_loop_prob", "low_coverage_frac"):
            check(0.0 <= getattr(self, name) <= 1.0, name,
                  f"must be in [0, 1], got {getattr(self, name)}")
        check(self.n_chroms <= 200, "n_chroms", f"at most 200, got {self.n_chroms}")
        check(self.length_spread < 1.5, "length_spread",
              f"must be < 1.5, got {self.length_spread}")
        check(self.resolution % self.epi_bin == 0, "epi_bin",
              f"must divide resolution ({self.resolution}), got {self.epi_bin}")
        check(self.resolutions and self.resolutions[0] == self.resolution, "resolutions",
              f"must start with resolution ({self.resolution}), got {list(self.resolutions)}")
        check(list(self.resolutions) == sorted(set(self.resolutions))
              and not any(r % self.resolution for r in self.resolutions), "resolutions",
              f"must be increasing multiples of resolution, got {list(self.resolutions)}")
        check(self.chrom_length >= 20 * self.resolution, "chrom_length",
              f"at least 20 bins ({20 * self.resolution} bp), got {self.chrom_length}")
        check(self.max_distance >= 10 * self.resolution, "max_distance",
              f"at least 10 bins ({10 * self.resolution} bp), got {self.max_distance}")
        check(self.decay_exponent != 0, "decay_exponent", "must be > 0")
        check(self.tad_enrichment >= 1.0, "tad_enrichment",
              f"must be >= 1, got {self.tad_enrichment}")
        check(self.contacts_per_bin > 0, "contacts_per_bin",
              f"must be > 0, got {self.contacts_per_bin}")
        check(self.min_tad_size <= self.tad_size <= self.max_tad_size, "tad_size",
              f"must lie in [min_tad_size, max_tad_size], got {self.tad_size} not in "
              f"[{self.min_tad_size}, {self.max_tad_size}]")
        check(self.min_tad_size >= 2 * self.resolution, "min_tad_size",
              f"at least 2 bins ({2 * self.resolution} bp), got {self.min_tad_size}")
        check(self.gap_size >= self.resolution, "gap_size",
              f"at least one bin ({self.resolution} bp), got {self.gap_size}")
        check(self.loop_width > 0, "loop_width", f"must be > 0, got {self.loop_width}")

    def chrom_lengths(self) -> dict[str, int]:
        """``{"chr1": bp, ...}``, decreasing, multiples of ``epi_bin`` (not of resolution)."""
        n = self.n_chroms
        frac = np.linspace(1 + self.length_spread / 2, 1 - self.length_spread / 2, n) if n > 1 \
            else np.ones(1)
        # A fixed, seed-independent odd remainder keeps the last Hi-C bin partial.
        lengths = (np.round(frac * self.chrom_length / self.epi_bin) * self.epi_bin).astype(int)
        lengths = np.maximum(lengths, 20 * self.resolution) + 3 * self.epi_bin
        return {f"chr{k + 1}": int(v) for k, v in enumerate(lengths)}

    def chrom_params(self) -> ChromParams:
        res = self.resolution
        return ChromParams(
            res=res, epi_bin=self.epi_bin, max_bins=self.max_distance // res,
            contacts_per_bin=self.contacts_per_bin, decay_exponent=self.decay_exponent,
            decay_exponent_long=self.decay_exponent_long,
            decay_break_bins=self.decay_break / res,
            tad_bins=self.tad_size / res, tad_sigma=self.tad_size_sigma,
            min_tad_bins=max(2, self.min_tad_size // res), max_tad_bins=self.max_tad_size // res,
            tad_enrichment=self.tad_enrichment, compartment_strength=self.compartment_strength,
            compartment_switch=self.compartment_switch, corner_loop_prob=self.corner_loop_prob,
            nested_loop_prob=self.nested_loop_prob, spanning_loop_prob=self.spanning_loop_prob,
            loop_strength=self.loop_strength, loop_strength_sigma=self.loop_strength_sigma,
            loop_width=self.loop_width, stripe_strength=self.stripe_strength,
            min_loop_bins=-(-MIN_LOOP_BP // res),
            max_loop_bins=min(MAX_LOOP_BP, self.max_distance - res) // res,
            bias_sigma=self.bias_sigma, low_coverage_frac=self.low_coverage_frac,
            gaps_per_chrom=self.gaps_per_chrom, gap_bins=self.gap_size / res,
            ctcf_decoys_per_mb=self.ctcf_decoys_per_mb, enhancers_per_mb=self.enhancers_per_mb,
            tss_per_mb=self.tss_per_mb, noise_peaks_per_mb=self.noise_peaks_per_mb,
            track_noise=self.track_noise, cage_noise=self.cage_noise,
        )


#: preset name -> the SimulationParams keys it changes (pipelines/simulate.presets.yaml)
PRESETS: dict[str, dict[str, Any]] = read_config_file(
    Path(__file__).with_name("simulate.presets.yaml"))


@dataclass(frozen=True)
class SimulatedGenome:
    """Paths of the files a simulation wrote (all inside one directory)."""

    mcool: Path
    atac: Path
    dnase: Path
    cage: Path
    loops: Path
    tss: Path
    chrom_sizes: Path
    meta: Path
    anchors: Path

    @classmethod
    def in_dir(cls, out_dir: str | Path) -> SimulatedGenome:
        out = Path(out_dir)
        return cls(**{k: out / v for k, v in FILES.items()})

    def mcool_uri(self, resolution: int = 5_000) -> str:
        """``genome.mcool::resolutions/<resolution>``"""
        return f"{self.mcool}::resolutions/{resolution}"


def _int_from_text(value: Any) -> Any:
    """Let ``chrom_length=4e6`` (YAML reads it as a string) mean 4,000,000."""
    if isinstance(value, str):
        try:
            f = float(value.replace("_", ""))
        except ValueError:
            return value
        return int(f) if f.is_integer() else f
    return value


def simulation_params(preset: str = "tiny", **overrides: Any) -> SimulationParams:
    """The parameters of ``preset`` with ``overrides``; errors name the bad key."""
    if preset not in PRESETS:
        raise MixHicError(f"preset: unknown simulation preset {preset!r} "
                          f"(known: {', '.join(PRESETS)})")
    raw = {**PRESETS[preset], **{k: _int_from_text(v) for k, v in overrides.items()}}
    try:
        return build(SimulationParams, raw)
    except ConfigError as exc:
        raise MixHicError(f"simulate: {exc}") from None


# ---------------------------------------------------------------------------- writers


def _coarsen(bin1: np.ndarray, bin2: np.ndarray, count: np.ndarray, chrom_of_bin: np.ndarray,
             fine_offsets: np.ndarray, coarse_offsets: np.ndarray, factor: int):
    """Sum base pixels into ``factor``-times coarser bins (cis pixels, per chromosome).

    Pixels are (nnz,) global bin ids at the base resolution; offsets are (n_chroms,) first
    global bin of each chromosome. Returns sorted upper-triangle (bin1, bin2, count).
    """
    c = chrom_of_bin[bin1]
    nb1 = (bin1 - fine_offsets[c]) // factor + coarse_offsets[c]
    nb2 = (bin2 - fine_offsets[c]) // factor + coarse_offsets[c]
    stride = int(nb2.max()) + 1 if len(nb2) else 1
    uniq, inverse = np.unique(nb1 * stride + nb2, return_inverse=True)
    summed = np.bincount(inverse, weights=count).astype(np.int32)
    return uniq // stride, uniq % stride, summed


def _write_mcool(path: Path, sizes: dict[str, int], sims: list[ChromSim],
                 params: SimulationParams, seed: int) -> dict[str, Any]:
    """One cooler per resolution under ``::resolutions/N``, each balanced (cis) in place.

    Coarser resolutions are summed from the base pixels in memory (what
    ``cooler zoomify`` computes, without re-reading the file).
    """
    import cooler
    import h5py
    import pandas as pd

    res = params.resolution
    n_per = np.array([len(s.bias) for s in sims])
    fine_offsets = np.concatenate([[0], np.cumsum(n_per)[:-1]])
    chrom_of_bin = np.repeat(np.arange(len(sims)), n_per)
    bin1 = np.concatenate([s.bin1 + o for s, o in zip(sims, fine_offsets)])
    bin2 = np.concatenate([s.bin2 + o for s, o in zip(sims, fine_offsets)])
    count = np.concatenate([s.count for s in sims])
    info: dict[str, Any] = {"pixels": int(len(count)), "contacts": int(count.sum()),
                            "masked_bins": {}, "pixels_by_resolution": {}}
    for k, r in enumerate(params.resolutions):
        t0 = time.perf_counter()
        bins = cooler.binnify(pd.Series(sizes), r)
        if r == res:
            b1, b2, cnt, cob = bin1, bin2, count, chrom_of_bin
        else:
            n_coarse = np.array([-(-n // (r // res)) for n in n_per])
            coarse_offsets = np.concatenate([[0], np.cumsum(n_coarse)[:-1]])
            b1, b2, cnt = _coarsen(bin1, bin2, count, chrom_of_bin, fine_offsets,
                                   coarse_offsets, r // res)
            cob = np.repeat(np.arange(len(sims)), n_coarse)
        assert len(bins) == len(cob)
        uri = f"{path}::resolutions/{r}"
        cooler.create_cooler(
            uri, bins, pd.DataFrame({"bin1_id": b1, "bin2_id": b2, "count": cnt}),
            ordered=True, dtypes={"count": np.int32}, mode="w" if k == 0 else "a",
            assembly="mixhic-sim", metadata={"generator": "mixhic simulate", "seed": seed},
            temp_dir=str(path.parent),
        )
        weights, stats = ice_cis(b1, b2, cnt, cob)
        if not np.all(stats["converged"]):
            log.warning("simulate: balancing at %d bp did not converge", r)
        store_weight(uri, weights, stats)
        info["masked_bins"][str(r)] = int(np.isnan(weights).sum())
        info["pixels_by_resolution"][str(r)] = int(len(cnt))
        log.info("simulate: wrote and balanced %s (%d pixels, %.1fs)", uri.split("::")[1],
                 len(cnt), time.perf_counter() - t0)
    with h5py.File(path, "r+") as fw:
        fw.attrs.update({"format": "HDF5::MCOOL", "format-version": 2})
    return info


def _write_bigwig(path: Path, sizes: dict[str, int], tracks: list[np.ndarray],
                  step: int) -> None:
    """Every ``step``-bp bin of every chromosome as one fixed-step entry."""
    import pyBigWig

    bw = pyBigWig.open(str(path), "w")
    try:
        bw.addHeader(list(sizes.items()), maxZooms=10)
        for chrom, values in zip(sizes, tracks):
            bw.addEntries(chrom, 0, values=values.astype(np.float64), span=step, step=step)
    finally:
        bw.close()


def _write_tables(g: SimulatedGenome, sizes: dict[str, int], sims: list[ChromSim],
                  params: SimulationParams) -> dict[str, int]:
    res, eb = params.resolution, params.epi_bin
    g.chrom_sizes.write_text("".join(f"{c}\t{n}\n" for c, n in sizes.items()))
    loops, tss, anchors = [], [], []
    for chrom, s in zip(sizes, sims):
        for (a, b), score in zip(s.loops, s.loop_strength):
            loops.append(f"{chrom}\t{a * res}\t{min((a + 1) * res, s.length)}\t"
                         f"{chrom}\t{b * res}\t{min((b + 1) * res, s.length)}\t"
                         f"loop{len(loops) + 1}\t{score:.3f}\n")
        for pos, strand in zip(s.tss_pos, s.tss_strand):
            tss.append(f"{chrom}\t{pos * eb}\t{pos * eb + 1}\tgene{len(tss) + 1}\t0\t{strand}\n")
        for pos, strand in zip(s.ctcf_pos, s.ctcf_strand):
            anchors.append(f"{chrom}\t{pos * eb}\t{(pos + 1) * eb}\tctcf{len(anchors) + 1}"
                           f"\t0\t{strand}\n")
    g.loops.write_text("".join(loops))
    g.tss.write_text("".join(tss))
    g.anchors.write_text("".join(anchors))
    return {"loops": len(loops), "tss": len(tss), "ctcf_sites": len(anchors)}


# ---------------------------------------------------------------------------- main entry


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise MixHicError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise MixHicError(f"{out}: directory exists and is not empty "
                              "(pass overwrite=True / --overwrite to replace it)")
        if not (out / FILES["meta"]).is_file():
            raise MixHicError(f"{out}: not empty and not a simulated genome (no "
                              f"{FILES['meta']}); refusing to overwrite it, pick another dir")


def simulate_genome(out_dir: str | Path, preset: str = "tiny", seed: int = 0,
                    overwrite: bool = False, **overrides: Any) -> SimulatedGenome:
    """Simulate a genome into ``out_dir`` and return the paths of its files.

    ``overrides`` are :class:`SimulationParams` fields (e.g. ``n_chroms=4``). The same
    ``preset``, ``seed`` and overrides give identical contents. ``overwrite`` replaces an
    earlier simulation in ``out_dir``; any other non-empty directory is refused.
    """
    params = simulation_params(preset, **overrides)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MixHicError(f"seed: must be a non-negative integer, got {seed!r}")
    out = Path(out_dir).expanduser().absolute()
    _prepare_out_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)

    t_start = time.perf_counter()
    sizes = params.chrom_lengths()
    cp = params.chrom_params()
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(len(sizes))]
    log.info("simulate: %s preset, seed %d, %d chromosomes, %.1f Mb", preset, seed, len(sizes),
             sum(sizes.values()) / 1e6)
    sims = []
    for (chrom, length), rng in _progress(list(zip(sizes.items(), rngs)), "chromosomes"):
        sims.append(simulate_chromosome(length, cp, rng))
        log.debug("simulate: %s: %d loops, %d TSSs", chrom, len(sims[-1].loops),
                  len(sims[-1].tss_pos))
    log.info("simulate: generated chromosomes (%.1fs)", time.perf_counter() - t_start)

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        g = SimulatedGenome.in_dir(tmp)
        counts = _write_tables(g, sizes, sims, params)
        t0 = time.perf_counter()
        for name in ("atac", "dnase", "cage"):
            _write_bigwig(getattr(g, name), sizes, [getattr(s, name) for s in sims],
                          params.epi_bin)
        log.info("simulate: wrote bigWigs (%.1fs)", time.perf_counter() - t0)
        hic = _write_mcool(g.mcool, sizes, sims, params, int(seed))
        counts.update(
            tads=int(sum(len(s.tads) for s in sims)),
            enhancers=int(sum(s.n_enhancers for s in sims)),
            pixels=hic["pixels"], contacts=hic["contacts"],
        )
        meta = {
            "generator": "mixhic simulate",
            "version": _version(),
            "preset": preset,
            "seed": int(seed),
            "overrides": {k: _jsonable(v) for k, v in overrides.items()},
            "params": to_dict(params),
            "chrom_sizes": sizes,
            "resolutions": list(params.resolutions),
            "weight_column": "weight",
            "counts": counts,
            "masked_bins": hic["masked_bins"],
            "pixels_by_resolution": hic["pixels_by_resolution"],
            "balance": {"cis_only": True, "ignore_diags": 2, "mad_max": 5, "min_nnz": 10},
            "loops_by_kind": {k: int(sum((s.loop_kind == k).sum() for s in sims))
                              for k in ("corner", "nested", "spanning")},
            "files": {k: v for k, v in FILES.items()},
        }
        g.meta.write_text(json.dumps(meta, indent=2) + "\n")
        _commit_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("simulate: %s: %d loops, %d TSSs, %d pixels in %.1fs", out, counts["loops"],
             counts["tss"], counts["pixels"], time.perf_counter() - t_start)
    return SimulatedGenome.in_dir(out)


def replay_rates(genome_dir: str | Path, chroms: Sequence[str]
                 ) -> dict[str, tuple[ChromRates, np.random.Generator]]:
    """The Poisson rates each of ``chroms``' reads were drawn from, replayed from the
    preset, seed and overrides in ``genome_dir``'s simulation.json: ``{chrom: (rates,
    rng)}`` with ``rng`` at the reads draw (``rng.poisson(rates.lam)`` gives the counts the
    genome holds; a fresh generator gives an independent replicate of the same sample)."""
    meta_path = SimulatedGenome.in_dir(genome_dir).meta
    if not meta_path.is_file():
        raise MixHicError(f"{genome_dir}: no {FILES['meta']} (not a simulated genome)")
    meta = json.loads(meta_path.read_text())
    params = simulation_params(meta["preset"], **meta.get("overrides", {}))
    if json.loads(json.dumps(to_dict(params))) != meta["params"]:
        raise MixHicError(f"{meta_path}: its parameters differ from preset "
                          f"{meta['preset']!r} with its overrides in this mixhic version: "
                          "the genome cannot be replayed")
    sizes = params.chrom_lengths()
    unknown = [c for c in chroms if c not in sizes]
    if unknown:
        raise MixHicError(f"{meta_path}: no chromosome {unknown} (has {', '.join(sizes)})")
    cp = params.chrom_params()
    rngs = np.random.SeedSequence(int(meta["seed"])).spawn(len(sizes))
    out = {}
    for (chrom, length), seq in zip(sizes.items(), rngs):
        if chrom in chroms:
            rng = np.random.default_rng(seq)
            out[chrom] = (chromosome_rates(length, cp, rng), rng)
    return out


def _commit_dir(tmp: Path, out: Path) -> None:
    """Atomically put ``tmp`` at ``out``, moving any earlier simulation out of the way."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}-{time.time_ns()}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("mixhic")
    except Exception:  # not installed (running from a source tree)
        return "unknown"


def _jsonable(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _progress(items: list, desc: str):
    """tqdm over ``items`` when the run is long enough to need it."""
    if len(items) < 10:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return items
    return tqdm(items, desc=f"simulate {desc}", unit="chrom", leave=False)


@dataclass(frozen=True)
@shipped_defaults
class SimulateRun:
    """What ``mixhic simulate`` runs: :func:`simulate_genome` ``(out_dir, preset, seed,
    overwrite, **params)``; ``params`` are :class:`SimulationParams` overrides."""

    out_dir: str
    preset: str
    seed: int
    overwrite: bool
    params: dict[str, Any]


_RUN_KEYS = ("out_dir", "preset", "seed", "overwrite")
#: SimulateRun's shipped defaults of those keys (out_dir has none)
_RUN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(SimulateRun)
                 if f.name in _RUN_KEYS and f.default is not dataclasses.MISSING}

CLI = ConfigCommand(
    "mixhic simulate",
    "Simulate a seeded genome: .mcool, ATAC/DNase/CAGE bigWigs, loops, TSSs; or, with "
    "--report, measure how real-looking a Hi-C map is.",
    default_config="tiny",
    config_help=f"simulation preset ({', '.join(sorted(PRESETS))}) or a YAML file of the "
                "keys below (--print-config writes one)",
    keys_help="keys: out_dir (required), seed, overwrite, preset, and the simulation "
              "parameters: " + ", ".join(f.name for f in dataclasses.fields(SimulationParams))
              + "\ne.g. mixhic simulate small out_dir=runs/genome seed=3 n_chroms=2",
    aliases=[
        Alias("--out", "out_dir", "directory to create (must be new or empty)", metavar="DIR",
              example="runs/genome"),
        Alias("--preset", "preset", choices=tuple(sorted(PRESETS)), example="small"),
        Alias("--seed", "seed", metavar="N", example="3"),
        Alias("--overwrite", "overwrite", "replace an earlier simulation in out_dir",
              kind="true"),
    ],
    resolve=lambda args: _printable(args),  # defined below
    epilog="realism report instead: mixhic simulate --report COOL [--loops BEDPE] "
           "[--resolution N] [--weight COLUMN]",
)
CLI.parser.add_argument("--report", metavar="COOL",
                        help="realism report of a .cool / .mcool::resolutions/N (or of a "
                        "simulated genome's directory: its map and loops) instead")
CLI.parser.add_argument("--loops", metavar="BEDPE", help="loop calls for the report's APA")
CLI.parser.add_argument("--resolution", type=int, help="bin size the report reads from an "
                        ".mcool")
CLI.parser.add_argument("--weight", default="weight",
                        help="balancing weight column of the report (raw counts if absent)")


def _keys_of(args: ConfigArgs) -> tuple[dict[str, Any], dict[str, Any]]:
    """(run keys, :class:`SimulationParams` overrides) of a command line whose CONFIG is a
    preset name or a YAML file of keys (as ``--print-config`` writes); the preset checked."""
    if str(args.config).endswith((".yaml", ".yml")):
        loaded = read_config_file(resolve_config_path(args.config))
        raw = {**loaded, **args.overrides}
    else:
        raw = {"preset": args.config, **args.overrides}
    run = {**_RUN_DEFAULTS, **{k: raw.pop(k) for k in _RUN_KEYS if k in raw}}
    preset = run["preset"]
    if preset not in PRESETS:
        hint = ("; the output directory is out_dir=DIR (or --out DIR)"
                if args.config == preset else "")
        raise MixHicError(f"simulate: {preset!r} is not a preset (known: "
                          f"{', '.join(sorted(PRESETS))}){hint}")
    return run, raw


def _run_of(args: ConfigArgs) -> SimulateRun:
    run, raw = _keys_of(args)
    simulation_params(run["preset"], **raw)  # errors name the bad key
    if run.get("out_dir") in (None, ""):
        raise MixHicError("simulate: give the output directory, out_dir=DIR (or --out DIR), "
                          "or --report COOL to measure a map")
    if not isinstance(run["overwrite"], bool):
        raise MixHicError(f"simulate: overwrite: expected true/false, got {run['overwrite']!r}")
    return SimulateRun(out_dir=str(run["out_dir"]), preset=run["preset"], seed=run["seed"],
                       overwrite=run["overwrite"], params=raw)


def _printable(args: ConfigArgs) -> dict[str, Any]:
    """What ``--print-config`` shows: the run keys and every simulation parameter of the
    preset with the overrides applied (out_dir may still be missing: null)."""
    run, raw = _keys_of(args)
    return {"out_dir": run.get("out_dir"), "preset": run["preset"], "seed": run["seed"],
            "overwrite": run["overwrite"], **to_dict(simulation_params(run["preset"], **raw))}


def config_from_args(argv: Sequence[str]) -> SimulateRun:
    """The :class:`SimulateRun` ``mixhic simulate ARGS`` runs (not ``--report``)."""
    return _run_of(CLI.parse(argv))


def cli_main(argv: Sequence[str]) -> int:
    """``mixhic simulate [PRESET] out_dir=DIR [seed=N] [overwrite=true] [key=value ...]``,
    or ``mixhic simulate --report COOL [--loops BEDPE] [--resolution N]``.

    ``--report`` measures how real-looking any cooler is
    (:func:`mixhic.pipelines.realism.realism_report`): the figures are logged and printed
    on stdout as one ``key=value`` line.
    """
    args = CLI.parse(argv)
    ns = args.ns
    if ns.report is not None:
        return _report_cli(ns)
    if ns.loops is not None or ns.resolution is not None:
        raise MixHicError("simulate: --loops and --resolution go with --report COOL")
    run = _run_of(args)
    g = simulate_genome(run.out_dir, preset=run.preset, seed=run.seed, overwrite=run.overwrite,
                        **run.params)
    log.info("simulate: wrote %s", g.meta.parent)
    return 0


def _report_cli(ns: argparse.Namespace) -> int:
    extra = ([ns.config] if ns.config else []) + list(ns.overrides) + [
        a.flag for a in CLI.aliases if getattr(ns, a.dest) not in (None, False, [])]
    if extra:
        raise MixHicError(f"simulate --report: unexpected argument {extra[0]!r} "
                          "(the report takes COOL, --loops, --resolution and --weight)")
    cool, loops = ns.report, ns.loops
    if Path(cool).is_dir():  # a simulated genome's directory: its map and true loops
        g = SimulatedGenome.in_dir(cool)
        if not g.mcool.is_file():
            raise MixHicError(f"simulate --report: {cool} is a directory without "
                              f"{g.mcool.name}; give a .cool / .mcool file")
        cool = g.mcool_uri(ns.resolution or 5_000)  # the simulator's base resolution
        loops = loops or (str(g.loops) if g.loops.is_file() else None)
    report = realism_report(cool, bedpe=loops, resolution=None if "::" in cool else
                            ns.resolution, weight=ns.weight or None)
    sys.stdout.write(format_report(report) + "\n")
    return 0
