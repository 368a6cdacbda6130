"""Explicit loading of pretrained weights into a fine-tuning model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from .finetune import FinetuneModel
from .pretrain import PRETRAINED_PREFIXES

__all__ = ["LoadReport", "load_pretrained"]

_PRETRAIN_ONLY = ("temperature_raw",)


@dataclass
class LoadReport:
    """What ``load_pretrained`` did.

    loaded: fine-tuning keys copied from the checkpoint; skipped: checkpoint keys this
    mode does not use (e.g. the Hi-C encoder in ``infer``, the temperature); fresh:
    fine-tuning keys left at their initialisation (fusion block and head).
    """

    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"loaded {len(self.loaded)} tensors, skipped {len(self.skipped)} unused, "
                f"{len(self.fresh)} left at initialisation")


def _top(key: str) -> str:
    return key.split(".", 1)[0]


def load_pretrained(model: FinetuneModel, state_dict: Mapping[str, torch.Tensor]) -> LoadReport:
    """Copy pretrained encoder / interaction / mapping weights into ``model``.

    Raises ValueError when the checkpoint has keys a pretraining model cannot have, lacks
    a key this mode needs, or has a tensor of another shape (e.g. another preset), and
    when ``model`` is in ``nonpre`` mode (defined as not loading pretrained weights).
    """
    if not model.uses_pretrained:
        raise ValueError(f"mode {model.mode!r} trains from scratch and never loads pretrained "
                         "weights; use mode='bimodal'")
    allowed = set(PRETRAINED_PREFIXES) | set(_PRETRAIN_ONLY)
    foreign = sorted(k for k in state_dict if _top(k) not in allowed)
    if foreign:
        raise ValueError(f"state_dict is not a pretraining checkpoint: unexpected keys "
                         f"{foreign[:5]}{' ...' if len(foreign) > 5 else ''}")
    own = model.state_dict()
    wanted = [k for k in own if _top(k) in PRETRAINED_PREFIXES]
    missing = [k for k in wanted if k not in state_dict]
    if missing:
        raise ValueError(f"pretraining checkpoint lacks {len(missing)} keys needed by mode "
                         f"{model.mode!r}, e.g. {missing[:5]}")
    wrong = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
             for k in wanted if tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if wrong:
        raise ValueError(f"pretraining checkpoint shapes differ from the model (another "
                         f"preset or geometry?): {wrong[:5]}")
    with torch.no_grad():
        for k in wanted:
            own[k].copy_(state_dict[k])
    wanted_set = set(wanted)
    return LoadReport(
        loaded=wanted,
        skipped=sorted(k for k in state_dict if k not in wanted_set),
        fresh=[k for k in own if k not in wanted_set],
    )
