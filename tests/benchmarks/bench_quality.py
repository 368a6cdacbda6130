"""Benchmark (it trains): does the model beat its trivial baselines, on the simulator and
on a real public loop case?

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python \
        tests/benchmarks/bench_quality.py [--work DIR] [--preset small] [--skip-real]'

For each data set: prepare (Ray Data), pre-train a tiny MIX-HIC (sim only; the real case
has no matching pretraining corpus, so its bimodal model starts from scratch), then
fine-tune loops (bimodal, epi), Hi-C (infer, epi) and, on the simulator, CAGE (bimodal)
and read the test metrics, each with its baseline computed on the same rows
(``mixhic.platform.evaluate.baseline_metrics``):
loops AUROC vs the best baseline the mode's inputs allow (bimodal: the loop pixel's o/e,
donut, lower-left and the anchors' track signal; epi: the track signal), Hi-C Pearson vs
distance decay, CAGE R^2 vs a linear fit of the promoter bin's track signal. For the
simulator's Hi-C it also gives, from the simulator's own truth
(``noise_ceiling.py``), the test maps' test-retest ceiling (the best Pearson any
predictor can reach on those reads) and the ``oracle``: the score of a predictor that
knows the simulated structure but not the coverage bias, which no track carries (the real
file holds normalised values, not reads, so it has neither). Prints one line per run and
a table, then the last line:

``sim_loops_gain=<auroc-baseline> sim_hic_gain=<pearson-baseline>
sim_cage_gain=<r2-baseline> real_loops_gain=<...> real_hic_gain=<...>
sim_hic_oracle_gain=<oracle-baseline> sim_hic_max_gain=<ceiling-baseline>`` (bimodal loops
and CAGE, infer Hi-C).

The real case is judged by 5-fold region cross-validation (``--real-folds``, default 5):
its fixed split holds 19 test loops (AUROC +-0.05) in a block where o/e happens to score
0.892 (0.63 on val, 0.80 on train). Measured 2026-12-03 (2 shared cores, session 9's
code: loop contrasts skip masked bins, which lifted the real o/e baseline 0.779 -> 0.795):
sim ``small`` loops bimodal 0.990 vs 0.932, epi 0.958 vs 0.901; Hi-C (observed pixels)
infer 0.938 vs 0.921, epi 0.939 vs 0.921, where the oracle that knows the simulated
structure scores 0.950 and the test-retest ceiling is 0.959 (no model of the tracks can
gain more than +0.029, no predictor at all more than +0.038); CAGE bimodal R^2 0.239 vs
0.122; real 5-fold CV loops bimodal 0.821 vs o/e 0.795 (4 of 5 folds won), epi 0.814 vs
0.756, Hi-C infer 0.851 vs 0.851 (every fold within 0.001: 42-46 train windows a fold,
the model stays at its decay start). ``--preset small-realistic`` (small's size at the
demo's sparsity and decay, ``--skip-real``): loops bimodal 0.988 vs 0.878, epi 0.987 vs
0.878; Hi-C infer 0.686 vs 0.671, epi 0.686 vs 0.671, ceiling 0.715 (+0.045 at most; its
replicate-mean oracle, 0.660, is itself noisy at that depth); CAGE 0.421 vs 0.190. A Hi-C
gain of 0.1 over decay is above the ceiling on both. The simulator's Hi-C gain is not a
matter of training length or width: on the same pretrained model and data, infer gains
+0.0178 after 8 epochs, +0.0182 after 24 (val Pearson flat from epoch 10) and +0.0178
with a model twice as wide (embed_dim 32, pretrained and fine-tuned; 2026-12-03).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("bench_quality")

RUNS = (("loops", "bimodal"), ("loops", "epi"), ("hic", "infer"), ("hic", "epi"))
SIM_RUNS = (*RUNS, ("cage", "bimodal"))  # the real case has no CAGE track
HEADLINE = {"loops": "auroc", "hic": "pearson", "cage": "r2"}


def _finetune(data_dir: str, work: Path, task: str, mode: str, pretrained: str | None,
              epochs: int, extra: dict) -> dict:
    from mixhic.core.config import load_config
    from mixhic.platform.finetune import finetune
    from mixhic.platform.train_config import FinetuneConfig

    over = {"data.data_dir": data_dir, "task": task, "mode": mode, "pretrained": pretrained,
            "train.epochs": epochs, "run.storage_path": str(work / "ray"),
            "run.runs_dir": str(work / "runs"), "run.experiment": "bench-quality",
            "run.run_name": f"{work.name}-{task}-{mode}", "run.register": False, **extra}
    t0 = time.perf_counter()
    res = finetune(load_config("demo-finetune", FinetuneConfig, over))
    m = res.metrics
    key = HEADLINE[task]
    row = {"task": task, "mode": mode, "best_epoch": res.best_epoch,
           "model": m.get(f"test_{key}"), "baseline": m.get(f"test_baseline_{key}"),
           "seconds": time.perf_counter() - t0,
           "extra": {k[5:]: v for k, v in m.items() if k.startswith("test_")
                     and ("_neg_" in k or k.startswith("test_baseline_") and "auroc" in k)}}
    row["gain"] = row["model"] - row["baseline"]
    log.info("%s %s/%s: %s %.3f vs baseline %.3f (gain %+.3f), best epoch %s, %.0f s",
             work.name, task, mode, key, row["model"], row["baseline"], row["gain"],
             res.best_epoch, row["seconds"])
    return row


def run_sim(work: Path, preset: str, epochs: int, pre_epochs: int) -> list[dict]:
    from mixhic.core.config import load_config
    from mixhic.pipelines.prepare import PrepareConfig, prepare
    from mixhic.pipelines.simulate import simulate_genome
    from mixhic.platform.pretrain import pretrain
    from mixhic.platform.train_config import PretrainConfig

    t0 = time.perf_counter()
    genome, data = work / "genome", work / "data"
    if not (genome / "simulation.json").is_file():
        simulate_genome(genome, preset=preset, seed=0)
    if not (data / "manifest.json").is_file():
        prepare(load_config("prepare-demo", PrepareConfig, {"root": str(genome),
                                                             "out": str(data)}))
    log.info("sim (%s): simulated + prepared in %.0f s", preset, time.perf_counter() - t0)
    pre = pretrain(load_config("demo-pretrain", PretrainConfig, {
        "data.data_dir": str(data), "train.epochs": pre_epochs,
        "run.storage_path": str(work / "ray"), "run.runs_dir": str(work / "runs"),
        "run.experiment": "bench-quality", "run.run_name": "sim-pretrain"}))
    rows = []
    for task, mode in SIM_RUNS:
        rows.append(_finetune(str(data), work, task, mode, pre.model_dir, epochs, {}))
    sys.path.insert(0, str(Path(__file__).parent))
    from noise_ceiling import replicate_ceiling, structure_oracles

    ceiling = replicate_ceiling(str(data), str(genome))["ceiling_pearson"]
    oracles = structure_oracles(str(data), str(genome))
    for r in rows:
        if r["task"] == "hic":
            r["ceiling"], r["oracle"] = ceiling, oracles["oracle_structure"]
            r["extra"].update(oracles)
    log.info("sim: Hi-C test maps' test-retest ceiling (Pearson) %.3f; a predictor that knows "
             "the simulated structure (not the coverage bias) scores %.3f", ceiling,
             oracles["oracle_structure"])
    return rows


def run_real(work: Path, epochs: int, folds: int = 0,
             runs: tuple[tuple[str, str], ...] = RUNS) -> list[dict]:
    """The real case: the fixed split of ``real_case.SPLITS`` (``folds`` 0), or
    ``folds``-fold region cross-validation (``real_case.fold_splits``), each fold prepared
    and fine-tuned afresh. Cross-validated rows hold the mean over folds of the model's
    metric and of each baseline's (``baseline`` = the best baseline mean: one fixed
    baseline for all folds), the per-fold figures and how many folds the model won."""
    sys.path.insert(0, str(Path(__file__).parent))
    from real_case import build_real_case, fold_splits

    plans = ([(work, {})] if not folds else
             [(work / f"fold{k}", {f"splits.{s}": v for s, v in fold_splits(k, folds).items()})
              for k in range(folds)])
    per_fold: list[list[dict]] = []
    for fold_work, splits in plans:
        t0 = time.perf_counter()
        case = build_real_case(fold_work / "case", **splits)
        log.info("real %s: built in %.0f s (rows %s)", fold_work.name,
                 time.perf_counter() - t0, case["manifest"].rows)
        per_fold.append([_finetune(str(case["data_dir"]), fold_work, task, mode, None, epochs,
                                   {"data.batch_size": 8}) for task, mode in runs])
    if not folds:
        return per_fold[0]
    rows = []
    for i, (task, mode) in enumerate(runs):
        fold_rows = [f[i] for f in per_fold]
        key = HEADLINE[task]
        model = [r["model"] for r in fold_rows]
        names = sorted({k for r in fold_rows for k in r["extra"]
                        if k.startswith("baseline_") and k.endswith(f"_{key}")
                        and k != f"baseline_{key}"})
        means = {n: float(np.nanmean([r["extra"].get(n, np.nan) for r in fold_rows]))
                 for n in names}
        ref = [r["baseline"] for r in fold_rows]  # per fold: the mode's best on that fold
        if task == "loops":  # one fixed baseline: the best mean among the mode's references
            from mixhic.platform.baselines import loop_reference_baselines

            cands = {n: v for n, v in means.items()
                     if n[len("baseline_"):-len(f"_{key}")] in loop_reference_baselines(mode)}
            best = max(cands, key=cands.get)
            base = cands[best]
            per_base = [r["extra"][best] for r in fold_rows]
        else:
            best, base, per_base = f"baseline_{key}", float(np.mean(ref)), ref
        wins = sum(m > b for m, b in zip(model, per_base))
        row = {"task": task, "mode": mode, "model": float(np.mean(model)), "baseline": base,
               "gain": float(np.mean(model)) - base, "seconds": sum(r["seconds"] for r in fold_rows),
               "best_epoch": "/".join(str(r["best_epoch"]) for r in fold_rows),
               "extra": {**means, f"folds_won_of_{folds}": float(wins)}}
        log.info("real %d-fold CV %s/%s: %s mean %.3f (folds %s) vs %s mean %.3f (folds %s): "
                 "gain %+.3f, model wins %d of %d folds", folds, task, mode, key, row["model"],
                 [round(v, 3) for v in model], best, base, [round(v, 3) for v in per_base],
                 row["gain"], wins, folds)
        rows.append(row)
    return rows


def bench_parser(doc: str) -> argparse.ArgumentParser:
    """The options every training benchmark here takes (``--work``, ``--epochs``,
    ``--skip-sim``, ``--skip-real``)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--work", default=None, help="work dir (default: a new temp dir)")
    ap.add_argument("--epochs", type=int, default=8, help="fine-tuning epochs")
    ap.add_argument("--skip-sim", action="store_true")
    ap.add_argument("--skip-real", action="store_true")
    return ap


def bench_start(args: argparse.Namespace, prefix: str) -> Path:
    """Logging, no progress bars, a local Ray; returns the work dir."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("TQDM_DISABLE", "1")
    from mixhic.core.runtime import ensure_ray

    ensure_ray()
    return Path(args.work or tempfile.mkdtemp(prefix=prefix)).absolute()


def main() -> int:
    ap = bench_parser(__doc__)
    ap.add_argument("--preset", default="small", help="simulator preset (default small)")
    ap.add_argument("--pretrain-epochs", type=int, default=4)
    ap.add_argument("--real-folds", type=int, default=5,
                    help="region cross-validation folds on the real case (0: its fixed "
                         "split only; default 5: the fixed split's 19 test loops give "
                         "AUROC +-0.05)")
    args = ap.parse_args()
    work = bench_start(args, "bench-quality-")
    results: dict[str, list[dict]] = {}
    if not args.skip_sim:
        results["sim"] = run_sim(work / "sim", args.preset, args.epochs, args.pretrain_epochs)
    if not args.skip_real:
        results["real"] = run_real(work / "real", args.epochs, args.real_folds)
    lines = ["| data | task | mode | metric | model | baseline | gain | oracle | ceiling | "
             "best epoch | s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, rows in results.items():
        for r in rows:
            ceil, orc = (f"{r[k]:.3f}" if k in r else "-" for k in ("ceiling", "oracle"))
            lines.append(f"| {name} | {r['task']} | {r['mode']} | {HEADLINE[r['task']]} | "
                         f"{r['model']:.3f} | {r['baseline']:.3f} | {r['gain']:+.3f} | {orc} | "
                         f"{ceil} | {r['best_epoch']} | {r['seconds']:.0f} |")
            for k, v in sorted(r["extra"].items()):
                log.info("  %s %s/%s %s = %.3f", name, r["task"], r["mode"], k, v)
    sys.stdout.write("\n".join(lines) + "\n")

    def gain(name: str, task: str, mode: str) -> str:
        for r in results.get(name, []):
            if (r["task"], r["mode"]) == (task, mode):
                return f"{r['gain']:.3f}"
        return "nan"

    def max_gain(name: str, key: str) -> str:  # the oracle's (or ceiling's) gain
        for r in results.get(name, []):
            if (r["task"], r["mode"]) == ("hic", "infer") and key in r:
                return f"{r[key] - r['baseline']:.3f}"
        return "nan"

    print(f"sim_loops_gain={gain('sim', 'loops', 'bimodal')} "
          f"sim_hic_gain={gain('sim', 'hic', 'infer')} "
          f"sim_cage_gain={gain('sim', 'cage', 'bimodal')} "
          f"real_loops_gain={gain('real', 'loops', 'bimodal')} "
          f"real_hic_gain={gain('real', 'hic', 'infer')} "
          f"sim_hic_oracle_gain={max_gain('sim', 'oracle')} "
          f"sim_hic_max_gain={max_gain('sim', 'ceiling')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
