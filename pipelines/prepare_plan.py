"""Planning a prepare run: every input validated (names, resolution, weights,
coordinates, split regions, windows per split) before any task starts, and the work cut
into one task per chromosome chunk.

    >>> settings, tasks, meta = build_tasks(cfg)   # all JSON-able; no Ray, nothing written

``settings`` is what every worker needs (the Hi-C file, tracks, datasets, transforms,
QC), ``tasks`` one dict per chunk (:mod:`mixhic.pipelines.extract` runs them), ``meta``
what the manifest records (inputs, splits, chromosomes, planned windows, drops).
"""

from __future__ import annotations

import logging
import os

import numpy as np
from mixhic.core.errors import MixHicError
from mixhic.pipelines import bed_reader, bigwig_reader, hic_reader, paths
from mixhic.pipelines.names import match_names, resolve_name
from mixhic.pipelines.prepare_config import PrepareConfig
from mixhic.pipelines.windows import (
    SPLIT_NAMES,
    chunk_ranges,
    grid_windows,
    loop_anchor_bins,
    loop_windows,
    merge_regions,
    parse_region,
    tss_windows,
    window_split_codes,
)

__all__ = ["build_tasks", "out_uri"]

log = logging.getLogger(__name__)


def _resolve(cfg: PrepareConfig, path: str | None) -> str | None:
    if path is None or "://" in path or os.path.isabs(path.split("::")[0]):
        return path
    return os.path.join(cfg.root, path)


def out_uri(cfg: PrepareConfig) -> str:
    """The output directory: a URI, or an absolute local path (relative: under ``root``)."""
    out = _resolve(cfg, cfg.out)
    return out if "://" in out else os.path.abspath(out)


def _chrom_filter(chroms: np.ndarray, hic_names: list[str], aliases, where: str) -> dict[str, str]:
    """Map names used in a text file to Hi-C names (unmatched names are left out)."""
    present = sorted(set(chroms.tolist()))
    fwd = match_names(hic_names, present, aliases)
    return {v: k for k, v in fwd.items()}


def _check_coords(name: str, starts, ends, size: int, where: str) -> None:
    if len(ends) and int(np.max(ends)) > size:
        k = int(np.argmax(ends))
        raise MixHicError(
            f"{where}: region {name}:{int(starts[k])}-{int(ends[k])} is past the end of "
            f"{name} (length {size} bp)"
        )


_DATASET_INPUTS = {"pretrain": (), "hic": (), "loops": ("loops",), "cage": ("cage", "tss")}


def _datasets_to_run(cfg: PrepareConfig) -> tuple[list[str], dict[str, str]]:
    """Enabled datasets whose own inputs exist, and the optional ones skipped (-> reason).

    A required dataset with a missing input is one error listing every missing file and
    the overrides that turn the dataset off or make it optional.
    """
    run, skipped, required = [], {}, []
    for d in cfg.enabled:
        missing = []
        for key in _DATASET_INPUTS[d]:
            value = getattr(cfg.inputs, key)
            path = _resolve(cfg, value) if value else None
            if not path:
                missing.append(f"inputs.{key} (not set)")
            elif "://" not in path and not os.path.exists(path.split("::")[0]):
                missing.append(f"inputs.{key} ({path}: not found)")
        if not missing:
            run.append(d)
        elif getattr(cfg.datasets, d).optional:
            skipped[d] = ", ".join(missing)
            log.info("datasets.%s: skipped (optional; missing %s)", d, skipped[d])
        else:
            required.append((d, missing))
    if required:
        need = "; ".join(f"datasets.{d} needs {', '.join(m)}" for d, m in required)
        fixes = ", ".join(f"datasets.{d}.enabled=false or datasets.{d}.optional=true"
                          for d, _ in required)
        raise MixHicError(f"missing inputs: {need}; provide them or set {fixes}")
    if not run:
        raise MixHicError(f"datasets: every enabled dataset was skipped "
                          f"({', '.join(sorted(skipped))}: inputs missing); nothing to prepare")
    return run, skipped


def _split_chrom(name: str, hic_names: list[str], aliases: dict, where: str, uri: str) -> str:
    """The Hi-C spelling of a split's chromosome, or one line naming the key and the names."""
    inverse = {v: k for k, v in aliases.items()}
    if inverse.get(name) in hic_names:
        return inverse[name]
    hit = match_names([name], hic_names).get(name)
    if hit is not None:
        return hit
    shown = ", ".join(hic_names[:12]) + (", ..." if len(hic_names) > 12 else "")
    with_chr = sum(n.lower().startswith("chr") for n in hic_names)
    hint = ""
    if name.lower().startswith("chr") and with_chr == 0:
        hint = f"; note the file spells names without 'chr' (e.g. {hic_names[0]!r})"
    elif not name.lower().startswith("chr") and with_chr == len(hic_names):
        hint = f"; note the file spells names with 'chr' (e.g. {hic_names[0]!r})"
    raise MixHicError(f"{where}: chromosome {name!r} is not in the Hi-C file {uri} "
                      f"(chromosomes: {shown}){hint}")


def _split_regions(cfg: PrepareConfig, info, chroms: list[str], n_bins: dict[str, int]
                   ) -> tuple[dict[str, np.ndarray], dict]:
    """Resolve and check ``splits``: ``{chrom: (R, 3) [start, end, code]}`` and a summary.

    Codes 1 = val, 2 = test (``windows.SPLIT_NAMES``); regions of one split merged, sorted.
    A whole chromosome (or a region ending at its end) extends to the end of its last bin.
    """
    res, hic_names = info.resolution, info.chromnames
    entries: dict[str, dict[str, list[tuple[int, int, str]]]] = {"val": {}, "test": {}}
    for split in ("val", "test"):
        for k, entry in enumerate(getattr(cfg.splits, split)):
            key = f"splits.{split}[{k}]"
            kind, name, start, end = parse_region(entry)
            if kind == "bed":
                path = paths.local_path(_resolve(cfg, name), f"{key}: BED")
                bed = bed_reader.read_bed(path)
                if len(bed["chrom"]) == 0:
                    raise MixHicError(f"{key}: {path} holds no region")
                items = [(str(c), int(a), int(b), f"{key} ({path}, region {n + 1})")
                         for n, (c, a, b) in enumerate(zip(bed["chrom"], bed["start"], bed["end"]))]
            elif kind == "chrom" and cfg.chromosomes and \
                    name not in match_names(chroms, [name], cfg.aliases).values():
                # a run restricted to some chromosomes ignores whole other ones
                log.warning("%s: %s is not among the selected chromosomes (%s); ignored",
                            key, name, ", ".join(chroms[:8]))
                continue
            else:
                items = [(name, start, end, key)]
            for c, a, b, where in items:
                hc = _split_chrom(c, hic_names, cfg.aliases, where, info.uri)
                size = info.chromsizes[hc]
                if a is None:
                    a, b = 0, size
                if a >= b:
                    raise MixHicError(f"{where}: region {c}:{a}-{b} is empty (start >= end)")
                if b > size:
                    raise MixHicError(f"{where}: region {c}:{a}-{b} ends past the end of {hc} "
                                      f"(length {size} bp)")
                if b == size:
                    b = -(-size // res) * res  # the last (partial) bin belongs to the region
                entries[split].setdefault(hc, []).append((a, b, where))
    regions: dict[str, np.ndarray] = {}
    summary: dict = {"val": [], "test": []}
    for c in chroms:
        parts = []
        merged = {}
        for code, split in ((1, "val"), (2, "test")):
            got = entries[split].get(c, [])
            merged[split] = merge_regions([a for a, _, _ in got], [b for _, b, _ in got])
            parts.append(np.c_[merged[split], np.full(len(merged[split]), code)])
            summary[split] += [f"{c}:{a}-{b}" for a, b in merged[split].tolist()]
        val, test = merged["val"], merged["test"]
        if len(val) and len(test):
            k = np.searchsorted(val[:, 1], test[:, 0], side="right")
            kc = np.minimum(k, len(val) - 1)
            hit = np.flatnonzero((k < len(val)) & (val[kc, 0] < test[:, 1]))
            if len(hit):
                ts, te = test[hit[0]]
                vs, ve = val[kc[hit[0]]]
                vw = next(w for a, b, w in entries["val"][c] if a < te and ts < b)
                tw = next(w for a, b, w in entries["test"][c] if a < ve and vs < b)
                raise MixHicError(f"{vw} overlaps {tw} on {c} (val {c}:{vs}-{ve}, test "
                                  f"{c}:{ts}-{te}); a region cannot be in both val and test")
        both = np.concatenate(parts).astype(np.int64)
        regions[c] = both[np.argsort(both[:, 0], kind="stable")]
    return regions, summary


def _check_planned_splits(cfg: PrepareConfig, planned: dict, summary: dict) -> None:
    """Fail before any work when a configured val/test split would get no window."""
    if not cfg.splits.val and not cfg.splits.test:
        log.warning("splits: no val or test regions given, every window is train; training "
                    "needs splits.val (the paper's splits are in prepare-paper.yaml)")
    for split in ("val", "test"):
        if not getattr(cfg.splits, split):
            continue
        if not summary[split]:
            log.warning("splits.%s: none of its regions is on the selected chromosomes; "
                        "the %s split will be empty", split, split)
            continue
        for d, counts in planned.items():
            if counts[split] == 0:
                shown = ", ".join(summary[split][:3]) + (", ..." if len(summary[split]) > 3 else "")
                raise MixHicError(
                    f"splits.{split}: no {d} window lies inside the {split} regions ({shown}); "
                    f"planned {d} windows per split: train {counts['train']}, val "
                    f"{counts['val']}, test {counts['test']}, crossing a split boundary "
                    f"{counts['crossing']}"
                )


def build_tasks(cfg: PrepareConfig) -> tuple[dict, list[dict], dict]:
    """Validate inputs and plan the job: ``(settings, tasks, meta)`` (all JSON-able)."""
    inp = cfg.inputs
    if not cfg.enabled:
        raise MixHicError("datasets: every dataset is disabled; nothing to prepare")
    hic_uri = _resolve(cfg, inp.hic.uri)
    info = hic_reader.inspect_hic(
        hic_uri, inp.hic.resolution, inp.hic.weight, inp.hic.divisive,
        inp.hic.multiplier,
    )
    enabled, skipped = _datasets_to_run(cfg)
    res, w = info.resolution, cfg.window_bins
    if res % cfg.epi_bin:
        raise MixHicError(f"epi_bin {cfg.epi_bin} must divide the Hi-C resolution {res}")
    hic_names = info.chromnames
    if cfg.chromosomes:
        chroms = [resolve_name(c, hic_names, info.uri, cfg.aliases) for c in cfg.chromosomes]
    else:
        chroms = [c for c in hic_names if -(-info.chromsizes[c] // res) >= w]
    if not chroms:
        raise MixHicError(f"{info.uri}: no chromosome holds a {w}-bin window")
    n_bins = {c: -(-info.chromsizes[c] // res) for c in chroms}
    short = [c for c in chroms if n_bins[c] < w]
    if short:
        raise MixHicError(f"{info.uri}: chromosome {short[0]} is shorter than one {w}-bin window")

    # ---- tracks: names per chromosome, data present
    tracks = [{"name": t.name, "uri": paths.local_path(_resolve(cfg, t.uri), f"track {t.name!r}")}
              for t in inp.tracks]
    track_chroms: dict[str, list[str | None]] = {c: [] for c in chroms}
    coverage_checked = []
    for t in tracks:
        bw = bigwig_reader.open_bigwig(t["uri"], f"track {t['name']!r}")
        try:
            available = list(bw.chroms())
            for c in chroms:
                where = f"{t['uri']} (track {t['name']!r})"
                if cfg.normalize.require_track_data:
                    name = resolve_name(c, available, where, cfg.aliases)
                    bigwig_reader.check_track_data(bw, name, where)
                else:
                    name = match_names([c], available, cfg.aliases).get(c)
                track_chroms[c].append(name)
            coverage_checked.append(t["name"])
        finally:
            bw.close()

    settings = {
        "sample": cfg.sample,
        "hic": {k: getattr(info, k) for k in info.__dataclass_fields__},
        "window_bins": w,
        "epi_bin": cfg.epi_bin,
        "tracks": tracks,
        "cage_uri": None,
        "datasets": {},
        "hic_transform": cfg.normalize.hic,
        "hic_cap": cfg.normalize.hic_cap,
        "epi_transform": cfg.normalize.epi,
        "epi_missing": cfg.normalize.epi_missing,
        "epi_fill": cfg.normalize.epi_fill,
        "min_nonzero_frac": cfg.qc.min_nonzero_frac,
        "max_masked_bins": cfg.qc.max_masked_bins,
        "seed": cfg.run.seed,
        "compression": cfg.run.compression,
        "staging": None,
    }
    per_chrom: dict[str, dict[str, np.ndarray]] = {c: {} for c in chroms}
    meta: dict = {"inputs": {"hic": hic_uri, "tracks": {t["name"]: t["uri"] for t in tracks}},
                  "dropped": {}, "datasets": enabled, "skipped": skipped}
    for name in ("pretrain", "hic"):
        if name in enabled:
            plan = getattr(cfg.datasets, name)
            for off in plan.offsets_bp:
                if off % res:
                    raise MixHicError(f"datasets.{name}.offsets_bp: {off} is not a multiple of {res}")
            settings["datasets"][name] = {"step_bp": plan.step_bp, "offsets_bp": list(plan.offsets_bp)}

    if "loops" in enabled:
        lp = cfg.datasets.loops
        path = paths.local_path(_resolve(cfg, inp.loops), "bedpe")
        meta["inputs"]["loops"] = path
        bp = bed_reader.read_bedpe(path)
        to_hic = _chrom_filter(np.concatenate([bp["chrom1"], bp["chrom2"]]), hic_names,
                               cfg.aliases, path)
        unknown = sorted((set(bp["chrom1"].tolist()) | set(bp["chrom2"].tolist())) - set(to_hic))
        if unknown:
            raise MixHicError(
                f"{path}: chromosome(s) {unknown[:5]}{' ...' if len(unknown) > 5 else ''} "
                f"are not in the Hi-C file (it has {hic_names[:5]}{' ...' if len(hic_names) > 5 else ''}); "
                "fix the names or map them with aliases"
            )
        c1 = np.asarray([to_hic.get(c) for c in bp["chrom1"]], dtype=object)
        c2 = np.asarray([to_hic.get(c) for c in bp["chrom2"]], dtype=object)
        drops = {"trans": int((c1 != c2).sum()), "distance": 0, "edge": 0, "other_chrom": 0}
        for c in chroms:
            sel = (c1 == c) & (c2 == c)
            _check_coords(c, np.r_[bp["start1"][sel], bp["start2"][sel]],
                          np.r_[bp["end1"][sel], bp["end2"][sel]], info.chromsizes[c], path)
            i, j, dist = loop_anchor_bins(bp["start1"][sel], bp["end1"][sel],
                                          bp["start2"][sel], bp["end2"][sel], res)
            ok = (dist >= lp.min_distance_bp) & (dist <= lp.max_distance_bp)
            drops["distance"] += int((~ok).sum())
            i, j = i[ok], j[ok]
            x, y, keep = loop_windows(i, j, n_bins[c], w)
            drops["edge"] += int((~keep).sum())
            pairs = np.unique(np.stack([i[keep], j[keep]], 1), axis=0).reshape(-1, 2)
            per_chrom[c]["loops"] = pairs
        drops["other_chrom"] = int(((c1 == c2) & ~np.isin(c1, chroms)).sum())
        meta["dropped"]["loops_plan"] = drops
        settings["datasets"]["loops"] = {
            "min_bins": max(1, lp.min_distance_bp // res),
            "max_bins": lp.max_distance_bp // res,
            "negative_ratio": lp.negative_ratio,
            "jitter_bins": lp.jitter_bins,
            "exclude_bins": lp.exclude_bins,
            "negatives": {k: v for k, v in lp.negatives.items() if v > 0},
            "high_contact_top": lp.high_contact_top,
            "anchor_top": lp.anchor_top,
            "near_loop_bins": list(lp.near_loop_bins),
        }

    cage_chroms: dict[str, str | None] = {c: None for c in chroms}
    if "cage" in enabled:
        cage_uri = paths.local_path(_resolve(cfg, inp.cage), "CAGE track")
        settings["cage_uri"] = cage_uri
        settings["datasets"]["cage"] = {}
        meta["inputs"]["cage"] = cage_uri
        bw = bigwig_reader.open_bigwig(cage_uri, "CAGE track")
        try:
            for c in chroms:
                if cfg.normalize.require_track_data:
                    cage_chroms[c] = resolve_name(c, list(bw.chroms()), cage_uri, cfg.aliases)
                    bigwig_reader.check_track_data(bw, cage_chroms[c], cage_uri)
                else:
                    cage_chroms[c] = match_names([c], list(bw.chroms()), cfg.aliases).get(c)
        finally:
            bw.close()
        tss_path = paths.local_path(_resolve(cfg, inp.tss), "TSS BED")
        meta["inputs"]["tss"] = tss_path
        bed = bed_reader.read_bed(tss_path)
        to_hic = _chrom_filter(bed["chrom"], hic_names, cfg.aliases, tss_path)
        hc = np.asarray([to_hic.get(c) for c in bed["chrom"]], dtype=object)
        pos = np.where(bed["strand"] == "-", bed["end"] - 1, bed["start"])
        for c in chroms:
            sel = hc == c
            _check_coords(c, bed["start"][sel], bed["end"][sel], info.chromsizes[c], tss_path)
            per_chrom[c]["tss"] = tss_windows(pos[sel], n_bins[c], w, res)[0]

    blacklist: dict[str, np.ndarray] = {}
    if inp.blacklist:
        bl_path = paths.local_path(_resolve(cfg, inp.blacklist), "blacklist BED")
        meta["inputs"]["blacklist"] = bl_path
        bed = bed_reader.read_bed(bl_path)
        to_hic = _chrom_filter(bed["chrom"], hic_names, cfg.aliases, bl_path)
        hc = np.asarray([to_hic.get(c) for c in bed["chrom"]], dtype=object)
        for c in chroms:
            sel = hc == c
            blacklist[c] = np.stack([bed["start"][sel], bed["end"][sel]], 1)

    # ---- splits: regions checked, windows counted per split before any work
    regions, split_summary = _split_regions(cfg, info, chroms, n_bins)
    half = w // 2
    planned = {d: {"train": 0, "val": 0, "test": 0, "crossing": 0} for d in enabled}
    for c in chroms:
        for d in enabled:
            if d in ("pretrain", "hic"):
                spec = settings["datasets"][d]
                x, y = grid_windows(n_bins[c], w, spec["step_bp"], res, spec["offsets_bp"])
            elif d == "loops":
                x, y = per_chrom[c]["loops"][:, 0] - half, per_chrom[c]["loops"][:, 1] - half
            else:
                x = y = per_chrom[c]["tss"]
            codes = window_split_codes(x * res, (y + w) * res, regions[c])
            for code, split in enumerate(SPLIT_NAMES):
                planned[d][split] += int((codes == code).sum())
            planned[d]["crossing"] += int((codes < 0).sum())
    _check_planned_splits(cfg, planned, split_summary)
    meta["splits"] = {**split_summary, "planned": planned}

    # ---- tasks: one per chromosome chunk
    tasks = []
    ex = cfg.datasets.loops.exclude_bins
    for ci, c in enumerate(chroms):
        loops = per_chrom[c].get("loops", np.zeros((0, 2), np.int64))
        tss_x = per_chrom[c].get("tss", np.zeros(0, np.int64))
        for k, (lo, hi) in enumerate(chunk_ranges(n_bins[c] - w + 1, cfg.run.chunk_bins)):
            lsel = (loops[:, 0] - half >= lo) & (loops[:, 0] - half < hi)
            # loops of neighbouring chunks that negatives of this one must stay away from
            near = ~lsel & (loops[:, 0] - half >= lo - ex) & (loops[:, 0] - half < hi + ex)
            tsel = (tss_x >= lo) & (tss_x < hi)
            bl = blacklist.get(c, np.zeros((0, 2), np.int64))
            tasks.append({
                "chunk_id": f"{ci:04d}-{k:05d}",
                "chrom": c,
                "chrom_index": ci,
                "chunk_index": k,
                "n_bins": n_bins[c],
                "lo": lo,
                "hi": hi,
                "split_regions": regions[c].tolist(),
                "track_chroms": track_chroms[c],
                "cage_chrom": cage_chroms[c],
                "loops_i": loops[lsel, 0].tolist(),
                "loops_j": loops[lsel, 1].tolist(),
                "exclude_i": loops[near, 0].tolist(),
                "exclude_j": loops[near, 1].tolist(),
                "tss_x": tss_x[tsel].tolist(),
                "blacklist": bl.tolist(),
            })

    def chrom_split(c: str) -> str:
        r = regions[c]
        if len(r) == 0:
            return "train"
        if len(r) == 1 and r[0, 0] == 0 and r[0, 1] >= n_bins[c] * res:
            return SPLIT_NAMES[r[0, 2]]
        return "regions"

    meta["chromosomes"] = {
        c: {"length": info.chromsizes[c], "bins": n_bins[c], "split": chrom_split(c),
            "split_regions": [[a, b, SPLIT_NAMES[k]] for a, b, k in regions[c].tolist()],
            "tracks": track_chroms[c]}
        for c in chroms
    }
    meta["hic"] = settings["hic"]
    return settings, tasks, meta
