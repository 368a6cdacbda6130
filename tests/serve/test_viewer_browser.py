"""``GET /view`` on a running Serve app (127.0.0.1), and the page in a real headless Chromium.

The browser test needs a ``chromium`` binary (Debian package ``chromium``; ``.ci/run``
installs it) and is skipped, saying so, where there is none. The screenshot is left in
the test's temp dir (its path is logged).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from serve_helpers import cached_genome

pytestmark = pytest.mark.integration

log = logging.getLogger(__name__)

REGION = "chr1:0-600000"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def test_view_serves_the_page(client):
    r = client.get("/view", params={"region": REGION})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    for hook in ('id="contact-map"', 'id="tracks"', 'id="identity"', 'class="loop-mark',
                 'data-chrom="chr1" data-start="0"', 'data-end="600000"', "tiny-hic",
                 "tiny-loops", "tiny-cage", "run-hic", str(cached_genome().loops)):
        assert hook in page, hook
    assert "/view" in client.get("/openapi.json").json()["paths"]
    # no loop scan asked: the known loops only
    r = client.get("/view", params={"region": REGION, "loop_windows": 0})
    assert r.status_code == 200, r.text
    assert 'data-kind="known"' in r.text and 'data-kind="predicted"' not in r.text


@pytest.mark.parametrize("region, status, words", [
    ("chr1:zero-100", 422, ["chr1:zero-100", "expected chrom:start-end"]),
    ("chrZ:0-100000", 422, ["chrZ:0-100000", "unknown chromosome"]),
    ("chr1:90000000-90100000", 422, ["chr1:90000000-90100000", "past the end"]),
    ("chr1:500-100", 422, ["chr1:500-100", "greater than start"]),
    ("x" * 201, 422, []),  # FastAPI's own check of the query (max_length)
    (None, 422, []),
])
def test_bad_regions_get_4xx_naming_the_region(client, region, status, words):
    r = client.get("/view", params={} if region is None else {"region": region})
    assert r.status_code == status, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"] == ["query", "region"]
    for w in words:
        assert w in detail["msg"], detail
    assert client.get("/healthz").status_code == 200


class _Dom(HTMLParser):
    """Elements by id, and the attributes of every element with a class."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, dict[str, str]] = {}
        self.classed: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids[a["id"]] = {"tag": tag, **a}
        if "class" in a:
            self.classed.append((tag, a))

    def with_class(self, name: str) -> list[dict[str, str]]:
        return [a for _, a in self.classed if name in a["class"].split()]


def _browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def test_view_in_headless_chromium(server, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium binary on PATH (apt-get install chromium; .ci/run does)")
    url = f"{server}/view?region={REGION}"
    shot = tmp_path / "view.png"
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", "--disable-extensions", "--mute-audio",
            "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1250"]
    env = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True,
                         timeout=180, env=env)
    assert dom.returncode == 0, dom.stderr[-2000:]
    doc = _Dom()
    doc.feed(dom.stdout)

    fig = doc.ids.get("contact-map")
    assert fig is not None, dom.stdout[:2000]
    assert (fig["data-chrom"], fig["data-start"], fig["data-end"]) == ("chr1", "0", "600000")
    assert fig["data-observed"] == fig["data-predicted"] == "1"
    assert "contact-map" in doc.ids and doc.ids["contact-map"]["tag"] == "figure"
    for track in ("track-atac", "track-dnase", "track-predicted-cage"):
        assert track in doc.ids, track
    assert doc.ids["tracks"]["data-tracks"] == "atac,dnase"
    marks = doc.with_class("loop-mark")
    rows = doc.with_class("loop-row")
    known = [m for m in marks if m["data-kind"] == "known"]
    assert known, "no known loop marked in the region"
    assert len(marks) == len(rows) and {m["data-kind"] for m in marks} <= {"known",
                                                                             "predicted"}
    for m in marks:
        assert 0 <= int(m["data-start1"]) < int(m["data-start2"]) <= 600_000
    assert "identity" in doc.ids
    tasks = {a["data-task"] for a in doc.with_class("model")}
    assert tasks == {"hic", "loops", "cage"}
    assert "run-loops" in dom.stdout and str(cached_genome().mcool) in dom.stdout

    grab = subprocess.run([*base, f"--screenshot={shot}", url], capture_output=True,
                          text=True, timeout=180, env=env)
    assert grab.returncode == 0, grab.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    log.info("viewer screenshot: %s", shot)
