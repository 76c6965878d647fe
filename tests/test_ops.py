"""/health, /ready and /metrics on each store: readiness follows the read model, metrics are the Prometheus text
format (parsed by the client library's own parser), per route template, with bounded labels and nothing personal."""

from __future__ import annotations

import time

from conftest import has_sample_phone, metrics_without_values
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from coopgis.app import create_app


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_ready_after_warming_and_metrics_count_routes_not_paths(store):
    app = create_app(store.settings(rate_download_per_minute=1, rate_burst=1))
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200
        deadline = time.time() + 60
        while (r := c.get("/ready")).status_code != 200:
            assert r.status_code == 503 and r.json()["ready"] is False
            assert time.time() < deadline, r.json()
            time.sleep(0.1)
        assert all(r.json()["checks"].values()) and r.json()["store"] == store.kind
        regs = [f["id"] for f in c.get("/collections/cooperatives/items?limit=3").json()["features"]]
        for reg in regs:
            assert c.get(f"/cooperatives/{reg}").status_code == 200
        c.get("/no/such/page")
        c.request("BREW", "/")                                        # an unknown method is not a new label
        assert c.get("/collections/cooperatives/items?f=csv&limit=5").status_code == 200
        assert c.get("/collections/cooperatives/items?f=csv&limit=5").status_code == 429
        text = c.get("/metrics").text
    fams = _families(text)
    samples = [s for s in fams["coopgis_http_requests"].samples if s.name.endswith("_total")]
    routes = {s.labels["route"] for s in samples}
    assert "/cooperatives/{registration_no:path}" in routes and "unmatched" in routes
    names_labels_help = metrics_without_values(text)              # a value such as 0.01234... may hold a number
    assert not any(reg in names_labels_help for reg in regs) and not has_sample_phone(names_labels_help)
    by_route = {(s.labels["route"], s.labels["status"]): s.value for s in samples}
    assert by_route[("/cooperatives/{registration_no:path}", "200")] == 3
    assert {s.labels["method"] for s in samples} <= {"GET", "HEAD", "POST", "other"}
    refused = {s.labels["group"]: s.value for s in fams["coopgis_rate_limit_refusals"].samples}
    assert refused["download"] == 1
    assert fams["coopgis_read_model_cooperatives"].samples[0].value == len(app.state.dataset.cooperatives)
    info = fams.get("coopgis_read_model") or fams["coopgis_read_model_info"]
    assert {s.labels.get("store") for s in info.samples} == {store.kind}
    assert ("coopgis_db_pool_size" in fams) == (store.kind == "postgis")
    app.state.backend.close()


def test_a_cached_tile_answers_as_the_route_did_and_is_counted_under_its_route(client):
    """A tile already made is answered before routing (coopgis.api.tiles.WarmTiles): the same answer."""
    def tile_requests() -> float:
        fams = _families(client.get("/metrics").text)
        return sum(s.value for s in fams["coopgis_http_requests"].samples if s.name.endswith("_total")
                   and s.labels["route"] == "/tiles/{layer}/{z}/{x}/{y}" and s.labels["status"] in ("200", "304"))

    before = tile_requests()
    path = "/tiles/cooperatives/6/41/25.mvt"
    client.app.state.tile_engine.cache.clear()
    first = client.get(path)                  # made by the route
    again = client.get(path)                  # from the cache, before routing
    assert first.status_code == again.status_code == 200 and again.content == first.content
    assert list(again.headers.items()) == list(first.headers.items())
    assert again.headers["x-frame-options"] == "DENY" and again.headers["etag"]
    r304 = client.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert r304.status_code == 304 and r304.content == b"" and r304.headers["etag"] == first.headers["etag"]
    assert client.get(path + "?kindd=x").status_code == 400       # a query still goes to the route
    assert client.head(path).headers["etag"] == first.headers["etag"]
    assert tile_requests() == before + 4
