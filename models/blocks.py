"""Transformer building blocks, batch-first everywhere: tokens are (B, N, D).

Attention goes through ``F.scaled_dot_product_attention`` over the token axis of each
sample, so no sample ever attends to another one (the published code's defect 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import conv_down_len

__all__ = ["Attention", "Mlp", "LeFF", "HicBlock", "EncoderLayer", "FusionLayer", "GridDown",
           "init_weights"]


def init_weights(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) Linear weights, zero biases; LayerNorm to identity."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class Attention(nn.Module):
    """Multi-head attention: queries from ``x`` (B, N, D), keys/values from ``ctx`` (B, M, D).

    ``ctx=None`` gives self-attention.
    """

    def __init__(self, dim: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"attention width {dim} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.dropout = dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
        B, N, D = x.shape
        ctx = x if ctx is None else ctx
        M = ctx.shape[1]
        q = self.q(x).view(B, N, self.n_heads, self.head_dim).transpose(1, 2)  # (B, h, N, d)
        kv = self.kv(ctx).view(B, M, 2, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]  # (B, h, M, d)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0
        )  # (B, h, N, d)
        return self.proj(out.transpose(1, 2).reshape(B, N, D))


class Mlp(nn.Module):
    """Linear(D -> hidden) - GELU - Dropout - Linear(hidden -> D)."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class LeFF(nn.Module):
    """Locally-enhanced feed-forward: Linear - GELU - depthwise 3x3 conv - GELU - Linear.

    Input (B, S*S, D) tokens of an S x S grid; output the same shape.
    """

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dw = nn.Conv2d(hidden, hidden, kernel_size=3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, side: int) -> torch.Tensor:
        B, N, _ = x.shape
        h = F.gelu(self.fc1(x))  # (B, N, H)
        h = h.transpose(1, 2).reshape(B, -1, side, side)  # (B, H, S, S)
        h = F.gelu(self.dw(h)).flatten(2).transpose(1, 2)  # (B, N, H)
        return self.drop(self.fc2(self.drop(h)))


class GridDown(nn.Conv2d):
    """Conv2d(k4, s2, p1) from tokens of an S x S grid to tokens of the S' x S' grid.

    (B, S*S, D_in) -> (B, S'*S', D_out) with S' = floor(S / 2). The parameters are
    ``nn.Conv2d``'s (same names, shapes and init). Grids with at most ``UNFOLD_MAX_SIDE``
    output side are computed as unfold + one matmul: on CPU, mkldnn's convolution spends
    ~4x the FLOP time on few output positions and wide channels (the last Hi-C
    downsampling, 6x6 -> 3x3 at 512 -> 1024 channels: ~320 ms of a 2 s paper-128 training
    step at batch 8, weight reorders included, against ~70 ms as a matmul); larger grids
    keep the convolution, which is faster there.
    """

    UNFOLD_MAX_SIDE = 6

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__(d_in, d_out, kernel_size=4, stride=2, padding=1)

    def forward(self, x: torch.Tensor, side: int) -> torch.Tensor:
        B = x.shape[0]
        grid = x.transpose(1, 2).reshape(B, -1, side, side)  # (B, D_in, S, S)
        if conv_down_len(side) > self.UNFOLD_MAX_SIDE:
            return super().forward(grid).flatten(2).transpose(1, 2)
        cols = F.unfold(grid, 4, padding=1, stride=2)  # (B, D_in*16, S'*S')
        return F.linear(cols.transpose(1, 2), self.weight.flatten(1), self.bias)


class HicBlock(nn.Module):
    """Pre-norm ViT block of the Hi-C encoder: attention + LeFF. (B, S*S, D) -> same."""

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, n_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.leff = LeFF(dim, int(dim * mlp_ratio), dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, side: int) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.leff(self.norm2(x), side)


class EncoderLayer(nn.Module):
    """Pre-norm transformer layer of the epigenomic encoder. (B, N, D) -> same."""

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, n_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.mlp(self.norm2(x))


class FusionLayer(nn.Module):
    """Fusion layer: self-attention over epi tokens, cross-attention to Hi-C tokens, MLP.

    x: epi tokens (B, Ne, D); ctx: Hi-C (or pseudo Hi-C) tokens (B, Nh, D). With
    ``cross=False`` (single-modal baseline) the cross-attention is not built.
    """

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float, dropout: float,
                 cross: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, n_heads, dropout)
        self.cross = cross
        if cross:
            self.norm_q = nn.LayerNorm(dim)
            self.norm_kv = nn.LayerNorm(dim)
            self.cross_attn = Attention(dim, n_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.self_attn(self.norm1(x)))
        if self.cross:
            if ctx is None:
                raise ValueError("FusionLayer with cross-attention needs Hi-C tokens (ctx)")
            x = x + self.drop(self.cross_attn(self.norm_q(x), self.norm_kv(ctx)))
        return x + self.mlp(self.norm2(x))
