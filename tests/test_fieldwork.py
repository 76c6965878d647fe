"""Field work in real headless Chromium on a phone viewport: place names at z6, z9 and z12 (no two overlap on
screen, above a base map too), an honest stand-in card, the field page reloaded with no network and the
server gone, a report made offline delivered once when the connection returns, the review screen accepting
a report (and a stale one refused with 412), and every error a page shows said in Persian.

The servers are the real service (uvicorn) on a copy of the sample store; Playwright drives Debian's
/usr/bin/chromium. Screenshots go to ``test-artifacts/`` (fieldwork-*.png).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import UNLIMITED
from test_maps import ARTIFACTS, CHROME_ARGS, CHROMIUM, VENDOR_MISSING

from coopgis.location_reports import REPORTS_FILE
from coopgis.settings import ROOT
from coopgis.text import norm

PHONE = {"viewport": {"width": 412, "height": 860}, "is_mobile": True, "has_touch": True}
LATIN = re.compile(r"[A-Za-z]")
# Overlaps of label texts on screen, each text box as the browser laid it out.
OVERLAPS = """() => {
  const view = document.querySelector('.folium-map').getBoundingClientRect();
  const boxes = [...document.querySelectorAll('.coop-label-text')].map(e => e.getBoundingClientRect())
    .filter(r => r.width && r.right > view.left && r.left < view.right && r.bottom > view.top && r.top < view.bottom);
  const hits = [];
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const a = boxes[i], b = boxes[j];
    if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) hits.push([i, j]);
  }
  return {count: boxes.length, overlaps: hits.length};
}"""


class Server:
    """``coopgis serve`` on a fixed loopback port, stopped and started again on the same port and data."""

    def __init__(self, folder: Path, log: Path, **env):
        self.folder, self.log, self.env = folder, log, env
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        env = dict(os.environ, **{f"COOPGIS_{k.upper()}": str(v) for k, v in UNLIMITED.items()}, **self.env)
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "coopgis.cli", "serve", "--data", str(self.folder),
                                      "--port", str(self.port)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                     cwd=ROOT)
        out.close()
        deadline = time.time() + 90
        while True:
            try:
                if httpx.get(self.url + "/whoami", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + self.log.read_text(errors="replace"))
            if time.time() > deadline:
                raise RuntimeError("server did not start within 90 s")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    if VENDOR_MISSING:
        pytest.skip("browser tests need the map libraries: npm ci --prefix coopgis/web")
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (pip '.[test]')")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROME_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def field(sample_store, tmp_path_factory):
    """A server of this module's own on a copy of the sample store, with a field officer's and an
    administrator's token."""
    from coopgis.auth import TokenStore

    folder = tmp_path_factory.mktemp("fieldwork")
    shutil.copytree(sample_store.folder, folder / "data")
    tokens = TokenStore(folder / "tokens.json")
    keys = {"field": tokens.add("بازرس میدانی", "field_officer"), "admin": tokens.add("مدیر بررسی", "admin")}
    server = Server(folder / "data", folder / "server.log", COOPGIS_TOKENS_FILE=str(folder / "tokens.json")).start()
    server.keys = keys
    yield server
    server.stop()


def context(browser, **more):
    ctx = browser.new_context(locale="fa-IR", **{**PHONE, **more})
    page = ctx.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return ctx, page


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"fieldwork-{name}.png"))


def settle(page, ms: int = 600) -> None:
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(ms)


def sign_in(page, token: str) -> None:
    page.fill(".coop-signin input[name=token]", token)
    page.click(".coop-signin button[type=submit]")
    page.wait_for_selector(".coop-session-name")


def coop(field, dataset, precision: tuple[str, ...], skip: int = 0) -> dict:
    """A located cooperative of these precisions, with what the API says of it."""
    coll = dataset.collections["cooperatives"]
    rows = np.flatnonzero(coll.frame["precision"].isin(precision).to_numpy() & np.isfinite(coll.lon))
    r = int(rows[skip])
    reg = str(coll.frame["registration_no"].iat[r])
    found = httpx.get(f"{field.url}/search", params={"q": reg}).json()["features"][0]
    return {"row": r, "reg": reg, "lon": float(coll.lon[r]), "lat": float(coll.lat[r]), "feature": found}


# ---- place names -----------------------------------------------------------------------------------

@pytest.mark.parametrize("zoom, where, kinds", [
    (6, (32.5, 53.5), {"province", "city"}),
    (9, (35.70, 51.40), {"county", "city"}),
    (12, (37.28, 49.58), {"village"}),
])
def test_place_names_at_z6_z9_z12_do_not_overlap(browser, field, zoom, where, kinds):
    ctx, page = context(browser)
    page.goto(field.url + "/maps/field", wait_until="networkidle")
    page.evaluate("([lat, lon, z]) => coopgis.state.map.setView([lat, lon], z, {animate: false})", [*where, zoom])
    page.wait_for_selector(".coop-label", timeout=15_000)
    settle(page, 900)
    shown = page.eval_on_selector_all(".coop-label", "els => els.map(e => [e.className, e.textContent])")
    found = {c.split("coop-label-")[1] for c, _ in shown}
    assert kinds <= found, found
    assert all(re.search("[\u0600-\u06ff]", t) and not LATIN.search(t) for _, t in shown)
    if zoom == 12:
        assert "province" not in found and "county" not in found
    layout = page.evaluate(OVERLAPS)
    assert layout["count"] >= 3 and layout["overlaps"] == 0, layout
    assert page.evaluate("getComputedStyle(document.querySelector('.coop-label')).fontFamily").startswith("Vazirmatn")
    shot(page, f"labels-z{zoom}")
    assert page.errors == []
    ctx.close()


@pytest.mark.parametrize("path", ["/maps/national", "/maps/deprivation", "/maps/sectors"])
def test_every_map_page_names_places(browser, field, path):
    ctx, page = context(browser, viewport={"width": 1000, "height": 700}, is_mobile=False, has_touch=False)
    page.goto(field.url + path, wait_until="networkidle")
    page.evaluate("coopgis.state.map.setView([35.70, 51.40], 9, {animate: false})")
    page.wait_for_selector(".coop-label-city", timeout=15_000)
    settle(page)
    names = page.eval_on_selector_all(".coop-label-text", "els => els.map(e => e.textContent)")
    assert "تهران" in names and page.evaluate(OVERLAPS)["overlaps"] == 0
    assert page.errors == []
    ctx.close()


def test_place_names_stay_above_a_base_map(browser, sample_store, tmp_path):
    """COOPGIS_BASEMAP_URL set to a local tile server drawing plain orange tiles: the names are drawn on top."""
    png = _orange_png()

    class Tiles(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(png)))
            self.end_headers()
            self.wfile.write(png)

        def log_message(self, *args):
            pass

    tiles = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    threading.Thread(target=tiles.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{tiles.server_address[1]}/{{z}}/{{x}}/{{y}}.png"
    server = Server(sample_store.folder, tmp_path / "server.log", COOPGIS_BASEMAP_URL=base).start()
    try:
        ctx, page = context(browser)
        page.goto(server.url + "/maps/national", wait_until="networkidle")
        page.evaluate("coopgis.state.map.setView([35.7, 51.4], 9, {animate: false})")
        page.wait_for_selector(".coop-label", timeout=15_000)
        page.wait_for_selector("img.leaflet-tile-loaded", timeout=15_000)
        settle(page, 900)
        # hit-testing as if the names took pointer events (they do not, so the map below stays clickable)
        page.add_style_tag(content=".leaflet-pane, .coop-label-icon, .coop-label, .coop-label * "
                                   "{pointer-events: auto !important}")
        on_top = page.evaluate("""() => [...document.querySelectorAll('.coop-label-text')].map(t => {
            const r = t.getBoundingClientRect(), x = r.left + r.width / 2, y = r.top + r.height / 2;
            if (x < 0 || y < 0 || x > innerWidth || y > innerHeight) return null;
            const top = document.elementFromPoint(x, y);
            return top === null ? null : (t.contains(top) || top.contains(t) ? 'label' : top.className.baseVal ||
              top.className);
        }).filter(v => v !== null)""")
        assert on_top.count("label") > 0
        assert not any("leaflet-tile" in str(v) for v in on_top)      # never under the base map's tiles
        panes = page.evaluate("""() => [getComputedStyle(coopgis.state.map.getPane('coopLabels')).zIndex,
            getComputedStyle(coopgis.state.map.getPane('tilePane')).zIndex]""")
        assert int(panes[0]) > int(panes[1])
        shot(page, "labels-over-basemap")
        ctx.close()
    finally:
        server.stop()
        tiles.shutdown()


def _orange_png() -> bytes:
    import struct
    import zlib

    row = b"\x00" + b"\xf5\xa6\x23" * 256
    raw = zlib.compress(row * 256)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 256, 256, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


# ---- honest lists ----------------------------------------------------------------------------------

def test_a_stand_in_card_says_so_and_sends_directions_to_a_named_place(browser, field, dataset):
    found = None
    for skip in range(40):
        c = coop(field, dataset, ("rural_district",), skip)
        if c["feature"]["properties"]["directions"]:
            found = c
            break
    assert found, "no rural-district stand-in with a named place in the sample"
    here = {"latitude": found["lat"] - 0.03, "longitude": found["lon"] + 0.02}
    ctx, page = context(browser, geolocation=here, permissions=["geolocation"])
    page.goto(field.url + "/maps/field", wait_until="networkidle")
    page.click(".coop-locate")
    page.wait_for_selector(".coop-result", timeout=15_000)
    page.fill(".coop-search input[name=q]", found["reg"])
    page.click(".coop-search button[type=submit]")
    card = page.locator(f".coop-result[data-registration-no='{found['reg']}']")
    card.wait_for(timeout=15_000)
    api = httpx.get(f"{field.url}/search", params={"q": found["reg"], "lon": here["longitude"],
                                                 "lat": here["latitude"]}).json()["features"][0]["properties"]
    assert card.get_attribute("data-stand-in") == "true"
    text = card.inner_text()
    assert f"نقطه نماینده دهستان {api['stand_in_for']['name']}" in text
    assert card.locator(".coop-distance").inner_text().startswith("حدود ")
    assert "تا نقطه نماینده، نه تا خود تعاونی" in text
    assert "جای دقیق این تعاونی هنوز معلوم نیست" in text and "«گزارش مکان درست»" in text
    link = card.locator("a.coop-directions")
    target = api["directions"]
    assert link.get_attribute("href") == target["geo_uri"]
    assert link.inner_text().startswith(f"مسیریابی تا {target['level_fa']} {target['name']}")
    x, y = found["lon"], found["lat"]
    assert f"geo:{y:.6f},{x:.6f}" not in link.get_attribute("href") or target["level"] == "village"
    assert "coop-primary" in card.locator(".coop-report-open").get_attribute("class")
    card.scroll_into_view_if_needed()
    shot(page, "stand-in-card")
    assert page.errors == []
    ctx.close()


# ---- offline ---------------------------------------------------------------------------------------

def test_offline_reload_and_a_queued_report_delivered_once(browser, field, dataset):
    c = coop(field, dataset, ("village", "city", "exact"), 3)
    here = {"latitude": c["lat"] + 0.004, "longitude": c["lon"] + 0.004}
    ctx, page = context(browser, geolocation=here, permissions=["geolocation"])
    page.goto(field.url + "/maps/field", wait_until="networkidle")
    sign_in(page, field.keys["field"])
    page.click(".coop-locate")
    page.wait_for_selector(".coop-result", timeout=15_000)
    page.wait_for_selector(".coop-pack-file", timeout=30_000)          # the county's pack is kept
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=30_000)
    settle(page)
    online_names = page.eval_on_selector_all(".coop-result", "els => els.map(e => e.dataset.registrationNo)")
    api = httpx.get(f"{field.url}/nearest", params={"lon": f"{here['longitude']:.6f}",
                                                  "lat": f"{here['latitude']:.6f}", "limit": 10}).json()
    assert [f["id"] for f in api["features"]] == online_names
    in_county = [f["id"] for f in api["features"] if f["properties"]["county"] == api["county"]["name_fa"]]

    field.stop()                       # no server at all, and the browser offline
    ctx.set_offline(True)
    try:
        page.reload(wait_until="load")
        page.wait_for_selector(".coop-field-bar", timeout=20_000)
        assert page.evaluate("document.fonts.check('14px Vazirmatn')")
        assert page.inner_text(".coop-session-name") == "بازرس میدانی"      # signed in until خروج
        page.click(".coop-locate")
        page.wait_for_selector(".coop-result", timeout=20_000)
        status = page.inner_text(".coop-status")
        assert status.startswith(f"بدون اتصال — از بسته آفلاین شهرستان {api['county']['name_fa']} (فقط تعاونی‌های همین")
        offline_names = page.eval_on_selector_all(".coop-result", "els => els.map(e => e.dataset.registrationNo)")
        assert offline_names[:len(in_county)] == in_county              # the same rules, on the county's pack
        page.wait_for_selector(".coop-label", timeout=10_000)          # village names from the pack
        settle(page, 1200)
        shot(page, "offline-reload")

        page.locator(f".coop-result[data-registration-no='{c['reg']}'] .coop-report-open").click()
        page.fill(".coop-report input[name=accuracy_m]", "9")
        page.fill(".coop-report textarea[name=note]", "ثبت بی‌اینترنت")
        page.click(".coop-report button[type=submit]")
        page.wait_for_selector(".coop-report-answer.queued", timeout=15_000)
        assert "در صف" in page.inner_text(".coop-report-answer")
        queued = json.loads(page.evaluate("localStorage.getItem('coopgis.queue')"))
        assert len(queued) == 1 and queued[0]["reg"] == c["reg"] and len(queued[0]["key"]) >= 16
        page.locator(".coop-queue-status").scroll_into_view_if_needed()
        shot(page, "offline-queued")
    finally:
        field.start()
        ctx.set_offline(False)
    page.wait_for_function("() => JSON.parse(localStorage.getItem('coopgis.queue') || '[]').length === 0",
                           timeout=60_000)
    page.wait_for_selector(".coop-report-answer.ok", timeout=15_000)
    assert "گزارش ثبت شد" in page.inner_text(".coop-report-answer")
    page.wait_for_selector(".coop-status:not(:has-text('بدون اتصال'))", timeout=15_000)
    settle(page, 800)
    page.locator(".coop-report-answer").scroll_into_view_if_needed()
    shot(page, "queued-delivered")
    records = [json.loads(line) for line in (field.folder / REPORTS_FILE).read_text().splitlines()]
    mine = [r for r in records if r.get("idempotency_key") == queued[0]["key"]]
    assert len(mine) == 1 and mine[0]["reporter"] == "بازرس میدانی" and mine[0]["note"] == norm("ثبت بی‌اینترنت")
    # sent again (a lost answer), it stays one report
    again = httpx.post(f"{field.url}/cooperatives/{c['reg']}/location-reports", json=queued[0]["body"],
                       headers={"Authorization": f"Bearer {field.keys['field']}", "Idempotency-Key": queued[0]["key"]})
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert sum(json.loads(x).get("idempotency_key") == queued[0]["key"]
               for x in (field.folder / REPORTS_FILE).read_text().splitlines()) == 1
    # offline, the boundary tiles' library (Leaflet.VectorGrid) leaves its failed fetches unhandled; nothing else
    assert [e for e in page.errors if e != "Failed to fetch"] == []
    ctx.close()


def test_the_packs_map_opens_from_disk_with_no_network(browser, field, dataset, tmp_path):
    county = int(dataset.cooperatives["county_osm"].value_counts().index[0])
    r = httpx.get(f"{field.url}/packs/{county}.zip", headers={"Authorization": f"Bearer {field.keys['field']}"},
                  timeout=60)
    assert r.status_code == 200
    with zipfile.ZipFile(__import__("io").BytesIO(r.content)) as zf:
        zf.extract("map.html", tmp_path)
    ctx, page = context(browser)
    requests = []
    page.on("request", lambda q: requests.append(q.url))
    ctx.set_offline(True)
    page.goto((tmp_path / "map.html").as_uri(), wait_until="load")
    page.wait_for_selector("path.coop-point, .coop-cluster", state="attached", timeout=15_000)
    page.evaluate("coopgis.state.map.setZoom(11, {animate: false})")
    page.wait_for_selector(".coop-label-village, .coop-label-village_unsure", timeout=15_000)
    settle(page, 800)
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert page.locator("path.coop-coarse").count() + page.locator("path.coop-precise").count() > 0
    assert page.evaluate(OVERLAPS)["overlaps"] == 0
    shot(page, "pack-map")
    assert page.errors == []
    ctx.close()


# ---- review ----------------------------------------------------------------------------------------

def test_the_review_screen_accepts_a_report_and_refuses_a_stale_one(browser, field, dataset):
    c = coop(field, dataset, ("rural_district", "district"), 5)
    officer = {"Authorization": f"Bearer {field.keys['field']}"}
    admin = {"Authorization": f"Bearer {field.keys['admin']}"}
    to = {"lon": round(c["lon"] + 0.021, 6), "lat": round(c["lat"] - 0.013, 6)}
    report = httpx.post(f"{field.url}/cooperatives/{c['reg']}/location-reports", headers=officer,
                        json={**to, "accuracy_m": 35, "reason": "تابلو را دیدم", "note": "کنار مدرسه"}).json()
    other = {"lon": round(c["lon"] - 0.011, 6), "lat": round(c["lat"] + 0.009, 6)}
    second = httpx.post(f"{field.url}/cooperatives/{c['reg']}/location-reports", headers=officer,
                        json={**other, "accuracy_m": 5, "reason": "جای دیگر"}).json()
    ctx, page = context(browser, viewport={"width": 1100, "height": 1000}, is_mobile=False, has_touch=False)
    page.goto(field.url + "/admin/reports", wait_until="networkidle")
    assert "کلید دسترسی مدیر" in page.inner_text("#review")
    sign_in(page, field.keys["admin"])
    card = page.locator(f".review-card[data-report-id='{report['id']}']")
    card.wait_for(timeout=15_000)
    page.wait_for_function("id => !document.querySelector(`.review-card[data-report-id='${id}'] .review-current`)"
                           ".textContent.includes('در حال')", arg=report["id"], timeout=15_000)
    assert card.locator(".review-reporter dd").inner_text() == "بازرس میدانی"
    assert card.locator(".review-reason dd").inner_text() == "تابلو را دیدم"
    assert card.locator(".review-accuracy dd").inner_text() == "۳۵ متر"
    assert card.locator("path.review-proposed").count() == 1 and card.locator("path.review-old").count() == 1
    assert card.locator("path.review-accuracy-circle").count() == 1
    # meanwhile another administrator decides on another report of the cooperative: the page's ETag is stale
    etag = httpx.get(f"{field.url}/cooperatives/{c['reg']}", headers=admin).headers["etag"]
    decided = httpx.post(f"{field.url}/location-reports/{second['id']}/decision", headers={**admin, "If-Match": etag},
                         json={"decision": "rejected", "comment": "تکراری"})
    assert decided.status_code == 200, decided.text
    card.locator("textarea[name=comment]").fill("با عکس تأیید شد")
    card.locator(".review-accept").click()
    card.locator(".review-answer.error").wait_for(timeout=15_000)
    assert "تغییر کرده" in card.locator(".review-answer").inner_text()            # 412, in Persian
    page.wait_for_timeout(500)
    card.locator(".review-accept").click()                                        # with the ETag read again
    page.wait_for_selector(".review-answer.ok", timeout=15_000)
    shot(page, "review-accepted")
    page.wait_for_function("id => !document.querySelector(`.review-card[data-report-id='${id}']`)",
                           arg=report["id"], timeout=15_000)
    page.wait_for_selector(".review-event-accepted", timeout=15_000)
    events = httpx.get(f"{field.url}/audit", headers=admin).json()["events"]
    last = events[-1]
    assert last["event"] == "decision" and last["report_id"] == report["id"] and last["decision"] == "accepted"
    assert last["by"] == "مدیر بررسی" and last["comment"] == "با عکس تأیید شد"
    assert page.locator(".review-event-accepted").first.locator("td").nth(4).inner_text() == "با عکس تأیید شد"
    moved = httpx.get(f"{field.url}/cooperatives/{c['reg']}").json()
    assert moved["properties"]["precision"] == "verified"
    assert moved["geometry"]["coordinates"] == pytest.approx([to["lon"], to["lat"]], abs=1e-6)
    page.set_viewport_size({"width": 1100, "height": 1400})
    shot(page, "review-after")
    assert page.errors == []
    ctx.close()


# ---- errors in Persian ------------------------------------------------------------------------------

def test_every_error_a_page_shows_is_persian(browser, field, dataset):
    a, b = coop(field, dataset, ("village", "city"), 7), coop(field, dataset, ("village", "city"), 8)
    ctx, page = context(browser)
    page.goto(field.url + "/maps/field", wait_until="networkidle")
    # 401 through the sign-in box
    page.fill(".coop-signin input[name=token]", "not-a-token")
    page.click(".coop-signin button[type=submit]")
    page.wait_for_selector(".coop-signin-answer.error")
    assert page.inner_text(".coop-signin-answer") == "این کلید دسترسی شناخته نشد یا باطل شده است."
    sign_in(page, field.keys["field"])
    # the server's answers, each explained by the page's own messages (coopgis.messages.explain)
    texts = page.evaluate("""async ([base, field, admin, reg, other]) => {
      const M = coopgis.messages, out = {};
      const post = (url, body, headers) => M.request(base + url, {method: 'POST', body: JSON.stringify(body),
        headers: Object.assign({'Content-Type': 'application/json'}, headers)});
      const good = {lon: 51.389, lat: 35.6892, accuracy_m: 10, reason: 'آزمون'};
      const F = {Authorization: 'Bearer ' + field}, A = {Authorization: 'Bearer ' + admin};
      let r = await post('/cooperatives/' + reg + '/location-reports', Object.assign({}, good, {accuracy_m: 0}), F);
      out[400] = [r.status, M.explain(r, 'report')];
      r = await M.request(base + '/whoami', {headers: {Authorization: 'Bearer nope'}});
      out[401] = [r.status, M.explain(r, 'signin')];
      const first = await post('/cooperatives/' + reg + '/location-reports', good, F);
      r = await post('/location-reports/' + first.body.id + '/decision', {decision: 'rejected'}, F);
      out[403] = [r.status, M.explain(r, 'decision')];
      r = await post('/location-reports/' + first.body.id + '/decision', {decision: 'rejected'}, A);
      out[428] = [r.status, M.explain(r, 'decision')];
      r = await post('/location-reports/' + first.body.id + '/decision', {decision: 'rejected'},
        Object.assign({'If-Match': '"stale"'}, A));
      out[412] = [r.status, M.explain(r, 'decision')];
      for (let i = 0; i < 4; i++) { await post('/cooperatives/' + reg + '/location-reports', good, F); }
      r = await post('/cooperatives/' + reg + '/location-reports', good, F);
      out[429] = [r.status, M.explain(r, 'report')];
      const etag = (await M.request(base + '/cooperatives/' + reg, {headers: A})).headers.get('ETag');
      await post('/location-reports/' + first.body.id + '/decision', {decision: 'rejected'},
        Object.assign({'If-Match': etag}, A));
      r = await post('/location-reports/' + first.body.id + '/decision', {decision: 'accepted'},
        Object.assign({'If-Match': etag}, A));
      out[409] = [r.status, M.explain(r, 'decision')];
      r = await post('/cooperatives/' + other + '/location-reports', Object.assign({}, good,
        {note: 'ن'.repeat(9000)}), F);
      out[413] = [r.status, M.explain(r, 'report')];
      r = await M.request(base + '/nearest?lon=0&lat=0');
      out['400-zero'] = [r.status, M.explain(r, 'nearest')];
      return out;
    }""", [field.url, field.keys["field"], field.keys["admin"], a["reg"], b["reg"]])
    for want, (status, text) in texts.items():
        assert status == int(str(want)[:3]), (want, status, text)
        assert re.search("[\u0600-\u06ff]{3}", text) and not LATIN.search(text), (want, text)
    assert "دقت مکان" in texts["400"][1] and "صفر" in texts["400-zero"][1]
    assert "بررسی‌نشده" in texts["429"][1] and "تغییر کرده" in texts["412"][1]
    # and in the report form: a sixth pending report of a cooperative (at most 5) is a Persian 429
    assert httpx.post(f"{field.url}/cooperatives/{a['reg']}/location-reports",
                      headers={"Authorization": f"Bearer {field.keys['field']}"},
                      json={"lon": 51.389, "lat": 35.6892, "accuracy_m": 10, "reason": "آزمون"}).status_code == 201
    page.fill(".coop-search input[name=q]", a["reg"])
    page.click(".coop-search button[type=submit]")
    page.locator(f".coop-result[data-registration-no='{a['reg']}'] .coop-report-open").click()
    page.fill(".coop-report input[name=accuracy_m]", "12")
    page.click(".coop-report button[type=submit]")
    page.wait_for_selector(".coop-report-answer.queued", timeout=15_000)
    answer = page.inner_text(".coop-report-answer")
    assert "بررسی‌نشده" in answer and not LATIN.search(answer)
    shot(page, "persian-error")
    ctx.close()

