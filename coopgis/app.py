"""The FastAPI app factory: ``create_app(settings, dataset)`` builds everything, no import-time state.

Run it with ``coopgis serve`` (uvicorn with uvloop and httptools), or in tests
with ``TestClient(create_app(settings, dataset))``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from pathlib import Path

import pyarrow
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from coopgis import __version__
from coopgis.api.errors import register_error_handlers
from coopgis.api.openapi import openapi_30
from coopgis.api.limits import Limits
from coopgis.api.security import SecurityMiddleware, install_log_redaction
from coopgis.auth import TokenStore
from coopgis.dataset import Dataset
from coopgis.maps import MapSettings
from coopgis.reports import ReportLog
from coopgis.settings import ServiceSettings

STATIC = Path(__file__).resolve().parent / "static"
WATCH_SECONDS = 0.5   # how often each worker looks for a new ingest or another worker's decision


def create_app(settings: ServiceSettings | None = None, dataset: Dataset | None = None,
               map_settings: MapSettings | None = None) -> FastAPI:
    """Build the app for ``settings``, serving ``dataset`` (default: the store in settings.data)."""
    settings = settings or ServiceSettings()
    map_settings = map_settings or MapSettings()
    report_log = ReportLog(settings.data)
    if dataset is None:
        dataset = load_dataset(settings, log=report_log)
    app = FastAPI(title="coopgis", version=__version__, openapi_url="/api", docs_url=None, redoc_url=None,
                  root_path=settings.root_path,
                  description="Iran's cooperatives: OGC API - Features, vector tiles, geocoding, statistics. "
                              "Persian first; English alongside.")
    app.state.settings = settings
    app.state.tokens = TokenStore(settings.tokens_file)
    app.state.limits = Limits(settings)
    app.state.report_log = report_log          # one per app: its index grows with the log
    app.state.update_lock = threading.Lock()   # one change of the served dataset at a time
    install_log_redaction()
    set_dataset(app, dataset)
    threading.Thread(target=_warm, args=(app,), name="coopgis-warm", daemon=True).start()
    app.state.reload_dataset = lambda: _reload(app)
    app.state.apply_decisions = lambda: apply_decisions(app)
    register_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "HEAD"],
                           allow_credentials=False, allow_headers=["Accept", "If-None-Match"])
    # outermost: every answer gets its headers
    app.add_middleware(SecurityMiddleware, settings=settings, limits=app.state.limits)
    app.router.on_startup.append(lambda: _watch_store(app))

    from coopgis.api import admin, dashboard, features, field, geocoding, maps, stats, tiles

    app.include_router(features.build_router(settings))
    app.include_router(tiles.build_router(settings))
    app.include_router(geocoding.build_router(settings))
    app.include_router(stats.build_router(settings))
    app.include_router(field.build_router(settings))
    app.include_router(maps.build_router(settings, map_settings))
    app.include_router(dashboard.build_router(map_settings))
    app.include_router(admin.build_router(settings))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.openapi = lambda: openapi_30(app)
    return app


def set_dataset(app: FastAPI, dataset: Dataset) -> None:
    """Serve ``dataset`` from now on, with a tile engine (and tile cache) of its own."""
    from coopgis.tiles import TileEngine

    settings = app.state.settings
    app.state.tile_engine = TileEngine(dataset, settings.cluster_max_zoom, settings.tile_cache_size)
    app.state.dataset = dataset


def load_dataset(settings: ServiceSettings, previous: Dataset | None = None, log=None) -> Dataset:
    """The dataset in ``settings.data`` with its verified locations applied.

    The embedded default sample is built first when no dataset exists. ``previous``
    lends its boundaries and geocoder, so a reload does not rebuild them; ``log`` is the
    app's location-report log (read afresh when not given).
    """
    from coopgis.boundaries import load_boundaries
    from coopgis.cli import ensure_default_dataset
    from coopgis.corrections import apply_verified, learn_villages
    from coopgis.geocode import Geocoder
    from coopgis.store import FileStore

    store = FileStore(settings.data)
    if not store.exists():
        ensure_default_dataset(settings)
    if previous is not None:
        boundaries, geocoder = previous.boundaries, previous.geocoder
    else:
        boundaries = load_boundaries(settings.boundaries, deprivation=settings.deprivation,
                                     cache_dir=settings.cache_dir)
        geocoder = Geocoder(boundaries)
    frame, report = store.read_with_report()
    accepted, _ = (log or ReportLog(settings.data)).accepted()
    learn_villages(geocoder, frame, accepted)
    return Dataset(apply_verified(frame, accepted, boundaries), boundaries, report, geocoder, verified=accepted)


def _warm(app: FastAPI) -> None:
    """Serialise features and build the tile index in the background, before the first requests need them."""
    try:
        app.state.dataset.warm()
        app.state.tile_engine.warm()
        pyarrow.default_memory_pool().release_unused()  # the store's read buffers
        gc.freeze()  # the loaded dataset stays: keep its objects out of every later collection
    except Exception:  # warming is an optimisation; requests build what they need anyway
        logging.getLogger("coopgis").exception("warming the dataset failed")


def _reload(app: FastAPI) -> None:
    """Load the store again (with verified locations), warm it, then swap it in."""
    from coopgis.store import FileStore

    settings = app.state.settings
    with app.state.update_lock:
        version = FileStore(settings.data).version()
        dataset = load_dataset(settings, app.state.dataset, app.state.report_log)
        dataset.warm()
        set_dataset(app, dataset)
        app.state.tile_engine.warm()
        app.state.store_version = version


def apply_decisions(app: FastAPI) -> int:
    """Serve the accepted locations the log has and the served dataset lacks; returns how many.

    Nothing is read but the log's new lines: the served dataset is copied with the moved
    cooperatives joined and serialised again (``Dataset.with_verified``). A pending report
    changes nothing that is served, so it costs nothing here.
    """
    from coopgis.api.field import carry_over_indexes

    with app.state.update_lock:
        ds: Dataset = app.state.dataset
        accepted, _ = app.state.report_log.accepted()
        new = {reg: d for reg, d in accepted.items() if (ds.verified.get(reg) or {}).get("id") != d["id"]}
        if not new:
            return 0
        dataset = ds.with_verified(new)
        carry_over_indexes(ds.collections["cooperatives"], dataset.collections["cooperatives"])
        set_dataset(app, dataset)
        app.state.tile_engine.warm()
        return len(new)


def check_store(app: FastAPI) -> str | None:
    """One look at the dataset folder: 'reloaded' after a new ingest, 'updated' when the log has new
    accepted locations (another worker's decision), else None."""
    from coopgis.store import FileStore

    version = FileStore(app.state.settings.data).version()
    if version != app.state.store_version:
        app.state.store_version = version  # tried once: a damaged store is not read again every tick
        app.state.reload_dataset()
        return "reloaded"
    return "updated" if app.state.apply_decisions() else None


def _watch_store(app: FastAPI, every: float = WATCH_SECONDS) -> None:
    """Every ``every`` seconds: serve a new ingest, or accepted locations decided in another worker."""
    from coopgis.store import FileStore

    settings = app.state.settings
    app.state.store_version = FileStore(settings.data).version()

    async def loop():
        log = logging.getLogger("coopgis")
        while True:
            await asyncio.sleep(every)
            try:
                done = await asyncio.to_thread(check_store, app)
            except Exception:  # a half-finished or damaged store: keep serving the previous dataset
                log.exception("reading %s failed; still serving the previous dataset", settings.data)
                continue
            if done:
                log.info("dataset %s from %s", done, settings.data)

    app.state.store_watcher = asyncio.get_running_loop().create_task(loop())
