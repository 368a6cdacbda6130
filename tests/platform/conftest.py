"""Fixtures of the training-platform tests: one simulated + prepared tiny dataset per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_data(ray_local, tmp_path_factory) -> Path:
    """A prepared data dir (pretrain/hic/loops/cage) from a 4-chromosome simulated genome.

    Splits (prepare-demo): val chr2, test chr3, train chr1 + chr4. Built once per session.
    """
    from mixhic.core.config import load_config
    from mixhic.pipelines.prepare import PrepareConfig, prepare
    from mixhic.pipelines.simulate import simulate_genome

    root = tmp_path_factory.mktemp("tinydata")
    simulate_genome(root / "genome", preset="tiny", seed=0, n_chroms=4,
                    chrom_length=1_500_000)
    cfg = load_config("prepare-demo", PrepareConfig,
                      {"root": str(root / "genome"), "out": str(root / "data"),
                       "sample": "sim-a"})
    prepare(cfg)
    return root / "data"


@pytest.fixture(scope="session")
def tiny_pretrained(tiny_data, tmp_path_factory) -> Path:
    """A pretraining model dir (untrained tiny model at the data's geometry), no Ray Train."""
    import dataclasses

    import torch
    from mixhic.models import PretrainModel, get_preset
    from mixhic.platform.checkpoints import save_model_dir
    from mixhic.platform.data import data_meta

    meta_data = data_meta(str(tiny_data), "pretrain")
    cfg = get_preset("tiny", window_bins=meta_data["window_bins"],
                     epi_bins=meta_data["epi_bins"], n_tracks=meta_data["n_tracks"])
    torch.manual_seed(0)
    meta = {"kind": "pretrain", "task": None, "mode": None,
            "model_config": dataclasses.asdict(cfg), "preset": "tiny", "data": meta_data,
            "run_id": None, "epoch": 0, "metrics": {}}
    return Path(save_model_dir(tmp_path_factory.mktemp("pre") / "model", PretrainModel(cfg), meta))
