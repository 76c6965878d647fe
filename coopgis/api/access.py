"""The access log, written off the request path: one line per request, in uvicorn's format, in batches.

uvicorn's own access log makes a ``LogRecord``, runs the filters and formatter and writes and flushes
the stream for every request, on the event loop: about a quarter of the time of a small answer.
:class:`AccessLog` (pure ASGI, outermost) only appends a tuple when an answer starts; a daemon thread
wakes every ``FLUSH_SECONDS`` (or when ``BATCH`` lines wait), formats the waiting lines exactly as
uvicorn's default access format does (``INFO:     10.0.0.1:0 - "GET /path?query HTTP/1.1" 200 OK``),
takes credentials out of each (:func:`~coopgis.api.security.redact`) and hands them to the
``coopgis.access`` logger as one record. ``coopgis serve`` turns uvicorn's access log off and sends
``coopgis.access`` to standard output (:func:`logging_config`); ``COOPGIS_ACCESS_LOG=false`` turns it off.

A line is written within ``FLUSH_SECONDS`` of its answer; lines still waiting when the process ends are
written at exit (``atexit``).
"""

from __future__ import annotations

import atexit
import copy
import http
import logging
import threading
from collections import deque
from urllib.parse import quote

from coopgis.api.security import redact

FLUSH_SECONDS = 0.25
BATCH = 2000
LOGGER = "coopgis.access"
STATUS = {s.value: f"{s.value} {s.phrase}" for s in http.HTTPStatus}   # "200 OK", as uvicorn writes it
log = logging.getLogger(LOGGER)


class AccessLog:
    """Records each answer's request line and status; a background thread writes them (pure ASGI)."""

    def __init__(self, app):
        self.app = app
        self.waiting: deque[tuple] = deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self._thread is None:
            self._start()
        waiting = self.waiting

        async def logged_send(message):
            if message["type"] == "http.response.start":
                # scope["client"] is read now: the security layer names the real client behind a trusted proxy
                waiting.append((scope.get("client"), scope["method"], scope["path"], scope["query_string"],
                                scope.get("http_version", "1.1"), message["status"]))
                if len(waiting) >= BATCH:
                    self._wake.set()
            await send(message)

        await self.app(scope, receive, logged_send)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="coopgis-access-log", daemon=True)
                self._thread.start()
                atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # a broken log stream must not end the thread
                logging.getLogger("coopgis").exception("writing the access log failed")

    def flush(self) -> None:
        """Write every waiting line now (one record)."""
        lines = []
        waiting = self.waiting
        while waiting:
            try:
                client, method, path, query, version, status = waiting.popleft()
            except IndexError:
                break
            target = quote(path) + ("?" + query.decode("ascii", "replace") if query else "")
            addr = f"{client[0]}:{client[1]:d}" if client else ""
            lines.append(f'INFO:     {addr} - "{method} {redact(target)} HTTP/{version}" '
                         f'{STATUS.get(status) or f"{status} "}')
        if lines:
            log.info("\n".join(lines))


def logging_config(base: dict) -> dict:
    """uvicorn's logging configuration ``base`` with ``coopgis.access`` written to standard output as is."""
    cfg = copy.deepcopy(base)
    cfg.setdefault("formatters", {})["coopgis_access"] = {"format": "%(message)s"}
    cfg.setdefault("handlers", {})["coopgis_access"] = {"formatter": "coopgis_access", "class": "logging.StreamHandler",
                                                        "stream": "ext://sys.stdout"}
    cfg.setdefault("loggers", {})[LOGGER] = {"handlers": ["coopgis_access"], "level": "INFO", "propagate": False}
    return cfg
