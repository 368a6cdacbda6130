"""Cross-modal interaction block (shared / specific projections) and mapping block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import MixHicConfig

__all__ = ["InteractionBlock", "MappingBlock", "MODALITIES", "DIRECTIONS"]

MODALITIES = ("hic", "epi")
DIRECTIONS = ("e2m", "m2e")


class InteractionBlock(nn.Module):
    """Per modality, a shared (modality-invariant) and a specific projection 8E -> 4E.

    Each projected token is L2-normalised; ``forward`` returns
    ``(shared, specific, concat)`` with shapes (B, N, 4E), (B, N, 4E), (B, N, 8E).
    Only the projections of ``modalities`` are built (fine-tuning without Hi-C builds the
    epi pair only).
    """

    def __init__(self, cfg: MixHicConfig, modalities: tuple[str, ...] = MODALITIES) -> None:
        super().__init__()
        bad = set(modalities) - set(MODALITIES)
        if bad:
            raise ValueError(f"unknown modalities {sorted(bad)}; choose from {MODALITIES}")
        self.modalities = tuple(modalities)
        D, H = cfg.model_dim, cfg.proj_dim
        for m in self.modalities:
            setattr(self, f"{m}_shared", nn.Linear(D, H))
            setattr(self, f"{m}_specific", nn.Linear(D, H))

    def forward(self, tokens: torch.Tensor, modality: str
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if modality not in self.modalities:
            raise ValueError(f"interaction block has no projections for {modality!r}")
        shared = F.normalize(getattr(self, f"{modality}_shared")(tokens), dim=-1)
        specific = F.normalize(getattr(self, f"{modality}_specific")(tokens), dim=-1)
        return shared, specific, torch.cat([shared, specific], dim=-1)


class MappingBlock(nn.Module):
    """Token-count alignment by adaptive average pooling, then one Linear(8E -> 8E) per way.

    ``e2m``: epi tokens (B, Ne, 8E) -> pool to Nh -> Linear -> pseudo Hi-C (B, Nh, 8E).
    ``m2e``: Hi-C tokens (B, Nh, 8E) -> pool to Ne -> Linear -> pseudo epi (B, Ne, 8E).
    """

    def __init__(self, cfg: MixHicConfig, directions: tuple[str, ...] = DIRECTIONS) -> None:
        super().__init__()
        bad = set(directions) - set(DIRECTIONS)
        if bad:
            raise ValueError(f"unknown mapping directions {sorted(bad)}; choose from {DIRECTIONS}")
        self.directions = tuple(directions)
        self.n_tokens = {"e2m": cfg.hic_tokens, "m2e": cfg.epi_tokens}
        for d in self.directions:
            setattr(self, d, nn.Linear(cfg.model_dim, cfg.model_dim))

    def forward(self, tokens: torch.Tensor, direction: str) -> torch.Tensor:
        if direction not in self.directions:
            raise ValueError(f"mapping block has no {direction!r} direction")
        pooled = F.adaptive_avg_pool1d(tokens.transpose(1, 2), self.n_tokens[direction])
        return getattr(self, direction)(pooled.transpose(1, 2))
