"""The published-model speed reference of ``tests/benchmarks/bench_model.py``
(``benchmarks/_published_model.py``): same token shapes as ours, trainable, and it keeps
the published defect that changes a step's work (epi attention across the batch)."""

from __future__ import annotations

import pytest
import torch
from benchmarks._published_model import (
    PublishedConfig,
    PublishedPretrainModel,
    published_inputs,
    published_pretrain_loss,
)

from mixhic.models import PretrainModel, get_preset

B = 3


@pytest.fixture(scope="module")
def small():
    """E = 16 at the paper geometry (W = 50, epi 5000 x 2), like our ``tiny``."""
    torch.manual_seed(0)
    cfg = PublishedConfig(embed_dim=16)
    return cfg, PublishedPretrainModel(cfg)


def test_output_shapes_match_ours(small):
    cfg, pub = small
    ours = PretrainModel(get_preset("tiny"))
    hic, epi = published_inputs(cfg, B)
    out_pub = pub(hic, epi)
    out_ours = ours(hic, epi.transpose(1, 2))  # ours takes epi as (B, C, 2L)
    assert set(out_pub) == set(out_ours)
    for k in out_ours:
        assert out_pub[k].shape == out_ours[k].shape, k
    assert out_pub["hic_tokens"].shape == (B, 9, 128)
    assert out_pub["epi_tokens"].shape == (B, 12, 128)


def test_one_adamw_step_changes_used_parameters_only(small):
    cfg, _ = small
    torch.manual_seed(1)
    pub = PublishedPretrainModel(cfg)
    before = {k: v.detach().clone() for k, v in pub.named_parameters()}
    opt = torch.optim.AdamW(pub.parameters(), lr=1e-3)
    hic, epi = published_inputs(cfg, B)
    opt.zero_grad(set_to_none=True)
    loss = published_pretrain_loss(pub, hic, epi)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    opt.step()
    changed = {k for k, v in pub.named_parameters() if not torch.equal(v, before[k])}
    unused = {k for k, _ in pub.named_parameters() if k.startswith("unused_cross_attn.")}
    assert unused and not changed & unused  # defect 6: built, never trained
    assert changed == set(before) - unused


def test_epi_attention_runs_across_the_batch(small):
    """Defect 1 kept on purpose: a sample's epi tokens depend on its batch mates."""
    cfg, pub = small
    pub = pub.eval()
    _, epi = published_inputs(cfg, B)
    with torch.no_grad():
        alone = pub.epi_encoder(epi[:1])
        with_mates = pub.epi_encoder(epi)[:1]
    assert not torch.allclose(alone, with_mates, atol=1e-4)


def test_config_rejects_unknown_attention():
    with pytest.raises(ValueError, match="attn"):
        PublishedPretrainModel(PublishedConfig(embed_dim=8, attn="flash"))
