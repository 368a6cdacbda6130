"""MIX-HIC in pure PyTorch: config + presets, pretraining and fine-tuning models, losses.

    cfg = get_preset("tiny", window_bins=50, epi_bins=2500, n_tracks=2)
    pm = PretrainModel(cfg); out = pm(hic, epi)          # hic (B,W,W), epi (B,C,2L)
    parts = pretrain_objective(out, pm, LossWeights())   # "loss", "con", "orth", "map"
    fm = FinetuneModel(cfg, task="loops", mode="bimodal")
    report = load_pretrained(fm, pm.state_dict())
    pred = fm(epi, hic); loss = fm.loss(pred, target)

Names load on first use (PEP 562), so ``mixhic.models.tasks`` (task and mode facts,
imported by configs and the CLI) does not import torch.
"""

from __future__ import annotations

from mixhic.core.lazy import lazy_exports

_EXPORTS = {
    "MixHicConfig": ".config",
    "get_preset": ".presets",
    "preset_names": ".presets",
    "PretrainModel": ".pretrain",
    "pretrain_objective": ".pretrain",
    "LossWeights": ".losses",
    "FinetuneModel": ".finetune",
    "TASKS": ".tasks",
    "MODES": ".tasks",
    "adamw": ".optim",
    "load_pretrained": ".loading",
    "LoadReport": ".loading",
    "parameter_counts": ".summary",
    "format_parameter_counts": ".summary",
    "info_nce": ".losses",
    "orthogonality_loss": ".losses",
    "mapping_loss": ".losses",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
