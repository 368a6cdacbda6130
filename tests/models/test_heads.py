"""The task heads learn what the trivial baselines know: distance decay (maps) and the
contrast of the loop pixel against its surroundings (loops)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import r2_score, roc_auc_score

from mixhic.models import FinetuneModel, get_preset
from mixhic.models.heads import (DistanceEmbedding, anchor_signal, boundaries_crossed,
                                 loop_contrast_features, loop_features, pixel_distances)

W, L = 20, 40  # small geometry: 20 bins per axis, 2 epi bins per Hi-C bin


def _cfg(**kw):
    return get_preset("tiny", window_bins=W, epi_bins=L, n_tracks=1, **kw)


def _decay(d: torch.Tensor) -> torch.Tensor:
    return 1.0 - 0.35 * torch.log1p(d)


def test_pixel_distances_include_the_anchor_offset():
    d = pixel_distances(torch.tensor([0.0, 30.0]), 2, 4, torch.device("cpu"))
    assert d.shape == (2, 4, 4)
    assert d[0, 0, 3] == 3 and d[0, 3, 0] == 3 and d[0, 2, 2] == 0
    assert d[1, 0, 0] == 30 and d[1, 3, 0] == 27 and d[1, 0, 3] == 33


def test_distance_embedding_interpolates_and_saturates():
    emb = DistanceEmbedding(3, n=8)
    d = torch.tensor([0.0, 1.0, 2.0, 1e9])
    out = emb(d)
    assert out.shape == (4, 3)
    torch.testing.assert_close(out[0], emb.table[0])
    torch.testing.assert_close(out[3], emb.table[-1])
    # 4 * log2(1 + 2) = 6.34: between rows 6 and 7
    torch.testing.assert_close(out[2], 0.66 * emb.table[6] + 0.34 * emb.table[7],
                               atol=2e-2, rtol=0)


def test_map_head_learns_distance_decay():
    """Epi carries nothing; the target is a function of genomic distance only, in
    windows on and off the diagonal: the map head must learn it (R^2 > 0.9)."""
    torch.manual_seed(0)
    model = FinetuneModel(_cfg(), task="hic", mode="epi")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    offsets = torch.tensor([0.0, 10.0, 25.0, 40.0])

    def batch(n):
        off = offsets[torch.randint(0, len(offsets), (n,))]
        target = _decay(pixel_distances(off, n, W, torch.device("cpu")))
        return torch.randn(n, 1, 2 * L), off, target

    for _ in range(120):  # R^2 0.997 at step 100 (measured), 0.897 at step 50
        epi, off, target = batch(16)
        loss = model.loss(model(epi, offset=off), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    epi, off, target = batch(64)
    with torch.no_grad():
        pred = model.predict(epi, offset=off)
    assert r2_score(target.numpy().ravel(), pred.numpy().ravel()) > 0.9


def _domain_batch(n: int, rng: np.random.Generator):
    """Windows over a genome of domains 4-11 bins long, each boundary marked by a peak in
    the track (plus decoy peaks that mark nothing); the map is a distance decay plus 0.5
    inside a domain. Returns epi, offsets, target, and the decay alone."""
    offsets = rng.choice([0, 10, 25, 40], size=n)
    epi = np.zeros((n, 1, 2 * L), np.float32)
    target = np.zeros((n, W, W), np.float32)
    for k, off in enumerate(offsets):
        span = off + 2 * W
        domain = np.repeat(np.arange(span), rng.integers(4, 12, size=span))[:span]
        track = np.abs(rng.normal(0, 0.3, 2 * span))
        last_bins = np.flatnonzero(np.diff(domain))  # a domain's last bin
        track[2 * last_bins + 1] += 3.0
        track[rng.integers(0, 2 * span, size=span // 6)] += 1.5  # decoys
        epi[k, 0, :L], epi[k, 0, L:] = track[: 2 * W], track[2 * off: 2 * off + 2 * W]
        i, j = np.arange(W)[:, None], off + np.arange(W)[None, :]
        target[k] = 0.5 * (domain[i] == domain[j])
    off = torch.tensor(offsets, dtype=torch.float32)
    decay = _decay(pixel_distances(off, n, W, torch.device("cpu")))
    return torch.tensor(epi), off, torch.tensor(target) + decay, decay


def test_map_head_learns_domains_marked_in_the_track():
    """Whether two bins share a domain depends on every bin between them, not on the two
    bins' tokens: the map head must learn the within-domain part (R^2 > 0.9 on target
    minus decay), on and off the diagonal. The head without its boundary-crossing feature
    reached 0.62 here."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = FinetuneModel(_cfg(), task="hic", mode="epi")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(220):
        epi, off, target, _ = _domain_batch(16, rng)
        loss = model.loss(model(epi, offset=off), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    epi, off, target, decay = _domain_batch(64, np.random.default_rng(1))
    with torch.no_grad():
        pred = model.predict(epi, offset=off)
    assert r2_score((target - decay).numpy().ravel(), (pred - decay).numpy().ravel()) > 0.9


def test_boundaries_crossed_counts_the_boundaries_between_two_bins():
    """Hand count: unit boundaries after x-anchor bins 1 and 3, y-anchor bin 0, a gap
    scoring 0.5 per bin; anchors W = 4 apart by 0, 2 (overlapping) and 6 bins (a gap of 2)."""
    s_x = torch.tensor([[0.0, 1, 0, 1]]).repeat(3, 1)
    s_y = torch.tensor([[1.0, 0, 0, 0]]).repeat(3, 1)
    c = boundaries_crossed(s_x, s_y, torch.tensor([0.0, 2.0, 6.0]), torch.tensor(0.5))
    # offset 0: positions 0..3 carry the y-anchor's scores [1, 0, 0, 0]
    assert c[0, 0, 3].item() == 1.0 and c[0, 1, 3].item() == 0.0 and c[0, 2, 2].item() == 0
    # offset 2: positions 0, 1 from x [0, 1], positions 2..5 from y [1, 0, 0, 0]
    assert c[1, 0, 0].item() == 1.0  # position 0 -> 2: crosses position 1
    assert c[1, 0, 1].item() == 2.0  # 0 -> 3: positions 1 and 2
    assert c[1, 3, 0].item() == 1.0  # position 3 vs 2: |cum(2) - cum(3)| = position 2
    # offset 6: x 0..3 [0, 1, 0, 1], gap 4, 5 [0.5, 0.5], y 6..9 [1, 0, 0, 0]
    assert c[2, 0, 0].item() == 3.0  # positions 1, 3, 4, 5 -> 1 + 1 + 0.5 + 0.5
    assert c[2, 3, 1].item() == 3.0  # positions 3, 4, 5, 6 -> 1 + 0.5 + 0.5 + 1
    assert (c >= 0).all()


def test_map_prediction_depends_on_offset():
    torch.manual_seed(0)
    model = FinetuneModel(_cfg(), task="hic", mode="epi").eval()
    with torch.no_grad():
        model.head.expected.table.copy_(torch.linspace(1, 0, model.head.expected.n)[:, None])
        epi = torch.randn(2, 1, 2 * L)
        near = model.predict(epi, offset=torch.zeros(2))
        far = model.predict(epi, offset=torch.full((2,), 200.0))
    assert not torch.allclose(near, far)
    assert (near.mean() > far.mean()).item()


def _loop_windows(n: int, rng: np.random.Generator):
    """Decay maps with noise; positives have an enriched centre pixel, negatives are
    either plain or uniformly brighter (high contact, no local peak)."""
    i = np.arange(W)
    off = rng.integers(5, 40, size=n)
    d = np.abs(off[:, None, None] + i[None, None, :] - i[None, :, None])
    base = 1.0 - 0.2 * np.log1p(d) + rng.normal(0, 0.03, size=(n, W, W))
    y = rng.integers(0, 2, size=n)
    c = W // 2
    for k in range(n):
        if y[k]:
            base[k, c - 1 : c + 2, c - 1 : c + 2] += 0.08
            base[k, c, c] += 0.12
        elif rng.random() < 0.5:
            base[k] += 0.2  # high contact everywhere: o/e unchanged
    hic = torch.tensor(base, dtype=torch.float32)
    return hic, torch.tensor(off, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)


def test_loop_contrast_features_match_hand_computation():
    rng = np.random.default_rng(1)
    m = rng.random((1, 11, 11)).astype(np.float32)
    f = loop_contrast_features(torch.tensor(m), radius=3, inner=1).numpy()[0]
    c = 5
    diag = np.diagonal(m[0])
    assert f[0] == pytest.approx(m[0, c, c])
    assert f[1] == pytest.approx(m[0, c, c] - (diag.sum() - m[0, c, c]) / 10, abs=1e-6)
    donut = [m[0, c + a, c + b] for a in range(-3, 4) for b in range(-3, 4)
             if (abs(a) > 1 or abs(b) > 1) and a != 0 and b != 0]
    ll = [m[0, c + a, c + b] for a in range(2, 4) for b in range(-3, -1)]
    assert f[2] == pytest.approx(m[0, c, c] - np.mean(donut), abs=1e-6)
    assert f[3] == pytest.approx(m[0, c, c] - np.mean(ll), abs=1e-6)


def test_loop_contrast_features_leave_masked_bins_out():
    """A masked bin (its row or column all zeros) is no contact: every mean skips it, and a
    contrast with nothing observed to compare with is 0."""
    rng = np.random.default_rng(2)
    m = rng.random((1, 11, 11)) + 0.5
    c = 5
    m[0, 7, :] = 0.0  # x-anchor bin 7 masked: a row of zeros
    m[0, :, 2] = 0.0  # y-anchor bin 2 masked: a column of zeros
    f = loop_contrast_features(torch.tensor(m), radius=3, inner=1).numpy()[0]
    diag = [m[0, i, i] for i in range(11) if i not in (c, 7, 2)]
    donut = [m[0, c + a, c + b] for a in range(-3, 4) for b in range(-3, 4)
             if (abs(a) > 1 or abs(b) > 1) and a != 0 and b != 0
             and c + a != 7 and c + b != 2]
    ll = [m[0, c + a, c + b] for a in range(2, 4) for b in range(-3, -1)
          if c + a != 7 and c + b != 2]
    assert f[1] == pytest.approx(m[0, c, c] - np.mean(diag))
    assert f[2] == pytest.approx(m[0, c, c] - np.mean(donut))
    assert f[3] == pytest.approx(m[0, c, c] - np.mean(ll))
    # the lower-left box's rows (c+2, c+3) both masked: nothing to compare with
    m[0, c + 2 : c + 4, :] = 0.0
    g = loop_contrast_features(torch.tensor(m), radius=3, inner=1).numpy()[0]
    assert g[3] == 0.0 and np.isfinite(g).all()


@pytest.mark.parametrize("mode", ["nonpre"])
def test_loop_head_learns_centre_pixel_contrast(mode):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = FinetuneModel(_cfg(), task="loops", mode=mode)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(50):
        hic, off, y = _loop_windows(16, rng)
        loss = model.loss(model(torch.randn(16, 1, 2 * L), hic, off), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    hic, off, y = _loop_windows(200, rng)
    with torch.no_grad():
        p = model.predict(torch.randn(200, 1, 2 * L), hic, off)
    assert roc_auc_score(y.numpy(), p.numpy()) > 0.95


def test_loop_head_trains_on_a_batch_of_one():
    model = FinetuneModel(_cfg(), task="loops", mode="bimodal").train()
    hic, off, _ = _loop_windows(1, np.random.default_rng(0))
    out = model(torch.randn(1, 1, 2 * L), hic, off)
    assert out.shape == (1,) and torch.isfinite(out).all()


def test_offset_shape_is_checked():
    model = FinetuneModel(_cfg(), task="loops", mode="epi")
    with pytest.raises(ValueError, match="offset"):
        model(torch.randn(2, 1, 2 * L), offset=torch.zeros(3))


def test_pos_weight_balances_the_loop_loss():
    model = FinetuneModel(_cfg(), task="loops", mode="epi")
    pred = torch.zeros(4)
    y = torch.tensor([1.0, 0.0, 0.0, 0.0])
    plain = model.loss(pred, y)
    weighted = model.loss(pred, y, pos_weight=3.0)
    # logit 0: every row costs ln 2; the positive row counts 3x
    assert weighted.item() == pytest.approx(plain.item() * 6 / 4, rel=1e-5)


def test_map_head_starts_from_a_measured_decay():
    model = FinetuneModel(_cfg(), task="hic", mode="epi").eval()
    d = np.arange(0, 200)
    model.head.init_expected(d, 1.0 - 0.2 * np.log1p(d))
    with torch.no_grad():
        out = model.head.expected(torch.tensor([0.0, 3.0, 50.0, 1e6])).squeeze(-1)
    want = 1.0 - 0.2 * np.log1p([0.0, 3.0, 50.0, 199.0])
    np.testing.assert_allclose(out.numpy(), want, atol=0.02)


def test_untrained_bimodal_loop_head_ranks_like_the_contrast_baseline():
    from mixhic.platform.baselines import loop_baseline_scores

    torch.manual_seed(0)
    model = FinetuneModel(_cfg(), task="loops", mode="bimodal")
    hic, off, y = _loop_windows(256, np.random.default_rng(3))
    epi = torch.randn(256, 1, 2 * L)
    model.train()
    with torch.no_grad():
        model(epi, hic, off)  # one batch sets the feature statistics
    model.eval()
    with torch.no_grad():
        p = model.predict(epi, hic, off).numpy()
    base = loop_baseline_scores(hic.numpy(), epi.numpy(), W)
    assert roc_auc_score(y.numpy(), p) > 0.9
    assert roc_auc_score(y.numpy(), p) >= roc_auc_score(y.numpy(), base[:, 0]) - 0.05


def test_loop_head_starts_from_a_fitted_contrast_detector():
    """With ``set_contrast_prior`` the untrained head's linear path is the logistic fit it
    was given, here one that reads the lower-left contrast, which neither o/e nor the donut
    default would weigh; the learned path adds to it without drowning it."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    hic, off, _ = _loop_windows(400, rng)
    c = W // 2
    y = rng.integers(0, 2, size=400)
    hic[torch.tensor(y == 1), c + 2 : c + 6, c - 5 : c - 1] -= 0.3  # darker lower-left
    epi = torch.randn(400, 1, 2 * L)
    feats = loop_features(hic, epi).double().numpy()
    assert feats.shape == (400, 5)
    mean, var = feats.mean(0), feats.var(0) + 1e-5
    fit = LogisticRegression().fit((feats - mean) / np.sqrt(var), y)
    torch.manual_seed(0)
    model = FinetuneModel(_cfg(), task="loops", mode="nonpre")
    model.head.set_contrast_prior(fit.coef_[0], fit.intercept_[0], mean, var)
    model.eval()
    with torch.no_grad():
        logits = model(epi, hic, off).numpy()
    expected = fit.decision_function((feats - mean) / np.sqrt(var))
    head = model.head
    with torch.no_grad():
        skip = head.contrast_skip(F.batch_norm(
            loop_features(hic, epi), head.contrast_norm.running_mean,
            head.contrast_norm.running_var, eps=head.contrast_norm.eps)).squeeze(-1).numpy()
    np.testing.assert_allclose(skip, expected, rtol=1e-3, atol=1e-3)  # the linear path
    assert np.corrcoef(logits, expected)[0, 1] > 0.9
    assert roc_auc_score(y, logits) == pytest.approx(roc_auc_score(y, expected), abs=0.03)
    assert roc_auc_score(y, feats[:, 3]) > 0.9 > roc_auc_score(y, feats[:, 1])
    with pytest.raises(ValueError, match="epi-only"):
        FinetuneModel(_cfg(), task="loops", mode="epi").head.set_contrast_prior(
            fit.coef_[0], 0.0, mean, var)


def test_anchor_signal_is_the_centre_bin_mean_of_both_anchors():
    rng = np.random.default_rng(2)
    epi = rng.random((3, 2, 2 * L))
    k, c = L // W, W // 2
    want = (epi[:, :, c * k : (c + 1) * k].mean(-1).sum(1)
            + epi[:, :, L + c * k : L + (c + 1) * k].mean(-1).sum(1))
    np.testing.assert_allclose(anchor_signal(torch.tensor(epi), W).numpy(), want, rtol=1e-12)


def _crossed_by_hand(s_x, s_y, off, gap):
    """boundaries_crossed, pixel by pixel, position by position."""
    B, W = s_x.shape
    out = torch.zeros(B, W, W)
    for k in range(B):
        o = int(off[k])

        def strength(p):
            if o <= p < o + W:
                return s_y[k, p - o]
            return s_x[k, p] if 0 <= p < W else gap

        for i in range(W):
            for j in range(W):
                a, b = sorted((i, o + j))
                out[k, i, j] = sum(float(strength(p)) for p in range(a, b))
    return out


def test_boundaries_crossed_equals_a_position_by_position_sum():
    """Random scores, offsets negative, overlapping, adjacent and far apart."""
    torch.manual_seed(0)
    off = torch.tensor([-9.0, -3.0, 0.0, 2.0, 6.0, 7.0, 25.0])
    s_x, s_y = torch.rand(len(off), 7), torch.rand(len(off), 7)
    got = boundaries_crossed(s_x, s_y, off, torch.tensor(0.3))
    torch.testing.assert_close(got, _crossed_by_hand(s_x, s_y, off, 0.3))
    # no offset: windows on the diagonal
    torch.testing.assert_close(boundaries_crossed(s_x, s_y, None, torch.tensor(0.3)),
                               _crossed_by_hand(s_x, s_y, torch.zeros(len(off)), 0.3))
