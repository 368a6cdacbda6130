"""The generative model behind ``mixhic simulate``: one chromosome at a time, in numpy.

Nothing here touches files; :mod:`mixhic.pipelines.simulate` writes what this returns.

Model, per chromosome of ``n`` Hi-C bins (``res`` bp) and ``m`` epigenome bins (``epi_bin``):

1. **TADs** tile the chromosome (log-normal sizes). Each TAD is bounded by a convergent
   pair of CTCF-like sites: ``+`` at its first bin, ``-`` at its last bin. Each TAD is
   in compartment A or B (a Markov chain along the chromosome).
2. **Loops** join convergent sites: TAD corners (most TADs), nested loops to an extra
   internal site, and a few loops spanning two TADs. Anchors are 5 kb bins; loop sizes
   lie in [``min_loop``, ``max_loop``].
3. **Expected contacts** as a band ``E[i, d]`` = contact(i, i + d), ``d < D``:
   P(s) ~ s^-alpha (optionally bending to s^-alpha_long past ``decay_break``:
   s^-alpha (1 + s/break)^-(alpha_long - alpha)), times TAD-interior enrichment, times
   compartment affinity, times stripes along loop anchors, times a Gaussian dot at every
   loop pixel.
4. **Counts** = Poisson(scale * E[i, d] * b_i * b_j) with a log-normal per-bin coverage
   bias ``b`` (a few bins nearly unmappable, so balancing masks them), and optional
   unmappable gaps (runs of bins with no coverage at all, like assembly gaps: no
   contacts and no track signal there).
5. **Accessibility** (ATAC, DNase): Gaussian peaks at CTCF sites, promoters, enhancers
   and random weak sites, with per-track peak heights (correlated, not identical), peak
   widths and background (higher in A).
6. **CAGE** at each TSS = promoter activity (its accessibility peak) x contact-weighted
   enhancer activity around it (through ``E``), with log-normal noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ChromParams", "ChromRates", "ChromSim", "chromosome_rates", "simulate_chromosome"]


@dataclass(frozen=True)
class ChromParams:
    """Everything :func:`simulate_chromosome` needs (bp values already in bins where noted)."""

    res: int
    epi_bin: int
    max_bins: int  # band width D (bins)
    contacts_per_bin: float
    decay_exponent: float
    decay_exponent_long: float  # exponent past decay_break_bins (used when that is > 0)
    decay_break_bins: float  # 0 = a pure power law
    tad_bins: float  # median TAD size (bins)
    tad_sigma: float
    min_tad_bins: int
    max_tad_bins: int
    tad_enrichment: float
    compartment_strength: float
    compartment_switch: float
    corner_loop_prob: float
    nested_loop_prob: float
    spanning_loop_prob: float
    loop_strength: float
    loop_strength_sigma: float
    loop_width: float  # Gaussian sigma of a dot (bins)
    stripe_strength: float
    min_loop_bins: int
    max_loop_bins: int
    bias_sigma: float
    low_coverage_frac: float
    gaps_per_chrom: float  # mean number of unmappable gaps (Poisson)
    gap_bins: float  # median gap length (bins, log-normal)
    ctcf_decoys_per_mb: float
    enhancers_per_mb: float
    tss_per_mb: float
    noise_peaks_per_mb: float
    track_noise: float
    cage_noise: float


@dataclass
class ChromSim:
    """One simulated chromosome. Bins are local (0-based within the chromosome)."""

    length: int
    bin1: np.ndarray  # (nnz,) int64, upper triangle (bin1 <= bin2), sorted
    bin2: np.ndarray  # (nnz,) int64
    count: np.ndarray  # (nnz,) int32
    bias: np.ndarray  # (n,) float64 true coverage bias
    loops: np.ndarray  # (k, 2) int64 anchor bins (a < b)
    loop_strength: np.ndarray  # (k,) float64 dot amplitude
    loop_kind: np.ndarray  # (k,) <U8: corner | nested | spanning
    tads: np.ndarray  # (t, 2) int64 [start_bin, end_bin)
    ctcf_pos: np.ndarray  # (c,) int64 epi-bin positions of CTCF-like sites
    ctcf_strand: np.ndarray  # (c,) <U1 "+" | "-"
    tss_pos: np.ndarray  # (g,) int64 epi-bin positions of TSSs
    tss_strand: np.ndarray  # (g,) <U1
    n_enhancers: int
    atac: np.ndarray  # (m,) float32
    dnase: np.ndarray  # (m,) float32
    cage: np.ndarray  # (m,) float32
    cage_at_tss: np.ndarray  # (g,) float64 the true TSS expression


def _tads(n: int, p: ChromParams, rng: np.random.Generator) -> np.ndarray:
    """TADs as (t, 2) [start, end) bins tiling most of the chromosome."""
    bounds = [int(rng.integers(0, max(1, min(10, n // 20))))]
    while True:
        size = int(np.clip(round(p.tad_bins * np.exp(p.tad_sigma * rng.standard_normal())),
                           p.min_tad_bins, p.max_tad_bins))
        if bounds[-1] + size > n:
            break
        bounds.append(bounds[-1] + size)
    b = np.asarray(bounds, dtype=np.int64)
    return np.stack([b[:-1], b[1:]], axis=1) if len(b) > 1 else np.zeros((0, 2), np.int64)


def _gaps(n: int, p: ChromParams, rng: np.random.Generator) -> np.ndarray:
    """Unmappable runs of bins (n,) bool; draws nothing when ``gaps_per_chrom`` is 0."""
    gap = np.zeros(n, dtype=bool)
    if p.gaps_per_chrom <= 0:
        return gap
    for _ in range(int(rng.poisson(p.gaps_per_chrom))):
        size = int(np.clip(round(p.gap_bins * np.exp(0.5 * rng.standard_normal())), 1,
                           max(1, n // 4)))
        start = int(rng.integers(0, max(1, n - size)))
        gap[start:start + size] = True
    return gap


def _loops(tads: np.ndarray, p: ChromParams, rng: np.random.Generator):
    """Loops between convergent sites, and the CTCF-like sites (bin, strand) they need."""
    loops, kinds, strengths = [], [], []
    sites: dict[int, str] = {}
    for s, e in tads:
        sites[int(s)] = "+"
        sites[int(e) - 1] = "-"

    def add(a: int, b: int, kind: str, scale: float) -> None:
        if p.min_loop_bins <= b - a <= p.max_loop_bins:
            loops.append((a, b))
            kinds.append(kind)
            strengths.append(scale * p.loop_strength
                             * np.exp(p.loop_strength_sigma * rng.standard_normal()))

    for k, (s, e) in enumerate(tads):
        left, right = int(s), int(e) - 1
        if rng.random() < p.corner_loop_prob:
            add(left, right, "corner", 1.0)
        if rng.random() < p.nested_loop_prob and right - left >= 3 * p.min_loop_bins:
            mid = int(rng.integers(left + p.min_loop_bins, right - p.min_loop_bins + 1))
            if mid not in sites:
                if rng.random() < 0.5:
                    sites[mid] = "-"
                    add(left, mid, "nested", 0.8)
                else:
                    sites[mid] = "+"
                    add(mid, right, "nested", 0.8)
        if k + 1 < len(tads) and rng.random() < p.spanning_loop_prob:
            add(left, int(tads[k + 1][1]) - 1, "spanning", 0.6)
    if not loops:
        empty = np.zeros((0, 2), np.int64)
        return empty, np.zeros(0), np.zeros(0, "<U8"), sites
    arr = np.asarray(loops, dtype=np.int64)
    _, keep = np.unique(arr, axis=0, return_index=True)
    keep = np.sort(keep)
    return arr[keep], np.asarray(strengths)[keep], np.asarray(kinds)[keep], sites


def _expected_band(n: int, tads: np.ndarray, comp: np.ndarray, loops: np.ndarray,
                   strengths: np.ndarray, p: ChromParams) -> tuple[np.ndarray, np.ndarray]:
    """Unscaled expected contacts ``E`` (n, D) with E[i, d] = contact(i, i + d); and valid mask."""
    D = min(p.max_bins, n)
    d = np.arange(D)
    s = np.maximum(d, 1).astype(np.float64)
    ps = s ** -p.decay_exponent  # (D,)
    if p.decay_break_bins > 0:
        ps *= (1.0 + s / p.decay_break_bins) ** -(p.decay_exponent_long - p.decay_exponent)
        ps /= (1.0 + 1.0 / p.decay_break_bins) ** -(p.decay_exponent_long - p.decay_exponent)
    ps[0] = 1.5
    i = np.arange(n)[:, None]
    j = i + d[None, :]  # (n, D)
    valid = j < n
    jc = np.minimum(j, n - 1)
    tad_id = np.full(n, -1, dtype=np.int64)
    for k, (s, e) in enumerate(tads):
        tad_id[s:e] = k
    same = (tad_id[i] == tad_id[jc]) & (tad_id[i] >= 0)
    E = ps[None, :] * np.where(same, p.tad_enrichment, 1.0)
    E *= np.exp(p.compartment_strength * comp[i] * comp[jc])
    # Stripes: an anchor contacts its own TAD more (loop extrusion stalls there).
    if p.stripe_strength > 0 and len(tads):
        rows, cols = [], []
        for s, e in tads:
            span = np.arange(1, e - s)
            span = span[span < D]
            rows.append(np.full(len(span), s))  # '+' anchor row: (s, s + d)
            cols.append(span)
            rows.append(e - 1 - span)  # '-' anchor column: (e-1-d, e-1)
            cols.append(span)
        r, c = np.concatenate(rows), np.concatenate(cols)
        stripe = np.zeros((n, D))
        np.add.at(stripe, (r, c), p.stripe_strength)
        E *= 1.0 + stripe
    # Dots: Gaussian bump around each loop pixel (a, b) -> band (a + da, b + db - a - da).
    if len(loops):
        w = int(np.ceil(2 * p.loop_width))
        off = np.arange(-w, w + 1)
        da, db = np.meshgrid(off, off, indexing="ij")
        g = np.exp(-(da ** 2 + db ** 2) / (2 * p.loop_width ** 2)).ravel()  # (K,)
        ra = loops[:, :1] + da.ravel()[None, :]  # (k, K)
        rb = loops[:, 1:] + db.ravel()[None, :]
        rd = rb - ra
        amp = strengths[:, None] * g[None, :]
        ok = (ra >= 0) & (rb < n) & (rd >= 0) & (rd < D)
        dots = np.zeros((n, D))
        np.add.at(dots, (ra[ok], rd[ok]), amp[ok])
        E *= 1.0 + dots
    E[~valid] = 0.0
    return E, valid


def _render(pos: np.ndarray, height: np.ndarray, sigma: float, m: int) -> np.ndarray:
    """Sum of Gaussian peaks (area ~ height * sigma * 2.5) on ``m`` epi bins. -> (m,)"""
    w = int(np.ceil(4 * sigma))
    off = np.arange(-w, w + 1)
    kern = np.exp(-(off ** 2) / (2 * sigma ** 2))
    idx = pos[:, None] + off[None, :]
    val = height[:, None] * kern[None, :]
    ok = (idx >= 0) & (idx < m)
    return np.bincount(idx[ok], weights=val[ok], minlength=m)


def _place(rng: np.random.Generator, n_items: int, weights: np.ndarray, per_bin: int,
           m: int) -> np.ndarray:
    """``n_items`` distinct epi-bin positions, Hi-C bins drawn with ``weights``. -> (n_items,)"""
    n = len(weights)
    n_items = min(n_items, n)
    bins = rng.choice(n, size=n_items, replace=False, p=weights / weights.sum())
    pos = bins * per_bin + rng.integers(0, per_bin, size=n_items)
    return np.sort(np.minimum(pos, m - 1))


@dataclass(frozen=True)
class ChromRates:
    """What :func:`chromosome_rates` draws before the reads: the structure and the Poisson
    rate of every band pixel."""

    tads: np.ndarray  # (t, 2) [start_bin, end_bin)
    comp: np.ndarray  # (n,) +1 (A) / -1 (B)
    loops: np.ndarray  # (k, 2) anchor bins
    strengths: np.ndarray  # (k,)
    kinds: np.ndarray  # (k,)
    sites: dict  # bin -> strand of the TAD/loop CTCF-like sites
    E: np.ndarray  # (n, D) unscaled expected, E[i, d] = contact(i, i + d)
    valid: np.ndarray  # (n, D) bool, i + d < n
    bias: np.ndarray  # (n,) coverage bias (0 in gaps)
    gap: np.ndarray  # (n,) bool unmappable bins
    lam: np.ndarray  # (n, D) Poisson rate of the read count of pixel (i, i + d)


def chromosome_rates(length: int, p: ChromParams, rng: np.random.Generator) -> ChromRates:
    """Steps 1-3 and the rates of step 4 (module docstring) for a chromosome of ``length``
    bp. :func:`simulate_chromosome` draws its reads with ``rng.poisson(rates.lam)`` next, so
    replaying this with the chromosome's generator gives the rates its reads were drawn
    from (``mixhic.pipelines.simulate.replay_rates``)."""
    n = -(-length // p.res)
    tads = _tads(n, p, rng)
    # Compartments: one label per TAD, a Markov chain; bins outside TADs copy a neighbour.
    labels = np.empty(len(tads))
    state = rng.choice([-1.0, 1.0])
    for k in range(len(tads)):
        if k and rng.random() < p.compartment_switch:
            state = -state
        labels[k] = state
    comp = np.full(n, labels[0] if len(tads) else 1.0)
    for k, (s, e) in enumerate(tads):
        comp[s:e] = labels[k]
    if len(tads):
        comp[tads[-1][1]:] = labels[-1]

    loops, strengths, kinds, sites = _loops(tads, p, rng)
    E, valid = _expected_band(n, tads, comp, loops, strengths, p)

    # Coverage bias: log-normal, a few nearly unmappable bins, partial last bin.
    bias = np.exp(p.bias_sigma * rng.standard_normal(n))
    low = rng.random(n) < p.low_coverage_frac
    bias[low] *= 0.02
    bias[-1] *= (length - (n - 1) * p.res) / p.res
    gap = _gaps(n, p, rng)  # (n,) bool, all False unless gaps_per_chrom > 0
    bias[gap] = 0.0
    D = E.shape[1]
    i = np.arange(n)[:, None]
    jc = np.minimum(i + np.arange(D)[None, :], n - 1)
    # Scale so that the mean cis row sum (both sides of the diagonal) is contacts_per_bin.
    total = 2.0 * E.sum() - E[:, 0].sum()
    scale = p.contacts_per_bin * n / total
    lam = scale * E * bias[i] * bias[jc]
    lam[~valid] = 0.0
    return ChromRates(tads=tads, comp=comp, loops=loops, strengths=strengths, kinds=kinds,
                      sites=sites, E=E, valid=valid, bias=bias, gap=gap, lam=lam)


def simulate_chromosome(length: int, p: ChromParams, rng: np.random.Generator) -> ChromSim:
    """Simulate one chromosome of ``length`` bp (a multiple of ``p.epi_bin``)."""
    n = -(-length // p.res)
    m = length // p.epi_bin
    per_bin = p.res // p.epi_bin
    mb = length / 1e6

    rates = chromosome_rates(length, p, rng)
    tads, comp, loops, strengths, kinds, sites = (rates.tads, rates.comp, rates.loops,
                                                  rates.strengths, rates.kinds, rates.sites)
    E, bias, gap = rates.E, rates.bias, rates.gap
    is_a = comp > 0
    D = E.shape[1]
    counts = rng.poisson(rates.lam)  # (n, D); 0 past the chromosome end (rate 0 there)
    r, d = np.nonzero(counts)
    bin1, bin2, cnt = r.astype(np.int64), (r + d).astype(np.int64), counts[r, d].astype(np.int32)

    # CTCF-like sites: all loop/TAD anchors plus decoys (a site, no loop).
    site_bins = np.fromiter(sites.keys(), dtype=np.int64, count=len(sites))
    site_strand = np.asarray(list(sites.values()), dtype="<U1")
    n_decoy = round(p.ctcf_decoys_per_mb * mb)
    decoy_bins = rng.choice(n, size=min(n_decoy, n), replace=False)
    decoy_bins = decoy_bins[~np.isin(decoy_bins, site_bins)]
    anchor_bins = np.unique(loops.ravel()) if len(loops) else np.zeros(0, np.int64)
    ctcf_bins = np.concatenate([site_bins, decoy_bins])
    ctcf_strand = np.concatenate([site_strand, rng.choice(["+", "-"], size=len(decoy_bins))])
    ctcf_pos = np.minimum(ctcf_bins * per_bin + rng.integers(per_bin // 5, per_bin * 4 // 5,
                                                             size=len(ctcf_bins)), m - 1)
    ctcf_h = np.exp(np.log(12.0) + 0.5 * rng.standard_normal(len(ctcf_bins)))
    ctcf_h[np.isin(ctcf_bins, anchor_bins)] *= 2.5  # loop anchors: strong sites
    order = np.argsort(ctcf_pos, kind="stable")
    ctcf_pos, ctcf_strand, ctcf_h = ctcf_pos[order], ctcf_strand[order], ctcf_h[order]

    # Enhancers and TSSs, enriched in compartment A.
    w_a = np.where(is_a, 3.0, 1.0)
    enh_pos = _place(rng, round(p.enhancers_per_mb * mb), w_a, per_bin, m)
    enh_h = np.exp(np.log(8.0) + 0.6 * rng.standard_normal(len(enh_pos)))
    tss_pos = _place(rng, round(p.tss_per_mb * mb), w_a, per_bin, m)
    tss_strand = rng.choice(["+", "-"], size=len(tss_pos))
    active = rng.random(len(tss_pos)) < np.where(is_a[tss_pos // per_bin], 0.8, 0.4)
    prom_h = np.exp(np.where(active, np.log(14.0), np.log(2.0))
                    + 0.7 * rng.standard_normal(len(tss_pos)))

    # Accessibility: shared peaks, per-track heights, widths, background and noise.
    peaks_pos = np.concatenate([ctcf_pos, enh_pos, tss_pos])
    peaks_h = np.concatenate([ctcf_h, enh_h, prom_h])
    comp_epi = np.repeat(is_a, per_bin)[:m]
    tracks = {}
    for name, sigma, bg in (("atac", 1.2, 0.6), ("dnase", 2.0, 0.9)):
        h = peaks_h * np.exp(p.track_noise * rng.standard_normal(len(peaks_h)))
        noise_pos = rng.integers(0, m, size=round(p.noise_peaks_per_mb * mb))
        noise_h = np.exp(np.log(3.0) + 0.5 * rng.standard_normal(len(noise_pos)))
        sig = _render(np.concatenate([peaks_pos, noise_pos]), np.concatenate([h, noise_h]),
                      sigma, m)
        back = bg * np.where(comp_epi, 1.0, 0.5) * rng.gamma(2.0, 0.5, size=m)
        sig = (sig + back) * np.exp(0.15 * rng.standard_normal(m))
        tracks[name] = sig.astype(np.float32)
    gap_epi = np.repeat(gap, per_bin)[:m]
    for name in tracks:
        tracks[name][gap_epi] = 0.0

    # CAGE: promoter activity x enhancer activity reaching the promoter through contacts.
    enh_bin = np.bincount(enh_pos // per_bin, weights=enh_h, minlength=n)  # (n,)
    tb = tss_pos // per_bin
    dd = np.arange(D)
    fwd = tb[:, None] + dd[None, :]
    bwd = tb[:, None] - dd[None, :]
    ok_f = fwd < n
    ok_b = (bwd >= 0) & (dd[None, :] > 0)
    fwd_c, bwd_c = np.minimum(fwd, n - 1), np.maximum(bwd, 0)
    reach = (np.where(ok_f, E[tb[:, None], dd[None, :]] * enh_bin[fwd_c], 0.0).sum(1)
             + np.where(ok_b, E[bwd_c, dd[None, :]] * enh_bin[bwd_c], 0.0).sum(1))
    ref = enh_bin.mean() * (2.0 * E.sum() - E[:, 0].sum()) / n
    cage_tss = (20.0 * (prom_h / 14.0) ** 1.2 * (0.2 + reach / max(ref, 1e-12))
                * np.exp(p.cage_noise * rng.standard_normal(len(tss_pos))))
    cage = np.zeros(m)
    step = np.where(tss_strand == "+", 1, -1)
    for k, frac in enumerate((0.6, 0.3, 0.1)):
        idx = np.clip(tss_pos + k * step, 0, m - 1)
        np.add.at(cage, idx, frac * cage_tss)
    sparse = rng.random(m) < 0.002
    cage[sparse] += rng.exponential(0.3, size=int(sparse.sum()))
    cage[gap_epi] = 0.0

    return ChromSim(
        length=length, bin1=bin1, bin2=bin2, count=cnt, bias=bias,
        loops=loops, loop_strength=strengths, loop_kind=kinds, tads=tads,
        ctcf_pos=ctcf_pos, ctcf_strand=ctcf_strand, tss_pos=tss_pos, tss_strand=tss_strand,
        n_enhancers=len(enh_pos), atac=tracks["atac"], dnase=tracks["dnase"],
        cage=cage.astype(np.float32), cage_at_tss=cage_tss,
    )
