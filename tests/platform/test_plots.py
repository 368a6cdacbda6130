"""Every figure writes a non-empty PNG of the expected size, readable by matplotlib."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib.figure import Figure

from mixhic.platform import plots


def _check_png(path, fig, min_px=200):
    assert isinstance(fig, Figure)
    assert path.is_file() and path.stat().st_size > 1000
    img = mpimg.imread(path)
    w_in, h_in = fig.get_size_inches()
    assert img.shape[:2] == (round(h_in * fig.dpi), round(w_in * fig.dpi))
    assert min(img.shape[:2]) >= min_px
    assert img[..., :3].std() > 0  # something was drawn


def test_hic_pairs_figure(tmp_path):
    rng = np.random.default_rng(0)
    t = rng.random((3, 20, 20))
    fig = plots.hic_pairs_figure(t, t * 0.5, ["a", "b", "c"], path=tmp_path / "p" / "hic.png")
    _check_png(tmp_path / "p" / "hic.png", fig)
    # the true and predicted map of a column share the colour scale
    ims = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(ims) == 6
    assert ims[0].get_clim() == ims[3].get_clim()
    with pytest.raises(ValueError, match="titles"):
        plots.hic_pairs_figure(t, t, ["a"])


def test_roc_pr_figure(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(0.4 * y + 0.6 * rng.random(200), 0, 1)
    fig = plots.roc_pr_figure(y, p, path=tmp_path / "roc.png")
    _check_png(tmp_path / "roc.png", fig)
    # single class: drawn with a note, no crash
    fig = plots.roc_pr_figure(np.ones(5), np.linspace(0, 1, 5), path=tmp_path / "one.png")
    _check_png(tmp_path / "one.png", fig)


def test_cage_scatter_figure(tmp_path):
    rng = np.random.default_rng(0)
    t = rng.gamma(1.0, size=(50, 30))
    fig = plots.cage_scatter_figure(t, t + rng.normal(size=t.shape), path=tmp_path / "c.png",
                                    max_points=500)
    _check_png(tmp_path / "c.png", fig)
    assert len(fig.axes[0].collections[0].get_offsets()) == 500


def test_loss_curves_figure(tmp_path):
    fig = plots.loss_curves_figure({"train_loss": [3, 2, 1.5], "val_loss": [3.2, 2.5, 2.4]},
                                   path=tmp_path / "loss.png")
    _check_png(tmp_path / "loss.png", fig)
    assert len(fig.axes[0].lines) == 2
    with pytest.raises(ValueError, match="empty"):
        plots.loss_curves_figure({})


def test_weights_vs_metric_figure(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"con": c, "orth": o, "map": m, "pearson": c - m}
            for c, o, m in rng.random((8, 3))]
    fig = plots.weights_vs_metric_figure(rows, ["con", "orth", "map"], "pearson",
                                         path=tmp_path / "sweep.png")
    _check_png(tmp_path / "sweep.png", fig)
    assert sum(ax.get_visible() for ax in fig.axes) == 3
    with pytest.raises(ValueError, match="lacks"):
        plots.weights_vs_metric_figure([{"con": 1}], ["con"], "pearson")
