"""``mixhic evaluate MODEL DATA_DIR``: deterministic metrics of a fine-tuned model on a split.

    >>> metrics = evaluate(EvaluateConfig(model="runs/ray/ft-loops/model", data_dir="data"))
    >>> metrics["auroc"]

Predictions are collected in a :class:`~mixhic.platform.metrics.PredictionStore` keyed by
(sample, chrom, x_start, y_start), which sorts rows before any metric is computed: the same
model and data give the same numbers whatever the batch size or row order. Cross-sample
evaluation: point ``data_dir`` (and ``sample``) at another cell line's prepared data.
For the Hi-C task the distance-decay-only baseline (mean contact per diagonal offset of
the training maps) is scored too (``baseline_*``) and the gain reported (``gain_r2``).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import numpy as np

from mixhic.platform import data as data_mod
from mixhic.platform.config import apply_overrides, build, load_config, parse_overrides
from mixhic.platform.errors import MixHicError
from mixhic.platform.train_config import EvaluateConfig

__all__ = [
    "evaluate",
    "evaluate_model",
    "hic_baseline_map",
    "log_eval_artifacts",
    "cli_main",
]

log = logging.getLogger(__name__)

_SUMMARY_SKIP = ("pearson_d",)  # per-offset Pearson: kept in the dict, not in summaries


def _check_geometry(meta: dict[str, Any], data_dir: str, dataset: str) -> None:
    geo = data_mod.read_geometry(data_dir, dataset)
    want = meta["data"]
    got = {"window_bins": geo.window_bins, "epi_bins": geo.epi_bins, "n_tracks": geo.n_tracks}
    diff = {k: (want.get(k), v) for k, v in got.items() if want.get(k) != v}
    if diff:
        raise MixHicError(
            f"{data_mod.dataset_uri(data_dir, dataset)}: window geometry differs from the "
            f"model's (model, data): {diff}"
        )


def hic_baseline_map(data_dir: str, sample: str | None = None, batch_size: int = 256) -> np.ndarray:
    """Distance-decay baseline (W, W) from the ``hic`` training split, streamed in batches.

    Equal to ``metrics.distance_decay_baseline(all_train_maps)``: every map contributes the
    same number of values per offset, so batch means weighted by batch size are exact."""
    from mixhic.platform.metrics import distance_decay_baseline

    ds = data_mod.open_split(data_dir, "hic", "train", columns=["hic"], sample=sample)
    total, n = None, 0
    for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
        maps = np.asarray(batch["hic"], dtype=np.float64)
        part = distance_decay_baseline(maps) * len(maps)
        total = part if total is None else total + part
        n += len(maps)
    if not n:
        raise MixHicError(f"{data_mod.dataset_uri(data_dir, 'hic')}: no training maps for the "
                          "distance-decay baseline")
    return total / n


def evaluate_model(
    model,
    meta: dict[str, Any],
    data_dir: str,
    *,
    split: str = "test",
    sample: str | None = None,
    batch_size: int = 64,
    baseline: bool = True,
):
    """Metrics of a fine-tuned ``model`` (eval mode) on one split; returns
    ``(metrics, predictions)`` with predictions sorted by key (see module docstring)."""
    from mixhic.platform.metrics import task_metrics
    from mixhic.platform.runtime import ensure_ray
    from mixhic.platform.train_loop import batch_columns, predict_batches

    if meta.get("kind") != "finetune":
        raise MixHicError(f"model: a fine-tuned model is needed, got kind {meta.get('kind')!r}")
    task, mode = meta["task"], meta["mode"]
    dataset = data_mod.dataset_for_task(task)
    ensure_ray()
    _check_geometry(meta, data_dir, dataset)
    cols = list(dict.fromkeys([*data_mod.KEY_COLUMNS, *batch_columns("finetune", task, mode)]))
    ds = data_mod.open_split(data_dir, dataset, split, columns=cols, sample=sample)
    model.eval()
    store = predict_batches(model, ds.iter_batches(batch_size=batch_size, batch_format="numpy"),
                            task)
    if not len(store):
        raise MixHicError(f"{data_mod.dataset_uri(data_dir, dataset)}: split {split!r}"
                          f"{f' of sample {sample}' if sample else ''} has no rows")
    preds = store.finalize()
    metrics = task_metrics(task, preds.true, preds.pred)
    if task == "hic" and baseline:
        base = hic_baseline_map(data_dir, sample)
        base_pred = np.broadcast_to(base, preds.true.shape)
        bm = task_metrics("hic", preds.true, base_pred)
        metrics.update({f"baseline_{k}": v for k, v in bm.items()
                        if not k.startswith(_SUMMARY_SKIP)})
        metrics["gain_r2"] = metrics["r2"] - metrics["baseline_r2"]
    metrics["n_rows"] = float(len(preds.true))
    return metrics, preds


def log_eval_artifacts(task: str, preds, prefix: str = "test") -> None:
    """Plots of predictions into the active MLflow run (``plots/<prefix>_*.png``)."""
    from mixhic.platform import plots
    from mixhic.platform.tracking import log_figure

    if task == "hic":
        k = min(4, len(preds.true))
        # the windows with the most contacts are the informative ones to look at
        idx = np.sort(np.argsort(-preds.true.reshape(len(preds.true), -1).sum(1))[:k])
        titles = [f"{preds.keys['chrom'][i]}:{int(preds.keys['x_start'][i])}" for i in idx]
        fig = plots.hic_pairs_figure(preds.true[idx], preds.pred[idx], titles=titles)
        log_figure(fig, f"plots/{prefix}_hic_pairs.png")
    elif task == "loops":
        log_figure(plots.roc_pr_figure(preds.true, preds.pred), f"plots/{prefix}_roc_pr.png")
    else:
        log_figure(plots.cage_scatter_figure(preds.true, preds.pred),
                   f"plots/{prefix}_cage_scatter.png")


def summary(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics worth a table column (drops per-offset Pearson)."""
    return {k: v for k, v in metrics.items() if not k.startswith(_SUMMARY_SKIP)}


def evaluate(cfg: EvaluateConfig) -> dict[str, float]:
    """Load ``cfg.model`` and return its metrics on ``cfg.split`` of ``cfg.data_dir``;
    logged to MLflow (params, metrics, plots) unless ``cfg.log_to_mlflow`` is false."""
    from mixhic.platform.checkpoints import load_model_dir

    model, meta = load_model_dir(cfg.model)
    metrics, preds = evaluate_model(model, meta, cfg.data_dir, split=cfg.split,
                                    sample=cfg.sample, batch_size=cfg.batch_size)
    log.info("%s on %s/%s: %s", cfg.model, cfg.data_dir, cfg.split,
             {k: round(v, 4) for k, v in summary(metrics).items()})
    if cfg.log_to_mlflow:
        from mixhic.platform import tracking

        tracking.configure(cfg.runs_dir)
        name = cfg.run_name or f"evaluate-{meta['task']}-{cfg.split}"
        with tracking.start_run(cfg.experiment, run_name=name,
                                tags={"mixhic.recipe": "evaluate", "mixhic.task": meta["task"],
                                      "mixhic.mode": meta["mode"]}):
            tracking.log_params_flat({"evaluate": cfg, "model_meta": {
                k: meta.get(k) for k in ("task", "mode", "preset", "run_id", "epoch")}})
            tracking.log_metrics({f"{cfg.split}_{k}": v for k, v in metrics.items()})
            if cfg.plots:
                log_eval_artifacts(meta["task"], preds, cfg.split)
    return metrics


def cli_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mixhic evaluate",
        description="Metrics of a fine-tuned model dir (path, URI, runs:/..., models:/...) on "
        "a split of a prepared dataset; --config FILE instead takes an EvaluateConfig YAML.",
    )
    parser.add_argument("args", nargs="*", metavar="MODEL DATA_DIR [key=value ...]",
                        help="model dir or URI, prepared data dir, then key=value overrides")
    parser.add_argument("--config", help="EvaluateConfig YAML (then MODEL/DATA_DIR optional)")
    parser.add_argument("--split", default=None, choices=["train", "val", "test"])
    parser.add_argument("--sample", default=None, help="only rows of this sample")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    parser.add_argument("--runs-dir", default=None, help="MLflow runs dir (default runs)")
    parser.add_argument("--experiment", default=None)
    ns = parser.parse_intermixed_args(argv)
    overrides = [a for a in ns.args if "=" in a and not a.startswith(("runs:/", "models:/"))]
    positional = [a for a in ns.args if a not in overrides]
    if len(positional) > 2:
        parser.error(f"unexpected arguments {positional[2:]}")
    positional += [None] * (2 - len(positional))
    flags = {"model": positional[0], "data_dir": positional[1], "split": ns.split,
             "sample": ns.sample, "batch_size": ns.batch_size, "runs_dir": ns.runs_dir,
             "experiment": ns.experiment, "log_to_mlflow": False if ns.no_mlflow else None}
    flags = {k: v for k, v in flags.items() if v is not None}
    if ns.config:
        cfg = load_config(ns.config, EvaluateConfig, {**flags, **parse_overrides(overrides)})
    else:
        if "model" not in flags or "data_dir" not in flags:
            parser.error("MODEL and DATA_DIR are required without --config")
        cfg = build(EvaluateConfig, apply_overrides(flags, parse_overrides(overrides)))
    metrics = evaluate(cfg)
    for k, v in summary(metrics).items():
        log.info("%-28s %.4f", k, v)
    return 0

