"""How much of the real map can the CTCF track predict beyond distance decay?

    python tests/benchmarks/real_track_probe.py [--work DIR] [--step-bins 25] [--folds 5]
    python tests/benchmarks/real_track_probe.py --sim small   # the same on the simulator

Not a deep model: feature models over the same inputs and rows the Hi-C model gets on the
real GM12878 case (:mod:`real_case`: chr1:160-180 Mb at 10 kb, 50-bin windows on the
diagonal, the CTCF track, 5-fold region cross-validation, the ``log1p_fixed`` transform of
balanced contacts at count scale, observed pixels only). Each fold fits, on its train
windows,

- ``decay``: the mean per distance (the distance baseline of ``bench_quality``);
- ``ridge`` and ``gbm``: a ridge regression and gradient-boosted trees
  (scikit-learn) of the o/e residual (map minus decay) on per-pixel track features: the
  signal at the two anchors (product, sum, max), the signal summed strictly between them
  (boundaries crossed, also per bin of distance), each also times log-distance.

and scores the pooled Pearson r of the test maps (``platform.metrics.hic_metrics``).
``--sim PRESET`` runs the same probe on one simulated chromosome of the real case's length
(10 kb bins, its ATAC track), where the structure is known to follow the tracks: the probe
must find a gain there, or it could not find one anywhere.
If a feature model with these inputs gains nothing over decay, the track holds no
structure of the map that transfers across the region, and a deep model trained on the
same ~46 windows a fold cannot be expected to gain either. Measured (2026-12-03, mean
of 5 folds): real decay 0.850, ridge 0.848, gbm 0.841 (116 windows a fold at a 10-bin step:
0.851 / 0.849 / 0.843); ``--sim small`` decay 0.933, ridge 0.941, gbm 0.951 (gbm ahead in
every fold): with as many windows, the probe finds the structure the simulator ties to
its tracks, and finds none in the real case.

Last line: ``decay=<r> ridge=<r> gbm=<r> ridge_gain=<r-decay> gbm_gain=<r-decay> folds=<k>``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_case  # noqa: E402  (a sibling script)

log = logging.getLogger("real_track_probe")
W = 50  # bins a window side, as in real_case


def load_case(work: Path) -> tuple[np.ndarray, np.ndarray]:
    """The real case: its map over :data:`real_case.SPAN` and its CTCF signal per bin."""
    inputs = real_case.make_inputs(work / "inputs")
    return read_span(inputs["cool"], inputs["ctcf"], real_case.SPAN)


def load_sim(work: Path, preset: str) -> tuple[np.ndarray, np.ndarray]:
    """One simulated chromosome as long as the real span (seed 0), at 10 kb, its ATAC."""
    from mixhic.pipelines.simulate import simulate_genome

    length = real_case.SPAN[2] - real_case.SPAN[1]
    genome = simulate_genome(work / f"sim-{preset}", preset=preset, seed=0, overwrite=True,
                             n_chroms=1, chrom_length=length, length_spread=0.0)
    return read_span(f"{genome.mcool}::/resolutions/10000", str(genome.atac),
                     ("chr1", 0, length))


def read_span(cool: str, track: str, span: tuple[str, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The transformed balanced map over ``span`` (prepare's ``log1p_fixed`` at count
    scale) and the track's signal per bin (log1p of the sum over the bin)."""
    import cooler
    import pyBigWig

    from mixhic.pipelines.hic_reader import inspect_hic
    from mixhic.pipelines.normalize import hic_transform

    chrom, lo, hi = span
    info = inspect_hic(cool, weight="weight")
    raw = cooler.Cooler(cool).matrix(balance="weight").fetch(f"{chrom}:{lo}-{hi}")
    hic = hic_transform(np.nan_to_num(raw * info.multiplier, nan=0.0), "log1p_fixed")
    with pyBigWig.open(track) as bw:
        sig = bw.stats(chrom, lo, hi, type="sum", nBins=hic.shape[0])
    signal = np.log1p(np.array([0.0 if v is None else v for v in sig]))
    return hic, signal


def pixel_features(signal: np.ndarray, start: int) -> np.ndarray:
    """(W, W, F) features of the window starting at bin ``start``."""
    cum = np.r_[0.0, np.cumsum(signal)]
    i, j = np.meshgrid(np.arange(W) + start, np.arange(W) + start, indexing="ij")
    a, b = np.minimum(i, j), np.maximum(i, j)
    d = b - a
    between = np.where(d > 0, cum[b] - cum[np.minimum(a + 1, b)], 0.0)
    g = np.log1p(d)
    base = [signal[a] * signal[b], signal[a] + signal[b], np.maximum(signal[a], signal[b]),
            between, between / (d + 1)]
    return np.stack([g] + [f * s for f in base for s in (1.0, g)], -1)


def fold(hic: np.ndarray, signal: np.ndarray, k: int, folds: int, step: int) -> dict:
    """Decay and the feature models on fold ``k``: test Pearson of each."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge

    from mixhic.models.tasks import observed_pixels
    from mixhic.platform.baselines import DistanceExpected
    from mixhic.platform.metrics import hic_metrics

    n = hic.shape[0]
    edges = np.linspace(0, n, folds + 1).astype(int)
    test_b, val_b = (edges[k], edges[k + 1]), (edges[(k + 1) % folds], edges[(k + 1) % folds + 1])
    starts = np.arange(0, n - W + 1, step)
    test = [s for s in starts if test_b[0] <= s and s + W <= test_b[1]]
    train = [s for s in starts
             if not any(s < hi and s + W > lo for lo, hi in (test_b, val_b))]

    def windows(ss):
        maps = np.stack([hic[s:s + W, s:s + W] for s in ss])
        feats = np.stack([pixel_features(signal, s) for s in ss])
        return maps, feats, observed_pixels(maps)

    maps, feats, seen = windows(train)
    decay = DistanceExpected()  # bench_quality's distance baseline, fit the same way
    decay.add(maps, np.zeros(len(train)), ["span"] * len(train))
    x, y = feats[seen], (maps - decay.predict(np.zeros(len(train)), ["span"] * len(train), W))[seen]
    models = {"ridge": Ridge(alpha=1.0).fit(x, y),
              "gbm": HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05,
                                                   random_state=0).fit(x, y)}
    t_maps, t_feats, _ = windows(test)
    base = decay.predict(np.zeros(len(test)), ["span"] * len(test), W)
    out = {"decay": hic_metrics(t_maps, base)["pearson"], "train": len(train), "test": len(test)}
    for name, model in models.items():
        pred = base + model.predict(t_feats.reshape(-1, t_feats.shape[-1])).reshape(base.shape)
        out[name] = hic_metrics(t_maps, pred)["pearson"]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=None, help="scratch dir (default: a temp dir)")
    ap.add_argument("--real-dir", type=Path, default=real_case.REAL_DIR)
    ap.add_argument("--step-bins", type=int, default=25, help="window step (25 = prepare's)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--sim", metavar="PRESET", default=None,
                    help="probe a simulated chromosome of this preset instead (e.g. small)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.sim is None and not (args.real_dir / real_case.COOL).exists():
        raise SystemExit(f"{args.real_dir / real_case.COOL}: the real case's files are missing")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        hic, signal = load_sim(work, args.sim) if args.sim else load_case(work)
        rows = []
        for k in range(args.folds):
            r = fold(hic, signal, k, args.folds, args.step_bins)
            log.info("fold %d (%d train, %d test windows): decay %.3f  ridge %.3f  gbm %.3f",
                     k, r["train"], r["test"], r["decay"], r["ridge"], r["gbm"])
            rows.append(r)
    mean = {m: float(np.mean([r[m] for r in rows])) for m in ("decay", "ridge", "gbm")}
    log.info("%.0f s", time.perf_counter() - t0)
    print(f"decay={mean['decay']:.3f} ridge={mean['ridge']:.3f} gbm={mean['gbm']:.3f} "
          f"ridge_gain={mean['ridge'] - mean['decay']:+.3f} "
          f"gbm_gain={mean['gbm'] - mean['decay']:+.3f} folds={args.folds}")


if __name__ == "__main__":
    main()
