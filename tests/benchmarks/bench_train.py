"""Benchmark: samples/s of the full Ray Train pretraining loop vs the bare model loop.

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python tests/benchmarks/bench_train.py \
        [--data PREPARED_DIR] [--steps 20] [--batch 16]'

Same data (the ``pretrain`` train split), same model (tiny preset), same batch size and
per-worker threads (1), same step (forward, pretraining loss, backward, clip, AdamW):

- bare: numpy batches already in memory, a Python loop over the model (no Ray);
- ray1: ``pretrain()`` with 1 Ray Train worker (Ray Data ingest via
  ``get_dataset_shard().iter_torch_batches``), samples/s of its 2nd epoch (warm);
- ray2: the same with 2 DDP workers (0.5 CPU each).

ingest_efficiency = ray1 / bare (>= 0.9: ingest is not the bottleneck), with bare timed
right before and right after ray1 and averaged, so that load from other processes on a
shared machine weighs on both sides alike; scaling_2_workers = ray2 / ray1.
ingest_efficiency_cpu: the same ratio per CPU-second of the training process (Ray: the
worker's ``epoch_cpu_s``, all its threads, ingest included): steady when other processes
load the host, where wall-clock figures swing by 2x between two runs a minute apart.
ray*_data_wait_share: the epoch's share spent waiting for the next batch, and
ray*_first_batch_wait_s the part of it before the epoch's first batch (iterator start).

Without --data a genome is simulated and prepared: 6 chromosomes of ~6 Mb, ~355 train
rows, so an epoch holds --steps (20) full batches of 16. (Until 2026-12-03 it was 4
chromosomes of 1.5 Mb: 41 train rows, an "epoch" of 2 full batches and one of 9 rows,
which timed mostly the per-epoch iterator start; ``--n-chroms 4 --chrom-length 1500000``
reproduces that.)
Last line: ``ingest_efficiency=<ratio> ingest_efficiency_cpu=<ratio> scaling_2_workers=<z>``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

log = logging.getLogger("bench_train")


def bare_loop(data_dir: str, steps: int, batch: int, warmup: int = 3) -> tuple[float, float]:
    """Samples/s and samples per CPU-second (of the looping thread, which with 1 torch
    thread does all the work) of the model step alone on in-memory batches."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pds
    import torch
    from mixhic.models import LossWeights, PretrainModel, get_preset, pretrain_objective
    from mixhic.platform.data import read_geometry

    torch.set_num_threads(1)
    table = pds.dataset(f"{data_dir}/pretrain").to_table(columns=["split", "hic", "epi"])
    table = table.filter(pc.equal(table.column("split"), "train"))
    hic = table.column("hic").combine_chunks().to_numpy_ndarray().astype(np.float32)
    epi = table.column("epi").combine_chunks().to_numpy_ndarray().astype(np.float32)
    geo = read_geometry(data_dir, "pretrain")
    torch.manual_seed(0)
    model = PretrainModel(get_preset("tiny", window_bins=geo.window_bins,
                                     epi_bins=geo.epi_bins, n_tracks=geo.n_tracks))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    n = len(hic)
    t0, c0, done = None, None, 0
    for i in range(steps + warmup):
        if i == warmup:
            # this thread only: the driver's Ray threads are not the model's work
            t0, c0 = time.perf_counter(), time.thread_time()
        idx = np.arange(i * batch, (i + 1) * batch) % n
        out = model(torch.from_numpy(hic[idx]), torch.from_numpy(epi[idx]))
        loss = pretrain_objective(out, model, LossWeights())["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i >= warmup:
            done += batch
    return done / (time.perf_counter() - t0), done / (time.thread_time() - c0)


def ray_loop(data_dir: str, steps: int, batch: int, workers: int, work: Path) -> dict:
    """Samples/s (and data-wait share) of the 2nd epoch of a pretrain() run."""
    from mixhic.core.config import load_config
    from mixhic.platform.pretrain import pretrain
    from mixhic.platform.train_config import PretrainConfig

    cfg = load_config("demo-pretrain", PretrainConfig, {
        "data.data_dir": data_dir, "data.batch_size": batch, "data.shuffle_buffer": 0,
        "train.epochs": 2, "train.max_steps_per_epoch": steps,
        "loss.contrastive_warmup_epochs": 0,
        "scaling.num_workers": workers, "scaling.cpus_per_worker": 0.5,
        "run.storage_path": str(work / "ray"), "run.runs_dir": str(work / "runs"),
        "run.run_name": f"bench-{workers}w-{uuid.uuid4().hex[:6]}",
        "run.experiment": "bench-train",
    })
    res = pretrain(cfg)
    last = res.history[-1]
    return {"samples_per_s": last["samples_per_s"],
            "wait_share": last["data_wait_s"] / max(last["epoch_time_s"], 1e-9),
            "first_wait_s": last.get("data_wait_first_s", float("nan")),
            "per_cpu_s": last["train_rows"] / max(last.get("epoch_cpu_s", float("nan")), 1e-9),
            "steps": last["train_steps"], "rows": last["train_rows"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="prepared data dir (default: simulate + prepare)")
    parser.add_argument("--steps", type=int, default=20, help="steps per epoch per worker")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--n-chroms", type=int, default=6, help="simulated chromosomes")
    parser.add_argument("--chrom-length", type=int, default=6_000_000,
                        help="simulated mean chromosome length (bp)")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    work = Path(tempfile.mkdtemp(prefix="mxb-"))
    os.environ.setdefault("HOME", str(work))
    os.environ.setdefault("RAY_TMPDIR", str(work / "ray-tmp"))
    from mixhic.core.runtime import ensure_ray

    ensure_ray(num_cpus=2, object_store_gb=1.0)
    data_dir = ns.data
    if data_dir is None:
        from mixhic.core.config import load_config
        from mixhic.pipelines.prepare import PrepareConfig, prepare
        from mixhic.pipelines.simulate import simulate_genome

        # chr2 val, chr3 test, the rest train: by default ~355 train rows, so one epoch
        # holds --steps full batches and the timed epoch is not a few partial batches
        simulate_genome(work / "genome", preset="tiny", seed=0, n_chroms=ns.n_chroms,
                        chrom_length=ns.chrom_length)
        prepare(load_config("prepare-demo", PrepareConfig,
                            {"root": str(work / "genome"), "out": str(work / "data")}))
        data_dir = str(work / "data")
    data_dir = str(Path(data_dir).absolute())
    bare_before, cpu_before = bare_loop(data_dir, ns.steps, ns.batch)
    ray1 = ray_loop(data_dir, ns.steps, ns.batch, 1, work)
    bare_after, cpu_after = bare_loop(data_dir, ns.steps, ns.batch)
    bare, bare_cpu = 0.5 * (bare_before + bare_after), 0.5 * (cpu_before + cpu_after)
    ray2 = ray_loop(data_dir, ns.steps, ns.batch, 2, work)
    eff = ray1["samples_per_s"] / bare
    # per CPU-second of the process that trains (Ray: the worker, all its threads,
    # ingest included): what ingest + Ray cost in CPU, whatever else loads the host
    eff_cpu = ray1["per_cpu_s"] / bare_cpu
    scale = ray2["samples_per_s"] / ray1["samples_per_s"]
    sys.stdout.write(
        f"bare_samples_per_s={bare:.2f} (before ray1 {bare_before:.2f}, after {bare_after:.2f}) "
        f"bare_samples_per_cpu_s={bare_cpu:.2f} ray1_samples_per_cpu_s={ray1['per_cpu_s']:.2f} "
        f"ray1_samples_per_s={ray1['samples_per_s']:.2f} "
        f"ray2_samples_per_s={ray2['samples_per_s']:.2f} "
        f"ray1_data_wait_share={ray1['wait_share']:.3f} "
        f"ray1_first_batch_wait_s={ray1['first_wait_s']:.3f} "
        f"ray2_data_wait_share={ray2['wait_share']:.3f} "
        f"ray2_first_batch_wait_s={ray2['first_wait_s']:.3f} "
        f"ray1_epoch={ray1['steps']}steps/{ray1['rows']}rows batch={ns.batch} "
        f"steps={ns.steps} cpus={os.cpu_count()}\n"
        f"ingest_efficiency={eff:.3f} ingest_efficiency_cpu={eff_cpu:.3f} "
        f"scaling_2_workers={scale:.3f}\n"
    )
    import ray

    ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
