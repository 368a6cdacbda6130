"""The two modality encoders.

- ``HicEncoder``: (B, W, W) contact map -> (B, S^2, 8E) tokens (S = 3 at W = 50).
- ``EpiEncoder``: (B, C, 2L) tracks -> (B, N, 8E) tokens (N = 12 at W = 50) plus the
  earlier stages' outputs as skips for the decoders.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import EncoderLayer, GridDown, HicBlock
from .config import MixHicConfig

__all__ = ["HicEncoder", "EpiEncoder", "check_hic", "check_epi", "distance_contrast"]


def check_hic(cfg: MixHicConfig, hic: torch.Tensor) -> None:
    W = cfg.window_bins
    if hic.dim() != 3 or hic.shape[1:] != (W, W):
        raise ValueError(f"hic: expected shape (B, {W}, {W}) (window_bins={W}), "
                         f"got {tuple(hic.shape)}")


def check_epi(cfg: MixHicConfig, epi: torch.Tensor) -> None:
    C, L2 = cfg.n_tracks, 2 * cfg.epi_bins
    if epi.dim() != 3 or epi.shape[1:] != (C, L2):
        raise ValueError(f"epi: expected shape (B, {C}, {L2}) (n_tracks={C}, 2*epi_bins; "
                         f"x-anchor bins then y-anchor bins), got {tuple(epi.shape)}")


def distance_contrast(hic: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Each pixel minus the mean of its window diagonal, over the window's spread.

    hic (B, W, W) -> (B, W, W). Pixels on one diagonal ``j - i = k`` of a window share a
    genomic distance (also in off-diagonal windows), so subtracting the diagonal's mean
    removes the distance decay every window has in common, leaving TADs, loops and
    stripes; dividing by the window's standard deviation makes it depth-free.
    """
    B, W, _ = hic.shape
    idx = torch.arange(W, device=hic.device)
    diag = (idx[None, :] - idx[:, None] + W - 1).flatten()  # (W*W,) in [0, 2W-2]
    flat = hic.reshape(B, W * W).float()
    sums = flat.new_zeros(B, 2 * W - 1).index_add_(1, diag, flat)
    counts = torch.bincount(diag, minlength=2 * W - 1).to(flat.dtype)
    resid = flat - (sums / counts)[:, diag]
    scale = resid.std(dim=1, keepdim=True) + eps
    return (resid / scale).reshape(B, W, W).to(hic.dtype)


class HicEncoder(nn.Module):
    """ViT over p x p patches with four stages and Conv2d(k4, s2, p1) downsampling.

    (B, W, W) -> patches (B, (W/p)^2, c*p*p) -> Linear -> [+ learned positions] ->
    stages at widths E..8E on grids 25 -> 12 -> 6 -> 3 -> LayerNorm -> (B, 9, 8E).

    Input channels (``cfg.hic_input``): ``raw`` is the map alone (the published model);
    ``raw+oe`` (default) adds ``distance_contrast(map)``. Hi-C windows at the same offset
    from the diagonal look nearly alike (cosine ~0.95 between windows: the distance
    decay dominates), and with the map alone the encoder's pooled outputs start out
    identical for every window (cosine 1.000 at init), so contrastive pretraining
    collapses (loss stuck at ln(batch)). The contrast channel keeps windows apart.
    """

    def __init__(self, cfg: MixHicConfig) -> None:
        super().__init__()
        self.cfg = cfg
        p, dims, sides = cfg.patch_size, cfg.stage_dims, cfg.hic_grid_sizes
        self.in_channels = 2 if cfg.hic_input == "raw+oe" else 1
        self.patch_embed = nn.Linear(self.in_channels * p * p, dims[0])
        if cfg.hic_pos_embed:
            self.pos_embed = nn.Parameter(torch.zeros(1, sides[0] ** 2, dims[0]))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.stages = nn.ModuleList(
            nn.ModuleList(HicBlock(d, cfg.n_heads, cfg.mlp_ratio, cfg.dropout) for _ in range(n))
            for d, n in zip(dims, cfg.hic_depths)
        )
        self.downs = nn.ModuleList(GridDown(dims[i], dims[i + 1]) for i in range(cfg.n_stages - 1))
        self.norm = nn.LayerNorm(dims[-1])

    def forward(self, hic: torch.Tensor) -> torch.Tensor:
        """hic (B, W, W) -> tokens (B, S_last^2, 8E)."""
        check_hic(self.cfg, hic)
        B, p = hic.shape[0], self.cfg.patch_size
        side = self.cfg.hic_grid_sizes[0]
        x = hic[:, None] if self.in_channels == 1 else torch.stack(
            [hic, distance_contrast(hic)], dim=1)  # (B, c, W, W)
        c = self.in_channels
        x = x.reshape(B, c, side, p, side, p).permute(0, 2, 4, 1, 3, 5).reshape(
            B, side * side, c * p * p)
        x = self.patch_embed(x)  # (B, S^2, E)
        if self.cfg.hic_pos_embed:
            x = x + self.pos_embed
        for i, blocks in enumerate(self.stages):
            for blk in blocks:
                x = blk(x, side)
            if i < len(self.downs):
                x = self.downs[i](x, side)  # (B, S'^2, 2D)
                side = self.cfg.hic_grid_sizes[i + 1]
        return self.norm(x)


class EpiEncoder(nn.Module):
    """Conv stem + transformer stages over one token per Hi-C bin.

    Stem, run on each anchor separately so no convolution straddles the x/y seam:
    (B, C, 2L) -> (2B, C, L) -> Conv1d(C->E, k1) + ReLU -> n x [Conv1d(k3) + BN + ReLU
    (+ MaxPool p_i)] with prod(p_i) = L / W -> (B, 2W, E) [+ learned positions].
    Stages: 2W -> W -> W/2 -> ... tokens at widths E..8E, Conv1d(k4, s2, p1) between.
    """

    def __init__(self, cfg: MixHicConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dims, E = cfg.stage_dims, cfg.embed_dim
        pools = cfg.epi_pools
        self.stem_in = nn.Conv1d(cfg.n_tracks, E, kernel_size=1)
        layers: list[nn.Module] = []
        for i in range(max(cfg.epi_stem_convs, len(pools))):
            layers += [nn.Conv1d(E, E, kernel_size=3, padding=1, bias=False),
                       nn.BatchNorm1d(E), nn.ReLU()]
            if i < len(pools):
                layers.append(nn.MaxPool1d(pools[i]))
        self.stem = nn.Sequential(*layers)
        if cfg.epi_pos_embed:
            self.pos_embed = nn.Parameter(torch.zeros(1, 2 * cfg.window_bins, E))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.stages = nn.ModuleList(
            nn.Sequential(*(EncoderLayer(d, cfg.n_heads, cfg.mlp_ratio, cfg.dropout)
                            for _ in range(n)))
            for d, n in zip(dims, cfg.epi_depths)
        )
        self.downs = nn.ModuleList(
            nn.Conv1d(dims[i], dims[i + 1], kernel_size=4, stride=2, padding=1)
            for i in range(cfg.n_stages - 1)
        )
        self.norm = nn.LayerNorm(dims[-1])

    def _run_stem(self, x: torch.Tensor) -> torch.Tensor:
        """(2B, C, L) -> (2B, W, E): ``stem(relu(stem_in(x)))``, run as 2-D ops on a
        (2B, C, 1, L) channels-last tensor.

        Same parameters and result as calling the 1-D modules (up to float summation
        order), but mkldnn's channels-last convolutions are ~1.6x faster on CPU
        (paper-128, batch 8, one thread: stem forward+backward ~360 -> ~270 ms), and the
        output is already laid out token-major.
        """
        x = x[:, :, None, :].contiguous(memory_format=torch.channels_last)
        x = torch.relu(F.conv2d(x, self.stem_in.weight[:, :, None, :], self.stem_in.bias))
        for m in self.stem:
            if isinstance(m, nn.Conv1d):
                x = F.conv2d(x, m.weight[:, :, None, :], m.bias, padding=(0, m.padding[0]))
            elif isinstance(m, nn.BatchNorm1d):
                if m.training:
                    m.num_batches_tracked.add_(1)
                x = F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias,
                                 m.training, m.momentum, m.eps)
            elif isinstance(m, nn.ReLU):
                x = torch.relu(x)
            elif isinstance(m, nn.MaxPool1d):
                x = F.max_pool2d(x, (1, m.kernel_size))
            else:  # pragma: no cover - the stem is built above from these four kinds
                raise TypeError(f"unexpected stem module {type(m).__name__}")
        return x[:, :, 0, :].transpose(1, 2)

    def forward(self, epi: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """epi (B, C, 2L) -> (tokens (B, N_last, 8E), skips [(B, N_i, dims[i]) for i < last]).

        At the paper geometry: tokens (B, 12, 8E); skips (B, 100, E), (B, 50, 2E),
        (B, 25, 4E).
        """
        check_epi(self.cfg, epi)
        B, C, L2 = epi.shape
        W = self.cfg.window_bins
        x = epi.reshape(B, C, 2, L2 // 2).transpose(1, 2).reshape(2 * B, C, L2 // 2)
        x = self._run_stem(x)  # (2B, W, E)
        x = x.reshape(B, 2 * W, -1)  # (B, 2W, E): x-anchor bins, then y-anchor bins
        if self.cfg.epi_pos_embed:
            x = x + self.pos_embed
        skips: list[torch.Tensor] = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < len(self.downs):
                skips.append(x)
                x = self.downs[i](x.transpose(1, 2)).transpose(1, 2)  # (B, N/2, 2D)
        return self.norm(x), skips
