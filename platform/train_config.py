"""Typed run configs of the training recipes: pretrain, finetune, evaluate, demo, ablate.

Each recipe is a frozen dataclass built from YAML by :func:`mixhic.core.config.load_config`
(shipped configs live in ``platform/configs``); values are checked in ``__post_init__`` and
errors name the field. Sections are shared between recipes:

    data      where the prepared Parquet datasets are and how batches are drawn
    model     preset name + field overrides of :class:`mixhic.models.MixHicConfig`
    optim     AdamW, linear warm-up then cosine decay, gradient clipping
    loss      pretraining loss weights and the contrastive-only warm-up
    scaling   Ray Train workers (fractional CPUs on a laptop, GPUs + bf16 on a cluster)
    run       Ray Train storage (local dir or pyarrow URI), run name, MLflow experiment

    >>> cfg = load_config("demo-pretrain", PretrainConfig, ["train.epochs=3"])
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from mixhic.core.config import Overrides, as_overrides, shipped_defaults
from mixhic.core.config import check as _check
from mixhic.models import MixHicConfig
from mixhic.models.config import HIC_INPUTS
from mixhic.models.tasks import MODES, PRETRAINED_MODES, TASKS

__all__ = [
    "TASKS",
    "MODES",
    "DataConfig",
    "TestDataConfig",
    "ModelConfig",
    "OptimConfig",
    "LossConfig",
    "TrainConfig",
    "EarlyStoppingConfig",
    "ScalingConfig",
    "RunConfig",
    "PretrainConfig",
    "FinetuneConfig",
    "EvaluateConfig",
    "DemoConfig",
    "AblateConfig",
]

Task = Literal[TASKS]  # Literal of a tuple = Literal of its items
Mode = Literal[MODES]
Split = Literal["train", "val", "test"]


def _flatten_overrides(cfg: Any, *names: str) -> None:
    """Store ``Overrides`` fields flat (also when the dataclass is built in Python)."""
    for name in names:
        object.__setattr__(cfg, name, as_overrides(getattr(cfg, name), name))


@dataclass(frozen=True)
@shipped_defaults
class DataConfig:
    """A prepared dataset directory (``mixhic prepare`` output: Parquet + manifest.json).

    ``sample`` keeps only rows of that sample (cell line); ``train_fraction`` keeps a seeded,
    deterministic subset of the training rows (few-shot runs); val/test are never subsampled.
    ``cache`` decides whether the splits are materialised in Ray's object store once or
    streamed from Parquet every epoch (large data).
    """

    data_dir: str
    sample: str | None
    batch_size: int
    eval_batch_size: int
    train_fraction: float
    fraction_seed: int
    shuffle_buffer: int  # rows in the local shuffle buffer; 0 = read order
    prefetch_batches: int
    # "auto": keep train/val in Ray's object store after the first read when they fill
    # < 30% of it (small data: no Parquet re-read per epoch); "never": stream every epoch.
    cache: Literal["auto", "always", "never"]

    def __post_init__(self) -> None:
        _check(bool(self.data_dir), "data.data_dir", "must be a directory or URI")
        _check(self.batch_size >= 1, "data.batch_size", f"must be >= 1, got {self.batch_size}")
        _check(self.eval_batch_size >= 1, "data.eval_batch_size", "must be >= 1")
        _check(
            0.0 < self.train_fraction <= 1.0,
            "data.train_fraction",
            f"must be in (0, 1], got {self.train_fraction}",
        )
        _check(self.shuffle_buffer >= 0, "data.shuffle_buffer", "must be >= 0")
        _check(self.prefetch_batches >= 0, "data.prefetch_batches", "must be >= 0")


@dataclass(frozen=True)
@shipped_defaults
class TestDataConfig:
    """Where the test split comes from (cross-sample evaluation: another sample or data dir).

    ``data_dir`` / ``sample`` default to the training data's.
    """

    data_dir: str | None
    sample: str | None
    split: Split


@dataclass(frozen=True)
@shipped_defaults
class ModelConfig:
    """A :func:`mixhic.models.get_preset` name and field overrides (window/track sizes come
    from the dataset's manifest, never from here)."""

    preset: str
    overrides: dict[str, Any]

    def __post_init__(self) -> None:
        _check(bool(self.preset), "model.preset", "must name a preset (tiny, paper-128, ...)")
        reserved = {"window_bins", "epi_bins", "n_tracks"} & set(self.overrides)
        _check(
            not reserved,
            "model.overrides",
            f"{sorted(reserved)} come from the dataset manifest, not the model config",
        )
        known = {f.name for f in dataclasses.fields(MixHicConfig)}
        for key in self.overrides:
            _check(key in known, f"model.overrides.{key}",
                   f"not a model field (known: {', '.join(sorted(known))})")
        hic_input = self.overrides.get("hic_input")
        if hic_input is not None:
            _check(hic_input in HIC_INPUTS, "model.overrides.hic_input",
                   f"must be one of {', '.join(HIC_INPUTS)}, got {hic_input!r}")


@dataclass(frozen=True)
@shipped_defaults
class OptimConfig:
    """AdamW; lr rises linearly for ``warmup_epochs`` then follows a cosine down to
    ``lr * min_lr_ratio`` at the last step (``min_lr_ratio: 1`` = constant lr)."""

    lr: float
    weight_decay: float
    betas: tuple[float, float]
    warmup_epochs: float
    min_lr_ratio: float
    grad_clip: float | None  # max global grad norm; null = no clipping

    def __post_init__(self) -> None:
        _check(self.lr > 0 and math.isfinite(self.lr), "optim.lr", f"must be > 0, got {self.lr}")
        _check(self.weight_decay >= 0, "optim.weight_decay", "must be >= 0")
        _check(all(0 <= b < 1 for b in self.betas), "optim.betas", "must be in [0, 1)")
        _check(self.warmup_epochs >= 0, "optim.warmup_epochs", "must be >= 0")
        _check(0 <= self.min_lr_ratio <= 1, "optim.min_lr_ratio", "must be in [0, 1]")
        _check(
            self.grad_clip is None or self.grad_clip > 0, "optim.grad_clip", "must be > 0 or null"
        )


@dataclass(frozen=True)
@shipped_defaults
class LossConfig:
    """Pretraining objective: contrastive only for ``contrastive_warmup_epochs`` epochs, then
    ``con * L_con + orth * L_orth + map * L_map`` (the paper: 0.5, 0.5, 0.5 after 10 epochs)."""

    con: float
    orth: float
    map: float
    contrastive_warmup_epochs: int
    # Batch-standardised InfoNCE (models.losses.info_nce); false = the published loss,
    # which collapses to ln(batch) on the simulator.
    con_standardize: bool

    def __post_init__(self) -> None:
        for name in ("con", "orth", "map"):
            value = getattr(self, name)
            _check(value >= 0 and math.isfinite(value), f"loss.{name}", f"must be >= 0, got {value}")
        _check(self.con + self.orth + self.map > 0, "loss", "at least one weight must be > 0")
        _check(self.contrastive_warmup_epochs >= 0, "loss.contrastive_warmup_epochs", "must be >= 0")


@dataclass(frozen=True)
@shipped_defaults
class TrainConfig:
    """Epoch budget. ``max_steps_per_epoch`` caps an epoch (smoke runs, benchmarks);
    ``fail_at_epoch`` is a test hook: the first attempt raises after checkpointing that epoch."""

    epochs: int
    max_steps_per_epoch: int | None
    log_every_steps: int
    fail_at_epoch: int | None

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "train.epochs", f"must be >= 1, got {self.epochs}")
        _check(
            self.max_steps_per_epoch is None or self.max_steps_per_epoch >= 1,
            "train.max_steps_per_epoch",
            "must be >= 1 or null",
        )
        _check(self.log_every_steps >= 1, "train.log_every_steps", "must be >= 1")


@dataclass(frozen=True)
@shipped_defaults
class EarlyStoppingConfig:
    """Stop when the validation ``metric`` has not improved for ``patience`` epochs.
    ``metric: null`` = the task's primary metric (loops AUROC, hic Pearson, cage R^2)."""

    patience: int | None
    metric: str | None
    mode: Literal["max", "min"]
    # Never stop before this many epochs: a flat start (the metric barely moving while
    # the head warms up) must not end training at epoch 0.
    min_epochs: int

    def __post_init__(self) -> None:
        _check(
            self.patience is None or self.patience >= 1,
            "early_stopping.patience",
            "must be >= 1 or null (no early stopping)",
        )
        _check(self.min_epochs >= 1, "early_stopping.min_epochs", "must be >= 1")


@dataclass(frozen=True)
@shipped_defaults
class ScalingConfig:
    """Ray Train workers (DDP when > 1). On a 2-core laptop keep ``cpus_per_worker``
    fractional so Ray Data still gets a CPU; ``max_failures`` automatic restarts from the
    last checkpoint after a worker failure."""

    num_workers: int
    cpus_per_worker: float
    use_gpu: bool
    bf16: bool
    max_failures: int

    def __post_init__(self) -> None:
        _check(self.num_workers >= 1, "scaling.num_workers", "must be >= 1")
        _check(self.cpus_per_worker > 0, "scaling.cpus_per_worker", "must be > 0")
        _check(self.max_failures >= -1, "scaling.max_failures", "must be >= -1 (-1 = unlimited)")


@dataclass(frozen=True)
@shipped_defaults
class RunConfig:
    """Where a run lives. Ray Train writes checkpoints to ``storage_path/run_name`` (a local
    dir or any pyarrow URI such as ``s3://bucket/runs``); re-running with the same name
    resumes from the last checkpoint. MLflow: ``MLFLOW_TRACKING_URI`` if set, else
    ``sqlite:///<runs_dir>/mlflow.db``. ``run_name: null`` = a fresh timestamped name."""

    storage_path: str
    run_name: str | None
    experiment: str
    runs_dir: str
    seed: int
    register: bool  # register the best model in the MLflow model registry

    def __post_init__(self) -> None:
        _check(bool(self.storage_path), "run.storage_path", "must be a directory or URI")
        _check(bool(self.experiment), "run.experiment", "must be a non-empty name")
        if self.run_name is not None:
            _check(
                bool(self.run_name) and "/" not in self.run_name,
                "run.run_name",
                f"must be a plain name without '/', got {self.run_name!r}",
            )


@dataclass(frozen=True)
class PretrainConfig:
    data: DataConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    run: RunConfig = field(default_factory=RunConfig)


@dataclass(frozen=True)
@shipped_defaults
class FinetuneConfig:
    """Fine-tune ``task`` in ``mode`` (bimodal | nonpre | infer | epi). ``pretrained`` is a
    pretraining model dir (path, URI, ``runs:/`` or ``models:/``); every mode but ``nonpre``
    loads it when given (``epi`` its epigenomic encoder), ``nonpre`` trains from scratch.

    ``allow_mismatch``: fine-tune even when the pretrained model was trained on data of
    another resolution, track set or normalisation (warned); by default that is an error."""

    task: Task
    data: DataConfig
    mode: Mode
    pretrained: str | None
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    test: TestDataConfig = field(default_factory=TestDataConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    run: RunConfig = field(default_factory=RunConfig)
    # Loops: weigh positives by n_negatives / n_positives of the train split, so a
    # skewed negative mix cannot be learnt by predicting the majority class.
    class_balance: bool
    allow_mismatch: bool

    @property
    def uses_pretrained(self) -> bool:
        """Whether the pretrained checkpoint is loaded (any mode but nonpre, one given)."""
        return self.pretrained is not None and self.mode in PRETRAINED_MODES


@dataclass(frozen=True)
@shipped_defaults
class EvaluateConfig:
    """Metrics of a fine-tuned model dir on one split of a prepared dataset.

    ``model``: path, URI, ``runs:/<id>/model`` or ``models:/<name>/<version>``. ``data_dir``
    and ``sample`` may point at another cell line than the model was trained on."""

    model: str
    data_dir: str
    split: Split
    sample: str | None
    batch_size: int
    plots: bool
    log_to_mlflow: bool
    experiment: str
    runs_dir: str
    run_name: str | None

    def __post_init__(self) -> None:
        _check(bool(self.model), "model", "must name a model dir or URI")
        _check(bool(self.data_dir), "data_dir", "must be a directory or URI")
        _check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
@shipped_defaults
class DemoConfig:
    """The end-to-end demo: simulate -> prepare -> pretrain -> fine-tune -> evaluate.

    The step configs are shipped config names (or YAML paths); the demo points their data
    and run sections at ``work_dir`` and applies the ``*_overrides``: mappings of the step
    config's keys, e.g. ``pretrain_overrides: {train.epochs: 1}``.
    Every step's MLflow run is a child of one ``demo`` run in ``experiment``."""

    work_dir: str
    simulate_preset: str
    simulate_overrides: dict[str, Any]
    seed: int
    data_dir: str | None  # an already prepared data dir: skip simulate + prepare
    prepare_config: str
    pretrain_config: str
    finetune_config: str
    tasks: tuple[Task, ...]
    finetune_modes: dict[str, str]
    pretrain_overrides: Overrides
    finetune_overrides: Overrides
    experiment: str
    runs_dir: str

    def __post_init__(self) -> None:
        _flatten_overrides(self, "pretrain_overrides", "finetune_overrides")
        _check(len(self.tasks) >= 1, "tasks", "must list at least one task")
        for task, mode in self.finetune_modes.items():
            _check(task in TASKS, f"finetune_modes.{task}", f"unknown task (known: {TASKS})")
            _check(mode in MODES, f"finetune_modes.{task}", f"unknown mode {mode!r} ({MODES})")


@dataclass(frozen=True)
@shipped_defaults
class AblateConfig:
    """The modality table (epi | infer | nonpre | bimodal) and the few-shot curve.

    ``pretrained``: a pretraining model dir to reuse; ``null`` = pretrain first with
    ``pretrain_config``. Each cell fine-tunes ``finetune_config`` (its task) with the mode
    and ``train_fraction`` of that cell; the few-shot curve uses ``few_shot_mode``.
    ``finetune_overrides`` / ``pretrain_overrides``: mappings of the step config's keys,
    e.g. ``finetune_overrides: {data.data_dir: runs/demo/data}``."""

    finetune_config: str
    pretrain_config: str | None
    pretrained: str | None
    task: Task | None
    modes: tuple[Mode, ...]
    fractions: tuple[float, ...]
    few_shot_mode: Mode
    finetune_overrides: Overrides
    pretrain_overrides: Overrides
    out_dir: str
    experiment: str
    runs_dir: str

    def __post_init__(self) -> None:
        _flatten_overrides(self, "finetune_overrides", "pretrain_overrides")
        _check(
            self.pretrained is not None or self.pretrain_config is not None,
            "pretrained",
            "give a pretraining model dir, or pretrain_config to pretrain first",
        )
        _check(len(set(self.modes)) == len(self.modes), "modes", "must not repeat a mode")
        for f in self.fractions:
            _check(0 < f <= 1, "fractions", f"each must be in (0, 1], got {f}")
