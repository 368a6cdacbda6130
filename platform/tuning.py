"""``mixhic tune CONFIG [key=value ...]``: Ray Tune search over the pretraining loss weights.

    >>> cfg = load_config("tune-demo", TuneConfig, ["data_dir=runs/demo/data"])
    >>> res = tune(cfg)      # TuneResult: best_params, best_config (YAML), trials, parent run

The objective is a downstream validation metric, not the pretraining loss (whose scale
moves with the weights). One trial (a Tune function trainable, :mod:`.tune_trial`)
pretrains briefly with the sampled weights, fine-tunes on ``task`` from that model and
reports every fine-tuning epoch to Tune, so ASHA can stop it after any epoch (one rung
step = one epoch).

Ray Train V2's ``TorchTrainer`` cannot be handed to ``Tuner``: the trainable calls the
recipes, which call ``TorchTrainer.fit()``. Tune reserves ``resources`` for the trial's
driver only; the Train workers are placed from the recipes' ``scaling`` sections.

MLflow (:mod:`.tune_tracking`): the driver opens one parent run for the sweep before any
trial starts; each trial opens a child run (tag ``mlflow.parentRunId``) under which its
pretrain and finetune runs nest. Trials ASHA stopped are marked KILLED with the tag
``mixhic.tune.early_stopped``. At the end the parent gets the trial table, a
weights-vs-metric plot and the best weights as a ready-to-use pretraining config
(``best-pretrain.yaml``).

Resume: re-running a sweep whose directory ``run.storage_path/run.name`` exists (with
``run.resume: true``) restores it with ``Tuner.restore``: finished trials are kept, the
unfinished ones restart (their pretraining resumes from its Ray Train checkpoint), and
ASHA's rungs are rebuilt from the finished ones (:mod:`.tune_scheduler`). The trial
table reads the statuses Tune saved, not its in-memory ones (see
:func:`.tune_results.saved_trials`): a trial cut off by the interruption is unfinished,
never "done without a result". A trial that ends without reporting the metric is listed
as ``NO_RESULT`` and the best trial is chosen among those that reported.

This module runs the sweep; its parts live in ``tune_search`` (plan, search space),
``tune_trial`` (one trial), ``tune_scheduler`` (ASHA, interrupt hook), ``tune_tracking``
(MLflow tags and runs) and ``tune_results`` (trial table, best config).
"""

from __future__ import annotations

import functools
import logging
import math
import os

from mixhic.core.cliargs import ConfigCommand
from mixhic.core.config import to_dict
from mixhic.core.errors import MixHicError
from mixhic.core.runtime import ensure_ray
from mixhic.platform import tracking
from mixhic.platform.tune_config import PARAM_PATHS, TuneConfig
from mixhic.platform.tune_results import (
    TuneResult,
    best_row,
    format_table,
    saved_trials,
    trial_rows,
    write_best,
)
from mixhic.platform.tune_scheduler import InterruptAfter, ResumableASHA
from mixhic.platform.tune_search import SweepPlan, check_capacity, domain, plan_sweep, search_alg
from mixhic.platform.tune_tracking import (
    ROLE_TAG,
    SWEEP_TAG,
    TRIAL_TAG,
    close_run,
    find_run,
    mark_stopped,
)
from mixhic.platform.tune_trial import run_trial

__all__ = ["TuneResult", "SweepPlan", "plan_sweep", "tune", "cli_main"]

log = logging.getLogger(__name__)


def tune(cfg: TuneConfig) -> TuneResult:
    """Run (or resume) the sweep; returns the trial table and the best weights."""
    import mlflow

    # lazy: pulls matplotlib (+0.4 s) into mixhic tune --help
    from mixhic.platform.plots import weights_vs_metric_figure
    from ray import tune as rt
    from ray.tune.schedulers import FIFOScheduler

    plan = plan_sweep(cfg)  # every config error surfaces here, before Ray starts
    ensure_ray()
    check_capacity(plan)
    exp_dir = plan.exp_dir
    restoring = rt.Tuner.can_restore(exp_dir)
    if restoring and not cfg.run.resume:
        raise MixHicError(f"run.name: sweep {exp_dir} exists; set run.resume=true to resume "
                          "it, or choose another run.name")
    runs_dir = plan.trial_pretrain["run"]["runs_dir"]
    tracking_uri = tracking.configure(runs_dir)
    previous = find_run(cfg.run.experiment, **{SWEEP_TAG: exp_dir, ROLE_TAG: "parent"}) \
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
        trainable = rt.with_resources(_named(functools.partial(run_trial, spec=spec),
                                             "mixhic_trial"),
                                      {"cpu": cfg.resources.cpu, "gpu": cfg.resources.gpu})
        if restoring:
            log.info("resuming sweep %s (finished trials are kept)", exp_dir)
            tuner = rt.Tuner.restore(exp_dir, trainable=trainable, resume_unfinished=True,
                                     restart_errored=True)
        else:
            tuner = _new_tuner(plan, trainable, ResumableASHA, FIFOScheduler)
        results = tuner.fit()
        rows, unfinished = trial_rows(saved_trials(results), plan)
        out = TuneResult(name=cfg.run.name, path=exp_dir, parent_run_id=parent_id,
                         metric=plan.metric, mode=cfg.metric_mode, trials=rows,
                         interrupted=unfinished, restored=restoring)
        for r in rows:
            if r["mlflow_run_id"] is None:  # killed or failed before its first report
                r["mlflow_run_id"] = find_run(cfg.run.experiment,
                                              **{SWEEP_TAG: exp_dir, TRIAL_TAG: r["trial_id"]})
            if r["early_stopped"] and r["mlflow_run_id"]:
                mark_stopped(r["mlflow_run_id"], r["iterations"])
            elif r["status"] in ("RUNNING", "PENDING", "PAUSED") and r["mlflow_run_id"]:
                close_run(r["mlflow_run_id"])  # killed by the interruption; re-opened on resume
        mlflow.log_dict({"metric": plan.metric, "trials": rows}, "tune/trials.json")
        if unfinished:
            log.warning("sweep %s interrupted: re-run the same command to resume it", exp_dir)
            return out
        _finish(out, plan, rows, weights_vs_metric_figure)
    return out


def _named(fn, name: str):
    """Tune names trials and their directories after the trainable's ``__name__``."""
    fn.__name__ = name
    return fn


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
        callbacks.append(InterruptAfter(cfg.run.interrupt_after_trials,
                                        f"{plan.exp_dir}/.interrupt-hook-fired"))
    param_space = {k: domain(s) for k, s in cfg.search_space.items().items()}
    return rt.Tuner(
        trainable,
        param_space=param_space,
        tune_config=rt.TuneConfig(
            metric=plan.metric, mode=cfg.metric_mode, search_alg=search_alg(cfg),
            scheduler=scheduler, num_samples=cfg.search.num_samples,
            # the variant generator limits itself (see search_alg); Searchers get wrapped
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

    cfg = plan.cfg
    best = best_row(rows, cfg.metric_mode)
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
    out.best_config = write_best(plan, out.best_params, path)
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


CLI = ConfigCommand(
    "mixhic tune",
    "Ray Tune search over the pretraining loss weights (objective: a downstream validation "
    "metric).",
    config_class=TuneConfig, default_config="tune-demo",
    config_help="shipped config name (tune-demo, tune-paper) or YAML path",
    keys_help="e.g. mixhic tune tune-demo search.num_samples=8 task=loops",
)


config_from_args = CLI.config_from_args  # the TuneConfig ``ARGS`` run with


def cli_main(argv: list[str]) -> int:
    cfg = config_from_args(argv)
    result = tune(cfg)
    log.info("trials:\n%s", format_table(result))
    if result.interrupted:
        log.warning("interrupted: re-run to resume %s", result.path)
        return 1
    log.info("best %s = %.4f: %s -> %s", result.metric, result.best_metric, result.best_params,
             result.best_config)
    return 0
