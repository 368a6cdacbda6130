"""The sweep before it runs: the plan (recipes, checks, rung budget) and the search space.

    >>> plan = plan_sweep(cfg)            # every config error surfaces here, before Ray starts
    >>> space = {k: domain(s) for k, s in cfg.search_space.items().items()}

:func:`plan_sweep` loads the base recipes a trial runs, makes their local paths absolute
(Tune runs trials in their own directory), checks every corner of the search space and
the data both recipes read. :func:`domain` / :func:`search_alg` turn the config's
search space and algorithm into Ray Tune's.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from mixhic.core.config import ConfigError, apply_overrides, build, load_config, to_dict
from mixhic.core.errors import MixHicError
from mixhic.models.tasks import HIC_TASK_MODES
from mixhic.platform import data as data_mod
from mixhic.platform.train_config import FinetuneConfig, PretrainConfig
from mixhic.platform.tune_config import PARAM_PATHS, ParamSpec, TuneConfig

__all__ = ["SweepPlan", "plan_sweep", "with_params", "domain", "search_alg", "expected_trials",
           "check_capacity"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep, resolved before Ray or any trial starts.

    pretrain_base: the PretrainConfig the best weights are written into;
    trial_pretrain / finetune: the recipes one trial runs (raw dicts, absolute paths)."""

    cfg: TuneConfig
    metric: str
    max_t: int
    pretrain_base: PretrainConfig
    trial_pretrain: dict[str, Any]
    finetune: dict[str, Any]
    exp_dir: str


def _abs(path: str | None) -> str | None:
    if path is None or "://" in path:
        return path
    return os.path.abspath(os.path.expanduser(path))


def _local_paths(raw: dict[str, Any]) -> dict[str, Any]:
    """Make the recipes' local paths absolute: Tune runs trials in their own directory."""
    out = json.loads(json.dumps(raw))
    out["data"]["data_dir"] = _abs(out["data"]["data_dir"])
    out["run"]["runs_dir"] = _abs(out["run"]["runs_dir"])
    out["run"]["storage_path"] = _abs(out["run"]["storage_path"])
    if out.get("test", {}).get("data_dir"):
        out["test"]["data_dir"] = _abs(out["test"]["data_dir"])
    return out


def with_params(raw: dict[str, Any], params: dict[str, Any]) -> PretrainConfig:
    """``raw`` with the swept fields set (``{"con": 0.3}`` -> ``loss.con = 0.3``)."""
    return build(PretrainConfig,
                 apply_overrides(raw, {PARAM_PATHS[k]: v for k, v in params.items()}))


def plan_sweep(cfg: TuneConfig) -> SweepPlan:
    """Load and check everything a trial needs (recipes, search space, data, search
    algorithm) so a bad config fails here, naming the key, before any trial starts."""
    # lazy: pulls scipy and sklearn (+1.1 s) into mixhic tune --help
    from mixhic.platform.metrics import PRIMARY_METRIC

    algo = cfg.search.algorithm
    if algo in ("optuna", "hyperopt") and importlib.util.find_spec(algo) is None:
        raise MixHicError(f"search.algorithm: {algo} is not installed (pip install {algo}), "
                          "or use random / grid")
    common = {"data.data_dir": cfg.data_dir} if cfg.data_dir else {}
    base = load_config(cfg.pretrain_config, PretrainConfig, {**common, **cfg.pretrain_overrides})
    # a trial's pretrain/finetune runs nest under its MLflow run: same experiment and store
    same_run = {"run.experiment": cfg.run.experiment, "run.runs_dir": cfg.run.runs_dir}
    trial_pre = load_config(cfg.pretrain_config, PretrainConfig,
                            {**common, **cfg.pretrain_overrides, **cfg.trial_pretrain_overrides,
                             **same_run})
    ft_over = {**common, "task": cfg.task, "run.register": False, **cfg.finetune_overrides,
               **same_run}
    if cfg.mode is not None:
        ft_over["mode"] = cfg.mode
    ft = load_config(cfg.finetune_config, FinetuneConfig, ft_over)
    if ft.mode == "nonpre" or (ft.task == "hic" and ft.mode not in HIC_TASK_MODES):
        raise MixHicError(f"mode: {ft.mode!r} (from {cfg.finetune_config}) cannot score "
                          f"pretraining weights on task {ft.task}: set mode (bimodal/infer/epi)")

    # every corner of the space must make a valid pretraining config
    trial_raw = _local_paths(to_dict(trial_pre))
    for name, spec in cfg.search_space.items().items():
        for value in spec.bounds():
            try:
                with_params(trial_raw, {name: value})
            except (ConfigError, ValueError) as exc:
                raise MixHicError(f"search_space.{name}: value {value} gives an invalid "
                                  f"pretraining config: {exc}") from None

    # the data both recipes read
    data_mod.read_geometry(trial_pre.data.data_dir, "pretrain")
    data_mod.read_geometry(ft.data.data_dir, data_mod.dataset_for_task(ft.task))

    metric = cfg.metric or f"val_{PRIMARY_METRIC[ft.task]}"
    max_t = cfg.scheduler.max_t or ft.train.epochs
    if max_t > ft.train.epochs:
        raise MixHicError(f"scheduler.max_t: {max_t} exceeds the fine-tuning epochs "
                          f"({ft.train.epochs}); one rung step is one epoch")
    ft_raw = _local_paths(to_dict(ft))
    if max_t < ft.train.epochs:  # a trial that survives every rung stops at max_t by itself
        log.info("scheduler.max_t=%d: trials fine-tune %d epochs, not %d", max_t, max_t,
                 ft.train.epochs)
        ft_raw["train"]["epochs"] = max_t
    exp_dir = f"{_abs(cfg.run.storage_path).rstrip('/')}/{cfg.run.name}"
    return SweepPlan(cfg=cfg, metric=metric, max_t=max_t, pretrain_base=base,
                     trial_pretrain=trial_raw, finetune=ft_raw, exp_dir=exp_dir)


def domain(spec: ParamSpec):
    """The Ray Tune domain of one swept value."""
    from ray import tune

    t = spec.type
    if t == "grid":
        return tune.grid_search(list(spec.values))
    if t == "choice":
        return tune.choice(list(spec.values))
    if t == "uniform":
        return (tune.quniform(spec.low, spec.high, spec.q) if spec.q
                else tune.uniform(spec.low, spec.high))
    if t == "loguniform":
        return (tune.qloguniform(spec.low, spec.high, spec.q) if spec.q
                else tune.loguniform(spec.low, spec.high))
    return tune.qrandint(int(spec.low), int(spec.high), int(spec.q)) if spec.q else \
        tune.randint(int(spec.low), int(spec.high))


def search_alg(cfg: TuneConfig):
    """The configured search algorithm (random/grid: Tune's variant generator)."""
    points = [dict(p) for p in cfg.search.points_to_evaluate] or None
    algo = cfg.search.algorithm
    if algo == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(points_to_evaluate=points, seed=cfg.search.seed)
    if algo == "hyperopt":
        from ray.tune.search.hyperopt import HyperOptSearch

        return HyperOptSearch(points_to_evaluate=points, random_state_seed=cfg.search.seed)
    from ray.tune.search import BasicVariantGenerator

    # a SearchAlgorithm, not a Searcher: Tune does not wrap it in a ConcurrencyLimiter
    return BasicVariantGenerator(points_to_evaluate=points, random_state=cfg.search.seed,
                                 max_concurrent=cfg.search.max_concurrent_trials)


def expected_trials(cfg: TuneConfig) -> int:
    """Trials the search will create: ``num_samples`` x the grid (random/grid search)."""
    n = cfg.search.num_samples
    if cfg.search.algorithm in ("random", "grid"):
        for spec in cfg.search_space.items().values():
            if spec.is_grid:
                n *= len(spec.values)
    return n


def check_capacity(plan: SweepPlan) -> None:
    """Warn when concurrent trials would leave Ray Data (read tasks: 1 CPU) no CPU."""
    import ray

    cpus = ray.cluster_resources().get("CPU", 0.0)

    def demand(raw):
        s = raw["scaling"]
        return max(1, s["num_workers"]) * s["cpus_per_worker"]

    per_trial = plan.cfg.resources.cpu + max(demand(plan.trial_pretrain), demand(plan.finetune))
    total = per_trial * plan.cfg.search.max_concurrent_trials
    if cpus - total < 1:
        log.warning("%d concurrent trials take %.2f of %.1f CPUs (trial %.2f + Train workers): "
                    "less than 1 CPU left for Ray Data, trials may stall; lower "
                    "search.max_concurrent_trials or scaling.cpus_per_worker",
                    plan.cfg.search.max_concurrent_trials, total, cpus, per_trial)
