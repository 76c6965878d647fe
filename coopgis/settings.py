"""Settings of coopgis, read from ``COOPGIS_*`` environment variables.

One class per concern; nothing here is read at import time by other modules,
so tests build their own :class:`Settings`.
"""

from __future__ import annotations

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
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="largest request body")
    rate_geocode_per_minute: float = Field(default=120, gt=0, description="geocode/search/nearest per client")
    rate_download_per_minute: float = Field(default=30, gt=0, description="downloads per client")
    rate_burst: int = Field(default=30, ge=1, description="requests allowed at once before the rate applies")

    @model_validator(mode="after")
    def _limits_consistent(self):
        if self.default_limit > self.max_limit:
            raise ValueError("default_limit must not exceed max_limit")
        if self.min_zoom > self.max_zoom:
            raise ValueError("min_zoom must not exceed max_zoom")
        return self
