"""Benchmark (it trains): which Hi-C target should the defaults use, the capped log1p or
the paper's balanced-then-log?

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python \
        tests/benchmarks/bench_hic_target.py [--work DIR] [--epochs 8] [--skip-sim]'

The paper normalises Hi-C by balancing (KR) and a log transform. ``mixhic prepare`` offers
that as ``normalize.hic=log1p`` (balanced contacts at count scale, then log1p, unscaled)
beside the default ``log1p_fixed`` (the same log1p, clipped at ``log1p(hic_cap)`` and
divided by it: values in [0, 1], the published code's "clip at 255, divide by the maximum"
on a log scale). For each target this prepares the data, fine-tunes Hi-C (``infer``, from
scratch) and loops (``bimodal``, from scratch: the map is the loop model's input too),
and reads the test metrics beside their baselines on the same rows (Pearson vs distance
decay, AUROC vs the best map/track baseline). Both targets are monotone in the balanced
contacts, so Pearson and AUROC compare across them up to the cap's clipping.

Data: the real case (``real_case.py``: GM12878 chr1:160-180 Mb, 10 kb) and the simulator
(``tiny`` preset, 4 chromosomes). Last line:
``real_hic_gain_fixed=<x> real_hic_gain_log1p=<y> real_loops_gain_fixed=<..>
real_loops_gain_log1p=<..> sim_hic_gain_fixed=<..> sim_hic_gain_log1p=<..>``.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

log = logging.getLogger("bench_hic_target")

TARGETS = ("log1p_fixed", "log1p")
RUNS = (("hic", "infer"), ("loops", "bimodal"))


def _prepare_sim(work: Path, target: str) -> str:
    from mixhic.core.config import load_config
    from mixhic.pipelines.prepare import PrepareConfig, prepare
    from mixhic.pipelines.simulate import simulate_genome

    genome, data = work / "genome", work / f"data-{target}"
    if not (genome / "simulation.json").is_file():
        simulate_genome(genome, preset="tiny", seed=0, n_chroms=4, chrom_length=3_000_000)
    if not (data / "manifest.json").is_file():
        prepare(load_config("prepare-demo", PrepareConfig, {
            "root": str(genome), "out": str(data), "normalize.hic": target}))
    return str(data)


def _prepare_real(work: Path, target: str) -> str:
    from real_case import build_real_case

    return build_real_case(work / f"case-{target}", **{"normalize.hic": target})["data_dir"]


def main() -> int:
    from bench_quality import HEADLINE, _finetune, bench_parser, bench_start

    args = bench_parser(__doc__).parse_args()
    work = bench_start(args, "bench-hic-target-")
    datasets = {"real": _prepare_real, "sim": _prepare_sim}
    rows = []
    for name, make in datasets.items():
        if getattr(args, f"skip_{name}"):
            continue
        for target in TARGETS:
            t0 = time.perf_counter()
            data = make(work / name, target)
            log.info("%s %s: prepared in %.0f s", name, target, time.perf_counter() - t0)
            extra = {"data.batch_size": 8} if name == "real" else {}
            for task, mode in RUNS:
                r = _finetune(data, work / name / target, task, mode, None, args.epochs, extra)
                rows.append({"data": name, "target": target, **r})
    lines = ["| data | target | task | mode | metric | model | baseline | gain | best epoch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['data']} | {r['target']} | {r['task']} | {r['mode']} | "
                     f"{HEADLINE[r['task']]} | {r['model']:.3f} | {r['baseline']:.3f} | "
                     f"{r['gain']:+.3f} | {r['best_epoch']} |")
    sys.stdout.write("\n".join(lines) + "\n")

    def gain(data: str, task: str, target: str) -> str:
        for r in rows:
            if (r["data"], r["task"], r["target"]) == (data, task, target):
                return f"{r['gain']:.3f}"
        return "nan"

    short = {"log1p_fixed": "fixed", "log1p": "log1p"}
    print(" ".join(f"{d}_{t}_gain_{short[g]}={gain(d, t, g)}"
                   for d in ("real", "sim") for t in ("hic", "loops") for g in TARGETS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
