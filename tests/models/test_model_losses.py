"""Loss properties, the pretraining objective and the temperature clamp; gradients reach
every parameter a mode uses."""

import pytest
import torch

from mixhic.models import (
    MODES,
    TASKS,
    FinetuneModel,
    LossWeights,
    PretrainModel,
    get_preset,
    info_nce,
    mapping_loss,
    orthogonality_loss,
    pretrain_objective,
)

SMALL = get_preset("tiny", window_bins=20, epi_bins=200, n_heads=2)


def _inputs(cfg, B, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, cfg.window_bins, cfg.window_bins, generator=g),
            torch.rand(B, cfg.n_tracks, 2 * cfg.epi_bins, generator=g))


def test_orthogonality_zero_for_orthogonal_one_for_parallel():
    B, N, D = 4, 5, 8
    shared = torch.zeros(B, N, D)
    shared[..., :4] = torch.randn(B, N, 4)
    specific = torch.zeros(B, N, D)
    specific[..., 4:] = torch.randn(B, N, 4)
    assert orthogonality_loss(shared, specific).item() == pytest.approx(0.0, abs=1e-7)
    v = torch.randn(B, D)
    assert orthogonality_loss(v, 3 * v).item() == pytest.approx(1.0, abs=1e-5)
    assert orthogonality_loss(v, -v).item() == pytest.approx(1.0, abs=1e-5)


def test_contrastive_lower_for_matched_than_shuffled():
    torch.manual_seed(0)
    a = torch.randn(16, 6, 32)
    b = a + 0.1 * torch.randn_like(a)
    shuffled = b[torch.roll(torch.arange(16), 1)]
    t = torch.tensor(0.07)
    matched_loss, shuffled_loss = info_nce(a, b, t), info_nce(a, shuffled, t)
    assert matched_loss < 0.1 < shuffled_loss
    # symmetric in its arguments
    torch.testing.assert_close(info_nce(a, b, t), info_nce(b, a, t))


def test_standardized_contrastive_sees_past_a_shared_component():
    """Nearly identical windows (a large common vector, small per-sample parts) are the
    plain loss's collapse point: loss ~ ln(B), gradients ~0. Standardising over the batch
    compares the per-sample parts, so matched pairs score well and gradients flow."""
    torch.manual_seed(0)
    B = 16
    common = 100.0 * torch.randn(1, 32)
    own = torch.randn(B, 32)
    a = (common + own).requires_grad_(True)
    b = common + own + 0.1 * torch.randn(B, 32)
    t = torch.tensor(0.07)
    plain = info_nce(a, b, t)
    assert plain.item() == pytest.approx(float(torch.log(torch.tensor(B))), abs=0.3)
    std = info_nce(a, b, t, standardize=True)
    assert std.item() < 0.5
    shuffled = info_nce(a, b[torch.roll(torch.arange(B), 1)], t, standardize=True)
    assert shuffled.item() > 5.0
    # a shift and scale of each modality's features do not change the standardised loss
    torch.testing.assert_close(info_nce(3 * a - 7, b, t, standardize=True), std)
    with pytest.raises(ValueError, match="at least 2"):
        info_nce(a[:1], b[:1], t, standardize=True)


def test_distance_contrast_removes_the_distance_decay():
    from mixhic.models.encoders import distance_contrast

    torch.manual_seed(0)
    W = 12
    i = torch.arange(W)
    offset = (i[None, :] - i[:, None]).float()  # j - i
    decay = torch.exp(-offset.abs() / 3.0)
    signal = torch.rand(2, W, W)
    out = distance_contrast(signal)
    # every diagonal of the output has mean zero; the window's spread is one
    for k in range(-(W - 1), W):
        torch.testing.assert_close(out.diagonal(k, dim1=1, dim2=2).mean(-1),
                                   torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.flatten(1).std(1), torch.ones(2), atol=1e-3, rtol=0)
    # adding any function of the distance, or scaling the map, changes nothing (up to
    # the eps added to the spread)
    torch.testing.assert_close(distance_contrast(4.0 * signal + 5.0 * decay), out,
                               atol=2e-3, rtol=2e-3)
    # off-diagonal windows: the diagonals j - i still share a distance (no symmetry used)
    assert not torch.allclose(out, out.transpose(1, 2))


def test_mapping_zero_for_identical_and_scale_free():
    x = torch.randn(3, 9, 16)
    assert mapping_loss(x, x).item() == pytest.approx(0.0, abs=1e-7)
    assert mapping_loss(2.5 * x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert mapping_loss(-x, x).item() == pytest.approx(4.0, abs=1e-5)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_temperature_init_and_clamp_after_aggressive_steps(sign):
    pm = PretrainModel(SMALL)
    assert pm.temperature().item() == pytest.approx(0.07, rel=1e-5)
    opt = torch.optim.SGD([pm.temperature_raw], lr=1e6)
    for _ in range(3):
        opt.zero_grad()
        (sign * pm.temperature()).backward()
        opt.step()
        t = pm.temperature().item()
        assert SMALL.temperature_min <= t <= SMALL.temperature_max
    bound = SMALL.temperature_min if sign > 0 else SMALL.temperature_max
    assert t == pytest.approx(bound, rel=1e-3)
    # the contrastive loss stays finite at the bound
    out = pm(*_inputs(SMALL, 3))
    assert torch.isfinite(pretrain_objective(out, pm)["loss"])


def test_objective_weights_and_warmup():
    pm = PretrainModel(SMALL)
    out = pm(*_inputs(SMALL, 4))
    w = LossWeights(con=0.3, orth=2.0, map=0.7)
    parts = pretrain_objective(out, pm, w)
    assert set(parts) == {"loss", "con", "orth", "map"}
    assert all(v.shape == () and torch.isfinite(v) for v in parts.values())
    expected = 0.3 * parts["con"] + 2.0 * parts["orth"] + 0.7 * parts["map"]
    torch.testing.assert_close(parts["loss"].detach(), expected)
    warm = pretrain_objective(out, pm, w, contrastive_only=True)
    torch.testing.assert_close(warm["loss"].detach(), parts["con"])
    with pytest.raises(ValueError, match=r"LossWeights\.orth"):
        LossWeights(orth=-1.0)


def _assert_all_grads(model):
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    zero = [n for n, p in model.named_parameters()
            if p.grad is not None and not p.grad.abs().sum() > 0]
    assert not no_grad, f"parameters without gradient: {no_grad}"
    assert not zero, f"parameters with an all-zero gradient: {zero}"


def test_pretrain_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    pm = PretrainModel(SMALL)
    pretrain_objective(pm(*_inputs(SMALL, 4)), pm)["loss"].backward()
    _assert_all_grads(pm)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("mode", MODES)
def test_finetune_every_parameter_gets_a_gradient(task, mode):
    torch.manual_seed(0)
    fm = FinetuneModel(SMALL, task, mode)
    hic, epi = _inputs(SMALL, 4)
    W = SMALL.window_bins  # anchors on the diagonal, overlapping, and apart (a gap)
    offset = torch.tensor([0.0, W // 2, W + 3, 2 * W])
    pred = fm(epi, hic, offset=offset)
    target = (torch.rand_like(pred) > 0.5).float()
    fm.loss(pred, target).backward()
    _assert_all_grads(fm)
    # only the modules the mode uses exist
    names = {n.split(".")[0] for n, _ in fm.named_parameters()}
    assert ("hic_encoder" in names) == (mode in ("bimodal", "nonpre"))
    assert ("mapping" in names) == (mode == "infer")


def test_hic_loss_leaves_out_unobserved_pixels():
    """A masked bin is a zero row/column of the target: the loss is the MSE of the other
    pixels, and the prediction there gets no gradient."""
    torch.manual_seed(0)
    fm = FinetuneModel(SMALL, "hic", "epi")
    W = SMALL.window_bins
    pred = torch.randn(2, W, W, requires_grad=True)
    target = torch.rand(2, W, W) + 0.1
    target[0, 3, :] = 0.0  # x-anchor bin 3 of window 0 masked
    target[1, :, 5] = 0.0  # y-anchor bin 5 of window 1 masked
    loss = fm.loss(pred, target)
    seen = torch.ones(2, W, W, dtype=torch.bool)
    seen[0, 3, :], seen[1, :, 5] = False, False
    torch.testing.assert_close(loss, ((pred - target)[seen] ** 2).mean())
    loss.backward()
    assert (pred.grad[~seen] == 0).all() and (pred.grad[seen] != 0).all()


def test_pairing_accuracy_counts_nearest_own_pairs_and_has_chance_1_over_b():
    from mixhic.models.losses import pairing_accuracy

    torch.manual_seed(0)
    a = torch.randn(64, 16)
    assert pairing_accuracy(a, a).item() == 1.0  # each vector is nearest its copy
    assert pairing_accuracy(a, a + 0.01 * torch.randn(64, 16)).item() == 1.0
    # b's rows are a's rows shifted by one: no window is nearest its own
    assert pairing_accuracy(a, a.roll(1, 0)).item() == 0.0
    # by hand on 3 windows: a_0 -> b_0, a_1 -> b_0 (miss), a_2 -> b_2; columns likewise
    a3 = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    b3 = torch.tensor([[1.0, 0.0], [-1.0, 0.2], [0.0, 1.0]])
    # rows: a_0 nearest b_0 (hit), a_1 nearest b_0 (miss), a_2 nearest b_2 (hit): 2/3;
    # columns: b_0 nearest a_0 (hit), b_1 nearest a_2 (cosines -0.98, -0.95, 0.20:
    # miss), b_2 nearest a_2 (hit): 2/3
    assert pairing_accuracy(a3, b3).item() == pytest.approx(2 / 3)
    # unrelated vectors: about 1 / B over many batches
    accs = [pairing_accuracy(torch.randn(8, 16), torch.randn(8, 16)).item() for _ in range(400)]
    assert abs(sum(accs) / len(accs) - 1 / 8) < 0.03


def test_pairing_accuracy_leaves_excluded_windows_out_of_the_competition():
    from mixhic.models.losses import pairing_accuracy, pairing_chance

    # a_0's nearest b is b_1 (a window overlapping it): a miss, unless b_1 does not compete
    a = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    b = torch.tensor([[0.9, 0.44], [1.0, 0.0], [0.0, 1.0]])
    ex = torch.zeros(3, 3, dtype=torch.bool)
    ex[0, 1] = ex[1, 0] = True
    # without: rows a_0 -> b_1 (cos 1.0 vs own 0.90: miss), a_1 -> b_0 (0.98 vs 0.8:
    # miss), a_2 -> b_2 (hit); columns b_0 -> a_1 (miss), b_1 -> a_0 (miss), b_2 -> a_2
    assert pairing_accuracy(a, b).item() == pytest.approx(1 / 3)
    # with 0 and 1 excluded from each other every window is nearest its own
    assert pairing_accuracy(a, b, exclude=ex).item() == 1.0
    # chance: windows 0 and 1 have one competitor (2), window 2 has two
    assert pairing_chance(3, ex) == pytest.approx((1 / 2 + 1 / 2 + 1 / 3) / 3)
    assert pairing_chance(8) == pytest.approx(1 / 8)
    # unrelated vectors score the chance of the same exclusions
    torch.manual_seed(1)
    band = (torch.arange(8)[:, None] - torch.arange(8)[None, :]).abs().le(2)
    band.fill_diagonal_(False)
    accs = [pairing_accuracy(torch.randn(8, 16), torch.randn(8, 16), exclude=band).item()
            for _ in range(600)]
    assert abs(sum(accs) / len(accs) - pairing_chance(8, band)) < 0.03
    with pytest.raises(ValueError, match="symmetric"):
        pairing_accuracy(a, b, exclude=torch.triu(torch.ones(3, 3, dtype=torch.bool), 1))
    with pytest.raises(ValueError, match=r"shape \(3, 3\)"):
        pairing_accuracy(a, b, exclude=band)
