"""Benchmark of ``mixhic prepare`` (Ray Data, chunked reads) vs a naive per-window loop.

Paper settings: 50 x 50 windows at 5 kb, 2 tracks x 2 x 2,500 bins of 100 bp, pretrain
grid with the paper's 62,500 bp step, Parquet written with the default compression.
The genome is synthetic (a banded 5 kb .cool with a `weight` column, two 100 bp
bigWigs), written in a temp dir.

    naive     for each window: cooler.matrix(balance=True).fetch(x, y) + 2 tracks x
              2 anchors pyBigWig values(); then the same transform and Parquet write.
    pipeline  prepare() with 1 worker, then 2 workers (a local Ray, started before the
              clock; actor start-up is inside the clock).

Run in a loopback-only namespace (Ray binds all interfaces otherwise):

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python tests/benchmarks/bench_prepare.py'

Figures: windows/s end to end (``prepare()`` wall, including actor start-up), steady
(first chunk start to last chunk end inside the workers: read + slice + QC + Parquet
write) and per worker CPU-second (robust on a shared host). The last line is
``speedup_vs_naive=<x> windows_per_s_per_core=<y> scaling_2_workers=<z>`` with
x = pipeline windows per worker CPU-second over naive windows per CPU-second (both one
    core; CPU time, because on a shared host the two wall-clock runs see different load;
    the wall-clock ratio is printed on the line before as ``speedup_wall_steady``),
y = 1-worker windows per worker CPU-second (one core's throughput, writes included),
z = 2-worker steady windows/s over 1-worker steady windows/s (wall clock).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("bench_prepare")

RES, W, EPI_BIN = 5000, 50, 100


def make_genome(out: Path, n_chroms: int, chrom_bp: int, seed: int = 0) -> dict[str, str]:
    """A banded 5 kb cooler (contacts up to 60 bins off the diagonal) and two bigWigs."""
    import cooler
    import pandas as pd
    import pyBigWig

    out.mkdir(parents=True, exist_ok=True)
    chroms = {f"chr{k + 1}": chrom_bp for k in range(n_chroms)}
    rng = np.random.default_rng(seed)
    bins = cooler.binnify(pd.Series(chroms), RES)
    n, band = len(bins), 60
    per = -(-chrom_bp // RES)
    i = np.repeat(np.arange(n), band)
    j = i + np.tile(np.arange(band), n)
    keep = (j // per == i // per) & (j < n)
    i, j = i[keep], j[keep]
    count = rng.poisson(200.0 / (1.0 + j - i) ** 1.1)
    nz = count > 0
    pixels = pd.DataFrame({"bin1_id": i[nz], "bin2_id": j[nz], "count": count[nz]})
    bins["weight"] = rng.uniform(0.5, 1.5, n)
    cooler.create_cooler(str(out / "g.cool"), bins, pixels, ordered=True)
    paths = {"cool": str(out / "g.cool")}
    for name in ("atac", "dnase"):
        bw = pyBigWig.open(str(out / f"{name}.bw"), "w")
        bw.addHeader(list(chroms.items()))
        for c, size in chroms.items():
            bw.addEntries(c, 0, values=rng.gamma(0.5, 2.0, size // EPI_BIN), span=EPI_BIN,
                          step=EPI_BIN)
        bw.close()
        paths[name] = str(out / f"{name}.bw")
    return paths


def config(paths: dict, out: str, step_bp: int, workers: int):
    from mixhic.core.config import build
    from mixhic.pipelines.prepare import PrepareConfig

    return build(PrepareConfig, {
        "inputs": {"hic": {"uri": paths["cool"], "weight": "weight"},
                   "tracks": [{"name": "atac", "uri": paths["atac"]},
                              {"name": "dnase", "uri": paths["dnase"]}]},
        "out": out, "window_bins": W, "epi_bin": EPI_BIN, "sample": "bench",
        "datasets": {"pretrain": {"step_bp": step_bp}, "hic": {"enabled": False},
                     "loops": {"enabled": False}, "cage": {"enabled": False}},
        "qc": {"min_nonzero_frac": 0.0, "max_masked_bins": W},
        "run": {"workers": workers, "force": True},
    })


def naive(paths: dict, windows: list[tuple[str, int]], out: str,
          multiplier: float) -> tuple[float, float]:
    """One balanced fetch and 4 bigWig reads per window; same transforms and Parquet write.

    Returns (windows per wall second, windows per CPU second).
    """
    import cooler
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pyBigWig
    from mixhic.pipelines.normalize import epi_transform, hic_transform
    from mixhic.pipelines.schema import tensor_column

    t0, c0 = time.perf_counter(), time.process_time()
    clr = cooler.Cooler(paths["cool"])
    bws = [pyBigWig.open(paths["atac"]), pyBigWig.open(paths["dnase"])]
    L = W * RES // EPI_BIN
    hic = np.empty((len(windows), W, W), np.float32)
    epi = np.empty((len(windows), 2, 2 * L), np.float32)
    for k, (chrom, start) in enumerate(windows):
        region = (chrom, start, start + W * RES)
        m = clr.matrix(balance=True).fetch(region, region) * multiplier
        hic[k] = hic_transform(m[None])[0]
        for c, bw in enumerate(bws):
            for a in range(2):  # x- and y-anchor (the same for diagonal windows)
                v = np.nan_to_num(bw.values(chrom, start, start + W * RES, numpy=True))
                epi[k, c, a * L:(a + 1) * L] = epi_transform(v.reshape(L, EPI_BIN).mean(1))
    table = pa.table({"chrom": [c for c, _ in windows], "x_start": [s for _, s in windows],
                      "hic": tensor_column(hic, (W, W)), "epi": tensor_column(epi, (2, 2 * L))})
    pq.write_table(table, out)
    return (len(windows) / (time.perf_counter() - t0),
            len(windows) / (time.process_time() - c0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chroms", type=int, default=4)
    ap.add_argument("--chrom-mb", type=int, default=50)
    ap.add_argument("--step-bp", type=int, default=62_500)
    ap.add_argument("--naive-windows", type=int, default=300)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    os.environ.setdefault("TQDM_DISABLE", "1")
    tmp = Path(args.dir or tempfile.mkdtemp(prefix="mxb-"))
    os.environ.setdefault("RAY_TMPDIR", str(tmp / "ray"))

    from mixhic.core.runtime import ensure_ray
    from mixhic.pipelines import hic_reader
    from mixhic.pipelines.prepare import prepare
    from mixhic.pipelines.windows import grid_windows

    t = time.perf_counter()
    paths = make_genome(tmp / "genome", args.chroms, args.chrom_mb * 1_000_000)
    log.info("genome: %d x %d Mb in %.1f s", args.chroms, args.chrom_mb, time.perf_counter() - t)
    info = hic_reader.inspect_hic(paths["cool"])
    n_bins = -(-args.chrom_mb * 1_000_000 // RES)
    xs, _ = grid_windows(n_bins, W, args.step_bp, RES)
    windows = [(f"chr{1 + k % args.chroms}", int(x) * RES)
               for k, x in enumerate(np.resize(xs, args.naive_windows))]
    rate_naive, cpu_naive = naive(paths, windows, str(tmp / "naive.parquet"), info.multiplier)
    log.info("naive: %.1f windows/s wall, %.1f per CPU-second (%d windows)",
             rate_naive, cpu_naive, len(windows))

    import ray

    for attempt in range(3):  # a busy shared host can miss Ray's 30 s node start-up limit
        try:
            ensure_ray(num_cpus=2, object_store_gb=1.0)
            break
        except Exception as exc:  # noqa: BLE001
            log.warning("Ray start failed (%s); retrying", exc)
            ray.shutdown()
            time.sleep(10)
    rates, steady, per_cpu = {}, {}, {}
    for workers in (1, 2):
        cfg = config(paths, str(tmp / f"out{workers}"), args.step_bp, workers)
        t = time.perf_counter()
        m = prepare(cfg)
        wall = time.perf_counter() - t
        n = m.total_rows("pretrain")
        rates[workers] = n / wall
        steady[workers] = n / max(m.timing["worker_wall_s"], 1e-9)
        per_cpu[workers] = n / max(m.timing["worker_cpu_s"], 1e-9)
        log.info("pipeline, %d worker(s): %d windows in %.2f s -> %.0f windows/s end to end, "
                 "%.0f steady, %.0f per worker CPU-second", workers, n, wall, rates[workers],
                 steady[workers], per_cpu[workers])
    print(f"naive_wall={rate_naive:.1f} naive_per_cpu_s={cpu_naive:.1f} "
          f"pipeline_1w_end_to_end={rates[1]:.0f} pipeline_2w_end_to_end={rates[2]:.0f} "
          f"pipeline_1w_steady={steady[1]:.0f} pipeline_2w_steady={steady[2]:.0f} "
          f"speedup_wall_steady={steady[1] / rate_naive:.1f}")
    print(f"speedup_vs_naive={per_cpu[1] / cpu_naive:.1f} "
          f"windows_per_s_per_core={per_cpu[1]:.0f} scaling_2_workers={steady[2] / steady[1]:.2f}")


if __name__ == "__main__":
    main()
