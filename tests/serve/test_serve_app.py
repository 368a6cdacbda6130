"""The Ray Serve app on 127.0.0.1: answers, validation, region form, batching."""

from __future__ import annotations

import asyncio
import io
import zipfile

import numpy as np
import pytest
from serve_helpers import (
    RES,
    cached_genome,
    cached_models,
    direct_model,
    independent_window,
)

pytestmark = pytest.mark.integration

W, L, C = 20, 400, 2


@pytest.fixture(scope="module")
def tiny_models():
    return cached_models()


@pytest.fixture(scope="module")
def tiny_genome():
    return cached_genome()


@pytest.fixture(scope="module")
def direct(tiny_models):
    return direct_model(tiny_models)


def _inputs(seed: int, n: int | None = None):
    rng = np.random.default_rng(seed)
    shape = () if n is None else (n,)
    epi = rng.gamma(1.0, 1.0, size=(*shape, C, 2 * L)).astype(np.float32)
    hic = rng.uniform(0, 1, size=(*shape, W, W)).astype(np.float32)
    return epi, hic


def _assert_ok(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    epi, _ = _inputs(99)
    r = client.post("/v1/hic", json={"epi": epi.tolist()})
    assert r.status_code == 200, r.text


def test_healthz_model_card_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/v1/model").json()
    assert info["tasks"] == ["cage", "hic", "loops"]
    assert info["region_requests"] is True
    cards = {m["task"]: m for m in info["models"]}
    assert cards["hic"]["mode"] == "infer" and cards["loops"]["mode"] == "bimodal"
    for task, card in cards.items():
        assert card["name"] == f"tiny-{task}"
        assert card["run_id"] == f"run-{task}"
        assert card["preset"] == "tiny"
        assert (card["window_bins"], card["epi_bins"], card["n_tracks"]) == (W, L, C)
    paths = client.get("/openapi.json").json()["paths"]
    for route in ("/healthz", "/v1/model", "/v1/hic", "/v1/loops", "/v1/cage"):
        assert route in paths
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"WindowRequest", "HicResponse", "LoopResponse", "CageResponse"} <= set(schema)


def test_endpoints_match_the_model(client, direct):
    epi, hic = _inputs(1)
    r = client.post("/v1/hic", json={"epi": epi.tolist()})
    assert r.status_code == 200, r.text
    got = np.asarray(r.json()["hic"])
    assert got.shape == (W, W)
    np.testing.assert_allclose(got, direct("hic", epi[None])[0], atol=1e-5)

    r = client.post("/v1/loops", json={"epi": epi.tolist(), "hic": hic.tolist()})
    assert r.status_code == 200, r.text
    p = r.json()["probability"]
    assert 0 <= p <= 1
    np.testing.assert_allclose(p, direct("loops", epi[None], hic[None])[0], atol=1e-5)

    r = client.post("/v1/cage", json={"epi": epi.tolist(), "hic": hic.tolist()})
    assert r.status_code == 200, r.text
    got = np.asarray(r.json()["cage"])
    assert got.shape == (W,)
    np.testing.assert_allclose(got, direct("cage", epi[None], hic[None])[0], atol=1e-5)


def test_binary_numpy_body_equals_json_body(client, direct):
    """.npz (epi + hic) and .npy (epi) bodies give the JSON form's numbers."""
    import io

    epi, hic = _inputs(4)
    npz, npy = io.BytesIO(), io.BytesIO()
    np.savez(npz, epi=epi, hic=hic)
    np.save(npy, epi)
    r = client.post("/v1/loops", content=npz.getvalue(),
                    headers={"content-type": "application/x-npz"})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["probability"],
                               direct("loops", epi[None], hic[None])[0], atol=1e-5)
    r = client.post("/v1/hic", content=npy.getvalue(),
                    headers={"content-type": "application/x-npy"})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["hic"], direct("hic", epi[None])[0], atol=1e-5)
    r = client.post("/v1/loops", content=npy.getvalue(),  # bimodal: hic missing
                    headers={"content-type": "application/x-npy"})
    assert r.status_code == 422 and "hic" in r.text
    _assert_ok(client)


def test_concurrent_requests_are_batched_without_mixing(server, direct):
    """16 concurrent requests: each answer is its own input's (batch invariance)."""
    import httpx

    epi, hic = _inputs(2, n=16)

    async def go():
        async with httpx.AsyncClient(base_url=server, timeout=60) as c:
            rs = await asyncio.gather(*[
                c.post("/v1/loops", json={"epi": e.tolist(), "hic": h.tolist()})
                for e, h in zip(epi, hic)
            ])
        return [r.json()["probability"] for r in rs]

    from ray import serve

    stats = serve.get_deployment_handle("MixHic", app_name="mixhic").stats
    before = stats.remote().result()["loops"]
    got = asyncio.run(go())
    np.testing.assert_allclose(got, direct("loops", epi, hic), atol=1e-5)
    after = stats.remote().result()["loops"]
    items, batches = (after[k] - before[k] for k in ("items", "batches"))
    assert items == 16 and batches < items  # some requests shared a forward


@pytest.mark.parametrize("task", ["hic", "loops", "cage"])
def test_region_form_equals_array_form(client, tiny_genome, task):
    x, y = 300_000, 400_000 if task == "loops" else 300_000
    region = client.post(f"/v1/{task}", json={"chrom": "chr1", "start": x, "start2": y})
    assert region.status_code == 200, region.text
    assert region.json()["window"] == {"chrom": "chr1", "x_start": x, "y_start": y,
                                       "resolution": RES}
    epi, hic = independent_window(tiny_genome, "chr1", x, y)
    body = {"epi": epi.tolist()} if task == "hic" else {"epi": epi.tolist(), "hic": hic.tolist()}
    body["offset"] = (y - x) // RES  # a region's offset comes from start2; arrays say it
    arrays = client.post(f"/v1/{task}", json=body)
    assert arrays.status_code == 200, arrays.text
    key = {"hic": "hic", "loops": "probability", "cage": "cage"}[task]
    np.testing.assert_allclose(region.json()[key], arrays.json()[key], atol=1e-5)


def test_chromosome_names_match_across_spellings(client):
    a = client.post("/v1/cage", json={"chrom": "chr2", "start": 100_000})
    b = client.post("/v1/cage", json={"chrom": "2", "start": 100_000})
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    assert a.json()["cage"] == b.json()["cage"]
    assert b.json()["window"]["chrom"] == "chr2"


def _bad_requests(tiny_size: int, chr1_bp: int):
    past_end = (chr1_bp // RES - W + 1) * RES  # first start whose window runs past the end
    epi, hic = _inputs(3)
    nan_epi = epi.copy()
    nan_epi[1, 7] = np.nan
    huge_epi = epi.copy()
    huge_epi[0, 3] = -1e30  # finite, but overflows the forward to NaN
    npz = io.BytesIO()
    with zipfile.ZipFile(npz, "w", zipfile.ZIP_STORED) as z:
        member = io.BytesIO()
        np.save(member, epi)
        z.writestr("epi.npy", member.getvalue())
    at = npz.getvalue().index(b"epi.npy") + 300
    bad_crc = npz.getvalue()[:at] + b"\x00\x01" + npz.getvalue()[at + 2:]
    return [
        # (route, kwargs for httpx, status, text that must appear)
        ("/v1/hic", {"content": b'{"epi": [[1, 2], ', "headers": {"content-type":
                                                                     "application/json"}},
         422, "json"),
        ("/v1/hic", {"json": {"epi": epi[:, :-1].tolist()}}, 422, "epi"),
        ("/v1/hic", {"json": {"epi": [[1.0, 2.0], [3.0]]}}, 422, "epi"),
        ("/v1/hic", {"content": ('{"epi": ' + str(nan_epi.tolist()).replace("nan", "NaN")
                                 + "}").encode(),
                     "headers": {"content-type": "application/json"}}, 422, "finite"),
        ("/v1/loops", {"json": {"epi": epi.tolist()}}, 422, "hic"),
        ("/v1/loops", {"json": {"epi": epi.tolist(), "hic": hic[:5].tolist()}}, 422, "hic"),
        ("/v1/hic", {"json": {"epi": epi.tolist(), "chrom": "chr1", "start": 0}}, 422, "epi"),
        ("/v1/hic", {"json": {"epi": epi.tolist(), "temperature": 3}}, 422, "temperature"),
        ("/v1/hic", {"json": {"chrom": "chrZ", "start": 0}}, 422, "chrom"),
        ("/v1/hic", {"json": {"chrom": "chr1", "start": past_end}}, 422, "start"),
        ("/v1/loops", {"json": {"chrom": "chr1", "start": 0, "start2": past_end}}, 422,
         "start2"),
        ("/v1/hic", {"json": {"chrom": "chr1", "start": 12_345}}, 422, "start"),
        ("/v1/hic", {"json": {"chrom": "chr1", "start": -5000}}, 422, "start"),
        ("/v1/hic", {"json": {"chrom": "chr1"}}, 422, "start"),
        ("/v1/hic", {"content": b"[" + b"0.0," * (tiny_size // 4) + b"0.0]",
                     "headers": {"content-type": "application/json"}}, 413, "body"),
        ("/v1/hic", {"json": {"epi": huge_epi.tolist()}}, 422, "numeric range"),
        ("/v1/loops", {"json": {"epi": huge_epi.tolist(), "hic": hic.tolist()}}, 422,
         "numeric range"),
        ("/v1/cage", {"json": {"epi": huge_epi.tolist(), "hic": hic.tolist()}}, 422,
         "numeric range"),
        ("/v1/hic", {"content": bad_crc, "headers": {"content-type": "application/x-npz"}},
         422, "crc"),
    ]


def test_bad_requests_get_4xx_naming_the_field_and_the_app_keeps_serving(client, tiny_genome):
    sizes = dict(line.split() for line in tiny_genome.chrom_sizes.read_text().splitlines())
    last = (int(sizes["chr1"]) // RES - W) * RES
    ok = client.post("/v1/hic", json={"chrom": "chr1", "start": last})
    assert ok.status_code == 200, ok.text  # the last window that fits
    for route, kwargs, status, needle in _bad_requests(2 * 2**20, int(sizes["chr1"])):
        r = client.post(route, **kwargs)
        assert r.status_code == status, (route, needle, r.status_code, r.text[:300])
        assert needle in r.text.lower(), (route, needle, r.text[:300])
        _assert_ok(client)


def test_oversize_streamed_body_is_rejected(client):
    """A chunked body without Content-Length is counted, not trusted."""
    def chunks():
        for _ in range(40):
            yield b" " * 65536

    r = client.post("/v1/hic", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    _assert_ok(client)


def test_openapi_examples_are_accepted(client):
    """Every request example in /openapi.json (arrays and a region of the served genome)
    answers 200 from the running app."""
    paths = client.get("/openapi.json").json()["paths"]
    seen = set()
    for task in ("hic", "loops", "cage"):
        content = paths[f"/v1/{task}"]["post"]["requestBody"]["content"]["application/json"]
        for name, example in content["examples"].items():
            r = client.post(f"/v1/{task}", json=example["value"])
            assert r.status_code == 200, (task, name, r.text[:300])
            seen.add(name)
    assert seen == {"arrays", "region"}
