"""Media types of every answer, the formats they name, and HTTP validators (ETag matching).

One home for the strings clients negotiate on: ``f=csv`` and ``Accept: text/csv`` name the
same format, and every module writes the same ``Content-Type`` for it.

Not here: choosing a format for a request (``api/links.py``), writing one (``formats.py``).
"""

from __future__ import annotations

GEOJSON = "application/geo+json"
JSON = "application/json"
PROBLEM = "application/problem+json"
TEXT_HTML = "text/html"                      # in links and Accept headers
TEXT_CSV = "text/csv"
HTML = TEXT_HTML + "; charset=utf-8"          # as Content-Type
CSV = TEXT_CSV + "; charset=utf-8"
GPKG = "application/geopackage+sqlite3"
KML = "application/vnd.google-earth.kml+xml"
MVT = "application/vnd.mapbox-vector-tile"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"

# format name (f=) -> the Content-Type written
MEDIA = {"geojson": GEOJSON, "json": JSON, "csv": CSV, "gpkg": GPKG, "kml": KML, "html": HTML}
# media type of an Accept header -> format name
ACCEPT = {
    GEOJSON: "geojson", JSON: "json", TEXT_HTML: "html", TEXT_CSV: "csv", GPKG: "gpkg", KML: "kml",
    "application/vnd.oai.openapi+json": "json",
}


def etag_matches(header: str | None, etag: str) -> bool:
    """True when an If-None-Match header names ``etag`` (weak comparison) or is ``*``."""
    if not header:
        return False
    tag = etag.removeprefix("W/")
    for part in header.split(","):
        part = part.strip()
        if part == "*" or part.removeprefix("W/") == tag:
            return True
    return False
