"""What a sweep produced: the trial table, read from the state Tune saved, and the best
weights as a pretraining config.

The table reads the statuses Tune saved, not its in-memory ones (see
:func:`saved_trials`): a trial cut off by an interruption is unfinished, never "done
without a result". A trial that ends without reporting the metric is listed as
``NO_RESULT`` and the best trial is chosen among those that reported.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from mixhic.core.config import to_dict
from mixhic.platform.tune_config import PARAM_PATHS
from mixhic.platform.tune_search import SweepPlan, expected_trials, with_params
from mixhic.platform.tune_tracking import RUN_ID_KEY

__all__ = ["TuneResult", "TrialState", "saved_trials", "trial_rows", "best_row", "write_best",
           "format_table"]

log = logging.getLogger(__name__)


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
class TrialState:
    """One trial as the table needs it. ``last_result``: its last reported result ({}:
    none); ``frame``: a pandas DataFrame of every result it reported, or None;
    ``error``: the error text of a failed trial."""

    trial_id: str
    status: str
    config: dict[str, Any]
    last_result: dict[str, Any]
    path: str | None
    error: str | None = None
    frame: Any = None

    @classmethod
    def of_trial(cls, trial, frame) -> TrialState:
        """From a Tune ``Trial`` (as :class:`ray.tune.ExperimentAnalysis` loads it)."""
        error = str(trial.get_error()) if trial.status == "ERROR" else None
        return cls(trial.trial_id, trial.status, trial.config, trial.last_result or {},
                   trial.local_path or trial.path, error, frame)

    @classmethod
    def of_result(cls, result) -> TrialState:
        """From a :class:`ray.tune.Result` of a ``ResultGrid`` (Tune's in-memory view,
        where every trial has ended: TERMINATED, or ERROR with ``result.error``)."""
        metrics = result.metrics or {}
        return cls(metrics.get("trial_id"), "ERROR" if result.error else "TERMINATED",
                   result.config or {}, metrics, result.path,
                   str(result.error) if result.error else None, result.metrics_dataframe)


def saved_trials(results) -> list[TrialState]:
    """The trials of a ``ResultGrid`` as Tune last saved them, with their per-result frames.

    Why not ``results``' own Results: on an interruption (Ctrl+C, SIGUSR1) Tune saves
    the experiment state, then its cleanup stops the trials still running (or whose
    actor is starting) and sets them TERMINATED in memory, and the ResultGrid is built
    from those objects. A trial killed before its first report then looks finished, with
    no result and maybe no MLflow run yet. The saved state keeps it RUNNING/PENDING,
    which is what ``Tuner.restore`` resumes from."""
    from ray.tune import ExperimentAnalysis

    try:
        saved = ExperimentAnalysis(results.experiment_path, storage_filesystem=results.filesystem)
    except (OSError, ValueError) as exc:  # no state file: fall back to Tune's in-memory view
        log.warning("could not read the saved sweep state (%s): trial statuses from memory", exc)
        return [TrialState.of_result(r) for r in results]
    frames = saved.trial_dataframes
    return [TrialState.of_trial(t, frames.get(t.trial_id)) for t in saved.trials]


def _trial_row(trial: TrialState, plan: SweepPlan) -> dict[str, Any]:
    """One row of the trial table.

    A trial Tune lists TERMINATED that never reported the metric gets status
    ``NO_RESULT`` and a note: it is kept in the table, left out of the best-trial choice."""
    import numpy as np

    sign = 1.0 if plan.cfg.metric_mode == "max" else -1.0
    status = trial.status
    last = trial.last_result
    frame = trial.frame
    values = []
    if frame is not None and plan.metric in frame:
        values = [float(v) for v in frame[plan.metric] if v is not None and np.isfinite(v)]
    iters = int(last.get("training_iteration", 0) or 0)
    error = None
    if status == "ERROR":
        error = str(trial.error)[:500]
    elif status == "TERMINATED" and not values:
        status = "NO_RESULT"
        error = (f"ended without reporting {plan.metric} ({iters} results); left out of the "
                 f"best-trial choice, see {trial.path}")
    return {
        "trial_id": trial.trial_id, "status": status, "iterations": iters,
        "metric": max(values, key=lambda v: sign * v) if values else float("nan"),
        "last_metric": values[-1] if values else float("nan"),
        "early_stopped": status == "TERMINATED" and 0 < iters < plan.max_t,
        "mlflow_run_id": last.get(RUN_ID_KEY),
        "error": error,
        **{k: trial.config.get(k) for k in plan.cfg.search_space.items()},
    }


def trial_rows(trials: list[TrialState], plan: SweepPlan) -> tuple[list[dict[str, Any]], bool]:
    """One row per trial, and whether the sweep is unfinished (interrupted: a trial
    neither done nor failed, or fewer trials than the search creates). ``trials``: from
    :func:`saved_trials`."""
    rows = sorted((_trial_row(t, plan) for t in trials), key=lambda r: r["trial_id"])
    unfinished = any(r["status"] not in ("TERMINATED", "NO_RESULT", "ERROR") for r in rows)
    if len(rows) < expected_trials(plan.cfg):
        unfinished = True
    for r in rows:
        if r["status"] == "NO_RESULT":
            log.warning("trial %s: %s", r["trial_id"], r["error"])
    return rows, unfinished


def best_row(rows: list[dict[str, Any]], mode: str) -> dict[str, Any] | None:
    """The best of the trials that reported a finite metric (None: none did)."""
    sign = 1.0 if mode == "max" else -1.0
    scored = [r for r in rows if math.isfinite(r["metric"])]
    return max(scored, key=lambda r: sign * r["metric"]) if scored else None


def write_best(plan: SweepPlan, params: dict[str, Any], path: str) -> str:
    """The base pretraining config with the best weights, as YAML loadable by
    ``load_config(path, PretrainConfig)``."""
    best = with_params(to_dict(plan.pretrain_base), params)
    raw = to_dict(dataclasses.replace(best, run=dataclasses.replace(best.run, run_name=None)))
    header = (f"# Best pretraining weights of Ray Tune sweep {plan.cfg.run.name} "
              f"({plan.metric} on task {plan.cfg.task}).\n"
              f"# mixhic pretrain {Path(path).name}\n")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(header + yaml.safe_dump(raw, sort_keys=False))
    return path


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
