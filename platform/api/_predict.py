"""``mixhic.load_model`` and ``mixhic.predict_region`` (and ``mixhic predict``).

Both run in this process, without Ray: a model is a
:class:`~mixhic.serve.engine.TaskModel` (the object the Serve deployment and the
``mixhic predict`` actors hold), a region is read and predicted by
:func:`mixhic.serve.viewer.collect_region` over
:class:`~mixhic.serve.regions.GenomeWindows` (what the Serve ``/view`` route runs; inputs
normalised exactly as ``mixhic prepare`` normalised the training data), and arrays are
checked by the Serve ``/v1`` routes' checks (:mod:`mixhic.serve.api`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mixhic.core.errors import MixHicError

__all__ = ["load_model", "predict_region", "report_from_prediction", "config_from_args",
           "cli_main", "MAX_REGION_BINS"]

log = logging.getLogger(__name__)

#: Largest region :func:`predict_region` reads, in Hi-C bins (10 Mb at 5 kb; the maps are
#: (n, n) float64: 2,000 bins = 32 MB each).
MAX_REGION_BINS = 2000

# GenomeWindows names its inputs by the serve config's keys; here they are arguments.
_FIELDS = {"genome.mcool": "hic", "genome.tracks": "tracks", "genome.loops": "known_loops"}


def load_model(path_or_uri: str | os.PathLike, *, device: str = "cpu"):
    """A fine-tuned model, ready to predict.

    Args:
        path_or_uri: a model directory (``model.safetensors`` + ``mixhic.json``, written
            by ``mixhic finetune``) or an MLflow model URI (``models:/NAME@ALIAS``,
            ``models:/NAME/VERSION``, ``runs:/RUN/PATH``; downloaded first).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when visible).

    Returns:
        A :class:`~mixhic.serve.engine.TaskModel`: ``.card`` (task, mode, window geometry
        W, L, C, resolution, track names) and ``.predict(epi (B, C, 2L), hic (B, W, W) |
        None, offset (B,) | None)`` -> hic (B, W, W) | loops (B,) probabilities | cage
        (B, W). Weights are read from safetensors; nothing is unpickled.

    Raises:
        MixHicError naming the directory or the ``mixhic.json`` key (not fine-tuned,
        unknown task, missing geometry).
    """
    # lazy: serve.engine pulls pyarrow (+50 ms) into `from mixhic import load_model`
    from mixhic.serve.engine import load_task_model

    return load_task_model(os.fspath(path_or_uri), device)


def _models(model) -> dict:
    """``{task: TaskModel}`` of one model, a sequence of them or a mapping (one per task)."""
    # lazy: serve.engine pulls pyarrow (+50 ms) into `from mixhic import load_model`
    from mixhic.serve.engine import TaskModel

    items = list(model.values()) if isinstance(model, Mapping) else (
        [model] if isinstance(model, TaskModel) else list(model)
        if isinstance(model, Sequence) else [model])
    out: dict = {}
    for m in items:
        if not isinstance(m, TaskModel):
            raise MixHicError(f"model: expected what mixhic.load_model returns (or a list of "
                              f"them, one per task), got {type(m).__name__}")
        if m.card.task in out:
            first = out[m.card.task].card.source
            raise MixHicError(f"model: two {m.card.task} models given ({first}, "
                              f"{m.card.source}); one per task")
        out[m.card.task] = m
    if not out:
        raise MixHicError("model: no model given")
    return out


def _renamed(exc: MixHicError) -> MixHicError:
    """The error with the serve config's key (``genome.mcool``) replaced by the argument
    name (``hic``); other errors unchanged."""
    text = str(exc)
    for key, arg in _FIELDS.items():
        if text.startswith(key):
            return MixHicError(arg + text[len(key):])
    return exc


def _genome(models: dict, hic, tracks, known_loops):
    """The :class:`~mixhic.serve.config.GenomeFiles` of the arguments."""
    # lazy: serve.config pulls yaml (+40 ms) into `from mixhic import predict_region`
    from mixhic.serve.config import GenomeFiles

    if tracks is None:
        tracks = {}
    if isinstance(tracks, (str, os.PathLike)):
        tracks = [tracks]
    if isinstance(tracks, Mapping):
        named = {str(k): os.fspath(v) for k, v in tracks.items()}
    else:
        paths = [os.fspath(p) for p in tracks]
        card = next(iter(models.values())).card
        names = list(card.tracks) or [f"track{k + 1}" for k in range(len(paths))]
        if len(paths) != len(names):
            raise MixHicError(f"tracks: the model takes {len(names)} tracks ({', '.join(names)}"
                              f"), {len(paths)} given")
        named = dict(zip(names, paths, strict=True))
    if not named:
        raise MixHicError("tracks: the bigWig files of the model's tracks are required for a "
                          "region, e.g. tracks={'atac': 'atac.bw', 'dnase': 'dnase.bw'}")
    try:
        return GenomeFiles(mcool=None if hic is None else os.fspath(hic), tracks=named,
                           loops=None if known_loops is None else os.fspath(known_loops))
    except ValueError as exc:
        raise MixHicError(f"tracks.{str(exc).removeprefix('tracks.')}") from None


def _scan(scan):
    """A :class:`~mixhic.serve.config.LoopScan` (None: ``mixhic predict``'s defaults)."""
    # lazy: core.config pulls yaml (+40 ms) into `from mixhic import predict_region`
    from mixhic.core.config import build
    from mixhic.serve.config import LoopScan

    if scan is None or isinstance(scan, LoopScan):
        return scan
    return build(LoopScan, scan, "scan")


def _region_view(models: dict, region: str, genome, *, scan, batch_size: int, max_bins: int,
                 max_loop_windows: int):
    """The :class:`~mixhic.serve.viewer.RegionView` of ``region`` (files opened here)."""
    # lazy: serve.api pulls fastapi, pydantic (+0.4 s) into `from mixhic import predict_region`
    from mixhic.serve.api import RequestError
    from mixhic.serve.regions import GenomeWindows
    from mixhic.serve.viewer import collect_region

    windows = {}
    try:
        for task, m in models.items():
            windows[task] = GenomeWindows(genome, m.card)
        return collect_region(
            str(region), {t: m.card for t, m in models.items()}, windows,
            lambda task, epi, hic, offset: models[task].predict(epi, hic, offset),
            known_loops=genome.loops, scan=scan, max_bins=max_bins,
            max_loop_windows=max_loop_windows, batch_size=batch_size)
    except RequestError as exc:
        raise MixHicError(str(exc)) from None
    except MixHicError as exc:
        raise _renamed(exc) from None
    finally:
        for gw in windows.values():
            gw.close()


def _loop_table(loops) -> np.ndarray:
    """(K, 4) int64 bp: start1, end1, start2, end2 of each loop."""
    return np.array([[lp.start1, lp.end1, lp.start2, lp.end2] for lp in loops],
                    dtype=np.int64).reshape(-1, 4)


def _region_arrays(view, models: dict) -> dict[str, Any]:
    reg = view.region
    out: dict[str, Any] = {
        "region": str(reg),
        "bin_starts": np.arange(reg.lo, reg.hi, dtype=np.int64) * reg.resolution,
        "tracks": np.stack(list(view.tracks.values())),
    }
    if view.observed is not None:
        out["observed"] = view.observed
    if view.predicted is not None:
        out["hic"] = view.predicted
    if view.cage is not None:
        out["cage"] = view.cage
    if "loops" in models:
        out["loops"] = _loop_table(view.predicted_loops)
        out["loop_probability"] = np.array([lp.probability for lp in view.predicted_loops],
                                           dtype=np.float64)
    if view.data_files.get("known loops"):
        out["known_loops"] = _loop_table(view.known_loops)
    for note in view.notes:
        log.info("%s: %s", reg, note)
    return out


def _batch(values, name: str, ndim: int):
    """``(array (B, ...), single)``: a single window gets a batch axis of 1."""
    if values is None:
        return None, False
    arr = values if isinstance(values, np.ndarray) else np.asarray(values)
    if arr.ndim == ndim:
        return arr[None], True
    if arr.ndim == ndim + 1:
        return arr, False
    raise MixHicError(f"{name}: expected {ndim} axes (one window) or {ndim + 1} (a batch), "
                      f"got shape {list(arr.shape)}")


def _predict_arrays(models: dict, epi, hic, offset) -> dict[str, np.ndarray]:
    """One model on windows given as arrays, checked as the ``/v1`` routes check them."""
    # lazy: serve.api pulls fastapi, pydantic (+0.4 s) into `from mixhic import predict_region`
    from mixhic.serve.api import RequestError, check_output, request_offset, window_arrays
    from mixhic.serve.schemas import WindowRequest

    if len(models) != 1:
        raise MixHicError(f"model: arrays go to one model, got {', '.join(models)} models")
    ((task, model),) = models.items()
    if isinstance(hic, (str, os.PathLike)):
        raise MixHicError("hic: a file path needs a region (chrom:start-end); with epi "
                          "arrays give the (W, W) Hi-C window as an array")
    epi_b, single = _batch(epi, "epi", 2)
    hic_b, hic_single = _batch(hic, "hic", 2)
    if hic_b is not None and (hic_single != single or len(hic_b) != len(epi_b)):
        raise MixHicError(f"hic: {len(hic_b)} windows for {len(epi_b)} epi windows")
    offsets = [None] * len(epi_b)  # (B,): None is a diagonal window
    if offset is not None:
        if np.shape(offset) not in ((), (len(epi_b),)):
            raise MixHicError(f"offset: one number or one per window ({len(epi_b)}), got "
                              f"shape {list(np.shape(offset))}")
        offsets = np.broadcast_to(np.asarray(offset), (len(epi_b),))
    try:
        checked = []
        for k in range(len(epi_b)):
            req = WindowRequest.model_construct(
                epi=epi_b[k], hic=None if hic_b is None else hic_b[k], offset=offsets[k])
            e, h = window_arrays(req, model.card)
            checked.append((e, h, request_offset(req)))
        epi_c = np.stack([e for e, _, _ in checked])  # (B, C, 2L)
        hic_c = np.stack([h for _, h, _ in checked]) if model.card.needs_hic else None
        out = check_output(task, model.predict(epi_c, hic_c,
                                               np.array([o for _, _, o in checked])))
    except RequestError as exc:
        raise MixHicError(str(exc)) from None
    key = "loop_probability" if task == "loops" else task
    return {key: out[0] if single else out}


def predict_region(model, region: str | None = None, *, hic=None, tracks=None,
                   epi=None, offset=None, known_loops=None, scan=None, batch_size: int = 32,
                   max_bins: int = MAX_REGION_BINS, max_loop_windows: int | None = None,
                   report: str | os.PathLike | None = None) -> dict[str, Any]:
    """Predict a genomic region from genome files, or windows given as arrays.

    Region (``region`` given): the Hi-C file and bigWig tracks are read over the region
    and normalised as ``mixhic prepare`` normalised the model's training data (its
    ``mixhic.json``); ``hic`` diagonal windows tile it (step W/2) and are averaged where
    they overlap, as the Serve ``/view`` page and ``mixhic predict --report`` do.

    Args:
        model: what :func:`load_model` returns, or several (a list, or ``{task: model}``;
            one per task: hic, loops, cage).
        region: ``"chr1:1,000,000-1,500,000"`` (bp, commas allowed; start rounded down and
            end up to whole bins, widened to one window if shorter) or a chromosome name.
        hic: region: the ``.cool`` / ``.mcool`` (``x.mcool::resolutions/5000``; from an
            ``.mcool`` the model's resolution is picked); needed by bimodal models and
            for ``observed``. Arrays: the Hi-C window(s) (W, W) or (B, W, W).
        tracks: region: the bigWig of each track the model was trained on, ``{name:
            path}`` or paths in the model's track order (``model.card.tracks``).
        epi: arrays (no region): tracks (C, 2L) or (B, C, 2L), x-anchor bins then
            y-anchor bins, transformed as in training.
        offset: arrays: bins from each window's x-anchor to its y-anchor (default 0, a
            diagonal window); one number or (B,).
        known_loops: region: a bedpe of known loops, returned as ``known_loops``.
        scan: region, loops model: candidate pairs and calling
            (:class:`~mixhic.serve.config.LoopScan` or a mapping of its keys, e.g.
            ``{"min_probability": 0.3}``; default ``mixhic predict``'s).
        batch_size: windows per forward.
        max_bins: largest region in Hi-C bins (:class:`MixHicError` above).
        max_loop_windows: most anchor pairs the loops model scores (the candidate grid is
            coarsened to fit; default 512, the viewer's).
        report: a folder: also write the region's viewer page (``<region>.html`` + PNG)
            there, and log both to the active MLflow run, if any.

    Returns:
        Region: ``region`` (str, the bins predicted, ``chr1:1000000-1500000``),
        ``bin_starts`` (n,) int64 bp, ``tracks`` (C, n * L / W) model input tracks
        (log2(1 + x), in the model's track order), and per model and file given:
        ``observed`` (n, n) Hi-C in the model's training scale (e.g. log1p(balanced) /
        log1p(255); NaN: masked bin), ``hic`` (n, n) predicted, same scale (NaN farther
        than W bins from the diagonal), ``cage`` (n,) predicted log2(1 + CAGE),
        ``loops`` (K, 4) int64 bp (start1, end1, start2, end2) called loops with
        ``loop_probability`` (K,), ``known_loops`` (M, 4), ``report`` ({"html", "png"}).
        Arrays: the model's output under its task: ``hic`` (W, W), ``loop_probability``
        () or ``cage`` (W,) (with a batch axis first for batched inputs).

    Raises:
        MixHicError naming the argument or file: unknown chromosome, region off the
        chromosome or over ``max_bins``, a track file missing for a model track, arrays
        of the wrong shape, non-finite or outside the model's range.
    """
    # lazy: serve.viewer pulls yaml (+95 ms) into `from mixhic import predict_region`
    from mixhic.serve.viewer import MAX_LOOP_WINDOWS
    from mixhic.serve.viewer_page import log_region_report

    models = _models(model)
    if region is None:
        if epi is None:
            raise MixHicError("region: give a region (chrom:start-end) with the hic/tracks "
                              "files, or epi arrays")
        return _predict_arrays(models, epi, hic, offset)
    if epi is not None or offset is not None:
        raise MixHicError(f"{'epi' if epi is not None else 'offset'}: arrays or a region, "
                          f"not both")
    if hic is not None and not isinstance(hic, (str, os.PathLike)):
        raise MixHicError("hic: with a region, give the .cool/.mcool path (arrays go with epi)")
    genome = _genome(models, hic, tracks, known_loops)
    view = _region_view(models, region, genome, scan=_scan(scan), batch_size=batch_size,
                        max_bins=max_bins,
                        max_loop_windows=(MAX_LOOP_WINDOWS if max_loop_windows is None
                                          else max_loop_windows))
    out = _region_arrays(view, models)
    if report is not None:
        out["report"] = log_region_report(view, report)
    return out


# --------------------------------------------------------------------------- mixhic predict


def report_from_prediction(cfg, out_dir: str | Path | None = None) -> list[dict[str, str]]:
    """``mixhic predict --report``: the viewer page (HTML + PNG) of the run's regions
    (:func:`mixhic.serve.viewer.report_regions`: its regions, else its first 2 Mb, at most
    :data:`~mixhic.serve.viewer.MAX_REPORTS`) for the models and genome files of ``cfg`` (a
    :class:`~mixhic.serve.config.PredictConfig`), by :func:`predict_region`, written under
    ``out_dir`` (default ``<cfg.out_dir>/report``) and logged to the active MLflow run,
    if any. Returns the files written, one ``{"html", "png"}`` per region."""
    # lazy: serve.regions pulls fastapi, pydantic (+0.4 s) into `from mixhic import predict_region`
    from mixhic.serve.regions import GenomeWindows
    from mixhic.serve.viewer import report_regions

    if not cfg.models:
        raise MixHicError("models: no model given (--model URI or --checkpoint DIR)")
    models = _models([load_model(src, device=cfg.device) for src in cfg.models])
    main = models["hic"] if "hic" in models else next(iter(models.values()))
    gw = GenomeWindows(cfg.genome, main.card)
    try:
        regions = report_regions(cfg, gw.chromsizes, main.card.resolution)
    finally:
        gw.close()
    out_dir = Path(out_dir) if out_dir else Path(cfg.out_dir) / "report"
    return [predict_region(models, region, hic=cfg.genome.mcool, tracks=cfg.genome.tracks,
                           known_loops=cfg.genome.loops, scan=cfg.loops,
                           batch_size=cfg.batch_size, report=out_dir)["report"]
            for region in regions]


def __getattr__(name: str):
    """``CLI``: the parser of ``mixhic predict`` (in :mod:`mixhic.serve.predict`), imported
    on first use so that importing this module loads neither torch nor Ray."""
    if name == "CLI":
        # lazy: serve.predict pulls pyarrow, yaml (+0.13 s) into `from mixhic import predict_region`
        from mixhic.serve.predict import CLI

        return CLI
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def config_from_args(argv: list[str]):
    """The :class:`~mixhic.serve.config.PredictConfig` ``mixhic predict ARGS`` runs with."""
    # lazy: serve.predict pulls pyarrow, yaml (+0.13 s) into `from mixhic import predict_region`
    from mixhic.serve.predict import config_from_args as parse

    return parse(argv)


def cli_main(argv: list[str]) -> int:
    """``mixhic predict [CONFIG] [key=value ...] [flags]``: genome-wide prediction on Ray
    Data (:func:`mixhic.serve.predict.predict_genome`), then with ``--report`` the region
    pages by :func:`report_from_prediction`."""
    # lazy: serve.predict pulls pyarrow, yaml (+0.13 s) into `from mixhic import predict_region`
    from mixhic.serve.config import PredictConfig
    from mixhic.serve.predict import CLI, predict_genome

    args = CLI.parse(argv)
    cfg = args.load(PredictConfig)
    predict_genome(cfg)
    if args.ns.report:
        report_from_prediction(cfg)
    return 0
