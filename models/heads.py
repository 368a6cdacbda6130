"""Task heads of the fine-tuning model: loop logit, Hi-C map, CAGE track."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import MixHicConfig

__all__ = ["TokenDecoder", "LoopHead", "MapHead", "CageHead", "TASKS", "build_head"]

TASKS = ("hic", "loops", "cage")


class TokenDecoder(nn.Module):
    """Upsample fused tokens back to one token per Hi-C bin using the epi encoder's skips.

    (B, N_last, 8E) -> per stage, from last to first: ConvTranspose1d(k4, s2, p1) to the
    skip's length and width, concat with the skip, Conv1d(k3) + GELU ->
    (B, 2W, E) (12 -> 25 -> 50 -> 100 tokens at the paper geometry).
    """

    def __init__(self, cfg: MixHicConfig) -> None:
        super().__init__()
        dims, counts = cfg.stage_dims, cfg.epi_token_counts
        self.ups = nn.ModuleList()
        self.merges = nn.ModuleList()
        for i in reversed(range(cfg.n_stages - 1)):
            out_pad = counts[i] - 2 * counts[i + 1]  # 0 or 1 so lengths match the skip
            self.ups.append(nn.ConvTranspose1d(dims[i + 1], dims[i], kernel_size=4, stride=2,
                                               padding=1, output_padding=out_pad))
            self.merges.append(nn.Conv1d(2 * dims[i], dims[i], kernel_size=3, padding=1))

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        h = x.transpose(1, 2)  # (B, D, N)
        for up, merge, skip in zip(self.ups, self.merges, reversed(skips)):
            h = up(h)  # (B, D_i, N_i)
            h = F.gelu(merge(torch.cat([h, skip.transpose(1, 2)], dim=1)))
        return h.transpose(1, 2)  # (B, 2W, E)


class LoopHead(nn.Module):
    """Mean over fused tokens -> Linear(8E -> h) - ReLU - Dropout - Linear(h -> 1): (B,) logits."""

    def __init__(self, cfg: MixHicConfig) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(cfg.model_dim, cfg.loop_hidden), nn.ReLU(),
            nn.Dropout(cfg.head_dropout), nn.Linear(cfg.loop_hidden, 1),
        )

    def forward(self, fused: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        return self.mlp(fused.mean(dim=1)).squeeze(-1)


class MapHead(nn.Module):
    """Decoder, then pixel (i, j) = MLP((a_i + b_j) / 2 + a_i * b_j): (B, W, W).

    a = tokens of the x-anchor (first W), b = tokens of the y-anchor (last W).
    """

    def __init__(self, cfg: MixHicConfig) -> None:
        super().__init__()
        E = cfg.embed_dim
        self.decoder = TokenDecoder(cfg)
        self.pixel = nn.Sequential(nn.Linear(E, E), nn.GELU(), nn.Dropout(cfg.dropout),
                                   nn.Linear(E, 1))
        self.W = cfg.window_bins

    def forward(self, fused: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        t = self.decoder(fused, skips)  # (B, 2W, E)
        a, b = t[:, : self.W, None, :], t[:, None, self.W :, :]  # (B, W, 1, E), (B, 1, W, E)
        pair = 0.5 * (a + b) + a * b  # (B, W, W, E)
        return self.pixel(pair).squeeze(-1)  # (B, W, W)


class CageHead(nn.Module):
    """Decoder, then per bin i an MLP of [a_i, b_i] (x- and y-anchor tokens): (B, W)."""

    def __init__(self, cfg: MixHicConfig) -> None:
        super().__init__()
        E = cfg.embed_dim
        self.decoder = TokenDecoder(cfg)
        self.bin = nn.Sequential(nn.Linear(2 * E, E), nn.GELU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(E, 1))
        self.W = cfg.window_bins

    def forward(self, fused: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        t = self.decoder(fused, skips)  # (B, 2W, E)
        return self.bin(torch.cat([t[:, : self.W], t[:, self.W :]], dim=-1)).squeeze(-1)


def build_head(cfg: MixHicConfig, task: str) -> nn.Module:
    heads = {"hic": MapHead, "loops": LoopHead, "cage": CageHead}
    if task not in heads:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
    return heads[task](cfg)
