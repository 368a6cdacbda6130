"""``mixhic demo``: simulate -> prepare -> pretrain -> fine-tune -> evaluate -> register.

Everything local: a Ray started in-process, MLflow in ``sqlite:///<runs>/mlflow.db``. On 2
CPU cores the shipped ``demo`` config finishes in a few minutes and ends with a results
table and the command that opens the MLflow UI.

    >>> result = demo(load_config("demo", DemoConfig))
    >>> print(result.table)
"""

from __future__ import annotations

import datetime as _dt
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixhic.core.cliargs import ConfigCommand
from mixhic.core.config import load_config
from mixhic.core.runtime import ensure_ray
from mixhic.platform.train_config import DemoConfig, EvaluateConfig, FinetuneConfig, PretrainConfig

__all__ = ["DemoResult", "demo", "results_table", "ui_command", "cli_main"]

log = logging.getLogger(__name__)

# what the results table shows per task (test split): the headline metric, which the
# baseline on the same rows is compared with, then a few more of the model's metrics
# (pretraining has no test metric: its row is the val split's pairing accuracy of the two
# modalities, beside chance)
_HEADLINE = {"loops": "auroc", "hic": "pearson", "cage": "r2", "pretrain": "pair_acc"}
_COLUMNS = {
    "loops": ("auprc", "f1"),
    "hic": ("r2", "pearson_per_map"),
    "cage": ("pearson", "spearman"),
    "pretrain": ("con", "baseline_con"),
}


@dataclass
class DemoResult:
    table: str
    tracking_uri: str
    ui_command: str
    run_id: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def ui_command(tracking_uri: str) -> str:
    return f"mlflow ui --backend-store-uri {tracking_uri}"


def results_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: one row per fine-tuned task (test-split metrics), the model's
    headline metric beside the baseline's on the same rows and the gain; a row of another
    split (``"split"``: the ``pretrain`` row's val pairing accuracy) names it."""
    lines = ["| task | mode | best epoch | metric | model | baseline | gain | beats baseline "
             "| other test metrics | model version |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m, key = r["metrics"], _HEADLINE[r["task"]]
        model, base = m.get(key, float("nan")), m.get(f"baseline_{key}", float("nan"))
        gain = model - base
        verdict = "yes" if gain > 0 else ("no" if gain <= 0 else "n/a")
        others = ", ".join(f"{k} {m[k]:.3f}" for k in _COLUMNS[r["task"]] if k in m)
        split = r.get("split", "test")
        shown = key if split == "test" else f"{key} ({split})"
        lines.append(f"| {r['task']} | {r['mode']} | {r['best_epoch']} | {shown} | {model:.3f} "
                     f"| {base:.3f} | {gain:+.3f} | {verdict} | {others} | "
                     f"{r.get('model_version') or '-'} |")
    return "\n".join(lines)


def demo(cfg: DemoConfig) -> DemoResult:
    """Run the whole pipeline on a simulated genome; returns the results table."""
    import mlflow

    # lazy: tracking pulls numpy (+0.13 s), the others torch (+1.8 s) into mixhic demo --help
    from mixhic.platform import tracking
    from mixhic.platform.evaluate import evaluate
    from mixhic.platform.finetune import finetune
    from mixhic.platform.pretrain import pretrain

    work = Path(cfg.work_dir).expanduser().absolute()
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    ensure_ray()
    if cfg.data_dir is None:
        # lazy: prepare pulls pyarrow (+0.2 s), simulate scipy (+0.35 s) into mixhic demo --help
        from mixhic.pipelines.prepare import PrepareConfig, prepare
        from mixhic.pipelines.simulate import simulate_genome

        genome = work / "genome"
        if (genome / "simulation.json").is_file():
            log.info("reusing the simulated genome in %s", genome)
        else:
            simulate_genome(genome, preset=cfg.simulate_preset, seed=cfg.seed,
                            **cfg.simulate_overrides)
        seconds["simulate"] = time.perf_counter() - t0
        data_dir = work / "data"
        prepare(load_config(cfg.prepare_config, PrepareConfig,
                            {"root": str(genome), "out": str(data_dir)}))
        seconds["prepare"] = time.perf_counter() - t0 - seconds["simulate"]
    else:
        data_dir = Path(cfg.data_dir)

    uri = tracking.configure(cfg.runs_dir)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    common = {"data.data_dir": str(data_dir), "run.storage_path": str(work / "ray"),
              "run.runs_dir": cfg.runs_dir, "run.experiment": cfg.experiment}
    rows: list[dict[str, Any]] = []
    with tracking.start_run(cfg.experiment, run_name=f"demo-{stamp}",
                            tags={"mixhic.recipe": "demo"}) as run_id:
        tracking.log_params_flat(cfg)
        t = time.perf_counter()
        pcfg = load_config(cfg.pretrain_config, PretrainConfig,
                           {**common, "run.run_name": f"demo-pretrain-{stamp}",
                            **cfg.pretrain_overrides})
        pre = pretrain(pcfg, parent_run_id=run_id)
        seconds["pretrain"] = time.perf_counter() - t
        if pre.history and "val_pair_acc" in pre.history[-1]:  # the model dir's epoch
            last = pre.history[-1]
            rows.append({"task": "pretrain", "mode": "-", "split": "val",
                         "best_epoch": len(pre.history) - 1,
                         "metrics": {k[4:]: v for k, v in last.items()
                                     if k.startswith("val_")},
                         "model_version": None, "model_dir": pre.model_dir,
                         "run_id": pre.run_id})
        for task in cfg.tasks:
            t = time.perf_counter()
            mode = cfg.finetune_modes.get(task, "bimodal")
            fcfg = load_config(cfg.finetune_config, FinetuneConfig,
                               {**common, "task": task, "mode": mode,
                                "pretrained": pre.model_dir,
                                "run.run_name": f"demo-{task}-{mode}-{stamp}",
                                **cfg.finetune_overrides})
            res = finetune(fcfg, parent_run_id=run_id)
            # evaluate the exported model dir again, as a user would (same numbers)
            metrics = evaluate(EvaluateConfig(
                model=res.model_dir, data_dir=str(data_dir), split="test",
                experiment=cfg.experiment, runs_dir=cfg.runs_dir,
                run_name=f"demo-evaluate-{task}-{stamp}"))
            rows.append({"task": task, "mode": mode, "best_epoch": res.best_epoch,
                         "metrics": metrics, "model_version": res.model_version,
                         "model_dir": res.model_dir, "run_id": res.run_id})
            tracking.log_metrics({f"{task}_test_{k}": v for k, v in metrics.items()
                                  if not k.startswith("pearson_d")})
            seconds[f"finetune_{task}"] = time.perf_counter() - t
        table = results_table(rows)
        mlflow.log_text(table + "\n", "results.md")
        seconds["total"] = time.perf_counter() - t0
        tracking.log_metrics({f"seconds_{k}": v for k, v in seconds.items()})
    (work).mkdir(parents=True, exist_ok=True)
    (work / "results.md").write_text(table + "\n")
    log.info("demo finished in %.0f s", seconds["total"])
    return DemoResult(table=table, tracking_uri=uri, ui_command=ui_command(uri), run_id=run_id,
                      rows=rows, seconds=seconds)


CLI = ConfigCommand(
    "mixhic demo",
    "Simulate a genome, prepare it, pre-train, fine-tune loops/hic/cage, evaluate and "
    "register, on a local Ray and a local MLflow.",
    config_class=DemoConfig, default_config="demo",
    keys_help="e.g. mixhic demo work_dir=/tmp/d",
)


config_from_args = CLI.config_from_args  # the DemoConfig ``ARGS`` run with


def cli_main(argv: list[str]) -> int:
    result = demo(config_from_args(argv))
    sys.stdout.write(
        f"\n{result.table}\n\nfinished in {result.seconds['total']:.0f} s. Open the runs with:\n"
        f"  {result.ui_command}\n"
    )
    return 0
