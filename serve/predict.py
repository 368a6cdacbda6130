"""Genome-wide prediction (``mixhic predict``): Ray Data batch inference over every window.

For each model (one per task) and each chosen chromosome (or region):

* ``hic``   diagonal windows every ``step_bins`` (default W/2; the chromosome's last window
            is always added) -> stitched map -> ``predicted_hic.cool`` and the
            multi-resolution ``predicted_hic.mcool`` (HiGlass)
* ``cage``  the same windows -> per-bin CAGE -> ``predicted_cage.bw`` (with zoom levels)
* ``loops`` candidate anchor pairs (i, j) on a ``loops.stride_bins`` grid with
            ``min_distance <= (j - i) * resolution <= max_distance``, each scored in the
            window centred on it (as the loops dataset places them); pixels with
            probability >= ``loops.min_probability`` are candidates, clustered and
            suppressed into calls (:mod:`mixhic.serve.loopcall`) -> ``predicted_loops.bedpe``

Regions (``regions`` / ``regions_bed``, ``--region chr1:1-2000000``, ``--regions-bed``)
restrict the windows: diagonal windows tile each region (a region shorter than a window
gets the window centred on it) and the written values are clipped to the regions; loop
candidates keep the chromosome's grid and need both anchors in one region. Windows whose
anchors are unmappable (NaN/zero balancing weight) are skipped and counted.

The work is planned per chromosome (:mod:`mixhic.serve.plan`, pure numpy) and cut into
chunks of ``chunk_windows`` windows: one Ray Data row per chunk, run through
``map_batches`` by :class:`WindowPredictor`, a callable class that opens the genome files
and loads the models once per actor (``concurrency`` actors, ``num_cpus``/``num_gpus``
each), replans the chromosome and predicts its chunk ``batch_size`` windows at a time,
normalised as ``mixhic prepare`` does. A chunk comes back as one row (loop chunks only
with their candidates); the driver shows a progress bar and stitches (in chunk order, so
results do not depend on scheduling). See :mod:`mixhic.serve.writers` for the files.

Resumable per chunk: each chunk's outputs are saved as they arrive
(``parts/<chrom>.<task>.chunks/``), each finished (chromosome, task) as
``parts/<chrom>.<task>.npz``, both tagged with a fingerprint of the model, the task's
scan settings, the chromosome's regions and ``skip_unmappable`` (chunks also with
``chunk_windows`` and ``batch_size``), and ``parts/<chrom>.done`` marks a chromosome whose
tasks are all saved. A rerun after a crash predicts only what was not saved and
assembles the final files (written under temporary names, then renamed). Loop calling
(``loops.call``) runs at assembly from the saved candidates, so it is not part of the
fingerprint.

Measured: windows per second per core (the actors' busy time) and the projected wall
time of a whole human genome at 5 kb (:mod:`mixhic.serve.throughput`), logged at the end
and written to ``predict.json`` with the window counts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mixhic.core.cliargs import Alias, ConfigCommand
from mixhic.core.config import to_dict
from mixhic.core.errors import MixHicError
from mixhic.core.runtime import ensure_ray
from mixhic.pipelines.names import ChromosomeNameError, resolve_name
from mixhic.serve import writers
from mixhic.serve.config import PredictConfig
from mixhic.serve.engine import ModelCard, card_from_meta, load_task_model, resolve_source
from mixhic.serve.loopcall import LoopCalls, call_loops, top_calls
from mixhic.serve.plan import WindowPlan, plan_for, resolve_regions
from mixhic.serve.throughput import project

__all__ = ["PredictOutputs", "WindowPredictor", "predict_genome", "config_from_args"]

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "predict-demo"
OUTPUT_NAMES = {"hic": "predicted_hic.cool", "loops": "predicted_loops.bedpe",
                "cage": "predicted_cage.bw"}
MCOOL_NAME = "predicted_hic.mcool"
SUMMARY_NAME = "predict.json"


@dataclass(frozen=True)
class PredictOutputs:
    """Files written (None for a task without a model) and the chromosomes covered."""

    cool: Path | None
    bedpe: Path | None
    bigwig: Path | None
    chroms: tuple[str, ...]
    skipped: tuple[str, ...]  # chromosomes resumed from parts
    mcool: Path | None = None
    summary: Path | None = None  # predict.json: settings, window counts, throughput


# --------------------------------------------------------------------------- Ray Data actor


class WindowPredictor:
    """Ray Data callable class: chunks of windows -> predictions, one row per chunk.

    Holds every model (one per task) and their genome readers, loaded once per actor,
    and the plan of the (task, chromosome) it last worked on. Input rows: ``task``,
    ``chrom``, ``lo``, ``hi`` (a slice of the chromosome's :class:`WindowPlan`). Output
    rows: ``task``, ``chrom``, ``lo``, ``n`` (windows predicted), ``busy_s`` (seconds
    spent) and ``x``, ``y``, ``out`` as raw bytes (int64 window starts, float32 outputs
    (N, P), P = hic W*W | loops 1 | cage W); a loop chunk keeps only its candidates
    (probability >= ``loops.min_probability``).
    """

    def __init__(self, sources: dict[str, str], cfg: PredictConfig,
                 regions: dict[str, np.ndarray] | None) -> None:
        # lazy: pulls fastapi and pydantic (+0.35 s) into mixhic predict --help
        from mixhic.serve.regions import GenomeWindows

        self.cfg, self.regions = cfg, regions
        self.models = {t: load_task_model(src, cfg.device) for t, src in sources.items()}
        self.windows = {t: GenomeWindows(cfg.genome, m.card) for t, m in self.models.items()}
        self._tracks: dict[tuple[str, str], np.ndarray] = {}  # (task, chrom) -> (C, E)
        self._plans: dict[tuple[str, str], WindowPlan] = {}

    def _track(self, task: str, chrom: str) -> np.ndarray:
        key = (task, chrom)
        if key not in self._tracks:
            if len(self._tracks) > 2:
                self._tracks.clear()
            gw = self.windows[task]
            n = gw.chromsizes[chrom] // gw.res
            self._tracks[key] = gw.epi_transform(gw.track_bins(chrom, 0, n))
        return self._tracks[key]

    def _plan(self, task: str, chrom: str) -> WindowPlan:
        key = (task, chrom)
        if key not in self._plans:
            if len(self._plans) > 2:
                self._plans.clear()
            self._plans[key] = plan_for(self.cfg, self.windows[task], task, chrom, self.regions)
        return self._plans[key]

    def predict(self, task: str, chrom: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Raw model outputs (B, ...) of windows at bins ``(x, y)`` of ``chrom``."""
        # lazy: pulls pipelines.windows (+5.6 ms) into mixhic predict --help
        from mixhic.pipelines.windows import slice_epi, slice_hic

        model, gw = self.models[task], self.windows[task]
        w = gw.W
        epi = slice_epi(self._track(task, chrom), x, y, gw.L, gw.L // w)  # (B, C, 2L)
        hic = None
        if model.card.needs_hic:
            r0, c0 = int(x.min()), int(y.min())
            band = gw.hic_band(chrom, (r0, int(x.max()) + w), (c0, int(y.max()) + w))
            hic = gw.hic_transform(slice_hic(band, x - r0, y - c0, w))  # (B, W, W)
        return model.predict(epi, hic, offset=y - x).reshape(len(x), -1)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows: dict[str, list] = {k: [] for k in ("task", "chrom", "lo", "n", "busy_s",
                                                 "x", "y", "out")}
        for task, chrom, lo, hi in zip(batch["task"], batch["chrom"], batch["lo"], batch["hi"]):
            task, chrom, lo, hi = str(task), str(chrom), int(lo), int(hi)
            t0 = time.perf_counter()
            plan = self._plan(task, chrom)
            x, y = plan.x[lo:hi], plan.y[lo:hi]
            outs = [self.predict(task, chrom, x[a:a + self.cfg.batch_size],
                                 y[a:a + self.cfg.batch_size])
                    for a in range(0, len(x), self.cfg.batch_size)]
            out = np.concatenate(outs).astype(np.float32) if outs else np.zeros((0, 1), np.float32)
            if task == "loops":
                keep = out[:, 0] >= self.cfg.loops.min_probability
                x, y, out = x[keep], y[keep], out[keep]
            for k, v in (("task", task), ("chrom", chrom), ("lo", lo), ("n", hi - lo),
                         ("busy_s", time.perf_counter() - t0),
                         ("x", np.ascontiguousarray(x, np.int64).tobytes()),
                         ("y", np.ascontiguousarray(y, np.int64).tobytes()),
                         ("out", np.ascontiguousarray(out).tobytes())):
                rows[k].append(v)
        return {k: np.array(v, dtype=object if k in ("x", "y", "out") else None)
                for k, v in rows.items()}


# --------------------------------------------------------------------------- driver


def _cards(sources) -> dict[str, ModelCard]:
    """Cards of the models (MLflow models are downloaded once here to read their meta)."""
    # lazy: pulls torch (+1.2 s) into mixhic predict --help
    from mixhic.platform.checkpoints import read_meta

    cards: dict[str, ModelCard] = {}
    for src in sources:
        path, name, version = resolve_source(src)
        try:
            meta = read_meta(path)
        except (FileNotFoundError, ValueError) as exc:
            raise MixHicError(str(exc)) from None
        card = card_from_meta(str(src), name, version, meta)
        if card.task in cards:
            raise MixHicError(f"models: two {card.task} models given; one per task")
        cards[card.task] = card
    return cards


def _fingerprint(cfg: PredictConfig, card: ModelCard, regions: np.ndarray | None = None) -> str:
    """What a part's values depend on: the task's scan settings (loop calling excluded: it
    runs at assembly), ``skip_unmappable``, the chromosome's regions (bp), the model card
    (source, registry version, run id, geometry, normalisation) and, for a local model
    dir, its weights file's size and mtime (a registry version is immutable; a directory
    may be overwritten)."""
    # lazy: pulls torch (+1.2 s) into mixhic predict --help
    from mixhic.platform.checkpoints import MODEL_FILE

    relevant = ("genome", "loops") if card.task == "loops" else ("genome", "step_bins")
    settings = {k: v for k, v in to_dict(cfg).items() if k in relevant}
    if "loops" in settings:
        settings["loops"] = {k: v for k, v in settings["loops"].items() if k != "call"}
    settings["skip_unmappable"] = cfg.skip_unmappable
    settings["regions"] = None if regions is None else np.asarray(regions).tolist()
    stamp = ""
    weights = Path(card.source.removeprefix("file://")) / MODEL_FILE
    if "://" not in card.source.removeprefix("file://") and weights.is_file():
        st = weights.stat()
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
    blob = json.dumps([settings, card.to_json(), card.data, stamp], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _output_width(card: ModelCard) -> int:
    return {"hic": card.window_bins**2, "loops": 1, "cage": card.window_bins}[card.task]


def _cores(cfg: PredictConfig) -> int:
    """CPU cores one model actor computes on (Ray sets its OMP threads to ``num_cpus``)."""
    return max(1, int(cfg.num_cpus))


def _chunk_dir(parts: Path, task: str, chrom: str) -> Path:
    return parts / f"{chrom}.{task}.chunks"


def _chunk_fingerprint(cfg: PredictConfig, fingerprint: str) -> str:
    """A chunk's identity: its part's fingerprint and how windows were cut into chunks
    and batches (``lo`` indexes the plan; batch composition may change the last bits)."""
    return f"{fingerprint}:{cfg.chunk_windows}:{cfg.batch_size}"


def _save_chunk(path: Path, fingerprint: str, x, y, out) -> None:
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, fingerprint=np.array(fingerprint), x=x, y=y, out=out)
    os.replace(tmp, path)


def _run(cfg: PredictConfig, cards: dict[str, ModelCard], plans: dict[tuple[str, str], WindowPlan],
         regions: dict[str, np.ndarray] | None, parts: Path, fps: dict[tuple[str, str], str]
         ) -> dict:
    """Predict the windows of ``plans`` ((task, chrom) -> plan) in ONE Ray Data job (one
    actor pool holding every model). Each chunk is saved as it arrives
    (``parts/<chrom>.<task>.chunks/<lo>.npz``; with ``resume`` a rerun after a crash
    predicts only the chunks not saved), and each (chrom, task) part as soon as it is
    whole (its chunk files are then removed). Returns the timing of the chunks predicted:
    windows, busy core-seconds, wall seconds."""
    import ray

    items, acc, chunks, seen = [], {}, {}, {}
    resumed = 0
    for (task, chrom), plan in plans.items():
        key = (task, chrom)
        acc[key] = _Collector(cards[task], cfg, plan)
        n = plan.n_windows
        los = list(range(0, n, cfg.chunk_windows))
        chunks[key], seen[key] = len(los), 0
        cdir = _chunk_dir(parts, task, chrom)
        cfp = _chunk_fingerprint(cfg, fps[key])
        for lo in los:
            old = _load_part(cdir / f"{lo}.npz", cfp) if cfg.resume else None
            if old is not None:
                acc[key].add(lo, old["x"], old["y"], old["out"])
                seen[key] += 1
                resumed += min(lo + cfg.chunk_windows, n) - lo
            else:
                items.append({"task": task, "chrom": chrom, "lo": lo,
                              "hi": min(lo + cfg.chunk_windows, n)})
        cdir.mkdir(exist_ok=True)

    def finish(key) -> None:
        acc[key].save(parts / f"{key[1]}.{key[0]}.npz", fps[key])
        shutil.rmtree(_chunk_dir(parts, *key), ignore_errors=True)
        log.info("%s %s: %d windows done", key[0], key[1], plans[key].n_windows)

    for key in [k for k in chunks if seen[k] == chunks[k]]:
        finish(key)
    total = sum(p.n_windows for p in plans.values())
    log.info("predicting %d windows in %d chunks%s: %s", total - resumed, len(items),
             f" ({resumed} resumed from saved chunks)" if resumed else "",
             ", ".join(f"{t} {c}: {p.n_windows} (+{p.unmappable} unmappable skipped)"
                       for (t, c), p in plans.items()))
    timing = {"windows": 0, "busy_core_s": 0.0, "wall_s": 0.0}
    if not items:
        return timing
    ensure_ray()
    t0 = time.perf_counter()
    sources = {t: cards[t].source for t in {t for t, _ in plans}}
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        WindowPredictor,
        fn_constructor_kwargs={"sources": sources, "cfg": cfg, "regions": regions},
        batch_size=1,  # one chunk per call
        compute=ray.data.ActorPoolStrategy(size=cfg.concurrency),
        num_cpus=cfg.num_cpus,
        num_gpus=cfg.num_gpus,
        batch_format="numpy",
    )
    bar = _progress(total - resumed, "predict", cfg.progress)
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for k in range(len(batch["task"])):
            key = (str(batch["task"][k]), str(batch["chrom"][k]))
            card = cards[key[0]]
            lo = int(batch["lo"][k])
            x = np.frombuffer(batch["x"][k], np.int64)
            y = np.frombuffer(batch["y"][k], np.int64)
            out = np.frombuffer(batch["out"][k], np.float32)
            out = out.reshape(len(x), -1)[:, : _output_width(card)] if len(x) else \
                np.zeros((0, _output_width(card)), np.float32)
            _save_chunk(_chunk_dir(parts, *key) / f"{lo}.npz",
                        _chunk_fingerprint(cfg, fps[key]), x, y, out)
            acc[key].add(lo, x, y, out)
            n = int(batch["n"][k])
            timing["windows"] += n
            timing["busy_core_s"] += float(batch["busy_s"][k]) * _cores(cfg)
            seen[key] += 1
            bar.update(n)
            if seen[key] == chunks[key]:
                finish(key)
    bar.close()
    timing["wall_s"] = time.perf_counter() - t0
    missing = [k for k in chunks if seen[k] != chunks[k]]
    if missing:
        raise RuntimeError(f"chunks missing for {missing}")
    return timing


class _Collector:
    """Accumulates one chromosome's outputs of one task (chunks stitched in chunk order)."""

    def __init__(self, card: ModelCard, cfg: PredictConfig, plan: WindowPlan) -> None:
        self.card, self.cfg, self.plan = card, cfg, plan
        self.chunks: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def add(self, lo: int, x, y, out) -> None:
        self.chunks[lo] = (x, y, out)

    def save(self, path: Path, fingerprint: str) -> None:
        # lazy: pulls fastapi and pydantic (+0.35 s) into mixhic predict --help
        from mixhic.serve.regions import Normalisation

        card, plan = self.card, self.plan
        chunks = [self.chunks[k] for k in sorted(self.chunks)]
        counts = {"n_windows": np.array(plan.n_windows), "n_unmappable": np.array(plan.unmappable)}
        if card.task in ("hic", "cage"):
            norm = Normalisation.from_data(card.data)
            n_bins = plan.n_bins
            if card.task == "hic":
                acc = writers.BandAccumulator(n_bins, card.window_bins)
                w = card.window_bins
                for x, _, out in chunks:
                    acc.add(x, writers.hic_inverse(out.reshape(-1, w, w), norm.hic_transform,
                                                   norm.hic_cap))
                b1, b2, v = acc.pixels()
                if plan.inside is not None:
                    keep = plan.inside[b1] & plan.inside[b2]
                    b1, b2, v = b1[keep], b2[keep], v[keep]
                arrays = {"bin1": b1, "bin2": b2, "value": v}
            else:
                acc = writers.BinAccumulator(n_bins)
                for x, _, out in chunks:
                    acc.add(x, writers.cage_inverse(out))
                b, v = acc.bins()
                if plan.inside is not None:
                    keep = plan.inside[b]
                    b, v = b[keep], v[keep]
                arrays = {"bin": b, "value": v}
        else:
            half = card.window_bins // 2
            parts = [(x + half, y + half, out[:, 0].astype(np.float64)) for x, y, out in chunks]
            parts = parts or [(np.zeros(0, np.int64),) * 2 + (np.zeros(0),)]
            arrays = {k: np.concatenate([p[n] for p in parts])
                      for n, k in enumerate(("i", "j", "probability"))}
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, fingerprint=np.array(fingerprint), **counts, **arrays)
        os.replace(tmp, path)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="win", disable=not enabled)


def _load_part(path: Path, fingerprint: str) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["fingerprint"]) != fingerprint:
                return None
            return {k: z[k] for k in z.files if k != "fingerprint"}
    except (OSError, ValueError, KeyError) as exc:  # a truncated or foreign file: redo it
        log.warning("%s: unreadable part (%s); predicting it again", path, exc)
        return None


def _marker(path: Path) -> str | None:
    """The fingerprint in a ``<chrom>.done`` marker (None: absent or unreadable)."""
    try:
        return json.loads(path.read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def _call_loops(cfg: PredictConfig, loaded: dict[str, dict], resolution: int) -> dict:
    """Loop calls per chromosome from the saved candidates (``cfg.loops.call``)."""
    call = cfg.loops.call
    out = {}
    for chrom, v in loaded.items():
        if not call.enabled:
            n = len(v["i"])
            out[chrom] = LoopCalls(v["i"].astype(np.int64), v["j"].astype(np.int64),
                                   v["probability"], np.ones(n, np.int64))
            continue
        out[chrom] = call_loops(
            v["i"], v["j"], v["probability"], threshold=cfg.loops.min_probability,
            cluster_radius=cfg.loops.cluster_radius(),
            min_separation=call.min_separation_bp // resolution)
    return top_calls(out, call.top_n) if call.enabled else out


def predict_genome(cfg: PredictConfig) -> PredictOutputs:
    """Predict over ``cfg.chroms`` (or ``cfg.regions``) with ``cfg.models``; write
    .cool/.mcool/bedpe/bigWig and ``predict.json`` in ``cfg.out_dir``."""
    # lazy: pulls fastapi and pydantic (+0.35 s) into mixhic predict --help
    from mixhic.serve.regions import GenomeWindows

    if not cfg.models:
        raise MixHicError("models: no model given (--model URI or --checkpoint DIR)")
    if not cfg.out_dir:
        raise MixHicError("out_dir: required (--out DIR)")
    cards = _cards(cfg.models)
    if "hic" in cards and any(r % cards["hic"].resolution for r in cfg.mcool_resolutions):
        raise MixHicError(f"mcool_resolutions: {list(cfg.mcool_resolutions)} must be multiples "
                          f"of the hic model's resolution ({cards['hic'].resolution} bp)")
    out = Path(cfg.out_dir)
    parts = out / "parts"
    parts.mkdir(parents=True, exist_ok=True)

    # chromosome names and sizes from the files (canonical = the Hi-C file's spelling)
    gws = {t: GenomeWindows(cfg.genome, card) for t, card in cards.items()}
    try:
        first = next(iter(gws.values()))
        sizes = dict(first.chromsizes)
        source = cfg.genome.mcool or "the track files"
        regions = resolve_regions(cfg, sizes, source)
        try:
            chroms = (list(regions) if regions is not None else
                      [resolve_name(c, list(sizes), "chroms") for c in cfg.chroms] if cfg.chroms
                      else list(sizes))
        except ChromosomeNameError as exc:
            raise MixHicError(f"{exc} (in {source})") from None
        chromsizes = {c: sizes[c] for c in chroms}
        fps = {(t, c): _fingerprint(cfg, card, None if regions is None else regions[c])
               for t, card in cards.items() for c in chroms}
        done_fps = {c: hashlib.sha256(json.dumps(sorted(
            (t, fps[t, c]) for t in cards)).encode()).hexdigest()[:16] for c in chroms}

        skipped = [c for c in chroms if cfg.resume and _marker(parts / f"{c}.done") ==
                   done_fps[c] and all(_load_part(parts / f"{c}.{t}.npz", fps[t, c])
                                       is not None for t in cards)]
        if skipped:
            log.info("resuming: %s already done", ", ".join(skipped))

        plans = {(t, c): plan_for(cfg, gws[t], t, c, regions).counts_only()
                 for t in cards for c in chroms
                 if c not in skipped and not (cfg.resume and _load_part(
                     parts / f"{c}.{t}.npz", fps[t, c]) is not None)}
    finally:
        for gw in gws.values():
            gw.close()
    timing = _run(cfg, cards, plans, regions, parts, fps) if plans else None
    for chrom in chroms:
        if chrom not in skipped:
            tmp = parts / f".{chrom}.done.tmp"
            tmp.write_text(json.dumps({"fingerprint": done_fps[chrom], "tasks": sorted(cards)}))
            os.replace(tmp, parts / f"{chrom}.done")
        for task in cards:  # chunks left by a crash between a part's save and their removal
            shutil.rmtree(_chunk_dir(parts, task, chrom), ignore_errors=True)

    # ---- assembly: every chromosome's parts -> final files (atomic renames)
    loaded = {t: {c: _load_part(parts / f"{c}.{t}.npz", fps[t, c]) for c in chroms}
              for t in cards}
    for t, per in loaded.items():
        bad = [c for c, v in per.items() if v is None]
        if bad:
            raise RuntimeError(f"{t}: parts missing for {bad} in {parts}")
    paths: dict[str, Path | None] = dict.fromkeys(OUTPUT_NAMES)
    mcool = None
    meta = {"generated-by": "mixhic predict",
            "models": {t: c.to_json() for t, c in cards.items()}}
    summary: dict = {**meta, "config": to_dict(cfg), "chroms": chroms,
                     "regions": None if regions is None else
                     {c: r.tolist() for c, r in regions.items()}}
    summary["windows"] = {t: {c: {"predicted": int(v["n_windows"]),
                                  "unmappable_skipped": int(v["n_unmappable"])}
                              for c, v in per.items()} for t, per in loaded.items()}
    if "hic" in cards:
        res = cards["hic"].resolution
        px = {c: (v["bin1"], v["bin2"], v["value"]) for c, v in loaded["hic"].items()}
        paths["hic"] = writers.write_cool(out / OUTPUT_NAMES["hic"], chromsizes, res, px,
                                          metadata=meta)
        mcool = writers.write_mcool(out / MCOOL_NAME, paths["hic"],
                                    list(cfg.mcool_resolutions) or None)
    if "loops" in cards:
        res = cards["loops"].resolution
        calls = _call_loops(cfg, loaded["loops"], res)
        paths["loops"] = writers.write_bedpe(out / OUTPUT_NAMES["loops"], calls, res, chroms)
        summary["loops"] = {"candidates": int(sum(len(v["i"]) for v in loaded["loops"].values())),
                            "calls": int(sum(len(c) for c in calls.values()))}
    if "cage" in cards:
        vals = {c: (v["bin"], v["value"]) for c, v in loaded["cage"].items()}
        paths["cage"] = writers.write_bigwig(out / OUTPUT_NAMES["cage"], chromsizes,
                                             cards["cage"].resolution, vals)
    skipped_n = {t: sum(v["unmappable_skipped"] for v in per.values())
                 for t, per in summary["windows"].items()}
    log.info("windows skipped for unmappable anchors: %s",
             ", ".join(f"{t} {n}" for t, n in skipped_n.items()))
    if "loops" in summary:
        log.info("loops: %d candidates -> %d calls", summary["loops"]["candidates"],
                 summary["loops"]["calls"])
    summary["throughput"] = None
    if timing and timing["windows"]:
        proj = project(timing["windows"], timing["busy_core_s"],
                       {t: c.window_bins for t, c in cards.items()}, cfg.step_bins, cfg.loops)
        summary["throughput"] = {**proj.to_json(), "wall_s": round(timing["wall_s"], 3),
                                 "cores_per_actor": _cores(cfg),
                                 "actors": cfg.concurrency}
        log.info("throughput: %d windows, %.1f windows/s/core (%.1f s wall); projected whole "
                 "human genome (GRCh38) at 5 kb with these models and settings: %s windows, "
                 "%.2f h on 32 cores", timing["windows"], proj.rate_per_core, timing["wall_s"],
                 "+".join(f"{n} {t}" for t, n in proj.genome_windows.items()), proj.hours(32))
    summary_path = out / SUMMARY_NAME
    tmp = summary_path.with_name(f".{SUMMARY_NAME}.tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    os.replace(tmp, summary_path)
    log.info("wrote %s", ", ".join(str(p) for p in [*paths.values(), mcool] if p))
    return PredictOutputs(paths["hic"], paths["loops"], paths["cage"], tuple(chroms),
                          tuple(skipped), mcool, summary_path)


CLI = ConfigCommand(
    "mixhic predict",
    "Genome-wide prediction with Ray Data: .cool/.mcool (hic), bedpe loop calls (loops), "
    "bigWig (cage) for the chosen chromosomes or regions. Resumable per chromosome.",
    config_class=PredictConfig, default_config=DEFAULT_CONFIG,
    config_help="predict config: shipped config name (predict-demo) or YAML path",
    keys_help="e.g. mixhic predict predict-demo 'models=[runs/hic/model]' out_dir=runs/pred "
              "'regions=[chr1:0-5000000]' genome.mcool=hic.mcool",
    aliases=[
        Alias("--model", "models", "MLflow model URI (repeatable; one per task)",
              kind="append", metavar="URI", example="models:/mixhic-hic@1"),
        Alias("--checkpoint", "models", "model directory (repeatable; one per task)",
              kind="append", metavar="DIR", example="runs/hic/model"),
        Alias("--out", "out_dir", "output directory", metavar="DIR", example="runs/pred"),
        Alias("--chroms", "chroms", "chromosomes (default: all)", kind="list",
              metavar="CHROM", example="chr2"),
        Alias("--region", "regions", "predict only this region (bp, repeatable)",
              kind="append", metavar="CHROM:START-END", example="chr1:0-1000000"),
        Alias("--regions-bed", "regions_bed", "predict only the regions of a BED file",
              metavar="BED", example="regions.bed"),
        Alias("--mcool", "genome.mcool", "Hi-C file", metavar="MCOOL", example="hic.mcool"),
        Alias("--track", "genome.tracks", "a track as trained, e.g. atac=atac.bw "
              "(repeatable)", kind="mapping", metavar="NAME=BIGWIG", example="atac=atac.bw"),
    ],
)
CLI.parser.add_argument(
    "--report", action="store_true",
    help="also write the region viewer page (HTML + PNG) of the first regions (default: the "
         "first 2 Mb) under OUT/report (mixhic.serve.viewer)")


config_from_args = CLI.config_from_args  # the PredictConfig ``ARGS`` run with
