"""Driver side of a Ray Train run, shared by ``pretrain`` and ``finetune``.

:func:`fit` opens (or, for a re-run of the same run name, re-opens) the MLflow run, logs
the resolved config, builds the Ray Datasets and the ``TorchTrainer`` (fractional CPUs per
worker, ``FailureConfig`` for automatic restarts, checkpoints under
``storage_path/run_name``) and runs it. Re-running with the same ``storage_path`` and
``run_name`` resumes from the last checkpoint (Ray Train's own resume, which the loop
picks up with ``ray.train.get_checkpoint()``).

Callable from a Ray Tune function trainable: pass ``storage_path``/``run_name`` explicitly,
``parent_run_id`` (MLflow) and extra Ray Train ``callbacks``; Ray is only initialised when
it is not already.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mixhic.core.config import ConfigError, to_dict
from mixhic.core.errors import MixHicError
from mixhic.core.runtime import ensure_ray
from mixhic.pipelines.manifest import code_version
from mixhic.platform import checkpoints as ckpt_io
from mixhic.platform import data as data_mod
from mixhic.platform import tracking
from mixhic.platform.tracking import flatten_params, get_or_create_experiment
from mixhic.platform.train_loop import train_loop_per_worker

__all__ = ["TrainResult", "fit", "resolve_storage", "make_run_name", "history_series"]

log = logging.getLogger(__name__)

RUN_KEY_TAG = "mixhic.train_dir"


@dataclass
class TrainResult:
    """What a pretraining or fine-tuning run produced.

    checkpoint: the Ray checkpoint chosen (best validation score, or the last one);
    model_dir: the exported model directory (weights + mixhic.json), path or URI;
    metrics: final metrics (fine-tuning: best-epoch validation ``val_*`` and ``test_*``);
    history: one dict of metrics per finished epoch.
    """

    run_name: str
    run_id: str | None
    storage: str
    checkpoint: str | None
    model_dir: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    model_version: str | None = None
    load_report: str | None = None


def resolve_storage(path: str) -> str:
    """Local storage paths made absolute (Ray requires it); URIs unchanged."""
    if "://" in path:
        return path.rstrip("/")
    return os.path.abspath(os.path.expanduser(path))


def make_run_name(prefix: str) -> str:
    return f"{prefix}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"


def history_series(history: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, list[float]]:
    """``{"train_loss": [...], ...}`` of the keys present in every epoch (for the plot)."""
    out = {}
    for k in keys:
        vals = [h.get(k) for h in history]
        if vals and all(isinstance(v, (int, float)) for v in vals):
            out[k] = [float(v) for v in vals]
    return out


def _row_bytes(data_meta: dict[str, Any], columns: Sequence[str]) -> int:
    w, c, el = data_meta["window_bins"], data_meta["n_tracks"], data_meta["epi_bins"]
    sizes = {"hic": w * w, "epi": c * 2 * el, "cage": w, "loop": 1}
    return 4 * sum(sizes.get(col, 2) for col in columns)


def _should_cache(mode: str, nbytes: int) -> bool:
    """``auto``: cache when the splits fill < 30% of the object store."""
    if mode != "auto":
        return mode == "always"
    import ray

    capacity = ray.cluster_resources().get("object_store_memory", 0)
    return nbytes < 0.3 * capacity


def _existing_run(experiment: str, key: str) -> str | None:
    """The MLflow run of an earlier attempt of the same Ray Train run (same dir)."""
    import mlflow

    exp_id = get_or_create_experiment(experiment)
    runs = mlflow.MlflowClient().search_runs(
        [exp_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}'", max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    return runs[0].info.run_id if runs else None


def _log_params_once(params: dict[str, Any], run_id: str) -> None:
    """Log params; on a resumed run keep earlier values (MLflow forbids changing them) and
    record the new ones as ``resumed.<key>`` tags."""
    import mlflow

    flat = flatten_params(params)
    old = mlflow.MlflowClient().get_run(run_id).data.params
    new = {k: v for k, v in flat.items() if k not in old}
    for i in range(0, len(new), 100):
        mlflow.log_params(dict(list(new.items())[i : i + 100]))
    changed = {k: v for k, v in flat.items() if k in old and old[k] != v}
    for k, v in changed.items():
        mlflow.set_tag(f"resumed.{k}", v[:5000])


def _read_state(checkpoint) -> dict[str, Any]:
    with checkpoint.as_directory() as d:
        with open(os.path.join(d, ckpt_io.STATE_JSON)) as fh:
            return json.load(fh)


class EpochPrinter:
    """Logs each finished epoch's train/val figures on the driver's console while Ray
    Train runs (workers do not log to the driver): a thread that polls the MLflow run the
    workers write their per-epoch metrics to. ``close()`` prints what is left and stops."""

    def __init__(self, tracking_uri: str, run_id: str, keys: Sequence[str], label: str,
                 every_s: float = 2.0) -> None:
        from mlflow import MlflowClient

        self.client, self.run_id, self.keys, self.label = (
            MlflowClient(tracking_uri=tracking_uri), run_id, list(keys), label)
        self.every_s, self.done = every_s, -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mixhic-epochs", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        try:
            by_step: dict[int, dict[str, float]] = {}
            for key in self.keys:
                for m in self.client.get_metric_history(self.run_id, key):
                    by_step.setdefault(int(m.step), {})[key] = float(m.value)
        except Exception as exc:  # noqa: BLE001 - a busy store must not stop training
            log.debug("epoch printer: %s", exc)
            return
        for step in sorted(k for k in by_step if k > self.done):
            row = by_step[step]
            if self.keys[-1] not in row and step == max(by_step):
                break  # validation of this epoch not logged yet
            log.info("%s epoch %d: %s", self.label, step,
                     "  ".join(f"{k} {v:.4f}" for k, v in row.items()))
            self.done = step

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._poll()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._poll()


def fit(
    recipe: str,
    cfg: Any,
    meta: dict[str, Any],
    *,
    dataset: str,
    columns: list[str],
    val_columns: list[str],
    score_key: str | None = None,
    score_mode: str = "max",
    pretrained_state: Any = None,
    storage_path: str | None = None,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    callbacks: Sequence[Any] = (),
    tags: dict[str, Any] | None = None,
    after_fit=None,
    extra_config: dict[str, Any] | None = None,
) -> TrainResult:
    """Run ``train_loop_per_worker`` under a TorchTrainer inside an MLflow run.

    after_fit(result: TrainResult, model_dir: str) is called inside the MLflow run with the
    chosen checkpoint's model as a local model directory (fine-tuning evaluates on the test split
    and registers the model there); it may update ``result`` in place.
    """
    import mlflow

    # lazy: pulls matplotlib (+0.45 s) into mixhic pretrain --help and finetune --help
    from mixhic.platform.plots import loss_curves_figure
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    ensure_ray()
    storage = resolve_storage(storage_path or cfg.run.storage_path)
    name = run_name or cfg.run.run_name or make_run_name(recipe)
    run_key = f"{storage}/{name}"

    # ---- data
    d = cfg.data
    n_train = data_mod.split_rows(d.data_dir, dataset, "train", sample=d.sample,
                                  train_fraction=d.train_fraction, seed=d.fraction_seed)
    n_val = data_mod.split_rows(d.data_dir, dataset, "val", sample=d.sample)
    world = cfg.scaling.num_workers
    per_worker = n_train // world
    if per_worker < 1 or (recipe == "pretrain" and per_worker < 2):
        raise MixHicError(
            f"{data_mod.dataset_uri(d.data_dir, dataset)}: {n_train} training rows for "
            f"{world} workers (sample={d.sample}, train_fraction={d.train_fraction}): too few"
        )
    if n_val == 0:
        raise ConfigError(
            f"splits.val: {data_mod.dataset_uri(d.data_dir, dataset)} has no val rows; "
            "training needs a validation split: prepare the data with one (splits.val=[...] "
            "in the prepare config: the paper's are in prepare-paper.yaml, the demo's in "
            "prepare-demo.yaml)")
    steps = math.ceil(per_worker / d.batch_size)
    if cfg.train.max_steps_per_epoch:
        steps = min(steps, cfg.train.max_steps_per_epoch)
    datasets = {
        "train": data_mod.open_split(d.data_dir, dataset, "train", columns=columns,
                                     sample=d.sample, train_fraction=d.train_fraction,
                                     seed=d.fraction_seed),
        "val": data_mod.open_split(d.data_dir, dataset, "val", columns=val_columns,
                                   sample=d.sample),
    }
    if _should_cache(d.cache, (n_train + n_val) * _row_bytes(meta["data"], columns)):
        log.info("caching the train/val splits in the object store (data.cache=%s)", d.cache)
        datasets = {k: v.materialize() for k, v in datasets.items()}

    # ---- MLflow run (re-opened when the same Ray Train run is re-run)
    tracking_uri = tracking.configure(cfg.run.runs_dir)
    previous = _existing_run(cfg.run.experiment, run_key)
    all_tags = {RUN_KEY_TAG: run_key, "mixhic.recipe": recipe, **(tags or {})}
    result = TrainResult(run_name=name, run_id=None, storage=run_key, checkpoint=None,
                         model_dir=None)
    with tracking.start_run(cfg.run.experiment, run_name=name, tags=all_tags,
                            parent_run_id=parent_run_id, run_id=previous) as run_id:
        result.run_id = run_id
        if previous:
            log.info("re-opened MLflow run %s of %s", run_id, run_key)
        _log_params_once({**to_dict(cfg), "data_rows": {"train": n_train, "val": n_val},
                          "data_manifest": meta["data"].get("manifest_fingerprint"),
                          "code": code_version(), "model_config": meta["model_config"]},
                         run_id)
        tracking.log_config(cfg)
        mlflow.log_dict(meta, "model_meta.json")

        resources = {"CPU": cfg.scaling.cpus_per_worker}
        if cfg.scaling.use_gpu:
            resources["GPU"] = 1
        ckpt_cfg = (
            CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="score",
                             checkpoint_score_order="max")
            if score_key else CheckpointConfig(num_to_keep=2)
        )
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config={
                "recipe": recipe, "cfg": cfg, "meta": meta, "steps_per_epoch": steps,
                "pretrained_state": pretrained_state, "score_key": score_key,
                "score_mode": score_mode,
                "mlflow": {"tracking_uri": tracking_uri, "run_id": run_id},
                **(extra_config or {}),
            },
            scaling_config=ScalingConfig(
                num_workers=cfg.scaling.num_workers, use_gpu=cfg.scaling.use_gpu,
                resources_per_worker=resources,
            ),
            run_config=RunConfig(
                name=name, storage_path=storage,
                failure_config=FailureConfig(max_failures=cfg.scaling.max_failures),
                checkpoint_config=ckpt_cfg, callbacks=list(callbacks) or None,
            ),
            datasets=datasets,
            dataset_config=DataConfig(datasets_to_split=["train"]),
        )
        log.info("%s %s: %d train rows (%d steps/epoch/worker x %d workers), %d val rows",
                 recipe, name, n_train, steps, world, n_val)
        # pretraining has no task metric: its val pairing accuracy beside chance
        shown = ["train_loss", *([score_key] if score_key else
                                 ["val_pair_acc", "val_baseline_pair_acc", "val_loss"])]
        printer = EpochPrinter(tracking_uri, run_id, shown, f"{recipe} {name}")
        try:
            ray_result = trainer.fit()
        finally:
            printer.close()
        if ray_result.error is not None:
            raise ray_result.error
        last = ray_result.checkpoint
        if last is None:
            raise MixHicError(f"{run_key}: training produced no checkpoint")
        state = _read_state(last)
        result.history = state.get("history", [])
        chosen = last
        if score_key and ray_result.best_checkpoints:
            chosen = max(ray_result.best_checkpoints, key=lambda cm: cm[1].get("score", -1e30))[0]
        result.checkpoint = chosen.path
        result.best_epoch = state.get("best_epoch")
        epochs_run = len(result.history)
        if score_key and result.best_epoch == 0 and epochs_run > 1:
            log.warning("%s %s: the best %s was at epoch 0 of %d: the model did not improve "
                        "after its first epoch (lower optim.lr, more data or epochs?)",
                        recipe, name, score_key, epochs_run)
        series = history_series(result.history, [k for k in result.history[-1]
                                                 if k.startswith(("train_", "val_"))
                                                 and "loss" in k] if result.history else [])
        if series:
            tracking.log_figure(loss_curves_figure(series), "plots/loss_curves.png")
        with chosen.as_directory() as local, tempfile.TemporaryDirectory() as tmp:
            chosen_meta = ckpt_io.read_meta(local)
            result.metrics = {k: v for k, v in (chosen_meta.get("metrics") or {}).items()
                              if isinstance(v, (int, float))}
            result.model_dir = str(ckpt_io.copy_model_dir(local, f"{run_key}/model"))
            model_local = ckpt_io.copy_model_dir(local, f"{tmp}/model")
            if after_fit is not None:
                after_fit(result, str(model_local))
        mlflow.set_tag("mixhic.model_dir", result.model_dir)
    return result
