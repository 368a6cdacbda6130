"""``mixhic pretrain CONFIG [key=value ...]``: pre-train MIX-HIC with Ray Train.

    >>> cfg = load_config("demo-pretrain", PretrainConfig, ["data.data_dir=runs/demo/data"])
    >>> result = pretrain(cfg)          # TrainResult: model_dir, MLflow run id, history

Streams the ``pretrain`` dataset (Hi-C + epi windows) through Ray Data into DDP workers;
loss = contrastive only for ``loss.contrastive_warmup_epochs`` epochs, then
``con * L_con + orth * L_orth + map * L_map``. Checkpoints every epoch under
``run.storage_path/run.run_name``; re-running the same run name resumes. The final model
directory is ``<storage>/<run>/model`` and is logged to MLflow as the artifact ``model``
(``runs:/<run_id>/model`` works wherever a model dir is expected).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from mixhic.core.cliargs import ConfigCommand
from mixhic.core.errors import MixHicError
from mixhic.models import get_preset
from mixhic.platform import data as data_mod
from mixhic.platform.train_config import ModelConfig, PretrainConfig
from mixhic.platform.trainer import TrainResult, fit

__all__ = ["pretrain", "model_config_for", "cli_main"]

log = logging.getLogger(__name__)


def model_config_for(model: ModelConfig, geometry: data_mod.DataGeometry):
    """The MixHicConfig of ``model.preset`` + overrides at the dataset's geometry."""
    try:
        return get_preset(model.preset, window_bins=geometry.window_bins,
                          epi_bins=geometry.epi_bins, n_tracks=geometry.n_tracks,
                          **model.overrides)
    except (ValueError, TypeError) as exc:
        raise MixHicError(f"model: {exc}") from None


def pretrain(
    cfg: PretrainConfig,
    *,
    storage_path: str | None = None,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Pre-train on ``cfg.data.data_dir``'s ``pretrain`` dataset; returns the run's result.

    storage_path / run_name override ``cfg.run`` (Ray Tune passes its trial's);
    parent_run_id nests the MLflow run; callbacks are extra Ray Train ``UserCallback``s.
    """
    import mlflow

    geometry = data_mod.read_geometry(cfg.data.data_dir, "pretrain")
    mcfg = model_config_for(cfg.model, geometry)
    meta = {
        "kind": "pretrain", "task": None, "mode": None,
        "model_config": dataclasses.asdict(mcfg), "preset": cfg.model.preset,
        "data": data_mod.data_meta(cfg.data.data_dir, "pretrain"),
        "run_id": None, "epoch": -1, "metrics": {},
    }

    def after_fit(result: TrainResult, local_dir: str) -> None:
        mlflow.log_artifacts(local_dir, "model")

    result = fit(
        "pretrain", cfg, meta, dataset="pretrain", columns=["hic", "epi"],
        # val: the key columns too, so that overlapping windows can be told apart
        val_columns=["hic", "epi", "chrom", "x_start", "y_start", "resolution"],
        storage_path=storage_path, run_name=run_name,
        parent_run_id=parent_run_id, callbacks=callbacks, after_fit=after_fit,
        tags={"mixhic.preset": cfg.model.preset},
    )
    log.info("pretraining %s done: %d epochs, model dir %s, MLflow run %s",
             result.run_name, len(result.history), result.model_dir, result.run_id)
    return result


CLI = ConfigCommand(
    "mixhic pretrain",
    "Pre-train MIX-HIC with Ray Train (DDP) on a prepared dataset.",
    config_class=PretrainConfig, default_config="demo-pretrain",
    config_help="shipped config name (demo-pretrain, paper-pretrain) or YAML path",
    keys_help="e.g. mixhic pretrain demo-pretrain data.data_dir=runs/data train.epochs=3",
)


config_from_args = CLI.config_from_args  # the PretrainConfig ``ARGS`` run with


def cli_main(argv: list[str]) -> int:
    cfg = config_from_args(argv)
    result = pretrain(cfg)
    log.info("model dir: %s", result.model_dir)
    return 0
