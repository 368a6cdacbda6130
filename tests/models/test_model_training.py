"""The model learns, runs under bf16 autocast and torch.compile; models/ stays pure torch."""

import ast
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mixhic.models import FinetuneModel, PretrainModel, get_preset, pretrain_objective

SMALL = get_preset("tiny", window_bins=20, epi_bins=200, embed_dim=8)
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def _cage_task(n, seed):
    """Track 0 has a few peaks; the CAGE-like target is its mean per Hi-C bin (x-anchor)."""
    g = torch.Generator().manual_seed(seed)
    W, L = SMALL.window_bins, SMALL.epi_bins
    epi = torch.rand(n, SMALL.n_tracks, 2 * L, generator=g) * 0.2
    peaks = (torch.rand(n, 1, 2 * L, generator=g) > 0.97).float()
    epi[:, :1] += 3 * F.max_pool1d(peaks, 9, stride=1, padding=4)
    target = epi[:, 0, :L].reshape(n, W, L // W).mean(-1)
    hic = torch.rand(n, W, W, generator=g)
    return epi, hic, target


def test_finetune_learns_a_synthetic_task():
    torch.manual_seed(0)
    epi, hic, target = _cage_task(64, seed=0)
    fm = FinetuneModel(SMALL, "cage", "bimodal")
    opt = torch.optim.AdamW(fm.parameters(), lr=3e-3, foreach=True)
    fm.eval()
    with torch.no_grad():
        start = fm.loss(fm(epi, hic), target).item()
    fm.train()
    for step in range(150):
        idx = torch.randint(0, 64, (8,))
        loss = fm.loss(fm(epi[idx], hic[idx]), target[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    fm.eval()
    with torch.no_grad():
        end = fm.loss(fm(epi, hic), target).item()
    assert end < 0.1 * start, (start, end)


def test_pretraining_aligns_paired_modalities():
    """Hi-C built from the epi signal: the contrastive loss falls well below chance."""
    torch.manual_seed(0)
    epi, _, prof = _cage_task(64, seed=1)
    hic = prof[:, :, None] * prof[:, None, :]  # (B, W, W) outer product
    pm = PretrainModel(SMALL)
    opt = torch.optim.AdamW(pm.parameters(), lr=3e-3, foreach=True)
    first = None
    for step in range(80):
        idx = torch.randperm(64)[:16]
        parts = pretrain_objective(pm(hic[idx], epi[idx]), pm)
        opt.zero_grad()
        parts["loss"].backward()
        opt.step()
        first = parts["loss"].item() if first is None else first
    chance = torch.log(torch.tensor(16.0)).item()  # InfoNCE of random embeddings, batch 16
    assert parts["loss"].item() < 0.6 * first, (first, parts)
    assert parts["con"].item() < 0.9 * chance, parts


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
            ],
        ),
    ],
)
def test_bf16_autocast_finite(device):
    cfg = get_preset("tiny")
    hic = torch.rand(2, 50, 50, device=device)
    epi = torch.rand(2, 2, 5000, device=device)
    pm = PretrainModel(cfg).to(device)
    fm = FinetuneModel(cfg, "hic", "infer").to(device)
    with torch.autocast(device, dtype=torch.bfloat16):
        parts = pretrain_objective(pm(hic, epi), pm)
        pred = fm(epi)
        loss = fm.loss(pred, torch.rand(2, 50, 50, device=device))
    assert all(torch.isfinite(v) for v in parts.values())
    assert torch.isfinite(pred.float()).all() and torch.isfinite(loss)
    (parts["loss"] + loss).backward()
    assert all(torch.isfinite(p.grad).all() for p in fm.parameters() if p.grad is not None)


@pytest.mark.slow
@pytest.mark.parametrize(("task", "mode"), [("loops", "bimodal"), ("hic", "epi")])
def test_torch_compile_forward(task, mode):
    """Dynamo captures the whole forward (fullgraph: no graph breaks), the loop head's and
    the map head's. The aot_eager backend keeps the test fast; the inductor backend is
    exercised by the benchmark's --compile."""
    cfg = get_preset("tiny", window_bins=20, epi_bins=100)
    fm = FinetuneModel(cfg, task, mode).eval()
    hic = torch.rand(2, 20, 20) if mode == "bimodal" else None
    epi, offset = torch.rand(2, 2, 200), torch.tensor([0.0, 30.0])
    with torch.no_grad():
        eager = fm(epi, hic, offset)
        compiled = torch.compile(fm, backend="aot_eager", fullgraph=True)(epi, hic, offset)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)


def test_models_import_only_torch_numpy_stdlib():
    """models/ imports torch, numpy, the standard library, ``mixhic.core.lazy`` (its lazy
    exports) and ``mixhic.core.config`` (its defaults' YAML, ``shipped_defaults``); those
    two import the standard library and PyYAML only (pydantic lazily, to build configs)."""
    allowed = {"torch", "numpy", "__future__"} | set(sys.stdlib_module_names)
    core = MODELS_DIR.parent / "platform" / "core"
    leaves = {"mixhic.core.lazy": core / "lazy.py", "mixhic.core.config": core / "config.py"}
    for path in [*MODELS_DIR.glob("*.py"), *leaves.values()]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                if node.module in leaves and path not in leaves.values():
                    continue
                roots = [node.module.split(".")[0]]
            else:
                continue
            extra = {"yaml", "pydantic", "pydantic_core"} if path.name == "config.py" \
                and path.parent == core else set()  # pydantic: lazy (test_config_core)
            bad = [r for r in roots if r not in allowed | extra]
            assert not bad, f"{path.name} imports {bad}"
