"""The MIX-HIC pretraining model and its objective."""

from __future__ import annotations

import math

import torch
from torch import nn

from .blocks import init_weights
from .config import MixHicConfig
from .crossmodal import InteractionBlock, MappingBlock
from .encoders import EpiEncoder, HicEncoder
from .losses import LossWeights, info_nce, mapping_loss, orthogonality_loss

__all__ = ["PretrainModel", "pretrain_objective", "PRETRAINED_PREFIXES"]

# Top-level modules a fine-tuning model may take from a pretraining checkpoint.
PRETRAINED_PREFIXES = ("hic_encoder", "epi_encoder", "interaction", "mapping")


class PretrainModel(nn.Module):
    """Dual encoder + interaction block + mapping block + learnable temperature.

    ``forward(hic, epi)`` with hic (B, W, W) and epi (B, C, 2L) returns a dict of tensors:

    - ``hic_shared``, ``hic_specific``: (B, Nh, 4E), L2-normalised per token
    - ``epi_shared``, ``epi_specific``: (B, Ne, 4E)
    - ``hic_tokens``: (B, Nh, 8E) = concat(shared, specific); ``epi_tokens``: (B, Ne, 8E)
    - ``e2m``: (B, Nh, 8E) Hi-C tokens predicted from epi; ``m2e``: (B, Ne, 8E)

    The temperature is ``min + (max - min) * sigmoid(temperature_raw)``: learnable and
    always inside [temperature_min, temperature_max], whatever step the optimiser takes.
    """

    def __init__(self, cfg: MixHicConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.hic_encoder = HicEncoder(cfg)
        self.epi_encoder = EpiEncoder(cfg)
        self.interaction = InteractionBlock(cfg)
        self.mapping = MappingBlock(cfg)
        frac = (cfg.temperature_init - cfg.temperature_min) / (
            cfg.temperature_max - cfg.temperature_min)
        self.temperature_raw = nn.Parameter(torch.tensor(math.log(frac / (1 - frac))))
        self.apply(init_weights)

    def temperature(self) -> torch.Tensor:
        """Current contrastive temperature, a scalar in [temperature_min, temperature_max]."""
        lo, hi = self.cfg.temperature_min, self.cfg.temperature_max
        return (lo + (hi - lo) * torch.sigmoid(self.temperature_raw.float())).clamp(lo, hi)

    def forward(self, hic: torch.Tensor, epi: torch.Tensor) -> dict[str, torch.Tensor]:
        if hic.shape[0] != epi.shape[0]:
            raise ValueError(f"hic and epi batch sizes differ: {hic.shape[0]} vs {epi.shape[0]}")
        h = self.hic_encoder(hic)  # (B, Nh, 8E)
        e, _ = self.epi_encoder(epi)  # (B, Ne, 8E)
        h_sh, h_sp, h_cat = self.interaction(h, "hic")
        e_sh, e_sp, e_cat = self.interaction(e, "epi")
        return {
            "hic_shared": h_sh, "hic_specific": h_sp, "hic_tokens": h_cat,
            "epi_shared": e_sh, "epi_specific": e_sp, "epi_tokens": e_cat,
            "e2m": self.mapping(e_cat, "e2m"), "m2e": self.mapping(h_cat, "m2e"),
        }


def pretrain_objective(out: dict[str, torch.Tensor], model: PretrainModel,
                       weights: LossWeights = LossWeights(),
                       contrastive_only: bool = False,
                       standardize: bool = True) -> dict[str, torch.Tensor]:
    """The pretraining losses of one batch: scalars ``loss`` (to minimise), ``con``,
    ``orth``, ``map``.

    ``con``: symmetric InfoNCE between pooled shared epi and Hi-C vectors, batch-
    standardised unless ``standardize=False`` (the published loss; see ``info_nce``).
    ``orth``: mean over the two modalities of the shared/specific squared cosine.
    ``map``: mean over the two directions of the normalised mapping distance.
    ``loss = weights.con * con + weights.orth * orth + weights.map * map``, or, during the
    contrastive-only warm-up (``contrastive_only=True``, the trainer decides the epochs),
    ``loss = con`` alone; ``orth`` and ``map`` are then returned detached, for logging.
    """
    con = info_nce(out["epi_shared"], out["hic_shared"], model.temperature(),
                   standardize=standardize and out["epi_shared"].shape[0] > 1)
    orth = 0.5 * (orthogonality_loss(out["hic_shared"], out["hic_specific"])
                  + orthogonality_loss(out["epi_shared"], out["epi_specific"]))
    mapl = 0.5 * (mapping_loss(out["e2m"], out["hic_tokens"])
                  + mapping_loss(out["m2e"], out["epi_tokens"]))
    if contrastive_only:
        return {"loss": con, "con": con.detach(), "orth": orth.detach(), "map": mapl.detach()}
    loss = weights.con * con + weights.orth * orth + weights.map * mapl
    return {"loss": loss, "con": con.detach(), "orth": orth.detach(), "map": mapl.detach()}
