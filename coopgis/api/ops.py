"""Operations: ``/health`` (the process answers), ``/ready`` (may get traffic) and ``/metrics``.

A load balancer sends traffic to a replica only while ``/ready`` answers 200: the read model is
built and warmed, it is the store's current version (or a reload to it is under way), and, with the
database store, the database answers and the replica is listening for its notifications. Otherwise
503 with the reasons, so the replica leaves the pool until it is ready again.

Neither answer holds personal data: versions, counts, ages and yes/no checks only.
"""

from __future__ import annotations

import time

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from coopgis.api.params import CheckedRoute
from coopgis.media import JSON


def build_router() -> APIRouter:
    router = APIRouter(tags=["Operations"], route_class=CheckedRoute)

    @router.get("/health", summary="The process answers (liveness)")
    async def health() -> Response:   # a constant: no worker thread for it
        return Response(b'{"status":"ok"}', media_type=JSON, headers={"Cache-Control": "no-store"})

    @router.get("/ready", summary="The replica may get traffic: read model loaded and current, store reachable",
                responses={503: {"description": "not ready; the body says why"}})
    def ready(request: Request) -> Response:
        body = readiness(request.app)
        return Response(orjson.dumps(body), status_code=200 if body["ready"] else 503, media_type=JSON,
                        headers={"Cache-Control": "no-store"})

    @router.get("/metrics", summary="Metrics in the Prometheus text format", response_class=Response,
                responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    def metrics(request: Request) -> Response:
        return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST,
                        headers={"Cache-Control": "no-store"})

    return router


def readiness(app) -> dict:
    """The checks behind /ready, each true or false, and whether all hold."""
    state = app.state
    rm = state.read_model
    checks: dict[str, bool] = {"read_model_warmed": rm.warmed.is_set()}
    current = None
    listener = getattr(state, "listener", None)
    if state.backend.database is not None:
        # From the notification connection, which looks at the database every second: /ready never
        # waits for a pooled connection, so a busy replica is not mistaken for a dead one.
        checks["store_reachable"] = listener is not None and listener.alive()
        current = listener.current_dataset if checks["store_reachable"] and listener is not None else None
    else:
        try:
            current = state.store.version()
            checks["store_reachable"] = True
        except Exception:  # the folder is unreadable: not ready, say so
            checks["store_reachable"] = False
    checks["read_model_current"] = current is not None and (current == state.store_version or rm.reloading)
    if state.backend.database is not None:
        checks["listening"] = listener is not None and listener.connected.is_set()
    return {"ready": all(checks.values()), "checks": checks, "store": state.backend.kind,
            "read_model": {"version": state.store_version, "cooperatives": len(state.dataset.cooperatives),
                           "age_s": round(time.time() - rm.changed_at, 1)}}
