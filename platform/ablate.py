"""``mixhic ablate CONFIG``: the paper's modality table and the few-shot curve.

Modality table (one fine-tuning per row, same task, data, budget and seed):

    epi       epigenomic tracks only                      (pretrained epi encoder)
    infer     epi + Hi-C inferred from epi (MIX-HIC-Infer) (pretrained)
    nonpre    Hi-C + epi, trained from scratch
    bimodal   Hi-C + epi, pre-trained (MIX-HIC)

Few-shot curve: ``few_shot_mode`` at each ``train_fraction`` (deterministic nested subsets
of the training rows). Both tables are written as Markdown and CSV to ``out_dir`` and
logged (with one metric per cell) to a parent MLflow run whose children are the fine-tunes.

    >>> result = ablate(load_config("ablate-demo", AblateConfig))
    >>> print(result.markdown)
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import io
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixhic.core.cliargs import ConfigCommand
from mixhic.core.config import load_config
from mixhic.platform.train_config import AblateConfig, FinetuneConfig, PretrainConfig

__all__ = ["AblationResult", "ablate", "MODE_LABELS", "cli_main"]

log = logging.getLogger(__name__)

MODE_LABELS = {
    "epi": "epi only",
    "infer": "epi + inferred Hi-C",
    "nonpre": "Hi-C + epi, not pre-trained",
    "bimodal": "Hi-C + epi, pre-trained",
}
# the headline metric first (it selects the epoch), then its baseline on the same rows
# and the gain, so every table row says whether the model beats the trivial predictor
_METRICS = {"loops": ("auroc", "baseline_auroc", "gain_auroc", "auprc", "f1"),
            "hic": ("pearson", "baseline_pearson", "gain_pearson", "r2", "gain_r2"),
            "cage": ("r2", "baseline_r2", "gain_r2", "pearson", "spearman")}


@dataclass
class AblationResult:
    task: str
    modality: list[dict[str, Any]] = field(default_factory=list)
    few_shot: list[dict[str, Any]] = field(default_factory=list)
    markdown: str = ""
    csv: str = ""
    run_id: str | None = None
    pretrained: str | None = None


def _row(kind: str, mode: str, fraction: float, res, task: str) -> dict[str, Any]:
    row = {"table": kind, "mode": mode, "label": MODE_LABELS[mode], "train_fraction": fraction,
           "best_epoch": res.best_epoch, "run_id": res.run_id}
    for k in _METRICS[task]:
        row[f"test_{k}"] = res.metrics.get(f"test_{k}", float("nan"))
    row[f"val_{_METRICS[task][0]}"] = res.metrics.get(f"val_{_METRICS[task][0]}", float("nan"))
    return row


def _markdown(task: str, modality: list[dict], few: list[dict]) -> str:
    keys = [f"test_{k}" for k in _METRICS[task]]
    out = [f"### Modality ablation ({task}, test split)", "",
           "| input | mode | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for r in modality:
        out.append(f"| {r['label']} | {r['mode']} | "
                   + " | ".join(f"{r[k]:.4f}" for k in keys) + " |")
    out += ["", f"### Few-shot curve ({task}, mode {few[0]['mode'] if few else '-'})", "",
            "| train fraction | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for r in few:
        out.append(f"| {r['train_fraction']:.0%} | "
                   + " | ".join(f"{r[k]:.4f}" for k in keys) + " |")
    return "\n".join(out) + "\n"


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def ablate(cfg: AblateConfig) -> AblationResult:
    """Pretrain (unless ``cfg.pretrained``), then fine-tune every cell; returns the tables."""
    import mlflow

    # lazy: tracking pulls numpy (+0.13 s), the others torch (+1.8 s) into mixhic ablate --help
    from mixhic.platform import tracking
    from mixhic.platform.finetune import finetune
    from mixhic.platform.pretrain import pretrain

    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    over = {"run.experiment": cfg.experiment, "run.runs_dir": cfg.runs_dir,
            **cfg.finetune_overrides}
    if cfg.task is not None:
        over["task"] = cfg.task
    base = load_config(cfg.finetune_config, FinetuneConfig, over)
    task = base.task
    tracking.configure(cfg.runs_dir)
    result = AblationResult(task=task)
    with tracking.start_run(cfg.experiment, run_name=f"ablate-{task}-{stamp}",
                            tags={"mixhic.recipe": "ablate", "mixhic.task": task}) as run_id:
        result.run_id = run_id
        tracking.log_params_flat(cfg)
        pretrained = cfg.pretrained
        if pretrained is None:
            pcfg = load_config(cfg.pretrain_config, PretrainConfig, {
                "data.data_dir": base.data.data_dir, "run.experiment": cfg.experiment,
                "run.runs_dir": cfg.runs_dir, "run.run_name": f"ablate-pretrain-{stamp}",
                **cfg.pretrain_overrides})
            pretrained = pretrain(pcfg, parent_run_id=run_id).model_dir
        result.pretrained = pretrained

        def run(mode: str, fraction: float):
            ft = dataclasses.replace(
                base, mode=mode, pretrained=None if mode == "nonpre" else pretrained,
                data=dataclasses.replace(base.data, train_fraction=fraction),
                run=dataclasses.replace(base.run, register=False,
                                        run_name=f"ablate-{task}-{mode}-{fraction:g}-{stamp}"),
            )
            return finetune(ft, parent_run_id=run_id)

        done: dict[str, Any] = {}
        for mode in cfg.modes:
            res = run(mode, 1.0)
            done[mode] = res
            result.modality.append(_row("modality", mode, 1.0, res, task))
        for frac in cfg.fractions:
            res = done[cfg.few_shot_mode] if frac == 1.0 and cfg.few_shot_mode in done \
                else run(cfg.few_shot_mode, frac)
            result.few_shot.append(_row("few_shot", cfg.few_shot_mode, frac, res, task))
        result.markdown = _markdown(task, result.modality, result.few_shot)
        result.csv = _csv(result.modality + result.few_shot)
        out = Path(cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"ablation-{task}.md").write_text(result.markdown)
        (out / f"ablation-{task}.csv").write_text(result.csv)
        mlflow.log_text(result.markdown, "ablation.md")
        mlflow.log_text(result.csv, "ablation.csv")
        for r in result.modality:
            tracking.log_metrics({f"modality_{r['mode']}_{k}": v for k, v in r.items()
                                  if k.startswith("test_")})
        for r in result.few_shot:
            pct = int(round(r["train_fraction"] * 100))
            tracking.log_metrics({f"fewshot_{pct}pct_{k}": v for k, v in r.items()
                                  if k.startswith("test_")})
    return result


CLI = ConfigCommand(
    "mixhic ablate",
    "Modality ablation (epi / infer / nonpre / bimodal) and few-shot curve.",
    config_class=AblateConfig, default_config="ablate-demo",
    config_help="shipped config name (ablate-demo) or YAML path",
)


config_from_args = CLI.config_from_args  # the AblateConfig ``ARGS`` run with


def cli_main(argv: list[str]) -> int:
    result = ablate(config_from_args(argv))
    sys.stdout.write("\n" + result.markdown)
    return 0
