"""Settings of coopgis, read from ``COOPGIS_*`` environment variables.

One class per concern; nothing here is read at import time by other modules,
so tests build their own :class:`Settings`.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Where data lives and how big the default sample is."""

    model_config = SettingsConfigDict(env_prefix="COOPGIS_")

    data: Path = Field(default=ROOT / "var" / "data",
                       description="the dataset folder written by `coopgis ingest` and served")
    boundaries: Path = Field(default=ROOT / "boundaries", description="the boundaries folder")
    deprivation: Path | None = Field(default=None,
                                     description="a replacement deprivation table (CSV); default: the shipped one")
    cache_dir: Path = Field(default=Path.home() / ".cache" / "coopgis")
    sample_size: int = Field(default=100_000, ge=1, le=1_000_000,
                             description="size of the synthetic sample built when no dataset exists")
    sample_seed: int = 1404
    ingest_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1024,
                                  description="largest registry file `coopgis ingest` reads (an XLSX also "
                                              "unpacked); a bigger one is refused before reading")
    ingest_max_shrink: float = Field(default=0.2, ge=0, le=1,
                                     description="an ingest that would drop more than this share of the current "
                                                 "dataset's cooperatives needs --allow-shrink")
    database_url: str | None = Field(default=None,
                                     description="postgresql://... : PostgreSQL 15+ with PostGIS 3 is the system of "
                                                 "record (dataset, location reports, decisions, tokens, audit) "
                                                 "instead of the data folder; unset: the embedded file store")
    database_pool_size: int = Field(default=8, ge=1, le=100,
                                    description="database connections one process keeps open at most")
    database_timeout_seconds: float = Field(default=5, gt=0, le=300,
                                            description="longest wait for a database connection (and for /ready's "
                                                        "check of the database)")
    database_keep_datasets: int = Field(default=3, ge=1, le=100,
                                        description="dataset versions kept in the database (the current one and "
                                                    "the ones before it); older ones are deleted after an ingest")

    @model_validator(mode="after")
    def _database_url(self):
        if self.database_url is not None and not self.database_url.strip():
            self.database_url = None  # COOPGIS_DATABASE_URL= (empty): the file store
        if self.database_url is not None and not re.match(r"^postgres(ql)?://", self.database_url):
            raise ValueError("database_url must be a postgresql:// URL, e.g. postgresql://coopgis@db.example.ir/coopgis")
        return self


class ServiceSettings(Settings):
    """Limits and switches of the HTTP service (also ``COOPGIS_*``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    default_limit: int = Field(default=100, ge=1)
    max_limit: int = Field(default=10_000, ge=1, description="largest page of items")
    max_download: int = Field(default=200_000, ge=1, description="largest download, for GIS staff")
    public_max_download: int = Field(default=20_000, ge=1, description="largest download without a token")
    max_query_length: int = Field(default=300, ge=10, description="longest geocoding query, in characters")
    min_zoom: int = Field(default=0, ge=0)
    max_zoom: int = Field(default=20, le=24)
    cluster_max_zoom: int = Field(default=11, description="cooperatives are clustered up to this zoom")
    tile_cache_size: int = Field(default=4096, ge=0, description="tiles kept in memory")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed to read with GET/HEAD")
    root_path: str = Field(default="", description="path prefix when served behind a proxy")
    basemap_url: str | None = Field(default=None, description="XYZ base map URL; unset: boundaries only")
    tokens_file: Path = Field(default=ROOT / "var" / "tokens.json",
                              description="bearer tokens (hashed); manage with `coopgis token`")
    public_url: str | None = Field(default=None,
                                   description="the service's address as its users reach it, for links "
                                               "(e.g. https://coopgis.example.ir/gis); unset: the listening "
                                               "address and root path. Never taken from the Host header")
    trusted_proxies: list[str] = Field(default_factory=list,
                                       description="reverse proxies (addresses or CIDR networks) whose "
                                                   "X-Forwarded-For names the real client; nobody else's is read")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="largest request body")
    max_filter_values: int = Field(default=100, ge=1, description="most comma-separated values in one filter")
    max_filter_length: int = Field(default=2000, ge=10, description="longest filter parameter, in characters")
    max_offset: int = Field(default=10_000_000, ge=0, description="largest offset into an items list")
    audit_max_limit: int = Field(default=100_000, ge=1, description="most events one /audit answer lists")
    max_html_limit: int = Field(default=1000, ge=1, description="most items on one HTML page")
    free_page_size: int = Field(default=100, ge=0, description="unfiltered GeoJSON pages up to this size are "
                                                               "charged to no rate limit")
    rate_geocode_per_minute: float = Field(default=120, gt=0, description="geocode/search/nearest per client")
    rate_download_per_minute: float = Field(default=30, gt=0,
                                            description="downloads (CSV, GeoPackage, KML, pages over 1,000 "
                                                        "items, HTML pages) per client")
    rate_read_per_minute: float = Field(default=600, gt=0, description="items pages and /stats per client")
    rate_tiles_per_minute: float = Field(default=1200, gt=0,
                                         description="tiles that are not in the tile cache, per client")
    rate_burst: int = Field(default=30, ge=1, description="requests allowed at once before the rate applies")
    rate_tiles_burst: int = Field(default=200, ge=1, description="uncached tiles allowed at once (a map's "
                                                                 "first view asks for many)")
    heavy_concurrency: int = Field(default=2, ge=1, le=64,
                                   description="heavy requests (downloads, HTML pages, stats, uncached tiles) "
                                               "worked on at once per worker; the rest wait")
    heavy_wait_seconds: float = Field(default=10, gt=0, description="longest wait for a heavy request's turn "
                                                                    "before a 503")
    request_budget_seconds: float = Field(default=60, gt=0,
                                          description="time budget of one heavy request's work; beyond it the "
                                                      "work stops (503, or a cut-off download)")
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, description="largest request line and headers")
    max_headers: int = Field(default=100, ge=10, description="most header fields in one request")
    header_timeout_seconds: float = Field(default=10, gt=0,
                                          description="time a client has to send a request's headers")
    max_connections: int = Field(default=1000, ge=1, description="open connections and requests per worker "
                                                                 "before new requests get a 503")
    nearest_max_limit: int = Field(default=100, ge=1, description="most cooperatives one /nearest answer lists")
    nearest_max_radius_km: float = Field(default=500.0, gt=0, description="largest /nearest search radius, in km")
    search_max_limit: int = Field(default=100, ge=1, description="most cooperatives one /search answer lists")
    search_max_query_length: int = Field(default=100, ge=10,
                                         description="longest /search query, in characters once normalised")
    reports_max_limit: int = Field(default=1000, ge=1, description="most location reports one list shows")
    max_report_body_bytes: int = Field(default=16 * 1024, ge=1024, description="largest location report body")
    reports_per_hour: int = Field(default=60, ge=1, description="location reports one token may send per hour")
    cluster_page_max: int = Field(default=100, ge=1, description="most cooperatives one page of a cluster's "
                                                                 "contents (/clusters/{z}/{x}/{y}) lists")
    pending_reports_per_cooperative: int = Field(default=5, ge=1,
                                                 description="pending (undecided) location reports one "
                                                             "cooperative may have")
    pack_cache_size: int = Field(default=8, ge=0, description="county field packs kept in memory per served "
                                                              "dataset (each a few hundred KB)")
    offline_tiles: int = Field(default=600, ge=0, description="map tiles the field page's service worker keeps "
                                                              "on a phone for offline use")
    offline_wait_seconds: float = Field(default=4.0, gt=0, le=60,
                                        description="how long the field page's service worker waits for the "
                                                    "network before it serves the kept page or tile")
    # GIS staff (issue 12): CQL2 filters, answers served in byte ranges, CORS for public reads
    max_cql2_length: int = Field(default=8000, ge=100, description="longest CQL2 filter, in characters")
    max_cql2_nodes: int = Field(default=500, ge=10, description="most terms (comparisons, values, operators) in "
                                                             "one CQL2 filter")
    download_cache_mb: float = Field(default=64, ge=0, description="memory for recent items answers and downloads "
                                                                    "served in byte ranges (MB); 0: none kept")
    access_log: bool = Field(default=True, description="one line per request on standard output (uvicorn's "
                                                       "format, credentials redacted), written in batches")
    cors_public: bool = Field(default=False, description="answer Access-Control-Allow-Origin: * (GET/HEAD, no "
                                                          "credentials) on public read-only resources: OGC API, "
                                                          "items, tiles, TileJSON")

    @model_validator(mode="after")
    def _limits_consistent(self):
        if self.default_limit > self.max_limit:
            raise ValueError("default_limit must not exceed max_limit")
        if self.min_zoom > self.max_zoom:
            raise ValueError("min_zoom must not exceed max_zoom")
        if self.public_url is not None and not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", self.public_url):
            raise ValueError("public_url must be an http(s) URL without query, e.g. https://coopgis.example.ir/gis")
        for proxy in self.trusted_proxies:
            ipaddress.ip_network(proxy, strict=False)  # ValueError names the bad entry
        return self
