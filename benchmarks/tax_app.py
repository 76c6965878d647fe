"""The servers of ``python -m benchmarks.tax``: a bare FastAPI no-op, and coopgis with pieces of its stack left out.

``python -m benchmarks.tax_app noop --port P [--no-access-log]``: a FastAPI app with one route,
``@app.get("/noop") async def noop(): return {}``, served by uvicorn with uvloop, httptools and one worker
(uvicorn's defaults otherwise: its access log is on). That is the baseline of the framework tax.

``python -m benchmarks.tax_app coopgis --port P [--drop NAME[,NAME]] [--no-access-log]``: ``create_app()`` of
the store in ``COOPGIS_DATA`` served exactly as :func:`coopgis.app.run_server` serves it (the guarded
httptools protocol, uvloop, one worker, the app's batched access log; ``--no-access-log`` sets
``COOPGIS_ACCESS_LOG=false``), with the named middleware classes left out of the stack and one
more route, ``GET /__noop`` (an ``async def`` answering ``{}``, behind every middleware and the app-wide
dependencies): the cost of the stack alone. Only the benchmark runs these; production is ``coopgis serve``.
"""

from __future__ import annotations

import argparse
import os

DROP_ENV = "COOPGIS_TAX_DROP"


def noop_app():
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/noop")
    async def noop():
        return {}

    return app


def coopgis_app():
    from coopgis.app import create_app

    app = create_app()
    drop = {n for n in os.environ.get(DROP_ENV, "").split(",") if n}
    app.user_middleware = [m for m in app.user_middleware if getattr(m.cls, "__name__", "") not in drop]

    @app.get("/__noop", include_in_schema=False)
    async def stack_noop():
        return {}

    return app


def main() -> None:
    import uvicorn

    ap = argparse.ArgumentParser(prog="python -m benchmarks.tax_app")
    ap.add_argument("app", choices=("noop", "coopgis"))
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--drop", default="", help="middleware class names to leave out (coopgis)")
    ap.add_argument("--no-access-log", action="store_true")
    ap.add_argument("--env", action="append", default=[], help="coopgis: a setting NAME=VALUE for this server")
    ap.add_argument("--uvicorn-access-log", action="store_true",
                    help="coopgis: uvicorn's access log (per request, on the event loop) instead of the app's")
    args = ap.parse_args()
    if args.app == "noop":
        uvicorn.run("benchmarks.tax_app:noop_app", factory=True, host="127.0.0.1", port=args.port, loop="uvloop",
                    http="httptools", workers=1, access_log=not args.no_access_log)
        return
    from uvicorn.config import LOGGING_CONFIG

    from coopgis.api.access import logging_config
    from coopgis.api.protocol import GuardedHttpToolsProtocol
    from coopgis.settings import ServiceSettings

    os.environ[DROP_ENV] = args.drop
    for pair in args.env:
        name, _, value = pair.partition("=")
        os.environ[name] = value
    if args.no_access_log or args.uvicorn_access_log:
        os.environ["COOPGIS_ACCESS_LOG"] = "false"
    s = ServiceSettings()
    uvicorn.run("benchmarks.tax_app:coopgis_app", factory=True, host="127.0.0.1", port=args.port, workers=1,
                loop="uvloop", http=GuardedHttpToolsProtocol, log_level="info", proxy_headers=False,
                server_header=False, root_path=s.root_path, limit_concurrency=s.max_connections,
                timeout_keep_alive=5, access_log=args.uvicorn_access_log,
                log_config=logging_config(LOGGING_CONFIG))


if __name__ == "__main__":
    main()
