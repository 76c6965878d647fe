"""Map presets, map pages, /vendor, the dashboard and standalone files; the pages in real headless Chromium.

Browser tests drive Debian's /usr/bin/chromium through Playwright against a real uvicorn server
(``maps_server``, here with its log in a file, and a second one whose registry holds hostile
cooperative names). They are
skipped, with the reason, when Chromium or the npm-installed map libraries are missing.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import geopandas as gpd
import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import UNLIMITED
from shapely.geometry import Point

from coopgis.assets import ASSETS, missing_assets, read_asset
from coopgis.maps import WEB, MapSettings, PresetError, load_preset, load_presets
from coopgis.settings import ROOT, ServiceSettings
from coopgis.text import to_persian_digits
from coopgis.vocab import GALAXY_SECTORS

CHROMIUM = Path("/usr/bin/chromium")
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts"
MAP_PAGES = ("/maps/national", "/maps/deprivation", "/maps/field", "/maps/sectors")
HOSTILE = "<img src=x onerror=alert(1)>"
BACKTICK = "تعاونی `بک‌تیک` </script><b>{{7*7}}</b> ${alert(2)} {# x"
VENDOR_MISSING = bool(missing_assets(WEB))
needs_vendor = pytest.mark.skipif(VENDOR_MISSING, reason="map libraries not installed: npm ci --prefix coopgis/web")
PRESET = """title_fa = "چاه‌های آزمون"
title_en = "Test wells"
[[layers]]
id = "coops"
source = "cooperatives"
title_fa = "تعاونی‌ها"
title_en = "Cooperatives"
"""


# ---- presets --------------------------------------------------------------------------------

def test_shipped_presets_load():
    presets, broken = load_presets(ROOT / "maps")
    assert broken == {}
    assert list(presets) == ["national", "troubled", "deprivation", "field", "sectors"]
    national = presets["national"]
    assert [s.source for s in national.layers] == ["provinces", "counties", "deprivation", "counties", "counties",
                                                   "cooperatives"]
    assert [s.style for s in national.layers[3:5]] == ["unemployment", "illiteracy"]
    assert national.controls["troubled"] and "cooperatives_per_10k" in national.controls["measures"]
    assert presets["troubled"].filters == {"status": "troubled"}
    assert national.layers[1].min_zoom == 7 and national.layers[2].show is False
    assert {s.filters.get("sector") for s in presets["sectors"].layers if s.source == "cooperatives"} == \
        set(GALAXY_SECTORS)
    assert presets["deprivation"].layers[-1].filters == {"deprived": "true"}


@pytest.mark.parametrize("text, where", [
    (PRESET.replace('title_en = "Test wells"', 'title_en = "Test wells"\ntitel_fa = "x"'), "titel_fa"),
    (PRESET.replace('source = "cooperatives"', 'source = "roads"'), "layers[0].source"),
    (PRESET.replace('source = "cooperatives"', 'source = "provinces"\nstyle = "heatmap"'), "layers[0].style"),
    (PRESET.replace('source = "cooperatives"', 'source = "provinces"\nfilters = { kind = "rural" }'),
     "layers[0].filters"),
    (PRESET.replace('source = "cooperatives"', 'source = "cooperatives"\nfilters = { kind = "spaceships" }'),
     "layers[0].filters.kind"),
    (PRESET + '[filters]\ndeprived = "yes"\n', "filters.deprived"),
    (PRESET + '[styling.kinds]\nproduction = "green"\n', "styling.kinds.production"),
    (PRESET + '[styling.kinds]\nspaceships = "#112233"\n', "styling.kinds.spaceships"),
    (PRESET + '[[legend.items]]\nlabel_fa = "x"\nswatch = "star"\n', "legend.items[0].swatch"),
    (PRESET + '[view]\nzoom = 30\n', "view.zoom"),
    (PRESET.replace('title_en = "Test wells"\n', ""), "title_en"),
    ('name = "other"\n' + PRESET, "name"),
    (PRESET.replace("[[layers]]", "layers = 3\n[[layerz]]"), "layers"),
    ("title_fa = 'unclosed\n", "not valid TOML"),
])
def test_preset_errors_name_the_file_and_key(tmp_path, text, where):
    path = tmp_path / "wells.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PresetError) as err:
        load_preset(path)
    assert str(err.value).startswith("wells.toml: ")
    assert where in str(err.value)


@pytest.fixture()
def app_with_maps(dataset, sample_store):
    """A TestClient factory for an app with given map settings (or COOPGIS_* from the environment)."""
    from fastapi.testclient import TestClient

    from coopgis.app import create_app

    def make(map_settings: MapSettings | None = None) -> TestClient:
        return TestClient(create_app(ServiceSettings(data=sample_store.folder), dataset, map_settings))

    return make


def test_a_new_preset_file_is_listed_and_rendered(tmp_path, monkeypatch, app_with_maps):
    shutil.copy(ROOT / "maps" / "national.toml", tmp_path / "national.toml")
    monkeypatch.setenv("COOPGIS_MAPS_DIR", str(tmp_path))
    client = app_with_maps()
    assert [m["name"] for m in client.get("/maps?f=json").json()["maps"]] == ["national"]
    (tmp_path / "wells.toml").write_text(PRESET, encoding="utf-8")      # added while the app runs
    listed = client.get("/maps?f=json").json()
    assert [m["name"] for m in listed["maps"]] == ["national", "wells"]
    assert listed["maps"][1]["title_en"] == "Test wells" and listed["broken"] == []
    page = client.get("/maps", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "/maps/wells" in page.text and "چاه‌های آزمون" in page.text
    r = client.get("/maps/wells")
    if VENDOR_MISSING:
        assert r.status_code == 503
    else:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "<title>چاه‌های آزمون — coopgis</title>" in r.text
        assert 'coopgis.layer("coops")' in r.text


def test_a_page_rendered_in_the_child_process_is_the_page(dataset, caplog):
    """The server renders map pages in a child process (folium stays out of every worker): the page is
    the one rendered in process, but for folium's random element ids, and no fallback was needed."""
    from coopgis.mappage import Page, page_facts, render_page
    from coopgis.mapview import render_preset

    preset = load_preset(ROOT / "maps" / "national.toml")
    page = Page(base="/coop", web_dir=WEB, facts=page_facts(dataset, 11), basemap_url=None)
    ids = re.compile(r"_[0-9a-f]{32}(?![0-9a-f])")
    with caplog.at_level("WARNING", logger="coopgis"):
        child = render_page(preset, page)
    assert not [r for r in caplog.records if "child process failed" in r.getMessage()]
    assert ids.sub("_ID", child) == ids.sub("_ID", render_preset(preset, page))
    assert "/coop/vendor/" in child and "<title>نمای ملی" in child


def test_serving_a_map_page_leaves_folium_out_of_the_server(sample_store):
    """13 MB per worker: the served process answers /maps/national without importing folium or branca."""
    script = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from coopgis.app import create_app\n"
        "from coopgis.settings import ServiceSettings\n"
        f"client = TestClient(create_app(ServiceSettings(data={str(sample_store.folder)!r})))\n"
        "r = client.get('/maps/national')\n"
        "assert r.status_code in (200, 503), r.status_code\n"
        "print(r.status_code, sorted(m for m in ('folium', 'branca') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    status, loaded = done.stdout.strip().split(" ", 1)
    assert loaded == "[]" and status == ("503" if VENDOR_MISSING else "200")


def test_a_broken_preset_is_reported_not_fatal(tmp_path, app_with_maps):
    shutil.copy(ROOT / "maps" / "field.toml", tmp_path / "field.toml")
    (tmp_path / "broken.toml").write_text(PRESET.replace('source = "cooperatives"', 'source = "roads"'),
                                          encoding="utf-8")
    client = app_with_maps(MapSettings(maps_dir=tmp_path))
    listed = client.get("/maps?f=json").json()
    assert [m["name"] for m in listed["maps"]] == ["field"]
    assert listed["broken"][0]["name"] == "broken" and "broken.toml: layers[0].source" in listed["broken"][0]["error"]
    r = client.get("/maps/broken")
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    assert "layers[0].source" in r.json()["detail"]


def test_unknown_map_is_a_404_problem(client):
    r = client.get("/maps/atlantis")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert "national" in r.json()["detail"]


def test_missing_map_libraries_give_503_and_the_app_still_serves(tmp_path, app_with_maps):
    client = app_with_maps(MapSettings(web_dir=tmp_path))
    for path in ("/maps/national", "/vendor/leaflet/leaflet.js"):
        r = client.get(path)
        assert r.status_code == 503, path
        assert r.headers["content-type"] == "application/problem+json"
        assert "npm ci --prefix coopgis/web" in r.json()["detail"]
    assert client.get("/maps?f=json").status_code == 200
    assert client.get("/dashboard").status_code == 200
    assert client.get("/collections?f=json").status_code == 200


@needs_vendor
def test_vendor_serves_the_allow_list_only(client):
    r = client.get("/vendor/leaflet/leaflet.js", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert r.headers["content-encoding"] == "gzip" and "max-age" in r.headers["cache-control"]
    assert r.content == read_asset(WEB, "leaflet/leaflet.js")
    assert client.get("/vendor/leaflet/leaflet.js", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    font = client.get("/vendor/vazirmatn/Vazirmatn-Variable.woff2")
    assert font.status_code == 200 and font.headers["content-type"] == "font/woff2"
    for path in ("/vendor/leaflet/package.json", "/vendor/leaflet.vectorgrid/dist/Leaflet.VectorGrid.js",
                 "/vendor/coopgis/../../maps.py", "/vendor/%2e%2e/%2e%2e/pyproject.toml", "/vendor/"):
        assert client.get(path).status_code == 404, path


@needs_vendor
@pytest.mark.parametrize("path", MAP_PAGES)
def test_map_pages_load_everything_from_the_app_and_suit_a_strict_csp(client, path):
    r = client.get(path)
    assert r.status_code == 200
    html = r.text
    refs = re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", html)
    assert refs and all(ref.startswith("/vendor/") for ref in refs), refs
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", html, re.I), "inline event handler"
    assert "javascript:" not in html.lower()
    assert not re.search(r"https?://", html.split('id="coopgis-config"')[0]), "absolute URL in the page head"
    assert "FeatureCollection" not in html            # data comes through tiles


@needs_vendor
def test_base_map_comes_from_the_setting_only(dataset, sample_store):
    from fastapi.testclient import TestClient

    from coopgis.app import create_app

    plain = TestClient(create_app(ServiceSettings(data=sample_store.folder), dataset)).get("/maps/national").text
    assert "L.tileLayer(" not in plain                    # unset: boundaries only
    url = "/basemap/{z}/{x}/{y}.png"
    with_base = TestClient(create_app(ServiceSettings(data=sample_store.folder, basemap_url=url), dataset))
    html = with_base.get("/maps/national").text
    assert "L.tileLayer(" in html and '"/basemap/{z}/{x}/{y}.png"' in html


@needs_vendor
def test_scripts_have_no_eval_and_own_scripts_no_html_sinks():
    for name, asset in ASSETS.items():
        if not asset.media.startswith("text/javascript"):
            continue
        text = read_asset(WEB, name).decode("utf-8")
        assert not re.search(r"\beval\s*\(|new\s+Function\s*\(", text), name
        if asset.origin == "own":
            assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|https?://", text), name


@needs_vendor
def test_national_page_stays_small_with_100k_cooperatives(sample_store, boundaries, geocoder):
    from fastapi.testclient import TestClient

    from coopgis.app import create_app

    big = _big_dataset(sample_store, boundaries, geocoder, 100_000)
    client = TestClient(create_app(ServiceSettings(data=sample_store.folder), big))
    r = client.get("/maps/national", headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200
    assert len(r.content) < 300_000, len(r.content)
    assert b"FeatureCollection" not in r.content and b'"registration_no"' not in r.content
    tile = client.get("/tiles/cooperatives/5/20/12.geojson").json()
    assert sum(f["properties"]["count"] for f in tile["features"]) > 1000
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "national-100k.bytes").write_text(str(len(r.content)))


def test_dashboard_numbers_are_the_stats(client):
    html = client.get("/dashboard").text
    stats = client.get("/stats?by=province").json()["rows"]
    total = stats[-1]
    foot = html.split("<tfoot>")[1]
    shown = dict(re.findall(r'<td data-key="(\w+)" data-value="(\d+)"', foot))
    assert shown and all(int(v) == total[k] for k, v in shown.items())
    body = html.split("<tbody>")[1].split("</tbody>")[0]
    for row in stats[:-1]:
        cells = re.search(rf'<tr id="{re.escape(row["key"])}".*?</tr>', body, re.S).group(0)
        assert int(re.search(r'data-key="jobs" data-value="(\d+)"', cells).group(1)) == row["jobs"]
    assert to_persian_digits(f"{total['cooperatives']:,}") in html
    assert "/stats?by=province&amp;f=csv" in html and 'lang="fa" dir="rtl"' in html
    assert "/maps/national?province=" in html and "<svg" in html


# ---- standalone files ---------------------------------------------------------------------------

def test_render_refuses_a_too_large_selection(dataset):
    from coopgis.maps import load_presets
    from coopgis.standalone import SelectionTooLarge, parse_filters, render_standalone

    presets, _ = load_presets(ROOT / "maps")
    with pytest.raises(SelectionTooLarge) as err:
        render_standalone(presets["national"], dataset, parse_filters(dataset, {}), MapSettings(max_render=100))
    assert err.value.matched == len(dataset.cooperatives)
    assert f"{len(dataset.cooperatives):,} cooperatives match" in str(err.value) and "--province" in str(err.value)


@needs_vendor
def test_render_command_exits_2_above_the_limit(sample_store, tmp_path, monkeypatch, capsys):
    from coopgis.cli import main

    monkeypatch.setenv("COOPGIS_MAX_RENDER", "100")
    out = tmp_path / "all.html"
    assert main(["render", "national", "--out", str(out), "--data", str(sample_store.folder)]) == 2
    err = capsys.readouterr().err
    assert re.search(r"[0-9,]+ cooperatives match; a standalone file holds at most 100", err)
    assert "--province" in err and not out.exists()
    assert main(["render", "national", "--kind", "spaceships", "--out", str(out),
                 "--data", str(sample_store.folder)]) == 2
    assert main(["render", "field", "--out", str(out), "--data", str(sample_store.folder)]) == 2


@pytest.fixture(scope="module")
def standalone_file(hostile_store, tmp_path_factory):
    """A standalone national map of the hostile registry's first province, made by the CLI."""
    if VENDOR_MISSING:
        pytest.skip("map libraries not installed: npm ci --prefix coopgis/web")
    from coopgis.cli import main

    store, rows = hostile_store
    out = tmp_path_factory.mktemp("render") / "province.html"
    assert main(["render", "national", "--province", rows[0]["province"], "--out", str(out),
                 "--data", str(store.folder)]) == 0
    return out, rows


def test_standalone_file_loads_nothing_from_anywhere(standalone_file):
    path, rows = standalone_file
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"""<(?:script|img|iframe|link)\b[^>]*\b(?:src|href)\s*=\s*(?!["']?data:)""", text, re.I)
    assert not re.search(r"""url\(\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert "@import" not in text
    data = json.loads(re.search(r'<script type="application/json" id="coopgis-data">(.*?)</script>', text,
                                re.S).group(1))
    features = data["cooperatives"]["features"]
    assert 0 < len(features) <= 5000
    assert {f["properties"]["province"] for f in features} == {rows[0]["province"]}
    assert any(f["properties"]["name"] == HOSTILE for f in features)
    assert HOSTILE not in text and "</script><b>" not in text     # names sit escaped in the JSON


# ---- browsers ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hostile_store(sample_store, tmp_path_factory):
    """The sample registry with two cooperatives renamed to hostile text, each alone at its own point."""
    from coopgis.store import FileStore

    frame = sample_store.read()
    picks = frame.index[frame["precision"].isin(["village", "city", "exact"])][:2]
    rows = []
    for i, name in zip(picks, (HOSTILE, BACKTICK), strict=False):
        p = frame.geometry.at[i]
        frame.at[i, "name"] = name
        frame.at[i, "precision"] = "exact"
        frame.loc[[i], "geometry"] = gpd.GeoSeries([Point(p.x + 0.137, p.y + 0.071)], index=[i], crs=frame.crs)
        rows.append({"registration_no": str(frame.at[i, "registration_no"]), "name": name,
                     "lon": p.x + 0.137, "lat": p.y + 0.071, "province": frame.at[i, "province"]})
    store = FileStore(tmp_path_factory.mktemp("hostile"))
    store.write(frame, sample_store.read_report())
    return store, rows


@pytest.fixture(scope="module")
def maps_server(sample_store, tmp_path_factory):
    """A server of the browser tests' own on the sample dataset: the service's default page limits (conftest's
    ``live_server`` lowers them for GDAL), rate limits raised, its log in a file."""
    with _serving(sample_store.folder, tmp_path_factory.mktemp("log") / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def hostile_server(hostile_store, tmp_path_factory):
    """The hostile registry served, with a field officer's token (reports need one)."""
    from coopgis.auth import TokenStore

    store, rows = hostile_store
    folder = tmp_path_factory.mktemp("log")
    token = TokenStore(folder / "tokens.json").add("بازرس آزمون", "field_officer")
    with _serving(store.folder, folder / "server.log", COOPGIS_TOKENS_FILE=str(folder / "tokens.json")) as url:
        yield url, rows, store, token


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


class Visit:
    """One page in a fresh browser context, recording console errors, requests and dialogs."""

    def __init__(self, browser, url: str, wait_for: str | None = None, init_script: str | None = None, **context):
        context.setdefault("viewport", {"width": 1280, "height": 800})
        self.context = browser.new_context(locale="fa-IR", **context)
        if init_script:                      # runs before any script of the page
            self.context.add_init_script(init_script)
        self.page = self.context.new_page()
        self.errors, self.requests, self.dialogs = [], [], []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", self._dialog)
        self.page.goto(url, wait_until="networkidle")
        if wait_for:
            self.page.wait_for_selector(wait_for, state="attached", timeout=15_000)

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def foreign(self, base: str) -> list[str]:
        return [u for u in self.requests if not (u.startswith(base + "/") or u.startswith("data:"))]

    def total(self) -> int:
        return int(self.page.get_attribute(".coop-counter", "data-total"))

    def settle(self) -> None:
        self.page.wait_for_load_state("networkidle")
        self.page.wait_for_timeout(300)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.context.close()


READY = {"/maps/national": ".coop-cluster", "/maps/deprivation": "path.coop-class-no_data",
         "/maps/field": ".coop-field-bar", "/maps/sectors": ".coop-cluster", "/dashboard": "#province-table",
         "/maps": ".map-cards"}


@pytest.mark.parametrize("path", list(READY))
def test_page_loads_with_no_errors_and_no_foreign_requests(browser, maps_server, path):
    with Visit(browser, maps_server + path, wait_for=READY[path]) as v:
        v.settle()
        v.shot("page-" + (path.strip("/").replace("/", "-")))
        assert v.errors == []
        assert v.foreign(maps_server) == []
        assert v.page.evaluate("document.documentElement.dir") == "rtl"
        assert v.page.evaluate("getComputedStyle(document.body).fontFamily").startswith("Vazirmatn")


def _located(dataset, mask=None) -> int:
    coll = dataset.collections["cooperatives"]
    ok = np.isfinite(coll.lon) & np.isfinite(coll.lat)
    return int((ok & (True if mask is None else np.asarray(mask))).sum())


def test_national_map_draws_clusters_and_a_switchable_choropleth(browser, maps_server, dataset):
    with Visit(browser, maps_server + "/maps/national", wait_for=".coop-cluster") as v:
        v.settle()
        page = v.page
        clusters = page.locator(".coop-cluster").count()
        assert clusters > 20
        assert v.total() == _located(dataset)            # all of Iran is in view at zoom 5
        counts = page.eval_on_selector_all(".coop-cluster-count", "els => els.map(e => e.textContent)")
        assert all(re.fullmatch("[۰-۹٬]+", c) for c in counts)
        provinces = page.locator("path.coop-provinces.coop-choropleth").count()
        assert provinces >= 31
        fills = set(page.eval_on_selector_all("path.coop-choropleth", "els => els.map(e => e.getAttribute('fill'))"))
        assert len(fills) >= 3
        v.shot("national-cooperatives")
        page.check("input[name=coop-measure][value=jobs]")
        page.wait_for_function("() => document.querySelector('.coop-legend h3').textContent.startsWith('اشتغال')")
        v.settle()
        assert page.locator("path.coop-provinces.coop-choropleth").count() >= 31
        v.shot("national-jobs")
        page.evaluate("coopgis.state.map.setZoom(7, {animate: false})")
        page.wait_for_selector("path.coop-counties.coop-choropleth", timeout=15_000)
        v.settle()
        assert page.locator("path.coop-provinces.coop-outline").count() > 0   # provinces become outlines
        assert "طبقه محرومیت" not in page.inner_text(".coop-legend")
        page.locator(".leaflet-control-layers-overlays label", has_text="مناطق محروم").locator("input").check()
        page.wait_for_selector("path.coop-class-no_data, path.coop-class-not_listed", timeout=15_000)
        assert "طبقه محرومیت" in page.inner_text(".coop-legend")       # its legend comes with the layer
        assert v.errors == [] and v.foreign(maps_server) == []


def test_kind_filter_changes_the_clusters(browser, maps_server, dataset):
    kinds = dataset.cooperatives["kind"]
    with Visit(browser, maps_server + "/maps/national", wait_for=".coop-cluster") as v:
        v.settle()
        before = v.total()
        assert before == _located(dataset)
        v.page.select_option("select.coop-filter-kind", "housing")
        want = _located(dataset, kinds == "housing")
        v.page.wait_for_function(f"() => document.querySelector('.coop-counter').dataset.total === '{want}'",
                                 timeout=15_000)
        v.settle()
        assert 0 < v.total() == want < before
        tile_urls = [u for u in v.requests if "/tiles/cooperatives/" in u]
        assert any("kind=housing" in u for u in tile_urls)
        v.page.select_option("select.coop-filter-sector", "beekeeping")
        want2 = _located(dataset, (kinds == "housing") & (dataset.cooperatives["sector"] == "beekeeping"))
        v.page.wait_for_function(f"() => document.querySelector('.coop-counter').dataset.total === '{want2}'",
                                 timeout=15_000)
        v.shot("national-filtered")
        assert v.errors == []


def test_a_province_link_filters_and_frames_the_national_map(browser, maps_server, dataset):
    province = dataset.cooperatives["province"].value_counts().index[0]
    with Visit(browser, f"{maps_server}/maps/national?province={province}", wait_for=".coop-cluster") as v:
        v.settle()
        assert v.page.evaluate("coopgis.state.map.getZoom()") > 5
        want = _located(dataset, dataset.cooperatives["province"] == province)
        v.page.wait_for_function(f"() => document.querySelector('.coop-counter').dataset.total === '{want}'",
                                 timeout=15_000)
        assert all(f"province={province}" in u for u in v.requests if "/tiles/cooperatives/" in u)
        v.shot("national-province")
        assert v.errors == []


def test_deprivation_map_shows_classes_unknowns_borders_and_quota_rule(browser, maps_server, dataset):
    with Visit(browser, maps_server + "/maps/deprivation", wait_for="path.coop-class-no_data") as v:
        v.settle()
        page = v.page
        for cls in ("less_developed_2019", "not_listed", "no_data"):
            assert page.locator(f"path.coop-class-{cls}").count() > 0, cls
        assert page.get_attribute("path.coop-class-no_data", "fill") == "url(#coop-hatch)"
        assert page.get_attribute("path.coop-class-not_listed", "fill") != "url(#coop-hatch)"
        assert page.locator("path.coop-border").count() > 0
        legend = page.inner_text(".coop-legend")
        assert "۶۰۰ دلار" in legend and "۳۰۰ دلار" in legend and "نامعلوم" in legend
        assert page.locator(".coop-legend a.coop-source").count() >= 1
        assert v.total() == _located(dataset, dataset.cooperatives["deprived"].astype("boolean").fillna(False))
        v.shot("deprivation")
        assert v.errors == [] and v.foreign(maps_server) == []


def test_sectors_map_has_one_layer_per_galaxy_sector(browser, maps_server, dataset):
    sectors = dataset.cooperatives["sector"]
    with Visit(browser, maps_server + "/maps/sectors", wait_for=".coop-cluster") as v:
        v.settle()
        page = v.page
        labels = page.eval_on_selector_all(".leaflet-control-layers-overlays label",
                                           "els => els.map(e => e.textContent.trim())")
        assert {"پوشاک", "صنایع‌دستی", "فرش دستباف", "زنبورداری", "پرورش ماهی", "پرورش طیور"} <= set(labels)
        assert v.total() == _located(dataset, sectors.isin(GALAXY_SECTORS))
        page.locator(".leaflet-control-layers-overlays label", has_text="زنبورداری").locator("input").uncheck()
        want = _located(dataset, sectors.isin(GALAXY_SECTORS) & (sectors != "beekeeping"))
        page.wait_for_function(f"() => document.querySelector('.coop-counter').dataset.total === '{want}'",
                               timeout=15_000)
        v.shot("sectors")
        assert v.errors == []


def test_field_page_lists_the_nearest_cooperatives(browser, maps_server, dataset):
    coll = dataset.collections["cooperatives"]
    row = int(np.flatnonzero(coll.frame["precision"].isin(["village", "exact"]).to_numpy())[0])
    lat, lon = float(coll.lat[row]) + 0.004, float(coll.lon[row]) + 0.004
    api = httpx.get(f"{maps_server}/nearest", params={"lon": f"{lon:.6f}", "lat": f"{lat:.6f}", "limit": 10}).json()
    with Visit(browser, maps_server + "/maps/field", wait_for=".coop-locate",
               viewport={"width": 412, "height": 860}, is_mobile=True, has_touch=True,
               geolocation={"latitude": lat, "longitude": lon}, permissions=["geolocation"]) as v:
        v.page.click(".coop-locate")
        v.page.wait_for_selector(".coop-result", timeout=15_000)
        v.page.wait_for_function("() => coopgis.state.map.getZoom() === 13")      # the locate control has flown in
        v.settle()
        items = v.page.locator(".coop-result")
        assert items.count() == len(api["features"]) > 0
        shown = items.evaluate_all("els => els.map(e => e.dataset.registrationNo)")
        assert shown == [f["properties"]["registration_no"] for f in api["features"]]
        k = next(i for i, f in enumerate(api["features"]) if not f["properties"]["stand_in"])   # stand-ins: their own
        first = items.nth(k)                                                               # test in test_fieldwork
        assert re.fullmatch(r"(حدود )?[۰-۹٫٬]+ (متر|کیلومتر)", first.locator(".coop-distance").inner_text())
        assert first.locator(".coop-direction").inner_text() == api["features"][k]["properties"]["direction_fa"]
        assert first.locator("a.coop-directions").get_attribute("href") == api["features"][k]["properties"]["geo_uri"]
        v.shot("field-nearest")
        assert v.errors == [] and v.foreign(maps_server) == []


def test_popups_show_hostile_names_as_text(browser, hostile_server):
    url, rows, _, _ = hostile_server
    with Visit(browser, url + "/maps/national", wait_for=".coop-cluster") as v:
        v.settle()
        for row in rows:
            v.page.evaluate("([lat, lon]) => coopgis.state.map.setView([lat, lon], 15, {animate: false})",
                            [row["lat"], row["lon"]])
            v.page.wait_for_selector("path.coop-precise", timeout=15_000)
            v.settle()
            x, y = v.page.evaluate("""([lat, lon]) => {
                const m = coopgis.state.map, p = m.latLngToContainerPoint([lat, lon]);
                const r = m.getContainer().getBoundingClientRect();
                return [p.x + r.left, p.y + r.top]; }""", [row["lat"], row["lon"]])
            v.page.mouse.click(x, y)
            title = v.page.wait_for_selector(".coop-popup-title")
            assert title.text_content() == row["name"]
            assert v.page.locator(".leaflet-popup img, .leaflet-popup b").count() == 0
            link = v.page.get_attribute(".coop-popup-link", "href")
            assert link == f"/collections/cooperatives/items/{row['registration_no']}?f=html"
            v.shot(f"popup-hostile-{rows.index(row)}")
            v.page.evaluate("coopgis.state.map.closePopup()")
        assert v.dialogs == [] and v.errors == []


def test_field_search_and_location_report(browser, hostile_server):
    url, rows, store, token = hostile_server
    row = rows[1]
    with Visit(browser, url + "/maps/field", wait_for=".coop-search",
               viewport={"width": 412, "height": 860}, is_mobile=True, has_touch=True) as v:
        v.page.fill(".coop-search input[name=q]", row["registration_no"])
        v.page.click(".coop-search button[type=submit]")
        v.page.wait_for_selector(".coop-result")
        assert v.page.locator(".coop-result-name").first.text_content() == row["name"]
        v.page.locator(".coop-result .coop-report-open").first.click()
        v.page.fill(".coop-report input[name=accuracy_m]", "12")
        assert v.page.locator(".coop-report input[name=reporter]").count() == 0   # the token names the officer
        v.page.fill(".coop-signin input[name=token]", token)
        v.page.click(".coop-signin button[type=submit]")
        v.page.wait_for_selector(".coop-session-name")
        assert "بازرس آزمون" in v.page.inner_text(".coop-report-reporter")
        v.page.fill(".coop-report textarea[name=note]", HOSTILE)
        v.page.click(".coop-report button[type=submit]")
        answer = v.page.wait_for_selector(".coop-report-answer.ok", timeout=15_000)
        assert "ثبت شد" in answer.text_content() and "در انتظار بررسی" in answer.text_content()
        v.shot("field-report")
        assert v.dialogs == [] and v.errors == []
    reports = httpx.get(f"{url}/cooperatives/{row['registration_no']}/location-reports",
                        headers={"Authorization": f"Bearer {token}"}).json()["reports"]
    assert [(r["reporter"], r["note"]) for r in reports] == [("بازرس آزمون", HOSTILE)]


def test_dashboard_totals_equal_stats_in_the_browser(browser, maps_server):
    stats = httpx.get(f"{maps_server}/stats?by=province").json()["rows"][-1]
    with Visit(browser, maps_server + "/dashboard", wait_for="#province-table") as v:
        shown = v.page.eval_on_selector_all(
            "tr.total td[data-key]", "els => Object.fromEntries(els.map(e => [e.dataset.key, +e.dataset.value]))")
        assert shown and all(shown[k] == stats[k] for k in shown)
        kpi = v.page.inner_text(".kpi[data-key=cooperatives] .kpi-value")
        assert kpi == to_persian_digits(f"{stats['cooperatives']:,}")
        assert v.page.locator("#chart-cooperatives rect").count() >= 31
        v.page.set_viewport_size({"width": 1280, "height": 1600})
        v.shot("dashboard-full")
        assert v.errors == []


def test_standalone_file_opens_from_disk_with_no_network(browser, standalone_file):
    path, rows = standalone_file
    with Visit(browser, path.as_uri(), wait_for="path.coop-area") as v:
        v.page.wait_for_selector("path.coop-point, .coop-cluster", state="attached", timeout=15_000)
        v.settle()
        assert [u for u in v.requests if not u.startswith(("file:", "data:"))] == []
        assert v.page.locator("path.coop-choropleth").count() > 0
        assert v.page.get_attribute(".coop-counter", "data-total") != "0"
        v.shot("standalone-province")
        assert v.errors == [] and v.dialogs == []


# Records when the page's map scripts first run: the moment they set window.coopgis.
SCRIPTS_RUN = """(() => { let kept; window.__coopgisAt = null;
  Object.defineProperty(window, 'coopgis', {configurable: true, get() { return kept; },
    set(v) { if (window.__coopgisAt === null) { window.__coopgisAt = performance.now(); } kept = v; }}); })();"""


@pytest.mark.parametrize("path, width, height", [("/maps/national", 1280, 800), ("/maps/national", 390, 844),
                                                 ("/maps/sectors", 1280, 800)])
def test_first_view_tiles_are_asked_for_before_the_scripts_run_and_only_once(browser, maps_server, dataset, path,
                                                                              width, height):
    """The head's first script asks for the first view's cooperative tiles; the layers take those answers."""
    with Visit(browser, maps_server + path, wait_for=".coop-cluster", init_script=SCRIPTS_RUN,
               viewport={"width": width, "height": height}) as v:
        v.settle()
        page = v.page
        tiles = [u for u in v.requests if "/tiles/cooperatives/" in u]
        assert tiles and len(tiles) == len(set(tiles)), tiles       # no tile downloaded twice
        started = page.evaluate("""() => performance.getEntriesByType('resource')
            .filter(r => r.name.includes('/tiles/cooperatives/')).map(r => r.startTime)""")
        scripts_run = page.evaluate("window.__coopgisAt")
        assert scripts_run is not None and min(started) < scripts_run
        if path == "/maps/national" and width > 1000:                # all of Iran in view at zoom 5, all counted
            assert int(page.get_attribute(".coop-counter", "data-total")) == _located(dataset)
        if path == "/maps/sectors":                                  # each layer's own filter on its tiles
            assert {parse_qs(urlsplit(u).query).get("sector", [""])[0] for u in tiles} >= set(GALAXY_SECTORS)


def test_field_page_on_a_phone_asks_only_for_tiles_its_map_shows(browser, maps_server):
    """The field map shares the phone's window with its panel: no tile is fetched on a guess of the window."""
    with Visit(browser, maps_server + "/maps/field", wait_for=".coop-cluster", viewport={"width": 390, "height": 844},
               is_mobile=True, has_touch=True) as v:
        v.settle()
        tiles = [urlsplit(u).path.rsplit("/", 3)[1:] for u in v.requests if "/tiles/cooperatives/" in u]
        assert tiles
        shown = v.page.evaluate("""() => { const m = coopgis.state.map, b = m.getPixelBounds();
            return [m.getZoom(), Math.floor(b.min.x / 256), Math.floor(b.min.y / 256),
                    Math.floor((b.max.x - 1) / 256), Math.floor((b.max.y - 1) / 256)]; }""")
        z, x0, y0, x1, y1 = shown
        for tz, tx, ty in tiles:
            assert int(tz) == z and x0 <= int(tx) <= x1 and y0 <= int(ty.split(".")[0]) <= y1, (tz, tx, ty, shown)


@pytest.mark.parametrize("width, height", [(390, 844), (1280, 800)])
def test_layer_list_starts_closed_on_a_phone_and_covers_no_other_control(browser, maps_server, width, height):
    with Visit(browser, maps_server + "/maps/national", wait_for=".leaflet-control-layers",
               viewport={"width": width, "height": height}) as v:
        v.settle()
        page = v.page
        overlays = page.locator(".leaflet-control-layers-overlays")
        assert overlays.is_visible() == (width > 700)
        boxes = page.eval_on_selector_all(".leaflet-control", """els => els.filter(e => e.offsetParent).map(e => {
            const r = e.getBoundingClientRect(); return [e.className, r.left, r.top, r.right, r.bottom]; })""")
        layers = next(b for b in boxes if "leaflet-control-layers" in b[0])
        chips = next(b for b in boxes if "coop-chips" in b[0])
        assert layers[3] <= chips[1] or chips[3] <= layers[1] or layers[4] <= chips[2] or chips[4] <= layers[2]
        if width <= 700:                       # its button opens it
            box = page.locator(".leaflet-control-layers-toggle").bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            overlays.wait_for(state="visible", timeout=5_000)
            assert page.locator(".leaflet-control-layers-overlays label", has_text="مناطق محروم").is_visible()
        assert v.errors == []


def test_bytes_before_the_first_clusters(browser, maps_server):
    with Visit(browser, "about:blank") as v:
        sizes = []
        v.page.on("requestfinished", lambda r: sizes.append(r.sizes()["responseBodySize"]))
        start = time.monotonic()
        v.page.goto(maps_server + "/maps/national", wait_until="domcontentloaded")
        v.page.wait_for_selector(".coop-cluster")
        seconds = time.monotonic() - start
        before = sum(sizes)
        v.settle()
        (ARTIFACTS / "national-transfer.json").write_text(json.dumps(
            {"bytes_before_first_clusters": before, "requests_before_first_clusters": len(sizes),
             "seconds_to_first_clusters": round(seconds, 2), "bytes_when_idle": sum(sizes)}))
        assert before < 600_000


# ---- helpers ----------------------------------------------------------------------------------

def _big_dataset(sample_store, boundaries, geocoder, size: int):
    """``size`` cooperatives: the sample's rows repeated with new registration numbers and nudged points."""
    from coopgis.dataset import Dataset

    small = sample_store.read()
    big = pd.concat([small] * -(-size // len(small)), ignore_index=True).iloc[:size].copy()
    big["registration_no"] = [str(900_000 + i) for i in range(size)]
    rng = np.random.default_rng(7)
    x = big.geometry.x.to_numpy() + rng.normal(0, 0.03, size)
    y = big.geometry.y.to_numpy() + rng.normal(0, 0.03, size)
    big = gpd.GeoDataFrame(big.drop(columns="geometry"), geometry=gpd.points_from_xy(x, y), crs=small.crs)
    return Dataset(big, boundaries, {"synthetic": True}, geocoder)


@contextlib.contextmanager
def _serving(folder: Path, log: Path, **env):
    """``coopgis serve`` on a free loopback port for the dataset in ``folder``, logging to ``log``.

    The browser tests send many requests from one address: the rate limits are raised here
    (they are tested on their own in test_limits.py).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "coopgis.cli", "serve", "--data", str(folder), "--port",
                                 str(port)], env=dict(os.environ, **{f"COOPGIS_{k.upper()}": str(v)
                                                                     for k, v in UNLIMITED.items()}, **env),
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    try:
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("server exited: " + log.read_text(errors="replace")) from None
                if time.time() > deadline:
                    raise RuntimeError("server did not start within 60 s") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
