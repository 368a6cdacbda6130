"""Genome-wide prediction (``mixhic predict``): Ray Data batch inference over every window.

For each model (one per task) and each chosen chromosome:

* ``hic``   diagonal windows every ``step_bins`` (default W/2; the chromosome's last window
            is always added) -> stitched map -> ``predicted_hic.cool``
* ``cage``  the same windows -> per-bin CAGE -> ``predicted_cage.bw``
* ``loops`` candidate anchor pairs (i, j) on a ``loops.stride_bins`` grid with
            ``min_distance <= (j - i) * resolution <= max_distance``, each scored in the
            window centred on it (as the loops dataset places them) ->
            ``predicted_loops.bedpe`` (pairs with probability >= ``loops.min_probability``)

Windows run through ``map_batches`` with :class:`WindowPredictor`, a callable class that
opens the genome files and loads the model once per actor (``concurrency`` actors,
``num_cpus``/``num_gpus`` each) and cuts windows from per-batch bands, normalised as
``mixhic prepare`` does. See :mod:`mixhic.serve.writers` for the stitching and the scale
of the values written.

Resumable per chromosome: each finished (chromosome, task) is saved as
``parts/<chrom>.<task>.npz`` (tagged with a fingerprint of the models and settings), and
``parts/<chrom>.done`` marks a chromosome whose tasks are all saved. A rerun skips those
and assembles the final files (written under temporary names, then renamed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixhic.platform.config import to_dict
from mixhic.platform.errors import MixHicError
from mixhic.serve import writers
from mixhic.serve.config import GenomeFiles, PredictConfig
from mixhic.serve.engine import ModelCard, card_from_meta, resolve_source

__all__ = ["PredictOutputs", "WindowPredictor", "plan_windows", "predict_genome",
           "config_from_args", "cli_main"]

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "predict-demo"
OUTPUT_NAMES = {"hic": "predicted_hic.cool", "loops": "predicted_loops.bedpe",
                "cage": "predicted_cage.bw"}


@dataclass(frozen=True)
class PredictOutputs:
    """Files written (None for a task without a model) and the chromosomes covered."""

    cool: Path | None
    bedpe: Path | None
    bigwig: Path | None
    chroms: tuple[str, ...]
    skipped: tuple[str, ...]  # chromosomes resumed from parts


# --------------------------------------------------------------------------- planning


def plan_windows(task: str, n_bins: int, window_bins: int, resolution: int,
                 step_bins: int, loops) -> tuple[np.ndarray, np.ndarray]:
    """Window starts ``(x, y)`` (bin indices, int64) of ``task`` on a chromosome of ``n_bins``
    whole bins. Diagonal grid for hic/cage (covering the end); loop candidates centred on
    anchor pairs for loops."""
    w = window_bins
    last = n_bins - w
    if last < 0:
        empty = np.zeros(0, np.int64)
        return empty, empty
    if task in ("hic", "cage"):
        step = step_bins or max(1, w // 2)
        x = np.unique(np.append(np.arange(0, last + 1, step, dtype=np.int64), last))
        return x, x.copy()
    half = w // 2
    dmin = -(-loops.min_distance // resolution)
    dmax = loops.max_distance // resolution
    anchors = np.arange(half, last + half + 1, loops.stride_bins, dtype=np.int64)
    xs, ys = [], []
    for i in anchors:
        j = anchors[(anchors - i >= max(dmin, 1)) & (anchors - i <= dmax)]
        xs.append(np.full(len(j), i - half))
        ys.append(j - half)
    x = np.concatenate(xs) if xs else np.zeros(0, np.int64)
    y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
    keep = (x >= 0) & (y <= last)
    return x[keep], y[keep]


# --------------------------------------------------------------------------- Ray Data actor


class WindowPredictor:
    """Ray Data callable class: a block of windows of one (task, chromosome) -> outputs.

    Holds every model (one per task) and their genome readers, loaded once per actor.
    Input batch: ``task``, ``chrom`` (one value each per block), ``x``, ``y`` (bins).
    Output: ``task``, ``chrom``, ``x``, ``y`` and ``out`` (B, P) float32: the task's output
    flattened and zero-padded to the common width ``P`` (hic W*W | loops 1 | cage W).
    """

    def __init__(self, sources: dict[str, str], genome: GenomeFiles, width: int,
                 device: str = "auto") -> None:
        from mixhic.serve.engine import load_task_model
        from mixhic.serve.regions import GenomeWindows

        self.models = {t: load_task_model(src, device) for t, src in sources.items()}
        self.windows = {t: GenomeWindows(genome, m.card) for t, m in self.models.items()}
        self.width = width
        self._tracks: dict[tuple[str, str], np.ndarray] = {}  # (task, chrom) -> (C, E)

    def _track(self, task: str, chrom: str) -> np.ndarray:
        key = (task, chrom)
        if key not in self._tracks:
            if len(self._tracks) > 2:
                self._tracks.clear()
            gw = self.windows[task]
            n = gw.chromsizes[chrom] // gw.res
            self._tracks[key] = gw.epi_transform(gw.track_bins(chrom, 0, n))
        return self._tracks[key]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from mixhic.pipelines.windows import slice_epi, slice_hic

        groups = {(str(t), str(c)) for t, c in zip(batch["task"], batch["chrom"])}
        if len(groups) != 1:
            raise ValueError(f"a block spans several (task, chrom) groups: {sorted(groups)}")
        task, chrom = groups.pop()
        model, gw = self.models[task], self.windows[task]
        x = np.asarray(batch["x"], np.int64)
        y = np.asarray(batch["y"], np.int64)
        w = gw.W
        epi = slice_epi(self._track(task, chrom), x, y, gw.L, gw.L // w)  # (B, C, 2L)
        hic = None
        if model.card.needs_hic:
            r0, c0 = int(x.min()), int(y.min())
            band = gw.hic_band(chrom, (r0, int(x.max()) + w), (c0, int(y.max()) + w))
            hic = gw.hic_transform(slice_hic(band, x - r0, y - c0, w))  # (B, W, W)
        pred = model.predict(epi, hic).reshape(len(x), -1)
        out = np.zeros((len(x), self.width), np.float32)
        out[:, : pred.shape[1]] = pred
        return {"task": batch["task"], "chrom": batch["chrom"], "x": x, "y": y, "out": out}


# --------------------------------------------------------------------------- driver


def _cards(sources) -> dict[str, ModelCard]:
    """Cards of the models (MLflow models are downloaded once here to read their meta)."""
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


def _fingerprint(cfg: PredictConfig, card: ModelCard) -> str:
    """What a part's values depend on: the task's settings, the model card (source, registry
    version, run id, geometry, normalisation) and, for a local model dir, its weights file's
    size and mtime (a registry version is immutable; a directory may be overwritten)."""
    from mixhic.platform.checkpoints import MODEL_FILE

    relevant = ("genome", "loops") if card.task == "loops" else ("genome", "step_bins")
    settings = {k: v for k, v in to_dict(cfg).items() if k in relevant}
    stamp = ""
    weights = Path(card.source.removeprefix("file://")) / MODEL_FILE
    if "://" not in card.source.removeprefix("file://") and weights.is_file():
        st = weights.stat()
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
    blob = json.dumps([settings, card.to_json(), card.data, stamp], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _output_width(card: ModelCard) -> int:
    return {"hic": card.window_bins**2, "loops": 1, "cage": card.window_bins}[card.task]


def _run(cfg: PredictConfig, cards: dict[str, ModelCard], todo: dict[str, dict[str, int]],
         parts: Path, fps: dict[str, str]) -> None:
    """Predict the windows of ``todo`` (task -> chrom -> n_bins) in ONE Ray Data job (one
    actor pool holding every model); save each (chrom, task) part as soon as it is whole."""
    import pyarrow as pa
    import ray

    from mixhic.platform.runtime import ensure_ray

    blocks, plans, acc = [], {}, {}
    for task, chroms in todo.items():
        card = cards[task]
        for chrom, n_bins in chroms.items():
            x, y = plan_windows(task, n_bins, card.window_bins, card.resolution,
                                cfg.step_bins, cfg.loops)
            plans[task, chrom] = len(x)
            acc[task, chrom] = _Collector(card, cfg, n_bins)
            for lo in range(0, len(x), cfg.batch_size):  # one block = one model batch
                n = len(x[lo:lo + cfg.batch_size])
                blocks.append(pa.table({"task": [task] * n, "chrom": [chrom] * n,
                                        "x": x[lo:lo + n], "y": y[lo:lo + n]}))
    for key in [k for k, n in plans.items() if n == 0]:
        acc[key].save(parts / f"{key[1]}.{key[0]}.npz", fps[key[0]])
    total = sum(plans.values())
    log.info("predicting %d windows: %s", total,
             ", ".join(f"{t} {c}: {n}" for (t, c), n in plans.items()))
    if total == 0:
        return
    ensure_ray()
    sources = {t: cards[t].source for t in todo}
    ds = ray.data.from_arrow(blocks).map_batches(
        WindowPredictor,
        fn_constructor_kwargs={"sources": sources, "genome": cfg.genome, "device": cfg.device,
                               "width": max(_output_width(cards[t]) for t in todo)},
        batch_size=None,  # a block is one (task, chrom) batch of cfg.batch_size windows
        compute=ray.data.ActorPoolStrategy(size=cfg.concurrency),
        num_cpus=cfg.num_cpus,
        num_gpus=cfg.num_gpus,
        batch_format="numpy",
    )
    seen = dict.fromkeys(plans, 0)
    bar = _progress(total, "predict", cfg.progress)
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for key in sorted({(str(t), str(c)) for t, c in zip(batch["task"], batch["chrom"])}):
            rows = (batch["task"] == key[0]) & (batch["chrom"] == key[1])
            card = cards[key[0]]
            out = batch["out"][rows, : _output_width(card)]
            if key[0] == "hic":
                out = out.reshape(-1, card.window_bins, card.window_bins)
            elif key[0] == "loops":
                out = out[:, 0]
            acc[key].add(batch["x"][rows], batch["y"][rows], out)
            seen[key] += int(rows.sum())
            bar.update(int(rows.sum()))
            if seen[key] == plans[key]:
                acc[key].save(parts / f"{key[1]}.{key[0]}.npz", fps[key[0]])
                log.info("%s %s: %d windows done", key[0], key[1], plans[key])
    bar.close()
    missing = [k for k in plans if seen[k] != plans[k]]
    if missing:
        raise RuntimeError(f"windows missing for {missing}")


class _Collector:
    """Accumulates one chromosome's outputs of one task, in the written file's scale."""

    def __init__(self, card: ModelCard, cfg: PredictConfig, n_bins: int) -> None:
        from mixhic.serve.regions import Normalisation

        self.card, self.cfg = card, cfg
        self.norm = Normalisation.from_data(card.data)
        if card.task == "hic":
            self.acc = writers.BandAccumulator(n_bins, card.window_bins)
        elif card.task == "cage":
            self.acc = writers.BinAccumulator(n_bins)
        else:
            self.loops: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, x, y, out) -> None:
        task = self.card.task
        if task == "hic":
            self.acc.add(x, writers.hic_inverse(out, self.norm.hic_transform, self.norm.hic_cap))
        elif task == "cage":
            self.acc.add(x, writers.cage_inverse(out))
        else:
            half = self.card.window_bins // 2
            keep = out >= self.cfg.loops.min_probability
            self.loops.append((x[keep] + half, y[keep] + half, out[keep].astype(np.float64)))

    def save(self, path: Path, fingerprint: str) -> None:
        task = self.card.task
        if task == "hic":
            b1, b2, v = self.acc.pixels()
            arrays = {"bin1": b1, "bin2": b2, "value": v}
        elif task == "cage":
            b, v = self.acc.bins()
            arrays = {"bin": b, "value": v}
        else:
            parts = self.loops or [(np.zeros(0, np.int64),) * 2 + (np.zeros(0),)]
            arrays = {k: np.concatenate([p[n] for p in parts])
                      for n, k in enumerate(("i", "j", "probability"))}
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, fingerprint=np.array(fingerprint), **arrays)
        os.replace(tmp, path)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="win", disable=not enabled)


def _load_part(path: Path, fingerprint: str) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        if str(z["fingerprint"]) != fingerprint:
            return None
        return {k: z[k] for k in z.files if k != "fingerprint"}


def predict_genome(cfg: PredictConfig) -> PredictOutputs:
    """Predict over ``cfg.chroms`` with ``cfg.models``; write .cool/bedpe/bigWig in out_dir."""
    from mixhic.pipelines.names import resolve_name
    from mixhic.serve.regions import GenomeWindows

    if not cfg.models:
        raise MixHicError("models: no model given (--model URI or --checkpoint DIR)")
    if not cfg.out_dir:
        raise MixHicError("out_dir: required (--out DIR)")
    cards = _cards(cfg.models)
    out = Path(cfg.out_dir)
    parts = out / "parts"
    parts.mkdir(parents=True, exist_ok=True)

    # chromosome names and sizes from the files (canonical = the Hi-C file's spelling)
    sizes: dict[str, int] | None = None
    for card in cards.values():
        gw = GenomeWindows(cfg.genome, card)
        sizes = sizes or dict(gw.chromsizes)
        gw.close()
    chroms = ([resolve_name(c, list(sizes), "chroms") for c in cfg.chroms] if cfg.chroms
              else list(sizes))
    chromsizes = {c: sizes[c] for c in chroms}
    fps = {t: _fingerprint(cfg, c) for t, c in cards.items()}
    done_fp = hashlib.sha256(json.dumps(sorted(fps.items())).encode()).hexdigest()[:16]

    skipped = []
    for chrom in chroms:
        marker = parts / f"{chrom}.done"
        if cfg.resume and marker.is_file() and json.loads(marker.read_text()).get(
                "fingerprint") == done_fp:
            skipped.append(chrom)
    if skipped:
        log.info("resuming: %s already done", ", ".join(skipped))

    todo: dict[str, dict[str, int]] = {}
    for task, card in cards.items():
        todo[task] = {c: chromsizes[c] // card.resolution for c in chroms
                      if c not in skipped and not (cfg.resume and _load_part(
                          parts / f"{c}.{task}.npz", fps[task]) is not None)}
    todo = {t: per for t, per in todo.items() if per}
    if todo:
        _run(cfg, cards, todo, parts, fps)
    for chrom in chroms:
        if chrom not in skipped:
            tmp = parts / f".{chrom}.done.tmp"
            tmp.write_text(json.dumps({"fingerprint": done_fp, "tasks": sorted(cards)}))
            os.replace(tmp, parts / f"{chrom}.done")

    # ---- assembly: every chromosome's parts -> final files (atomic renames)
    loaded = {t: {c: _load_part(parts / f"{c}.{t}.npz", fps[t]) for c in chroms} for t in cards}
    for t, per in loaded.items():
        bad = [c for c, v in per.items() if v is None]
        if bad:
            raise RuntimeError(f"{t}: parts missing for {bad} in {parts}")
    paths: dict[str, Path | None] = dict.fromkeys(OUTPUT_NAMES)
    meta = {"generated-by": "mixhic predict",
            "models": {t: c.to_json() for t, c in cards.items()}}
    if "hic" in cards:
        res = cards["hic"].resolution
        px = {c: (v["bin1"], v["bin2"], v["value"]) for c, v in loaded["hic"].items()}
        paths["hic"] = writers.write_cool(out / OUTPUT_NAMES["hic"], chromsizes, res, px,
                                          metadata=meta)
    if "loops" in cards:
        rows = {c: (v["i"], v["j"], v["probability"]) for c, v in loaded["loops"].items()}
        paths["loops"] = writers.write_bedpe(out / OUTPUT_NAMES["loops"], rows,
                                             cards["loops"].resolution, chroms)
    if "cage" in cards:
        vals = {c: (v["bin"], v["value"]) for c, v in loaded["cage"].items()}
        paths["cage"] = writers.write_bigwig(out / OUTPUT_NAMES["cage"], chromsizes,
                                             cards["cage"].resolution, vals)
    (out / "predict.json").write_text(json.dumps(
        {**meta, "config": to_dict(cfg), "chroms": chroms}, indent=2, default=str) + "\n")
    log.info("wrote %s", ", ".join(str(p) for p in paths.values() if p))
    return PredictOutputs(paths["hic"], paths["loops"], paths["cage"], tuple(chroms),
                          tuple(skipped))


def config_from_args(argv: list[str]) -> PredictConfig:
    """The :class:`PredictConfig` that ``mixhic predict ARGS`` runs with."""
    p = argparse.ArgumentParser(
        prog="mixhic predict",
        description="Genome-wide prediction with Ray Data: .cool (hic), bedpe (loops), "
                    "bigWig (cage) for the chosen chromosomes. Resumable per chromosome.",
    )
    p.add_argument("config", nargs="?", default=DEFAULT_CONFIG,
                   help=f"predict config: shipped name or YAML path (default {DEFAULT_CONFIG})")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--model", action="append", default=[], metavar="URI",
                   help="MLflow model URI (repeatable; one per task)")
    p.add_argument("--checkpoint", action="append", default=[], metavar="DIR",
                   help="model directory (repeatable; one per task)")
    p.add_argument("--out", default=None, help="output directory (config out_dir)")
    p.add_argument("--chroms", nargs="+", default=None, help="chromosomes (default: all)")
    p.add_argument("--mcool", default=None, help="Hi-C file (config genome.mcool)")
    p.add_argument("--track", action="append", default=[], metavar="NAME=BIGWIG",
                   help="a track as trained, e.g. atac=atac.bw (repeatable)")
    ns = p.parse_intermixed_args(argv)  # options may sit between config and overrides

    from mixhic.platform.config import load_config, parse_overrides

    items = list(ns.overrides)
    if "=" in ns.config:  # no config named: the first word is an override
        items.insert(0, ns.config)
        ns.config = DEFAULT_CONFIG
    overrides = parse_overrides(items)
    if ns.model or ns.checkpoint:
        overrides["models"] = ns.model + ns.checkpoint
    if ns.out:
        overrides["out_dir"] = ns.out
    if ns.chroms:
        overrides["chroms"] = ns.chroms
    if ns.mcool:
        overrides["genome.mcool"] = ns.mcool
    for item in ns.track:
        name, sep, path = item.partition("=")
        if not sep:
            raise MixHicError(f"--track {item!r}: expected NAME=BIGWIG")
        overrides[f"genome.tracks.{name}"] = path
    return load_config(ns.config, PredictConfig, overrides)


def cli_main(argv: list[str]) -> int:
    predict_genome(config_from_args(argv))
    return 0
