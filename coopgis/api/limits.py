"""What one request may cost: rate limits per real client, a gate for heavy work, a time budget.

- :func:`client_key` names the client a request is charged to: the peer's address, or,
  only when the peer is one of ``COOPGIS_TRUSTED_PROXIES``, the address its
  ``X-Forwarded-For`` gives (the right-most one that is not itself a trusted proxy).
- :class:`RateLimiter` keeps token buckets per (client, group).
- :class:`HeavyGate` lets ``COOPGIS_HEAVY_CONCURRENCY`` heavy requests (downloads, HTML
  pages, stats, uncached tiles) work at once; the others wait in line without holding a
  thread, and get a 503 after ``COOPGIS_HEAVY_WAIT_SECONDS``. Cheap requests never wait
  here, so a flood of heavy ones cannot starve them.
- :func:`admit` is what an endpoint calls once it knows, from its parsed parameters, what
  the request is: it charges the client's bucket (429) and, for heavy work, takes a turn
  at the gate and starts the request's time budget (:mod:`coopgis.budget`). The turn is
  given back by :class:`~coopgis.api.security.SecurityMiddleware` when the whole response
  (a streamed download included) has been sent.

Not here: body size, credentials and headers (``security.py``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from fastapi import Request

from coopgis import budget
from coopgis.api.errors import ApiError

SLOT = "coopgis.slot"          # scope["state"] key of the request's turn at the heavy gate
CLIENT = "coopgis.client"      # scope["state"] key of the client the request is charged to


def client_key(scope, trusted: tuple) -> str:
    """The address a request is charged to; X-Forwarded-For counts only when a trusted proxy sent it."""
    peer = (scope.get("client") or ("?", 0))[0]
    if not trusted or not _in(peer, trusted):
        return peer
    forwarded = [v for k, v in scope.get("headers") or () if k == b"x-forwarded-for"]
    hops = [h.strip() for v in forwarded for h in v.decode("latin-1").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop if _is_address(hop) else peer
    return peer


def trusted_networks(entries) -> tuple:
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def _in(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in networks)


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


class RateLimiter:
    """Token buckets per (client, group): ``rate`` requests per minute, bursts up to ``burst``."""

    def __init__(self, rate_per_minute: float, burst: int):
        self.rate = rate_per_minute / 60.0
        self.burst = burst
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str, group: str) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get((client, group), (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[(client, group)] = (tokens - 1, now)
                if len(self._buckets) > 100_000:  # bounded memory under a flood of clients
                    self._buckets.clear()
                return 0.0
            self._buckets[(client, group)] = (tokens, now)
            return (1 - tokens) / self.rate


@dataclass(eq=False)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    handed: bool = False


class HeavyGate:
    """At most ``slots`` holders at once; the others wait in line (FIFO) without a thread.

    Safe across event loops and threads (the test client runs each request in a loop of its
    own): a turn is handed to the next waiter under a lock, and its loop is woken with
    ``call_soon_threadsafe``.
    """

    def __init__(self, slots: int):
        self.slots = slots
        self._busy = 0
        self._waiters: deque[_Waiter] = deque()
        self._lock = threading.Lock()

    @property
    def busy(self) -> int:
        return self._busy

    async def acquire(self, timeout: float) -> bool:
        """True once the caller holds a turn; False after ``timeout`` seconds in line."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._busy < self.slots and not self._waiters:
                self._busy += 1
                return True
            waiter = _Waiter(loop, loop.create_future())
            self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
            return True
        except TimeoutError:
            with self._lock:
                if not waiter.handed:
                    self._waiters.remove(waiter)
                    return False
            return True  # handed over just as the wait ran out: the turn is ours
        except BaseException:  # cancelled (the client went away): give back a turn handed meanwhile
            with self._lock:
                if not waiter.handed:
                    self._waiters.remove(waiter)
                    raise
            self.release()
            raise

    def release(self) -> None:
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                try:
                    waiter.loop.call_soon_threadsafe(_wake, waiter.future)
                except RuntimeError:  # its event loop is closed: so is the request that waited
                    continue
                waiter.handed = True  # the turn passes on; _busy stays
                return
            self._busy -= 1


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(True)


@dataclass
class Turn:
    """A request's turn at the heavy gate, given back once (by the middleware, at the end)."""

    gate: HeavyGate | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def give_back(self) -> None:
        with self._lock:
            gate, self.gate = self.gate, None
        if gate is not None:
            gate.release()


class Limits:
    """The app's rate limiters by group, its heavy gate and the time budget of heavy work."""

    def __init__(self, settings):
        self.trusted = trusted_networks(settings.trusted_proxies)
        self.buckets = {
            "geocode": RateLimiter(settings.rate_geocode_per_minute, settings.rate_burst),
            "download": RateLimiter(settings.rate_download_per_minute, settings.rate_burst),
            "read": RateLimiter(settings.rate_read_per_minute, settings.rate_burst),
            "tiles": RateLimiter(settings.rate_tiles_per_minute, settings.rate_tiles_burst),
        }
        self.refusals: dict[str, int] = dict.fromkeys(self.buckets, 0)   # 429s by group, for /metrics
        self.gate = HeavyGate(settings.heavy_concurrency)
        self.wait_seconds = settings.heavy_wait_seconds
        self.budget_seconds = settings.request_budget_seconds

    def charge(self, client: str, group: str) -> None:
        """429 with Retry-After when ``client`` is over the rate of ``group``."""
        wait = self.buckets[group].allow(client, group)
        if wait > 0:
            self.refusals[group] += 1
            seconds = math.ceil(wait)
            raise ApiError(f"too many {group} requests from this client; retry in {seconds} s", status=429,
                           title="Too many requests", headers={"Retry-After": str(seconds)})

    async def enter(self, state: dict) -> None:
        """Wait for a turn at the heavy gate (503 after the wait limit) and start the time budget."""
        turn = state.get(SLOT)
        if turn is None or turn.gate is not None:
            return  # no middleware around this call, or already admitted
        if not await self.gate.acquire(self.wait_seconds):
            seconds = math.ceil(self.wait_seconds)
            raise ApiError(f"the server is busy with other large requests; retry in {seconds} s", status=503,
                           title="Busy", headers={"Retry-After": str(seconds)})
        turn.gate = self.gate
        budget.start(self.budget_seconds)


async def admit(request: Request, group: str, heavy: bool) -> None:
    """Charge the request's client for ``group``; for heavy work, also wait for a turn at the gate."""
    limits: Limits = request.app.state.limits
    state = request.scope.setdefault("state", {})
    client = state.get(CLIENT) or client_key(request.scope, limits.trusted)
    limits.charge(client, group)
    if heavy:
        await limits.enter(state)
