"""The most any Hi-C predictor can score: a split-half noise ceiling of the test maps.

    .venv/bin/python tests/benchmarks/noise_ceiling.py DATA_DIR COOL_URI [--split test]

A prepared ``hic`` split is made of windows of one contact map, which is a sample of
reads: even a perfect model correlates with it only as far as the reads reproduce
themselves. Each stored (upper-triangle) pixel count n is split at random into two halves
``a ~ Binomial(n, 1/2)`` and ``b = n - a``; each half is balanced with the map's weights at
twice its depth and transformed like the prepared data, and the same windows are cut.
With ``r_half`` the Pearson correlation of the two halves over all window pixels, the
Spearman-Brown step ``r_full = 2 r_half / (1 + r_half)`` is the full map's reliability and
``sqrt(r_full)`` the ceiling of any prediction's Pearson correlation with the observed map
(for noise that adds to the signal; the log transform makes it an estimate).

The windows cut from the full counts are checked against the prepared ones first, so the
ceiling is computed on exactly the evaluated pixels. Last line:
``r_half=<x> ceiling_pearson=<y> n_windows=<n>``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger("noise_ceiling")


def _test_windows(data_dir: str, split: str):
    import pyarrow.dataset as pds

    from mixhic.platform.data import dataset_uri

    ds = pds.dataset(dataset_uri(data_dir, "hic"), format="parquet")
    t = ds.to_table(columns=["chrom", "x_start", "y_start", "hic"],
                    filter=pds.field("split") == split)
    hic = np.stack([np.asarray(v, dtype=np.float32).reshape(-1) for v in
                    t.column("hic").to_pylist()]) if t.num_rows else np.zeros((0, 0))
    return (t.column("chrom").to_numpy(zero_copy_only=False).astype(str),
            t.column("x_start").to_numpy(), t.column("y_start").to_numpy(), hic)


def _add_windows(cut: dict[str, list], name: str, i, j, counts, w: np.ndarray,
                 scale: float, rows, x0s, y0s, W: int) -> None:
    """The symmetric map of pixel ``counts`` at bins (i, j), balanced by ``w`` (n,) and
    ``scale``; its W x W windows at bins (x0s, y0s) appended to ``cut[name]`` as
    ``(row, window)``."""
    n = len(w)
    m = np.zeros((n, n))
    m[i, j] = counts
    m[j, i] = counts
    m *= scale * w[:, None] * w[None, :]
    for r, x0, y0 in zip(rows, x0s, y0s):
        cut.setdefault(name, []).append((r, m[int(x0) : int(x0) + W, int(y0) : int(y0) + W]))


def _transformed(cut: dict[str, list], norm: dict) -> dict[str, np.ndarray]:
    """``{name: (N, W*W)}``: each name's windows in row order, transformed like prepare's."""
    from mixhic.pipelines.normalize import hic_transform

    out = {}
    for name, items in cut.items():
        items.sort(key=lambda t: t[0])
        win = np.stack([v for _, v in items])
        out[name] = hic_transform(win, norm.get("hic", "log1p_fixed"),
                                  norm.get("hic_cap", 255.0)).reshape(len(win), -1)
    return out


def hic_noise_ceiling(data_dir: str, cool_uri: str, split: str = "test",
                      seed: int = 0) -> dict[str, float]:
    """``{"r_half", "r_full", "ceiling_pearson", "n_windows", "max_abs_diff"}`` of the
    ``split`` windows of the prepared ``hic`` dataset in ``data_dir``, cut from
    ``cool_uri`` (the Hi-C file it was prepared from, at its resolution)."""
    from mixhic.models.tasks import observed_pixels
    from mixhic.pipelines.hic_reader import inspect_hic, open_cooler

    man = json.loads((Path(data_dir) / "manifest.json").read_text())
    params = man["params"]
    hic_in, norm = params["inputs"]["hic"], params["normalize"]
    info = inspect_hic(cool_uri, resolution=man["shapes"]["resolution"],
                       weight=hic_in.get("weight"), divisive=hic_in.get("divisive"),
                       multiplier=hic_in.get("multiplier"))
    clr = open_cooler(info.uri)
    res, W = info.resolution, int(man["shapes"]["window_bins"])
    chroms, xs, ys, prepared = _test_windows(data_dir, split)
    if not len(chroms):
        raise ValueError(f"{data_dir}: no {split!r} rows in the hic dataset")
    rng = np.random.default_rng(seed)
    halves: dict[str, list] = {}
    for chrom in np.unique(chroms):
        rows = np.flatnonzero(chroms == chrom)
        lo = int(min(xs[rows].min(), ys[rows].min())) // res
        hi = int(max(xs[rows].max(), ys[rows].max())) // res + W
        region = (chrom, lo * res, min(hi * res, int(clr.chromsizes[chrom])))
        px = clr.matrix(balance=False, as_pixels=True, join=False).fetch(region)
        off = int(clr.offset(region))
        i = px["bin1_id"].to_numpy() - off
        j = px["bin2_id"].to_numpy() - off
        raw = px["count"].to_numpy()
        cnt = np.rint(raw).astype(np.int64)
        if not np.allclose(raw, cnt):
            raise ValueError(f"{cool_uri}: counts are not integers (a normalised map, not "
                             "reads): a split-half ceiling needs read counts")
        a = rng.binomial(cnt, 0.5)
        n = hi - lo
        if info.weight is None:
            w = np.ones(n)
        else:
            w = np.full(n, np.nan)
            wt = clr.bins().fetch(region)[info.weight].to_numpy().astype(np.float64)
            w[: len(wt)] = 1.0 / wt if info.divisive else wt
        for name, c, depth in (("full", cnt, 1.0), ("a", a, 2.0), ("b", cnt - a, 2.0)):
            _add_windows(halves, name, i, j, c, w, depth * info.multiplier, rows,
                         xs[rows] // res - lo, ys[rows] // res - lo, W)
    out = _transformed(halves, norm)
    delta = np.abs(out["full"] - prepared)
    diff = float(delta.max())
    log.info("cut vs prepared: max |diff| %.3g, %.4f of pixels > 1e-3", diff,
             float((delta > 1e-3).mean()))
    if diff > 1e-3:
        raise ValueError(f"windows cut from {cool_uri} differ from the prepared ones by up to "
                         f"{diff:.3g}: not the file (or settings) {data_dir} was made from")
    seen = observed_pixels(out["full"].reshape(-1, W, W)).reshape(len(out["full"]), -1)
    r_half = float(np.corrcoef(out["a"][seen], out["b"][seen])[0, 1])
    r_full = 2 * r_half / (1 + r_half)
    return {"r_half": r_half, "r_full": r_full, "ceiling_pearson": float(np.sqrt(r_full)),
            "n_windows": float(len(prepared)), "max_abs_diff": diff}


def _replayed_windows(data_dir: str, genome_dir: str, split: str, draw
                      ) -> dict[str, np.ndarray]:
    """``split``'s windows of maps drawn from a simulated genome's replayed rates.

    ``draw(rates, rng, w)`` -> ``{name: (n, D) band counts, or (counts, weights)}`` per
    chromosome, ``rng`` at the reads draw (:func:`mixhic.pipelines.simulate.replay_rates`),
    ``w`` the file's balancing weights of its bins. Each map is balanced with the file's
    weights (or its own), cut at the prepared windows and transformed like them. Returns
    ``{"obs": the observed windows, re-drawn, name: ...}``, rows in the prepared order,
    after checking "obs" against the prepared windows."""
    from mixhic.pipelines.hic_reader import inspect_hic, open_cooler
    from mixhic.pipelines.simulate import SimulatedGenome, replay_rates

    man = json.loads((Path(data_dir) / "manifest.json").read_text())
    params = man["params"]
    hic_in, norm = params["inputs"]["hic"], params["normalize"]
    res, W = int(man["shapes"]["resolution"]), int(man["shapes"]["window_bins"])
    genome = SimulatedGenome.in_dir(genome_dir)
    base = json.loads(genome.meta.read_text())["params"]["resolution"]
    if res != base:
        raise ValueError(f"{data_dir}: prepared at {res} bp, not the simulator's base "
                         f"resolution {base} bp: maps are drawn at the base resolution")
    info = inspect_hic(genome.mcool_uri(res), resolution=res, weight=hic_in.get("weight"),
                       divisive=hic_in.get("divisive"), multiplier=hic_in.get("multiplier"))
    clr = open_cooler(info.uri)
    chroms, xs, ys, prepared = _test_windows(data_dir, split)
    if not len(chroms):
        raise ValueError(f"{data_dir}: no {split!r} rows in the hic dataset")
    cut: dict[str, list] = {}
    for chrom, (rates, rng) in replay_rates(genome_dir, list(np.unique(chroms))).items():
        rows = np.flatnonzero(chroms == chrom)
        n = rates.lam.shape[0]
        w = (clr.bins().fetch(chrom)[info.weight].to_numpy().astype(np.float64)
             if info.weight else np.ones(n))
        w = 1.0 / w if info.divisive else w
        for name, drawn in {"obs": rng.poisson(rates.lam), **draw(rates, rng, w)}.items():
            band, wd = drawn if isinstance(drawn, tuple) else (drawn, w)
            r, d = np.nonzero(band)
            _add_windows(cut, name, r, r + d, band[r, d], wd, info.multiplier, rows,
                         xs[rows] // res, ys[rows] // res, W)
    out = _transformed(cut, norm)
    diff = float(np.abs(out["obs"] - prepared).max())
    if diff > 1e-3:
        raise ValueError(f"replayed windows differ from the prepared ones of {data_dir} by up "
                         f"to {diff:.3g}: not the genome (or settings) it was made from")
    return out


def _r(obs: np.ndarray, other: np.ndarray) -> float:
    """Pearson r over the observed pixels of ``obs`` (N, W*W) windows, like the metrics."""
    from mixhic.models.tasks import observed_pixels

    n = len(obs)
    w = int(round(np.sqrt(obs.shape[1])))
    seen = observed_pixels(obs.reshape(n, w, w)).reshape(n, -1)
    return float(np.corrcoef(obs[seen], other[seen])[0, 1])


def replicate_ceiling(data_dir: str, genome_dir: str, split: str = "test", n_reps: int = 8,
                      seed: int = 1) -> dict[str, float]:
    """The ceiling of a simulated genome's ``split`` windows from its own truth:
    ``{"r_retest", "ceiling_pearson", "oracle_pearson", "n_windows"}``.

    ``n_reps`` independent replicates of the reads are drawn from the replayed rates at
    the sample's depth. ``r_retest``: the mean Pearson r between the observed windows and
    a replicate's (test-retest at full depth, no depth extrapolation);
    ``ceiling_pearson = sqrt(r_retest)``; ``oracle_pearson``: the r with the observed maps
    of a predictor that knows the truth (the mean of the replicates' windows)."""
    rng = np.random.default_rng(seed)
    out = _replayed_windows(data_dir, genome_dir, split, lambda rates, _, __: {
        f"rep{k}": rng.poisson(rates.lam) for k in range(n_reps)})
    reps = [out[f"rep{k}"] for k in range(n_reps)]
    r_retest = float(np.mean([_r(out["obs"], v) for v in reps]))
    return {"r_retest": r_retest, "ceiling_pearson": float(np.sqrt(r_retest)),
            "oracle_pearson": _r(out["obs"], np.mean(reps, axis=0)),
            "n_windows": float(len(out["obs"]))}


#: Structure left out of the oracles of :func:`structure_oracles` (ChromParams fields).
LEFT_OUT = {"tad": {"tad_enrichment": 1.0}, "compartment": {"compartment_strength": 0.0},
            "stripe": {"stripe_strength": 0.0}, "loop": {"loop_strength": 0.0}}


def structure_oracles(data_dir: str, genome_dir: str, split: str = "test", n_reps: int = 6,
                      seed: int = 2) -> dict[str, float]:
    """What each part of the simulated structure is worth to a predictor of the observed
    maps: the Pearson r of truth-knowing oracles (mean of ``n_reps`` replicates drawn from
    the replayed rates) with one part left out (``oracle_no_<part>``, :data:`LEFT_OUT`),
    with everything (``oracle_full``), and with all the structure but ideal balancing
    (``oracle_structure``: the coverage bias is in no track, so this is the most a model
    of the tracks can score). Depth is kept: each oracle's rates are rescaled to the same
    total."""
    import dataclasses

    from mixhic.pipelines._simulate_model import _expected_band
    from mixhic.pipelines.simulate import simulation_params

    meta = json.loads((Path(genome_dir) / "simulation.json").read_text())
    cp = simulation_params(meta["preset"], **meta.get("overrides", {})).chrom_params()
    variants = {"full": ({}, True), **{f"no_{k}": (v, True) for k, v in LEFT_OUT.items()},
                "structure": ({}, False)}
    rng = np.random.default_rng(seed)

    def draw(rates, _, w):
        n, D = rates.lam.shape
        i = np.arange(n)[:, None]
        bias2 = rates.bias[i] * rates.bias[np.minimum(i + np.arange(D)[None, :], n - 1)]
        # perfect balancing: weights exactly 1 / bias, scaled like the file's
        ok = (rates.bias > 0) & np.isfinite(w) & (w > 0)
        ideal = np.where(ok, np.mean(w[ok] * rates.bias[ok]) / np.where(ok, rates.bias, 1),
                         np.nan)
        out = {}
        for name, (change, with_bias) in variants.items():
            E, valid = _expected_band(n, rates.tads, rates.comp, rates.loops, rates.strengths,
                                      dataclasses.replace(cp, **change))
            lam = np.where(valid, E * bias2, 0.0)
            lam *= rates.lam.sum() / lam.sum()
            for k in range(n_reps):  # same depth and read noise; known or ideal balancing
                out[f"{name}:{k}"] = (rng.poisson(lam), w if with_bias else ideal)
        return out

    out = _replayed_windows(data_dir, genome_dir, split, draw)
    return {f"oracle_{name}": _r(out["obs"], np.mean([out[f"{name}:{k}"]
                                                     for k in range(n_reps)], axis=0))
            for name in variants}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir")
    ap.add_argument("cool_uri")
    ap.add_argument("--split", default="test")
    ns = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    c = hic_noise_ceiling(ns.data_dir, ns.cool_uri, ns.split)
    print(f"r_half={c['r_half']:.4f} ceiling_pearson={c['ceiling_pearson']:.4f} "
          f"n_windows={int(c['n_windows'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
