"""``mixhic finetune CONFIG [--task T] [--mode M] [key=value ...]``: fine-tune with Ray Train.

    >>> cfg = load_config("demo-finetune", FinetuneConfig, ["task=loops", "mode=bimodal",
    ...                   "pretrained=runs/ray/pretrain-demo/model"])
    >>> result = finetune(cfg)      # result.metrics["test_auroc"], result.model_dir

Tasks ``hic`` (maps from epi; modes infer | epi), ``loops`` and ``cage`` (any mode). The
pretrained checkpoint (bimodal / infer / epi) is loaded with ``models.load_pretrained``
and its report logged. Each epoch is validated on the val split; the best epoch by the
task's metric (``early_stopping.metric``, default loops AUROC, hic Pearson, cage R^2) is
kept, training stops after ``early_stopping.patience`` epochs without improvement, and
the best checkpoint is evaluated on the test split (``test.data_dir``/``test.sample`` for
cross-sample evaluation), exported as a model dir, logged and registered in MLflow as
``mixhic-<task>``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from mixhic.core.cliargs import Alias, ConfigCommand
from mixhic.core.errors import MixHicError
from mixhic.core.runtime import ensure_ray
from mixhic.models import FinetuneModel, MixHicConfig, load_pretrained
from mixhic.models.heads import LOOP_FEATURES, loop_features
from mixhic.models.tasks import HIC_INPUT_MODES, check_task_mode
from mixhic.platform import checkpoints as ckpt_io
from mixhic.platform import data as data_mod
from mixhic.platform import tracking
from mixhic.platform.baselines import DistanceExpected
from mixhic.platform.checkpoints import load_model_dir
from mixhic.platform.evaluate import (BaselineTrain, evaluate_model, log_eval_artifacts,
                                      summary)
from mixhic.platform.pretrain import model_config_for
from mixhic.platform.train_config import MODES, TASKS, FinetuneConfig
from mixhic.platform.train_loop import batch_columns
from mixhic.platform.trainer import TrainResult, fit

__all__ = ["finetune", "registered_name", "cli_main"]

log = logging.getLogger(__name__)


def registered_name(task: str) -> str:
    """MLflow registry name of the fine-tuned models of ``task``."""
    return f"mixhic-{task}"


def _model_config(cfg: FinetuneConfig, geometry, pre_meta: dict[str, Any] | None):
    if pre_meta is None:
        return model_config_for(cfg.model, geometry)
    if pre_meta.get("preset") != cfg.model.preset:
        log.info("model.preset %r ignored: the pretrained model's config (%s) is used",
                 cfg.model.preset, pre_meta.get("preset"))
    try:
        mcfg = MixHicConfig(**pre_meta["model_config"]).replace(**cfg.model.overrides)
    except (TypeError, ValueError) as exc:
        raise MixHicError(f"model.overrides: {exc}") from None
    got = (mcfg.window_bins, mcfg.epi_bins, mcfg.n_tracks)
    want = (geometry.window_bins, geometry.epi_bins, geometry.n_tracks)
    if got != want:
        raise MixHicError(
            f"pretrained: {cfg.pretrained} was trained on windows (W, L, C) = {got}, the data "
            f"in {cfg.data.data_dir} has {want}. {ckpt_io.GEOMETRY_HINT}"
        )
    return mcfg


def _check_data_match(cfg: FinetuneConfig, pre_meta: dict[str, Any],
                      data: dict[str, Any]) -> None:
    """Refuse (or, with ``allow_mismatch``, warn) when the fine-tuning data differs from the
    pretraining data in resolution, track names or normalisation: the shapes may still fit
    while the weights mean something else."""
    problems = ckpt_io.data_mismatches(pre_meta.get("data") or {}, data)
    if not problems:
        return
    lines = "\n  ".join(problems)
    if not cfg.allow_mismatch:
        raise MixHicError(
            f"pretrained: {cfg.pretrained} was trained on other data than "
            f"{cfg.data.data_dir}:\n  {lines}\nPrepare the data like the pretraining data, "
            "or pass --allow-mismatch (allow_mismatch=true) to fine-tune anyway. "
            f"{ckpt_io.GEOMETRY_HINT}")
    for line in problems:
        log.warning("pretrained %s differs from the fine-tuning data: %s (allow_mismatch)",
                    cfg.pretrained, line)


def finetune(
    cfg: FinetuneConfig,
    *,
    storage_path: str | None = None,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Fine-tune ``cfg.task`` in ``cfg.mode``; returns the result with ``test_*`` metrics.

    storage_path / run_name override ``cfg.run`` (Ray Tune passes its trial's);
    parent_run_id nests the MLflow run; callbacks are extra Ray Train ``UserCallback``s.
    """
    import mlflow
    import ray

    # lazy: pulls scipy, sklearn and pandas (+1.6 s) into mixhic finetune --help
    from mixhic.platform.metrics import METRIC_MODE, PRIMARY_METRIC

    task, mode = cfg.task, cfg.mode
    try:
        check_task_mode(task, mode)
    except ValueError as exc:
        raise MixHicError(str(exc)) from None
    dataset = data_mod.dataset_for_task(task)
    geometry = data_mod.read_geometry(cfg.data.data_dir, dataset)
    use_pre = cfg.uses_pretrained
    if cfg.pretrained is not None and not use_pre:
        log.info("mode nonpre trains from scratch: pretrained %s not loaded", cfg.pretrained)
    pre_meta = state = report = None
    if use_pre:
        pre_meta, state, report = _pretrained_checked(cfg, geometry)
    mcfg = _model_config(cfg, geometry, pre_meta)
    data_meta = data_mod.data_meta(cfg.data.data_dir, dataset)
    if pre_meta is not None:
        _check_data_match(cfg, pre_meta, data_meta)
    meta = {
        "kind": "finetune", "task": task, "mode": mode,
        "model_config": dataclasses.asdict(mcfg),
        "preset": pre_meta["preset"] if pre_meta else cfg.model.preset,
        "data": data_meta,
        "run_id": None, "epoch": -1, "metrics": {},
        "pretrained": cfg.pretrained if use_pre else None,
    }
    metric = cfg.early_stopping.metric or PRIMARY_METRIC[task]
    score_mode = cfg.early_stopping.mode if cfg.early_stopping.metric else METRIC_MODE[task]
    cols = batch_columns("finetune", task, mode)
    val_cols = list(dict.fromkeys([*data_mod.KEY_COLUMNS, *cols]))
    ensure_ray()
    pos_weight = loop_prior = None
    if task == "loops" and (cfg.class_balance or mode in HIC_INPUT_MODES):
        pos_weight, loop_prior = _loop_train_stats(cfg, with_prior=mode in HIC_INPUT_MODES)
    expected = _train_expected(cfg) if task == "hic" else None
    state_ref = ray.put(state) if state is not None else None
    test_dir = cfg.test.data_dir or cfg.data.data_dir
    test_sample = cfg.test.sample if cfg.test.sample is not None else cfg.data.sample

    def after_fit(result: TrainResult, model_dir: str) -> None:
        if report is not None:
            mlflow.log_text(report.summary() + "\n\nloaded:\n" + "\n".join(report.loaded)
                            + "\n\nskipped:\n" + "\n".join(report.skipped)
                            + "\n\nfresh:\n" + "\n".join(report.fresh), "load_report.txt")
            result.load_report = report.summary()
        model, model_meta = load_model_dir(model_dir)
        train = BaselineTrain(cfg.data.data_dir, cfg.data.sample, cfg.data.train_fraction,
                              cfg.data.fraction_seed)  # baselines fit on the model's rows
        metrics, preds = evaluate_model(model, model_meta, test_dir, split=cfg.test.split,
                                        sample=test_sample, batch_size=cfg.data.eval_batch_size,
                                        train=train)
        test = {f"test_{k}": v for k, v in summary(metrics).items()}
        tracking.log_metrics(test)
        result.metrics.update(test)
        log_eval_artifacts(task, preds, "test")
        if cfg.run.register:
            inputs = ["epi", "hic"] if "hic" in cols else ["epi"]
            ds = data_mod.open_split(test_dir, dataset, cfg.test.split, columns=[
                *inputs, "x_start", "y_start", "resolution"], sample=test_sample)
            b = ds.take_batch(2, batch_format="numpy")
            # the anchor offset is part of the signature: a loop or off-diagonal window
            # predicted without it would be read as a diagonal one
            example = {**{k: b[k] for k in inputs}, "offset": data_mod.anchor_offsets(
                b["x_start"], b["y_start"], b["resolution"]).astype("float32")}
            mv = tracking.log_and_register_model(
                model_dir, registered_name(task), example,
                tags={"mode": mode, "run_name": result.run_name},
            )
            result.model_version = str(mv.version)
        else:
            mlflow.log_artifacts(model_dir, "model")

    result = fit(
        "finetune", cfg, meta, dataset=dataset, columns=cols, val_columns=val_cols,
        score_key=f"val_{metric}", score_mode=score_mode, pretrained_state=state_ref,
        storage_path=storage_path, run_name=run_name, parent_run_id=parent_run_id,
        callbacks=callbacks, after_fit=after_fit, extra_config={"pos_weight": pos_weight,
                                                     "expected": expected,
                                                     "loop_prior": loop_prior},
        tags={"mixhic.task": task, "mixhic.mode": mode, "mixhic.preset": meta["preset"],
              "mixhic.pretrained": cfg.pretrained if use_pre else "none"},
    )
    log.info("fine-tuning %s (%s/%s) done: best epoch %s, %s", result.run_name, task, mode,
             result.best_epoch, {k: round(v, 4) for k, v in result.metrics.items()
                                 if k.startswith("test_")})
    return result


def _train_split(cfg: FinetuneConfig, dataset: str, columns: list[str]):
    """The train split the workers train on (same sample and ``train_fraction`` subset)."""
    return data_mod.open_split(cfg.data.data_dir, dataset, "train", columns=columns,
                               sample=cfg.data.sample, train_fraction=cfg.data.train_fraction,
                               seed=cfg.data.fraction_seed)


def _train_expected(cfg: FinetuneConfig) -> tuple[list[float], list[float]]:
    """(distances in bins, mean target) of the hic train split: the map head's expected
    starts from this decay curve (``MapHead.init_expected``)."""
    exp = DistanceExpected()
    ds = _train_split(cfg, "hic", ["chrom", "x_start", "y_start", "resolution", "hic"])
    for b in ds.iter_batches(batch_size=256, batch_format="numpy"):
        exp.add(b["hic"], data_mod.anchor_offsets(b["x_start"], b["y_start"], b["resolution"]),
                b["chrom"])
    table = exp.table()
    d = np.flatnonzero(np.isfinite(table))
    return d.tolist(), table[d].tolist()


def _loop_train_stats(cfg: FinetuneConfig, with_prior: bool
                      ) -> tuple[float | None, dict[str, Any] | None]:
    """One pass over the loops train split: the positive-class weight n_neg / n_pos
    (None without ``class_balance`` or when a class is absent) and, ``with_prior``, the
    loop head's starting linear path (``LoopHead.set_contrast_prior``): a logistic
    regression of the label on the standardised ``loop_features`` (centre, o/e, donut,
    lower-left, anchor signal), class-balanced like the loss (None with a single class)."""
    import torch

    ds = _train_split(cfg, "loops", ["hic", "epi", "loop"] if with_prior else ["loop"])
    feats, labels = [], []
    for b in ds.iter_batches(batch_size=256 if with_prior else 4096, batch_format="numpy"):
        labels.append(np.asarray(b["loop"]).astype(np.int64))
        if with_prior:
            feats.append(loop_features(torch.as_tensor(b["hic"]),
                                       torch.as_tensor(b["epi"])).double().numpy())
    y = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    if not pos or not neg:
        log.warning("loops train split has %d positives and %d negatives: no class balance, "
                    "the loop head starts from o/e + donut", pos, neg)
        return None, None
    pos_weight = neg / pos if cfg.class_balance else None
    if pos_weight is not None:
        log.info("loops train split: %d positives, %d negatives: positive weight %.3f",
                 pos, neg, pos_weight)
    if not with_prior:
        return pos_weight, None
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate(feats)
    mean, var = x.mean(axis=0), x.var(axis=0) + 1e-5  # eps as the head's BatchNorm
    fit = LogisticRegression(C=1.0, class_weight="balanced" if cfg.class_balance else None)
    fit.fit((x - mean) / np.sqrt(var), y)
    log.info("loop head starts from a logistic fit on %d train rows: weights %s, bias %.3f",
             len(y), dict(zip(LOOP_FEATURES, np.round(fit.coef_[0], 3).tolist())),
             float(fit.intercept_[0]))
    return pos_weight, {"weight": fit.coef_[0].tolist(), "bias": float(fit.intercept_[0]),
                        "mean": mean.tolist(), "var": var.tolist()}


def _pretrained_checked(cfg: FinetuneConfig, geometry):
    """(meta, state_dict, LoadReport) of the pretrained model dir, loaded once on the
    driver into a probe model: bad checkpoints fail here, before any worker starts."""
    local, tmp = ckpt_io.local_copy(cfg.pretrained)
    try:
        meta = ckpt_io.read_meta(local)
        state = ckpt_io.load_state_dict(local)
    finally:
        if tmp is not None:
            tmp.cleanup()
    if meta["kind"] != "pretrain":
        raise MixHicError(f"pretrained: {cfg.pretrained} is a {meta['kind']} model, not a "
                          "pretraining model dir")
    probe = FinetuneModel(_model_config(cfg, geometry, meta), task=cfg.task, mode=cfg.mode)
    try:
        report = load_pretrained(probe, state)
    except ValueError as exc:
        raise MixHicError(f"pretrained: {cfg.pretrained}: {exc}") from None
    log.info("pretrained %s: %s", cfg.pretrained, report.summary())
    return meta, state, report


CLI = ConfigCommand(
    "mixhic finetune",
    "Fine-tune MIX-HIC on hic | loops | cage with Ray Train.",
    config_class=FinetuneConfig, default_config="demo-finetune",
    config_help="shipped config name (demo-finetune, paper-finetune-loops, ...) or YAML path",
    keys_help="e.g. mixhic finetune demo-finetune task=loops pretrained=DIR train.epochs=3",
    aliases=[
        Alias("--task", "task", "the task", choices=TASKS, example="cage"),
        Alias("--mode", "mode", "the input mode", choices=MODES, example="epi"),
        Alias("--pretrained", "pretrained", "pretraining model dir / URI", metavar="DIR",
              example="runs/pretrain/model"),
        Alias("--allow-mismatch", "allow_mismatch", "fine-tune a pretrained model on data of "
              "another resolution, track set or normalisation (warned; an error by default)",
              kind="true"),
    ],
)


config_from_args = CLI.config_from_args  # the FinetuneConfig ``ARGS`` run with


def cli_main(argv: list[str]) -> int:
    cfg = config_from_args(argv)
    result = finetune(cfg)
    for k, v in sorted(result.metrics.items()):
        if k.startswith("test_"):
            log.info("%-28s %.4f", k, v)
    log.info("model dir: %s", result.model_dir)
    return 0
