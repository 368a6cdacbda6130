"""Typed config of ``mixhic tune``: a Ray Tune search over the pretraining loss weights.

A trial pre-trains briefly with the sampled weights, fine-tunes briefly on ``task`` from
that checkpoint, and reports the task's validation metric after every fine-tuning epoch
(ASHA stops poor trials early). The base recipes are ordinary pretrain / finetune configs
(shipped names or YAML paths); ``pretrain_overrides`` apply to the trials AND to the
best-weights config written at the end, ``trial_pretrain_overrides`` /
``finetune_overrides`` only to the trials (make them short). Each is a mapping of the
recipe config's keys: ``trial_pretrain_overrides: {train.epochs: 1, scaling.num_workers: 1}``.

    >>> cfg = load_config("tune-demo", TuneConfig, ["data_dir=runs/demo/data"])

Search space: one optional :class:`ParamSpec` per swept field of the pretraining config
(``con``, ``orth``, ``map`` -> ``loss.*``; ``lr``, ``warmup_epochs`` -> ``optim.*``);
fields left out keep the base config's value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Literal

from mixhic.core.config import Overrides, as_overrides, shipped_defaults
from mixhic.core.config import check as _check
from mixhic.platform.train_config import TASKS, Mode, Task

__all__ = [
    "PARAM_PATHS",
    "WEIGHTS",
    "ALGORITHMS",
    "ParamSpec",
    "SearchSpace",
    "SearchConfig",
    "SchedulerConfig",
    "TrialResources",
    "TuneRunConfig",
    "TuneConfig",
]

#: search-space field -> dotted key of the PretrainConfig it sets.
PARAM_PATHS: dict[str, str] = {
    "con": "loss.con",
    "orth": "loss.orth",
    "map": "loss.map",
    "lr": "optim.lr",
    "warmup_epochs": "optim.warmup_epochs",
}
WEIGHTS = ("con", "orth", "map")
ALGORITHMS = ("random", "grid", "optuna", "hyperopt")
Algorithm = Literal["random", "grid", "optuna", "hyperopt"]


@dataclass(frozen=True)
@shipped_defaults
class ParamSpec:
    """One swept value: ``choice``/``grid`` over ``values``; ``uniform``/``loguniform``
    (``q`` optional: quantised) or ``randint`` over [``low``, ``high``]."""

    type: Literal["choice", "grid", "uniform", "loguniform", "randint"]
    values: tuple[float, ...] | None
    low: float | None
    high: float | None
    q: float | None

    def validate(self, name: str) -> None:
        if self.type in ("choice", "grid"):
            _check(bool(self.values), f"{name}.values", f"type {self.type} needs a non-empty list")
            _check(all(math.isfinite(v) for v in self.values), f"{name}.values",
                   "must be finite numbers")
            _check(self.low is None and self.high is None, name,
                   f"type {self.type} takes values, not low/high")
            return
        _check(self.values is None, name, f"type {self.type} takes low/high, not values")
        _check(self.low is not None and self.high is not None, name,
               f"type {self.type} needs low and high")
        _check(math.isfinite(self.low) and math.isfinite(self.high), name, "low/high must be finite")
        _check(self.low < self.high, name, f"low ({self.low}) must be < high ({self.high})")
        if self.type == "loguniform":
            _check(self.low > 0, f"{name}.low", f"loguniform needs low > 0, got {self.low}")
        _check(self.q is None or self.q > 0, f"{name}.q", "must be > 0 or null")

    def bounds(self) -> tuple[float, float]:
        """(smallest, largest) value the spec can produce."""
        if self.values:
            return min(self.values), max(self.values)
        return float(self.low), float(self.high)

    @property
    def is_grid(self) -> bool:
        return self.type == "grid"


@dataclass(frozen=True)
@shipped_defaults
class SearchSpace:
    """Swept fields (see :data:`PARAM_PATHS`); ``null`` = not swept."""

    con: ParamSpec | None
    orth: ParamSpec | None
    map: ParamSpec | None
    lr: ParamSpec | None
    warmup_epochs: ParamSpec | None

    def __post_init__(self) -> None:
        _check(bool(self.items()), "search_space",
               f"is empty: sweep at least one of {', '.join(PARAM_PATHS)}")
        for name, spec in self.items().items():
            key = f"search_space.{name}"
            spec.validate(key)
            lo, _ = spec.bounds()
            if name in WEIGHTS:
                _check(lo >= 0, key, f"loss weights must be >= 0, the space reaches {lo}")
            elif name == "lr":
                _check(lo > 0, key, f"learning rates must be > 0, the space reaches {lo}")
            elif name == "warmup_epochs":
                _check(lo >= 0, key, f"must be >= 0, the space reaches {lo}")

    def items(self) -> dict[str, ParamSpec]:
        """The swept fields: ``{"con": ParamSpec, ...}``."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}


@dataclass(frozen=True)
@shipped_defaults
class SearchConfig:
    """How trials are drawn. ``random``: Tune's variant generator (grid-typed params are
    crossed, the rest sampled ``num_samples`` times); ``grid``: every param must be
    ``grid``/``choice`` and the full grid runs ``num_samples`` times; ``optuna`` /
    ``hyperopt``: model-based search (the package must be installed).
    ``points_to_evaluate``: trials to run first, e.g. the paper's 0.5/0.5/0.5."""

    algorithm: Algorithm
    num_samples: int
    max_concurrent_trials: int
    seed: int
    points_to_evaluate: tuple[dict[str, float], ...]

    def __post_init__(self) -> None:
        _check(self.num_samples >= 1, "search.num_samples", f"must be >= 1, got {self.num_samples}")
        _check(self.max_concurrent_trials >= 1, "search.max_concurrent_trials", "must be >= 1")


@dataclass(frozen=True)
@shipped_defaults
class SchedulerConfig:
    """``asha`` (early stopping on the metric, one rung step = one fine-tuning epoch) or
    ``fifo`` (every trial runs to the end). ``max_t: null`` = the fine-tuning epochs; a
    smaller max_t shortens the trials' fine-tuning to max_t epochs (a trial that passes
    every rung ends by itself there)."""

    type: Literal["asha", "fifo"]
    grace_period: int
    reduction_factor: float
    max_t: int | None

    def __post_init__(self) -> None:
        _check(self.grace_period >= 1, "scheduler.grace_period", "must be >= 1")
        _check(self.reduction_factor > 1, "scheduler.reduction_factor", "must be > 1")
        _check(self.max_t is None or self.max_t >= self.grace_period, "scheduler.max_t",
               "must be >= scheduler.grace_period or null")


@dataclass(frozen=True)
@shipped_defaults
class TrialResources:
    """What Tune reserves for a trial's driver (the function trainable). Its Ray Train
    workers are scheduled separately from the pretrain/finetune ``scaling`` sections.
    On 2 cores: cpu 0.25, ``scaling.cpus_per_worker=0.25``, 2 trials -> 1 CPU left for Ray
    Data. Fractions are fine; 0 CPU is refused by Tune."""

    cpu: float
    gpu: float

    def __post_init__(self) -> None:
        _check(self.cpu > 0, "resources.cpu", f"must be > 0 (fractions are fine), got {self.cpu}")
        _check(self.gpu >= 0, "resources.gpu", f"must be >= 0, got {self.gpu}")


@dataclass(frozen=True)
@shipped_defaults
class TuneRunConfig:
    """Where the sweep lives: ``storage_path/name`` (local dir or pyarrow URI). Re-running
    an existing sweep with ``resume: true`` restores it (finished trials are kept).
    ``interrupt_after_trials``: test hook, interrupts the sweep like Ctrl+C once that many
    trials have finished."""

    name: str
    storage_path: str
    experiment: str
    runs_dir: str
    resume: bool
    time_budget_s: float | None
    max_failures: int
    interrupt_after_trials: int | None

    def __post_init__(self) -> None:
        _check(bool(self.name) and "/" not in self.name, "run.name",
               f"must be a plain name without '/', got {self.name!r}")
        _check(bool(self.storage_path), "run.storage_path", "must be a directory or URI")
        _check(bool(self.experiment), "run.experiment", "must be a non-empty name")
        _check(self.time_budget_s is None or self.time_budget_s > 0, "run.time_budget_s",
               "must be > 0 or null")
        _check(self.max_failures >= 0, "run.max_failures", "must be >= 0")
        _check(self.interrupt_after_trials is None or self.interrupt_after_trials >= 1,
               "run.interrupt_after_trials", "must be >= 1 or null")


@dataclass(frozen=True)
@shipped_defaults
class TuneConfig:
    """The sweep. ``task``/``mode`` override the fine-tuning config's; ``metric: null`` =
    ``val_<primary metric of task>`` (loops AUROC, hic Pearson, cage R^2), maximised.
    ``data_dir`` (optional) sets ``data.data_dir`` of both recipes.
    ``best_config``: where the best-weights pretraining YAML goes (default
    ``<storage>/<name>/best-pretrain.yaml``)."""

    pretrain_config: str
    finetune_config: str
    task: Task
    search_space: SearchSpace
    mode: Mode | None
    data_dir: str | None
    metric: str | None
    metric_mode: Literal["max", "min"]
    pretrain_overrides: Overrides
    trial_pretrain_overrides: Overrides
    finetune_overrides: Overrides
    search: SearchConfig = field(default_factory=SearchConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    resources: TrialResources = field(default_factory=TrialResources)
    run: TuneRunConfig = field(default_factory=TuneRunConfig)
    best_config: str | None

    def __post_init__(self) -> None:
        for name in ("pretrain_overrides", "trial_pretrain_overrides", "finetune_overrides"):
            object.__setattr__(self, name, as_overrides(getattr(self, name), name))
        _check(self.task in TASKS, "task", f"unknown task {self.task!r} (known: {TASKS})")
        _check(self.mode != "nonpre", "mode",
               "nonpre ignores the pretrained model, so it cannot score loss weights "
               "(use bimodal, infer or epi)")
        if self.task == "hic":
            _check(self.mode in (None, "infer", "epi"), "mode",
                   f"task hic predicts maps from tracks: use infer or epi, not {self.mode!r}")
        space = self.search_space.items()
        if self.search.algorithm == "grid":
            bad = [k for k, s in space.items() if s.type not in ("grid", "choice")]
            _check(not bad, "search.algorithm",
                   f"grid needs grid/choice params, search_space.{bad[0] if bad else ''} is not")
        if self.search.algorithm in ("optuna", "hyperopt"):
            bad = [k for k, s in space.items() if s.is_grid]
            _check(not bad, f"search_space.{bad[0] if bad else ''}",
                   f"type grid is not supported by {self.search.algorithm} (use choice)")
        for i, point in enumerate(self.search.points_to_evaluate):
            unknown = sorted(set(point) - set(space))
            _check(not unknown, f"search.points_to_evaluate[{i}]",
                   f"{unknown} are not swept (swept: {sorted(space)})")
            missing = sorted(set(space) - set(point))
            _check(not missing, f"search.points_to_evaluate[{i}]", f"lacks {missing}")
            for k, v in point.items():
                _check(not (k in WEIGHTS and v < 0), f"search.points_to_evaluate[{i}].{k}",
                       f"loss weights must be >= 0, got {v}")

    def trial_keys(self) -> dict[str, str]:
        """Swept field -> PretrainConfig dotted key, for the swept fields only."""
        return {k: PARAM_PATHS[k] for k in self.search_space.items()}
