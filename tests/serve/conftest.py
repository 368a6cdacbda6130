"""One Serve app for the integration tests of ``tests/serve`` (started once per session on
the shared local Ray, shut down at its end): the three tiny models, the tiny genome with
its true loops, a 1 MiB body limit."""

from __future__ import annotations

import pytest
from netutil import free_port
from serve_helpers import cached_genome, cached_models


@pytest.fixture(scope="session")
def serve_app(ray_local):
    """``http://127.0.0.1:<port>`` of the running app."""
    from mixhic.core.config import load_config
    from mixhic.serve.app import run
    from mixhic.serve.config import ServeConfig
    from ray import serve

    genome = cached_genome()
    cfg = load_config("serve-demo", ServeConfig, {
        "models": [str(p) for p in cached_models().values()],
        "port": free_port(),
        "max_body_mb": 1,
        "model_deployment.num_cpus": 0.5,
        "genome": {"mcool": str(genome.mcool), "loops": str(genome.loops),
                   "tracks": {"atac": str(genome.atac), "dnase": str(genome.dnase)}},
    })
    url = run(cfg)
    assert url.startswith("http://127.0.0.1:")
    yield url
    serve.shutdown()


@pytest.fixture(scope="module")
def server(serve_app):
    """The session's app URL (a module may use it as ``server``)."""
    return serve_app


@pytest.fixture(scope="module")
def client(server):
    """An HTTP client on the session's app (generous timeout: a loaded CI machine)."""
    import httpx

    with httpx.Client(base_url=server, timeout=120) as c:
        yield c
