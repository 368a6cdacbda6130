"""Benchmark: forward+backward samples/s and peak memory of the MIX-HIC models.

    .venv/bin/python tests/benchmarks/bench_model.py [--threads 1] [--iters 3] [--batch 8]

CPU: the pretraining step (all three losses) and the loop fine-tuning step for ``tiny``
and ``paper-128`` at the paper geometry (W = 50, epi 2 x 5000); peak memory is the max RSS
(resource.getrusage) of a fresh process running that one benchmark (~300 MB is torch).
With CUDA: the same in fp32 and bf16
autocast, peak memory from torch.cuda.max_memory_allocated. Prints parameter counts per
module for each preset. Last line:
``tiny_samples_per_s=<x> paper128_samples_per_s=<y> paper128_params=<n>``
(CPU figures of the pretraining step; params of the paper-128 pretraining model).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import resource
import time

import torch

from mixhic.models import (
    FinetuneModel,
    PretrainModel,
    format_parameter_counts,
    get_preset,
    parameter_counts,
    pretrain_objective,
)

log = logging.getLogger("bench_model")


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _step_fn(model, kind, cfg, B, device):
    W, C, L2 = cfg.window_bins, cfg.n_tracks, 2 * cfg.epi_bins
    hic = torch.rand(B, W, W, device=device)
    epi = torch.rand(B, C, L2, device=device)
    if kind == "pretrain":
        return lambda: pretrain_objective(model(hic, epi), model)["loss"]
    target = (torch.rand(B, device=device) > 0.5).float()
    return lambda: model.loss(model(epi, hic), target)


def bench(preset, kind, B, iters, device="cpu", dtype=None, threads=1):
    """Samples/s of forward+backward (mean over ``iters`` after one warm-up), samples per
    CPU-second (process time: steady on a shared machine) and the peak memory rise in MB."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rss0 = _maxrss_mb()
    cfg = get_preset(preset)
    model = (PretrainModel(cfg) if kind == "pretrain" else FinetuneModel(cfg, "loops")).to(device)
    model.train()
    step = _step_fn(model, kind, cfg, B, device)
    cuda = device != "cpu"

    def run():
        with torch.autocast(device_type="cuda" if cuda else "cpu", dtype=dtype or torch.float32,
                            enabled=dtype is not None):
            loss = step()
        loss.backward()
        model.zero_grad(set_to_none=True)

    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    run()
    if cuda:
        torch.cuda.synchronize()
    t, c = time.perf_counter(), time.process_time()
    for _ in range(iters):
        run()
    if cuda:
        torch.cuda.synchronize()
    dt, dc = time.perf_counter() - t, time.process_time() - c
    # CUDA: peak allocated by the step; CPU: the (isolated) process's peak RSS, model incl.
    peak = ((torch.cuda.max_memory_allocated() - base) / 2**20 if cuda
            else _maxrss_mb())
    log.debug("max RSS before building the model: %.1f MB", rss0)
    return B * iters / dt, B * iters / dc, peak


def bench_isolated(*args, **kwargs):
    """``bench`` in a fresh spawned process, so max RSS is that run's own peak."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(bench, args, kwargs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--compile", action="store_true",
                    help="also time torch.compile (inductor) of the tiny loop model, eval forward")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    for preset in ("tiny", "paper-128"):
        cfg = get_preset(preset)
        log.info(format_parameter_counts(parameter_counts(PretrainModel(cfg)),
                                         f"{preset} pretraining"))
        for task in ("loops", "hic", "cage"):
            log.info(format_parameter_counts(parameter_counts(FinetuneModel(cfg, task)),
                                             f"{preset} fine-tuning {task} (bimodal)"))
    paper_params = parameter_counts(PretrainModel(get_preset("paper-128")))["total"]

    results = {}
    for preset in ("tiny", "paper-128"):
        for kind in ("pretrain", "loops"):
            sps, spc, peak = bench_isolated(preset, kind, args.batch, args.iters,
                                            threads=args.threads)
            results[(preset, kind)] = sps
            log.info(f"cpu threads={args.threads} {preset:9s} {kind:8s} batch={args.batch}: "
                     f"{sps:8.2f} samples/s fwd+bwd ({spc:8.2f} per CPU-second), "
                     f"process peak RSS {peak:7.1f} MB")
    if args.compile:
        cfg = get_preset("tiny")
        fm = FinetuneModel(cfg, "loops").eval()
        hic, epi = torch.rand(args.batch, 50, 50), torch.rand(args.batch, 2, 5000)
        t = time.perf_counter()
        with torch.no_grad():
            eager, compiled = fm(epi, hic), torch.compile(fm)(epi, hic)
        err = (eager - compiled).abs().max().item()
        log.info(f"torch.compile(inductor) tiny loops: first call {time.perf_counter() - t:.1f} s, "
                 f"max |eager - compiled| = {err:.2e}")
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        for preset in ("tiny", "paper-128"):
            for dtype in (None, torch.bfloat16):
                for kind in ("pretrain", "loops"):
                    B = 32
                    sps, _, peak = bench(preset, kind, B, max(args.iters, 10), "cuda", dtype)
                    log.info(f"cuda {name} {preset:9s} {kind:8s} "
                             f"{'bf16' if dtype else 'fp32'} batch={B}: {sps:9.1f} samples/s, "
                             f"peak {peak:8.1f} MB")
    print(f"tiny_samples_per_s={results[('tiny', 'pretrain')]:.2f} "
          f"paper128_samples_per_s={results[('paper-128', 'pretrain')]:.2f} "
          f"paper128_params={paper_params}")


if __name__ == "__main__":
    main()
