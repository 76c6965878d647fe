"""The OpenAPI document at /api: every limit is a typed parameter with its maximum, and each operation
lists the errors it can give (schemathesis in test_fuzz.py checks the answers against it)."""

from __future__ import annotations


def _params(doc, path, method="get"):
    out = {}
    for p in doc["paths"][path][method].get("parameters", []):
        if "$ref" in p:  # the items' limit is in components/parameters, where QGIS reads it
            p = doc["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]
        out[p["name"]] = p
    return out


def test_limit_parameters_are_integers_with_a_maximum(client):
    doc = client.get("/api").json()
    s = client.app.state.settings
    for path, most, default in (("/nearest", s.nearest_max_limit, 10), ("/search", s.search_max_limit, 20),
                                ("/location-reports", s.reports_max_limit, 100),
                                ("/collections/{collection_id}/items", s.max_limit, s.default_limit)):
        p = _params(doc, path)["limit"]
        schema = p["schema"]
        assert schema["type"] == "integer" and schema["minimum"] == 1, path
        assert schema["maximum"] == most, path
        # FastAPI leaves a default out of the schema of an optional parameter: it is in the description
        assert schema.get("default", default) == default and f"default {default}" in p["description"], path


def test_tile_address_is_typed_with_its_ranges(client):
    doc = client.get("/api").json()
    s = client.app.state.settings
    p = _params(doc, "/tiles/{layer}/{z}/{x}/{y}")
    assert p["z"]["schema"] == {**p["z"]["schema"], "type": "integer", "minimum": s.min_zoom, "maximum": s.max_zoom}
    assert p["x"]["schema"]["type"] == "integer" and p["x"]["schema"]["maximum"] == 2 ** s.max_zoom - 1
    assert "maxLength" in p["y"]["schema"] and "pattern" in p["y"]["schema"]


def test_free_text_has_a_max_length(client):
    doc = client.get("/api").json()
    s = client.app.state.settings
    assert _params(doc, "/geocode")["q"]["schema"]["maxLength"] == s.max_query_length
    assert _params(doc, "/search")["q"]["schema"]["maxLength"] >= s.search_max_query_length
    for name in ("lon", "lat"):
        assert "maxLength" in _params(doc, "/nearest")[name]["schema"]


def test_each_operation_lists_only_its_own_errors(client):
    doc = client.get("/api").json()
    codes = {(m, p): set(op["responses"]) for p, ops in doc["paths"].items() for m, op in ops.items()}
    assert {"401", "403", "409", "412", "428"}.isdisjoint(codes[("get", "/conformance")])
    assert {"412", "428"} <= codes[("post", "/location-reports/{report_id}/decision")]
    assert "429" in codes[("get", "/nearest")] and "429" in codes[("get", "/tiles/{layer}/{z}/{x}/{y}")]
    assert "403" not in codes[("get", "/collections/{collection_id}/items")]
    assert all("422" not in c for c in codes.values())


def test_rate_limits_and_field_limits_are_described(client):
    doc = client.get("/api").json()
    s = client.app.state.settings
    assert f"at most {s.nearest_max_radius_km:g}" in _params(doc, "/nearest")["radius_km"]["description"]
    assert "COOPGIS_RATE_GEOCODE_PER_MINUTE" in doc["paths"]["/geocode"]["get"]["responses"]["429"]["description"]
    assert "COOPGIS_RATE_TILES_PER_MINUTE" in doc["paths"]["/tiles/{layer}/{z}/{x}/{y}"]["get"]["responses"]["429"][
        "description"]
    assert _params(doc, "/audit")["limit"]["schema"]["maximum"] == s.audit_max_limit
