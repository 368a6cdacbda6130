"""MIX-HIC in pure PyTorch: config + presets, pretraining and fine-tuning models, losses.

    cfg = get_preset("tiny", window_bins=50, epi_bins=2500, n_tracks=2)
    pm = PretrainModel(cfg); out = pm(hic, epi)          # hic (B,W,W), epi (B,C,2L)
    parts = pretrain_objective(out, pm, LossWeights())   # "loss", "con", "orth", "map"
    fm = FinetuneModel(cfg, task="loops", mode="bimodal")
    report = load_pretrained(fm, pm.state_dict())
    pred = fm(epi, hic); loss = fm.loss(pred, target)
"""

from .config import MixHicConfig
from .finetune import MODES, TASKS, FinetuneModel
from .loading import LoadReport, load_pretrained
from .losses import LossWeights, info_nce, mapping_loss, orthogonality_loss
from .presets import get_preset, preset_names
from .pretrain import PretrainModel, pretrain_objective
from .summary import format_parameter_counts, parameter_counts

__all__ = [
    "MixHicConfig",
    "get_preset",
    "preset_names",
    "PretrainModel",
    "pretrain_objective",
    "LossWeights",
    "FinetuneModel",
    "TASKS",
    "MODES",
    "load_pretrained",
    "LoadReport",
    "parameter_counts",
    "format_parameter_counts",
    "info_nce",
    "orthogonality_loss",
    "mapping_loss",
]
