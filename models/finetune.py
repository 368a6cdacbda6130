"""The MIX-HIC fine-tuning model: encoders + interaction (+ mapping) + fusion + one head.

Modes (only the modules a mode uses are built, so every parameter gets a gradient):

- ``bimodal``: Hi-C + epi; encoders and interaction block meant to be loaded from
  pretraining (``load_pretrained``).
- ``nonpre``: the same network trained from scratch (never loaded from pretraining).
- ``infer``: epi only; pseudo Hi-C tokens = mapping e2m of the epi interaction tokens
  (MIX-HIC-Infer); no Hi-C encoder.
- ``epi``: epi only, no mapping and no cross-attention: the single-modal baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import FusionLayer, init_weights
from .config import MixHicConfig
from .crossmodal import InteractionBlock, MappingBlock
from .encoders import EpiEncoder, HicEncoder, check_hic
from .heads import build_head
from .tasks import HIC_INPUT_MODES, MODES, TASKS, observed_pixels

__all__ = ["FinetuneModel", "MODES", "TASKS", "HIC_INPUT_MODES"]


class FinetuneModel(nn.Module):
    """``forward(epi, hic=None, offset=None)``: epi (B, C, 2L), hic (B, W, W) -> prediction.

    Predictions: task ``hic`` (B, W, W) contact values; ``loops`` (B,) logits;
    ``cage`` (B, W) values. ``hic`` is required in bimodal/nonpre and ignored otherwise.
    ``offset`` (B,): bins from the x-anchor's first bin to the y-anchor's
    (``(y_start - x_start) / resolution``), the genomic distance the heads see; None = 0
    (windows on the diagonal).
    """

    def __init__(self, cfg: MixHicConfig, task: str = "loops", mode: str = "bimodal") -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        self.cfg, self.task, self.mode = cfg, task, mode
        self.uses_hic = mode in HIC_INPUT_MODES
        if self.uses_hic:
            self.hic_encoder = HicEncoder(cfg)
        self.epi_encoder = EpiEncoder(cfg)
        self.interaction = InteractionBlock(cfg, ("hic", "epi") if self.uses_hic else ("epi",))
        if mode == "infer":
            self.mapping = MappingBlock(cfg, ("e2m",))
        cross = mode != "epi"
        self.fusion = nn.ModuleList(
            FusionLayer(cfg.model_dim, cfg.n_heads, cfg.mlp_ratio, cfg.dropout, cross=cross)
            for _ in range(cfg.fusion_layers)
        )
        self.fusion_norm = nn.LayerNorm(cfg.model_dim)
        self.head = build_head(cfg, task, uses_hic=self.uses_hic)
        self.apply(init_weights)
        if task == "loops":
            self.head.init_contrast_prior()

    @property
    def uses_pretrained(self) -> bool:
        """False for ``nonpre``, which is defined as never loading pretrained weights."""
        return self.mode != "nonpre"

    def forward(self, epi: torch.Tensor, hic: torch.Tensor | None = None,
                offset: torch.Tensor | None = None) -> torch.Tensor:
        e, skips = self.epi_encoder(epi)  # (B, Ne, 8E), skips
        _, _, e_tok = self.interaction(e, "epi")  # (B, Ne, 8E)
        ctx: torch.Tensor | None
        if offset is not None and offset.shape != (epi.shape[0],):
            raise ValueError(f"offset: expected shape ({epi.shape[0]},) (one anchor offset in "
                             f"bins per window), got {tuple(offset.shape)}")
        if self.uses_hic:
            if hic is None:
                raise ValueError(f"hic: required in mode {self.mode!r} (use 'infer' or 'epi' "
                                 "for epigenomic-only input)")
            check_hic(self.cfg, hic)
            if hic.shape[0] != epi.shape[0]:
                raise ValueError(f"hic and epi batch sizes differ: {hic.shape[0]} vs "
                                 f"{epi.shape[0]}")
            _, _, ctx = self.interaction(self.hic_encoder(hic), "hic")  # (B, Nh, 8E)
        elif self.mode == "infer":
            ctx = self.mapping(e_tok, "e2m")  # pseudo Hi-C tokens (B, Nh, 8E)
        else:
            ctx = None
        x = e_tok
        for layer in self.fusion:
            x = layer(x, ctx)
        extra = {"epi": epi} if self.task == "loops" else {}  # the loop head's anchor signal
        return self.head(self.fusion_norm(x), skips, hic=hic if self.uses_hic else None,
                         offset=offset, **extra)

    def predict(self, epi: torch.Tensor, hic: torch.Tensor | None = None,
                offset: torch.Tensor | None = None) -> torch.Tensor:
        """Forward in float32 with the task's output scale: loop logits -> probabilities (B,);
        Hi-C (B, W, W) and CAGE (B, W) as they are. The one place inference code gets this."""
        out = self(epi, hic, offset).float()
        return torch.sigmoid(out) if self.task == "loops" else out

    def loss(self, pred: torch.Tensor, target: torch.Tensor,
             pos_weight: float | None = None) -> torch.Tensor:
        """MSE for ``hic`` (over observed pixels: :func:`~mixhic.models.tasks.observed_pixels`)
        and ``cage``, BCE-with-logits for ``loops`` (target 0/1);
        ``pos_weight`` weighs the positive class (n_negatives / n_positives balances it)."""
        if pred.shape != target.shape:
            raise ValueError(f"target: expected shape {tuple(pred.shape)} for task "
                             f"{self.task!r}, got {tuple(target.shape)}")
        if self.task == "loops":
            pw = None if pos_weight is None else torch.tensor(float(pos_weight),
                                                               device=pred.device)
            return F.binary_cross_entropy_with_logits(pred.float(), target.float(),
                                                      pos_weight=pw)
        if self.task == "hic":  # unobserved pixels (masked bins) carry no target
            seen = observed_pixels(target).float()
            return (seen * (pred.float() - target.float()) ** 2).sum() / seen.sum().clamp(min=1)
        return F.mse_loss(pred.float(), target.float())
