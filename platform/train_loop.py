"""The per-worker training loop that Ray Train's ``TorchTrainer`` runs on every worker.

    setup (model, DDP, AdamW, warm-up + cosine) -> resume from ray.train.get_checkpoint()
    -> for each epoch: train on this worker's shard -> validate (rank 0)
       -> report metrics + checkpoint (rank 0) -> early stopping
    -> return

One function serves both recipes (``config["recipe"]``: ``pretrain`` | ``finetune``); the
recipe-specific parts are :func:`_pretrain_step` / :func:`_finetune_step` and the
validation functions. Data comes from ``ray.train.get_dataset_shard``: ``train`` is split
between workers (equal rows, so every worker takes the same number of steps); ``val`` is
not split and only rank 0 reads it.

MLflow: rank 0 logs each epoch's metrics to the run the driver opened (``config["mlflow"]``:
tracking URI + run id) with an ``MlflowClient``, so the UI shows a long run as it goes.
On a cluster, point ``MLFLOW_TRACKING_URI`` at a server every node can reach.
"""

from __future__ import annotations

import functools
import logging
import math
import tempfile
import time
from typing import Any

import numpy as np
import torch
from mixhic.models import LossWeights, load_pretrained, pretrain_objective
from mixhic.models.losses import pairing_accuracy, pairing_chance, pool_tokens
from mixhic.models.optim import adamw
from mixhic.models.tasks import HIC_INPUT_MODES
from mixhic.platform import checkpoints as ckpt_io
from mixhic.platform.data import KEY_COLUMNS, TARGET_COLUMN, anchor_offsets

__all__ = ["train_loop_per_worker", "lr_factor", "batch_columns", "InjectedFailure"]

log = logging.getLogger(__name__)


class InjectedFailure(RuntimeError):
    """Raised by the ``train.fail_at_epoch`` test hook."""


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Multiplier of the base lr at optimiser ``step`` (0-based): linear warm-up over
    ``warmup_steps``, then a cosine from 1 down to ``min_ratio`` at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


#: Columns that give each window's anchor offset (:func:`~mixhic.platform.data.anchor_offsets`).
OFFSET_COLUMNS = ("x_start", "y_start", "resolution")
# Pretraining validation pairs each val window against at most this many (evenly spaced):
# a (N, N) cosine matrix, 16 MB at 2048.
PAIRING_MAX_WINDOWS = 2048


def batch_columns(recipe: str, task: str | None, mode: str | None) -> list[str]:
    """The numeric columns a training step reads (strings never reach torch)."""
    if recipe == "pretrain":
        return ["hic", "epi"]
    cols = ["epi"]
    if mode in HIC_INPUT_MODES or task == "hic":
        cols.append("hic")
    target = TARGET_COLUMN[task]
    if target not in cols:
        cols.append(target)
    return [*cols, *OFFSET_COLUMNS]


def _dtypes(cols: list[str]) -> dict[str, torch.dtype]:
    return {c: torch.float64 if c in OFFSET_COLUMNS else torch.float32 for c in cols}


# --------------------------------------------------------------------------- steps
def _pretrain_step(model, raw, batch, cfg, epoch: int) -> dict[str, torch.Tensor]:
    out = model(batch["hic"], batch["epi"])
    if epoch < cfg.loss.contrastive_warmup_epochs:
        # Contrastive only. Zero weights (not contrastive_only=True) keep every parameter
        # in the graph, so DDP's gradient all-reduce sees the same parameters each step.
        weights = LossWeights(con=1.0, orth=0.0, map=0.0)
    else:
        weights = LossWeights(con=cfg.loss.con, orth=cfg.loss.orth, map=cfg.loss.map)
    return pretrain_objective(out, raw, weights, standardize=cfg.loss.con_standardize)


def _finetune_step(model, raw, batch, cfg, epoch: int,
                   pos_weight: float | None = None) -> dict[str, torch.Tensor]:
    hic = batch["hic"] if raw.uses_hic else None
    offset = anchor_offsets(batch["x_start"], batch["y_start"], batch["resolution"]).float()
    pred = model(batch["epi"], hic, offset)
    target = batch[TARGET_COLUMN[cfg.task]]
    return {"loss": raw.loss(pred, target, pos_weight=pos_weight)}


# --------------------------------------------------------------------------- validation
@torch.no_grad()
def _validate_pretrain(raw, shard, cfg, device, autocast) -> dict[str, float]:
    raw.eval()
    sums: dict[str, float] = {}
    n = 0
    weights = LossWeights(con=cfg.loss.con, orth=cfg.loss.orth, map=cfg.loss.map)
    vecs: dict[str, list] = {"epi": [], "hic": []}  # pooled shared vectors, per batch
    keys: list[dict[str, np.ndarray]] = []  # the windows they come from
    for rows in shard.iter_batches(batch_size=cfg.data.eval_batch_size, batch_format="numpy"):
        b = len(rows["hic"])
        if b < 2:  # InfoNCE needs negatives
            continue
        hic, epi = (torch.as_tensor(_writable(rows[k]), dtype=torch.float32, device=device)
                    for k in ("hic", "epi"))
        with autocast():
            out = raw(hic, epi)
            parts = pretrain_objective(out, raw, weights, standardize=cfg.loss.con_standardize)
        parts["baseline_con"] = math.log(b)  # the loss's chance level on the same batch
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + float(v) * b
        n += b
        for k in ("epi", "hic"):
            vecs[k].append(pool_tokens(out[f"{k}_shared"]).float().cpu())
        keys.append({k: rows[k] for k in ("chrom", *OFFSET_COLUMNS)})
    raw.train()
    if not n:
        return {}
    metrics = {f"val_{k}": v / n for k, v in sums.items()}
    metrics.update(_split_pairing(torch.cat(vecs["epi"]), torch.cat(vecs["hic"]),
                                  {k: np.concatenate([b[k] for b in keys]) for k in keys[0]},
                                  raw.cfg.window_bins, cfg.loss.con_standardize))
    return metrics


def _split_pairing(epi: torch.Tensor, hic: torch.Tensor, keys: dict[str, np.ndarray],
                   window_bins: int, standardize: bool,
                   max_windows: int = PAIRING_MAX_WINDOWS) -> dict[str, float]:
    """Pairing accuracy over the whole val split (at most ``max_windows``, evenly spaced)
    beside its chance: each window's epigenomic vector (``epi``, (N, D)) against the Hi-C
    vectors (``hic``) of every window that does not overlap it (an overlapping one's map
    and tracks are largely its own, so taking it for its own is no error), and the
    reverse. ``keys``: the windows' ``chrom``, ``x_start``, ``y_start``, ``resolution``."""
    keep = np.unique(np.linspace(0, len(epi) - 1, min(max_windows, len(epi))).round()
                     .astype(int))
    k = {name: col[keep] for name, col in keys.items()}
    overlap = torch.as_tensor(overlapping_windows(k["chrom"], k["x_start"], k["y_start"],
                                                  window_bins * k["resolution"]))
    return {"val_pair_acc": float(pairing_accuracy(epi[keep], hic[keep], standardize,
                                                   exclude=overlap)),
            "val_baseline_pair_acc": pairing_chance(len(keep), overlap)}


def overlapping_windows(chrom, x_start, y_start, span) -> np.ndarray:
    """(B, B) bool: windows i != j of the same chromosome whose squares overlap (both
    starts closer than ``span`` bp, a scalar or per window: bins x resolution)."""
    chrom, x, y = np.asarray(chrom), np.asarray(x_start, float), np.asarray(y_start, float)
    span = np.broadcast_to(np.asarray(span, float), x.shape)
    reach = np.minimum(span[:, None], span[None, :])
    out = ((chrom[:, None] == chrom[None, :]) & (np.abs(x[:, None] - x[None, :]) < reach)
           & (np.abs(y[:, None] - y[None, :]) < reach))
    np.fill_diagonal(out, False)
    return out


def _writable(a) -> np.ndarray:
    """Arrow-backed numpy views are read-only; torch wants writable memory."""
    a = np.asarray(a)
    return a if a.flags.writeable else a.copy()


@torch.no_grad()
def predict_batches(raw, batches, task: str, autocast=None):
    """Run a fine-tuning model over numpy batches; returns a ``PredictionStore``.

    batches: dicts of numpy arrays with the key columns, ``epi``, the target and ``hic``
    when needed. Loop logits become probabilities (sigmoid)."""
    # lazy: pulls scipy, sklearn and pandas (+1.6 s) into mixhic pretrain --help
    from mixhic.platform.metrics import PredictionStore

    store = PredictionStore()
    device = next(raw.parameters()).device
    target_col = TARGET_COLUMN[task]
    for batch in batches:
        epi = torch.as_tensor(_writable(batch["epi"]), dtype=torch.float32, device=device)
        hic = None
        if raw.uses_hic:
            hic = torch.as_tensor(_writable(batch["hic"]), dtype=torch.float32, device=device)
        offset = None
        if "resolution" in batch:
            offset = torch.as_tensor(anchor_offsets(
                batch["x_start"], batch["y_start"], batch["resolution"]),
                dtype=torch.float32, device=device)
        if autocast is not None:
            with autocast():
                pred = raw.predict(epi, hic, offset)
        else:
            pred = raw.predict(epi, hic, offset)
        true = np.asarray(batch[target_col], dtype=np.float32)
        store.add({k: batch[k] for k in KEY_COLUMNS}, true, pred.cpu().numpy())
    return store


def _validate_finetune(raw, shard, cfg, autocast) -> dict[str, float]:
    # lazy: pulls scipy, sklearn and pandas (+1.6 s) into mixhic pretrain --help
    from mixhic.platform.metrics import task_metrics

    raw.eval()
    cols = list(dict.fromkeys([*KEY_COLUMNS, *batch_columns("finetune", cfg.task, cfg.mode)]))
    batches = shard.iter_batches(batch_size=cfg.data.eval_batch_size, batch_format="numpy")
    store = predict_batches(raw, ({k: b[k] for k in cols} for b in batches), cfg.task, autocast)
    raw.train()
    if not len(store):
        return {}
    pred = store.finalize()
    metrics = task_metrics(cfg.task, pred.true, pred.pred)
    if cfg.task == "hic":  # keep the per-epoch record small
        metrics = {k: v for k, v in metrics.items() if not k.startswith("pearson_d")}
    return {f"val_{k}": v for k, v in metrics.items()}


# --------------------------------------------------------------------------- helpers
def _allreduce_sums(sums: dict[str, float], world: int) -> dict[str, float]:
    if world <= 1 or not torch.distributed.is_initialized():
        return sums
    keys = sorted(sums)
    t = torch.tensor([sums[k] for k in keys], dtype=torch.float64)
    torch.distributed.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def _broadcast(values: list[float], world: int) -> list[float]:
    if world <= 1 or not torch.distributed.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64)
    torch.distributed.broadcast(t, src=0)
    return t.tolist()


class _MlflowEpochLogger:
    """Rank 0: per-epoch metrics into the driver's MLflow run (no run state changes)."""

    def __init__(self, spec: dict[str, str] | None) -> None:
        self.client = self.run_id = None
        if spec:
            from mlflow import MlflowClient

            self.client = MlflowClient(tracking_uri=spec["tracking_uri"])
            self.run_id = spec["run_id"]

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if self.client is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(k, float(v), now, step)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        for i in range(0, len(items), 200):
            self.client.log_batch(self.run_id, metrics=items[i : i + 200])


# --------------------------------------------------------------------------- the loop
def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train worker entry point.

    config keys: ``recipe`` (pretrain | finetune), ``cfg`` (PretrainConfig |
    FinetuneConfig), ``meta`` (model-dir metadata: kind/task/mode/model_config/data),
    ``steps_per_epoch`` (int, per worker), ``pretrained_state`` (ObjectRef of a pretraining
    state_dict to start from, or None), ``score_key`` / ``score_mode`` (the validation
    metric that selects the best epoch and drives early stopping, or None),
    ``mlflow`` ({tracking_uri, run_id} | None).
    """
    import ray.train
    import ray.train.torch
    from ray.train import Checkpoint

    recipe, cfg, meta = config["recipe"], config["cfg"], dict(config["meta"])
    steps_per_epoch = int(config["steps_per_epoch"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()

    # ---- setup
    if not cfg.scaling.use_gpu:  # one intra-op thread per reserved CPU (at least one)
        torch.set_num_threads(max(1, int(cfg.scaling.cpus_per_worker)))
    torch.manual_seed(cfg.run.seed)
    raw = ckpt_io.build_model(meta)
    if config.get("expected") is not None:  # hic: start the map head from the train decay
        raw.head.init_expected(*config["expected"])
    if config.get("loop_prior") is not None:  # loops: start from the fitted contrast detector
        raw.head.set_contrast_prior(**config["loop_prior"])
    if config.get("pretrained_state") is not None:
        import ray

        load_pretrained(raw, ray.get(config["pretrained_state"]))
    device = ray.train.torch.get_device()
    model = ray.train.torch.prepare_model(raw) if world > 1 else raw.to(device)
    raw = ckpt_io._unwrap(model)
    optimizer = adamw(raw.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas,
                      weight_decay=cfg.optim.weight_decay)
    total = cfg.train.epochs * steps_per_epoch
    warmup = int(round(cfg.optim.warmup_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, warmup, cfg.optim.min_lr_ratio)
    )
    use_bf16 = bool(cfg.scaling.bf16)

    def autocast():
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16)

    # ---- resume
    state: dict[str, Any] = {"epoch": -1, "best_score": None, "best_epoch": None,
                             "bad_epochs": 0, "history": [], "global_step": 0}
    resumed = False
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state.update(ckpt_io.load_train_checkpoint(d, raw, optimizer, scheduler))
        resumed = True
        if rank == 0:
            log.info("resumed from checkpoint after epoch %d", state["epoch"])
    start_epoch = state["epoch"] + 1

    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val") if rank == 0 else None
    cols = batch_columns(recipe, getattr(cfg, "task", None), getattr(cfg, "mode", None))
    if recipe == "pretrain":
        step_fn = _pretrain_step
    else:
        step_fn = functools.partial(_finetune_step, pos_weight=config.get("pos_weight"))
    mlf = _MlflowEpochLogger(config.get("mlflow") if rank == 0 else None)
    es = getattr(cfg, "early_stopping", None)
    score_key = config.get("score_key")  # e.g. "val_auroc"; None for pretraining
    sign = 1.0 if config.get("score_mode", "max") == "max" else -1.0

    for epoch in range(start_epoch, cfg.train.epochs):
        # ---- train
        model.train()
        sums: dict[str, float] = {}
        n_rows, steps, t0, cpu0 = 0, 0, time.perf_counter(), time.process_time()
        wait, first_wait, t_ready = 0.0, 0.0, time.perf_counter()
        for batch in train_shard.iter_torch_batches(
            batch_size=cfg.data.batch_size,
            dtypes=_dtypes(cols),
            device=device,
            prefetch_batches=cfg.data.prefetch_batches,
            local_shuffle_buffer_size=cfg.data.shuffle_buffer or None,
            local_shuffle_seed=(cfg.run.seed * 1000 + epoch * world + rank)
            if cfg.data.shuffle_buffer else None,
        ):
            wait += time.perf_counter() - t_ready
            if not steps and not n_rows:  # iterator start-up: the epoch's first batch
                first_wait = wait
            if recipe == "pretrain" and len(batch["epi"]) < 2:
                continue  # InfoNCE needs at least one negative
            with autocast():
                parts = step_fn(model, raw, batch, cfg, epoch)
            optimizer.zero_grad(set_to_none=True)
            parts["loss"].backward()
            if cfg.optim.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(raw.parameters(), cfg.optim.grad_clip)
            optimizer.step()
            scheduler.step()
            b = len(batch["epi"])
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * b
            n_rows += b
            steps += 1
            state["global_step"] += 1
            if rank == 0 and steps % cfg.train.log_every_steps == 0:
                log.info("epoch %d step %d loss %.4f", epoch, steps, float(parts["loss"]))
            if cfg.train.max_steps_per_epoch and steps >= cfg.train.max_steps_per_epoch:
                break
            t_ready = time.perf_counter()
        elapsed = time.perf_counter() - t0
        sums["_cpu"] = time.process_time() - cpu0  # this worker process, all its threads
        sums["_rows"] = float(n_rows)
        sums["_time"] = elapsed
        sums["_wait"] = wait
        sums["_wait_first"] = first_wait
        sums = _allreduce_sums(sums, world)
        rows = max(sums.pop("_rows"), 1.0)
        mean_time = sums.pop("_time") / world
        mean_wait = sums.pop("_wait") / world
        mean_first_wait = sums.pop("_wait_first") / world
        mean_cpu = sums.pop("_cpu") / world
        metrics: dict[str, Any] = {f"train_{k}": v / rows for k, v in sums.items()}
        metrics.update(
            epoch=epoch,
            lr=scheduler.get_last_lr()[0],
            train_rows=int(rows),
            train_steps=steps,
            epoch_time_s=mean_time,
            data_wait_s=mean_wait,
            data_wait_first_s=mean_first_wait,
            epoch_cpu_s=mean_cpu,
            samples_per_s=rows / max(mean_time, 1e-9),
        )

        # ---- validate (rank 0) and decide on early stopping (everyone)
        stop = 0.0
        if rank == 0:
            if recipe == "pretrain":
                metrics.update(_validate_pretrain(raw, val_shard, cfg, device, autocast))
            else:
                metrics.update(_validate_finetune(raw, val_shard, cfg, autocast))
            score = metrics.get(score_key) if score_key else None
            if score is not None and math.isfinite(score):
                best = state["best_score"]
                if best is None or sign * score > sign * best:
                    state.update(best_score=score, best_epoch=epoch, bad_epochs=0)
                else:
                    state["bad_epochs"] += 1
            elif score_key:
                state["bad_epochs"] += 1
            if (es is not None and es.patience is not None and state["bad_epochs"] >= es.patience
                    and epoch + 1 >= es.min_epochs):
                stop = 1.0
            if score_key:
                # checkpoint ranking: finite, higher is better for Ray's "max" order
                ok = score is not None and math.isfinite(score)
                metrics["score"] = sign * score if ok else -1e30
            metrics["best_epoch"] = -1 if state["best_epoch"] is None else state["best_epoch"]
        stop = _broadcast([stop], world)[0]

        # ---- checkpoint + report
        state["epoch"] = epoch
        if rank == 0:
            state["history"].append({k: v for k, v in metrics.items()})
            mlf.log({k: v for k, v in metrics.items() if k != "epoch"}, step=epoch)
            with tempfile.TemporaryDirectory(prefix="mixhic-ckpt-") as tmp:
                meta.update(epoch=epoch, metrics=metrics, run_id=(config.get("mlflow") or {}).get("run_id"))
                ckpt_io.save_train_checkpoint(tmp, raw, meta, optimizer, scheduler, state)
                ray.train.report(metrics, checkpoint=Checkpoint.from_directory(tmp))
        else:
            ray.train.report(metrics, checkpoint=None)

        if cfg.train.fail_at_epoch == epoch and not resumed:
            raise InjectedFailure(f"train.fail_at_epoch={epoch}: injected failure (test hook)")
        if stop:
            if rank == 0:
                log.info("early stopping after epoch %d (best epoch %s)", epoch,
                         state["best_epoch"])
            break
