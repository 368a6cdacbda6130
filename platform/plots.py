"""Evaluation figures (matplotlib, Agg backend): return a Figure, optionally save a PNG.

Every function takes plain arrays, returns a ``matplotlib.figure.Figure`` (log it with
:func:`mixhic.platform.tracking.log_figure`) and writes a PNG when ``path`` is given.
Figures are built with the object API (no pyplot state), so they are safe in workers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "hic_pairs_figure",
    "roc_pr_figure",
    "cage_scatter_figure",
    "loss_curves_figure",
    "weights_vs_metric_figure",
    "save_figure",
]

_DPI = 100


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG to ``path`` (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=_DPI)
    return path


def _done(fig: Figure, path: str | Path | None) -> Figure:
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def hic_pairs_figure(
    true_maps: Any,
    pred_maps: Any,
    titles: Sequence[str] | None = None,
    path: str | Path | None = None,
    cmap: str = "Reds",
) -> Figure:
    """True (top row) vs predicted (bottom row) Hi-C maps, one column per window.

    true_maps, pred_maps: (N, W, W) (N small, e.g. <= 6). Each column shares one colour
    scale (min/max of the pair), so the two maps of a window are comparable.
    """
    t, p = np.asarray(true_maps, dtype=float), np.asarray(pred_maps, dtype=float)
    if t.ndim == 2:
        t, p = t[None], p[None]
    if t.shape != p.shape or t.ndim != 3:
        raise ValueError(
            f"hic_pairs_figure: expected equal (N, W, W) maps, got {t.shape}, {p.shape}"
        )
    n = t.shape[0]
    if titles is not None and len(titles) != n:
        raise ValueError(f"hic_pairs_figure: {len(titles)} titles for {n} maps")
    fig = _figure(2.6 * n + 0.6, 5.4)
    axes = fig.subplots(2, n, squeeze=False)
    for j in range(n):
        lo = float(np.nanmin([t[j].min(), p[j].min()]))
        hi = float(np.nanmax([t[j].max(), p[j].max()]))
        for i, (m, label) in enumerate(((t[j], "true"), (p[j], "predicted"))):
            ax = axes[i, j]
            im = ax.imshow(m, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            head = titles[j] if titles is not None else f"window {j}"
            ax.set_title(f"{head}\n{label}" if i == 0 else label, fontsize=8)
        fig.colorbar(im, ax=axes[:, j].tolist(), shrink=0.6)
    fig.subplots_adjust(wspace=0.3, hspace=0.3)
    if path is not None:
        save_figure(fig, path)
    return fig


def roc_pr_figure(labels: Any, probs: Any, path: str | Path | None = None) -> Figure:
    """ROC and precision-recall curves of loop probabilities. labels, probs: (N,)."""
    from sklearn import metrics as skm

    y = np.asarray(labels).ravel().astype(int)
    pr = np.asarray(probs, dtype=float).ravel()
    if y.shape != pr.shape or y.size == 0:
        raise ValueError(f"roc_pr_figure: labels {y.shape} and probs {pr.shape} must match")
    fig = _figure(9, 4)
    ax_roc, ax_pr = fig.subplots(1, 2)
    if np.unique(y).size == 2:
        fpr, tpr, _ = skm.roc_curve(y, pr)
        prec, rec, _ = skm.precision_recall_curve(y, pr)
        auroc = skm.roc_auc_score(y, pr)
        auprc = skm.average_precision_score(y, pr)
        ax_roc.plot(fpr, tpr, label=f"AUROC={auroc:.3f}")
        ax_pr.step(rec, prec, where="post", label=f"AUPRC={auprc:.3f}")
        ax_pr.axhline(y.mean(), color="grey", ls="--", lw=0.8, label="chance")
    else:
        for ax in (ax_roc, ax_pr):
            ax.text(0.5, 0.5, "single class: undefined", ha="center", va="center")
    ax_roc.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8)
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC",
               xlim=(0, 1), ylim=(0, 1.01))
    ax_pr.set(xlabel="recall", ylabel="precision", title="precision-recall",
              xlim=(0, 1), ylim=(0, 1.01))
    for ax in (ax_roc, ax_pr):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=8)
    return _done(fig, path)


def cage_scatter_figure(
    true: Any, pred: Any, path: str | Path | None = None, max_points: int = 20000
) -> Figure:
    """Predicted vs true CAGE signal per bin (flattened), with the y = x line.

    A fixed-seed subsample of at most ``max_points`` points is drawn.
    """
    t = np.asarray(true, dtype=float).ravel()
    p = np.asarray(pred, dtype=float).ravel()
    if t.shape != p.shape or t.size == 0:
        raise ValueError(f"cage_scatter_figure: true {t.shape} and pred {p.shape} must match")
    if t.size > max_points:
        idx = np.random.default_rng(0).choice(t.size, max_points, replace=False)
        t, p = t[idx], p[idx]
    fig = _figure(5, 5)
    ax = fig.subplots()
    ax.scatter(t, p, s=3, alpha=0.3, linewidths=0)
    lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", ls="--", lw=0.8)
    r = np.corrcoef(t, p)[0, 1] if t.size > 1 and t.std() > 0 and p.std() > 0 else float("nan")
    ax.set(xlabel="true CAGE", ylabel="predicted CAGE", title=f"CAGE (Pearson r={r:.3f})")
    return _done(fig, path)


def loss_curves_figure(
    history: Mapping[str, Sequence[float]], path: str | Path | None = None,
    xlabel: str = "epoch",
) -> Figure:
    """One line per series of ``history`` (e.g. ``{"train_loss": [...], "val_loss": [...]}``)."""
    if not history:
        raise ValueError("loss_curves_figure: history is empty")
    fig = _figure(6, 4)
    ax = fig.subplots()
    for name, values in history.items():
        v = np.asarray(values, dtype=float)
        ax.plot(np.arange(1, v.size + 1), v, marker="o" if v.size < 30 else None, ms=3, label=name)
    ax.set(xlabel=xlabel, ylabel="value", title="training curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _done(fig, path)


def weights_vs_metric_figure(
    rows: Sequence[Mapping[str, Any]],
    weight_keys: Sequence[str],
    metric: str,
    path: str | Path | None = None,
) -> Figure:
    """Scatter of ``metric`` against each swept weight (one panel per key), for a Tune sweep.

    rows: one mapping per trial holding every ``weight_keys`` entry and ``metric``.
    The best trial is highlighted.
    """
    if not rows or not weight_keys:
        raise ValueError("weights_vs_metric_figure: need at least one row and one weight key")
    for i, r in enumerate(rows):
        missing = [k for k in (*weight_keys, metric) if k not in r]
        if missing:
            raise ValueError(f"weights_vs_metric_figure: row {i} lacks {missing}")
    y = np.array([float(r[metric]) for r in rows])
    best = int(np.nanargmax(y)) if np.isfinite(y).any() else None
    k = len(weight_keys)
    ncols = min(k, 3)
    nrows = math.ceil(k / ncols)
    fig = _figure(3.6 * ncols, 3.2 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, key in zip(axes, weight_keys):
        x = np.array([float(r[key]) for r in rows])
        ax.scatter(x, y, c=y, cmap="viridis", s=25)
        if best is not None:
            ax.scatter([x[best]], [y[best]], s=120, facecolors="none", edgecolors="red",
                       label="best")
            ax.legend(fontsize=7)
        ax.set(xlabel=key, ylabel=metric)
        ax.grid(alpha=0.3)
    for ax in axes[k:]:
        ax.set_visible(False)
    fig.suptitle(f"{metric} vs swept weights ({len(rows)} trials)", fontsize=10)
    return _done(fig, path)
