"""The HTTP/1.1 protocol ``coopgis serve`` runs: uvicorn's httptools protocol with limits on request heads.

uvicorn's httptools protocol reads a request line and headers of any size, on the event
loop, and waits for them as long as a client likes (uvicorn's own header limit exists for
h11 only). :class:`GuardedHttpToolsProtocol` adds, per connection:

- at most ``COOPGIS_MAX_HEADER_BYTES`` of request line and headers and at most
  ``COOPGIS_MAX_HEADERS`` header fields: beyond either, a 431 answer and the connection
  is closed, as soon as the limit is passed (the rest is never read);
- at most ``COOPGIS_HEADER_TIMEOUT_SECONDS`` from connecting, or from the first byte of a
  request, to the end of its headers: then a 408 answer (or, when nothing at all was sent,
  no answer) and the connection is closed.

The answers are ``application/problem+json``. Other connections are not affected.

Not here: limits on bodies and on what a request may cost (``security.py``, ``limits.py``).
"""

from __future__ import annotations

import logging

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from coopgis.settings import ServiceSettings

log = logging.getLogger("uvicorn.error")
_PHRASES = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request that is being refused."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a size, count and time limit on each request's line and headers."""

    limits: tuple[int, int, float] | None = None   # (bytes, fields, seconds), read from the settings once

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_head_bytes, self.max_fields, self.head_timeout = self._read_limits()
        self._in_head = True          # between connecting (or the end of a request) and the end of headers
        self._received = 0            # bytes received while in a head
        self._head_size = 0           # bytes of request line and header fields parsed so far
        self._fields = 0
        self._timer = None
        self._refusal: tuple[int, str] | None = None

    @classmethod
    def _read_limits(cls) -> tuple[int, int, float]:
        if cls.limits is None:
            s = ServiceSettings()
            cls.limits = (s.max_header_bytes, s.max_headers, s.header_timeout_seconds)
        return cls.limits

    # -- connection
    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._start_timer()

    def connection_lost(self, exc) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # being closed: read no more
        if self._in_head:
            self._received += len(data)
        super().data_received(data)
        if self._refusal is None and self._in_head and self._received > self.max_head_bytes:
            self._refuse(431, f"the request line and headers are larger than {self.max_head_bytes} bytes")

    # -- parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_size = self._fields = 0
        self._start_timer()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > self.max_fields:
            self._refusal = (431, f"a request may have at most {self.max_fields} header fields")
            raise _Refused
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._stop_timer()
        self._in_head = False
        self._received = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:  # the parser stopped because a callback refused the request
            self._send_refusal()
            return
        super().send_400_response(msg)

    # -- helpers
    def _count(self, n: int) -> None:
        self._head_size += n
        if self._head_size > self.max_head_bytes:
            self._refusal = (431, f"the request line and headers are larger than {self.max_head_bytes} bytes")
            raise _Refused

    def _start_timer(self) -> None:
        if self._timer is None and self.head_timeout:
            self._timer = self.loop.call_later(self.head_timeout, self._timed_out)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if not self._in_head or self.transport is None or self.transport.is_closing():
            return
        if self._received == 0 and self._head_size == 0:
            self.transport.close()  # nothing was asked: close quietly, as for an idle keep-alive connection
            return
        self._refuse(408, f"the request's headers did not arrive within {self.head_timeout:g} s")

    def _refuse(self, status: int, detail: str) -> None:
        self._refusal = (status, detail)
        self._send_refusal()

    def _send_refusal(self) -> None:
        if self._refusal is None:
            return
        status, detail = self._refusal
        self._stop_timer()
        if self.transport is None or self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        log.warning("%s - refused a request head: %s", client, detail)
        body = orjson.dumps({"type": "about:blank", "title": _PHRASES[status].decode(), "status": status,
                             "detail": detail})
        head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/problem+json\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n" % (status, _PHRASES[status], len(body)))
        self.transport.write(head + body)
        self.transport.close()
