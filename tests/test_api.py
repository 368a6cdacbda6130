"""The notebook API (``mixhic.prepare``, ``load_model``, ``predict_region``) and the
commands that call it (``mixhic prepare``, ``mixhic predict --report``).

Predictions are compared with what the Serve paths compute for the same inputs (the
``/view`` page's :func:`~mixhic.serve.viewer.collect_region`, the ``/v1`` routes' window
reads and the engine's forward): properties, not golden numbers. Unit tests start no Ray;
``test_prepare_command_goes_through_the_api`` runs a prepare on the session's local Ray.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mixhic.core.config import ConfigError
from mixhic.core.errors import MixHicError

sys.path.insert(0, str(Path(__file__).parent / "serve"))  # the serve tests' tiny fixtures
from serve_helpers import RES, W, cached_genome, cached_models, independent_window  # noqa: E402

REGION = "chr1:100,000-400,000"  # 60 bins of 5 kb; windows of W = 20 bins


def test_import_mixhic_is_cheap_and_lists_the_api():
    code = ("import mixhic, sys; assert 'torch' not in sys.modules and 'ray' not in "
            "sys.modules; print(mixhic.__all__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parent)
    assert out.stdout.strip() == "['prepare', 'load_model', 'predict_region']"
    import mixhic

    assert {"prepare", "load_model", "predict_region"} <= set(dir(mixhic))
    assert mixhic.predict_region.__module__ == "mixhic._predict"
    with pytest.raises(AttributeError, match="no_such_name"):
        mixhic.no_such_name  # noqa: B018


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tiny():
    """The tiny genome's files and the three tiny models, loaded through the API."""
    import mixhic

    genome = cached_genome()
    files = {"hic": str(genome.mcool),
             "tracks": {"atac": str(genome.atac), "dnase": str(genome.dnase)}}
    models = {t: mixhic.load_model(p) for t, p in cached_models().items()}
    return genome, files, models


def _serve_view(models: dict, region: str, genome, **kw):
    """What the Serve ``/view`` route computes for ``region`` (files opened as it does)."""
    from mixhic.serve import viewer
    from mixhic.serve.config import GenomeFiles
    from mixhic.serve.regions import GenomeWindows

    files = GenomeFiles(mcool=str(genome.mcool), loops=str(genome.loops),
                        tracks={"atac": str(genome.atac), "dnase": str(genome.dnase)})
    windows = {t: GenomeWindows(files, m.card) for t, m in models.items()}
    try:
        return viewer.collect_region(region, {t: m.card for t, m in models.items()}, windows,
                                     lambda t, e, h, o: models[t].predict(e, h, o),
                                     known_loops=files.loops, **kw)
    finally:
        for gw in windows.values():
            gw.close()


# --------------------------------------------------------------------------- load_model


def test_load_model_gives_the_serve_engine_model(tiny):
    from mixhic.serve.engine import TaskModel

    _, _, models = tiny
    for task, m in models.items():
        assert isinstance(m, TaskModel) and m.card.task == task and m.device == "cpu"
        assert m.card.hic_shape == (W, W) and m.card.tracks == ("atac", "dnase")


def test_load_model_errors_name_the_source(tmp_path):
    import mixhic

    with pytest.raises(MixHicError, match=r"nowhere: model directory not found"):
        mixhic.load_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MixHicError, match="empty"):
        mixhic.load_model(tmp_path / "empty")


# --------------------------------------------------------------------------- regions


def test_region_prediction_is_the_serve_view_of_the_region(tiny):
    """Every array is what the ``/view`` route computes; the map's first half-window is
    the model's output on the ``/v1/hic`` region window (``request_window``)."""
    import mixhic

    genome, files, models = tiny
    out = mixhic.predict_region(models, REGION, known_loops=genome.loops, max_loop_windows=60,
                                **files)
    n = 60
    assert out["region"] == "chr1:100000-400000"
    np.testing.assert_array_equal(out["bin_starts"], 100_000 + RES * np.arange(n))
    per_bin = models["hic"].card.epi_bins // W
    shapes = {"observed": (n, n), "hic": (n, n), "cage": (n,), "tracks": (2, n * per_bin)}
    assert {k: out[k].shape for k in shapes} == shapes
    assert out["loops"].shape[1] == 4 and out["loops"].dtype == np.int64
    assert out["loop_probability"].shape == (len(out["loops"]),)
    assert np.all((out["loop_probability"] >= 0.5) & (out["loop_probability"] <= 1))
    assert out["known_loops"].shape[1] == 4

    view = _serve_view(models, REGION, genome, max_bins=mixhic._predict.MAX_REGION_BINS,
                       max_loop_windows=60)
    np.testing.assert_array_equal(out["hic"], view.predicted)
    np.testing.assert_array_equal(out["observed"], view.observed)
    np.testing.assert_array_equal(out["cage"], view.cage)
    np.testing.assert_array_equal(out["tracks"], np.stack([view.tracks["atac"],
                                                           view.tracks["dnase"]]))
    assert [tuple(r) for r in out["loops"]] == [(lp.start1, lp.end1, lp.start2, lp.end2)
                                                for lp in view.predicted_loops]
    assert len(out["known_loops"]) == len(view.known_loops)

    # the /v1/hic region request of the first window (GenomeWindows.request_window)
    from mixhic.serve.config import GenomeFiles
    from mixhic.serve.regions import GenomeWindows

    gw = GenomeWindows(GenomeFiles(mcool=files["hic"], tracks=files["tracks"]),
                       models["hic"].card)
    try:
        epi, _, echo = gw.request_window("chr1", 100_000)
    finally:
        gw.close()
    first = models["hic"].predict(epi[None])[0]
    h = W // 2
    np.testing.assert_allclose(out["hic"][:h, :h], first[:h, :h], atol=1e-5)
    assert echo.x_start == 100_000
    # the inputs are prepare's: cooler/pyBigWig read directly + prepare's transforms
    epi_ref, hic_ref = independent_window(genome, "chr1", 100_000, 100_000)
    np.testing.assert_allclose(out["tracks"][:, :W * per_bin], epi_ref[:, :W * per_bin],
                               atol=1e-6)
    finite = np.isfinite(out["observed"][:W, :W])
    np.testing.assert_allclose(out["observed"][:W, :W][finite], hic_ref[finite], atol=1e-6)


def test_one_model_and_track_paths_in_model_order(tiny):
    import mixhic

    genome, files, models = tiny
    out = mixhic.predict_region(models["hic"], "chr2:0-150000", hic=Path(files["hic"]),
                                tracks=[genome.atac, genome.dnase])
    assert set(out) == {"region", "bin_starts", "tracks", "observed", "hic"}
    assert out["hic"].shape == (30, 30)
    # no Hi-C file: an infer-mode model predicts from the tracks alone
    no_hic = mixhic.predict_region(models["hic"], "chr2:0-150000", tracks=files["tracks"])
    assert "observed" not in no_hic
    np.testing.assert_array_equal(no_hic["hic"], out["hic"])


@pytest.mark.parametrize("kwargs, words", [
    ({"region": "chrZ:0-100000"}, ["chrZ", "unknown chromosome"]),
    ({"region": "chr1:0-1000000", "max_bins": 100}, ["200 bins", "at most 100"]),
    ({"tracks": "atac only"}, ["tracks: no file for track 'dnase'"]),
    ({"tracks": ["a.bw"]}, ["tracks: the model takes 2 tracks (atac, dnase), 1 given"]),
    ({"tracks": None}, ["tracks: the bigWig files"]),
    ({"hic": "absent.mcool"}, ["absent.mcool"]),
    ({"epi": np.zeros((2, 800))}, ["epi: arrays or a region"]),
    ({"scan": {"min_probabilty": 0.3}}, ["scan", "min_probabilty"]),
])
def test_region_errors_name_the_argument(tiny, kwargs, words):
    import mixhic

    _, files, models = tiny
    args = {"region": "chr1:0-200000", **files, **kwargs}
    if args["tracks"] == "atac only":
        args["tracks"] = {"atac": files["tracks"]["atac"]}
    with pytest.raises((MixHicError, ConfigError)) as err:
        mixhic.predict_region(models["hic"], args.pop("region"), **args)
    for w in words:
        assert w in str(err.value)


def test_bimodal_model_needs_the_hic_file(tiny):
    import mixhic

    _, files, models = tiny
    with pytest.raises(MixHicError, match=r"^hic: the loops model \(bimodal\) needs a Hi-C"):
        mixhic.predict_region(models["loops"], "chr1:0-200000", tracks=files["tracks"])
    with pytest.raises(MixHicError, match="two hic models"):
        mixhic.predict_region([models["hic"], models["hic"]], "chr1:0-200000", **files)


# --------------------------------------------------------------------------- arrays


def test_arrays_go_through_the_engine_with_the_routes_checks(tiny):
    import mixhic

    genome, _, models = tiny
    epi, hic = independent_window(genome, "chr1", 100_000, 100_000)  # (C, 2L), (W, W)
    out = mixhic.predict_region(models["hic"], epi=epi)
    assert set(out) == {"hic"} and out["hic"].shape == (W, W)
    np.testing.assert_allclose(out["hic"], models["hic"].predict(epi[None])[0], atol=1e-6)
    # a batch gives a batch, each row its window's output (batch-size invariance)
    batch = mixhic.predict_region(models["cage"], epi=np.stack([epi, epi * 0.5]),
                                  hic=np.stack([hic, hic]))
    assert batch["cage"].shape == (2, W)
    single = mixhic.predict_region(models["cage"], epi=epi * 0.5, hic=hic)
    np.testing.assert_allclose(batch["cage"][1], single["cage"], atol=1e-5)
    # the loops model on an off-diagonal window: offset reaches the model
    e2, h2 = independent_window(genome, "chr1", 100_000, 150_000)
    p = mixhic.predict_region(models["loops"], epi=e2, hic=h2, offset=10)
    assert p["loop_probability"].shape == ()
    ref = models["loops"].predict(e2[None], h2[None], np.array([10.0]))[0]
    np.testing.assert_allclose(p["loop_probability"], ref, atol=1e-6)


@pytest.mark.parametrize("task, kwargs, words", [
    ("hic", {"epi": np.zeros((2, 10))}, ["epi: expected shape [2, 800]"]),
    ("hic", {"epi": np.zeros(3)}, ["epi: expected 2 axes"]),
    ("loops", {"epi": np.zeros((2, 800))}, ["hic: required"]),
    ("loops", {"epi": np.zeros((2, 800)), "hic": np.full((W, W), np.nan)}, ["hic:", "not finite"]),
    ("hic", {"epi": np.full((2, 800), 1e9)}, ["epi:", "exceed"]),
    ("hic", {"epi": np.zeros((2, 800)), "offset": -1}, ["offset:", ">= 0"]),
    ("hic", {"epi": np.zeros((3, 2, 800)), "offset": [1, 2]}, ["offset: one number or one"]),
    ("hic", {"epi": np.zeros((2, 800)), "hic": "x.mcool"}, ["hic: a file path needs a region"]),
    ("hic", {}, ["region: give a region"]),
])
def test_array_errors_name_the_field(tiny, task, kwargs, words):
    import mixhic

    _, _, models = tiny
    with pytest.raises(MixHicError) as err:
        mixhic.predict_region(models[task], **kwargs)
    for w in words:
        assert w in str(err.value)


# --------------------------------------------------------------------------- the commands


def test_prepare_and_predict_commands_are_the_api_modules():
    import importlib

    from mixhic.platform.cli import COMMANDS

    assert COMMANDS["prepare"][0] == "mixhic._prepare"
    assert COMMANDS["predict"][0] == "mixhic._predict"
    for name, (module, _) in COMMANDS.items():
        if name in ("prepare", "predict"):
            assert callable(importlib.import_module(module).cli_main), name


def test_predict_report_command_goes_through_the_api(tiny, tmp_path, monkeypatch):
    """``mixhic predict --report``: the genome-wide run (Ray; stubbed here) then one page
    per region, made by ``mixhic.predict_region`` with the run's files and models."""
    import mixhic
    import mixhic._predict as api
    from mixhic.platform.cli import main
    from mixhic.serve import predict as genome_wide

    genome, files, _ = tiny
    runs, calls = [], []
    monkeypatch.setattr(genome_wide, "predict_genome", lambda cfg: runs.append(cfg))
    real = api.predict_region

    def spy(model, region, **kw):
        calls.append((sorted(api._models(model)), region, kw))
        out = real(model, region, **kw)
        calls[-1] += (out,)
        return out

    monkeypatch.setattr(api, "predict_region", spy)
    hic_dir = str(cached_models()["hic"])
    argv = ["predict", "--checkpoint", hic_dir, "--out", str(tmp_path), "--mcool", files["hic"],
            "--track", f"atac={genome.atac}", "--track", f"dnase={genome.dnase}",
            "--region", "chr2:100000-300000", "--report", "device=cpu",
            f"genome.loops={genome.loops}"]
    assert main(argv) == 0
    assert len(runs) == 1 and runs[0].regions == ("chr2:100000-300000",)
    ((tasks, region, kw, out),) = calls
    assert tasks == ["hic"] and region == "chr2:100000-300000"
    assert kw["report"] == tmp_path / "report"
    page = tmp_path / "report" / "chr2_100000_300000.html"
    assert out["report"] == {"html": str(page), "png": str(page.with_suffix(".png"))}
    text = page.read_text()
    for hook in ('id="contact-map"', 'id="tracks"', 'id="identity"', "tiny-hic",
                 'class="loop-mark known"'):
        assert hook in text
    assert page.with_suffix(".png").stat().st_size > 10_000
    # the command's arrays are the API's for the same model, region and files
    again = mixhic.predict_region(mixhic.load_model(hic_dir), "chr2:100000-300000", **files)
    np.testing.assert_array_equal(out["hic"], again["hic"])
    np.testing.assert_array_equal(out["observed"], again["observed"])


def test_prepare_config_from_names_overrides_and_keywords(tmp_path):
    from mixhic._prepare import prepare_config
    from mixhic.core.config import load_config, resolve_config_path
    from mixhic.pipelines.prepare import PrepareConfig

    ref = load_config("prepare-demo", PrepareConfig,
                      ["root=/g", "out=/d", "inputs.hic.resolution=10000", "epi_bin=200"])
    assert prepare_config("prepare-demo", ["root=/g", "out=/d", "inputs.hic.resolution=10000",
                                           "epi_bin=200"]) == ref
    assert prepare_config("prepare-demo", {"inputs.hic.resolution": 10000}, root="/g",
                          out="/d", epi_bin=200) == ref
    assert prepare_config(ref) is ref
    assert prepare_config(ref, inputs__hic__resolution=5000).inputs.hic.resolution == 5000
    path = tmp_path / "p.yaml"
    path.write_text(resolve_config_path("prepare-demo").read_text())
    assert prepare_config(path, root="/g", out="/d", epi_bin=200,
                          inputs__hic__resolution=10000) == ref
    with pytest.raises(ConfigError, match=r"prepare-demo.yaml: .*epi_bins"):
        prepare_config("prepare-demo", epi_bins=3)
    with pytest.raises(ConfigError, match=r"inputs.hic.resolution: expected an integer"):
        prepare_config("prepare-demo", inputs__hic__resolution="fine")


def test_prepare_command_goes_through_the_api(ray_local, tmp_path, monkeypatch):
    """``mixhic prepare`` runs ``mixhic.prepare`` (on the session's Ray); the API called
    again with the same settings as keywords finds the command's output up to date."""
    import mixhic
    import mixhic._prepare as api
    from mixhic.core.config import parse_overrides
    from mixhic.pipelines.manifest import read_manifest
    from mixhic.platform.cli import main

    genome = cached_genome()
    calls = []
    real = api.prepare

    def spy(config, overrides=(), **keys):
        calls.append((config, list(overrides), keys))
        calls[-1] += (real(config, overrides, **keys),)
        return calls[-1][-1]

    monkeypatch.setattr(api, "prepare", spy)
    # main() ends with shutdown_ray(): keep the session's Ray for the tests after this one
    monkeypatch.setattr("mixhic.platform.cli.shutdown_ray", lambda: None)
    out = tmp_path / "data"
    args = [f"root={genome.mcool.parent}", f"out={out}", "window_bins=20", "epi_bin=250",
            "splits.test=[]", "datasets.pretrain.step_bp=100000",
            "datasets.hic.enabled=false", "datasets.cage.enabled=false"]
    assert main(["prepare", "prepare-demo", *args]) == 0
    ((config, overrides, keys, manifest),) = calls
    assert (config, overrides, keys) == ("prepare-demo", list(parse_overrides(args)), {})
    assert read_manifest(str(out)).fingerprint == manifest.fingerprint
    assert manifest.datasets == ["pretrain", "loops"]
    assert manifest.shapes["hic"] == [20, 20] and manifest.shapes["epi"] == [2, 800]
    assert manifest.total_rows("pretrain") > 0
    again = mixhic.prepare("prepare-demo", root=str(genome.mcool.parent), out=str(out),
                           window_bins=20, epi_bin=250, splits__test=[],
                           datasets__pretrain__step_bp=100_000, datasets__hic__enabled=False,
                           datasets__cage__enabled=False)
    assert again.fingerprint == manifest.fingerprint and again.rows == manifest.rows
    assert ray_local.is_initialized()
