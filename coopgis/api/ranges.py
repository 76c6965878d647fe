"""Answers built once and served in byte ranges: items pages and downloads for ``/vsicurl/`` and QGIS.

GDAL's ``/vsicurl/`` (behind ``ogrinfo``, QGIS "Add Vector Layer -> HTTP" and
``geopandas.read_file(URL)``) reads a remote file in pieces: a HEAD or a first range, then
``Range: bytes=a-b`` requests. Every items answer (GeoJSON, CSV, GeoPackage, KML) is therefore
a finished body with ``Content-Length``, ``Accept-Ranges: bytes`` and a strong ``ETag`` (a hash
of the bytes); ``Range`` gets ``206 Partial Content`` with ``Content-Range``, ``If-Range`` is
honoured, a range past the end is a 416.

:class:`AnswerCache` keeps recent bodies per (dataset, collection, format, query, access
level), bounded in bytes by ``COOPGIS_DOWNLOAD_CACHE_MB``: the pieces of one file are cut from
the same bytes, and a cached answer costs no rate limit and no turn at the heavy gate (like a
cached tile). GeoJSON pages carry the time they were made (``timeStamp``), so a plain GET of a
page is made anew; only range requests (and HEAD) reuse a cached page, and only they and the downloads
are kept (pages read whole filled the cache with answers nobody would ask for in pieces).

Not here: building the bodies (``formats.py``), choosing what is selected (``api/features.py``).
"""

from __future__ import annotations

import hashlib
import re
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.responses import Response

from coopgis.media import etag_matches

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


@dataclass
class Answer:
    """A finished body with its media type, strong ETag and other headers."""

    body: bytes
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)
    etag: str = ""

    def __post_init__(self):
        if not self.etag:
            self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'


class AnswerCache:
    """Recent answers by key, at most ``max_bytes`` in all (least recently used go first)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, tuple[weakref.ref, Answer]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, dataset, key: tuple) -> Answer | None:
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                return None
            if entry[0]() is not dataset:  # made from a dataset no longer served
                self._drop(key)
                return None
            self._items.move_to_end(key)
            return entry[1]

    def put(self, dataset, key: tuple, answer: Answer) -> None:
        size = len(answer.body)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                self._drop(key)
            self._items[key] = (weakref.ref(dataset), answer)
            self._size += size
            while self._size > self.max_bytes and self._items:
                self._drop(next(iter(self._items)))

    def _drop(self, key: tuple) -> None:
        _, answer = self._items.pop(key)
        self._size -= len(answer.body)


def wants_range(request: Request) -> bool:
    """True for a request that reads part of an answer (Range) or only its headers (HEAD)."""
    return "range" in request.headers or request.scope.get("coopgis.head", False)


def respond(request: Request, answer: Answer) -> Response:
    """The answer, whole (200), as asked by ``Range`` (206) or 416 for a range past its end; 304 when
    ``If-None-Match`` names its ETag."""
    headers = {**answer.headers, "ETag": answer.etag, "Accept-Ranges": "bytes"}
    if etag_matches(request.headers.get("if-none-match"), answer.etag):
        return Response(status_code=304, headers=headers)
    size = len(answer.body)
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if wanted and (if_range is None or if_range.strip() == answer.etag):
        span = _span(wanted, size)
        if span is None:  # not a single byte range this server reads: the whole answer (RFC 9110 14.2)
            return Response(answer.body, media_type=answer.media_type, headers=headers)
        start, end = span
        if start < 0:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return Response(answer.body[start:end + 1], status_code=206, media_type=answer.media_type, headers=headers)
    return Response(answer.body, media_type=answer.media_type, headers=headers)


UNSATISFIABLE = (-1, -1)


def _span(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single range, UNSATISFIABLE past the end, None when not understood."""
    m = _RANGE.match(header)
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if not first and not last:
        return None
    if not first:  # the last N bytes
        n = int(last)
        if n == 0 or not size:
            return UNSATISFIABLE
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return UNSATISFIABLE if start >= size else None
    return start, end
