"""Bounded HTTP load on loopback: an asyncio + httpx client, and wrk (Debian) with a Lua script.

Both are bounded by a request count and by seconds: no new request is sent once
either bound is reached, and the requests in flight are then awaited. Both refuse
any host but 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.common import LOOPBACK, percentile


@dataclass
class Load:
    """What one bounded load run measured."""

    tool: str
    requests: int
    errors: int
    seconds: float
    connections: int
    p50_ms: float
    p99_ms: float
    bytes: int
    statuses: dict = field(default_factory=dict)
    failed: int = 0            # responses that were not 2xx/3xx (e.g. 429 from a rate limit)

    @property
    def ok(self) -> int:
        return max(0, self.requests - self.failed)

    @property
    def rps(self) -> float:
        """Successful (2xx/3xx) responses per second: a 429 or 500 is not throughput."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0


def _check_loopback(base: str) -> None:
    host = urlsplit(base).hostname
    if host != LOOPBACK:
        raise ValueError(f"load is only ever sent to {LOOPBACK}, not {host!r}")


# ---- httpx -----------------------------------------------------------------------------------

def httpx_load(base: str, paths: list[str], connections: int, max_requests: int, max_seconds: float,
               headers: dict | None = None, timeout: float = 60.0) -> Load:
    """``connections`` keep-alive connections cycling over ``paths`` until a bound is reached."""
    _check_loopback(base)
    try:
        import uvloop

        return uvloop.run(_httpx(base, paths, connections, max_requests, max_seconds, headers, timeout))
    except ImportError:
        return asyncio.run(_httpx(base, paths, connections, max_requests, max_seconds, headers, timeout))


async def _httpx(base, paths, connections, max_requests, max_seconds, headers, timeout) -> Load:
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    state = {"issued": 0, "bytes": 0, "errors": 0}
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout, headers=headers or {},
                                 trust_env=False) as client:
        # open the connections before the clock starts
        await asyncio.gather(*(client.get(paths[0]) for _ in range(min(connections, max_requests))),
                             return_exceptions=True)
        started = time.perf_counter()
        deadline = started + max_seconds

        async def worker():
            while state["issued"] < max_requests and time.perf_counter() < deadline:
                i = state["issued"]
                state["issued"] += 1
                t = time.perf_counter()
                try:
                    r = await client.get(paths[i % len(paths)])
                    body = r.content
                except httpx.HTTPError:
                    state["errors"] += 1
                    continue
                latencies.append(time.perf_counter() - t)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                state["bytes"] += len(body)
                if r.status_code >= 400:
                    state["errors"] += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    ms = [x * 1000 for x in latencies]
    failed = sum(n for code, n in statuses.items() if code >= 400)
    return Load("httpx", len(latencies), state["errors"], elapsed, connections, percentile(ms, 50),
                percentile(ms, 99), state["bytes"], statuses, failed)


def walk(base: str, paths: list[str], headers: dict | None = None) -> tuple[list[float], list[int], float]:
    """Each path once, one at a time on one keep-alive connection: latencies (ms), statuses, seconds."""
    import httpx

    _check_loopback(base)
    lat, st = [], []
    with httpx.Client(base_url=base, timeout=120, headers=headers or {}, trust_env=False) as client:
        client.get("/conformance")
        started = time.perf_counter()
        for p in paths:
            t = time.perf_counter()
            r = client.get(p)
            lat.append((time.perf_counter() - t) * 1000)
            st.append(r.status_code)
        elapsed = time.perf_counter() - started
    return lat, st, elapsed


# ---- wrk -------------------------------------------------------------------------------------

WRK_SCRIPT = """
-- written by benchmarks/loadgen.py: cycle over paths, stop a thread after max_per_thread responses,
-- time from the first request sent to the last response received (wrk's own duration is the -d bound)
local ffi = require("ffi")
pcall(ffi.cdef, "typedef struct { long tv_sec; long tv_nsec; } bench_timespec; "
  .. "int clock_gettime(int clk_id, bench_timespec *tp);")
local ts = ffi.new("bench_timespec")
local function now() ffi.C.clock_gettime(1, ts); return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9 end
local paths = %(paths)s
local max_per_thread = %(max_per_thread)d
local reqs = {}
local i = 0
seen = 0
t_first = 0
t_last = 0
local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function(args)
  for k, p in ipairs(paths) do reqs[k] = wrk.format("GET", p, %(headers)s) end
end
request = function()
  if i == 0 then t_first = now() end
  i = i + 1
  return reqs[(i - 1) %% #reqs + 1]
end
response = function(status, headers, body)
  seen = seen + 1
  t_last = now()
  if seen >= max_per_thread then wrk.thread:stop() end
end
done = function(summary, latency, requests)
  local first, last = nil, 0
  for _, t in ipairs(threads) do
    local f, l = t:get("t_first"), t:get("t_last")
    if f and f > 0 and (first == nil or f < first) then first = f end
    if l and l > last then last = l end
  end
  local span = (first and last > first) and (last - first) or (summary.duration / 1e6)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%%d,"span_s":%%.6f,"duration_us":%%d,"bytes":%%d,"connect":%%d,' ..
    '"read":%%d,"write":%%d,"status":%%d,"timeout":%%d,"p50_us":%%d,"p99_us":%%d}\\n', summary.requests, span,
    summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50),
    latency:percentile(99)))
end
"""


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk_load(base: str, paths: list[str], connections: int, max_requests: int, max_seconds: float,
             headers: dict | None = None, threads: int = 1) -> Load:
    """wrk -t1 -cN -dS with a Lua script cycling over ``paths`` and stopping after ``max_requests``."""
    _check_loopback(base)
    threads = max(1, min(threads, connections))
    hdrs = "{" + ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in (headers or {}).items()) + "}"
    script = WRK_SCRIPT % {"paths": "{" + ", ".join(_lua_string(p) for p in paths) + "}",
                           "max_per_thread": max(1, max_requests // threads), "headers": "nil" if not headers
                           else hdrs}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        lua = f.name
    secs = max(1, int(round(max_seconds)))
    try:
        r = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{secs}s", "--timeout", "60s",
                            "-s", lua, base + paths[0]], capture_output=True, text=True,
                           timeout=secs + 120)
    finally:
        Path(lua).unlink(missing_ok=True)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result (exit {r.returncode}): {r.stdout[-300:]} {r.stderr[-300:]}")
    d = json.loads(line[len("WRKJSON "):])
    errors = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"]
    return Load("wrk", d["requests"], errors, d["span_s"], connections, d["p50_us"] / 1000,
                d["p99_us"] / 1000, d["bytes"], {}, d["status"])
