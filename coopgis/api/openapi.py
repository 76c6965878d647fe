"""The OpenAPI 3.0 document at ``/api``.

FastAPI writes OpenAPI 3.1; OGC's oas30 conformance class, GDAL and older
clients want 3.0, so the document is rewritten (``anyOf [X, null]`` becomes
``nullable``). Each operation also gets the media types it really answers with,
and its errors as ``application/problem+json`` (FastAPI would announce 422
validation errors; this app answers 400).
"""

from __future__ import annotations

import copy
import re

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from coopgis.media import GEOJSON, GPKG, JSON, KML, MVT, PROBLEM, TEXT_CSV, TEXT_HTML

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["title", "status", "detail"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "instance": {"type": "string"},
    },
}
ERROR_TEXT = {"400": "Invalid parameter or body", "401": "Credentials missing or wrong",
              "403": "Role not allowed", "404": "No such resource", "409": "Conflict",
              "412": "Precondition failed (If-Match)", "413": "Too large", "415": "Body is not JSON",
              "428": "If-Match required", "429": "Rate limited (Retry-After)", "500": "Map preset broken",
              "503": "Busy or unavailable (Retry-After)", "507": "Disk full: nothing was saved"}
# Every operation can answer 400 (a credential in the query string, a bad parameter) and 503 (too many
# connections, the heavy gate, the time budget); these are the other errors each one gives.
ERRORS = [  # (method, path pattern, more error codes); first match wins
    ("get", r"^/collections/\{[^}]+\}/items$", "401 404 413 429"),
    ("get", r"^/collections/\{[^}]+\}/items/\{[^}]+\}$", "401 404"),
    ("get", r"^/collections/\{[^}]+\}$", "404"),
    ("get", r"^/collections/\{[^}]+\}/tiles/\{[^}]+\}/\{[^}]+\}/", "404 429"),
    ("get", r"^/(collections/\{[^}]+\}/(queryables|tiles(/\{[^}]+\})?)|tileMatrixSets/\{[^}]+\})$", "404"),
    ("get", r"^/tiles/\{layer\}/\{z\}/", "404 429"),
    ("get", r"^/tiles/\{layer\}/tilejson\.json$", "404"),
    ("get", r"^/(geocode|reverse|nearest|search|stats)$", "429"),
    ("post", r"^/cooperatives/\{[^}]+\}/location-reports$", "401 403 404 409 413 415 429 507"),
    ("get", r"^/cooperatives/\{[^}]+\}/location-reports$", "401 403 404"),
    ("get", r"^/location-reports$", "401 403"),
    ("get", r"^/location-reports/\{[^}]+\}$", "401 403 404"),
    ("post", r"^/location-reports/\{[^}]+\}/decision$", "401 403 404 409 412 413 428 507"),
    ("get", r"^/cooperatives/\{[^}]+\}$", "401 404"),
    ("get", r"^/audit$", "401 403"),
    ("post", r"^/admin/reload$", "401 403 413"),
    ("get", r"^/maps/\{[^}]+\}$", "404 500"),
    ("get", r"^/vendor/", "404"),
    ("get", r"^/packs/", "401 403 404 429"),
    ("get", r"^/whoami$", "401"),
    ("get", r"^/clusters/", "404 429"),
    ("get", r"^/help/\{[^}]+\}$", "404"),
]


def error_codes(method: str, path: str) -> list[str]:
    """The error statuses an operation can answer with (400 and 503 always)."""
    more = next((codes for m, pattern, codes in ERRORS if m == method and re.search(pattern, path)), "")
    return sorted({"400", "503", *more.split()})


# Media types of successful answers, by path pattern (first match wins).
MEDIA = [
    (r"^/collections/\{[^}]+\}/queryables$", ["application/schema+json"]),
    (r"^/collections/\{[^}]+\}/tiles/\{[^}]+\}/\{[^}]+\}/", [MVT, GEOJSON]),
    (r"^/collections/\{[^}]+\}/items$", [GEOJSON, TEXT_HTML, TEXT_CSV,
                                           GPKG,
                                           KML]),
    (r"^/collections/\{[^}]+\}/items/\{[^}]+\}$", [GEOJSON, TEXT_HTML]),
    (r"^/(collections(/\{[^}]+\})?|conformance)?$", [JSON, TEXT_HTML]),
    (r"^/tiles/.*\.(mvt|geojson)$|^/tiles/\{layer\}/\{z\}/\{x\}/\{y\}", [MVT,
                                                                      GEOJSON]),
    (r"^/stats$", [JSON, TEXT_CSV]),
    (r"^/(nearest|search)$", [GEOJSON]),
    (r"^/(maps|dashboard)", [TEXT_HTML, JSON]),
    (r"^/help", [TEXT_HTML]),
    (r"^/clusters/", [GEOJSON]),
]


def openapi_30(app: FastAPI) -> dict:
    """The app's OpenAPI document as 3.0.3, built once."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                      openapi_version="3.0.3")
    doc = to_30(copy.deepcopy(doc))
    doc.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    doc["components"]["schemas"].pop("HTTPValidationError", None)
    doc["components"]["schemas"].pop("ValidationError", None)
    ogc_parameters(doc)
    for path, operations in doc.get("paths", {}).items():
        media = next((m for pattern, m in MEDIA if re.search(pattern, path)), None)
        for method, op in operations.items():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            ok = next((code for code in responses if code.startswith("2")), None)
            if media and ok:
                schema = {"type": "string", "format": "binary"}
                responses[ok]["content"] = {m: ({"schema": {}} if "json" in m else {"schema": schema})
                                            for m in media}
            for code in error_codes(method, path):
                text = ERROR_TEXT[code]
                if code == "429":
                    text = rate_limited(method, path, app.state.settings)
                responses.setdefault(code, {"description": text, "content": {
                    PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}})
    app.openapi_schema = doc
    return doc


ITEMS = "/collections/{collection_id}/items"
BBOX_SCHEMA = {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}


def ogc_parameters(doc: dict) -> None:
    """Query parameters as OGC API - Features defines them: ``style: form``, ``explode: false`` (lists are
    comma-separated), ``bbox`` an array of 4 or 6 numbers, and the items' ``limit`` in
    ``components/parameters`` where QGIS's OAPIF provider reads its default and maximum (without it
    QGIS 3.22 asks 100 features a page)."""
    for operations in doc.get("paths", {}).values():
        for op in operations.values():
            for p in op.get("parameters", []):
                if p.get("in") == "query":
                    p.setdefault("style", "form")
                    p.setdefault("explode", False)
                    if p["name"] == "bbox":
                        p["schema"] = {**BBOX_SCHEMA, **{k: v for k, v in p["schema"].items()
                                                         if k in ("description", "title")}}
    items = doc.get("paths", {}).get(ITEMS, {}).get("get")
    if items is None:
        return
    params = doc.setdefault("components", {}).setdefault("parameters", {})
    for i, p in enumerate(items.get("parameters", [])):
        if p.get("name") == "limit" and p.get("in") == "query":
            # No "default" in the schema (FastAPI leaves it out; the description says it): QGIS 3.22 then
            # pages by the maximum (10,000) instead of max(1000, default) -- 20,000 cooperatives in 2 pages.
            params["limit"] = p
            items["parameters"][i] = {"$ref": "#/components/parameters/limit"}


def rate_limited(method: str, path: str, s) -> str:
    """The 429 of an operation in words: which rate of which setting, per client."""
    burst = f"bursts of {s.rate_burst} (COOPGIS_RATE_BURST)"
    if method == "post":
        return (f"Rate limited: {s.reports_per_hour} location reports per token and hour "
                f"(COOPGIS_REPORTS_PER_HOUR), {s.pending_reports_per_cooperative} pending per cooperative "
                "(COOPGIS_PENDING_REPORTS_PER_COOPERATIVE)")
    if path.startswith("/tiles/") or "{tile_matrix}" in path:
        return (f"Rate limited (Retry-After): {s.rate_tiles_per_minute:g} uncached tiles per minute per client "
                f"(COOPGIS_RATE_TILES_PER_MINUTE), bursts of {s.rate_tiles_burst} (COOPGIS_RATE_TILES_BURST); "
                "cached tiles are free")
    if path in ("/geocode", "/reverse", "/nearest", "/search"):
        return (f"Rate limited (Retry-After): {s.rate_geocode_per_minute:g} per minute per client "
                f"(COOPGIS_RATE_GEOCODE_PER_MINUTE), {burst}")
    return (f"Rate limited (Retry-After): downloads (CSV, GeoPackage, KML, large pages) "
            f"{s.rate_download_per_minute:g} per minute (COOPGIS_RATE_DOWNLOAD_PER_MINUTE), other charged pages "
            f"and /stats {s.rate_read_per_minute:g} per minute (COOPGIS_RATE_READ_PER_MINUTE), {burst}; unfiltered "
            f"pages of up to {s.free_page_size} features are free (COOPGIS_FREE_PAGE_SIZE)")


def to_30(node):
    """Rewrite 3.1-only schema forms: ``anyOf [X, null]`` -> X + nullable, ``examples`` -> ``example``,
    numeric ``exclusiveMinimum``/``exclusiveMaximum`` -> a bound with a boolean flag."""
    if isinstance(node, list):
        return [to_30(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: to_30(v) for k, v in node.items()}
    nulls = ({"type": "null"}, {"nullable": True})
    for combo in ("anyOf", "oneOf"):
        options = node.get(combo)
        if isinstance(options, list) and any(o in nulls for o in options):
            rest = [o for o in options if o not in nulls]
            node.pop(combo)
            if len(rest) == 1:
                node.update(rest[0])
            else:
                node[combo] = rest
            node["nullable"] = True
    if node.get("type") == "null":
        node.pop("type")
        node["nullable"] = True
    if isinstance(node.get("type"), list):
        types = [t for t in node["type"] if t != "null"]
        if len(types) < len(node["type"]):
            node["nullable"] = True
        node["type"] = types[0] if len(types) == 1 else types
    if "examples" in node and isinstance(node["examples"], list) and "schema" not in node:
        examples = node.pop("examples")
        if examples:
            node["example"] = examples[0]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = node.get(bound)
        if isinstance(value, (int, float)) and not isinstance(value, bool):  # 3.1 number -> 3.0 flag
            node[plain] = value
            node[bound] = True
    return node
