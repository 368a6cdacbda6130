"""``mixhic tune CONFIG [key=value ...]``: Ray Tune search over the pretraining loss weights.

    >>> cfg = load_config("tune-demo", TuneConfig, ["data_dir=runs/demo/data"])
    >>> res = tune(cfg)      # TuneResult: best_params, best_config (YAML), trials, parent run

The objective is a downstream validation metric, not the pretraining loss (whose scale
moves with the weights). One trial (a Tune function trainable):

    sampled {con, orth, map[, lr, warmup_epochs]}
      -> pretrain(...)  Ray Train TorchTrainer.fit(), short (trial_pretrain_overrides)
      -> finetune(..., pretrained=that model) on ``task``, short (finetune_overrides)
         every fine-tuning epoch's metrics go Train -> Tune through a
         ``TuneReportCallback`` (Ray Train V2's UserCallback), so ASHA can stop the trial
         after any epoch (one rung step = one epoch).

Ray Train V2's ``TorchTrainer`` cannot be handed to ``Tuner``: the trainable calls the
recipes, which call ``TorchTrainer.fit()``. Tune reserves ``resources`` for the trial's
driver only; the Train workers are placed from the recipes' ``scaling`` sections.

MLflow: the driver opens one parent run for the sweep before any trial starts; each trial
opens a child run (tag ``mlflow.parentRunId``) under which its pretrain and finetune runs
nest. Trials ASHA stopped are marked KILLED with the tag ``mixhic.tune.early_stopped``.
At the end the parent gets the trial table, a weights-vs-metric plot and the best weights
as a ready-to-use pretraining config (``best-pretrain.yaml``).

Resume: re-running a sweep whose directory ``run.storage_path/run.name`` exists (with
``run.resume: true``) restores it with ``Tuner.restore``: finished trials are kept, the
unfinished ones restart (their pretraining resumes from its Ray Train checkpoint). The
trial table reads the statuses Tune saved, not its in-memory ones (see
``_saved_trials``): a trial cut off by the interruption is unfinished, never "done
without a result". A trial that ends without reporting the metric is listed as
``NO_RESULT`` and the best trial is chosen among those that reported.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import json
import logging
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from mixhic.core.config import ConfigError, apply_overrides, build, load_config, to_dict
from mixhic.core.errors import MixHicError
from mixhic.models.tasks import HIC_TASK_MODES
from mixhic.platform.train_config import FinetuneConfig, PretrainConfig
from mixhic.platform.tune_config import PARAM_PATHS, ParamSpec, TuneConfig
from ray.tune import Callback as TuneCallback
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

__all__ = ["TuneResult", "SweepPlan", "plan_sweep", "tune", "cli_main"]

log = logging.getLogger(__name__)

SWEEP_TAG = "mixhic.tune.sweep"          # on the parent and every trial run: the sweep dir
TRIAL_TAG = "mixhic.tune.trial_id"
ROLE_TAG = "mixhic.tune.role"            # parent | trial
STOPPED_TAG = "mixhic.tune.early_stopped"
RUN_ID_KEY = "mlflow_trial_run_id"       # added to every result a trial reports


@dataclass
class TuneResult:
    """What a sweep produced. ``trials``: one row per trial (trial_id, status (Tune's,
    or NO_RESULT: ended without reporting the metric), iterations, metric (best over
    its epochs), early_stopped, params, mlflow_run_id, error);
    ``interrupted``: the sweep ended before every trial finished (re-run to resume)."""

    name: str
    path: str
    parent_run_id: str
    metric: str
    mode: str
    trials: list[dict[str, Any]] = field(default_factory=list)
    best_params: dict[str, float] | None = None
    best_metric: float | None = None
    best_trial_id: str | None = None
    best_config: str | None = None
    interrupted: bool = False
    restored: bool = False


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


# --------------------------------------------------------------------------- planning
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


def _with_params(raw: dict[str, Any], params: dict[str, Any]) -> PretrainConfig:
    """``raw`` with the swept fields set (``{"con": 0.3}`` -> ``loss.con = 0.3``)."""
    return build(PretrainConfig, apply_overrides(raw, {PARAM_PATHS[k]: v for k, v in params.items()}))


def plan_sweep(cfg: TuneConfig) -> SweepPlan:
    """Load and check everything a trial needs (recipes, search space, data, search
    algorithm) so a bad config fails here, naming the key, before any trial starts."""
    from mixhic.platform import data as data_mod
    from mixhic.platform.metrics import PRIMARY_METRIC

    algo = cfg.search.algorithm
    if algo in ("optuna", "hyperopt") and importlib.util.find_spec(algo) is None:
        raise MixHicError(f"search.algorithm: {algo} is not installed (pip install {algo}), "
                          "or use random / grid")
    common = [f"data.data_dir={cfg.data_dir}"] if cfg.data_dir else []
    base = load_config(cfg.pretrain_config, PretrainConfig, [*common, *cfg.pretrain_overrides])
    # a trial's pretrain/finetune runs nest under its MLflow run: same experiment and store
    same_run = [f"run.experiment={cfg.run.experiment}", f"run.runs_dir={cfg.run.runs_dir}"]
    trial_pre = load_config(cfg.pretrain_config, PretrainConfig,
                            [*common, *cfg.pretrain_overrides, *cfg.trial_pretrain_overrides,
                             *same_run])
    ft_over = [*common, f"task={cfg.task}", "run.register=false", *cfg.finetune_overrides,
               *same_run]
    if cfg.mode is not None:
        ft_over.append(f"mode={cfg.mode}")
    ft = load_config(cfg.finetune_config, FinetuneConfig, ft_over)
    if ft.mode == "nonpre" or (ft.task == "hic" and ft.mode not in HIC_TASK_MODES):
        raise MixHicError(f"mode: {ft.mode!r} (from {cfg.finetune_config}) cannot score "
                          f"pretraining weights on task {ft.task}: set mode (bimodal/infer/epi)")

    # every corner of the space must make a valid pretraining config
    trial_raw = _local_paths(to_dict(trial_pre))
    for name, spec in cfg.search_space.items().items():
        for value in spec.bounds():
            try:
                _with_params(trial_raw, {name: value})
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


def _domain(spec: ParamSpec):
    from ray import tune

    t = spec.type
    if t == "grid":
        return tune.grid_search(list(spec.values))
    if t == "choice":
        return tune.choice(list(spec.values))
    if t == "uniform":
        return tune.quniform(spec.low, spec.high, spec.q) if spec.q else tune.uniform(spec.low, spec.high)
    if t == "loguniform":
        return (tune.qloguniform(spec.low, spec.high, spec.q) if spec.q
                else tune.loguniform(spec.low, spec.high))
    return tune.qrandint(int(spec.low), int(spec.high), int(spec.q)) if spec.q else \
        tune.randint(int(spec.low), int(spec.high))


def _search_alg(cfg: TuneConfig):
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


def _check_capacity(plan: SweepPlan) -> None:
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


# --------------------------------------------------------------------------- MLflow
def _find_run(experiment: str, **tags: str) -> str | None:
    import mlflow
    from mixhic.platform.tracking import get_or_create_experiment

    exp_id = get_or_create_experiment(experiment)
    filt = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    runs = mlflow.MlflowClient().search_runs([exp_id], filter_string=filt, max_results=1,
                                             order_by=["attributes.start_time DESC"])
    return runs[0].info.run_id if runs else None


def _close_children(run_id: str, keep_pretrain: bool = False) -> None:
    """Set the RUNNING child runs of ``run_id`` to KILLED (their process is gone)."""
    import mlflow

    client = mlflow.MlflowClient()
    exp = client.get_run(run_id).info.experiment_id
    for r in client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'"):
        if r.info.status != "RUNNING":
            continue
        if keep_pretrain and r.data.tags.get("mixhic.recipe") == "pretrain":
            continue  # re-opened and resumed from its Ray Train checkpoint
        client.set_terminated(r.info.run_id, "KILLED")


def _close_run(run_id: str) -> None:
    """Set a trial's MLflow run and its RUNNING children to KILLED (its process is gone)."""
    import mlflow

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    children = client.search_runs([run.info.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'")
    for r in [run, *children]:
        if r.info.status == "RUNNING":
            client.set_terminated(r.info.run_id, "KILLED")


def _mark_stopped(run_id: str, iterations: int) -> None:
    """An ASHA-stopped trial's process was killed mid-run: tag and close its MLflow runs."""
    import mlflow

    client = mlflow.MlflowClient()
    client.set_tag(run_id, STOPPED_TAG, "true")
    client.set_tag(run_id, "mixhic.tune.epochs_run", str(iterations))
    _close_run(run_id)


# --------------------------------------------------------------------------- the trial
class _ReportToTune(TuneReportCallback):
    """Ray Train V2 -> Tune, once per epoch (rank 0's metrics), plus ``extra`` fields.
    Built inside the trial (it needs the Tune session), run by the Train controller."""

    def __init__(self, extra: dict[str, Any]) -> None:
        super().__init__()
        self._extra = dict(extra)

    def after_report(self, run_context, metrics, checkpoint):
        metrics = [{**metrics[0], **self._extra}, *metrics[1:]]
        super().after_report(run_context, metrics, checkpoint)


def _trial(config: dict[str, Any], *, spec: dict[str, Any]) -> None:
    """Tune function trainable: pretrain with the sampled weights, then fine-tune; Ray
    Train reports each fine-tuning epoch to Tune through the callback."""
    import mlflow
    from mixhic.platform import tracking
    from mixhic.platform.finetune import finetune
    from mixhic.platform.pretrain import pretrain
    from ray import tune as rt

    os.environ["MLFLOW_TRACKING_URI"] = spec["tracking_uri"]
    ctx = rt.get_context()
    trial_id = ctx.get_trial_id()
    params = {k: config[k] for k in spec["keys"]}
    pre_cfg = _with_params(spec["pretrain"], params)
    storage = spec["trial_storage"]
    tracking.configure(pre_cfg.run.runs_dir)
    experiment = spec["experiment"]
    previous = _find_run(experiment, **{SWEEP_TAG: spec["sweep"], TRIAL_TAG: trial_id})
    tags = {SWEEP_TAG: spec["sweep"], TRIAL_TAG: trial_id, ROLE_TAG: "trial",
            "mixhic.tune.trial_name": ctx.get_trial_name()}
    with tracking.start_run(experiment, run_name=f"{spec['name']}-{trial_id}", tags=tags,
                            parent_run_id=spec["parent_run_id"], run_id=previous) as run_id:
        if previous is None:
            mlflow.log_params({PARAM_PATHS[k]: v for k, v in params.items()})
        else:  # restarted after an interruption: close the runs the killed attempt left open
            log.info("trial %s restarted: MLflow run %s re-opened", trial_id, run_id)
            _close_children(run_id, keep_pretrain=True)
        pre = pretrain(pre_cfg, storage_path=storage, run_name=f"{trial_id}-pretrain",
                       parent_run_id=run_id)
        pre_last = pre.history[-1] if pre.history else {}
        extra = {RUN_ID_KEY: run_id, **{f"pretrain_{k}": float(v) for k, v in pre_last.items()
                                        if k.startswith("val_") and isinstance(v, (int, float))}}
        ft_cfg = build(FinetuneConfig, {**spec["finetune"], "pretrained": pre.model_dir})
        # a fresh fine-tuning run per attempt: Tune counts epochs from 1 again on a restart,
        # so a resumed fine-tuning would report to ASHA at the wrong rungs
        ft = finetune(ft_cfg, storage_path=storage,
                      run_name=f"{trial_id}-finetune-{time.strftime('%Y%m%d-%H%M%S')}",
                      parent_run_id=run_id, callbacks=[_ReportToTune(extra)])
        from mixhic.platform.tracking import log_metrics

        log_metrics({**{k: v for k, v in ft.metrics.items()}, **{k: v for k, v in extra.items()
                                                                   if k != RUN_ID_KEY}})


# --------------------------------------------------------------------------- driver
def _named(fn, name: str):
    """Tune names trials and their directories after the trainable's ``__name__``."""
    fn.__name__ = name
    return fn


class _InterruptAfter(TuneCallback):
    """Test hook: interrupt the sweep (as Ctrl+C does) once ``n`` trials have finished;
    fires once per sweep directory (a marker file), so the resumed sweep runs through."""

    def __init__(self, n: int, marker: str) -> None:
        self.n, self.marker, self.done = n, marker, 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        if self.done >= self.n and not os.path.exists(self.marker):
            Path(self.marker).parent.mkdir(parents=True, exist_ok=True)
            Path(self.marker).write_text("interrupted\n")
            log.warning("run.interrupt_after_trials=%d: interrupting the sweep", self.n)
            os.kill(os.getpid(), signal.SIGUSR1)


class _ResumableASHA(ASHAScheduler):
    """ASHA whose rungs survive ``Tuner.restore``: Tune saves the searcher's state but not
    the scheduler's, so the finished trials' results (their ``result.json``) are replayed
    into the rungs when a restored sweep re-adds them; later trials are then cut against
    the same records as before the interruption.

    A trial that reaches ``max_t`` is left to end by itself (its fine-tuning has max_t
    epochs, see :func:`plan_sweep`): ASHA stops it there (``stop_last_trials``, or the
    rung at max_t), which killed it right after its last report, before its test
    evaluation, its final metrics and the end of its MLflow runs (left RUNNING)."""

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get(self._time_attr, 0) >= self._max_t:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_add(self, tune_controller, trial) -> None:
        super().on_trial_add(tune_controller, trial)
        if trial.status != "TERMINATED":
            return
        bracket = self._trial_info[trial.trial_id]
        path = Path(trial.local_path or "") / "result.json"
        if not path.is_file():
            return
        for line in path.read_text().splitlines():
            try:
                result = json.loads(line)
            except ValueError:
                continue
            if self._time_attr in result and self._metric in result:
                bracket.on_result(trial, result[self._time_attr],
                                  self._metric_op * result[self._metric])


def _expected_trials(cfg: TuneConfig) -> int:
    """Trials the search will create: ``num_samples`` x the grid (random/grid search)."""
    n = cfg.search.num_samples
    if cfg.search.algorithm in ("random", "grid"):
        for spec in cfg.search_space.items().values():
            if spec.is_grid:
                n *= len(spec.values)
    return n


def _saved_trials(results):
    """The trials as Tune last saved them, with their per-result frames.

    Why not ``results``' own Trial objects: on an interruption (Ctrl+C, SIGUSR1) Tune
    saves the experiment state, then its cleanup stops the trials still running (or
    whose actor is starting) and sets them TERMINATED in memory, and the ResultGrid is
    built from those objects. A trial killed before its first report then looks
    finished, with no result and maybe no MLflow run yet. The saved state keeps it
    RUNNING/PENDING, which is what ``Tuner.restore`` resumes from."""
    from ray.tune import ExperimentAnalysis

    live = results._experiment_analysis
    try:
        saved = ExperimentAnalysis(live.experiment_path, storage_filesystem=live._fs)
    except (OSError, ValueError) as exc:  # no state file: fall back to Tune's in-memory view
        log.warning("could not read the saved sweep state (%s): trial statuses from memory", exc)
        return live.trials, live.trial_dataframes
    return saved.trials, saved.trial_dataframes


def _trial_row(trial, frame, plan: SweepPlan) -> dict[str, Any]:
    """One row of the trial table from a Tune Trial and its results frame (or None).

    A trial Tune lists TERMINATED that never reported the metric gets status
    ``NO_RESULT`` and a note: it is kept in the table, left out of the best-trial choice."""
    import numpy as np

    sign = 1.0 if plan.cfg.metric_mode == "max" else -1.0
    status = trial.status
    last = trial.last_result or {}
    values = []
    if frame is not None and plan.metric in frame:
        values = [float(v) for v in frame[plan.metric] if v is not None and np.isfinite(v)]
    iters = int(last.get("training_iteration", 0) or 0)
    error = None
    if status == "ERROR":
        error = str(trial.get_error())[:500]
    elif status == "TERMINATED" and not values:
        status = "NO_RESULT"
        error = (f"ended without reporting {plan.metric} ({iters} results); left out of the "
                 f"best-trial choice, see {trial.local_path or trial.path}")
    return {
        "trial_id": trial.trial_id, "status": status, "iterations": iters,
        "metric": max(values, key=lambda v: sign * v) if values else float("nan"),
        "last_metric": values[-1] if values else float("nan"),
        "early_stopped": status == "TERMINATED" and 0 < iters < plan.max_t,
        "mlflow_run_id": last.get(RUN_ID_KEY),
        "error": error,
        **{k: trial.config.get(k) for k in plan.cfg.search_space.items()},
    }


def _trial_rows(trials, frames, plan: SweepPlan) -> tuple[list[dict[str, Any]], bool]:
    """One row per trial, and whether the sweep is unfinished (interrupted: a trial
    neither done nor failed, or fewer trials than the search creates). ``trials``,
    ``frames``: from :func:`_saved_trials`."""
    rows = sorted((_trial_row(t, frames.get(t.trial_id), plan) for t in trials),
                  key=lambda r: r["trial_id"])
    unfinished = any(r["status"] not in ("TERMINATED", "NO_RESULT", "ERROR") for r in rows)
    if len(rows) < _expected_trials(plan.cfg):
        unfinished = True
    for r in rows:
        if r["status"] == "NO_RESULT":
            log.warning("trial %s: %s", r["trial_id"], r["error"])
    return rows, unfinished


def _best_row(rows: list[dict[str, Any]], mode: str) -> dict[str, Any] | None:
    """The best of the trials that reported a finite metric (None: none did)."""
    sign = 1.0 if mode == "max" else -1.0
    scored = [r for r in rows if math.isfinite(r["metric"])]
    return max(scored, key=lambda r: sign * r["metric"]) if scored else None


def _write_best(plan: SweepPlan, params: dict[str, Any], path: str) -> str:
    """The base pretraining config with the best weights, as YAML loadable by
    ``load_config(path, PretrainConfig)``."""
    best = _with_params(to_dict(plan.pretrain_base), params)
    raw = to_dict(dataclasses.replace(best, run=dataclasses.replace(best.run, run_name=None)))
    header = (f"# Best pretraining weights of Ray Tune sweep {plan.cfg.run.name} "
              f"({plan.metric} on task {plan.cfg.task}).\n"
              f"# mixhic pretrain {Path(path).name}\n")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(header + yaml.safe_dump(raw, sort_keys=False))
    return path


def tune(cfg: TuneConfig) -> TuneResult:
    """Run (or resume) the sweep; returns the trial table and the best weights."""
    import mlflow
    from mixhic.core.runtime import ensure_ray
    from mixhic.platform import tracking
    from mixhic.platform.plots import weights_vs_metric_figure
    from ray import tune as rt
    from ray.tune.schedulers import FIFOScheduler

    plan = plan_sweep(cfg)  # every config error surfaces here, before Ray starts
    ensure_ray()
    _check_capacity(plan)
    exp_dir = plan.exp_dir
    restoring = rt.Tuner.can_restore(exp_dir)
    if restoring and not cfg.run.resume:
        raise MixHicError(f"run.name: sweep {exp_dir} exists; set run.resume=true to resume "
                          "it, or choose another run.name")
    runs_dir = plan.trial_pretrain["run"]["runs_dir"]
    tracking_uri = tracking.configure(runs_dir)
    previous = _find_run(cfg.run.experiment, **{SWEEP_TAG: exp_dir, ROLE_TAG: "parent"}) \
        if restoring else None
    tags = {SWEEP_TAG: exp_dir, ROLE_TAG: "parent", "mixhic.tune.task": cfg.task,
            "mixhic.tune.metric": plan.metric}
    with tracking.start_run(cfg.run.experiment, run_name=cfg.run.name, tags=tags,
                            run_id=previous) as parent_id:
        if previous is None:
            tracking.log_params_flat(to_dict(cfg))
            tracking.log_config(cfg, "tune_config.yaml")
        spec = {
            "keys": list(cfg.search_space.items()), "pretrain": plan.trial_pretrain,
            "finetune": plan.finetune, "trial_storage": f"{exp_dir}/trials",
            "tracking_uri": tracking_uri, "experiment": cfg.run.experiment,
            "parent_run_id": parent_id, "sweep": exp_dir, "name": cfg.run.name,
        }
        trainable = rt.with_resources(_named(functools.partial(_trial, spec=spec), "mixhic_trial"),
                                      {"cpu": cfg.resources.cpu, "gpu": cfg.resources.gpu})
        if restoring:
            log.info("resuming sweep %s (finished trials are kept)", exp_dir)
            tuner = rt.Tuner.restore(exp_dir, trainable=trainable, resume_unfinished=True,
                                     restart_errored=True)
        else:
            tuner = _new_tuner(plan, trainable, _ResumableASHA, FIFOScheduler)
        results = tuner.fit()
        rows, unfinished = _trial_rows(*_saved_trials(results), plan)
        out = TuneResult(name=cfg.run.name, path=exp_dir, parent_run_id=parent_id,
                         metric=plan.metric, mode=cfg.metric_mode, trials=rows,
                         interrupted=unfinished, restored=restoring)
        for r in rows:
            if r["mlflow_run_id"] is None:  # killed or failed before its first report
                r["mlflow_run_id"] = _find_run(cfg.run.experiment,
                                               **{SWEEP_TAG: exp_dir, TRIAL_TAG: r["trial_id"]})
            if r["early_stopped"] and r["mlflow_run_id"]:
                _mark_stopped(r["mlflow_run_id"], r["iterations"])
            elif r["status"] in ("RUNNING", "PENDING", "PAUSED") and r["mlflow_run_id"]:
                _close_run(r["mlflow_run_id"])  # killed by the interruption; re-opened on resume
        mlflow.log_dict({"metric": plan.metric, "trials": rows}, "tune/trials.json")
        if unfinished:
            log.warning("sweep %s interrupted: re-run the same command to resume it", exp_dir)
            return out
        _finish(out, plan, rows, weights_vs_metric_figure)
    return out


def _new_tuner(plan: SweepPlan, trainable, asha_cls, fifo_cls):
    from ray import tune as rt

    cfg = plan.cfg
    if cfg.scheduler.type == "asha":
        scheduler = asha_cls(time_attr="training_iteration", max_t=plan.max_t,
                             grace_period=cfg.scheduler.grace_period,
                             reduction_factor=cfg.scheduler.reduction_factor)
    else:
        scheduler = fifo_cls()
    callbacks = []
    if cfg.run.interrupt_after_trials:
        callbacks.append(_InterruptAfter(cfg.run.interrupt_after_trials,
                                         f"{plan.exp_dir}/.interrupt-hook-fired"))
    param_space = {k: _domain(s) for k, s in cfg.search_space.items().items()}
    return rt.Tuner(
        trainable,
        param_space=param_space,
        tune_config=rt.TuneConfig(
            metric=plan.metric, mode=cfg.metric_mode, search_alg=_search_alg(cfg),
            scheduler=scheduler, num_samples=cfg.search.num_samples,
            # the variant generator limits itself (see _search_alg); Searchers get wrapped
            max_concurrent_trials=(cfg.search.max_concurrent_trials
                                   if cfg.search.algorithm in ("optuna", "hyperopt") else None),
            time_budget_s=cfg.run.time_budget_s,
        ),
        run_config=rt.RunConfig(
            name=cfg.run.name, storage_path=os.path.dirname(plan.exp_dir),
            failure_config=rt.FailureConfig(max_failures=cfg.run.max_failures),
            callbacks=callbacks or None, verbose=1,
        ),
    )


def _finish(out: TuneResult, plan: SweepPlan, rows, figure_fn) -> None:
    """Best trial -> best-pretrain.yaml + params/metrics + plot, in the parent run."""
    import mlflow
    from mixhic.platform import tracking

    cfg = plan.cfg
    best = _best_row(rows, cfg.metric_mode)
    if best is None:
        raise MixHicError(f"sweep {plan.exp_dir}: no trial reported {plan.metric} "
                          f"(errors: {[r['error'] for r in rows if r['error']][:2]})")
    scored = [r for r in rows if math.isfinite(r["metric"])]
    keys = list(cfg.search_space.items())
    out.best_params = {k: best[k] for k in keys}
    out.best_metric = best["metric"]
    out.best_trial_id = best["trial_id"]
    path = cfg.best_config or (f"{plan.exp_dir}/best-pretrain.yaml" if "://" not in plan.exp_dir
                               else f"{plan.trial_pretrain['run']['runs_dir']}/tune/"
                                    f"{cfg.run.name}/best-pretrain.yaml")
    out.best_config = _write_best(plan, out.best_params, path)
    mlflow.log_artifact(out.best_config, "tune")
    mlflow.log_params({f"best.{PARAM_PATHS[k]}": v for k, v in out.best_params.items()})
    mlflow.set_tag("mixhic.tune.best_trial", best["trial_id"])
    tracking.log_metrics({f"best_{plan.metric}": best["metric"],
                          "trials": len(rows),
                          "trials_early_stopped": sum(r["early_stopped"] for r in rows)})
    fig = figure_fn(scored, keys, "metric")
    fig.axes[0].figure.suptitle(f"{plan.metric} ({cfg.task}) vs swept weights, "
                                f"{len(scored)} trials", fontsize=10)
    tracking.log_figure(fig, "plots/weights_vs_metric.png")
    log.info("best trial %s: %s = %.4f with %s; config %s", best["trial_id"], plan.metric,
             best["metric"], out.best_params, out.best_config)


def format_table(result: TuneResult) -> str:
    """The trial table as text (one line per trial)."""
    keys = [k for k in PARAM_PATHS if result.trials and k in result.trials[0]]
    head = f"{'trial':<14}{'status':<11}{'ep':>3} " + "".join(f"{k:>9}" for k in keys) + \
        f"  {result.metric}"
    lines = [head]
    for r in result.trials:
        vals = "".join(f"{r[k]:>9.4g}" if isinstance(r[k], (int, float)) else f"{'-':>9}"
                       for k in keys)
        flag = " (stopped)" if r["early_stopped"] else ""
        if r.get("error"):
            flag += f" ({r['error'].splitlines()[0][:120]})"
        lines.append(f"{r['trial_id']:<14}{r['status']:<11}{r['iterations']:>3} {vals}  "
                     f"{r['metric']:.4f}{flag}")
    return "\n".join(lines)


def cli_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mixhic tune",
        description="Ray Tune search over the pretraining loss weights (objective: a "
                    "downstream validation metric).",
    )
    parser.add_argument("config", help="YAML file or shipped config name (tune-demo, tune-paper)")
    parser.add_argument("overrides", nargs="*",
                        help="key=value overrides, e.g. search.num_samples=8 task=loops")
    ns = parser.parse_args(argv)
    cfg = load_config(ns.config, TuneConfig, ns.overrides)
    result = tune(cfg)
    log.info("trials:\n%s", format_table(result))
    if result.interrupted:
        log.warning("interrupted: re-run to resume %s", result.path)
        return 1
    log.info("best %s = %.4f: %s -> %s", result.metric, result.best_metric, result.best_params,
             result.best_config)
    return 0

