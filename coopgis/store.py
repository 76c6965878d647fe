"""Where the geocoded, joined dataset lives.

The embedded default is :class:`FileStore`: one GeoParquet file, written to a
temporary file beside it and moved into place with ``os.replace``, so a crash
mid-write leaves the previous dataset intact. The ingest report is written the
same way, after the dataset, as ``report.json``. A PostGIS store can implement
the same four methods without callers changing.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Protocol

import geopandas as gpd

DATASET_FILE = "cooperatives.parquet"
REPORT_FILE = "report.json"


class StoreError(Exception):
    """The store cannot be read or written; the message names the file and the reason."""


class Store(Protocol):
    def exists(self) -> bool: ...
    def read(self) -> gpd.GeoDataFrame: ...
    def read_report(self) -> dict: ...
    def write(self, dataset: gpd.GeoDataFrame, report: dict) -> None: ...


class FileStore:
    """A dataset folder holding ``cooperatives.parquet`` and ``report.json``."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / DATASET_FILE

    def exists(self) -> bool:
        return self.path.is_file()

    def read(self) -> gpd.GeoDataFrame:
        """The dataset, or StoreError naming the file when it is missing or damaged."""
        if not self.exists():
            raise StoreError(f"no dataset at {self.path}: run `coopgis ingest FILE --data {self.folder}`")
        try:
            return gpd.read_parquet(self.path)
        except Exception as exc:
            raise StoreError(f"dataset file {self.path} is damaged or not a GeoParquet file "
                             f"({type(exc).__name__}); re-run `coopgis ingest`") from exc

    def read_report(self) -> dict:
        """The report of the ingest that wrote the dataset ({} when there is none)."""
        path = self.folder / REPORT_FILE
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"ingest report {path} is damaged ({type(exc).__name__}: {exc})") from exc

    def write(self, dataset: gpd.GeoDataFrame, report: dict) -> None:
        """Write atomically: the old files stay in place until the new ones are complete."""
        self.folder.mkdir(parents=True, exist_ok=True)
        _atomic(self.path, lambda tmp: dataset.to_parquet(tmp, index=False, compression="zstd"))
        body = json.dumps(report, ensure_ascii=False, indent=1, default=str)
        _atomic(self.folder / REPORT_FILE, lambda tmp: Path(tmp).write_text(body, encoding="utf-8"))


def _atomic(path: Path, write) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + "-", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
