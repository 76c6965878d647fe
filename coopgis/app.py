"""The FastAPI app factory: ``create_app(settings, dataset)`` builds everything, no import-time state.

Run it with ``coopgis serve`` (uvicorn with uvloop and httptools), or in tests
with ``TestClient(create_app(settings, dataset))``.
"""

from __future__ import annotations

import copy
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from coopgis import __version__
from coopgis.api.errors import register_error_handlers
from coopgis.dataset import Dataset
from coopgis.maps import MapSettings
from coopgis.settings import ServiceSettings

STATIC = Path(__file__).resolve().parent / "static"


def create_app(settings: ServiceSettings | None = None, dataset: Dataset | None = None,
               map_settings: MapSettings | None = None) -> FastAPI:
    """Build the app for ``settings``, serving ``dataset`` (default: the store in settings.data)."""
    settings = settings or ServiceSettings()
    map_settings = map_settings or MapSettings()
    if dataset is None:
        dataset = load_dataset(settings)
    app = FastAPI(title="coopgis", version=__version__, openapi_url="/api", docs_url=None, redoc_url=None,
                  root_path=settings.root_path,
                  description="Iran's cooperatives: OGC API - Features, vector tiles, geocoding, statistics. "
                              "Persian first; English alongside.")
    app.state.settings = settings
    set_dataset(app, dataset)
    register_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "HEAD"],
                           allow_credentials=False, allow_headers=["Accept", "If-None-Match"])

    from coopgis.api import dashboard, features, field, geocoding, maps, stats, tiles

    app.include_router(features.build_router(settings))
    app.include_router(tiles.build_router(settings))
    app.include_router(geocoding.build_router(settings))
    app.include_router(stats.build_router())
    app.include_router(field.build_router(settings))
    app.include_router(maps.build_router(settings, map_settings))
    app.include_router(dashboard.build_router(map_settings))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.openapi = lambda: _openapi_30(app)
    return app


def set_dataset(app: FastAPI, dataset: Dataset) -> None:
    """Serve ``dataset`` from now on, with a tile engine (and tile cache) of its own."""
    from coopgis.tiles import TileEngine

    settings = app.state.settings
    app.state.tile_engine = TileEngine(dataset, settings.cluster_max_zoom, settings.tile_cache_size)
    app.state.dataset = dataset


def load_dataset(settings: ServiceSettings) -> Dataset:
    """The dataset in ``settings.data``; the embedded default sample is built first when none exists."""
    from coopgis.boundaries import load_boundaries
    from coopgis.cli import ensure_default_dataset
    from coopgis.store import FileStore

    store = FileStore(settings.data)
    if not store.exists():
        ensure_default_dataset(settings)
    boundaries = load_boundaries(settings.boundaries, deprivation=settings.deprivation,
                                 cache_dir=settings.cache_dir)
    return Dataset(store.read(), boundaries, store.read_report())


def _openapi_30(app: FastAPI) -> dict:
    """FastAPI writes OpenAPI 3.1; OGC's oas30 class and older clients want 3.0."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                      openapi_version="3.0.3")
    doc = _to_30(copy.deepcopy(doc))
    app.openapi_schema = doc
    return doc


def _to_30(node):
    """Rewrite 3.1-only schema forms: ``anyOf [X, null]`` -> X + nullable, ``examples`` -> ``example``."""
    if isinstance(node, list):
        return [_to_30(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _to_30(v) for k, v in node.items()}
    for combo in ("anyOf", "oneOf"):
        options = node.get(combo)
        nulls = ({"type": "null"}, {"nullable": True})
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
    return node
