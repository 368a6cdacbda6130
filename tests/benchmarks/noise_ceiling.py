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


def hic_noise_ceiling(data_dir: str, cool_uri: str, split: str = "test",
                      seed: int = 0) -> dict[str, float]:
    """``{"r_half", "r_full", "ceiling_pearson", "n_windows", "max_abs_diff"}`` of the
    ``split`` windows of the prepared ``hic`` dataset in ``data_dir``, cut from
    ``cool_uri`` (the Hi-C file it was prepared from, at its resolution)."""
    from mixhic.pipelines.normalize import hic_transform
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
    halves: dict[str, list[np.ndarray]] = {"full": [], "a": [], "b": []}
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
            m = np.zeros((n, n))
            m[i, j] = c
            m[j, i] = c
            m = m * depth * w[:, None] * w[None, :] * info.multiplier
            for r in rows:
                x0, y0 = int(xs[r]) // res - lo, int(ys[r]) // res - lo
                halves[name].append((r, m[x0 : x0 + W, y0 : y0 + W]))
    out = {}
    for name, items in halves.items():
        items.sort(key=lambda t: t[0])
        win = np.stack([v for _, v in items])
        out[name] = hic_transform(win, norm.get("hic", "log1p_fixed"),
                                  norm.get("hic_cap", 255.0)).reshape(len(win), -1)
    delta = np.abs(out["full"] - prepared)
    diff = float(delta.max())
    log.info("cut vs prepared: max |diff| %.3g, %.4f of pixels > 1e-3", diff,
             float((delta > 1e-3).mean()))
    if diff > 1e-3:
        raise ValueError(f"windows cut from {cool_uri} differ from the prepared ones by up to "
                         f"{diff:.3g}: not the file (or settings) {data_dir} was made from")
    r_half = float(np.corrcoef(out["a"].ravel(), out["b"].ravel())[0, 1])
    r_full = 2 * r_half / (1 + r_half)
    return {"r_half": r_half, "r_full": r_full, "ceiling_pearson": float(np.sqrt(r_full)),
            "n_windows": float(len(prepared)), "max_abs_diff": diff}


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
