"""Benchmark of ``mixhic predict``: windows/s per core for loops and Hi-C, projected to a genome.

A small genome from the simulator (2 chromosomes of 1 Mb at 5 kb, 100 bp tracks) and
randomly initialised fine-tuned models (default the paper's size, ``paper-128``, with the
paper's geometry: 50 x 50 windows at 5 kb, 2 tracks x 2 x 2,500 bins of 100 bp) run
through :func:`mixhic.serve.predict.predict_genome` on a local Ray, one model actor of
one CPU (``num_cpus=1``: Ray gives the actor one OMP thread):

    loops   the shipped ``predict-demo`` scan (20 kb - 1 Mb, stride 2) over a region of
            ``--loop-region-kb`` of chr1 (both anchors inside it)
    hic     diagonal windows at every bin (``step_bins=1``, to have enough of them; the
            cost of a window does not depend on the step) over both chromosomes

Rates are windows per second per core of the model actor's busy time (reading the
files, normalising, the forward pass, post-processing; Ray and actor start-up are left
out), as ``predict.json`` reports them. The projection is a whole human genome (GRCh38
chr1-22, X, Y) at 5 kb with the shipped settings (loops grid as above, Hi-C windows
every W/2), each task at its own measured rate, on 32 such cores.

Run in a loopback-only network namespace (Ray binds all interfaces otherwise):

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python tests/benchmarks/bench_predict.py'

The last line is ``predict_windows_per_s_per_core=<x> genome_hours_32_cores=<y>`` with
x = all windows measured over all busy core-seconds (loops and Hi-C together) and
y = projected wall hours of loops + Hi-C prediction over GRCh38 at 5 kb on 32 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
import warnings
from pathlib import Path

log = logging.getLogger("bench_predict")

RES, EPI_BIN = 5000, 100
TASK_MODES = {"loops": "bimodal", "hic": "infer"}


def make_models(root: Path, preset: str, window_bins: int) -> dict[str, Path]:
    """One randomly initialised fine-tuned model dir per task (loops, hic)."""
    import torch
    from mixhic.models import FinetuneModel, get_preset
    from mixhic.platform.checkpoints import save_model_dir

    epi_bins = window_bins * RES // EPI_BIN
    geometry = {"window_bins": window_bins, "epi_bins": epi_bins, "n_tracks": 2}
    data = {**geometry, "resolution": RES, "epi_bin": EPI_BIN, "tracks": ["atac", "dnase"],
            "epi_transform": "log2p1"}
    out = {}
    for seed, (task, mode) in enumerate(TASK_MODES.items()):
        torch.manual_seed(seed)
        cfg = get_preset(preset, **geometry)
        model = FinetuneModel(cfg, task=task, mode=mode).eval()
        meta = {"kind": "finetune", "task": task, "mode": mode,
                "model_config": dataclasses.asdict(cfg), "preset": preset, "data": data,
                "run_id": f"bench-{task}", "epoch": 0, "metrics": {}}
        out[task] = Path(save_model_dir(root / f"{preset}-{task}", model, meta))
    return out


def run_task(task: str, model: Path, genome, out: Path, loop_region_kb: int) -> dict:
    """predict_genome with one model; returns predict.json's throughput section."""
    from mixhic.core.config import load_config
    from mixhic.serve.config import PredictConfig
    from mixhic.serve.predict import predict_genome

    overrides = {"models": [str(model)], "out_dir": str(out),
                 "genome": {"mcool": str(genome.mcool),
                            "tracks": {"atac": str(genome.atac), "dnase": str(genome.dnase)}},
                 "num_cpus": 1, "progress": False, "resume": False}
    if task == "loops":
        overrides["regions"] = [f"chr1:100000-{100_000 + loop_region_kb * 1000}"]
    else:
        overrides["step_bins"] = 1
    res = predict_genome(load_config("predict-demo", PredictConfig, overrides))
    return json.loads(res.summary.read_text())["throughput"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="paper-128", help="model preset (tiny: a quick run)")
    p.add_argument("--window-bins", type=int, default=50)
    p.add_argument("--loop-region-kb", type=int, default=300,
                   help="chr1 region scanned for loops (kb; ~400 windows at 300)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for name in ("ray", "ray.data", "mixhic"):
        logging.getLogger(name).setLevel(logging.WARNING)

    import ray
    from mixhic.core.config import load_config
    from mixhic.pipelines.simulate import simulate_genome
    from mixhic.serve.config import PredictConfig
    from mixhic.serve.throughput import genome_windows

    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        root = Path(tmp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            genome = simulate_genome(root / "genome", preset="tiny", seed=0, n_chroms=2,
                                     chrom_length=1_000_000, resolutions=[RES],
                                     max_distance=1_000_000)
        models = make_models(root / "models", args.preset, args.window_bins)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 object_store_memory=1 << 30)
        shipped = load_config("predict-demo", PredictConfig)
        total_w, total_s, hours = 0, 0.0, 0.0
        for task in TASK_MODES:
            tp = run_task(task, models[task], genome, root / f"out-{task}", args.loop_region_kb)
            rate = tp["windows_per_s_per_core"]
            n_genome = genome_windows({task: args.window_bins}, RES, shipped.step_bins,
                                      shipped.loops)[task]
            h = n_genome / (rate * 32) / 3600
            total_w += tp["windows"]
            total_s += tp["busy_core_s"]
            hours += h
            print(f"{task}: {tp['windows']} windows, {rate:.2f} windows/s/core "
                  f"({tp['wall_s']:.1f} s wall with start-up); GRCh38 at 5 kb: {n_genome} "
                  f"windows -> {h:.2f} h on 32 cores", flush=True)
        ray.shutdown()
    print(f"model {args.preset}, W={args.window_bins}, loops grid "
          f"{shipped.loops.min_distance}-{shipped.loops.max_distance} bp stride "
          f"{shipped.loops.stride_bins}", flush=True)
    print(f"predict_windows_per_s_per_core={total_w / total_s:.3f} "
          f"genome_hours_32_cores={hours:.2f}", flush=True)


if __name__ == "__main__":
    main()
