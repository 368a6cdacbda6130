"""Evaluation metrics for the three fine-tuning tasks, and deterministic prediction stores.

Pure numpy/scipy/scikit-learn (no Ray, no torch): every function takes arrays and returns
``dict[str, float]`` ready for :func:`mixhic.platform.tracking.log_metrics`.

- Hi-C maps (``true``/``pred`` of shape (N, W, W)): R^2 as ``r2_score(true, pred)`` and
  Pearson/Spearman, flattened over the whole split (the paper's way) and averaged per map;
  distance-stratified Pearson (one value per diagonal offset of the window); correlation
  of insulation-score profiles.
- Loops (labels (N,), probabilities (N,)): F1/precision/recall/accuracy at a threshold,
  AUROC, AUPRC (average precision).
- CAGE (true/pred (N, W)): R^2, Pearson, Spearman flattened over all bins.

Determinism: collect predictions with :class:`PredictionStore`, whose ``finalize`` sorts
rows by their keys, so the metrics of a checkpoint on a dataset do not depend on the batch
size, the number of workers or the order batches arrived in. All sums run in float64.

    >>> store = PredictionStore()
    >>> store.add({"chrom": chroms, "x_start": xs}, true_batch, pred_batch)  # per batch
    >>> keys, true, pred = store.finalize()
    >>> task_metrics("hic", true, pred)["pearson"]
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from mixhic.models.tasks import TASKS, observed_pixels
from sklearn import metrics as skm

__all__ = [
    "PRIMARY_METRIC",
    "METRIC_MODE",
    "TASKS",
    "hic_metrics",
    "loop_metrics",
    "ranking_metrics",
    "cage_metrics",
    "task_metrics",
    "insulation_score",
    "distance_strata_pearson",
    "prediction_warnings",
    "DISTANCE_STRATA_KB",
    "PredictionStore",
    "Predictions",
]

log = logging.getLogger(__name__)

#: The metric early stopping / model selection / Tune optimise, per task.
PRIMARY_METRIC: dict[str, str] = {"hic": "pearson", "loops": "auroc", "cage": "r2"}
#: Optimisation direction of each primary metric (all are "higher is better").
METRIC_MODE: dict[str, str] = {"hic": "max", "loops": "max", "cage": "max"}


# --------------------------------------------------------------------------- helpers
def _as_f64(name: str, x: Any) -> np.ndarray:
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: expected a numeric array ({e})") from None


def _check_pair(true: Any, pred: Any, ndim: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    t, p = _as_f64("true", true), _as_f64("pred", pred)
    if t.shape != p.shape:
        raise ValueError(f"{what}: true and pred shapes differ: {t.shape} vs {p.shape}")
    if t.ndim != ndim:
        raise ValueError(f"{what}: expected {ndim}-D arrays, got shape {t.shape}")
    if t.shape[0] == 0:
        raise ValueError(f"{what}: no rows to evaluate (empty arrays)")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError(f"{what}: true/pred contain NaN or inf values")
    return t, p


def _r2(t: np.ndarray, p: np.ndarray) -> float:
    """sklearn ``r2_score(t, p)`` on flattened arrays; NaN (not 0/1) when ``t`` is constant."""
    t, p = t.ravel(), p.ravel()
    if t.size < 2 or np.ptp(t) == 0:
        return float("nan")
    return float(skm.r2_score(t, p))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of flattened arrays (== scipy.stats.pearsonr); NaN if either is constant."""
    a, b = a.ravel(), b.ravel()
    if a.size < 2:
        return float("nan")
    return float(_rowwise_pearson(a[None], b[None])[0])


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rho of flattened arrays (== scipy.stats.spearmanr, average ranks for ties)."""
    a, b = a.ravel(), b.ravel()
    if a.size < 2:
        return float("nan")
    return float(_rowwise_pearson(_rank_rows(a[None]), _rank_rows(b[None]))[0])


def _rank_rows(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties share their mean rank) within each row of (N, K).

    Same values as ``scipy.stats.rankdata(x, axis=1)``, using an unstable sort (ties get
    the same rank whatever their order), several times faster on millions of values.
    """
    n, k = x.shape
    order = np.argsort(x, axis=1, kind="quicksort")  # (N, K)
    xs = np.take_along_axis(x, order, axis=1)
    new = np.ones((n, k), dtype=bool)  # first element of each tie group
    new[:, 1:] = xs[:, 1:] != xs[:, :-1]
    flat = new.ravel()
    starts = np.flatnonzero(flat)  # (G,) flat index of each tie group
    counts = np.diff(np.append(starts, n * k))
    avg = (starts % k) + (counts - 1) / 2.0 + 1.0  # mean rank of each group
    sorted_ranks = avg[np.cumsum(flat) - 1].reshape(n, k)
    ranks = np.empty((n, k), dtype=np.float64)
    np.put_along_axis(ranks, order, sorted_ranks, axis=1)
    return ranks


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row of (N, K) arrays -> (N,), NaN where a row is constant."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    num = (a * b).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.clip(r, -1.0, 1.0)


def _rowwise_r2(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """R^2 of each row of (N, K) arrays (``r2_score(t_i, p_i)``) -> (N,), NaN for constant t_i."""
    ss_res = ((t - p) ** 2).sum(axis=1)
    ss_tot = ((t - t.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), np.nan)


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0 or np.isnan(x).all():
        return float("nan")
    return float(np.nanmean(x))


# --------------------------------------------------------------------------- Hi-C
def insulation_score(maps: Any, window: int) -> np.ndarray:
    """Insulation score of each bin of each map.

    For bin ``i`` the score is the mean of the ``window x window`` square just off the
    diagonal, ``M[i-window:i, i+1:i+1+window]``: contacts between the ``window`` bins
    upstream and downstream of ``i``. It dips at TAD boundaries. Bins whose square does not
    fit inside the map are NaN; NaN pixels (unobserved) are left out of the mean.

    maps: (N, W, W) or (W, W). Returns (N, W) (or (W,)) float64.
    """
    m = _as_f64("maps", maps)
    single = m.ndim == 2
    if single:
        m = m[None]
    if m.ndim != 3 or m.shape[1] != m.shape[2]:
        raise ValueError(f"insulation_score: expected (N, W, W) maps, got shape {m.shape}")
    if window < 1:
        raise ValueError(f"insulation_score: window must be >= 1, got {window}")
    n, w, _ = m.shape
    out = np.full((n, w), np.nan)
    for i in range(window, w - window):
        sq = m[:, i - window : i, i + 1 : i + 1 + window]
        with warnings.catch_warnings():  # an all-NaN square (unobserved bins) stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            out[:, i] = np.nanmean(sq, axis=(1, 2))
    return out[0] if single else out


def _diagonals(x: np.ndarray, k: int) -> np.ndarray:
    """Offset-``k`` diagonal of every map of (N, W, W), upper and lower: (N, 2*(W-k)) or (N, W)."""
    up = np.diagonal(x, offset=k, axis1=1, axis2=2)
    if k == 0:
        return up
    lo = np.diagonal(x, offset=-k, axis1=1, axis2=2)
    return np.concatenate([up, lo], axis=1)


def hic_metrics(
    true: Any,
    pred: Any,
    *,
    offsets: Sequence[int] | None = None,
    insulation_window: int | None = None,
) -> dict[str, float]:
    """Metrics of predicted Hi-C maps against the true ones.

    true, pred: (N, W, W) maps (same transform, e.g. log1p of balanced contacts).
    offsets: diagonal offsets for the distance-stratified Pearson (default: every offset
        ``0..W-2``; the distance is within the window, i.e. genomic distance for windows on
        the diagonal). Each needs >= 3 values over the split, or it is NaN.
    insulation_window: side of the insulation square in bins (default ``max(2, W // 10)``).

    Returns ``r2`` (``sklearn.metrics.r2_score(true, pred)`` on the flattened split),
    ``pearson`` and ``spearman`` (flattened), ``r2_per_map``, ``pearson_per_map``,
    ``spearman_per_map`` (mean over maps, constant maps skipped), ``pearson_d{k}`` for each
    offset and their mean ``pearson_by_distance_mean``, and ``insulation_pearson`` (mean
    over maps of the Pearson r between true and predicted insulation profiles). Every
    metric is over the observed pixels of ``true`` only
    (:func:`mixhic.models.tasks.observed_pixels`: rows and columns of a masked bin are left
    out).
    """
    t, p = _check_pair(true, pred, 3, "hic_metrics")
    n, w, w2 = t.shape
    if w != w2:
        raise ValueError(f"hic_metrics: maps must be square (N, W, W), got shape {t.shape}")
    seen = observed_pixels(t)
    out: dict[str, float] = {
        "r2": _r2(t[seen], p[seen]),
        "pearson": _pearson(t[seen], p[seen]),
        "spearman": _spearman(t[seen], p[seen]),
    }
    tf, pf = t.reshape(n, -1), p.reshape(n, -1)
    if seen.all():
        out["r2_per_map"] = _nanmean(_rowwise_r2(tf, pf))
        out["pearson_per_map"] = _nanmean(_rowwise_pearson(tf, pf))
        out["spearman_per_map"] = _nanmean(_rowwise_pearson(_rank_rows(tf), _rank_rows(pf)))
    else:
        per = np.array([(_r2(a[m], b[m]), _pearson(a[m], b[m]), _spearman(a[m], b[m]))
                        if m.sum() >= 2 else (np.nan,) * 3
                        for a, b, m in zip(tf, pf, seen.reshape(n, -1))]).reshape(-1, 3)
        out["r2_per_map"], out["pearson_per_map"], out["spearman_per_map"] = (
            _nanmean(per[:, k]) for k in range(3))

    ks = range(max(w - 1, 1)) if offsets is None else offsets
    by_dist = []
    for k in ks:
        if not 0 <= k < w:
            raise ValueError(f"hic_metrics: offset {k} outside 0..{w - 1}")
        sd = _diagonals(seen, k)
        td, pd = _diagonals(t, k)[sd], _diagonals(p, k)[sd]
        r = _pearson(td, pd) if td.size >= 3 else float("nan")
        out[f"pearson_d{k}"] = r
        by_dist.append(r)
    out["pearson_by_distance_mean"] = _nanmean(np.array(by_dist))

    s = max(2, w // 10) if insulation_window is None else insulation_window
    ti = insulation_score(np.where(seen, t, np.nan), s)
    pi = insulation_score(np.where(seen, p, np.nan), s)
    valid = np.isfinite(ti) & np.isfinite(pi)
    if seen.all() and valid[0].sum() >= 3:
        out["insulation_pearson"] = _nanmean(_rowwise_pearson(ti[:, valid[0]], pi[:, valid[0]]))
    else:
        rs = [_pearson(a[v], b[v]) for a, b, v in zip(ti, pi, valid) if v.sum() >= 3]
        out["insulation_pearson"] = _nanmean(np.array(rs)) if rs else float("nan")
    return out


#: Edges (kb) of the genomic-distance strata of :func:`distance_strata_pearson`.
DISTANCE_STRATA_KB = (0, 50, 100, 250, 500, 1000, 2000)


def distance_strata_pearson(true: Any, pred: Any, distance_bp: Any,
                            edges_kb: Sequence[float] = DISTANCE_STRATA_KB) -> dict[str, float]:
    """Pearson r of pixels grouped by genomic distance: ``pearson_s{lo}-{hi}kb``.

    true, pred, distance_bp: same shape (e.g. (N, W, W) maps and each pixel's distance in
    bp). A stratum is ``lo <= d < hi``; the last one is open-ended (``{lo}kb+``). Strata
    with fewer than 3 pixels are left out, and so are NaN pixels (unobserved).
    """
    t, p = _as_f64("true", true).ravel(), _as_f64("pred", pred).ravel()
    d = _as_f64("distance_bp", distance_bp).ravel()
    if not t.shape == p.shape == d.shape:
        raise ValueError(f"distance_strata_pearson: shapes differ: {t.shape}, {p.shape}, "
                         f"{d.shape}")
    out: dict[str, float] = {}
    edges = [float(e) * 1000 for e in edges_kb]
    finite = np.isfinite(t) & np.isfinite(p)  # NaN: an unobserved pixel, left out
    for k, lo in enumerate(edges):
        hi = edges[k + 1] if k + 1 < len(edges) else np.inf
        sel = (d >= lo) & (d < hi) & finite
        if sel.sum() < 3:
            continue
        name = (f"pearson_s{edges_kb[k]:g}-{edges_kb[k + 1]:g}kb" if np.isfinite(hi)
                else f"pearson_s{edges_kb[k]:g}kb+")
        out[name] = _pearson(t[sel], p[sel])
    return out


def prediction_warnings(task: str, pred: Any) -> list[str]:
    """Plain-language warnings about degenerate predictions (empty list when fine):
    constant outputs, or loop probabilities squeezed into a band narrower than 0.02."""
    p = _as_f64("pred", pred)
    out = []
    if p.size and float(np.nanmax(p) - np.nanmin(p)) < 1e-6:
        out.append(f"{task}: every prediction is {float(np.nanmean(p)):.4g}: the model "
                   "outputs a constant (untrained, collapsed or diverged)")
    elif task == "loops" and p.size and float(np.ptp(p)) < 0.02:
        out.append(f"loops: probabilities span only {float(np.min(p)):.3f}-"
                   f"{float(np.max(p)):.3f}: the model barely separates windows")
    return out


# --------------------------------------------------------------------------- loops
def loop_metrics(labels: Any, probs: Any, threshold: float = 0.5) -> dict[str, float]:
    """Classification metrics of loop probabilities.

    labels: (N,) in {0, 1}; probs: (N,) probabilities in [0, 1] (apply a sigmoid to
    logits first). Returns ``f1``, ``precision``, ``recall``, ``accuracy`` at ``threshold``
    and the threshold-free ``auroc`` and ``auprc`` (average precision), plus ``n`` and
    ``pos_frac``. With a single class in ``labels``, auroc/auprc are NaN (warning).
    """
    y = np.asarray(labels).ravel()
    pr = _as_f64("probs", probs).ravel()
    if y.shape != pr.shape:
        raise ValueError(f"loop_metrics: labels and probs shapes differ: {y.shape} vs {pr.shape}")
    if y.size == 0:
        raise ValueError("loop_metrics: no rows to evaluate (empty arrays)")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("loop_metrics: labels must be 0 or 1")
    if not np.isfinite(pr).all() or pr.min() < 0 or pr.max() > 1:
        raise ValueError("loop_metrics: probs must be probabilities in [0, 1] (sigmoid the logits)")
    y = y.astype(np.int64)
    hard = (pr >= threshold).astype(np.int64)
    out = {
        "f1": float(skm.f1_score(y, hard, zero_division=0)),
        "precision": float(skm.precision_score(y, hard, zero_division=0)),
        "recall": float(skm.recall_score(y, hard, zero_division=0)),
        "accuracy": float(skm.accuracy_score(y, hard)),
        "n": float(y.size),
        "pos_frac": float(y.mean()),
    }
    out.update(ranking_metrics(y, pr))
    return out


def ranking_metrics(labels: Any, scores: Any) -> dict[str, float]:
    """Threshold-free ``auroc`` and ``auprc`` of any scores (higher = positive), e.g. a
    baseline's raw contrast; NaN scores rank lowest. With a single class in ``labels``
    both are NaN (warning)."""
    y = np.asarray(labels).ravel().astype(np.int64)
    s = _as_f64("scores", scores).ravel().copy()
    bad = ~np.isfinite(s)
    if bad.any():  # NaN ranks below every real score
        s[bad] = s[~bad].min() - 1.0 if (~bad).any() else 0.0
    if np.unique(y).size < 2:
        warnings.warn(
            f"ranking_metrics: labels have a single class ({int(y[0])}); auroc/auprc are NaN",
            RuntimeWarning,
            stacklevel=2,
        )
        return {"auroc": float("nan"), "auprc": float("nan")}
    return {"auroc": float(skm.roc_auc_score(y, s)),
            "auprc": float(skm.average_precision_score(y, s))}


# --------------------------------------------------------------------------- CAGE
def cage_metrics(true: Any, pred: Any) -> dict[str, float]:
    """CAGE track metrics. true, pred: (N, W) (any shape, flattened over all bins).

    Returns ``r2`` (``r2_score(true, pred)``), ``pearson`` and ``spearman`` over all bins.
    """
    t, p = _as_f64("true", true), _as_f64("pred", pred)
    if t.shape != p.shape:
        raise ValueError(f"cage_metrics: true and pred shapes differ: {t.shape} vs {p.shape}")
    if t.size == 0:
        raise ValueError("cage_metrics: no rows to evaluate (empty arrays)")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError("cage_metrics: true/pred contain NaN or inf values")
    return {"r2": _r2(t, p), "pearson": _pearson(t, p), "spearman": _spearman(t, p)}


def task_metrics(task: str, true: Any, pred: Any, **kwargs: Any) -> dict[str, float]:
    """Dispatch: ``hic`` -> :func:`hic_metrics`, ``loops`` -> :func:`loop_metrics` (pred are
    probabilities), ``cage`` -> :func:`cage_metrics`. Extra kwargs go to the function."""
    if task == "hic":
        return hic_metrics(true, pred, **kwargs)
    if task == "loops":
        return loop_metrics(true, pred, **kwargs)
    if task == "cage":
        return cage_metrics(true, pred, **kwargs)
    raise ValueError(f"task: expected one of {TASKS}, got {task!r}")


# --------------------------------------------------------------------------- store
class Predictions(NamedTuple):
    """Finalized predictions, rows sorted by key: keys {name: (N,)}, true/pred (N, ...)."""

    keys: dict[str, np.ndarray]
    true: np.ndarray
    pred: np.ndarray


class PredictionStore:
    """Accumulates (keys, true, pred) batches; ``finalize`` sorts rows by key.

    keys identify a row, e.g. ``{"sample": ..., "chrom": ..., "x_start": ..., "y_start":
    ...}``, each a (B,) sequence. Rows are sorted lexicographically by the key columns in
    the order of the first batch, so the result (and any metric of it) is identical for any
    batch size, batch order or split across workers (merge their stores with
    :meth:`merge`). Duplicate keys raise, since their order would be arbitrary.
    """

    def __init__(self) -> None:
        self._names: tuple[str, ...] | None = None
        self._keys: dict[str, list[np.ndarray]] = {}
        self._true: list[np.ndarray] = []
        self._pred: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(t) for t in self._true)

    def add(self, keys: Mapping[str, Any], true: Any, pred: Any) -> None:
        """Add one batch. keys: {name: (B,)}; true, pred: (B, ...) arrays (numpy or torch)."""
        if not keys:
            raise ValueError("PredictionStore.add: keys must name at least one column")
        names = tuple(keys)
        if self._names is None:
            self._names = names
            self._keys = {k: [] for k in names}
        elif set(names) != set(self._names):
            raise ValueError(
                f"PredictionStore.add: key columns {sorted(names)} differ from the first "
                f"batch's {sorted(self._names)}"
            )
        t, p = _to_numpy(true), _to_numpy(pred)
        b = len(t)
        if len(p) != b:
            raise ValueError(f"PredictionStore.add: true has {b} rows, pred has {len(p)}")
        cols = {}
        for k in self._names:
            col = _to_numpy(keys[k]).reshape(-1)
            if col.dtype == object:
                col = col.astype(str)
            if len(col) != b:
                raise ValueError(
                    f"PredictionStore.add: key {k!r} has {len(col)} rows, expected {b}"
                )
            cols[k] = col
        for k, col in cols.items():
            self._keys[k].append(col)
        self._true.append(t)
        self._pred.append(p)

    def extend(self, other: PredictionStore) -> None:
        """Add every batch of another store (e.g. from another worker)."""
        for i in range(len(other._true)):
            self.add({k: other._keys[k][i] for k in other._names or ()},
                     other._true[i], other._pred[i])

    @classmethod
    def merge(cls, stores: Sequence[PredictionStore]) -> PredictionStore:
        """One store holding the rows of all ``stores``."""
        out = cls()
        for s in stores:
            out.extend(s)
        return out

    def finalize(self) -> Predictions:
        """All rows, sorted by key (the first key column is the primary sort key)."""
        if not self._true:
            raise ValueError("PredictionStore.finalize: no predictions were added")
        assert self._names is not None
        keys = {k: np.concatenate(v) for k, v in self._keys.items()}
        true = np.concatenate(self._true)
        pred = np.concatenate(self._pred)
        # np.lexsort sorts by the LAST key first, hence the reversal.
        order = np.lexsort([keys[k] for k in reversed(self._names)])
        keys = {k: v[order] for k, v in keys.items()}
        if len(order) > 1:
            same = np.ones(len(order) - 1, dtype=bool)
            for v in keys.values():
                same &= v[1:] == v[:-1]
            if same.any():
                i = int(np.argmax(same))
                dup = {k: v[i].item() for k, v in keys.items()}
                raise ValueError(f"PredictionStore.finalize: duplicate row key {dup}")
        return Predictions(keys, true[order], pred[order])


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        x = x.numpy()
    return np.asarray(x)
