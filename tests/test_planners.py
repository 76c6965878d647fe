"""Issue 14 in a real browser (Chromium through Playwright, the real server): per-capita maps, census
indicators and the quota legend, the troubled map and toggle, filter chips, the filtered choropleth, a
cluster's contents, the Persian front door and pages, the dashboard. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re

from test_maps import Visit, _located, browser, maps_server  # noqa: F401  (browser, maps_server: fixtures)

NONE_COUNTY = (52.716, 32.298)          # Varzaneh (Isfahan): OSM county with no known census unit


def _wait_total(v: Visit, want: int) -> None:
    v.page.wait_for_function(f"() => document.querySelector('.coop-counter').dataset.total === '{want}'",
                             timeout=15_000)


def test_per_capita_choropleth_names_the_census_and_hatches_counties_without_a_unit(browser, maps_server):  # noqa: F811
    with Visit(browser, maps_server + "/maps/national", wait_for=".coop-cluster") as v:
        v.settle()
        v.page.check("input[name=coop-measure][value=cooperatives_per_10k]")
        v.page.wait_for_function("() => document.querySelector('.coop-legend').textContent.includes('۱۳۹۵')")
        legend = v.page.inner_text(".coop-legend")
        assert "تعاونی در هر ۱۰٬۰۰۰ نفر در هر استان" in legend and "سرشماری ۱۳۹۵" in legend
        v.settle()
        fills = set(v.page.eval_on_selector_all("path.coop-provinces.coop-choropleth",
                                                "els => els.map(e => e.getAttribute('fill'))"))
        assert len(fills) >= 3
        v.shot("planners-per-capita-provinces")
        v.page.evaluate(f"coopgis.state.map.setView([{NONE_COUNTY[1]}, {NONE_COUNTY[0]}], 8, {{animate: false}})")
        v.page.wait_for_selector("path.coop-counties.coop-no-census", timeout=15_000)
        v.settle()
        assert v.page.get_attribute("path.coop-counties.coop-no-census", "fill") == "url(#coop-hatch)"
        assert "بدون واحد سرشماری" in v.page.inner_text(".coop-legend")
        v.shot("planners-per-capita-counties-hatched")
        assert v.errors == [] and v.foreign(maps_server) == []


def test_census_indicators_are_their_own_layer_and_the_deprivation_words_are_precise(browser, maps_server):  # noqa: F811
    with Visit(browser, maps_server + "/maps/national", wait_for=".coop-cluster") as v:
        v.settle()
        v.page.locator(".leaflet-control-layers-overlays label", has_text="نرخ بیکاری").locator("input").check()
        v.page.wait_for_selector("path.coop-indicator-unemployment", timeout=15_000)
        legend = v.page.inner_text(".coop-legend")
        assert "نرخ بیکاری" in legend and "نه طبقه محرومیت" in legend and "محروم" not in legend.split("نه طبقه")[0]
        v.shot("planners-census-unemployment")
        assert v.errors == []
    with Visit(browser, maps_server + "/maps/deprivation", wait_for="path.coop-class-no_data") as v:
        v.settle()
        legend = v.page.inner_text(".coop-legend")
        for words in ("در فهرست ۲۰۱۹", "در فهرست ۲۰۱۹ نیامده", "بی‌فهرست", "۶۰۰ دلار", "نامعلوم (نه ۳۰۰ دلار)",
                      "COOPGIS_DEPRIVATION"):
            assert words in legend, words
        lines = v.page.eval_on_selector_all(".coop-legend li:has(.coop-swatch)", "els => els.map(e => e.textContent)")
        silent = [t for t in lines if "نیامده" in t or t.startswith("بی‌فهرست")]
        assert len(silent) >= 2 and not any("غیرمحروم" in t for t in silent)
        assert "Deputy for Cooperative Affairs" in legend                  # the rule's source
        v.shot("planners-deprivation-quota-legend")
        assert v.errors == []


def test_troubled_map_toggle_and_removable_chips(browser, maps_server, dataset):  # noqa: F811
    troubled = dataset.cooperatives["status"] == "troubled"
    with Visit(browser, maps_server + "/maps/troubled", wait_for=".coop-chip") as v:
        v.settle()
        _wait_total(v, _located(dataset, troubled))
        chip = v.page.locator(".coop-chip[data-filter=status]")
        assert chip.inner_text().startswith("وضعیت: مشکل‌دار")
        v.shot("planners-troubled-map")
        chip.locator("button").click()
        _wait_total(v, _located(dataset))
        assert v.page.locator(".coop-chip").count() == 0
        assert v.errors == []
    with Visit(browser, maps_server + "/maps/national?kind=production", wait_for=".coop-cluster") as v:
        v.settle()
        assert v.page.locator(".coop-chip[data-filter=kind]").inner_text().startswith("نوع: تولیدی")
        v.page.check("input.coop-troubled-toggle")
        _wait_total(v, _located(dataset, troubled & (dataset.cooperatives["kind"] == "production")))
        assert "status=troubled" in v.page.evaluate("location.search")
        v.settle()
        v.shot("planners-national-troubled-toggle")
        v.page.locator(".coop-chip[data-filter=kind] button").click()
        _wait_total(v, _located(dataset, troubled))
        assert v.page.input_value("select.coop-filter-kind") == ""
        assert v.errors == []


def test_the_choropleth_follows_the_filters(browser, maps_server):  # noqa: F811
    with Visit(browser, maps_server + "/maps/national", wait_for=".coop-cluster") as v:
        v.settle()
        before = v.page.eval_on_selector_all("path.coop-provinces.coop-choropleth",
                                             "els => els.map(e => e.getAttribute('fill')).join()")
        v.page.select_option("select.coop-filter-kind", "housing")
        v.page.wait_for_function("() => document.querySelector('.coop-legend-filtered') !== null", timeout=15_000)
        v.settle()
        tiles = [u for u in v.requests if "/tiles/provinces/" in u]
        assert any("kind=housing" in u for u in tiles)
        assert any("/stats?" in u and "kind=housing" in u and "by=province" in u for u in v.requests)
        after = v.page.eval_on_selector_all("path.coop-provinces.coop-choropleth",
                                            "els => els.map(e => e.getAttribute('fill')).join()")
        assert after != before
        v.shot("planners-choropleth-housing")
        assert v.errors == []


def test_a_clusters_cooperatives_page_by_page(browser, maps_server):  # noqa: F811
    with Visit(browser, maps_server + "/maps/national", wait_for=".coop-cluster") as v:
        v.settle()
        counts = v.page.eval_on_selector_all(".coop-cluster-count", "els => els.map(e => e.textContent)")
        digits = str.maketrans("۰۱۲۳۴۵۶۷۸۹", "0123456789")
        biggest = max(range(len(counts)), key=lambda i: int(counts[i].translate(digits).replace("٬", "")))
        n = int(counts[biggest].translate(digits).replace("٬", ""))
        v.page.locator(".coop-cluster").nth(biggest).click()
        v.page.click(".coop-cluster-list-open")
        v.page.wait_for_selector(".coop-cluster-item")
        assert v.page.get_attribute(".coop-cluster-list", "data-matched") == str(n)
        assert v.page.locator(".coop-cluster-item").count() == min(n, 10)
        first = v.page.locator(".coop-cluster-name").first.inner_text()
        assert first and v.page.locator(".coop-cluster-precision").first.inner_text()
        # the popup grew when its list came: it is panned back into view, its close button on screen
        v.page.wait_for_function("() => { const p = document.querySelector('.leaflet-popup'); "
                                 "const r = p && p.getBoundingClientRect(); "
                                 "return r !== null && r.top >= 0 && r.bottom <= innerHeight; }", timeout=5_000)
        assert v.page.locator(".leaflet-popup-close-button").is_visible()
        v.shot("planners-cluster-list")
        if n > 10:
            v.page.click(".coop-cluster-page")
            v.page.wait_for_function(f"() => {{ const e = document.querySelector('.coop-cluster-name'); "
                                     f"return e !== null && e.textContent !== {first!r}; }}")
            assert "۱۱ تا" in v.page.inner_text(".coop-cluster-range")
        assert v.errors == []


def test_front_door_items_item_and_error_pages_in_persian(browser, maps_server, dataset):  # noqa: F811
    with Visit(browser, maps_server + "/", wait_for=".doors") as v:
        assert v.page.evaluate("document.documentElement.dir") == "rtl"
        assert v.page.evaluate("getComputedStyle(document.body).fontFamily").startswith("Vazirmatn")
        v.page.set_viewport_size({"width": 1280, "height": 1100})
        v.shot("planners-front-door")
        v.page.click("#door-downloads h2 a")
        v.page.click("a[href$='/collections/cooperatives/items?f=html']")
        v.page.select_option("form.filters select[name=kind]", "housing")
        v.page.click("form.filters button[type=submit]")
        v.page.wait_for_selector("p.matched")
        want = int((dataset.cooperatives["kind"] == "housing").sum())
        assert v.page.get_attribute("p.matched", "data-matched") == str(want)
        assert re.fullmatch(r"[۰-۹٬]+ عارضه.*", v.page.inner_text("p.matched"))
        v.shot("planners-items-filtered")
        v.page.locator("table.items tbody a").first.click()
        v.page.wait_for_selector("#coop-item-map .leaflet-map-pane", state="attached")
        v.page.wait_for_selector("path.coop-item-point", state="attached")
        v.settle()
        v.shot("planners-item-page")
        assert v.errors == [] and v.foreign(maps_server) == []
    with Visit(browser, maps_server + "/collections/cooperatives/items?kind=spaceship") as v:
        assert "شناخته‌شده نیست" in v.page.inner_text("main")
        v.shot("planners-error-page")


def test_dashboard_filters_drill_down_and_troubled_card(browser, maps_server, dataset):  # noqa: F811
    with Visit(browser, maps_server + "/dashboard", wait_for="#province-table") as v:
        v.page.select_option("form.dash-filters select[name=kind]", "production")
        v.page.click("form.dash-filters button[type=submit]")
        v.page.wait_for_selector("#province-table")
        total = v.page.get_attribute("tr.total td[data-key=cooperatives]", "data-value")
        assert int(total) == int((dataset.cooperatives["kind"] == "production").sum())
        assert v.page.locator("#chart-years g.bar").count() >= 10
        v.page.set_viewport_size({"width": 1280, "height": 1600})
        v.shot("planners-dashboard-production")
        v.page.locator("#province-table a.drill", has_text="فارس").click()
        v.page.wait_for_selector("#county-table")
        assert "kind=production" in v.page.url and "province=IR-07" in v.page.url
        v.shot("planners-dashboard-fars")
        v.page.click(".kpi[data-key=troubled] a")
        v.page.wait_for_selector(".coop-chip[data-filter=status]")
        assert "/maps/troubled" in v.page.url
        assert v.errors == []
