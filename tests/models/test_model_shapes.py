"""Output shapes of every head and mode, input validation, batch invariance in eval."""

import pytest
import torch

from mixhic.models import MODES, TASKS, FinetuneModel, PretrainModel, get_preset

# A small geometry with 2 heads (multi-head path), fast on one core.
SMALL = get_preset("tiny", window_bins=20, epi_bins=200, n_heads=2)


def _inputs(cfg, B, seed=0):
    g = torch.Generator().manual_seed(seed)
    hic = torch.rand(B, cfg.window_bins, cfg.window_bins, generator=g)
    epi = torch.rand(B, cfg.n_tracks, 2 * cfg.epi_bins, generator=g)
    return hic, epi


def _expected(cfg, task, B):
    W = cfg.window_bins
    return {"hic": (B, W, W), "loops": (B,), "cage": (B, W)}[task]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("mode", MODES)
def test_finetune_shapes_paper_geometry(task, mode):
    cfg = get_preset("tiny")
    hic, epi = _inputs(cfg, 2)
    fm = FinetuneModel(cfg, task=task, mode=mode)
    pred = fm(epi, hic if mode in ("bimodal", "nonpre") else None)
    assert pred.shape == _expected(cfg, task, 2)
    assert torch.isfinite(pred).all()
    assert fm.loss(pred, torch.zeros_like(pred)).shape == ()


def test_pretrain_shapes():
    cfg = get_preset("tiny")
    hic, epi = _inputs(cfg, 3)
    out = PretrainModel(cfg)(hic, epi)
    D, H = cfg.model_dim, cfg.proj_dim
    assert out["hic_shared"].shape == out["hic_specific"].shape == (3, 9, H)
    assert out["epi_shared"].shape == out["epi_specific"].shape == (3, 12, H)
    assert out["hic_tokens"].shape == out["e2m"].shape == (3, 9, D)
    assert out["epi_tokens"].shape == out["m2e"].shape == (3, 12, D)
    # shared / specific tokens are L2-normalised
    assert torch.allclose(out["hic_shared"].norm(dim=-1), torch.ones(3, 9), atol=1e-5)


@pytest.mark.parametrize("W,L,C", [(20, 200, 1), (30, 30, 3), (16, 96, 2)])
def test_other_geometries(W, L, C):
    cfg = get_preset("tiny", window_bins=W, epi_bins=L, n_tracks=C)
    hic, epi = _inputs(cfg, 2)
    for task in TASKS:
        assert FinetuneModel(cfg, task, "bimodal")(epi, hic).shape == _expected(cfg, task, 2)
    PretrainModel(cfg)(hic, epi)


def test_bad_inputs_are_named():
    fm = FinetuneModel(SMALL, "loops", "bimodal")
    hic, epi = _inputs(SMALL, 2)
    with pytest.raises(ValueError, match="hic: required"):
        fm(epi)
    with pytest.raises(ValueError, match=r"hic: expected shape \(B, 20, 20\)"):
        fm(epi, hic[:, :10])
    with pytest.raises(ValueError, match=r"epi: expected shape \(B, 2, 400\)"):
        fm(epi[:, :, :100], hic)
    with pytest.raises(ValueError, match="unknown task"):
        FinetuneModel(SMALL, "tads")
    with pytest.raises(ValueError, match="unknown mode"):
        FinetuneModel(SMALL, "loops", "hic-only")
    with pytest.raises(ValueError, match="target: expected shape"):
        fm.loss(torch.zeros(2), torch.zeros(3))
    # epi-only modes ignore hic
    assert FinetuneModel(SMALL, "loops", "infer")(epi, None).shape == (2,)


def _all_models():
    """(name, model) of every model kind, each initialised from its own fixed seed, so a
    test sees the same weights whatever ran before it in the session."""
    torch.manual_seed(0)
    yield "pretrain", PretrainModel(SMALL)
    for k, task in enumerate(TASKS):
        for m, mode in enumerate(MODES):
            torch.manual_seed(1 + 10 * k + m)
            yield f"{task}-{mode}", FinetuneModel(SMALL, task, mode)


def _run(name, model, hic, epi):
    if name == "pretrain":
        return model(hic, epi)["e2m"]
    return model(epi, hic)


@pytest.mark.parametrize("name,model", list(_all_models()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_eval_batch_permutation_and_size_invariance(name, model):
    """The published code attends across the batch; ours must not (reference defect 1)."""
    torch.manual_seed(0)
    # a few training steps' worth of BN statistics, then eval
    model.train()
    with torch.no_grad():
        _run(name, model, *_inputs(SMALL, 6, seed=1))
    model.eval()
    hic, epi = _inputs(SMALL, 6)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    with torch.no_grad():
        full = _run(name, model, hic, epi)
        permuted = _run(name, model, hic[perm], epi[perm])
        single = torch.cat([_run(name, model, hic[i : i + 1], epi[i : i + 1]) for i in range(6)])
        pair = _run(name, model, hic[2:4], epi[2:4])
    torch.testing.assert_close(permuted, full[perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(single, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pair, full[2:4], atol=1e-5, rtol=1e-5)
    # and the outputs differ between samples (not a constant map)
    assert (full - full[:1]).abs().max() > 1e-7  # untrained heads vary by ~1e-5
