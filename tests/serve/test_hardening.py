"""Hardening of the HTTP API without Ray: every bad request is a 4xx naming the field,
no non-finite model output is ever a 200, and the OpenAPI examples are accepted."""

from __future__ import annotations

import asyncio
import io
import zipfile

import httpx
import numpy as np
import pytest
from mixhic.serve.api import MAX_ABS_INPUT, build_api
from mixhic.serve.engine import load_task_model
from serve_helpers import make_model_dir

C, L2, W = 2, 800, 20


class _Backend:
    """The API over tiny models called in-process; ``nan_out`` forces a NaN output."""

    region_requests = False

    def __init__(self, models: dict) -> None:
        self.models = models
        self.nan_out = False
        self.forwards = 0
        self.offsets: list[float] = []

    async def cards(self):
        return {t: m.card for t, m in self.models.items()}

    async def predict(self, task, epi, hic, offset=0.0):
        self.forwards += 1
        self.offsets.append(offset)
        out = self.models[task].predict(epi[None], None if hic is None else hic[None],
                                        np.array([offset]))[0]
        return np.full_like(out, np.nan) if self.nan_out else out

    async def region(self, card, chrom, start, start2):
        raise AssertionError("not configured")


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    root = tmp_path_factory.mktemp("hard")
    return _Backend({
        "hic": load_task_model(str(make_model_dir(root / "h", "hic", "infer")), "cpu"),
        "loops": load_task_model(str(make_model_dir(root / "l", "loops", "bimodal", 1)), "cpu"),
        "cage": load_task_model(str(make_model_dir(root / "c", "cage", "bimodal", 2)), "cpu"),
    })


@pytest.fixture(scope="module")
def api(backend):
    cards = asyncio.run(backend.cards())
    return build_api(backend, max_body_bytes=400_000, cards=cards)


def _post_all(api, requests):
    """[(method, url, kwargs)] -> responses, through the ASGI app (no sockets)."""
    async def go():
        transport = httpx.ASGITransport(app=api, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return [await c.request(m, url, **kw) for m, url, kw in requests]

    return asyncio.run(go())


def _npz(stored: bool = True, **arrays) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as z:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.save(member, arr)
            z.writestr(f"{name}.npy", member.getvalue())
    return buf.getvalue()


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.gamma(1.0, 1.0, (C, L2)).astype(np.float32),
            rng.uniform(0, 1, (W, W)).astype(np.float32))


def test_corrupt_npz_members_are_4xx(api):
    epi, hic = _inputs()
    good = _npz(epi=epi, hic=hic)
    # flip a byte inside epi.npy's data: the archive opens, the member fails its CRC
    at = good.index(b"epi.npy") + 300
    bad_crc = good[:at] + bytes([good[at] ^ 0xFF]) + good[at + 1:]
    deflated = _npz(stored=False, epi=epi, hic=hic)
    at = deflated.index(b"epi.npy") + 200  # corrupt deflate stream
    bad_stream = deflated[:at] + b"\xff" * 40 + deflated[at + 40:]
    truncated = good[: len(good) // 2]
    ctype = {"content-type": "application/x-npz"}
    rs = _post_all(api, [("POST", "/v1/loops", {"content": body, "headers": ctype})
                         for body in (good, bad_crc, bad_stream, truncated)])
    assert rs[0].status_code == 200, rs[0].text
    for r in rs[1:]:
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
        assert "npz" in r.text
    assert "crc" in rs[1].text.lower() and '"epi"' in rs[1].text


@pytest.mark.parametrize("task", ["hic", "loops", "cage"])
@pytest.mark.parametrize("value", [-1e30, 1e30, 3e38, 1e39, MAX_ABS_INPUT * 1.01])
def test_inputs_beyond_the_numeric_range_are_422_before_the_forward(api, backend, task,
                                                                     value):
    epi, hic = _inputs(1)
    epi[1, 5] = value if abs(value) < 3.4e38 else epi[1, 5]
    body = {"epi": epi.tolist(), "hic": hic.tolist()}
    if abs(value) >= 3.4e38:  # past float32: only JSON can carry it
        body["epi"][1][5] = value
    if task == "hic":
        del body["hic"]
    before = backend.forwards
    npy = io.BytesIO()
    np.save(npy, epi.astype(np.float64) if abs(value) < 3.4e38 else epi)
    reqs = [("POST", f"/v1/{task}", {"json": body})]
    if task == "hic" and abs(value) < 3.4e38:
        reqs.append(("POST", "/v1/hic", {"content": npy.getvalue(),
                                         "headers": {"content-type": "application/x-npy"}}))
    for r in _post_all(api, reqs):
        assert r.status_code == 422, (value, r.status_code, r.text[:300])
        assert "epi" in r.text and "numeric range" in r.text
    assert backend.forwards == before  # refused before the model ran


def test_huge_hic_values_are_422(api):
    epi, hic = _inputs(2)
    hic[3, 4] = -1e30
    (r,) = _post_all(api, [("POST", "/v1/cage", {"json": {"epi": epi.tolist(),
                                                          "hic": hic.tolist()}})])
    assert r.status_code == 422 and "hic" in r.text, r.text[:300]


def test_non_finite_model_output_is_never_a_200(api, backend):
    epi, hic = _inputs(3)
    backend.nan_out = True
    try:
        rs = _post_all(api, [
            ("POST", "/v1/hic", {"json": {"epi": epi.tolist()}}),
            ("POST", "/v1/loops", {"json": {"epi": epi.tolist(), "hic": hic.tolist()}}),
            ("POST", "/v1/cage", {"json": {"epi": epi.tolist(), "hic": hic.tolist()}}),
        ])
    finally:
        backend.nan_out = False
    for r in rs:
        assert r.status_code == 422, (r.status_code, r.text[:300])
        assert "non-finite" in r.text and "null" not in r.text


def test_largest_allowed_inputs_answer_finite(api):
    """At the limit the model still answers with finite numbers (the limit is inside the
    numeric range), for every task."""
    epi, hic = _inputs(4)
    epi[0, :10] = MAX_ABS_INPUT
    epi[1, :10] = -MAX_ABS_INPUT
    hic[:2] = MAX_ABS_INPUT
    rs = _post_all(api, [
        ("POST", "/v1/hic", {"json": {"epi": epi.tolist()}}),
        ("POST", "/v1/loops", {"json": {"epi": epi.tolist(), "hic": hic.tolist()}}),
        ("POST", "/v1/cage", {"json": {"epi": epi.tolist(), "hic": hic.tolist()}}),
    ])
    for r, key in zip(rs, ("hic", "probability", "cage")):
        assert r.status_code == 200, r.text[:300]
        assert np.isfinite(np.asarray(r.json()[key], dtype=float)).all()


def test_openapi_examples_are_accepted(api):
    (schema,) = _post_all(api, [("GET", "/openapi.json", {})])
    paths = schema.json()["paths"]
    examples = []
    for task in ("hic", "loops", "cage"):
        content = paths[f"/v1/{task}"]["post"]["requestBody"]["content"]["application/json"]
        assert content["examples"], task
        examples += [(task, ex["value"]) for ex in content["examples"].values()]
    comps = schema.json()["components"]["schemas"]["WindowRequest"]
    assert "examples" not in comps  # no fixed example that a served model would refuse
    rs = _post_all(api, [("POST", f"/v1/{task}", {"json": body}) for task, body in examples])
    for (task, body), r in zip(examples, rs):
        assert r.status_code == 200, (task, sorted(body), r.text[:300])


def test_serve_defaults_keep_every_port_on_loopback():
    """HAProxy (stats/metrics on every interface in Ray 2.60) is opt-in; its files go
    under a private directory when it is used; slow clients are cut."""
    from mixhic.serve.config import HAPROXY_ENV, ServeConfig, haproxy_env

    cfg = ServeConfig()
    assert cfg.host == "127.0.0.1" and cfg.http_ingress == "proxy"
    assert 0 < cfg.request_timeout_s <= 120 and cfg.keep_alive_timeout_s <= 30
    assert int(HAPROXY_ENV["RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S"]) <= 60
    env = haproxy_env("/tmp/mxhapXXXXXXXX")
    paths = {k: v for k, v in env.items() if k not in HAPROXY_ENV}
    assert {"RAY_SERVE_HAPROXY_SOCKET_PATH", "RAY_SERVE_HAPROXY_LOG_TARGET"} <= set(paths)
    assert all(v.startswith("/tmp/mxhapXXXXXXXX") for v in paths.values())
    assert ":" not in env["RAY_SERVE_HAPROXY_LOG_TARGET"]  # a unix socket, not UDP


def test_sigterm_raises_terminated_in_the_main_thread():
    import os
    import signal
    import time

    from mixhic.core.runtime import Terminated, install_signal_handlers

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        install_signal_handlers()
        with pytest.raises(Terminated) as info:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        assert info.value.signum == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)  # a second signal while shutting down: logged
        time.sleep(0.05)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_array_requests_carry_the_anchor_offset(api, backend):
    """An off-diagonal window sent as arrays says how far its y-anchor is (``offset``,
    bins); the model reads every pixel's genomic distance from it, so the answer changes."""
    epi, hic = _inputs(3)
    ctype = {"content-type": "application/x-npz"}
    backend.offsets.clear()
    rs = _post_all(api, [
        ("POST", "/v1/hic", {"json": {"epi": epi.tolist()}}),
        ("POST", "/v1/hic", {"json": {"epi": epi.tolist(), "offset": 40}}),
        ("POST", "/v1/hic", {"content": _npz(epi=epi, offset=np.array(40)), "headers": ctype}),
    ])
    assert [r.status_code for r in rs] == [200, 200, 200], [r.text[:200] for r in rs]
    assert backend.offsets == [0.0, 40.0, 40.0]
    diag, off, off_npz = (np.asarray(r.json()["hic"]) for r in rs)
    np.testing.assert_allclose(off, off_npz, atol=1e-6)
    assert np.abs(diag - off).max() > 1e-4  # the distance reached the map head
    direct = backend.models["hic"].predict(epi[None], None, np.array([40.0]))[0]
    np.testing.assert_allclose(off, direct, atol=1e-5)


@pytest.mark.parametrize("body,field", [
    ({"offset": -1}, "offset"),
    ({"offset": 1.5}, "offset"),
    ({"chrom": "chr1", "start": 0, "offset": 3}, "offset"),
])
def test_bad_offsets_are_422_naming_the_field(api, body, field):
    epi, _ = _inputs(4)
    if "chrom" not in body:
        body = {"epi": epi.tolist(), **body}
    (r,) = _post_all(api, [("POST", "/v1/hic", {"json": body})])
    assert r.status_code == 422 and field in r.text, r.text[:300]
    npz = _npz(epi=epi, offset=np.array(2.5))
    ctype = {"content-type": "application/x-npz"}
    (r,) = _post_all(api, [("POST", "/v1/hic", {"content": npz, "headers": ctype})])
    assert r.status_code == 422 and "offset" in r.text, r.text[:300]
