"""Pretrained weights load explicitly into each fine-tuning mode; mismatches raise."""

import pytest
import torch

from mixhic.models import (
    TASKS,
    FinetuneModel,
    LoadReport,
    PretrainModel,
    get_preset,
    load_pretrained,
)

SMALL = get_preset("tiny", window_bins=20, epi_bins=200, n_heads=2)


@pytest.fixture(scope="module")
def pretrained_state():
    torch.manual_seed(1)
    return PretrainModel(SMALL).state_dict()


def _prefixes(keys):
    return {".".join(k.split(".")[:2]) if k.startswith(("interaction", "mapping"))
            else k.split(".")[0] for k in keys}


@pytest.mark.parametrize("mode,skipped", [
    ("bimodal", {"mapping.e2m", "mapping.m2e", "temperature_raw"}),
    ("infer", {"hic_encoder", "interaction.hic_shared", "interaction.hic_specific",
               "mapping.m2e", "temperature_raw"}),
    ("epi", {"hic_encoder", "interaction.hic_shared", "interaction.hic_specific",
             "mapping.e2m", "mapping.m2e", "temperature_raw"}),
])
@pytest.mark.parametrize("task", TASKS)
def test_loads_into_each_mode(pretrained_state, task, mode, skipped):
    fm = FinetuneModel(SMALL, task, mode)
    report = load_pretrained(fm, pretrained_state)
    assert isinstance(report, LoadReport)
    assert report.loaded and report.fresh
    assert _prefixes(report.skipped) == skipped
    own = fm.state_dict()
    for k in report.loaded:
        assert torch.equal(own[k], pretrained_state[k]), k
    # loaded + fresh covers the model exactly; fresh is fusion + head only
    assert sorted(report.loaded + report.fresh) == sorted(own)
    assert {k.split(".")[0] for k in report.fresh} <= {"fusion", "fusion_norm", "head"}
    assert "loaded" in report.summary()


def test_nonpre_never_loads(pretrained_state):
    with pytest.raises(ValueError, match="nonpre"):
        load_pretrained(FinetuneModel(SMALL, "loops", "nonpre"), pretrained_state)


def test_mismatches_raise(pretrained_state):
    fm = FinetuneModel(SMALL, "loops", "bimodal")
    other = PretrainModel(SMALL.replace(embed_dim=8)).state_dict()
    with pytest.raises(ValueError, match="shapes differ"):
        load_pretrained(fm, other)
    with pytest.raises(ValueError, match="not a pretraining checkpoint"):
        load_pretrained(fm, FinetuneModel(SMALL, "loops", "bimodal").state_dict())
    partial = {k: v for k, v in pretrained_state.items() if not k.startswith("epi_encoder.norm")}
    with pytest.raises(ValueError, match="lacks 2 keys"):
        load_pretrained(fm, partial)
