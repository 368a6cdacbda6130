"""The region viewer without Ray: regions, what it reads and predicts, the page, the files.

The served page and the real browser are in ``test_viewer_browser.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from mixhic.core.errors import MixHicError
from mixhic.serve import viewer, viewer_page
from mixhic.serve.viewer import Loop, Region, RegionError, RegionView, parse_view_region
from serve_helpers import RES, W, cached_genome, cached_models, independent_window

SIZES = {"chr1": 1_000_000, "chr2": 620_003}


# --------------------------------------------------------------------------- regions


@pytest.mark.parametrize("text, expected", [
    ("chr1:0-500000", ("chr1", 0, 500_000)),
    ("chr1:1-500,000", ("chr1", 0, 500_000)),  # start rounded down, commas
    ("1:12345-300001", ("chr1", 10_000, 305_000)),  # other spelling; end rounded up
    ("chr2", ("chr2", 0, 620_000)),  # a whole chromosome: its whole bins
    ("chr2:600000-700000", ("chr2", 520_000, 620_000)),  # clipped, widened to a window
    ("chr1:0-5000", ("chr1", 0, 100_000)),  # widened to one window (20 bins)
])
def test_regions_snap_to_bins(text, expected):
    reg = parse_view_region(text, SIZES, RES, min_bins=W, max_bins=200)
    assert (reg.chrom, reg.start, reg.end) == expected
    assert reg.n_bins == (reg.end - reg.start) // RES >= W


@pytest.mark.parametrize("text, words", [
    ("chr1:500-100", ["chr1:500-100", "greater"]),
    ("chr1:zero-100", ["chr1:zero-100", "expected chrom:start-end"]),
    ("chrZ:0-100000", ["chrZ:0-100000", "unknown chromosome", "chr1"]),
    ("chr1:2000000-2100000", ["chr1:2000000-2100000", "past the end"]),
    ("chr1:0-1000000", ["chr1:0-1000000", "200 bins", "at most 100 bins"]),
    ("chr1:0-1 00", ["expected chrom:start-end"]),
    ("data/regions.bed", ["expected chrom:start-end"]),
    ("", ["expected chrom:start-end"]),
])
def test_bad_regions_are_named(text, words):
    with pytest.raises(RegionError) as err:
        parse_view_region(text, SIZES, RES, min_bins=W, max_bins=100)
    for w in words:
        assert w in str(err.value)


# --------------------------------------------------------------------------- the page


def _synthetic_view(n: int = 40) -> RegionView:
    rng = np.random.default_rng(0)
    m = rng.uniform(0, 0.5, (n, n))
    m = (m + m.T) / 2
    pred = m.copy()
    pred[np.abs(np.subtract.outer(np.arange(n), np.arange(n))) >= 20] = np.nan
    m[5, :] = m[:, 5] = np.nan
    reg = Region("chr1", 100_000, 100_000 + n * RES, RES)
    return RegionView(
        region=reg, observed=m, predicted=pred,
        predicted_loops=[Loop("predicted", "chr1", 120_000, 125_000, 180_000, 185_000, 0.91),
                         Loop("predicted", "chr1", 130_000, 135_000, 250_000, 255_000, 0.62)],
        known_loops=[Loop("known", "chr1", 120_000, 125_000, 185_000, 190_000)],
        tracks={"atac": rng.gamma(1, 1, n * 20), "dnase": rng.gamma(1, 1, n * 20)},
        track_bin=250, cage=rng.uniform(0, 3, n),
        models=[{"name": "mixhic-hic <b>", "version": "3", "source": "models:/mixhic-hic@champion",
                 "task": "hic", "mode": "infer", "preset": "tiny", "run_id": "abc123",
                 "resolution": RES, "window_bins": 20, "epi_bins": 400, "epi_bin": 250,
                 "tracks": ["atac", "dnase"]}],
        data_files={"Hi-C": "/data/genome.mcool::resolutions/5000", "track atac": "/data/a.bw"},
        notes=["a note"], hic_scale="log1p_fixed (cap 255)",
    )


def test_page_is_self_contained_with_stable_hooks():
    page = viewer_page.render_region_html(_synthetic_view())
    assert page.startswith("<!doctype html>")
    for hook in ('id="contact-map"', 'id="tracks"', 'id="identity"', 'id="loops"',
                 'id="track-atac"', 'id="track-dnase"', 'id="track-predicted-cage"'):
        assert hook in page, hook
    # offline: no script, no fetched resource (SVG namespace URIs are not fetched)
    assert "<script" not in page.lower()
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "@import" not in page and "url(http" not in page
    marks = re.findall(r'<g id="loop-(known|predicted)-\d+" class="loop-mark[^"]*" '
                       r'data-kind="(\w+)"', page)
    assert sorted(k for k, _ in marks) == ["known", "predicted", "predicted"]
    assert all(a == b for a, b in marks)
    assert page.count('class="loop-row') == 3
    assert 'data-start1="120000" data-start2="180000" data-probability="0.9100"' in page
    # identity: names escaped, the URI, the run, the files
    assert "mixhic-hic &lt;b&gt;" in page and "<b>" not in page.split("<style>")[0]
    for text in ("models:/mixhic-hic@champion", "abc123", "genome.mcool::resolutions/5000",
                 "infer", "5,000 bp"):
        assert text in page
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "duplicate ids"
    fig = re.search(r'<figure id="contact-map"([^>]*)>', page).group(1)
    assert 'data-chrom="chr1"' in fig and 'data-bins="40"' in fig


def test_map_shows_observed_above_and_predicted_below_the_diagonal():
    view = _synthetic_view()
    img, vmax = viewer_page._map_image(view)
    iu = np.triu_indices(40)
    il = np.tril_indices(40, -1)
    np.testing.assert_array_equal(img[iu], view.observed[iu])
    np.testing.assert_array_equal(img[il], view.predicted[il])
    assert 0 < vmax <= 0.5


def test_report_file_and_png_when_mlflow_is_off(tmp_path):
    view = _synthetic_view()
    out = viewer_page.log_region_report(view, tmp_path / "report")
    html_path, png_path = Path(out["html"]), Path(out["png"])
    assert html_path.name == "chr1_100000_300000.html"
    page = html_path.read_text()
    assert page.startswith("<!doctype html>") and 'id="contact-map"' in page
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(html_path.parent.glob(".*tmp"))
    with pytest.raises(MixHicError, match="out_dir"):
        viewer_page.log_region_report(view)  # no run, nowhere to write


def test_report_logged_to_the_active_mlflow_run(tmp_path):
    import mlflow
    from mixhic.platform import tracking

    tracking.configure(tmp_path / "runs")
    try:
        with mlflow.start_run() as run:
            out = viewer_page.log_region_report(_synthetic_view())
        assert out == {"html": "viewer/chr1_100000_300000.html",
                       "png": "viewer/chr1_100000_300000.png"}
        names = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id,
                                                                       "viewer")}
        assert names == set(out.values())
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
        tracking._state.update(runs_dir=None, own_uri=None)


# --------------------------------------------------------------------------- real files


@pytest.fixture(scope="module")
def tiny():
    """The tiny genome, the three tiny models loaded in-process and their readers."""
    from mixhic.serve.config import GenomeFiles
    from mixhic.serve.engine import load_task_model
    from mixhic.serve.regions import GenomeWindows

    genome = cached_genome()
    files = GenomeFiles(mcool=str(genome.mcool), loops=str(genome.loops),
                        tracks={"atac": str(genome.atac), "dnase": str(genome.dnase)})
    models = {t: load_task_model(str(p), "cpu") for t, p in cached_models().items()}
    windows = {t: GenomeWindows(files, m.card) for t, m in models.items()}
    yield genome, files, models, windows
    for gw in windows.values():
        gw.close()


def _collect(tiny, region: str, **kw):
    _, files, models, windows = tiny
    return viewer.collect_region(region, {t: m.card for t, m in models.items()}, windows,
                                 lambda t, e, h, o: models[t].predict(e, h, o),
                                 known_loops=files.loops, **kw)


def test_region_is_read_and_predicted_as_the_window_routes_do(tiny):
    genome, _, models, _ = tiny
    view = _collect(tiny, "chr1:100000-400000", max_loop_windows=120)
    reg = view.region
    assert (reg.chrom, reg.start, reg.end, reg.n_bins) == ("chr1", 100_000, 400_000, 60)
    # observed = prepare's normalisation of the same bins (masked bins NaN here, 0 there)
    epi, hic = independent_window(genome, "chr1", 100_000, 100_000)
    obs = view.observed[:W, :W]
    finite = np.isfinite(obs)
    np.testing.assert_allclose(obs[finite], hic[finite], atol=1e-6)
    assert np.all(hic[~finite] == 0)
    # the first half-window is covered by the first window only: the model's own output
    first = models["hic"].predict(epi[None])[0]
    np.testing.assert_allclose(view.predicted[:W // 2, :W // 2], first[:W // 2, :W // 2],
                               atol=1e-5)
    # pixels a window never covers: no prediction
    assert np.isnan(view.predicted[0, W]) and np.isfinite(view.predicted[0, W - 1])
    # tracks: the model's inputs over the region, aligned to the map's bins
    assert set(view.tracks) == {"atac", "dnase"}
    per_bin = models["hic"].card.epi_bins // W
    np.testing.assert_allclose(view.tracks["atac"][: W * per_bin], epi[0, : W * per_bin],
                               atol=1e-6)
    assert view.cage is not None and view.cage.shape == (60,)
    # known loops: exactly the truth bedpe's loops inside the region
    from mixhic.pipelines.bed_reader import read_bedpe

    bp = read_bedpe(str(genome.loops))
    inside = ((bp["chrom1"] == "chr1") & (bp["start1"] >= 100_000) & (bp["end2"] <= 400_000))
    assert sorted(lp.start1 for lp in view.known_loops) == sorted(bp["start1"][inside])
    # predicted loops: inside the region, anchors on bins, probabilities
    for lp in view.predicted_loops:
        assert reg.start <= lp.start1 < lp.start2 < reg.end
        assert lp.start1 % RES == 0 and 0.5 <= lp.probability <= 1
    assert any(n.startswith("loops:") for n in view.notes)
    ids = {m["task"] for m in view.models}
    assert ids == {"hic", "loops", "cage"}
    assert view.data_files["known loops"] == str(genome.loops)


def test_loop_scan_is_bounded(tiny):
    calls = []
    _, files, models, windows = tiny

    def predict(task, epi, hic, offset):
        calls.append((task, len(epi)))
        return models[task].predict(epi, hic, offset)

    view = viewer.collect_region("chr1", {"loops": models["loops"].card}, windows, predict,
                                 max_loop_windows=60, batch_size=16)
    assert view.region.n_bins == windows["loops"].chromsizes["chr1"] // RES
    assert view.observed is not None
    assert view.predicted is None and view.cage is None  # no such model given
    loop_windows = sum(n for t, n in calls if t == "loops")
    assert {t for t, _ in calls} == {"loops"}
    assert 0 < loop_windows <= 60
    assert max(n for _, n in calls) <= 16


# --------------------------------------------------------------------------- the route


class _Backend:
    """A backend for build_api without models: ``/view`` answers from ``page``."""

    def __init__(self, genome: bool = True, page=None) -> None:
        self.region_requests = genome
        self.calls: list[tuple[str, int]] = []
        if page is not None:
            async def view(region: str, loop_windows: int) -> str:
                self.calls.append((region, loop_windows))
                return page(region)

            self.view = view

    async def cards(self):
        return {}


def _get(backend, **params):
    from fastapi.testclient import TestClient
    from mixhic.serve.api import build_api

    with TestClient(build_api(backend)) as client:
        return client.get("/view", params=params)


def _bad_region(region: str) -> str:
    raise RegionError(f"region {region!r}: unknown chromosome 'chrZ'")


def test_view_route_answers_html_and_names_the_region_in_errors():
    ok = _Backend(page=lambda region: f"<!doctype html><p>{region}</p>")
    r = _get(ok, region="chr1:0-100000", loop_windows=0)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert ok.calls == [("chr1:0-100000", 0)]
    assert _get(ok, region="chr1:0-1").status_code == 200
    assert ok.calls[-1] == ("chr1:0-1", viewer.MAX_LOOP_WINDOWS)
    for params in ({}, {"region": "chr1:0-1", "loop_windows": -1},
                   {"region": "chr1:0-1", "loop_windows": 10**6}):
        r = _get(ok, **params)
        assert r.status_code == 422, params
        assert r.json()["detail"][0]["loc"][0] == "query"

    r = _get(_Backend(page=_bad_region), region="chrZ:0-5")
    assert r.status_code == 422
    assert r.json()["detail"] == [{"loc": ["query", "region"], "type": "value_error",
                                   "msg": "region: 'chrZ:0-5': unknown chromosome 'chrZ'"}]
    r = _get(_Backend(genome=False, page=_bad_region), region="chr1:0-5")
    assert r.status_code == 400 and "genome.mcool" in r.text
    r = _get(_Backend(), region="chr1:0-5")
    assert r.status_code == 404 and "no region viewer" in r.text


def test_predict_report_regions():
    """``mixhic predict --report`` shows the run's regions (the pages themselves:
    ``tests/test_api.py``, through ``mixhic.predict_region``)."""
    from mixhic.serve.config import PredictConfig
    from mixhic.serve.predict import config_from_args

    assert config_from_args(["--report", "--out", "x"]).out_dir == "x"  # parsed beside it
    sizes = {"chr1": 10_000_000, "chr2": 620_003}
    assert viewer.report_regions(PredictConfig(regions=("chr2:100000-300000",)), sizes,
                                 RES) == ["chr2:100000-300000"]
    assert viewer.report_regions(PredictConfig(), sizes, RES) == ["chr1:0-2000000"]
    # a run's region larger than a page: its first 2 Mb / MAX_VIEW_BINS bins
    big = viewer.report_regions(PredictConfig(regions=("chr1:5000-1100000",)), sizes, 1000)
    assert big == [f"chr1:5000-{5000 + viewer.MAX_VIEW_BINS * 1000}"]
