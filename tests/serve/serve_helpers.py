"""Helpers of the serve tests: tiny random models saved as model dirs, a tiny genome."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import numpy as np


# W = 20 bins of 5 kb, L = 400 epi bins of 250 bp per anchor, 2 tracks.
GEOMETRY = {"window_bins": 20, "epi_bins": 400, "n_tracks": 2}
DATA = {**GEOMETRY, "resolution": 5000, "epi_bin": 250, "tracks": ["atac", "dnase"],
        "epi_transform": "log2p1"}
TASK_MODES = {"hic": "infer", "loops": "bimodal", "cage": "bimodal"}
W, L, C, RES, EPI_BIN = 20, 400, 2, 5000, 250
_CACHE: dict[str, object] = {}  # shared by the test modules of one session


def make_model_dir(path: Path, task: str, mode: str, seed: int = 0,
                   data: dict | None = None) -> Path:
    """A randomly initialised tiny fine-tuned model written as a model directory
    (``data``: its ``mixhic.json`` data block, default :data:`DATA`)."""
    import torch

    from mixhic.models import FinetuneModel, get_preset
    from mixhic.platform.checkpoints import save_model_dir

    torch.manual_seed(seed)
    cfg = get_preset("tiny", **GEOMETRY)
    model = FinetuneModel(cfg, task=task, mode=mode).eval()
    meta = {
        "kind": "finetune", "task": task, "mode": mode,
        "model_config": dataclasses.asdict(cfg), "preset": "tiny", "data": dict(DATA if data is None else data),
        "run_id": f"run-{task}", "epoch": 0, "metrics": {},
    }
    return Path(save_model_dir(path, model, meta))


def tiny_models(root: Path) -> dict[str, Path]:
    """One model dir per task under ``root``."""
    return {t: make_model_dir(root / f"tiny-{t}", t, m, seed=i)
            for i, (t, m) in enumerate(TASK_MODES.items())}


def tiny_genome(out: Path):
    """Two simulated chromosomes of ~1 Mb at 5 kb (a few seconds)."""
    from mixhic.pipelines.simulate import simulate_genome

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # balancing convergence warnings
        return simulate_genome(out, preset="tiny", seed=0,
                               n_chroms=2, chrom_length=1_000_000, resolutions=[5000],
                               max_distance=500_000)


def _root() -> Path:
    # tests/conftest.py points HOME at a temp dir removed at the end of the session
    root = Path(os.environ["HOME"]) / "serve-fixtures"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cached_models() -> dict[str, Path]:
    if "models" not in _CACHE:
        _CACHE["models"] = tiny_models(_root() / "models")
    return _CACHE["models"]


def cached_genome():
    if "genome" not in _CACHE:
        _CACHE["genome"] = tiny_genome(_root() / "genome")
    return _CACHE["genome"]


def independent_window(genome, chrom: str, x_start: int, y_start: int):
    """Model inputs read with cooler/pyBigWig directly + prepare's transforms (no serve code)."""
    import cooler
    import pyBigWig

    from mixhic.pipelines import hic_reader, normalize

    info = hic_reader.inspect_hic(str(genome.mcool), RES, "weight")
    clr = cooler.Cooler(info.uri)
    span = W * RES
    band = clr.matrix(balance=True).fetch((chrom, x_start, x_start + span),
                                          (chrom, y_start, y_start + span)) * info.multiplier
    hic = normalize.hic_transform(band[None])[0]
    tracks = []
    for path in (genome.atac, genome.dnase):
        bw = pyBigWig.open(str(path))
        parts = [np.nan_to_num(bw.values(chrom, s, s + span, numpy=True)).reshape(L, EPI_BIN)
                 .mean(axis=1) for s in (x_start, y_start)]
        bw.close()
        tracks.append(np.concatenate(parts))
    epi = normalize.epi_transform(np.stack(tracks))
    return epi.astype(np.float32), hic.astype(np.float32)


def direct_model(models: dict[str, Path]):
    """task -> f(epi (B,C,2L), hic (B,W,W), offset (B,) bins) calling the model directly
    in torch (offset None: diagonal windows)."""
    import torch

    from mixhic.platform.checkpoints import load_model_dir

    loaded = {t: load_model_dir(p)[0].eval() for t, p in models.items()}

    def call(task, epi, hic=None, offset=None):
        with torch.inference_mode():
            out = loaded[task](torch.as_tensor(epi),
                               hic=None if hic is None else torch.as_tensor(hic),
                               offset=None if offset is None else torch.as_tensor(offset))
            return (torch.sigmoid(out) if task == "loops" else out).numpy()

    return call
