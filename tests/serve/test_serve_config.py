"""Serve/predict configs, the `serve deploy` file, and the API without Ray (fast unit tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import yaml

from mixhic.platform.config import ConfigError, load_config
from mixhic.serve.config import PredictConfig, ServeConfig

SERVE_YAML = Path(__file__).resolve().parents[2] / "serve" / "serve-config.yaml"


def test_shipped_configs_load():
    cfg = load_config("serve-demo", ServeConfig)
    assert cfg.host == "127.0.0.1"
    assert cfg.model_deployment.max_ongoing_requests >= cfg.batching.max_batch_size
    assert load_config("predict-demo", PredictConfig).resume is True


@pytest.mark.parametrize("override, key", [
    ({"batching.max_batch_size": 0}, "max_batch_size"),
    ({"batching.max_batch_size": 128}, "max_ongoing_requests"),
    ({"port": 70000}, "port"),
    ({"model_deployment.autoscaling": {"min_replicas": 3, "max_replicas": 2}}, "max_replicas"),
    ({"device": "tpu"}, "device"),
    ({"genome.mcool": 3.5, "genome.bogus": 1}, "bogus"),
])
def test_bad_serve_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config("serve-demo", ServeConfig, override)


@pytest.mark.parametrize("override, key", [
    ({"loops.min_distance": 10, "loops.max_distance": 5}, "max_distance"),
    ({"loops.min_probability": 2}, "min_probability"),
    ({"batch_size": 0}, "batch_size"),
])
def test_bad_predict_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config("predict-demo", PredictConfig, override)


def test_deployment_options_autoscaling_replaces_replicas():
    cfg = load_config("serve-demo", ServeConfig, {
        "model_deployment.autoscaling": {"min_replicas": 1, "max_replicas": 3},
        "model_deployment.num_gpus": 1,
    })
    opts = cfg.model_deployment.serve_options()
    assert "num_replicas" not in opts and opts["autoscaling_config"]["max_replicas"] == 3
    assert opts["ray_actor_options"]["num_gpus"] == 1


def test_serve_deploy_file_validates_and_builds(tmp_path):
    from ray.serve.schema import ServeDeploySchema
    from serve_helpers import make_model_dir

    from mixhic.serve.app import app_builder

    raw = yaml.safe_load(SERVE_YAML.read_text())
    schema = ServeDeploySchema.model_validate(raw)
    app = schema.applications[0]
    assert app.import_path == "mixhic.serve.app:app_builder"
    names = {d.name for d in app.deployments}
    assert names == {"MixHicModel", "MixHicIngress"}
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

    async def predict(self, task, epi, hic):
        return self.tm.predict(epi[None], None)[0]

    async def region(self, card, chrom, start, start2):
        raise AssertionError("not configured")


def test_api_without_ray_checks_requests(tmp_path):
    import httpx
    from serve_helpers import make_model_dir

    from mixhic.serve.api import build_api

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
