"""The speed rewrites compute what the plain modules compute.

``GridDown`` (unfold + matmul on small grids) against ``nn.Conv2d`` with the same
parameters; the epigenomic stem run channels-last in 2-D against its own 1-D modules
called in order; ``adamw`` (fused) against torch's default AdamW loop.
"""

from __future__ import annotations

import copy

import pytest
import torch
from mixhic.models import adamw, get_preset
from mixhic.models.blocks import GridDown
from mixhic.models.encoders import EpiEncoder


@pytest.mark.parametrize("side", [3, 6, 12, 13, 25])
def test_grid_down_equals_conv2d(side):
    torch.manual_seed(0)
    down = GridDown(8, 16)
    conv = torch.nn.Conv2d(8, 16, kernel_size=4, stride=2, padding=1)
    conv.load_state_dict(down.state_dict())
    tokens = torch.randn(3, side * side, 8, requires_grad=True)
    grid = tokens.detach().transpose(1, 2).reshape(3, 8, side, side).requires_grad_()

    got = down(tokens, side)
    want = conv(grid).flatten(2).transpose(1, 2)
    assert got.shape == want.shape == (3, (side // 2) ** 2, 16)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)

    weights = torch.randn_like(want)
    (got * weights).sum().backward()
    (want * weights).sum().backward()
    torch.testing.assert_close(down.weight.grad, conv.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(down.bias.grad, conv.bias.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(tokens.grad.transpose(1, 2).reshape(3, 8, side, side),
                               grid.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("training", [True, False])
def test_epi_stem_equals_its_1d_modules(training):
    torch.manual_seed(0)
    cfg = get_preset("tiny", window_bins=20, epi_bins=400, n_tracks=2)
    enc = EpiEncoder(cfg).train(training)
    twin = copy.deepcopy(enc)
    x = torch.randn(4, cfg.n_tracks, cfg.epi_bins, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()

    got = enc._run_stem(x)  # (2B, W, E)
    want = twin.stem(torch.relu(twin.stem_in(x2))).transpose(1, 2)
    assert got.shape == want.shape == (4, cfg.window_bins, cfg.embed_dim)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # running statistics (and their counter) move exactly as the 1-D modules move them
    for key, value in twin.state_dict().items():
        torch.testing.assert_close(enc.state_dict()[key], value, msg=key)
    if training:
        weights = torch.randn_like(want)
        (got * weights).sum().backward()
        (want * weights).sum().backward()
        torch.testing.assert_close(x.grad, x2.grad, rtol=1e-4, atol=1e-4)
        for (name, p), q in zip(enc.named_parameters(), twin.parameters()):
            if p.grad is not None or q.grad is not None:
                torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-4, msg=name)


def test_adamw_is_fused_and_steps_like_the_default():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.GELU(), torch.nn.Linear(5, 1))
    twin = copy.deepcopy(model)
    fast = adamw(model.parameters(), lr=1e-2, betas=(0.9, 0.99), weight_decay=1e-3)
    slow = torch.optim.AdamW(twin.parameters(), lr=1e-2, betas=(0.9, 0.99), weight_decay=1e-3)
    assert fast.defaults["fused"] is True
    x = torch.randn(32, 6)
    for _ in range(5):
        for m, opt in ((model, fast), (twin, slow)):
            opt.zero_grad()
            m(x).square().mean().backward()
            opt.step()
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    # the state written by one loads into the other (checkpoints resume across both)
    slow.load_state_dict(fast.state_dict())
