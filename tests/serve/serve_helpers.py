"""Helpers of the serve tests: tiny random models saved as model dirs, a tiny genome."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path


# W = 20 bins of 5 kb, L = 400 epi bins of 250 bp per anchor, 2 tracks.
GEOMETRY = {"window_bins": 20, "epi_bins": 400, "n_tracks": 2}
DATA = {**GEOMETRY, "resolution": 5000, "epi_bin": 250, "tracks": ["atac", "dnase"],
        "epi_transform": "log2p1"}
TASK_MODES = {"hic": "infer", "loops": "bimodal", "cage": "bimodal"}


def make_model_dir(path: Path, task: str, mode: str, seed: int = 0) -> Path:
    """A randomly initialised tiny fine-tuned model written as a model directory."""
    import torch

    from mixhic.models import FinetuneModel, get_preset
    from mixhic.platform.checkpoints import save_model_dir

    torch.manual_seed(seed)
    cfg = get_preset("tiny", **GEOMETRY)
    model = FinetuneModel(cfg, task=task, mode=mode).eval()
    meta = {
        "kind": "finetune", "task": task, "mode": mode,
        "model_config": dataclasses.asdict(cfg), "preset": "tiny", "data": dict(DATA),
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
