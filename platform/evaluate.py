"""``mixhic evaluate MODEL DATA_DIR``: deterministic metrics of a fine-tuned model on a split.

    >>> metrics = evaluate(EvaluateConfig(model="runs/ray/ft-loops/model", data_dir="data"))
    >>> metrics["auroc"]

Predictions are collected in a :class:`~mixhic.platform.metrics.PredictionStore` keyed by
(sample, chrom, x_start, y_start), which sorts rows before any metric is computed: the same
model and data give the same numbers whatever the batch size or row order. Cross-sample
evaluation: point ``data_dir`` (and ``sample``) at another cell line's prepared data.
Every task's trivial baselines (:mod:`mixhic.platform.baselines`: distance decay for
Hi-C, the loop pixel's o/e and local-background contrasts and the anchors' track signal
for loops, a linear fit of the tracks for CAGE) are scored on the same rows
(``baseline_*``) and the differences reported (``gain_*``): a model that does not beat
its baseline shows a negative gain. Baselines that are fit (the Hi-C expected, the CAGE
linear fit) are fit on the rows the model trained on: ``train`` (:class:`BaselineTrain`:
data dir, sample, ``train_fraction`` subset); by default the evaluated data's whole train
split of the same sample.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from mixhic.core.cliargs import Alias, ConfigCommand
from mixhic.core.errors import MixHicError
from mixhic.core.runtime import ensure_ray
from mixhic.models.tasks import observed_pixels
from mixhic.platform import baselines as bl
from mixhic.platform import data as data_mod
from mixhic.platform import tracking
from mixhic.platform.checkpoints import GEOMETRY_HINT, data_mismatches, load_model_dir
from mixhic.platform.tracking import log_figure
from mixhic.platform.train_config import EvaluateConfig
from mixhic.platform.train_loop import batch_columns, predict_batches

__all__ = [
    "evaluate",
    "evaluate_model",
    "baseline_metrics",
    "BaselineTrain",
    "log_eval_artifacts",
    "cli_main",
]

log = logging.getLogger(__name__)

_SUMMARY_SKIP = ("pearson_d",)  # per-offset Pearson: kept in the dict, not in summaries


@dataclass(frozen=True)
class BaselineTrain:
    """The train rows a fitted baseline learns from: those the model trained on
    (``FinetuneConfig.data``: its data dir, sample and ``train_fraction`` subset)."""

    data_dir: str
    sample: str | None = None
    train_fraction: float = 1.0
    seed: int = 0

    def open(self, dataset: str, columns: list[str]):
        return data_mod.open_split(self.data_dir, dataset, "train", columns=columns,
                                   sample=self.sample, train_fraction=self.train_fraction,
                                   seed=self.seed)


def _check_geometry(meta: dict[str, Any], data_dir: str, dataset: str) -> None:
    geo = data_mod.read_geometry(data_dir, dataset)
    want = meta["data"]
    got = {"window_bins": geo.window_bins, "epi_bins": geo.epi_bins, "n_tracks": geo.n_tracks}
    diff = {k: (want.get(k), v) for k, v in got.items() if want.get(k) != v}
    if diff:
        raise MixHicError(
            f"{data_mod.dataset_uri(data_dir, dataset)}: window geometry differs from the "
            f"model's (model, data): {diff}. {GEOMETRY_HINT}"
        )
    # cross-cell-line evaluation is legitimate: other data is said, not refused
    for line in data_mismatches(want, data_mod.data_meta(data_dir, dataset)):
        log.warning("%s: evaluating on data unlike the model's training data: %s",
                    data_mod.dataset_uri(data_dir, dataset), line)


def evaluate_model(
    model,
    meta: dict[str, Any],
    data_dir: str,
    *,
    split: str = "test",
    sample: str | None = None,
    batch_size: int = 64,
    baseline: bool = True,
    train: BaselineTrain | None = None,
):
    """Metrics of a fine-tuned ``model`` (eval mode) on one split; returns
    ``(metrics, predictions)`` with predictions sorted by key (see module docstring).

    With ``baseline`` the task's trivial baselines (:mod:`mixhic.platform.baselines`) are
    scored on the same rows: ``baseline_*`` metrics and ``gain_*`` = model - baseline;
    ``train``: the rows fitted baselines learn from (default: ``data_dir``'s train split
    of ``sample``)."""
    # lazy: pulls scipy, sklearn and pandas (+1.6 s) into mixhic evaluate --help
    from mixhic.platform.metrics import prediction_warnings, task_metrics

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
    for warning in prediction_warnings(task, preds.pred):
        log.warning("%s on %s/%s: %s", meta.get("run_id") or "model", data_dir, split, warning)
    metrics = task_metrics(task, preds.true, preds.pred)
    if baseline:
        metrics.update(baseline_metrics(task, mode, data_dir, split, sample, preds,
                                        batch_size=batch_size, train=train))
    metrics["n_rows"] = float(len(preds.true))
    return metrics, preds


def _aligned(store, preds, what: str):
    """Finalize a side store and check its rows are the predictions' rows, in order."""
    side = store.finalize()
    for k, v in preds.keys.items():
        if len(side.keys[k]) != len(v) or not np.array_equal(side.keys[k], v):
            raise MixHicError(f"{what}: rows differ from the evaluated rows (key {k!r})")
    return side


def baseline_metrics(task: str, mode: str, data_dir: str, split: str, sample: str | None,
                     preds, *, batch_size: int = 256,
                     train: BaselineTrain | None = None) -> dict[str, float]:
    """``baseline_*`` and ``gain_*`` metrics of ``task`` on exactly the rows of ``preds``
    (the finalized predictions of :func:`evaluate_model`), fitted baselines fit on
    ``train`` (default: ``data_dir``'s train split of ``sample``); see module docstring."""
    # lazy: pulls scipy, sklearn and pandas (+1.6 s) into mixhic evaluate --help
    from mixhic.platform.metrics import (
        PredictionStore,
        distance_strata_pearson,
        loop_metrics,
        ranking_metrics,
        task_metrics,
    )

    dataset = data_mod.dataset_for_task(task)
    keys = list(data_mod.KEY_COLUMNS)
    out: dict[str, float] = {}
    if task == "loops":
        kinds = "neg_kind" in data_mod.dataset_schema(data_dir, dataset).names
        cols = [*keys, "hic", "epi", *(["neg_kind"] if kinds else [])]
        ds = data_mod.open_split(data_dir, dataset, split, columns=cols, sample=sample)
        store = PredictionStore()
        names: dict[str, int] = {}
        for b in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
            w = b["hic"].shape[-1]
            scores = bl.loop_baseline_scores(b["hic"], b["epi"], w)
            kind = (np.array([names.setdefault(str(k), len(names)) for k in b["neg_kind"]])
                    if kinds else np.zeros(len(scores), dtype=np.int64))
            store.add({k: b[k] for k in keys}, kind, scores)
        side = _aligned(store, preds, f"{data_mod.dataset_uri(data_dir, dataset)} baselines")
        y = preds.true
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for i, name in enumerate(bl.LOOP_BASELINES):
                s = side.pred[:, i]
                m = ranking_metrics(y, s)
                out[f"baseline_{name}_auroc"] = m["auroc"]
                out[f"baseline_{name}_auprc"] = m["auprc"]
            ref = [out[f"baseline_{n}_auroc"] for n in bl.loop_reference_baselines(mode)]
            ref = [r for r in ref if np.isfinite(r)]
            model_m = loop_metrics(y, preds.pred)
            if ref:
                out["baseline_auroc"] = max(ref)
                out["gain_auroc"] = model_m["auroc"] - out["baseline_auroc"]
            codes = {v: k for k, v in names.items()}
            pos = y == 1
            for code, kind in sorted(codes.items()):
                if kind == "positive":
                    continue
                rows = pos | (side.true == code)
                if not (side.true == code).any() or not pos.any():
                    continue
                out[f"auroc_neg_{kind}"] = loop_metrics(y[rows], preds.pred[rows])["auroc"]
                for i, name in enumerate(bl.LOOP_BASELINES):
                    out[f"baseline_{name}_auroc_neg_{kind}"] = ranking_metrics(
                        y[rows], side.pred[rows, i])["auroc"]
        return out

    train = (train or BaselineTrain(data_dir, sample)).open(
        dataset, [*keys, "resolution", "hic"] if task == "hic" else ["epi", "cage"])
    if task == "hic":
        exp = bl.DistanceExpected()
        res = None
        for b in train.iter_batches(batch_size=batch_size, batch_format="numpy"):
            res = int(b["resolution"][0])
            exp.add(b["hic"], data_mod.anchor_offsets(b["x_start"], b["y_start"], b["resolution"]),
                    b["chrom"])
        if res is None:
            raise MixHicError(f"{data_mod.dataset_uri(data_dir, dataset)}: no training maps "
                              "for the distance-decay baseline")
        w = preds.true.shape[-1]
        offsets = data_mod.anchor_offsets(preds.keys["x_start"], preds.keys["y_start"], res)
        base = exp.predict(offsets, preds.keys["chrom"], w)
        bm = task_metrics("hic", preds.true, base)
        out.update({f"baseline_{k}": v for k, v in bm.items() if not k.startswith(_SUMMARY_SKIP)})
        dist = bl.window_distances(offsets, w) * res
        true = np.where(observed_pixels(preds.true), preds.true, np.nan)
        out.update(distance_strata_pearson(true, preds.pred, dist))
        out.update({f"baseline_{k}": v for k, v in
                    distance_strata_pearson(true, base, dist).items()})
        model_m = task_metrics("hic", preds.true, preds.pred)
    else:  # cage
        fit = bl.TrackLinearFit()
        w = preds.true.shape[-1]
        n_train = 0
        for b in train.iter_batches(batch_size=batch_size, batch_format="numpy"):
            fit.add(b["epi"], b["cage"], w)
            n_train += len(b["epi"])
        if not n_train:
            raise MixHicError(f"{data_mod.dataset_uri(data_dir, dataset)}: no training rows "
                              "for the track linear-fit baseline")
        ds = data_mod.open_split(data_dir, dataset, split, columns=[*keys, "epi"], sample=sample)
        store = PredictionStore()
        for b in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
            store.add({k: b[k] for k in keys}, np.zeros(len(b["epi"])), fit.predict(b["epi"], w))
        base = _aligned(store, preds, f"{data_mod.dataset_uri(data_dir, dataset)} baseline").pred
        out.update({f"baseline_{k}": v for k, v in task_metrics("cage", preds.true, base).items()})
        model_m = task_metrics("cage", preds.true, preds.pred)
    out["gain_r2"] = model_m["r2"] - out["baseline_r2"]
    out["gain_pearson"] = model_m["pearson"] - out["baseline_pearson"]
    return out


def log_eval_artifacts(task: str, preds, prefix: str = "test") -> None:
    """Plots of predictions into the active MLflow run (``plots/<prefix>_*.png``)."""
    # lazy: pulls matplotlib (+0.45 s) into mixhic evaluate --help
    from mixhic.platform import plots

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
    model, meta = load_model_dir(cfg.model)
    metrics, preds = evaluate_model(model, meta, cfg.data_dir, split=cfg.split,
                                    sample=cfg.sample, batch_size=cfg.batch_size)
    log.info("%s on %s/%s: %s", cfg.model, cfg.data_dir, cfg.split,
             {k: round(v, 4) for k, v in summary(metrics).items()})
    if cfg.log_to_mlflow:
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


CLI = ConfigCommand(
    "mixhic evaluate",
    "Metrics of a fine-tuned model dir (path, URI, runs:/..., models:/...) on a split of a "
    "prepared dataset.",
    config_class=EvaluateConfig, default_config=None,
    config_help="EvaluateConfig YAML path",
    keys_help="model and data_dir are required: e.g. mixhic evaluate model=runs/x/model "
              "data_dir=runs/data split=val (or --model DIR --data-dir DIR)",
    aliases=[
        Alias("--model", "model", "model dir or URI", metavar="DIR", example="runs/x/model"),
        Alias("--data-dir", "data_dir", "prepared data dir", metavar="DIR", example="runs/data"),
        Alias("--split", "split", choices=("train", "val", "test"), example="val"),
        Alias("--sample", "sample", "only rows of this sample", example="gm12878"),
        Alias("--batch-size", "batch_size", metavar="N", example="5"),
        Alias("--no-mlflow", "log_to_mlflow", "do not log to MLflow", kind="false"),
        Alias("--runs-dir", "runs_dir", "MLflow runs dir (default runs)", metavar="DIR",
              example="runs2"),
        Alias("--experiment", "experiment", metavar="NAME", example="eval"),
    ],
)


config_from_args = CLI.config_from_args  # the EvaluateConfig ``ARGS`` run with


def cli_main(argv: list[str]) -> int:
    cfg = config_from_args(argv)
    metrics = evaluate(cfg)
    for k, v in summary(metrics).items():
        log.info("%-28s %.4f", k, v)
    return 0

