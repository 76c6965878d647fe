"""Where the geocoded, joined dataset lives.

The embedded default is :class:`FileStore`, a dataset folder::

    versions/<id>/cooperatives.parquet   one ingest's dataset (GeoParquet) ...
    versions/<id>/report.json            ... and its report, always together
    current -> versions/<id>             the version served: one symbolic link
    cooperatives.parquet, report.json    links through ``current``, for people and tools

A write puts both files in a new version folder (``<id>.tmp`` until complete,
fsynced), then replaces ``current`` with one rename: a crash at any point leaves
either the old pair or the new pair, never a dataset with another run's report.
Leftover temporary files and folders of a crashed write are removed when the next
write starts, and the newest :data:`KEEP_VERSIONS` versions are kept (a worker still
reading an older one finds it). Everything is written 0600 (0700 folders): the dataset
holds personal data. A folder written by an older coopgis (the two files side by side)
is still read, and is turned into the new layout by the next write.

The PostGIS store (``coopgis.db.store.PostgisStore``) has the same methods; ``backend.py`` chooses.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Protocol

import geopandas as gpd
import pyarrow

from coopgis.files import PRIVATE_MODE, fsync_dir, locked, write_private

DATASET_FILE = "cooperatives.parquet"
REPORT_FILE = "report.json"
CURRENT = "current"
VERSIONS = "versions"

# Arrow (the store's files, and pandas' text columns) allocates through the C library's malloc rather
# than its bundled jemalloc: what a read frees then goes back to the system when the process trims its
# heap (``loading.release_memory``); jemalloc kept about 35 MB of a 100,000-row read (measured with
# benchmarks/memory.py).
pyarrow.set_memory_pool(pyarrow.system_memory_pool())
KEEP_VERSIONS = 3


class StoreError(Exception):
    """The store cannot be read or written; the message names the file and the reason."""


class Store(Protocol):
    def exists(self) -> bool: ...
    def read(self) -> gpd.GeoDataFrame: ...
    def read_report(self) -> dict: ...
    def write(self, dataset: gpd.GeoDataFrame, report: dict) -> None: ...


class FileStore:
    """A dataset folder: versions of ``cooperatives.parquet`` + ``report.json``, and ``current``."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / DATASET_FILE

    def exists(self) -> bool:
        return (self.version_folder() / DATASET_FILE).is_file()

    def report_log(self):
        """The location-report log kept beside the dataset."""
        from coopgis.location_reports import LocationReportLog

        return LocationReportLog(self.folder)

    def version_folder(self) -> Path:
        """The folder of the served pair: the target of ``current``, or the folder itself (older layout)."""
        link = self.folder / CURRENT
        if link.is_symlink():
            return self.folder / os.readlink(link)
        if (link / DATASET_FILE).is_file():  # a copy of the folder that followed the link
            return link
        return self.folder

    def version(self) -> str:
        """An identifier of the served version (changes with every write)."""
        folder = self.version_folder()
        if folder != self.folder:
            return folder.name
        try:
            st = self.path.stat()
        except OSError:
            return "-"
        return f"{st.st_mtime_ns}-{st.st_size}"

    def read(self) -> gpd.GeoDataFrame:
        """The dataset, or StoreError naming the file when it is missing or damaged."""
        return self._read_dataset(self.version_folder())

    def read_report(self) -> dict:
        """The report of the ingest that wrote the dataset ({} when there is none)."""
        return self._read_report(self.version_folder())

    def read_with_ingest_report(self) -> tuple[gpd.GeoDataFrame, dict]:
        """The dataset and its own report, from one version even while a write swaps another in."""
        folder = self.version_folder()
        return self._read_dataset(folder), self._read_report(folder)

    def rows(self) -> int | None:
        """Cooperatives in the served dataset, from the file's metadata (None when there is none)."""
        import pyarrow.parquet as pq

        path = self.version_folder() / DATASET_FILE
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception:  # missing or damaged: nothing to compare with
            return None

    def write(self, dataset: gpd.GeoDataFrame, report: dict) -> None:
        """Write a new version and make it current in one rename; the old one stays until then."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._writing():
            self.clean()
            versions = self.folder / VERSIONS
            versions.mkdir(mode=0o700, exist_ok=True)
            name = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)
            tmp = versions / (name + ".tmp")
            tmp.mkdir(mode=0o700)
            try:
                dataset.to_parquet(tmp / DATASET_FILE, index=False, compression="zstd")
                os.chmod(tmp / DATASET_FILE, PRIVATE_MODE)
                _fsync(tmp / DATASET_FILE)
                write_private(tmp / REPORT_FILE, json.dumps(report, ensure_ascii=False, indent=1,
                                                            default=str).encode("utf-8"))
                os.rename(tmp, versions / name)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            fsync_dir(versions)
            self._point_current_at(f"{VERSIONS}/{name}")
            self._prune(versions, keep=name)

    def tidy(self) -> list[Path]:
        """:meth:`clean`, waiting for a write in progress (``coopgis serve`` calls it at start)."""
        if not self.folder.is_dir():
            return []
        with self._writing():
            return self.clean()

    def clean(self) -> list[Path]:
        """Remove what a crashed write left behind (temporary files and folders); returns them."""
        gone = []
        for pattern in (f".{DATASET_FILE}-*.tmp", f".{REPORT_FILE}-*.tmp", f"{CURRENT}.tmp-*", ".*.tmp",
                        f"{VERSIONS}/*.tmp", f"{VERSIONS}/.*.tmp"):
            for p in self.folder.glob(pattern):
                with contextlib.suppress(OSError):
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                    gone.append(p)
        return gone

    # -- helpers
    def _read_dataset(self, folder: Path) -> gpd.GeoDataFrame:
        path = folder / DATASET_FILE
        if not path.is_file():
            raise StoreError(f"no dataset at {self.path}: run `coopgis ingest FILE --data {self.folder}`")
        try:
            return gpd.read_parquet(path)
        except Exception as exc:
            raise StoreError(f"dataset file {path} is damaged or not a GeoParquet file "
                             f"({type(exc).__name__}); re-run `coopgis ingest`") from exc

    def _read_report(self, folder: Path) -> dict:
        path = folder / REPORT_FILE
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"ingest report {path} is damaged ({type(exc).__name__}: {exc})") from exc

    def _point_current_at(self, target: str) -> None:
        link = self.folder / CURRENT
        if link.is_dir() and not link.is_symlink():  # a copied folder: its `current` is a plain folder
            os.rename(link, self.folder / VERSIONS / f"00000000-copied-{secrets.token_hex(4)}")
        tmp = self.folder / f"{CURRENT}.tmp-{secrets.token_hex(4)}"
        os.symlink(target, tmp)
        os.replace(tmp, link)  # the one step that switches dataset and report together
        for name in (DATASET_FILE, REPORT_FILE):  # convenience links (replacing an older layout's files)
            path = self.folder / name
            if os.path.islink(path) and os.readlink(path) == f"{CURRENT}/{name}":
                continue
            tmp = self.folder / f".{name}-{secrets.token_hex(4)}.tmp"
            os.symlink(f"{CURRENT}/{name}", tmp)
            os.replace(tmp, path)
        fsync_dir(self.folder)

    def _prune(self, versions: Path, keep: str) -> None:
        done = sorted((p for p in versions.iterdir() if p.is_dir() and not p.name.endswith(".tmp")),
                      key=lambda p: p.name)
        for old in done[:-KEEP_VERSIONS]:
            if old.name != keep:
                shutil.rmtree(old, ignore_errors=True)

    def _writing(self):
        """One writer at a time (processes too), so a write never cleans up another's files."""
        return locked(self.folder / ".write.lock")


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())
