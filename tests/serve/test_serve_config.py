"""Serve/predict configs, the `serve deploy` file, and the API without Ray (fast unit tests)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from mixhic.core.config import ConfigError, load_config
from mixhic.serve.config import PredictConfig, ServeConfig

SERVE_YAML = Path(__file__).resolve().parents[2] / "serve" / "serve-config.yaml"


def test_shipped_configs_load():
    cfg = load_config("serve-demo", ServeConfig)
    assert cfg.host == "127.0.0.1"
    assert cfg.model_deployment.max_ongoing_requests >= cfg.batching.max_batch_size
    assert load_config("predict-demo", PredictConfig).resume is True


def _names_the_key(key: str) -> str:
    """The error names the full dotted key, right after the file (``serve-demo.yaml: KEY: ``),
    as it is written on the command line."""
    return rf"\.yaml: {re.escape(key)}: "


#: (overrides, the dotted key the error names): every check of the serve config's sections.
BAD_SERVE = [
    ({"batching.max_batch_size": 0}, "batching.max_batch_size"),
    ({"batching.batch_wait_timeout_s": 11}, "batching.batch_wait_timeout_s"),
    ({"batching.max_batch_size": 128}, "model_deployment.max_ongoing_requests"),
    ({"model_deployment.num_replicas": 0}, "model_deployment.num_replicas"),
    ({"model_deployment.max_ongoing_requests": 0}, "model_deployment.max_ongoing_requests"),
    ({"model_deployment.num_cpus": -1}, "model_deployment.num_cpus"),
    ({"model_deployment.num_gpus": -1}, "model_deployment.num_gpus"),
    ({"model_deployment.autoscaling.min_replicas": -1},
     "model_deployment.autoscaling.min_replicas"),
    ({"model_deployment.autoscaling": {"min_replicas": 3, "max_replicas": 2}},
     "model_deployment.autoscaling.max_replicas"),
    ({"model_deployment.autoscaling.target_ongoing_requests": 0},
     "model_deployment.autoscaling.target_ongoing_requests"),
    ({"port": 70000}, "port"),
    ({"max_body_mb": 0}, "max_body_mb"),
    ({"request_timeout_s": 0}, "request_timeout_s"),
    ({"keep_alive_timeout_s": 601}, "keep_alive_timeout_s"),
    ({"max_abs_input": 1e13}, "max_abs_input"),
    ({"route_prefix": "api"}, "route_prefix"),
    ({"genome.tracks": {"atac": " "}}, "genome.tracks.atac"),
]

#: The same for the predict config.
BAD_PREDICT = [
    ({"step_bins": -1}, "step_bins"),
    ({"batch_size": 0}, "batch_size"),
    ({"chunk_windows": 0}, "chunk_windows"),
    ({"concurrency": 0}, "concurrency"),
    ({"num_cpus": -1}, "num_cpus"),
    ({"num_gpus": -1}, "num_gpus"),
    ({"mcool_resolutions": [5000, 0]}, "mcool_resolutions"),
    ({"chroms": ["chr1"], "regions": ["chr1:0-100"]}, "chroms"),
    ({"genome.tracks": {"atac": ""}}, "genome.tracks.atac"),
    ({"loops.min_distance": -1}, "loops.min_distance"),
    ({"loops.min_distance": 10, "loops.max_distance": 5}, "loops.max_distance"),
    ({"loops.stride_bins": 0}, "loops.stride_bins"),
    ({"loops.min_probability": 2}, "loops.min_probability"),
    ({"loops.call.cluster_radius_bins": -1}, "loops.call.cluster_radius_bins"),
    ({"loops.call.min_separation_bp": -1}, "loops.call.min_separation_bp"),
    ({"loops.call.top_n": -1}, "loops.call.top_n"),
]


@pytest.mark.parametrize("override, key", BAD_SERVE + [
    ({"device": "tpu"}, "device"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_serve_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=_names_the_key(key)):
        load_config("serve-demo", ServeConfig, override)
    with pytest.raises(ValueError):  # ConfigError is a ValueError: old callers keep working
        load_config("serve-demo", ServeConfig, override)


def test_unknown_serve_key_is_named():
    with pytest.raises(ConfigError, match="unknown key genome.bogus"):
        load_config("serve-demo", ServeConfig, {"genome.mcool": 3.5, "genome.bogus": 1})


@pytest.mark.parametrize("override, key", BAD_PREDICT,
                         ids=lambda v: v if isinstance(v, str) else None)
def test_bad_predict_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=_names_the_key(key)):
        load_config("predict-demo", PredictConfig, override)


def _cli_args(override: dict) -> list[str]:
    return [f"{k}={json.dumps(v)}" for k, v in override.items()]


@pytest.mark.parametrize("override, key", [BAD_SERVE[0], BAD_SERVE[7], BAD_SERVE[-1]],
                         ids=lambda v: v if isinstance(v, str) else None)
def test_bad_serve_command_line_names_the_key(override, key):
    """``mixhic serve serve-demo batching.max_batch_size=0`` fails naming that key."""
    from mixhic.serve.app import config_from_args

    with pytest.raises(ConfigError, match=_names_the_key(key)):
        config_from_args(["serve-demo", *_cli_args(override)])


@pytest.mark.parametrize("override, key", [BAD_PREDICT[0], BAD_PREDICT[10], BAD_PREDICT[-1]],
                         ids=lambda v: v if isinstance(v, str) else None)
def test_bad_predict_command_line_names_the_key(override, key):
    from mixhic.serve.predict import config_from_args

    with pytest.raises(ConfigError, match=_names_the_key(key)):
        config_from_args(["predict-demo", *_cli_args(override)])


def test_deployment_options_autoscaling_replaces_replicas():
    cfg = load_config("serve-demo", ServeConfig, {
        "model_deployment.autoscaling": {"min_replicas": 1, "max_replicas": 3},
        "model_deployment.num_gpus": 1,
    })
    opts = cfg.model_deployment.serve_options()
    assert "num_replicas" not in opts and opts["autoscaling_config"]["max_replicas"] == 3
    assert opts["ray_actor_options"]["num_gpus"] == 1


def test_serve_deploy_file_validates_and_builds(tmp_path):
    from mixhic.serve.app import app_builder
    from ray.serve.schema import ServeDeploySchema
    from serve_helpers import make_model_dir

    raw = yaml.safe_load(SERVE_YAML.read_text())
    schema = ServeDeploySchema.model_validate(raw)
    app = schema.applications[0]
    assert app.import_path == "mixhic.serve.app:app_builder"
    names = {d.name for d in app.deployments}
    assert names == {"MixHic"}
    args = dict(app.args)
    args["models"] = [str(make_model_dir(tmp_path / "m", "hic", "infer"))]
    built = app_builder(args)  # an Application; nothing is started
    assert type(built).__name__ == "Application"
    with pytest.raises(ValueError, match="unknown"):
        app_builder({"modle": []})


class _LocalBackend:
    """The API over a model called in-process (no Ray): the same checks as the app."""

    def __init__(self, model_dir):
        from mixhic.serve.engine import load_task_model

        self.tm = load_task_model(str(model_dir), "cpu")
        self.region_requests = False

    async def cards(self):
        return {"hic": self.tm.card}

    async def predict(self, task, epi, hic, offset=0.0):
        return self.tm.predict(epi[None], None, np.array([offset]))[0]

    async def region(self, card, chrom, start, start2):
        raise AssertionError("not configured")


def test_api_without_ray_checks_requests(tmp_path):
    import httpx
    from mixhic.serve.api import build_api
    from serve_helpers import make_model_dir

    model_dir = make_model_dir(tmp_path / "m", "hic", "infer")
    api = build_api(_LocalBackend(model_dir), max_body_bytes=200_000)
    epi = np.ones((2, 800), np.float32)

    async def go():
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            ok = await c.post("/v1/hic", json={"epi": epi.tolist()})
            region = await c.post("/v1/hic", json={"chrom": "chr1", "start": 0})
            nomodel = await c.post("/v1/loops", json={"epi": epi.tolist()})
            big = await c.post("/v1/hic", content=b"[" + b"1.0," * 60_000 + b"1.0]",
                               headers={"content-type": "application/json"})
            return ok, region, nomodel, big

    ok, region, nomodel, big = asyncio.run(go())
    assert ok.status_code == 200 and np.asarray(ok.json()["hic"]).shape == (20, 20)
    assert region.status_code == 400 and "genome" in region.text
    assert nomodel.status_code == 404 and "loops" in nomodel.text
    assert big.status_code == 413 and "body" in big.text


def _npy(arr) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _npz(**arrays) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_api_binary_numpy_bodies(tmp_path):
    """.npy / .npz bodies answer as the JSON body does; malformed ones get 4xx naming
    the field (never unpickled, a lying header is refused unread)."""
    import io
    import zipfile

    import httpx
    from mixhic.serve.api import build_api
    from serve_helpers import make_model_dir

    api = build_api(_LocalBackend(make_model_dir(tmp_path / "m", "hic", "infer")),
                    max_body_bytes=200_000)
    epi = np.random.default_rng(0).gamma(1.0, 1.0, (2, 800)).astype(np.float32)
    header = _npy(epi)
    lying = header.replace(b"(2, 800), }      ", b"(2, 800000000), }")  # 6.4 GB claimed
    assert lying != header and len(lying) == len(header)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("epi.npy", _npy(np.zeros((2, 200_000), np.float32)))
    cases = [  # (body, content type, status, text)
        (_npy(epi.astype(np.float64)), "application/x-npy", 200, ""),
        (_npz(epi=epi), "application/x-npz", 200, ""),
        (_npz(epi=epi), "application/octet-stream", 200, ""),
        (_npy(epi[:, :-1]), "application/x-npy", 422, "epi"),
        (_npy(np.where(np.arange(800) == 5, np.nan, epi)), "application/x-npy", 422, "finite"),
        (_npy(epi[:, :4].astype(str)), "application/x-npy", 422, "dtype"),
        (_npy(np.array([{"a": 1}], dtype=object)), "application/x-npy", 422, "epi"),
        (_npy(epi)[:-100], "application/x-npy", 422, "epi"),
        (lying, "application/x-npy", 422, "epi"),
        (_npz(epi=epi, temperature=np.ones(1)), "application/x-npz", 422, "temperature"),
        (_npz(hic=np.ones((20, 20))), "application/x-npz", 422, "epi"),
        (b"not numpy", "application/octet-stream", 422, "body"),
        (bomb.getvalue(), "application/x-npz", 413, "body"),
    ]

    async def go():
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            ref = await c.post("/v1/hic", json={"epi": epi.tolist()})
            out = [await c.post("/v1/hic", content=body, headers={"content-type": ctype})
                   for body, ctype, _, _ in cases]
            schema = (await c.get("/openapi.json")).json()
            return ref, out, schema

    ref, out, schema = asyncio.run(go())
    assert ref.status_code == 200
    for (_, ctype, status, needle), r in zip(cases, out):
        assert r.status_code == status, (ctype, needle, r.status_code, r.text[:300])
        assert needle in r.text.lower(), (needle, r.text[:300])
        if status == 200:
            np.testing.assert_allclose(r.json()["hic"], ref.json()["hic"], atol=1e-6)
    content = schema["paths"]["/v1/hic"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-npy", "application/x-npz"} <= set(content)


def _prepared_chr2(genome, **overrides):
    """(prepare config, chr2's ``hic`` rows) of the cached demo genome, prepared in-process
    (diagonal and 50 kb off-diagonal windows, no QC drops); ``overrides`` by dotted key."""
    from mixhic.pipelines.extract import open_handles, process_chunk
    from mixhic.pipelines.prepare import PrepareConfig, build_tasks
    from serve_helpers import DATA

    cfg = load_config("prepare-demo", PrepareConfig, {
        "root": str(genome.mcool.parent), "window_bins": DATA["window_bins"],
        "epi_bin": DATA["epi_bin"], "chromosomes": ["chr2"],
        "datasets.pretrain.enabled": False, "datasets.loops.enabled": False,
        "datasets.cage.enabled": False, "datasets.hic.offsets_bp": [0, 50000],
        "qc.min_nonzero_frac": 0.0, "qc.max_masked_bins": 100, **overrides,
    })
    settings, tasks, _ = build_tasks(cfg)
    tables, _ = process_chunk(settings, tasks[0], open_handles(settings))
    return cfg, tables["hic"]


def _genome_files(genome):
    from mixhic.serve.config import GenomeFiles

    return GenomeFiles(mcool=str(genome.mcool),
                       tracks={"atac": str(genome.atac), "dnase": str(genome.dnase)})


def test_region_windows_equal_prepared_rows():
    """GenomeWindows (region requests, predict) == mixhic prepare's rows, window by window."""
    from mixhic.serve.engine import load_task_model
    from mixhic.serve.regions import GenomeWindows
    from serve_helpers import cached_genome, make_model_dir

    genome = cached_genome()
    _, table = _prepared_chr2(genome)
    assert table.num_rows > 5
    card = load_task_model(str(make_model_dir(Path(genome.mcool.parent) / "m-bim", "loops",
                                              "bimodal")), "cpu").card
    gw = GenomeWindows(_genome_files(genome), card)
    hic = table.column("hic").combine_chunks().to_numpy_ndarray()
    epi = table.column("epi").combine_chunks().to_numpy_ndarray()
    xs, ys = table.column("x_start").to_pylist(), table.column("y_start").to_pylist()
    for k in range(0, table.num_rows, max(1, table.num_rows // 8)):
        e, h, echo = gw.request_window("2", xs[k], ys[k])
        assert echo.chrom == "chr2"
        np.testing.assert_allclose(h, hic[k], atol=1e-6)
        np.testing.assert_allclose(e, epi[k], atol=1e-6)


def test_cli_arguments_build_the_configs():
    from mixhic.serve.app import config_from_args as serve_args
    from mixhic.serve.predict import config_from_args as predict_args

    cfg = serve_args(["--model", "models:/m@champion", "--checkpoint", "/ckpt/loops",
                      "--port", "9000", "batching.max_batch_size=8"])
    assert cfg.models == ("models:/m@champion", "/ckpt/loops")
    assert (cfg.host, cfg.port, cfg.batching.max_batch_size) == ("127.0.0.1", 9000, 8)
    cfg = predict_args(["--checkpoint", "/m", "--out", "/o", "--chroms", "chr1", "2",
                        "--mcool", "g.mcool", "--track", "atac=a.bw", "batch_size=8"])
    assert cfg.models == ("/m",) and cfg.out_dir == "/o" and cfg.chroms == ("chr1", "2")
    assert cfg.genome.tracks == {"atac": "a.bw"} and cfg.batch_size == 8
    with pytest.raises(ValueError, match="track"):
        predict_args(["--track", "atac"])
    # options and key=value overrides in any order
    cfg = serve_args(["batching.max_batch_size=4", "--port", "9001", "max_body_mb=2"])
    assert (cfg.port, cfg.batching.max_batch_size, cfg.max_body_mb) == (9001, 4, 2)
    cfg = predict_args(["predict-demo", "--checkpoint", "/m", "batch_size=4", "--out", "/o"])
    assert cfg.models == ("/m",) and cfg.batch_size == 4 and cfg.out_dir == "/o"


def test_app_builder_overrides_are_a_mapping():
    from mixhic.core.config import ConfigError
    from mixhic.serve.app import app_builder

    with pytest.raises(ConfigError, match=r"overrides: .*\{batching.max_batch_size: 32\}"):
        app_builder({"overrides": ["batching.max_batch_size=32"]})


def test_region_windows_follow_the_models_recorded_normalisation():
    """A model trained on data prepared with a non-default normalisation is served with it:
    prepare's settings -> the model's ``data`` block -> GenomeWindows == the prepared rows."""
    from types import SimpleNamespace

    from mixhic.core.config import to_dict
    from mixhic.platform.data import _normalisation
    from mixhic.serve.engine import load_task_model
    from mixhic.serve.regions import PREPARE_DEFAULTS, GenomeWindows
    from serve_helpers import DATA, cached_genome, make_model_dir

    genome = cached_genome()
    # not the default cap 255: most contacts are clipped
    cfg, table = _prepared_chr2(genome, **{"normalize.hic_cap": 3.0})
    assert cfg.normalize.hic_cap != PREPARE_DEFAULTS["hic_cap"]
    data = {**DATA, **_normalisation(SimpleNamespace(params=to_dict(cfg)))}
    assert data["hic_cap"] == 3.0
    model = make_model_dir(Path(genome.mcool.parent) / "m-cap3", "loops", "bimodal", data=data)
    card = load_task_model(str(model), "cpu").card
    gw = GenomeWindows(_genome_files(genome), card)
    assert gw.norm.hic_cap == 3.0
    hic = table.column("hic").combine_chunks().to_numpy_ndarray()
    xs, ys = table.column("x_start").to_pylist(), table.column("y_start").to_pylist()
    for k in range(0, table.num_rows, max(1, table.num_rows // 8)):
        _, h, _ = gw.request_window("chr2", xs[k], ys[k])
        np.testing.assert_allclose(h, hic[k], atol=1e-6)
    # with prepare's defaults the same window differs: the setting was used, not a copy
    files = _genome_files(genome)
    default_model = make_model_dir(Path(genome.mcool.parent) / "m-def", "loops", "bimodal")
    default = GenomeWindows(files, load_task_model(str(default_model), "cpu").card)
    _, h_default, _ = default.request_window("chr2", xs[0], ys[0])
    assert not np.allclose(h_default, hic[0], atol=1e-3)


def test_region_defaults_are_prepares_defaults():
    """serve keeps no copy of prepare's normalisation defaults: each equals the field
    default of the prepare config that a model's ``data`` key comes from."""
    import dataclasses

    from mixhic.pipelines.prepare_config import HicInput, Normalization
    from mixhic.serve.regions import PREPARE_DEFAULTS, PREPARE_FIELDS, Normalisation

    def default(cls, name):
        f = {f.name: f for f in dataclasses.fields(cls)}[name]
        return f.default if f.default is not dataclasses.MISSING else f.default_factory()

    assert set(PREPARE_DEFAULTS) == set(PREPARE_FIELDS) == {
        f.name for f in dataclasses.fields(Normalisation)}
    for key, (cls, name) in PREPARE_FIELDS.items():
        assert cls in (HicInput, Normalization)
        assert PREPARE_DEFAULTS[key] == default(cls, name), key
    assert Normalisation.from_data({}) == Normalisation(**PREPARE_DEFAULTS)
