"""One trial of the sweep (a Tune function trainable): pretrain with the sampled weights,
then fine-tune, each fine-tuning epoch reported to Tune.

    sampled {con, orth, map[, lr, warmup_epochs]}
      -> pretrain(...)  Ray Train TorchTrainer.fit(), short (trial_pretrain_overrides)
      -> finetune(..., pretrained=that model) on ``task``, short (finetune_overrides)
         every fine-tuning epoch's metrics go Train -> Tune through a
         ``TuneReportCallback`` (Ray Train V2's UserCallback), so ASHA can stop the trial
         after any epoch (one rung step = one epoch).

The trial opens an MLflow run under the sweep's parent (re-opened when Tune restarts the
trial) under which its pretrain and finetune runs nest; see
:mod:`mixhic.platform.tune_tracking`.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from mixhic.core.config import build
from mixhic.platform import tracking
from mixhic.platform.train_config import FinetuneConfig
from mixhic.platform.tune_config import PARAM_PATHS
from mixhic.platform.tune_search import with_params
from mixhic.platform.tune_tracking import (
    ROLE_TAG,
    RUN_ID_KEY,
    SWEEP_TAG,
    TRIAL_TAG,
    close_children,
    find_run,
)
from ray.tune.integration.ray_train import TuneReportCallback

__all__ = ["run_trial"]

log = logging.getLogger(__name__)


class _ReportToTune(TuneReportCallback):
    """Ray Train V2 -> Tune, once per epoch (rank 0's metrics), plus ``extra`` fields.
    Built inside the trial (it needs the Tune session), run by the Train controller."""

    def __init__(self, extra: dict[str, Any]) -> None:
        super().__init__()
        self.extra = dict(extra)

    def after_report(self, run_context, metrics, checkpoint):
        metrics = [{**metrics[0], **self.extra}, *metrics[1:]]
        super().after_report(run_context, metrics, checkpoint)


def run_trial(config: dict[str, Any], *, spec: dict[str, Any]) -> None:
    """Tune function trainable: pretrain with the sampled weights, then fine-tune; Ray
    Train reports each fine-tuning epoch to Tune through the callback. ``spec``: what
    the driver fixed for every trial (recipes, MLflow parent run, storage)."""
    import mlflow

    # lazy: finetune and pretrain pull torch (+1.5 s) into mixhic tune --help
    from mixhic.platform.finetune import finetune
    from mixhic.platform.pretrain import pretrain
    from ray import tune as rt

    os.environ["MLFLOW_TRACKING_URI"] = spec["tracking_uri"]
    ctx = rt.get_context()
    trial_id = ctx.get_trial_id()
    params = {k: config[k] for k in spec["keys"]}
    pre_cfg = with_params(spec["pretrain"], params)
    storage = spec["trial_storage"]
    tracking.configure(pre_cfg.run.runs_dir)
    experiment = spec["experiment"]
    previous = find_run(experiment, **{SWEEP_TAG: spec["sweep"], TRIAL_TAG: trial_id})
    tags = {SWEEP_TAG: spec["sweep"], TRIAL_TAG: trial_id, ROLE_TAG: "trial",
            "mixhic.tune.trial_name": ctx.get_trial_name()}
    with tracking.start_run(experiment, run_name=f"{spec['name']}-{trial_id}", tags=tags,
                            parent_run_id=spec["parent_run_id"], run_id=previous) as run_id:
        if previous is None:
            mlflow.log_params({PARAM_PATHS[k]: v for k, v in params.items()})
        else:  # restarted after an interruption: close the runs the killed attempt left open
            log.info("trial %s restarted: MLflow run %s re-opened", trial_id, run_id)
            close_children(run_id, keep_pretrain=True)
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
        tracking.log_metrics({**{k: v for k, v in ft.metrics.items()},
                              **{k: v for k, v in extra.items() if k != RUN_ID_KEY}})
