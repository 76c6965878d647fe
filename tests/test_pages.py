"""The Persian pages for people: the front door, help, collections, items, one item, errors and the dashboard
(through the test client; the same pages in Chromium are in test_planners.py)."""

from __future__ import annotations

import html
import re

import pytest
from conftest import UNLIMITED

from coopgis.text import to_persian_digits

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_a_browser_gets_the_persian_front_door_and_clients_the_ogc_landing(client, dataset):
    html = client.get("/", headers=BROWSER)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    text = html.text
    assert 'lang="fa" dir="rtl"' in text and "نقشه مکان‌مند تعاونی‌های کشور" in text
    assert to_persian_digits(f"{len(dataset.cooperatives):,}").replace(",", "٬") in text
    for href in ("/maps", "/dashboard", "/collections?f=html", "/api", "/help/planners", "/help/field", "/help/gis",
                 "/maps/troubled"):
        assert f'href="http://testserver{href}"' in text, href
    assert "vendor/coopgis/fonts.css" in text                      # Vazirmatn, served by the app
    doc = client.get("/").json()                                   # a client: the OGC landing, unchanged
    assert {link["rel"] for link in doc["links"]} >= {"self", "service-desc", "conformance", "data"}
    assert client.get("/", headers={"Accept": "application/json"}).headers["content-type"] == "application/json"


@pytest.mark.parametrize("audience,words", [("planners", "در هر ۱۰٬۰۰۰ نفر"), ("field", "مکان من"),
                                            ("gis", "OAPIF")])
def test_each_kind_of_user_has_a_help_page(client, audience, words):
    r = client.get(f"/help/{audience}")
    assert r.status_code == 200 and words in r.text
    assert client.get("/help/astronauts", headers=BROWSER).status_code == 404


def test_items_page_reads_in_persian_with_a_filter_form(client, dataset):
    frame = dataset.cooperatives
    want = int((frame["kind"] == "housing").sum())
    r = client.get("/collections/cooperatives/items?f=html&kind=housing&limit=20")
    text = r.text
    assert r.status_code == 200
    assert f'data-matched="{want}"' in text
    assert '<select name="kind">' in text and '<option value="housing" selected>' in text
    for label in ("نوع", "وضعیت", "دقت مکان", "تاریخ ثبت", "شهرستان"):
        assert f">{label}</th>" in text, label
    body = text.split("<tbody>", 1)[1]
    assert "housing" not in body and "مسکن" in body                    # codes become words
    assert not re.search(r"<td[^>]*>[^<]*[0-9]", body)                 # no Latin digits in cells
    assert re.search(r"[۱۳۴][۳۰۴][۰-۹]{2}/[۰-۹]{2}/[۰-۹]{2}", body)     # Jalali dates
    assert "False" not in body and "True" not in body and "None" not in body
    for fmt in ("csv", "gpkg", "kml", "geojson"):   # each button downloads the whole filtered selection
        m = re.search(rf'data-format="{fmt}" href="(items\.{fmt}\?[^"]*kind=housing[^"]*)"', text)
        assert m, fmt
        got = client.get("/collections/cooperatives/" + html.unescape(m.group(1)))
        assert got.status_code == 200, (fmt, got.text[:200])
        assert f'filename="cooperatives.{fmt}"' in got.headers["content-disposition"]
        if fmt == "geojson":
            assert len(got.json()["features"]) == want       # not one page of 20


def test_download_buttons_respect_the_roles_limit_and_explain_it(sample_store, dataset, tmp_path):
    from fastapi.testclient import TestClient

    from coopgis.app import create_app
    from coopgis.settings import ServiceSettings

    app = create_app(ServiceSettings(data=sample_store.folder, public_max_download=100,
                                     tokens_file=tmp_path / "t.json", **UNLIMITED), dataset)
    c = TestClient(app)
    text = c.get("/collections/cooperatives/items?f=html").text
    assert 'class="button small disabled"' in text and "حداکثر ۱۰۰ عارضه" in text and "توکن کارشناس GIS" in text
    one = dataset.cooperatives["province"].value_counts()
    small = one[one <= 100].index[0]
    text = c.get(f"/collections/cooperatives/items?f=html&province={small}").text
    assert "disabled" not in text.split('class="downloads"', 1)[1].split("</div>", 1)[0]
    # Following the download link in a browser anyway: a Persian page, not a raw 413.
    r = c.get("/collections/cooperatives/items?f=csv", headers=BROWSER)
    assert r.status_code == 413 and r.headers["content-type"].startswith("text/html")
    assert "حداکثر ۱۰۰ عارضه" in r.text and 'lang="fa"' in r.text


def test_item_page_has_every_field_in_persian_and_a_small_map(client, dataset):
    frame = dataset.cooperatives
    reg = frame.loc[frame["precision"] == "village", "registration_no"].iloc[0]
    text = client.get(f"/collections/cooperatives/items/{reg}?f=html").text
    assert 'id="coop-item-map"' in text and "vendor/coopgis/item.js" in text and "vendor/leaflet/leaflet.js" in text
    assert '"lat":' in text and '"coarse": false' in text
    for label in ("شماره ثبت", "شمار اعضا", "زن‌سرپرست", "فاصله احتمالی از نقطه", "سهمیه ارزی مرزنشینان (دلار)",
                  "فهرست محرومیت"):
        assert f"<th>{label}</th>" in text, label
    assert "<th>women_led</th>" not in text and ">False<" not in text
    county = next(iter(dataset.collections["counties"].frame["osm_relation_id"]))
    text = client.get(f"/collections/counties/items/{county}?f=html").text
    assert "جمعیت واحد سرشماری ۱۳۹۵" in text and '"bounds":' in text


def test_errors_are_persian_pages_for_browsers_and_problems_for_clients(client):
    r = client.get("/collections/cooperatives/items?kind=spaceship", headers=BROWSER)
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")
    assert "«spaceship» یک نوع تعاونی شناخته‌شده نیست" in r.text and 'dir="rtl"' in r.text
    r = client.get("/no/such/page", headers=BROWSER)
    assert r.status_code == 404 and "پیدا نشد" in r.text
    r = client.get("/collections/cooperatives/items?kind=spaceship")
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == "kind='spaceship' is not a known kind"
    r = client.get("/collections/cooperatives/items?kind=spaceship", headers={"Accept-Language": "fa-IR,fa;q=0.9"})
    body = r.json()
    assert r.headers["content-type"] == "application/problem+json" and r.headers["content-language"] == "fa"
    assert body["detail"] == "«spaceship» یک نوع تعاونی شناخته‌شده نیست"
    assert body["detail_en"] == "kind='spaceship' is not a known kind" and body["status"] == 400


def test_dashboard_follows_its_filters_and_drills_down_to_counties(client, dataset):
    frame = dataset.cooperatives
    text = client.get("/dashboard?kind=production").text
    stats = client.get("/stats?by=province&kind=production").json()["rows"][-1]
    foot = text.split("<tfoot>")[1]
    assert f'<td data-key="cooperatives" data-value="{stats["cooperatives"]}">' in foot
    assert stats["cooperatives"] == int((frame["kind"] == "production").sum())
    assert "/stats?by=province&amp;kind=production&amp;f=csv" in text
    years = frame.loc[frame["kind"] == "production", "registered_year"].dropna().astype(int)
    chart = text.split('id="chart-years"')[1].split("</figure>")[0]
    shown = dict(re.findall(r'data-key="(\d+)" data-value="(\d+)"', chart))
    assert {int(k): int(v) for k, v in shown.items()} == years.value_counts().to_dict()
    assert list(shown) == sorted(shown)                                    # chronological
    status = text.split('class="status-cards"')[1].split("</section>")[0]
    assert re.search(r'status-troubled" data-key="troubled" data-value="\d+" href="http://testserver/maps/troubled',
                     status)
    assert 'href="http://testserver/maps/troubled?kind=production"' in text        # the troubled card's map
    fars = client.get("/dashboard?province=IR-07&kind=production").text
    assert 'id="county-table"' in fars and "شیراز" in fars and "تعاونی در ۱۰هزار نفر" in fars
    assert "/stats?by=county&amp;province=IR-07&amp;kind=production&amp;f=csv" in fars

