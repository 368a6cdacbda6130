"""The sweep's MLflow bookkeeping: the tags that find its runs again, and closing the runs
a killed trial left open.

One parent run per sweep (tags ``SWEEP_TAG`` = the sweep directory, ``ROLE_TAG`` =
``parent``); one child run per trial (``ROLE_TAG`` = ``trial``, ``TRIAL_TAG`` = its Tune
trial id), under which the trial's pretrain and finetune runs nest. A resumed sweep and a
restarted trial find their runs by these tags and re-open them.
"""

from __future__ import annotations

from mixhic.platform.tracking import get_or_create_experiment

__all__ = ["SWEEP_TAG", "TRIAL_TAG", "ROLE_TAG", "STOPPED_TAG", "RUN_ID_KEY", "find_run",
           "close_children", "close_run", "mark_stopped"]

SWEEP_TAG = "mixhic.tune.sweep"          # on the parent and every trial run: the sweep dir
TRIAL_TAG = "mixhic.tune.trial_id"
ROLE_TAG = "mixhic.tune.role"            # parent | trial
STOPPED_TAG = "mixhic.tune.early_stopped"
RUN_ID_KEY = "mlflow_trial_run_id"       # added to every result a trial reports


def find_run(experiment: str, **tags: str) -> str | None:
    """The newest run of ``experiment`` carrying every tag, or None."""
    import mlflow

    exp_id = get_or_create_experiment(experiment)
    filt = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    runs = mlflow.MlflowClient().search_runs([exp_id], filter_string=filt, max_results=1,
                                             order_by=["attributes.start_time DESC"])
    return runs[0].info.run_id if runs else None


def close_children(run_id: str, keep_pretrain: bool = False) -> None:
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


def close_run(run_id: str) -> None:
    """Set a trial's MLflow run and its RUNNING children to KILLED (its process is gone)."""
    import mlflow

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    children = client.search_runs([run.info.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'")
    for r in [run, *children]:
        if r.info.status == "RUNNING":
            client.set_terminated(r.info.run_id, "KILLED")


def mark_stopped(run_id: str, iterations: int) -> None:
    """An ASHA-stopped trial's process was killed mid-run: tag and close its MLflow runs."""
    import mlflow

    client = mlflow.MlflowClient()
    client.set_tag(run_id, STOPPED_TAG, "true")
    client.set_tag(run_id, "mixhic.tune.epochs_run", str(iterations))
    close_run(run_id)
