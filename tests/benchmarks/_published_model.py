"""A speed reference: the published MIX-HIC pretraining model, rebuilt from the facts in
``docs/reference-notes.md`` (never from the published scripts), for ``bench_model.py``.

It is a benchmark yardstick, not a model to train: it keeps the published code's
defects that change the work a training step does, so that "ours vs published" compares
the same step on both sides (forward, loss, backward, AdamW). Geometry and width are the
paper's (``PublishedConfig()`` = paper-128: E = 128, W = 50, epi 5,000 x 2 tracks).

What it contains, and each choice where the notes leave a detail open:

- **Hi-C encoder**: 1 x 50 x 50 -> 2 x 2 patches (625 tokens) -> Linear(4 -> E); four
  stages at E, 2E, 4E, 8E of 2 pre-norm blocks (4 heads; MLP ratio 2 as Linear - GELU -
  depthwise 3x3 conv - GELU - Linear); Conv2d(k4, s2, p1) between stages (25 -> 12 -> 6
  -> 3); 9 tokens x 8E out. One input channel, no positional embedding (note 5).
  *Choice*: the attention is the ViT idiom of its time, ``softmax(q k^T / sqrt(d)) v``
  written out with matmuls over each sample's tokens (batch-first, correct), not
  ``F.scaled_dot_product_attention``; the notes name no attention kernel for this
  encoder, and a hand-written ViT block is what such code used. ``--published-attn sdpa``
  in the benchmark swaps in the fused kernel to show what that choice is worth.
- **Epigenomic encoder**: (B, 5000, C) -> Linear(C -> E) + ReLU -> four Conv1d(k3) + BN +
  ReLU with max-pools 2, 5, 5 over the whole concatenated x|y sequence (convolutions
  straddle the seam, as published) -> 100 tokens; four stages of
  ``nn.TransformerEncoder`` (2 layers, feed-forward 2 x width) at E..8E with
  Conv1d(k4, s2, p1) between (100 -> 50 -> 25 -> 12); 12 tokens x 8E out.
  **Defect 1 kept**: the layers are built without ``batch_first=True`` and fed (B, N, D),
  so attention runs across the B samples of the batch (a B x B score matrix per token
  position) instead of across the N tokens. That changes the attention's cost
  (B^2 N instead of N^2 B scores), so it is part of the published step's speed.
  *Choice*: ``nn.TransformerEncoderLayer`` defaults otherwise (post-norm, ReLU), but
  dropout 0.0 rather than its default 0.1: the notes do not say which the scripts used,
  and 0.0 is the cheaper one (our model also trains without dropout in the encoders), so
  the comparison does not flatter ours.
- **Interaction block**: four Linear(8E -> 4E) (shared and specific per modality), each
  output L2-normalised per token, concatenated to 8E.
- **Mapping block**: AdaptiveAvgPool1d over tokens (epi 12 -> 9, Hi-C 9 -> 12) and one
  Linear(8E -> 8E) each way.
- **Loss** (after the contrastive warm-up): ``0.5 * (con + orth) + 0.5 * map`` with the
  CLIP-style symmetric InfoNCE on mean-pooled shared tokens (learnable temperature, init
  0.07, clamped to [0.001, 0.5]), the orthogonality loss on pooled vectors, and the
  mean distance between L2-normalised mapped and target tokens, both directions.
- **Defect 6 kept**: unused cross-attention modules, built and never called. *Choice*:
  two ``nn.MultiheadAttention(8E, 4)`` (8.4 M parameters at E = 128; the notes say
  ~11 M). They get no gradient, so AdamW skips them: they cost memory, not step time.
- No final LayerNorm on either encoder (the notes name none).

``published_pretrain_loss(model, hic, epi)`` is the training objective of one batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PublishedConfig", "PublishedPretrainModel", "published_pretrain_loss",
           "published_inputs"]


@dataclass(frozen=True)
class PublishedConfig:
    """Published pretraining geometry and width (defaults: paper-128)."""

    embed_dim: int = 128
    window_bins: int = 50
    epi_len: int = 5000  # x-anchor then y-anchor bins of 100 bp, concatenated
    n_tracks: int = 2
    patch_size: int = 2
    depths: int = 2  # blocks / layers per stage, both encoders
    n_heads: int = 4
    mlp_ratio: float = 2.0
    pools: tuple[int, ...] = (2, 5, 5)
    attn: str = "explicit"  # Hi-C encoder attention: "explicit" matmuls or "sdpa"

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(self.embed_dim * 2**i for i in range(4))  # E, 2E, 4E, 8E


class _VitAttention(nn.Module):
    """Batch-first multi-head self-attention over (B, N, D), the pre-SDPA ViT idiom."""

    def __init__(self, dim: int, n_heads: int, impl: str) -> None:
        super().__init__()
        if impl not in ("explicit", "sdpa"):
            raise ValueError(f"attn: expected 'explicit' or 'sdpa', got {impl!r}")
        self.h, self.impl = n_heads, impl
        self.scale = (dim // n_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.h, D // self.h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, h, N, d)
        if self.impl == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)  # (B, h, N, N)
            out = attn @ v  # (B, h, N, d)
        return self.proj(out.transpose(1, 2).reshape(B, N, D))


class _LeFF(nn.Module):
    """Linear - GELU - depthwise 3x3 conv - GELU - Linear over (B, S*S, D) grid tokens."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, side: int) -> torch.Tensor:
        B, N, _ = x.shape
        h = F.gelu(self.fc1(x)).transpose(1, 2).reshape(B, -1, side, side)  # (B, H, S, S)
        h = F.gelu(self.dw(h)).flatten(2).transpose(1, 2)  # (B, N, H)
        return self.fc2(h)


class _HicBlock(nn.Module):
    def __init__(self, dim: int, cfg: PublishedConfig) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = _VitAttention(dim, cfg.n_heads, cfg.attn)
        self.leff = _LeFF(dim, int(dim * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor, side: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.leff(self.norm2(x), side)


class _HicEncoder(nn.Module):
    """(B, W, W) -> (B, 9, 8E)."""

    def __init__(self, cfg: PublishedConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dims
        self.patch = nn.Linear(cfg.patch_size**2, d[0])
        self.stages = nn.ModuleList(
            nn.ModuleList(_HicBlock(w, cfg) for _ in range(cfg.depths)) for w in d)
        self.downs = nn.ModuleList(nn.Conv2d(d[i], d[i + 1], 4, 2, 1) for i in range(3))

    def forward(self, hic: torch.Tensor) -> torch.Tensor:
        B, W, _ = hic.shape
        p = self.cfg.patch_size
        side = W // p
        x = hic.reshape(B, side, p, side, p).permute(0, 1, 3, 2, 4).reshape(B, side**2, p * p)
        x = self.patch(x)  # (B, 625, E)
        for i, blocks in enumerate(self.stages):
            for blk in blocks:
                x = blk(x, side)
            if i < 3:
                grid = self.downs[i](x.transpose(1, 2).reshape(B, -1, side, side))
                side = grid.shape[-1]
                x = grid.flatten(2).transpose(1, 2)  # (B, S'^2, 2D)
        return x


class _EpiEncoder(nn.Module):
    """(B, 5000, C) -> (B, 12, 8E), attention across the batch (defect 1)."""

    def __init__(self, cfg: PublishedConfig) -> None:
        super().__init__()
        E, d = cfg.embed_dim, cfg.dims
        self.inp = nn.Linear(cfg.n_tracks, E)
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [nn.Conv1d(E, E, 3, padding=1), nn.BatchNorm1d(E), nn.ReLU()]
            if i < len(cfg.pools):
                layers.append(nn.MaxPool1d(cfg.pools[i]))
        self.stem = nn.Sequential(*layers)
        self.stages = nn.ModuleList(
            nn.TransformerEncoder(
                nn.TransformerEncoderLayer(w, cfg.n_heads, dim_feedforward=2 * w, dropout=0.0),
                num_layers=cfg.depths, enable_nested_tensor=False)
            for w in d)
        self.downs = nn.ModuleList(nn.Conv1d(d[i], d[i + 1], 4, 2, 1) for i in range(3))

    def forward(self, epi: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.inp(epi)).transpose(1, 2)  # (B, E, 5000)
        x = self.stem(x).transpose(1, 2)  # (B, 100, E)
        for i, stage in enumerate(self.stages):
            x = stage(x)  # (B, N, D) read as (seq=B, batch=N, D): attends across samples
            if i < 3:
                x = self.downs[i](x.transpose(1, 2)).transpose(1, 2)  # (B, N/2, 2D)
        return x


class PublishedPretrainModel(nn.Module):
    """Published pretraining network: ``forward(hic (B, W, W), epi (B, 5000, C))`` -> dict
    of shared / specific (B, N, 4E), tokens (B, N, 8E) per modality, e2m (B, 9, 8E) and
    m2e (B, 12, 8E)."""

    def __init__(self, cfg: PublishedConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or PublishedConfig()
        D = cfg.dims[-1]
        self.hic_encoder = _HicEncoder(cfg)
        self.epi_encoder = _EpiEncoder(cfg)
        self.proj = nn.ModuleDict({k: nn.Linear(D, D // 2) for k in
                                   ("hic_shared", "hic_specific", "epi_shared", "epi_specific")})
        self.e2m, self.m2e = nn.Linear(D, D), nn.Linear(D, D)
        self.temperature = nn.Parameter(torch.tensor(0.07))
        # defect 6: built, never called
        self.unused_cross_attn = nn.ModuleList(nn.MultiheadAttention(D, cfg.n_heads)
                                               for _ in range(2))

    def forward(self, hic: torch.Tensor, epi: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for m, tok in (("hic", self.hic_encoder(hic)), ("epi", self.epi_encoder(epi))):
            sh = F.normalize(self.proj[f"{m}_shared"](tok), dim=-1)
            sp = F.normalize(self.proj[f"{m}_specific"](tok), dim=-1)
            out.update({f"{m}_shared": sh, f"{m}_specific": sp,
                        f"{m}_tokens": torch.cat([sh, sp], dim=-1)})
        nh, ne = out["hic_tokens"].shape[1], out["epi_tokens"].shape[1]
        out["e2m"] = self.e2m(F.adaptive_avg_pool1d(out["epi_tokens"].transpose(1, 2), nh)
                              .transpose(1, 2))
        out["m2e"] = self.m2e(F.adaptive_avg_pool1d(out["hic_tokens"].transpose(1, 2), ne)
                              .transpose(1, 2))
        return out


def published_pretrain_loss(model: PublishedPretrainModel, hic: torch.Tensor,
                            epi: torch.Tensor) -> torch.Tensor:
    """``0.5 * (con + orth) + 0.5 * map`` of one batch (the post-warm-up objective)."""
    out = model(hic, epi)
    a = F.normalize(out["epi_shared"].mean(1), dim=-1)
    b = F.normalize(out["hic_shared"].mean(1), dim=-1)
    logits = a @ b.t() / model.temperature.clamp(0.001, 0.5)  # (B, B)
    labels = torch.arange(a.shape[0], device=a.device)
    con = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))

    def orth(m: str) -> torch.Tensor:
        s = F.normalize(out[f"{m}_shared"].mean(1), dim=-1)
        p = F.normalize(out[f"{m}_specific"].mean(1), dim=-1)
        return ((s * p).sum(-1) ** 2).mean()

    def dist(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((F.normalize(pred, dim=-1) - F.normalize(target, dim=-1)) ** 2).sum(-1).mean()

    orth_l = 0.5 * (orth("hic") + orth("epi"))
    map_l = 0.5 * (dist(out["e2m"], out["hic_tokens"]) + dist(out["m2e"], out["epi_tokens"]))
    return 0.5 * (con + orth_l) + 0.5 * map_l


def published_inputs(cfg: PublishedConfig, batch: int, device="cpu"
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random inputs in the published layout: hic (B, W, W), epi (B, 5000, C)."""
    return (torch.rand(batch, cfg.window_bins, cfg.window_bins, device=device),
            torch.rand(batch, cfg.epi_len, cfg.n_tracks, device=device))


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":  # quick look: parameter count at paper-128
    m = PublishedPretrainModel()
    print(f"published paper-128 pretraining parameters: {n_parameters(m):,} "
          f"(unused cross-attention {n_parameters(m.unused_cross_attn):,})")
