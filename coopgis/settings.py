"""Settings of coopgis, read from ``COOPGIS_*`` environment variables.

One class per concern; nothing here is read at import time by other modules,
so tests build their own :class:`Settings`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
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
