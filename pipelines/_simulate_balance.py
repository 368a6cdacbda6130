"""Fast cis-only matrix balancing for the simulator, equivalent to ``cooler balance --cis-only``.

cooler's :func:`cooler.balance_cooler` re-reads the pixel table from HDF5 on every
iteration, which takes minutes even for the ``tiny`` genome. :func:`ice_cis` runs the
same algorithm (same filters, update and convergence test) on in-memory arrays; the
result is then passed to ``cooler.balance_cooler(..., x0=...)``, which confirms
convergence in one pass and stores the ``weight`` column with cooler's own attributes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ice_cis"]


def ice_cis(bin1: np.ndarray, bin2: np.ndarray, count: np.ndarray, chrom_of_bin: np.ndarray,
            *, ignore_diags: int = 2, min_nnz: int = 10, mad_max: float = 5.0,
            tol: float = 1e-5, max_iters: int = 2000) -> tuple[np.ndarray, bool]:
    """Un-rescaled balancing bias (n_bins,), 0 for filtered bins; and whether it converged.

    ``bin1``, ``bin2``, ``count``: (nnz,) upper-triangle pixels (cis pixels only are used).
    ``chrom_of_bin``: (n_bins,) chromosome index of each bin.
    """
    n = len(chrom_of_bin)
    n_chroms = int(chrom_of_bin.max()) + 1
    keep = (chrom_of_bin[bin1] == chrom_of_bin[bin2]) & (np.abs(bin2 - bin1) >= ignore_diags)
    b1, b2, data = bin1[keep], bin2[keep], count[keep].astype(np.float64)
    offdiag = b1 != b2

    def marginal(values: np.ndarray) -> np.ndarray:
        return (np.bincount(b1[offdiag], weights=values[offdiag], minlength=n)
                + np.bincount(b2, weights=values, minlength=n))

    bias = np.ones(n)
    if min_nnz > 0:
        bias[marginal(np.ones_like(data)) < min_nnz] = 0
    if mad_max > 0:
        marg = marginal(data)
        for c in range(n_chroms):
            sel = chrom_of_bin == c
            pos = marg[sel][marg[sel] > 0]
            if len(pos):
                marg[sel] /= np.median(pos)
        log_nz = np.log(marg[marg > 0])
        cutoff = np.exp(np.median(log_nz) - mad_max * np.median(np.abs(log_nz - np.median(log_nz))))
        bias[marg < cutoff] = 0

    var = np.full(n_chroms, np.inf)
    for _ in range(max_iters):
        marg = marginal(bias[b1] * bias[b2] * data)
        nz = marg != 0
        cnt = np.bincount(chrom_of_bin[nz], minlength=n_chroms)
        s1 = np.bincount(chrom_of_bin[nz], weights=marg[nz], minlength=n_chroms)
        s2 = np.bincount(chrom_of_bin[nz], weights=marg[nz] ** 2, minlength=n_chroms)
        mean = np.where(cnt > 0, s1 / np.maximum(cnt, 1), 1.0)
        var = np.where(cnt > 0, s2 / np.maximum(cnt, 1) - mean ** 2, 0.0)
        # the E[x^2] - E[x]^2 form can lose precision: confirm with the direct form
        if np.all(var < tol):
            direct = [np.var(marg[nz & (chrom_of_bin == c)]) if cnt[c] else 0.0
                      for c in range(n_chroms)]
            var = np.asarray(direct)
            if np.all(var < tol):
                break
        rel = marg / mean[chrom_of_bin]
        rel[marg == 0] = 1.0
        bias /= rel
    return bias, bool(np.all(var < tol))
