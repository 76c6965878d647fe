"""The FastAPI app factory: ``create_app(settings, dataset)`` builds everything, no import-time state.

Run it with ``coopgis serve`` (:func:`run_server`: uvicorn with uvloop and httptools), or in
tests with ``TestClient(create_app(settings, dataset))``. One lifespan warms the served
dataset in the background (features, tile index, nearest and search indexes) and follows the
store for a new ingest or another worker's decisions. The store is chosen by the settings
(``backend.py``): the data folder, watched, or PostgreSQL/PostGIS, followed through LISTEN/NOTIFY
(each replica then keeps only its read model in memory).

Not here: loading the store (``loading.py``), the routes (``api/``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from coopgis import __version__
from coopgis.api import (
    admin,
    clusters,
    dashboard,
    features,
    field,
    fieldpages,
    geocoding,
    maps,
    ogc_tiles,
    ops,
    packs,
    pages,
    stats,
    tiles,
)
from coopgis.api.access import AccessLog, logging_config
from coopgis.api.errors import register_error_handlers
from coopgis.api.html import make_templates
from coopgis.api.limits import Limits
from coopgis.api.methods import HeadAsGet, ItemSuffixes, PublicCors
from coopgis.api.metrics import Metrics, MetricsMiddleware
from coopgis.api.openapi import openapi_30
from coopgis.api.ranges import AnswerCache
from coopgis.api.security import SecurityMiddleware, install_log_redaction
from coopgis.backend import open_backend
from coopgis.corrections import verified_columns
from coopgis.dataset import Dataset
from coopgis.loading import load_dataset, malloc_loading, release_memory, trim_heap
from coopgis.maps import MapSettings
from coopgis.query import temporal_extent
from coopgis.settings import ServiceSettings
from coopgis.tiles import TileEngine

STATIC = Path(__file__).resolve().parent / "static"
WATCH_SECONDS = 0.5   # how often each worker looks for a new ingest or another worker's decision
HEAP_TRIM_SECONDS = 0.25   # how often each worker hands the free pages of its heap back (loading.trim_heap)
log = logging.getLogger("coopgis")


def create_app(settings: ServiceSettings | None = None, dataset: Dataset | None = None,
               map_settings: MapSettings | None = None) -> FastAPI:
    """Build the app for ``settings``, serving ``dataset`` (default: the store in settings.data)."""
    settings = settings or ServiceSettings()
    map_settings = map_settings or MapSettings()
    backend = open_backend(settings)
    location_reports = backend.reports
    version = None
    if dataset is None:
        version = backend.store.version()   # before the read: a write meanwhile is seen as a change
        dataset = load_dataset(settings, log=location_reports, store=backend.store)
    app = FastAPI(title="coopgis", version=__version__, openapi_url="/api", docs_url=None, redoc_url=None,
                  root_path=settings.root_path, lifespan=_lifespan,
                  description="Iran's cooperatives: OGC API - Features, vector tiles, geocoding, statistics. "
                              "Persian first; English alongside.")
    app.state.settings = settings
    app.state.backend = backend
    app.state.store = backend.store
    app.state.tokens = backend.tokens
    app.state.limits = Limits(settings)
    app.state.read_model = ReadModelState()
    app.state.templates = make_templates()
    app.state.location_reports = location_reports   # one per app: its index grows with the log
    app.state.update_lock = threading.Lock()         # one change of the served dataset at a time
    app.state.store_version = version
    app.state.answers = AnswerCache(int(settings.download_cache_mb * 1024 * 1024))   # items served in ranges
    install_log_redaction()
    set_dataset(app, dataset)
    app.state.reload_dataset = lambda: _reload(app)
    app.state.apply_decisions = lambda: apply_decisions(app)
    if backend.database is not None:   # an accepted decision stores the joins of its new point with it
        backend.reports.joiner = lambda reg, lon, lat: verified_columns(app.state.dataset, reg, lon, lat)
    register_error_handlers(app)
    tiles_router = tiles.build_router(settings)
    # innermost: a cached tile asked for without a query is answered before routing (as the route would)
    app.add_middleware(tiles.WarmTiles, route=tiles.tile_route(tiles_router))
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "HEAD"],
                           allow_credentials=False, allow_headers=["Accept", "If-None-Match"])
    # every answer gets its headers (HEAD, suffixes and public CORS sit outside: they only reshape requests)
    app.add_middleware(SecurityMiddleware, settings=settings, limits=app.state.limits)
    # around that: requests and latency per route template, for /metrics (inside HEAD and the suffix URLs,
    # which hand on a reshaped request: the route it matched is read from that request)
    app.state.metrics = Metrics(app)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    if settings.cors_public:
        app.add_middleware(PublicCors)
    app.add_middleware(ItemSuffixes)
    app.add_middleware(HeadAsGet)
    if settings.access_log:   # outermost: the answer's status as sent; written in batches by a thread
        app.add_middleware(AccessLog)

    routers = [features.build_router(settings), tiles_router, ogc_tiles.build_router(settings),
               clusters.build_router(settings), geocoding.build_router(settings), stats.build_router(settings),
               field.build_router(settings), maps.build_router(settings, map_settings),
               dashboard.build_router(map_settings, settings), pages.build_router(map_settings),
               admin.build_router(settings), packs.build_router(settings, map_settings),
               fieldpages.build_router(settings, map_settings), ops.build_router()]
    for router in routers:   # each made with CheckedRoute: an unknown query parameter is a 400 everywhere
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.openapi = lambda: openapi_30(app)  # type: ignore[method-assign]  # FastAPI's documented override
    return app


def server_config(settings: ServiceSettings, app: FastAPI | None = None):
    """uvicorn's configuration of the service: uvloop, httptools with limits on request heads, the app's own
    access log. ``app``: serve this app (else ``create_app`` is called by each of uvicorn's workers)."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from coopgis.api.protocol import GuardedHttpToolsProtocol

    # X-Forwarded-For is read by the app, from COOPGIS_TRUSTED_PROXIES only (uvicorn's own
    # proxy_headers would trust 127.0.0.1, and so any local client).
    return uvicorn.Config(app if app is not None else "coopgis.app:create_app", factory=app is None,
                          host=settings.host, port=settings.port, workers=1 if app is not None else settings.workers,
                          loop="uvloop", http=GuardedHttpToolsProtocol, log_level="info", proxy_headers=False,
                          server_header=False, root_path=settings.root_path,
                          limit_concurrency=settings.max_connections, timeout_keep_alive=5,
                          # the app writes the access log (api/access.py: batched, off the request path), not uvicorn
                          access_log=False, log_config=logging_config(LOGGING_CONFIG))


def run_server(settings: ServiceSettings) -> None:
    """Serve ``create_app`` with uvicorn until stopped: in this process, or in uvicorn's workers (the
    database store; the file store's workers share one loaded dataset: ``workers.run_workers``)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = server_config(settings)
    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    if config.workers == 1 and not server.started:
        sys.exit(3)   # as uvicorn.run: the app did not start (the reason is logged above)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Warm the dataset in the background (requests build what they need meanwhile) and follow the store:
    the data folder by watching it, the database by LISTEN/NOTIFY."""
    threading.Thread(target=_warm, args=(app,), name="coopgis-warm", daemon=True).start()
    backend = app.state.backend
    if app.state.store_version is None:   # else: the version read before the load (a forked worker's)
        app.state.store_version = backend.store.version()
    listener = watcher = None
    if backend.database is not None:
        from coopgis.db.connect import Listener

        listener = Listener(backend.database.url, on_notify=lambda payload: _notified(app, payload),
                            on_connect=lambda: _caught_up(app), timeout=app.state.settings.database_timeout_seconds)
        app.state.listener = listener
        listener.start()
    else:
        watcher = asyncio.get_running_loop().create_task(_watch_store(app))
    trimmer = asyncio.get_running_loop().create_task(_trim_heap_every(HEAP_TRIM_SECONDS))
    try:
        yield
    finally:
        trimmer.cancel()
        if watcher is not None:
            watcher.cancel()
        if listener is not None:
            listener.stop()
        backend.close()


def set_dataset(app: FastAPI, dataset: Dataset) -> None:
    """Serve ``dataset`` from now on, with a tile engine (and tile cache) of its own."""
    settings = app.state.settings
    engine = TileEngine(dataset, settings.cluster_max_zoom, settings.tile_cache_size)
    previous = getattr(app.state, "tile_engine", None)
    if previous is not None:
        engine.lend_places(previous)   # the labels do not change with a decision or a re-ingest
    app.state.tile_engine = engine
    app.state.dataset = dataset
    read_model = getattr(app.state, "read_model", None)  # absent on a bare app built around one router
    if read_model is not None:
        read_model.changed()


def _warm(app: FastAPI) -> None:
    """Build the tile index, serialise features, make the geocoder and the field-work indexes, before
    requests need them (a map's first tiles first: the tile index takes a fifth of a second)."""
    try:
        dataset: Dataset = app.state.dataset
        app.state.tile_engine.warm()
        dataset.warm()
        dataset.warm_indexes()
        temporal_extent(dataset.collections["cooperatives"])   # the registration days /collections reads
        release_memory()  # the store's read buffers, the read frame's copies, what the warm-up left
        gc.freeze()  # the loaded dataset stays: keep its objects out of every later collection
    except Exception:  # warming is an optimisation; requests build what they need anyway
        log.exception("warming the dataset failed")
    finally:
        malloc_loading(False)   # from now on the requests' blocks: loading.tune_malloc
        app.state.read_model.warmed.set()


def _reload(app: FastAPI) -> None:
    """Load the store again (with verified locations), warm it, then swap it in."""
    settings = app.state.settings
    store = app.state.store
    with app.state.update_lock:
        app.state.read_model.reloading = True
        malloc_loading(True)   # the load's passing arrays leave no holes in the heap (loading.tune_malloc)
        try:
            version = store.version()
            dataset = load_dataset(settings, app.state.dataset, app.state.location_reports, store)
            dataset.warm()
            set_dataset(app, dataset)
            app.state.tile_engine.warm()
            app.state.store_version = version
        finally:
            malloc_loading(False)
            app.state.read_model.reloading = False


def apply_decisions(app: FastAPI) -> int:
    """Serve the accepted locations the log has and the served dataset lacks; returns how many.

    Nothing is read but the log's new lines: the served dataset is copied with the moved
    cooperatives joined and serialised again (``Dataset.with_verified``, which keeps the
    search index). A pending report changes nothing that is served, so it costs nothing here.
    """
    with app.state.update_lock:
        ds: Dataset = app.state.dataset
        accepted, _ = app.state.location_reports.accepted()
        new = {reg: d for reg, d in accepted.items() if (ds.verified.get(reg) or {}).get("id") != d["id"]}
        if not new:
            return 0
        set_dataset(app, ds.with_verified(new))
        app.state.tile_engine.warm()
        return len(new)


def check_store(app: FastAPI) -> str | None:
    """One look at the store: 'reloaded' after a new ingest, 'updated' when the log has new accepted
    locations (another worker's or replica's decision), else None."""
    version = app.state.store.version()
    if version != app.state.store_version:
        app.state.store_version = version  # tried once: a damaged store is not read again every tick
        app.state.reload_dataset()
        return "reloaded"
    return "updated" if app.state.apply_decisions() else None


async def _watch_store(app: FastAPI, every: float = WATCH_SECONDS) -> None:
    """Every ``every`` seconds: serve a new ingest, or accepted locations decided in another worker."""
    data = app.state.settings.data
    while True:
        await asyncio.sleep(every)
        try:
            done = await asyncio.to_thread(check_store, app)
        except Exception:  # a half-finished or damaged store: keep serving the previous dataset
            log.exception("reading %s failed; still serving the previous dataset", data)
            continue
        if done:
            log.info("dataset %s from %s", done, data)


async def _trim_heap_every(seconds: float) -> None:
    """Hand the heap's free pages back every ``seconds``: without it, a worker keeps at its peak the pages
    its request threads once needed (56 MB more after a minute of mixed load at 100,000 cooperatives; every
    second rather than every 10 s, 5 MB less while the load runs; every quarter second rather than every
    second, 1-2 points less of the curve). In a thread, so the event loop goes on."""
    while True:
        await asyncio.sleep(seconds)
        await asyncio.to_thread(trim_heap)


def _caught_up(app: FastAPI) -> None:
    """After (re)connecting to the notifications: serve whatever was committed while not listening."""
    done = check_store(app)
    if done:
        log.info("dataset %s from the database", done)


def _notified(app: FastAPI, payload: str) -> None:
    """A notification from the database: a new dataset, or a decision made on some replica."""
    kind, _, value = payload.partition(" ")
    if kind == "dataset" and value != app.state.store_version:
        app.state.store_version = value  # tried once, as for the file store
        app.state.reload_dataset()
        log.info("dataset %s loaded from the database", value)
    elif kind == "decision":
        app.state.apply_decisions()


class ReadModelState:
    """What /ready and /metrics say of the read model: warmed once, when it last changed, reloading now."""

    def __init__(self):
        self.warmed = threading.Event()
        self.reloading = False
        self.changed_at = time.time()
        self.changes = 0

    def changed(self) -> None:
        self.changed_at = time.time()
        self.changes += 1
