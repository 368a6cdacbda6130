"""Fixtures of the pipeline tests: a small simulated genome and tiny hand-made files."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest


@pytest.fixture(scope="session")
def sim_genome(tmp_path_factory):
    """A 3-chromosome simulated genome (~1.5 Mb each; ~10 s) from ``mixhic simulate``."""
    from mixhic.pipelines.simulate import simulate_genome

    out = tmp_path_factory.mktemp("sim") / "genome"
    return simulate_genome(out, preset="tiny", seed=0, n_chroms=3, chrom_length=1_500_000)


def write_cooler(uri: str, chromsizes: dict[str, int], binsize: int, counts: np.ndarray,
                 weights: dict[str, np.ndarray] | None = None,
                 divisive: dict[str, bool] | None = None) -> np.ndarray:
    """A cooler at ``uri`` from a dense symmetric ``counts`` matrix; returns the bins' weights.

    ``weights``: extra bins columns; ``divisive``: their ``divisive_weights`` attribute.
    """
    import cooler
    import h5py
    import pandas as pd

    bins = cooler.binnify(pd.Series(chromsizes), binsize)
    n = len(bins)
    assert counts.shape == (n, n)
    i, j = np.triu_indices(n)
    keep = counts[i, j] > 0
    pixels = pd.DataFrame({"bin1_id": i[keep], "bin2_id": j[keep], "count": counts[i, j][keep]})
    for name, w in (weights or {}).items():
        bins[name] = w
    path, _, group = uri.partition("::")
    mode = "a" if Path(path).exists() else "w"
    cooler.create_cooler(uri, bins, pixels, ordered=True, mode=mode)
    with h5py.File(path, "r+") as h5:
        g = h5[group or "/"]
        for name, flag in (divisive or {}).items():
            g["bins"][name].attrs["divisive_weights"] = flag
    return bins


def random_counts(n: int, seed: int = 0) -> np.ndarray:
    """A dense symmetric Poisson count matrix with distance decay, (n, n) int."""
    rng = np.random.default_rng(seed)
    d = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    lam = 50.0 / (1.0 + d) ** 1.2
    c = rng.poisson(lam)
    c = np.triu(c)
    return c + np.triu(c, 1).T


def write_bigwig(path: str, chromsizes: dict[str, int], intervals: dict[str, list[tuple[int, int, float]]]) -> str:
    """A bigWig of bedGraph-style intervals per chromosome (chromosomes may hold none)."""
    import pyBigWig

    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(chromsizes.items()))
    for chrom in chromsizes:
        ivs = intervals.get(chrom, [])
        if ivs:
            bw.addEntries([chrom] * len(ivs), [s for s, _, _ in ivs], ends=[e for _, e, _ in ivs],
                          values=[float(v) for _, _, v in ivs])
    bw.close()
    return str(path)


@pytest.fixture(scope="session")
def make():
    """File builders for tests: ``make.cooler``, ``make.counts``, ``make.bigwig``."""
    return SimpleNamespace(cooler=write_cooler, counts=random_counts, bigwig=write_bigwig)
