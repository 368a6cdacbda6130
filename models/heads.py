"""Task heads of the fine-tuning model: loop logit, Hi-C map, CAGE track.

Every head is called as ``head(fused, skips, hic=None, offset=None)``:

- ``fused`` (B, N, 8E): tokens after the fusion block;
- ``skips``: the epigenomic encoder's earlier stages, ``skips[0]`` (B, 2W, E) holds one
  token per Hi-C bin (x-anchor bins then y-anchor bins);
- ``hic`` (B, W, W): the input map in modes that have one (bimodal, nonpre), else None;
- ``offset`` (B,): bins from the x-anchor's first bin to the y-anchor's first bin
  (``(y_start - x_start) / resolution``; 0 for windows on the diagonal, ``j - i`` for a
  loop window centred on the pair (i, j)). None means 0.

Two heads go beyond the published model (README, "Where mixhic differs"):

- ``MapHead`` knows genomic distance: pixel (i, j) sits ``|offset + j - i|`` bins from
  the diagonal; a learned log-distance embedding enters the pair representation and a
  learned per-distance value (the expected contact) is added to the output, so the
  distance decay needs no inference from token content.
- ``LoopHead`` keeps the loop pixel: besides the mean of the fused tokens it combines the
  two anchor tokens pairwise (as the map head does), reads the centre of the input map
  (a small conv over the centre crop plus the pixel's contrast against its diagonal and
  its HiCCUPS-style donut / lower-left neighbourhoods) and the loop distance.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import MixHicConfig
from .encoders import distance_contrast
from .tasks import TASKS, observed_pixels

__all__ = ["TokenDecoder", "DistanceEmbedding", "LoopHead", "MapHead", "CageHead", "TASKS",
           "boundaries_crossed", "build_head", "loop_contrast_features", "pixel_distances"]



def pixel_distances(offset: torch.Tensor | None, batch: int, W: int,
                    device: torch.device) -> torch.Tensor:
    """Genomic distance in bins of every window pixel: (B, W, W) float, ``|offset + j - i|``."""
    idx = torch.arange(W, device=device, dtype=torch.float32)
    within = idx[None, :] - idx[:, None]  # (W, W): j - i
    off = (torch.zeros(batch, device=device) if offset is None
           else offset.to(device=device, dtype=torch.float32).reshape(batch))
    return (off[:, None, None] + within[None]).abs()  # (B, W, W)


def boundaries_crossed(s_x: torch.Tensor, s_y: torch.Tensor, offset: torch.Tensor | None,
                       gap: torch.Tensor) -> torch.Tensor:
    """Summed boundary strength between the two bins of every window pixel: (B, W, W).

    ``s_x``, ``s_y`` (B, W) >= 0: strength of a boundary just after each bin of the x- and
    y-anchor (bin i of the x-anchor sits at position i, bin j of the y-anchor at
    ``offset + j``); where the anchors overlap the y-anchor's value is used, and a bin
    covered by neither (the gap between anchors more than W apart) counts ``gap`` (a
    scalar tensor). Pixel (i, j) gets the sum over the positions from the lower of its two
    bins up to (not including) the higher: 0 on the diagonal, and the count of TAD
    boundaries between the bins when each boundary scores 1.
    """
    B, W = s_x.shape
    dev = s_x.device
    off = (torch.zeros(B, 1, device=dev, dtype=torch.long) if offset is None
           else offset.to(device=dev).round().long().reshape(B, 1))
    # cum(p): strength summed over positions [lo, p), lo = the pair's first position;
    # pixel (i, j) = |cum(off + j) - cum(i)|. cum is in closed form at the 2 W bin
    # positions, so no shape depends on the offsets (no host sync; one graph under
    # torch.compile): [lo, p) splits into positions on the y-anchor, on the x-anchor only,
    # and in neither (the gap); prefix sums of the anchors' scores give the first two, the
    # length the third.
    lo = off.clamp(max=0)
    zero = torch.zeros_like(off)
    sum_x = F.pad(s_x.cumsum(1), (1, 0))  # (B, W + 1): sum of an anchor's first k scores
    sum_y = F.pad(s_y.cumsum(1), (1, 0))

    def part(sums: torch.Tensor, start: torch.Tensor, a: torch.Tensor, b: torch.Tensor):
        """Sum and count of an anchor's scores (it starts at position ``start``) over the
        positions [a, b) (none when b <= a)."""
        i = (a - start).clamp(0, W).expand(B, b.shape[1])
        k = torch.maximum((b - start).clamp(0, W), i)
        return sums.gather(1, k) - sums.gather(1, i), k - i

    def cum(p: torch.Tensor) -> torch.Tensor:  # p: (B, W) positions >= lo
        on_y, n_y = part(sum_y, off, lo, p)
        x_lo, x_hi = lo.clamp(0, W), p.clamp(0, W)  # [lo, p) on the x-anchor...
        on_x, n_x = part(sum_x, zero, x_lo, x_hi)
        on_xy, n_xy = part(sum_x, zero, torch.maximum(x_lo, off),  # ...and under y
                           torch.minimum(x_hi, off + W))
        n_gap = (p - lo) - n_y - (n_x - n_xy)
        return on_y + on_x - on_xy + gap.to(s_x.dtype) * n_gap.to(s_x.dtype)

    bins = torch.arange(W, device=dev)[None, :].expand(B, W)
    cx, cy = cum(bins), cum(off + bins)  # (B, W)
    return (cy[:, None, :] - cx[:, :, None]).abs()


class DistanceEmbedding(nn.Module):
    """Learned vectors on a log-distance grid, linearly interpolated.

    distance d (bins, any shape, >= 0) -> position ``u = per_octave * log2(1 + d)`` on a
    grid of ``n`` learned rows; rows ``floor(u)`` and ``floor(u) + 1`` are mixed by the
    fractional part, so nearby distances get nearby vectors. Distances past the grid use
    its last row. Output: d.shape + (dim,).
    """

    def __init__(self, dim: int, n: int = 72, per_octave: float = 4.0) -> None:
        super().__init__()
        self.per_octave, self.n = per_octave, n
        self.table = nn.Parameter(torch.zeros(n, dim))
        nn.init.normal_(self.table, std=0.02)

    def grid_distances(self) -> torch.Tensor:
        """(n,) the distance in bins at each row of the table (inverse of the grid map)."""
        return torch.exp2(torch.arange(self.n, dtype=torch.float32) / self.per_octave) - 1.0

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        u = (self.per_octave * torch.log2(1.0 + d.float().clamp(min=0))).clamp(max=self.n - 1)
        lo = u.floor().long().clamp(max=self.n - 2)
        frac = (u - lo.float()).unsqueeze(-1)
        return (1.0 - frac) * self.table[lo] + frac * self.table[lo + 1]


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


def loop_contrast_features(hic: torch.Tensor, radius: int = 5, inner: int = 1) -> torch.Tensor:
    """Contrast of the window's centre pixel against its surroundings: (B, 4).

    hic (B, W, W) on a log scale (differences are log ratios). Columns: the centre value;
    centre minus the mean of the other pixels on its diagonal (observed / expected: a
    window's diagonal shares the centre's genomic distance); centre minus the mean of the
    HiCCUPS donut (pixels within ``radius``, outside the ``inner`` square, off the centre
    row and column); centre minus the mean of the lower-left box (rows below, columns
    left of the centre, towards the diagonal). Each mean is over observed pixels only
    (:func:`mixhic.models.tasks.observed_pixels`: a masked bin's row or column of zeros
    is no contact); a contrast with no observed pixel to compare with is 0.
    """
    B, W, _ = hic.shape
    c = W // 2
    r = max(1, min(radius, c - 1, W - c - 1))
    x = hic.to(torch.promote_types(hic.dtype, torch.float32))  # bf16 -> f32, f64 stays
    seen = observed_pixels(x)
    centre = x[:, c, c]  # (B,)

    def contrast(values: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """centre minus the mean of ``values`` where ``observed`` (both (B, K))."""
        n = observed.sum(1)
        mean = (values * observed).sum(1) / n.clamp(min=1)
        return torch.where(n > 0, centre - mean, torch.zeros_like(centre))

    diag_seen = torch.diagonal(seen, dim1=1, dim2=2).clone()  # (B, W): the centre's diagonal
    diag_seen[:, c] = False
    oe = contrast(torch.diagonal(x, dim1=1, dim2=2), diag_seen)
    box = x[:, c - r : c + r + 1, c - r : c + r + 1].reshape(B, -1)  # (B, (2r+1)^2)
    box_seen = seen[:, c - r : c + r + 1, c - r : c + r + 1].reshape(B, -1)
    k = torch.arange(-r, r + 1, device=hic.device)
    di, dj = k[:, None], k[None, :]
    donut = (((di.abs() > inner) | (dj.abs() > inner)) & (di != 0) & (dj != 0)).reshape(-1)
    lower_left = ((di > inner) & (dj < -inner)).reshape(-1)
    return torch.stack([centre, oe, contrast(box, box_seen & donut),
                        contrast(box, box_seen & lower_left)], dim=1)


def anchor_signal(epi: torch.Tensor, window_bins: int) -> torch.Tensor:
    """Summed track signal at the two anchors of a loop window: (B,).

    epi (B, C, 2L) (x-anchor values then y-anchor values, L = W * values per bin): the mean
    of each track over the centre Hi-C bin of each anchor, summed over tracks and anchors.
    """
    B, C, L2 = epi.shape
    L, c = L2 // 2, window_bins // 2
    k = L // window_bins
    x = epi.to(torch.promote_types(epi.dtype, torch.float32))
    return (x[:, :, c * k : (c + 1) * k].mean(-1).sum(1)
            + x[:, :, L + c * k : L + (c + 1) * k].mean(-1).sum(1))


LOOP_FEATURES = ("centre", "oe", "donut", "lowerleft", "anchor_signal")


def loop_features(hic: torch.Tensor, epi: torch.Tensor) -> torch.Tensor:
    """The loop head's baseline features, (B, 5) in :data:`LOOP_FEATURES` order: the map
    contrasts of :func:`loop_contrast_features` and the anchors' :func:`anchor_signal`."""
    W = hic.shape[-1]
    return torch.cat([loop_contrast_features(hic), anchor_signal(epi, W)[:, None]
                      .to(torch.promote_types(hic.dtype, torch.float32))], dim=1)


class LoopHead(nn.Module):
    """Loop logit from pooled fused tokens, the anchor pair, the map's centre and distance.

    (B, N, 8E) fused -> mean -> Linear(8E -> h); anchor tokens a = skips[0][:, W//2],
    b = skips[0][:, W + W//2] -> Linear(E -> h) of (a + b) / 2 + a * b; distance ->
    DistanceEmbedding(h); with a map: centre crop (k x k) of [map, distance contrast] ->
    Conv3x3 - GELU - Conv3x3 - GELU -> centre + mean features -> Linear(-> h), plus
    ``loop_features`` (map contrasts and anchor signal) -> Linear(5 -> h). Sum -> ReLU -
    Dropout - Linear(h -> 1). The features also reach the logit through a linear path, so
    the head starts from what the baselines know. Output: (B,) logits.
    """

    def __init__(self, cfg: MixHicConfig, uses_hic: bool = True) -> None:
        super().__init__()
        E, h, W = cfg.embed_dim, cfg.loop_hidden, cfg.window_bins
        self.W, self.uses_hic = W, uses_hic
        self.pooled = nn.Linear(cfg.model_dim, h)
        self.anchors = nn.Linear(E, h)
        self.distance = DistanceEmbedding(h)
        self.out = nn.Sequential(nn.ReLU(), nn.Dropout(cfg.head_dropout), nn.Linear(h, 1))
        if uses_hic:
            self.crop = min(W, 11)
            ch = max(8, h // 2)
            self.conv = nn.Sequential(
                nn.Conv2d(2, ch, kernel_size=3, padding=1), nn.GELU(),
                nn.Conv2d(ch, ch, kernel_size=3, padding=1), nn.GELU(),
            )
            self.conv_proj = nn.Linear(2 * ch, h)
            n = len(LOOP_FEATURES)
            self.contrast = nn.Linear(n, h)
            self.contrast_skip = nn.Linear(n, 1)
            self.contrast_norm = nn.BatchNorm1d(n, affine=False)

    @torch.no_grad()
    def init_contrast_prior(self) -> None:
        """Start the linear path at the local-contrast baselines: standardised o/e + donut
        contrast (what HiCCUPS-like callers score; the driver replaces it with a fit on the
        train split, :meth:`set_contrast_prior`).

        The learned path's output layer gets torch's default Linear init (uniform
        +-1/sqrt(h), std ~0.14 at h = 16) rather than the model's std-0.02 init: beside a
        prior whose logits span several units, a smaller output layer stays too small to
        matter within a fine-tuning run (AdamW moves a weight ~lr per step) and the model
        stays at its prior. Real case, 5-fold region CV, bimodal loops AUROC per fold:
        std 1e-3 (silenced) 0.870 / 0.846 / 0.707 / 0.740 / 0.839 (mean 0.800), std 0.02
        0.870 / 0.882 / 0.707 / 0.740 (4 folds), std 0.15 0.935 / 0.905 / 0.716 / 0.740 /
        0.801 (mean 0.819); o/e alone 0.857 / 0.852 / 0.658 / 0.686 / 0.842 (mean 0.779)."""
        if self.uses_hic:
            self.contrast_skip.weight.copy_(torch.tensor([[0.0, 1.0, 1.0, 0.0, 0.0]]))
            self.contrast_skip.bias.zero_()
            self.out[-1].reset_parameters()

    @torch.no_grad()
    def set_contrast_prior(self, weight: Sequence[float], bias: float, mean: Sequence[float],
                           var: Sequence[float]) -> None:
        """Start the linear path from a fitted detector: ``weight`` (5,) and ``bias`` of a
        logistic regression of the label on :func:`loop_features` standardised by
        ``mean`` / ``var`` (5,) (which become the feature norm's running statistics).
        The driver fits it on the train split (``mixhic.platform.finetune``), so training
        starts from the best linear combination of the o/e, donut, lower-left and
        anchor-signal baselines instead of a fixed one."""
        if not self.uses_hic:
            raise ValueError("set_contrast_prior: this head reads no map (epi-only mode)")
        w = torch.as_tensor(weight, dtype=torch.float32).reshape(1, len(LOOP_FEATURES))
        self.contrast_skip.weight.copy_(w)
        self.contrast_skip.bias.fill_(float(bias))
        self.contrast_norm.running_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.contrast_norm.running_var.copy_(torch.as_tensor(var, dtype=torch.float32))

    def forward(self, fused: torch.Tensor, skips: list[torch.Tensor],
                hic: torch.Tensor | None = None,
                offset: torch.Tensor | None = None,
                epi: torch.Tensor | None = None) -> torch.Tensor:
        B, W = fused.shape[0], self.W
        tok = skips[0] if skips else None
        z = self.pooled(fused.mean(dim=1))  # (B, h)
        if tok is not None and tok.shape[1] == 2 * W:
            a, b = tok[:, W // 2], tok[:, W + W // 2]  # (B, E) each
            z = z + self.anchors(0.5 * (a + b) + a * b)
        d = (torch.zeros(B, device=fused.device) if offset is None
             else offset.to(fused.device, torch.float32).reshape(B).abs())
        z = z + self.distance(d)
        skip = 0.0
        if self.uses_hic:
            if hic is None or epi is None:
                raise ValueError("LoopHead: this head reads the input map and tracks; pass "
                                 "hic and epi")
            raw_feats = loop_features(hic, epi)  # (B, 5)
            bn = self.contrast_norm  # batch statistics need >= 2 rows; else running ones
            feats = F.batch_norm(raw_feats, bn.running_mean, bn.running_var,
                                 training=self.training and B > 1, momentum=bn.momentum,
                                 eps=bn.eps)
            c0 = W // 2 - self.crop // 2
            crop = hic[:, c0 : c0 + self.crop, c0 : c0 + self.crop].float()
            x = torch.stack([crop, distance_contrast(crop)], dim=1)  # (B, 2, k, k)
            m = self.conv(x)  # (B, ch, k, k)
            k2 = self.crop // 2
            conv_feats = torch.cat([m[:, :, k2, k2], m.mean(dim=(2, 3))], dim=1)
            z = z + self.conv_proj(conv_feats) + self.contrast(feats)
            skip = self.contrast_skip(feats).squeeze(-1)
        return self.out(z).squeeze(-1) + skip


class _DecodedHead(nn.Module):
    """A head over the decoder's tokens: ``tokens(fused, skips)`` -> (B, 2W, E), the
    x-anchor's W tokens then the y-anchor's."""

    def __init__(self, cfg: MixHicConfig) -> None:
        super().__init__()
        self.decoder = TokenDecoder(cfg)
        self.W = cfg.window_bins

    def tokens(self, fused: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        return self.decoder(fused, skips)


class MapHead(_DecodedHead):
    """Decoder, then pixel (i, j) =
    MLP((a_i + b_j)/2 + a_i * b_j + D(d_ij) + X(c_ij)) + e(d_ij).

    a = tokens of the x-anchor (first W), b = tokens of the y-anchor (last W);
    d_ij = |offset + j - i| bins (genomic distance); D = learned log-distance embedding,
    e = learned expected value per distance (a DistanceEmbedding of width 1), so the MLP
    predicts the observed-over-expected residual on top of the decay.
    c_ij = the boundary strength crossed between the two bins (:func:`boundaries_crossed`
    over a per-token score ``softplus(w . t + b)``), X = a learned embedding of it: whether
    two bins share a domain is a sum along the chromosome between them, which the pair
    product of two tokens cannot express. Output (B, W, W).
    """

    def __init__(self, cfg: MixHicConfig) -> None:
        super().__init__(cfg)
        E = cfg.embed_dim
        self.distance = DistanceEmbedding(E)
        self.expected = DistanceEmbedding(1)
        self.boundary = nn.Linear(E, 1)
        nn.init.constant_(self.boundary.bias, -2.0)  # softplus(-2) = 0.13: few boundaries
        self.gap_boundary = nn.Parameter(torch.tensor(-2.0))  # per bin between anchors
        self.crossing = DistanceEmbedding(E, n=32, per_octave=4.0)
        self.pixel = nn.Sequential(nn.Linear(E, E), nn.GELU(), nn.Dropout(cfg.dropout),
                                   nn.Linear(E, 1))

    def forward(self, fused: torch.Tensor, skips: list[torch.Tensor],
                hic: torch.Tensor | None = None,
                offset: torch.Tensor | None = None) -> torch.Tensor:
        t = self.tokens(fused, skips)  # (B, 2W, E)
        d = pixel_distances(offset, t.shape[0], self.W, t.device)  # (B, W, W)
        s = F.softplus(self.boundary(t).squeeze(-1).float())  # (B, 2W)
        c = boundaries_crossed(s[:, : self.W], s[:, self.W :], offset,
                               F.softplus(self.gap_boundary))  # (B, W, W)
        a, b = t[:, : self.W, None, :], t[:, None, self.W :, :]  # (B, W, 1, E), (B, 1, W, E)
        pair = (0.5 * (a + b) + a * b + self.distance(d).to(t.dtype)
                + self.crossing(c).to(t.dtype))  # (B, W, W, E)
        return self.pixel(pair).squeeze(-1) + self.expected(d).squeeze(-1).to(t.dtype)

    @torch.no_grad()
    def init_expected(self, distances, values) -> None:
        """Start the learned expected from a measured decay curve: ``values`` (K,) at
        ``distances`` (K,) bins, interpolated onto the log-distance grid (flat past the
        ends). With few training steps the residual MLP then only learns the o/e part."""
        d = torch.as_tensor(distances, dtype=torch.float32)
        v = torch.as_tensor(values, dtype=torch.float32)
        order = torch.argsort(d)
        d, v = d[order], v[order]
        g = self.expected.grid_distances().clamp(d[0].item(), d[-1].item())
        k = torch.searchsorted(d, g).clamp(1, len(d) - 1)
        d0, d1, v0, v1 = d[k - 1], d[k], v[k - 1], v[k]
        w = ((g - d0) / (d1 - d0).clamp(min=1e-6)).clamp(0, 1)
        self.expected.table[:, 0] = v0 + w * (v1 - v0)


class CageHead(_DecodedHead):
    """Decoder, then per bin i an MLP of [a_i, b_i] (x- and y-anchor tokens): (B, W)."""

    def __init__(self, cfg: MixHicConfig) -> None:
        super().__init__(cfg)
        E = cfg.embed_dim
        self.bin = nn.Sequential(nn.Linear(2 * E, E), nn.GELU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(E, 1))

    def forward(self, fused: torch.Tensor, skips: list[torch.Tensor],
                hic: torch.Tensor | None = None,
                offset: torch.Tensor | None = None) -> torch.Tensor:
        t = self.tokens(fused, skips)  # (B, 2W, E)
        return self.bin(torch.cat([t[:, : self.W], t[:, self.W :]], dim=-1)).squeeze(-1)


def build_head(cfg: MixHicConfig, task: str, uses_hic: bool = False) -> nn.Module:
    """The head of ``task``; ``uses_hic`` (bimodal/nonpre) lets the loop head read the map."""
    if task == "loops":
        return LoopHead(cfg, uses_hic=uses_hic)
    heads = {"hic": MapHead, "cage": CageHead}
    if task not in heads:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
    return heads[task](cfg)
