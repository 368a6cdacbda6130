"""A real loop case at 10 kb: GM12878 chr1:160-180 Mb, CTCF track, published loops.

    python tests/benchmarks/real_case.py OUT_DIR [--real-dir ../shared/data/real]

Builds, from the files described in ``../shared/data/real/README.md`` ("A real loop case"):

1. ``gm12878.10kb.cool``: the Hi-C file with its bin table rebased to start at 0 (the
   source file's bins start at 160 Mb, which cooler and ``mixhic prepare`` read as the
   chromosome's first bins), then balanced (``cooler.balance_cooler``, stored as
   ``weight``). Bins below 160 Mb hold no contact and are masked by balancing.
2. ``ctcf.bw``: CTCF ChIP peaks as a bigWig (signal = column 7 over each peak; overlaps
   merged, keeping the larger signal; nothing written between peaks).
3. ``loops.bedpe``: the published loop calls with ``chr1`` names.
4. ``prepared/``: ``mixhic prepare`` (Ray Data) at 10 kb, 50-bin windows, 200 bp epi bins,
   datasets ``hic`` (diagonal grid) and ``loops`` (hard-negative mix), region splits on
   chr1 (:data:`SPLITS`). Windows over 0-160 Mb are dropped by QC (masked bins).

:func:`build_real_case` returns the paths and the manifest's counts; the script logs
rows per split and negative kind and the build time.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("real_case")

REPO = Path(__file__).resolve().parents[2]
REAL_DIR = REPO.parent / "shared" / "data" / "real"
COOL = "gm12878.chr1_160M_180M.10kb.cool"
PEAKS = "gm12878.ctcf_peaks.chr1_160M_180M.bed"
LOOPS = "gm12878.loops_10kb.chr1_160M_180M.bedgraph"
# val and test each hold >= 15 loop windows (measured: see the test); the rest is train
SPLITS = {"val": ["chr1:172,000,000-175,500,000"], "test": ["chr1:175,500,000-180,000,000"]}
#: The region holding data (the bins below 160 Mb are empty).
SPAN = ("chr1", 160_000_000, 180_000_000)


def fold_splits(k: int, folds: int) -> dict[str, list[str]]:
    """Region splits of fold ``k`` of ``folds``-fold cross-validation over :data:`SPAN`:
    the span cut into ``folds`` equal blocks; test = block k, val = block k + 1 (cyclic),
    train = the rest. Over all folds every window is tested exactly once (less those
    dropped for crossing a split boundary)."""
    if not 0 <= k < folds or folds < 3:
        raise ValueError(f"fold {k} of {folds}: need 0 <= k < folds and folds >= 3")
    chrom, lo, hi = SPAN
    edges = np.linspace(lo, hi, folds + 1).astype(np.int64)

    def block(i: int) -> str:
        return f"{chrom}:{edges[i]}-{edges[i + 1]}"

    return {"test": [block(k)], "val": [block((k + 1) % folds)]}
NEGATIVES = {"distance": 0.5, "high_contact": 0.2, "near_loop": 0.15, "anchor_signal": 0.15}


def rebase_cooler(src: str | Path, dst: str | Path) -> str:
    """Copy a single-resolution cooler whose bin table starts past 0 into one whose bins
    tile every chromosome from 0 (pixels shifted by the missing bins); returns ``dst``."""
    import cooler
    import pandas as pd

    clr = cooler.Cooler(str(src))
    res = clr.binsize
    bins = cooler.binnify(clr.chromsizes, res)
    shift = np.zeros(len(clr.bins()), dtype=np.int64)
    old = clr.bins()[["chrom", "start"]][:]
    new_offset = {c: int(o) for c, o in zip(
        clr.chromnames, np.r_[0, np.cumsum([-(-s // res) for s in clr.chromsizes])][:-1])}
    for c in clr.chromnames:
        sel = (old["chrom"] == c).to_numpy()
        shift[sel] = new_offset[c] + old["start"].to_numpy()[sel] // res - np.flatnonzero(sel)
    px = clr.pixels()[:]
    pixels = pd.DataFrame({
        "bin1_id": px["bin1_id"].to_numpy() + shift[px["bin1_id"].to_numpy()],
        "bin2_id": px["bin2_id"].to_numpy() + shift[px["bin2_id"].to_numpy()],
        "count": px["count"].to_numpy(),
    })
    dtype = {"count": pixels["count"].dtype}
    cooler.create_cooler(str(dst), bins, pixels, ordered=True, dtypes=dtype, symmetric_upper=True)
    return str(dst)


def balance(path: str | Path) -> None:
    """ICE-balance in place (``weight`` column, cooler's defaults)."""
    import cooler

    cooler.balance_cooler(cooler.Cooler(str(path)), store=True)


def ctcf_bigwig(peaks: str | Path, dst: str | Path, chromsizes: dict[str, int]) -> str:
    """Peaks (narrowPeak-like BED, signal in column 7) -> bigWig over the peak intervals."""
    import pyBigWig

    rows = []
    with open(peaks) as fh:
        for line in fh:
            f = line.split()
            if len(f) >= 7 and f[0] in chromsizes:
                rows.append((f[0], int(f[1]), int(f[2]), float(f[6])))
    bw = pyBigWig.open(str(dst), "w")
    bw.addHeader(list(chromsizes.items()))
    for chrom in chromsizes:
        ivs = sorted((s, e, v) for c, s, e, v in rows if c == chrom)
        merged: list[list] = []  # overlapping peaks -> one interval, the larger signal
        for s, e, v in ivs:
            if merged and s < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
                merged[-1][2] = max(merged[-1][2], v)
            else:
                merged.append([s, e, v])
        if merged:
            bw.addEntries([chrom] * len(merged), [m[0] for m in merged],
                          ends=[m[1] for m in merged], values=[float(m[2]) for m in merged])
    bw.close()
    return str(dst)


def loops_bedpe(bedgraph: str | Path, dst: str | Path, chrom: str = "chr1") -> str:
    """The loop calls (chromosome ``1``) as a 6-column bedpe on ``chrom``."""
    out = []
    with open(bedgraph) as fh:
        for line in fh:
            f = line.split()
            if len(f) >= 6:
                out.append("\t".join([chrom, f[1], f[2], chrom, f[4], f[5]]))
    Path(dst).write_text("\n".join(out) + "\n")
    return str(dst)


def make_inputs(out_dir: str | Path, real_dir: str | Path = REAL_DIR) -> dict[str, str]:
    """Steps 1-3: the balanced cooler, the CTCF bigWig and the bedpe under ``out_dir``."""
    import cooler

    out, real = Path(out_dir), Path(real_dir)
    out.mkdir(parents=True, exist_ok=True)
    cool = out / "gm12878.10kb.cool"
    if not cool.exists():
        tmp = out / ".gm12878.10kb.cool.tmp"
        tmp.unlink(missing_ok=True)
        rebase_cooler(real / COOL, tmp)
        balance(tmp)
        shutil.move(tmp, cool)
    sizes = {str(k): int(v) for k, v in cooler.Cooler(str(cool)).chromsizes.items()}
    return {
        "cool": str(cool),
        "ctcf": ctcf_bigwig(real / PEAKS, out / "ctcf.bw", sizes),
        "loops": loops_bedpe(real / LOOPS, out / "loops.bedpe"),
    }


_CACHE: dict[str, dict[str, str]] = {}


def cached_inputs(base_dir: str | Path, real_dir: str | Path = REAL_DIR) -> dict[str, str]:
    """:func:`make_inputs` once per process (balancing takes ~15 s): for tests."""
    key = str(Path(real_dir).resolve())
    if key not in _CACHE:
        _CACHE[key] = make_inputs(Path(base_dir) / "real-case-inputs", real_dir)
    return _CACHE[key]


def real_case_config(inputs: dict[str, str], out: str | Path, **overrides):
    """The prepare config of the case (a :class:`PrepareConfig`); ``overrides`` by key."""
    from mixhic.core.config import apply_overrides, build
    from mixhic.pipelines.prepare import PrepareConfig

    raw = {
        "sample": "GM12878-chr1-160M-180M",
        "inputs": {"hic": {"uri": inputs["cool"], "weight": "weight"},
                   "tracks": [{"name": "ctcf", "uri": inputs["ctcf"]}],
                   "loops": inputs["loops"]},
        "out": str(out), "window_bins": 50, "epi_bin": 200,
        "datasets": {
            "pretrain": {"enabled": False}, "cage": {"enabled": False},
            "hic": {"enabled": True, "step_bp": 250_000, "offsets_bp": [0]},
            "loops": {"enabled": True, "min_distance_bp": 20_000, "max_distance_bp": 2_000_000,
                      "negative_ratio": 1.0, "negatives": dict(NEGATIVES)},
        },
        "splits": {k: list(v) for k, v in SPLITS.items()},
        "qc": {"min_nonzero_frac": 0.1, "max_masked_bins": 5},
        "run": {"chunk_bins": 1000, "seed": 0},
    }
    return build(PrepareConfig, apply_overrides(raw, overrides))


def build_real_case(out_dir: str | Path, real_dir: str | Path = REAL_DIR, **overrides) -> dict:
    """Build the inputs and run ``mixhic prepare`` (Ray Data) into ``out_dir/prepared``.

    Returns ``{"data_dir", "cool", "ctcf", "loops", "manifest", "seconds"}``.
    """
    from mixhic.pipelines.prepare import prepare

    t0 = time.perf_counter()
    inputs = make_inputs(Path(out_dir) / "inputs", real_dir)
    t1 = time.perf_counter()
    data = Path(out_dir) / "prepared"
    manifest = prepare(real_case_config(inputs, data, **overrides))
    t2 = time.perf_counter()
    return {"data_dir": str(data), **inputs, "manifest": manifest,
            "seconds": {"inputs": t1 - t0, "prepare": t2 - t1, "total": t2 - t0}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--real-dir", default=str(REAL_DIR))
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    case = build_real_case(ns.out_dir, ns.real_dir)
    m = case["manifest"]
    for d in m.datasets:
        log.info("%s rows per split: %s; dropped: %s", d, m.rows[d], m.dropped[d])
    log.info("loops rows per kind and split: %s", m.negatives.get("rows"))
    log.info("build time: %s", {k: round(v, 1) for k, v in case["seconds"].items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
