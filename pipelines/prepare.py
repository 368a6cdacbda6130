"""Genome files -> windowed Parquet with Ray Data (``mixhic prepare`` / ``mixhic.prepare``).

    >>> cfg = load_config("prepare-demo", PrepareConfig, ["root=/tmp/genome", "out=/tmp/data"])
    >>> manifest = prepare(cfg)
    >>> manifest.rows["loops"]          # {"train": ..., "val": ..., "test": ...}

Paths. Relative input paths and ``out`` are resolved against ``root`` (default: the
current directory), so a config can name ``genome.mcool`` and be pointed at any
``mixhic simulate`` output with ``root=/path``. ``out`` may also be a pyarrow filesystem
URI (``file:///...``, ``s3://...``); inputs must be local files (HDF5/bigWig).

Layout of ``out``::

    <out>/pretrain/part-<chunk>.parquet ...   one directory per dataset
    <out>/hic/ ... <out>/loops/ ... <out>/cage/ ...
    <out>/manifest.json                       written last: the output is complete
    <out>/.staging/                           only while running or after an interruption

Splits are regions (``splits.val/test``: chromosomes, ``chrom:start-end`` or BED files;
see :class:`~mixhic.pipelines.prepare_config.Splits`); a window's split follows from its
extent, windows crossing a split boundary are dropped and counted (``manifest.splits``).
Datasets marked ``optional`` whose input files are absent are skipped with a log note
(``manifest.skipped``).

The driver validates every input (names, resolution, weights, coordinates, split
regions, windows per split) before any task starts (:mod:`mixhic.pipelines.prepare_plan`),
then runs one Ray Data task per chromosome chunk (:mod:`mixhic.pipelines.extract`).
Interrupted runs resume: chunks whose completion marker exists in ``.staging`` are
skipped, the others are redone with the same file names; datasets are moved into place
only when every chunk is done, then the manifest is written. A rerun with identical
inputs and parameters is a no-op (``run.force=true`` redoes it).

This module runs the job (staging, Ray Data, commit, manifest); the config is in
:mod:`mixhic.pipelines.prepare_config`, the planning in :mod:`mixhic.pipelines.prepare_plan`.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from dataclasses import dataclass

import numpy as np
from mixhic.core.config import to_dict
from mixhic.core.errors import MixHicError
from mixhic.core.runtime import ensure_ray
from mixhic.pipelines.extract import ChunkWorker
from mixhic.pipelines.manifest import (
    Manifest,
    code_version,
    file_checksum,
    fingerprint,
    read_manifest,
    write_manifest,
)
from mixhic.pipelines.prepare_config import PrepareConfig
from mixhic.pipelines.prepare_plan import build_tasks, out_uri
from mixhic.pipelines.schema import DATASETS, WindowShape, dataset_schema
from mixhic.pipelines.windows import SPLIT_NAMES

__all__ = [
    "PrepareConfig",
    "Job",
    "plan_job",
    "build_tasks",
    "prepare",
]

log = logging.getLogger(__name__)


def _fs(uri: str):
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(uri)


def _exists(fs, path: str) -> bool:
    import pyarrow.fs as pafs

    return fs.get_file_info(path).type != pafs.FileType.NotFound


def _read_json(fs, path: str):
    with fs.open_input_stream(path) as fh:
        return json.loads(fh.read().decode())


def _write_json(fs, path: str, obj) -> None:
    with fs.open_output_stream(path + ".tmp") as fh:
        fh.write(json.dumps(obj, sort_keys=True).encode())
    fs.move(path + ".tmp", path)


def _run_tasks(settings: dict, tasks: list[dict], workers: int | None) -> None:
    """The Ray Data job: one map task per chunk; rows go to Parquet from the workers."""
    import ray

    if not tasks:
        return
    n_cpu = int(ray.cluster_resources().get("CPU", 1))
    workers = max(1, min(workers or n_cpu, len(tasks)))
    ds = ray.data.from_items(
        [{"task": json.dumps(t)} for t in tasks], override_num_blocks=len(tasks)
    )
    ds = ds.map_batches(
        ChunkWorker,
        fn_constructor_args=(json.dumps(settings),),
        batch_size=1,
        concurrency=workers,
        num_cpus=1,
        batch_format="numpy",
    )
    from tqdm.auto import tqdm

    done = 0
    with tqdm(total=len(tasks), desc="prepare: chunks", unit="chunk") as bar:
        for row in ds.iter_rows():
            done += 1
            bar.update(1)
            if done % max(1, len(tasks) // 10) == 0 or done == len(tasks):
                log.info("chunk %s done (%d/%d)", row["chunk_id"], done, len(tasks))


@dataclass
class Job:
    """A planned prepare run: everything the Ray tasks and the commit step need."""

    settings: dict
    tasks: list[dict]
    meta: dict
    out: str  # URI/absolute path of the output directory
    root: str  # the output directory in its filesystem
    staging: str  # staging directory in its filesystem
    inputs: dict  # input key -> checksum record
    params: dict
    code: dict
    fingerprint: str


def plan_job(cfg: PrepareConfig) -> Job:
    """Validate the inputs and plan the chunks (no Ray, no output written)."""
    settings, tasks, meta = build_tasks(cfg)
    out = out_uri(cfg)
    _, root = _fs(out)
    root = root.rstrip("/")
    staging = f"{root}/.staging"
    settings["staging"] = staging if "://" not in out else out.rstrip("/") + "/.staging"
    inputs = {key: file_checksum(path, cfg.run.checksum) for key, path in _input_files(meta).items()}
    params = to_dict(cfg)
    code = code_version()
    # what determines the rows: everything but how the run is scheduled
    output_params = {**params, "run": {k: v for k, v in params["run"].items()
                                       if k not in ("workers", "num_cpus", "force", "checksum")}}
    fp = fingerprint({"params": output_params, "hic": meta["hic"]},
                     {k: v["digest"] for k, v in inputs.items()}, code["package"])
    return Job(settings, tasks, meta, out, root, staging, inputs, params, code, fp)


def _check_out_writable(fs, root: str, out: str) -> None:
    """Create ``root`` and prove it writable (a probe file), or one clear error line."""
    import pyarrow
    import pyarrow.fs as pafs

    try:
        if fs.get_file_info(root).type == pafs.FileType.File:
            raise MixHicError(f"out {out}: exists and is not a directory")
        fs.create_dir(root, recursive=True)
        probe = f"{root}/.mixhic-write-test"
        with fs.open_output_stream(probe) as f:
            f.write(b"ok")
        fs.delete_file(probe)
    except (OSError, pyarrow.lib.ArrowException) as exc:
        why = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise MixHicError(f"out {out}: cannot write there ({why}); give a writable "
                          "directory or URI (out=...)") from None


def prepare(cfg: PrepareConfig) -> Manifest:
    """Window the configured genome files into Parquet datasets; return the manifest.

    Starts (or joins, with ``RAY_ADDRESS``) Ray. Idempotent: see the module docstring.
    """
    job = plan_job(cfg)
    settings, tasks, meta, out, root, staging = (
        job.settings, job.tasks, job.meta, job.out, job.root, job.staging
    )
    fs, _ = _fs(out)
    fp, inputs, params, code = job.fingerprint, job.inputs, job.params, job.code

    existing = read_manifest(out)
    if existing is not None and existing.fingerprint == fp and not cfg.run.force:
        log.info("%s is up to date (fingerprint %s); run.force=true redoes it", out, fp)
        return existing

    # ---- staging: resume only a run of the same fingerprint
    _check_out_writable(fs, root, out)
    plan_path = f"{staging}/_plan.json"
    if _exists(fs, staging):
        same = _exists(fs, plan_path) and _read_json(fs, plan_path).get("fingerprint") == fp
        if not same or cfg.run.force:
            log.info("discarding stale staging directory %s", staging)
            fs.delete_dir(staging)
    fs.create_dir(f"{staging}/_chunks", recursive=True)
    _write_json(fs, plan_path, {"fingerprint": fp, "chunks": len(tasks)})

    todo = []
    for t in tasks:
        m = f"{staging}/_chunks/{t['chunk_id']}.json"
        if _exists(fs, m):
            marker = _read_json(fs, m)
            if all(_exists(fs, f"{staging}/{d}/{f}") for d, f in marker["files"].items()):
                continue
        todo.append(t)
    if len(todo) < len(tasks):
        log.info("resuming: %d of %d chunks already done", len(tasks) - len(todo), len(tasks))
    datasets = list(meta["datasets"])  # enabled, minus optional ones without inputs
    log.info("preparing %s: %d chunks, datasets %s -> %s",
             cfg.sample, len(todo), ", ".join(datasets), out)

    ensure_ray(num_cpus=cfg.run.num_cpus)
    _run_tasks(settings, todo, cfg.run.workers)

    # ---- collect markers, then commit datasets and write the manifest last
    markers = [_read_json(fs, f"{staging}/_chunks/{t['chunk_id']}.json") for t in tasks]
    shape = WindowShape(cfg.window_bins, len(cfg.inputs.tracks),
                        cfg.window_bins * (meta["hic"]["resolution"] // cfg.epi_bin))
    rows = {d: {s: 0 for s in SPLIT_NAMES} for d in datasets}
    dropped = {d: {} for d in datasets}
    kinds: dict[str, dict[str, int]] = {}  # loops: rows per neg_kind and split
    sampled: dict[str, int] = {}  # loops: negatives drawn per kind (before QC)
    covered = np.zeros(len(cfg.inputs.tracks))
    span = 0
    timed = [m["timing"] for m in markers if m.get("timing") and m["timing"].get("cpu_s") is not None]
    timing = {
        "chunks": len(markers),
        "worker_cpu_s": float(sum(t["cpu_s"] for t in timed)),
        "worker_wall_s": (max(t["end"] for t in timed) - min(t["start"] for t in timed)) if timed else 0.0,
    }
    for m in markers:
        for d, per_split in m.get("rows_split", {}).items():
            for split, n in per_split.items():
                rows[d][split] += n
        for kind, per_split in m.get("neg_kinds", {}).items():
            for split, n in per_split.items():
                kinds.setdefault(kind, {sp: 0 for sp in SPLIT_NAMES})[split] += n
        for kind, n in m.get("neg_sampled", {}).items():
            sampled[kind] = sampled.get(kind, 0) + n
        for d, reasons in m["dropped"].items():
            for r, n in reasons.items():
                dropped[d][r] = dropped[d].get(r, 0) + n
        covered += np.asarray(m["covered_bp"], dtype=float)
        span += m["span_bp"]
    if "loops_plan" in meta["dropped"]:
        dropped["loops"].update({f"plan_{k}": v for k, v in meta["dropped"]["loops_plan"].items()})

    import pyarrow.parquet as pq

    manifest_path = f"{root}/manifest.json"
    if _exists(fs, manifest_path):
        fs.delete_file(manifest_path)  # the output is incomplete until the new one is written
    for d in datasets:
        ddir = f"{staging}/{d}"
        fs.create_dir(ddir, recursive=True)
        if sum(rows[d].values()) == 0:
            pq.write_table(dataset_schema(d, shape).empty_table(), f"{ddir}/part-empty.parquet",
                           filesystem=fs)
        final = f"{root}/{d}"
        if _exists(fs, final):
            fs.delete_dir(final)
        fs.move(ddir, final)
    for d in DATASETS:  # a dataset disabled now must not linger from an older run
        if d not in datasets and _exists(fs, f"{root}/{d}"):
            fs.delete_dir(f"{root}/{d}")

    manifest = Manifest(
        sample=cfg.sample,
        fingerprint=fp,
        params=params,
        hic=meta["hic"],
        inputs=inputs,
        shapes={"window_bins": shape.window_bins, "n_tracks": shape.n_tracks,
                "epi_bins": shape.epi_bins, "hic": list(shape.hic_shape),
                "epi": list(shape.epi_shape), "tracks": [t.name for t in cfg.inputs.tracks],
                "resolution": meta["hic"]["resolution"], "epi_bin": cfg.epi_bin,
                "epi_transform": cfg.normalize.epi, "hic_transform": cfg.normalize.hic},
        rows=rows,
        dropped=dropped,
        coverage={t.name: (float(covered[k] / span) if span else 0.0)
                  for k, t in enumerate(cfg.inputs.tracks)},
        chromosomes=meta["chromosomes"],
        code=code,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        datasets=datasets,
        timing=timing,
        splits={**meta["splits"],
                "dropped_split_boundary": {d: dropped[d].get("split_boundary", 0)
                                           for d in datasets}},
        negatives=({"mix": settings["datasets"]["loops"]["negatives"],
                    "negative_ratio": cfg.datasets.loops.negative_ratio,
                    "sampled": sampled, "rows": kinds} if "loops" in datasets else {}),
        skipped=meta["skipped"],
    )
    for split in ("val", "test"):
        for d in datasets:
            if getattr(cfg.splits, split) and meta["splits"][split] and rows[d][split] == 0:
                log.warning("%s: the %s split is empty after QC (rows per split: %s)",
                            d, split, rows[d])
    write_manifest(out, manifest)
    fs.delete_dir(staging)
    log.info("wrote %s: %s", out, {d: sum(r.values()) for d, r in rows.items()})
    return manifest


def _input_files(meta: dict) -> dict[str, str]:
    files = {"hic": meta["inputs"]["hic"].split("::")[0]}
    for name, path in meta["inputs"]["tracks"].items():
        files[f"track:{name}"] = path
    for key in ("loops", "cage", "tss", "blacklist"):
        if key in meta["inputs"]:
            files[key] = meta["inputs"][key]
    return files
