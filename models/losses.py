"""Pretraining and fine-tuning losses (pure functions of tensors) and the loss weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["LossWeights", "info_nce", "pairing_accuracy", "pairing_chance",
           "orthogonality_loss", "mapping_loss", "pool_tokens"]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the pretraining losses: ``con * L_con + orth * L_orth + map * L_map``.

    Defaults follow the published schedule after warm-up: 0.5 * (con + orth) + 0.5 * map.
    """

    con: float = 0.5
    orth: float = 0.5
    map: float = 0.5

    def __post_init__(self) -> None:
        for name in ("con", "orth", "map"):
            val = getattr(self, name)
            if not isinstance(val, (int, float)) or isinstance(val, bool) or not val >= 0:
                raise ValueError(f"LossWeights.{name}: must be a number >= 0 (got {val!r})")


def pool_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, N, D) -> (B, D) by mean over tokens; (B, D) passes through."""
    return x.mean(dim=1) if x.dim() == 3 else x


def _cosines(a: torch.Tensor, b: torch.Tensor, standardize: bool, eps: float) -> torch.Tensor:
    """(B, B) cosine of every pooled ``a`` with every pooled ``b``, each feature first
    standardised over the batch when ``standardize`` (see :func:`info_nce`)."""
    a, b = pool_tokens(a).float(), pool_tokens(b).float()
    if standardize:
        a = (a - a.mean(0)) / (a.std(0) + eps)
        b = (b - b.mean(0)) / (b.std(0) + eps)
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).t()


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: torch.Tensor | float,
             standardize: bool = False, eps: float = 1e-5) -> torch.Tensor:
    """Symmetric CLIP-style InfoNCE; pair i of ``a`` matches pair i of ``b``.

    a, b: (B, D) or (B, N, D) (mean-pooled over tokens), L2-normalised here.
    Negatives are the other samples of the batch. Returns a scalar.

    ``standardize``: before the L2 normalisation, centre and scale each feature over the
    batch (a BatchNorm without parameters, as in SimCLR-style projection heads). Windows
    of one modality start out nearly identical (the distance decay dominates Hi-C), the
    plain loss then sits at the collapse point ``ln(B)`` where every gradient vanishes;
    standardising compares what differs between windows. Needs B >= 2.
    """
    if standardize and a.shape[0] < 2:
        raise ValueError("info_nce: standardize=True needs a batch of at least 2")
    logits = _cosines(a, b, standardize, eps) / temperature  # (B, B)
    labels = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def pairing_accuracy(a: torch.Tensor, b: torch.Tensor, standardize: bool = False,
                     eps: float = 1e-5, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """How often a window's vector of one modality is closest (cosine, as in
    :func:`info_nce`, same ``standardize``) to its own window's vector of the other, among
    the batch; mean of both directions. Ties count as misses.

    ``exclude`` (B, B) bool: True where window j does not compete with window i (e.g. the
    two overlap, so j's vectors are nearly i's own and taking one for the other is no
    error); must be symmetric. Chance is :func:`pairing_chance` of the same ``exclude``
    (``1 / B`` without one): the baseline the pretraining reports beside it."""
    sim = _cosines(a, b, standardize and a.shape[0] >= 2, eps)
    own = sim.diagonal()
    compete = _competitors(exclude, sim.shape[0], sim.device)
    rows = ((sim >= own[:, None]) & compete).sum(1) == 0  # a_i nearest to b_i
    cols = ((sim >= own[None, :]) & compete).sum(0) == 0  # b_j nearest to a_j
    return 0.5 * (rows.float().mean() + cols.float().mean())


def pairing_chance(batch_size: int, exclude: torch.Tensor | None = None) -> float:
    """Expected :func:`pairing_accuracy` of unrelated vectors: the mean over windows of
    1 / (1 + the number of windows competing with it); ``1 / B`` without ``exclude``."""
    compete = _competitors(exclude, batch_size, None)
    return float((1.0 / (1.0 + compete.sum(1).double())).mean())


def _competitors(exclude: torch.Tensor | None, n: int, device) -> torch.Tensor:
    """(n, n) bool: j competes with i (not i itself, not excluded)."""
    compete = ~torch.eye(n, dtype=torch.bool, device=device)
    if exclude is not None:
        if exclude.shape != (n, n):
            raise ValueError(f"exclude: expected shape ({n}, {n}), got {tuple(exclude.shape)}")
        if not torch.equal(exclude, exclude.t()):
            raise ValueError("exclude: must be symmetric (j excluded for i iff i for j)")
        compete &= ~exclude.to(compete.device)
    return compete


def orthogonality_loss(shared: torch.Tensor, specific: torch.Tensor) -> torch.Tensor:
    """Batch mean of the squared cosine between pooled shared and specific vectors.

    shared, specific: (B, D) or (B, N, D). 0 when they are orthogonal, 1 when parallel.
    """
    s = F.normalize(pool_tokens(shared).float(), dim=-1)
    p = F.normalize(pool_tokens(specific).float(), dim=-1)
    return ((s * p).sum(-1) ** 2).mean()


def mapping_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between L2-normalised prediction and target tokens.

    pred, target: (B, N, D). 0 when they point the same way; at most 4.
    """
    p = F.normalize(pred.float(), dim=-1)
    t = F.normalize(target.float(), dim=-1)
    return ((p - t) ** 2).sum(-1).mean()
