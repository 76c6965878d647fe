"""The hostile set: what a careful attacker tries against a live service, counted by class.

Run: ``python -m benchmarks.hostile [--size 1500] [--fuzz 1500] [--no-mount]`` (root for the full-disk
class, which mounts a small tmpfs of its own and unmounts it).

Two servers on 127.0.0.1, both ``coopgis serve`` on a registry that carries personal data on purpose
(a chief executive's home address and national ID in extra columns, phone numbers written into
addresses): **A** with two workers, trusting 127.0.0.1 as a proxy so that each fuzz request can be a
client of its own; **B** with one worker and the default limits, for the limits and slow clients.

Classes and what counts as a failure:

- ``auth``: protected routes without, with malformed, revoked, too-low or URL-borne credentials must
  answer 400/401/403; with the right role, 2xx.
- ``leaks``: no personal value (phone, home address, national ID, a token) in any public answer, any
  format, any role below admin; no token in the servers' logs.
- ``traversal``: no file outside what is served (``root:x:``, ``[project]``) for encoded ``..`` paths.
- ``hostile-input``: no 5xx, no unescaped markup, no formula cell, for hostile values in every parameter.
- ``hostile-registry``: ``coopgis ingest`` of broken files never replaces the data unless it should,
  never prints a traceback, always writes its report; a 2 GB file is refused within a second.
- ``limits``: filters, downloads under every spelling, bodies, headers, 405s, X-Forwarded-For.
- ``slow-clients``: trickled and silent heads are closed; others are served meanwhile.
- ``concurrency``: reports and decisions from many threads on two workers: every acknowledged write is
  in the log, one decision wins per ETag, workers agree within 2 s.
- ``kill-9``: the server killed while writing, an ingest killed while working: nothing acknowledged is
  lost, the dataset is intact.
- ``full-disk``: the data folder on a full tmpfs: 507 naming the cause, other connections unaffected,
  one-line errors for ``token add`` and ``ingest``, no temporary files left.

Prints one table: cases, 5xx, leaks, lost acknowledged writes and failures per class (and the failures).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from benchmarks.common import LOOPBACK, Server, free_port, md_table, say

HOME = "کوچه محرمانه منزل مدیرعامل پلاک ۷"
NATIONAL_ID = "0012345678"
PHONE_IN_ADDRESS = "09123456789"
PUBLIC_PATHS = ["/collections/cooperatives/items?limit=500", "/collections/cooperatives/items?f=csv",
                "/collections/cooperatives/items?f=kml", "/collections/cooperatives/items?f=html&limit=200",
                "/collections/cooperatives/items?f=gpkg", "/stats?by=county", "/stats?f=csv",
                "/search?q=تعاونی", "/search?q=0900", f"/search?q={PHONE_IN_ADDRESS}", "/nearest?lon=51.4&lat=35.7",
                "/tiles/cooperatives/5/20/12.geojson", "/tiles/cooperatives/8/165/101.geojson",
                "/tiles/cooperatives/5/20/12.mvt", "/maps/field", "/maps/national", "/dashboard",
                "/collections?f=html", "/"]


@dataclass
class Tally:
    cases: int = 0
    server_errors: int = 0
    leaks: int = 0
    lost: int = 0
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        self.cases += 1
        if not ok:
            self.failures.append(what)


class Run:
    """Everything one run keeps: folders, tokens, servers, and the tallies by class."""

    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="coopgis-hostile-"))
        self.tally: dict[str, Tally] = {}
        self.secrets: list[str] = [HOME, NATIONAL_ID, PHONE_IN_ADDRESS]
        self.tokens: dict[str, str] = {}

    def t(self, name: str) -> Tally:
        return self.tally.setdefault(name, Tally())

    def answer(self, cls: str, r, what: str, leak_check: bool = True) -> None:
        """Count 5xx (503/507/429 are the service protecting itself) and personal data in an answer."""
        tally = self.t(cls)
        if r.status_code >= 500 and r.status_code not in (503, 507):
            tally.server_errors += 1
            tally.failures.append(f"{r.status_code} on {what}")
        if leak_check:
            body = r.content.decode("utf-8", errors="replace")
            asked = str(r.request.url)
            if any(secret in asked for secret in self.secrets) and "json" in r.headers.get("content-type", ""):
                body = json.dumps(r.json().get("features", []), ensure_ascii=False)  # the query echoed is not a leak
            for secret in self.secrets:
                if secret in body:
                    tally.leaks += 1
                    tally.failures.append(f"leak of {secret[:12]}... in {what}")


# ---- set-up -------------------------------------------------------------------------------------------

def make_registry(run: Run, size: int) -> Path:
    """The sample registry with personal data in extra columns and phone numbers inside some addresses."""
    import pandas as pd

    from coopgis.boundaries import load_boundaries
    from coopgis.sample import generate_sample, write_sample

    plain = run.tmp / "plain.csv"
    write_sample(generate_sample(size, seed=5, boundaries=load_boundaries()), plain)
    df = pd.read_csv(plain, dtype=str, keep_default_na=False)
    df["آدرس (منزل مدیرعامل)"] = HOME
    df["کد ملی مدیرعامل"] = NATIONAL_ID
    df.loc[df.index % 7 == 0, "address"] = df["address"] + " تلفن " + PHONE_IN_ADDRESS
    path = run.tmp / "registry.csv"
    df.to_csv(path, index=False)
    run.secrets += sorted(set(df["phone"]) - {""})[:50]
    return path


def cli(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coopgis.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def setup(run: Run) -> None:
    registry = make_registry(run, run.args.size)
    run.data = run.tmp / "data"
    out = cli("ingest", str(registry), "--data", str(run.data), "--no-progress")
    assert out.returncode == 0, out.stderr
    run.registry = registry
    run.tokens_file = run.tmp / "tokens.json"
    for name, role in (("officer", "field_officer"), ("staff", "gis_staff"), ("admin", "admin"),
                       ("gone", "field_officer"), *((f"officer{i}", "field_officer") for i in range(10))):
        run.tokens[name] = cli("token", "add", name, "--role", role, "--file", str(run.tokens_file)).stdout.strip()
    cli("token", "revoke", "gone", "--file", str(run.tokens_file))
    run.secrets += list(run.tokens.values())
    env = {"COOPGIS_TOKENS_FILE": str(run.tokens_file), "COOPGIS_TRUSTED_PROXIES": '["127.0.0.1"]',
           "COOPGIS_HEADER_TIMEOUT_SECONDS": "3", "COOPGIS_REPORTS_PER_HOUR": "1000"}
    run.logs = run.tmp / "logs"
    run.a = start(run, "hostile-a", run.data, 2, env)
    run.b = start(run, "hostile-b", run.data, 1, {"COOPGIS_TOKENS_FILE": str(run.tokens_file),
                                                  "COOPGIS_HEADER_TIMEOUT_SECONDS": "3"})
    import httpx

    feats = httpx.get(run.a.base + "/collections/cooperatives/items?limit=300", timeout=60).json()["features"]
    run.regs = [f["id"] for f in feats if f["geometry"]]


def start(run: Run, name: str, data: Path, workers: int, env: dict) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "coopgis.cli", "serve", "--data", str(data), "--port", str(port),
            "--workers", str(workers)]
    return Server(name, argv, port, "/conformance", env=env, log=run.tmp / "logs" / f"{name}.log").start()


def client(base: str, token: str | None = None, spoof: str | None = None, **kw):
    import httpx

    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if spoof:
        headers["X-Forwarded-For"] = spoof
    return httpx.Client(base_url=base, headers=headers, timeout=120, trust_env=False, **kw)


_spoofs = iter(f"198.18.{i // 250}.{i % 250 + 1}" for i in range(10**6))


def fresh() -> str:
    """An address of its own for one request (server A trusts 127.0.0.1 as a proxy)."""
    return next(_spoofs)


# ---- classes -------------------------------------------------------------------------------------------

def auth(run: Run) -> None:
    import httpx

    cls = "auth"
    base = run.a.base
    reg = run.regs[0]
    protected = [("GET", "/location-reports", "field_officer"), ("GET", "/audit", "admin"),
                 ("POST", "/admin/reload", "admin"), ("GET", f"/cooperatives/{reg}/location-reports", "field_officer"),
                 ("POST", f"/location-reports/{'0' * 32}/decision", "admin"),
                 ("POST", f"/cooperatives/{reg}/location-reports", "field_officer")]
    level = {"field_officer": 1, "gis_staff": 2, "admin": 3}
    roles = {"officer": "field_officer", "staff": "gis_staff", "admin": "admin"}
    bad = ["", "Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer ", "Bearer x", "Bearer " + run.tokens["gone"],
           "Bearer " + run.tokens["admin"] + "x", "Bearer " + run.tokens["admin"][:-1], "Token " + run.tokens["admin"],
           "Bearer " + run.tokens["admin"] + " " + run.tokens["admin"], "bearer\t" + run.tokens["admin"][:10],
           "Bearer ' OR 1=1 --", "Bearer " + "A" * 5000, "Bearer ../../etc/passwd", "Bearer \u00e9" + "x" * 40]
    body = {"lon": 51.4, "lat": 35.7, "accuracy_m": 10, "reason": "x", "decision": "rejected"}
    with client(base) as c:
        for method, path, role in protected:
            for header in bad:
                h = {"Authorization": header, "X-Forwarded-For": fresh()} if header else {"X-Forwarded-For": fresh()}
                try:
                    r = c.request(method, path, headers=h, json=body)
                except (httpx.LocalProtocolError, UnicodeEncodeError):  # a value the client will not send
                    continue
                run.answer(cls, r, f"{method} {path} with {header[:20]!r}")
                run.t(cls).check(r.status_code in (400, 401, 403), f"{method} {path} with {header[:20]!r}: "
                                                                   f"{r.status_code}")
            for name, have in roles.items():
                r = c.request(method, path, json=body, headers={"Authorization": f"Bearer {run.tokens[name]}",
                                                                "If-Match": '"x"', "X-Forwarded-For": fresh()})
                run.answer(cls, r, f"{method} {path} as {name}", leak_check=False)
                allowed = level[have] >= level[role]
                run.t(cls).check((r.status_code < 500 and r.status_code not in (401, 403)) if allowed
                                 else r.status_code == 403, f"{method} {path} as {name}: {r.status_code}")
        params = ["access_token", "token", "api_key", "apikey", "key", "auth", "password", "Access_Token",
                  "%61ccess_token", "TOKEN", "bearer", "id_token"]
        routes = ["/", "/collections", "/collections/cooperatives/items", "/tiles/cooperatives/5/20/12.mvt",
                  "/geocode?q=x", "/stats", "/maps/national", "/maps", "/dashboard", "/vendor/leaflet.js",
                  "/static/coopgis.css", "/search?q=x", f"/cooperatives/{reg}", "/api"]
        for route in routes:
            for p in params:
                sep = "&" if "?" in route else "?"
                r = c.get(f"{route}{sep}{p}={run.tokens['admin']}", headers={"X-Forwarded-For": fresh()})
                run.answer(cls, r, f"{route} ?{p}=")
                run.t(cls).check(r.status_code == 400, f"{route}?{p}=<token>: {r.status_code}")


def leaks(run: Run) -> None:
    cls = "leaks"
    for who in (None, "officer", "staff", "admin"):
        with client(run.a.base, run.tokens.get(who)) as c:
            paths = PUBLIC_PATHS + [f"/collections/cooperatives/items/{r}" for r in run.regs[:40]]
            paths += [f"/cooperatives/{r}" for r in run.regs[:40]] if who != "admin" else []
            for path in paths:
                r = c.get(path, headers={"X-Forwarded-For": fresh()})
                run.answer(cls, r, f"{path} as {who or 'public'}")
                run.t(cls).check(r.status_code == 200, f"{path} as {who or 'public'}: {r.status_code}")
    with client(run.a.base, run.tokens["admin"]) as c:
        r = c.get(f"/cooperatives/{run.regs[0]}", headers={"X-Forwarded-For": fresh()})
        run.t(cls).check(bool(r.json()["properties"].get("extra")), "the administrator's own record lacks extra")


def logs(run: Run) -> None:
    """No token in any server's log, and no traceback, after everything else was tried."""
    cls = "leaks"
    for log in run.logs.glob("*.log"):
        tracebacks = log.read_text(errors="replace").count("Traceback")
        run.t("server-logs").check(tracebacks == 0, f"{tracebacks} tracebacks in {log.name}")
        run.t("server-logs").server_errors += tracebacks
        text = log.read_text(errors="replace")
        for name, token in run.tokens.items():
            run.t(cls).cases += 1
            if token[:20] in text:
                run.t(cls).leaks += 1
                run.t(cls).failures.append(f"token of {name} in {log.name}")


def traversal(run: Run) -> None:
    cls = "traversal"
    targets = ["etc/passwd", "pyproject.toml", "coopgis/settings.py", "var/tokens.json", "../tokens.json"]
    prefixes = ["/vendor/", "/static/", "/maps/", "/tiles/", "/collections/", "/cooperatives/", "/tiles/counties/"]
    dots = ["../", "..%2f", "%2e%2e/", "%2e%2e%2f", "..%252f", "..\\", "..%5c", "%c0%ae%c0%ae/", "....//", ".%2e/",
            "%2e./", "..;/", "..%00/"]
    for prefix in prefixes:
        for dot in dots:
            for target in targets:
                raw = prefix + dot * 6 + target
                with socket.create_connection((LOOPBACK, run.a.port), timeout=10) as s:
                    s.sendall(f"GET {raw} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {fresh()}\r\nConnection: close"
                              f"\r\n\r\n".encode("latin-1"))
                    out = b""
                    try:
                        while chunk := s.recv(65536):
                            out += chunk
                    except OSError:
                        pass
                status = int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/") else 0
                leaked = b"root:x:" in out or b"[project]" in out or b"sha256" in out or b"class Settings" in out
                run.t(cls).check(not leaked and 400 <= status < 500, f"{raw}: {status}{' LEAK' if leaked else ''}")
                if leaked:
                    run.t(cls).leaks += 1
                if status >= 500:
                    run.t(cls).server_errors += 1


HOSTILE = ["'", "\"", "' OR '1'='1", "1; DROP TABLE x", "<script>alert(1)</script>", "\"><img src=x onerror=1>",
           "{{7*7}}", "${7*7}", "%s%s%s%n", "\x00", "a\x00b", "\u202eabc", "\ufeff", "🙂" * 50, "ن" * 3000, "x" * 10000,
           "-1", "0", "1e309", "nan", "inf", "-inf", "9" * 40, "۱۲۳", "٣", "1,2,3,4,5", ",,,,", "..", "../../",
           "=cmd|'/C calc'!A0", "+1", "@SUM(1)", "\r\nSet-Cookie: x=1", "%0d%0a", "null", "true", "[]", "{}",
           "IR-07", "Kerman," * 200, "کرمان", "EPSG:4326", "http://evil/", "javascript:alert(1)", "\t", " ", ""]


def hostile_input(run: Run) -> None:
    cls = "hostile-input"
    rng = random.Random(1404)
    targets = {
        "/collections/cooperatives/items": ["bbox", "bbox-crs", "crs", "limit", "offset", "f", "kind", "sector",
                                            "status", "province", "county", "deprived", "border", "women_led",
                                            "registered_year", "precision"],
        "/stats": ["by", "f", "bbox", "county", "province", "kind", "registered_year"],
        "/tiles/cooperatives/5/20/12.mvt": ["kind", "county", "registered_year", "precision"],
        "/tiles/cooperatives/tilejson.json": ["format", "kind"],
        "/search": ["q", "limit", "kind"], "/nearest": ["lon", "lat", "limit", "radius_km"],
        "/geocode": ["q", "province", "county", "place"], "/reverse": ["lon", "lat"],
        "/collections/provinces/items": ["bbox", "limit", "f"], "/maps": ["f"], "/collections": ["f"],
    }
    paths = ["/tiles/cooperatives/{}/{}/{}.mvt", "/collections/{}", "/maps/{}", "/collections/cooperatives/items/{}",
             "/tiles/{}/1/1/1.mvt", "/cooperatives/{}"]
    n = 0

    def one(path, params):
        with client(run.a.base, spoof=fresh()) as c:
            return path, params, c.get(path, params=params)

    jobs = []
    while n < run.args.fuzz:
        n += 1
        if rng.random() < 0.8:
            path = rng.choice(list(targets))
            params = {name: rng.choice(HOSTILE) for name in rng.sample(targets[path], min(3, len(targets[path])))}
            if path in ("/nearest", "/reverse"):
                params.setdefault("lon", "51.4")
                params.setdefault("lat", "35.7")
        else:
            template = rng.choice(paths)
            values = [quote(rng.choice(HOSTILE) or "x", safe="") for _ in range(template.count("{}"))]
            path, params = template.format(*values), {}
        jobs.append((path, params))
    with cf.ThreadPoolExecutor(4) as pool:
        for path, params, r in pool.map(lambda j: one(*j), jobs):
            what = f"{path} {params!r}"[:160]
            run.answer(cls, r, what)
            ok = r.status_code < 500 or r.status_code == 503
            ctype = r.headers.get("content-type", "")
            if "html" in ctype and re.search(r"<script>alert|<img src=x onerror", r.text):
                ok = False
                what += " (unescaped markup)"
            if "csv" in ctype and re.search(r"(^|,)[=+@]", r.content.decode("utf-8-sig", "replace"), re.M):
                ok = False
                what += " (formula cell)"
            run.t(cls).check(ok, f"{r.status_code}: {what}")


def hostile_registry(run: Run) -> None:
    cls = "hostile-registry"
    lines = run.registry.read_text(encoding="utf-8").splitlines(keepends=True)
    files: list[tuple[str, bytes, set[int], bool]] = []     # name, content, allowed exit codes, may replace
    broken = list(lines)
    broken[10] = broken[10].replace(",", ',"', 1)
    files.append(("unclosed-quote.csv", "".join(broken).encode(), {0}, True))
    files.append(("duplicates.csv", (lines[0] + lines[1] * (len(lines) - 1)).encode(), {3}, False))
    files.append(("header-only.csv", lines[0].encode(), {3}, False))
    files.append(("only-commas.csv", (lines[0] + ",,,,,,,\n" * 100).encode(), {3}, False))
    files.append(("over-long.csv", (lines[0] + "".join(ln.rstrip("\n") + ",x,y\n" for ln in lines[1:])).encode(),
                  {3}, False))
    files.append(("mixed-encodings.csv", "".join(lines[:100]).encode() +
                  "".join(lines[100:110]).replace("ی", "ي").replace("ک", "ك").encode("cp1256", errors="replace"),
                  {1}, False))
    nul = "".join(lines).encode()
    files.append(("nul-after-64k.csv", nul[:70000] + b"\x00" + nul[70000:], {0}, True))
    files.append(("binary.csv", random.Random(1).randbytes(100_000), {1}, False))
    files.append(("html.csv", b"<html><body><table><tr><td>1</td></tr></table></body></html>", {1}, False))
    files.append(("utf16-no-bom.csv", "".join(lines[:50]).encode("utf-16-le"), {1}, False))
    files.append(("long-field.csv", (lines[0] + "1," + "ن" * 200_000 + ",production\n").encode(), {3}, False))
    files.append(("personal-headers.csv", ("شماره ثبت,نام تعاونی,نوع تعاونی,استان,آدرس (منزل),تلفن مدیرعامل\n"
                                           "1,الف,مسکن,تهران,منزل,0912\n").encode(), {3}, False))
    for name, content, codes, may_replace in files:
        data = run.tmp / f"reg-{name}"
        shutil.copytree(run.data, data, symlinks=True)
        before = (data / "current").resolve()
        path = run.tmp / name
        path.write_bytes(content)
        out = cli("ingest", str(path), "--data", str(data), "--no-progress", "--report", str(run.tmp / f"{name}.json"))
        replaced = (data / "current").resolve() != before
        report_ok = (data / "last-ingest.json").is_file() and \
            (data / "last-ingest.json").stat().st_mode & 0o777 == 0o600
        run.t(cls).check(out.returncode in codes and "Traceback" not in out.stderr and report_ok and
                         (replaced == (out.returncode == 0)) and (may_replace or not replaced),
                         f"{name}: exit {out.returncode}, replaced {replaced}, report {report_ok}: "
                         f"{out.stderr.strip()[-200:]}")
    for name, head in (("huge.csv", b"registration_no,name,kind\n"), ("huge.xlsx", b"PK\x03\x04")):
        path = run.tmp / name
        with open(path, "wb") as f:
            f.write(head)
            f.truncate(2 * 1024 ** 3)
        started = time.perf_counter()
        out = cli("ingest", str(path), "--data", str(run.tmp / "reg-huge"), "--no-progress")
        took = time.perf_counter() - started
        run.huge_seconds = max(getattr(run, "huge_seconds", 0.0), took)
        run.t(cls).check(out.returncode == 1 and "2.0 GB" in out.stderr and took < 5,
                         f"{name}: exit {out.returncode} in {took:.1f} s: {out.stderr.strip()[-200:]}")
        path.unlink()


def limits(run: Run) -> None:
    cls = "limits"
    base = run.b.base
    with client(base) as c:
        r = c.get("/stats", params={"county": ",".join(f"c{i}" for i in range(500))})
        run.t(cls).check(r.status_code == 400 and "at most" in r.json()["detail"], f"500 names: {r.status_code}")
        r = c.get("/tiles/cooperatives/5/20/12.mvt", params={"county": "Kerman," * 1000})
        run.t(cls).check(r.status_code == 400, f"8,000-character filter on a tile: {r.status_code}")
    spellings = [("/collections/cooperatives/items", {"Accept": "text/csv"}),
                 ("/collections/cooperatives/items?f=%63sv", {}), ("/collections/cooperatives/items?f=CSV", {}),
                 ("/collections/cooperatives/items?limit=%31%30%30%30%30", {}),
                 ("/collections/cooperatives/items?limit=+10000", {}),
                 ("/collections/cooperatives/items", {"Accept": "application/geopackage+sqlite3"}),
                 ("/collections/cooperatives/items?f=html&limit=10000", {})]
    for rotate in (False, True):
        codes = []
        with client(base) as c:
            for i in range(45):
                path, headers = spellings[i % len(spellings)]
                h = {**headers, **({"X-Forwarded-For": f"203.0.113.{i}"} if rotate else {})}
                codes.append(c.get(path, headers=h).status_code)
        run.t(cls).check(codes.count(429) >= 10, f"downloads in every spelling{' (rotating XFF)' * rotate}: "
                                                 f"{Counter(codes)}")
        time.sleep(0.5)
    with socket.create_connection((LOOPBACK, run.b.port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 20000 + b"\r\n\r\n")
        run.t(cls).check(s.recv(100).startswith(b"HTTP/1.1 431"), "a 20 KB header")
    with socket.create_connection((LOOPBACK, run.b.port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n")
        run.t(cls).check(s.recv(100).startswith(b"HTTP/1.1 431"), "200 header fields")
    with client(base, run.tokens["admin"]) as c:
        r = c.post(f"/location-reports/{'0' * 32}/decision", content=(b"x" * 8192 for _ in range(12)),
                   headers={"content-type": "application/json", "If-Match": '"x"'})
        run.t(cls).check(r.status_code == 413, f"chunked 96 KB body: {r.status_code}")
        for method, path in (("DELETE", "/maps"), ("POST", "/tiles/cooperatives/1/1/1.mvt"), ("PUT", "/"),
                             ("GET", f"/location-reports/{'0' * 32}/decision"), ("POST", "/static/coopgis.css")):
            r = c.request(method, path)
            run.t(cls).check(r.status_code == 405 and r.headers.get("allow"), f"{method} {path}: Allow "
                                                                              f"{r.headers.get('allow')!r}")
        r = c.get("/collections", headers={"Host": "evil.example"})
        run.t(cls).check("evil.example" not in r.text, "links from the Host header")


def slow_clients(run: Run) -> None:
    cls = "slow-clients"
    import httpx

    socks = []
    for _ in range(50):  # silent connections and trickled heads
        s = socket.create_connection((LOOPBACK, run.b.port))
        s.sendall(b"GET /conformance HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    started = time.perf_counter()
    t = time.perf_counter()
    ok = httpx.get(run.b.base + "/conformance", timeout=10).status_code == 200
    run.t(cls).check(ok and time.perf_counter() - t < 1, "a request while 50 heads trickle")
    closed = 0
    deadline = time.time() + 10
    for s in socks:
        s.settimeout(max(0.1, deadline - time.time()))
        try:
            data = s.recv(200)
            closed += data.startswith(b"HTTP/1.1 408") or data == b""
        except OSError:
            pass
        s.close()
    run.t(cls).check(closed == len(socks) and time.perf_counter() - started < 10,
                     f"{closed} of {len(socks)} trickled heads closed within {time.perf_counter() - started:.1f} s")
    for _ in range(10):
        with socket.create_connection((LOOPBACK, run.b.port)) as s:
            s.settimeout(10)
            t = time.perf_counter()
            try:
                data = s.recv(10)
            except OSError:
                data = b"?"
            run.t(cls).check(data == b"" and time.perf_counter() - t < 6, "a silent connection closed")


def concurrency(run: Run) -> None:
    cls = "concurrency"
    acked: list[str] = []
    lock = threading.Lock()
    officers = [f"officer{i}" for i in range(10)]

    def post(k):
        reg = run.regs[k % 60]
        with client(run.a.base, run.tokens[officers[k % 10]], spoof=fresh()) as c:
            r = c.post(f"/cooperatives/{quote(reg, safe='')}/location-reports",
                       json={"lon": 51.3 + k / 10000, "lat": 35.7, "accuracy_m": 5, "reason": f"r{k}"})
        run.answer(cls, r, f"report {k}", leak_check=False)
        run.t(cls).check(r.status_code in (201, 429), f"report {k}: {r.status_code} {r.text[:100]}")
        if r.status_code == 201:
            with lock:
                acked.append(r.json()["id"])

    with cf.ThreadPoolExecutor(16) as pool:
        list(pool.map(post, range(300)))
    log = (run.data / "location-reports.jsonl").read_text()
    lost = [i for i in acked if i not in log]
    run.t(cls).lost += len(lost)
    run.t(cls).check(not lost, f"{len(lost)} of {len(acked)} acknowledged reports missing from the log")
    # one winner per ETag, and * refused
    with client(run.a.base, run.tokens["admin"]) as admin, client(run.a.base, run.tokens["officer9"]) as off:
        for reg in run.regs[100:106]:
            posted = [off.post(f"/cooperatives/{reg}/location-reports", headers={"X-Forwarded-For": fresh()},
                               json={"lon": 51.4 + i / 1000, "lat": 35.7, "accuracy_m": 5, "reason": "c"})
                      for i in range(4)]
            rids = [r.json().get("id") for r in posted]
            rids = [r for r in rids if r]
            etag = admin.get(f"/cooperatives/{reg}").headers["etag"]
            star = admin.post(f"/location-reports/{rids[0]}/decision", json={"decision": "accepted"},
                              headers={"If-Match": "*"})
            run.t(cls).check(star.status_code == 428, f"If-Match * on {reg}: {star.status_code}")
            with cf.ThreadPoolExecutor(len(rids)) as pool:
                codes = list(pool.map(lambda rid: admin.post(f"/location-reports/{rid}/decision",
                                                             json={"decision": "accepted"},
                                                             headers={"If-Match": etag}).status_code, rids))
            run.t(cls).check(sorted(codes) == [200] + [412] * (len(rids) - 1), f"concurrent accepts on {reg}: {codes}")
            started = time.perf_counter()
            agree = False
            while time.perf_counter() - started < 2:
                seen = set()
                for _ in range(6):   # fresh connections land on either worker
                    with client(run.a.base) as c:
                        seen.add(c.get(f"/cooperatives/{reg}").json()["properties"]["precision"])
                if seen == {"verified"}:
                    agree = True
                    break
            lag = time.perf_counter() - started
            run.lag = max(getattr(run, "lag", 0.0), lag)
            run.t(cls).check(agree, f"workers disagree on {reg} after {lag:.1f} s")
    events = [json.loads(x) for x in (run.data / "location-reports.jsonl").read_text().splitlines() if x.strip()]
    decided = [e for e in events if e.get("event") == "decision"]
    run.t(cls).check(len(decided) == 6, f"{len(decided)} decisions recorded for 6 winners")


def kill9(run: Run) -> None:
    cls = "kill-9"
    data = run.tmp / "kill-data"
    shutil.copytree(run.data, data, symlinks=True)
    (data / "location-reports.jsonl").unlink(missing_ok=True)
    env = {"COOPGIS_TOKENS_FILE": str(run.tokens_file), "COOPGIS_REPORTS_PER_HOUR": "100000",
           "COOPGIS_PENDING_REPORTS_PER_COOPERATIVE": "100000"}
    for round_ in range(3):
        server = start(run, f"hostile-kill{round_}", data, 2, env)
        acked: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def post(k):
            try:
                with client(server.base, run.tokens[f"officer{k % 10}"]) as c:
                    while not stop.is_set():
                        r = c.post(f"/cooperatives/{run.regs[k]}/location-reports",
                                   json={"lon": 51.4, "lat": 35.7, "accuracy_m": 5, "reason": "k"})
                        if r.status_code == 201:
                            with lock:
                                acked.append(r.json()["id"])
            except Exception:  # the server went away: that is the point
                pass

        threads = [threading.Thread(target=post, args=(k,)) for k in range(12)]
        for t in threads:
            t.start()
        time.sleep(2 + round_)
        os.killpg(server.proc.pid, signal.SIGKILL)   # the process group this script started
        stop.set()
        for t in threads:
            t.join(30)
        server.proc.wait(10)
        server.proc = None
        log = (data / "location-reports.jsonl").read_bytes()
        lost = [i for i in acked if i.encode() not in log]
        run.t(cls).lost += len(lost)
        run.t(cls).check(not lost and acked, f"round {round_}: {len(lost)} of {len(acked)} acknowledged lost")
        after = start(run, f"hostile-kill{round_}b", data, 1, env)
        import httpx

        r = httpx.get(after.base + "/location-reports?limit=1", headers={
            "Authorization": f"Bearer {run.tokens['admin']}"}, timeout=60)
        run.t(cls).check(r.status_code == 200, f"restart after kill -9: {r.status_code}")
        after.stop()
    big = run.tmp / "big.csv"
    from coopgis.boundaries import load_boundaries
    from coopgis.sample import generate_sample, write_sample

    write_sample(generate_sample(30_000, seed=3, boundaries=load_boundaries()), big)
    for delay in (3, 6):
        before = (data / "current").resolve()
        proc = subprocess.Popen([sys.executable, "-m", "coopgis.cli", "ingest", str(big), "--data", str(data),
                                 "--no-progress", "--allow-shrink"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(delay)
        running = proc.poll() is None
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        from coopgis.store import FileStore

        frame, report = FileStore(data).read_with_ingest_report()
        run.t(cls).check(len(frame) == report["accepted"] and (not running or (data / "current").resolve() == before),
                         f"ingest killed after {delay} s: dataset and report disagree or changed")


def full_disk(run: Run) -> None:
    cls = "full-disk"
    if run.args.no_mount or os.geteuid() != 0:
        say("full-disk: skipped (needs root to mount a tmpfs)")
        return
    mount = run.tmp / "small"
    mount.mkdir()
    size = sum(p.stat().st_size for p in run.data.rglob("*") if p.is_file()) // 1024 + 1024
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}k", "tmpfs", str(mount)], check=True)
    try:
        data = mount / "data"
        shutil.copytree(run.data, data, symlinks=True, ignore=shutil.ignore_patterns("location-reports.jsonl*"))
        server = start(run, "hostile-full", data, 2, {"COOPGIS_TOKENS_FILE": str(run.tokens_file)})
        import httpx

        keep = httpx.Client(base_url=server.base, timeout=30, trust_env=False)
        run.t(cls).check(keep.get("/collections/cooperatives/items?limit=5").status_code == 200, "before filling")
        with open(mount / "filler", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        for k in range(10):
            with client(server.base, run.tokens[f"officer{k}"]) as c:
                r = c.post(f"/cooperatives/{run.regs[k]}/location-reports",
                           json={"lon": 51.4, "lat": 35.7, "accuracy_m": 5, "reason": "full " + "x" * 400})
            run.answer(cls, r, "report on a full disk", leak_check=False)
            run.t(cls).check(r.status_code == 507 and "disk is full" in r.json().get("detail", ""),
                             f"report on a full disk: {r.status_code} {r.text[:120]}")
        for _ in range(5):
            r = keep.get("/collections/cooperatives/items?limit=5")
            run.t(cls).check(r.status_code == 200, f"keep-alive connection during the full disk: {r.status_code}")
        keep.close()
        server.stop()
        tokens = mount / "tokens.json"
        out = cli("token", "add", "z", "--role", "admin", "--file", str(tokens))
        run.t(cls).check(out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1 and
                         not list(mount.glob(".tokens*")), f"token add: {out.returncode} {out.stderr.strip()[-150:]}")
        before = (data / "current").resolve()
        out = cli("ingest", str(run.registry), "--data", str(data), "--no-progress")
        run.t(cls).check(out.returncode == 1 and "disk is full" in out.stderr and "Traceback" not in out.stderr and
                         (data / "current").resolve() == before and not [p for p in data.rglob("*.tmp")],
                         f"ingest: {out.returncode} {out.stderr.strip()[-200:]}")
    finally:
        subprocess.run(["umount", str(mount)], check=False)


CLASSES = [("auth", auth), ("leaks", leaks), ("traversal", traversal), ("hostile-input", hostile_input),
           ("hostile-registry", hostile_registry), ("limits", limits), ("slow-clients", slow_clients),
           ("concurrency", concurrency), ("kill-9", kill9), ("full-disk", full_disk)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1500)
    ap.add_argument("--fuzz", type=int, default=1500, help="hostile-input requests")
    ap.add_argument("--only", help="comma-separated classes")
    ap.add_argument("--no-mount", action="store_true", help="skip the full-disk class (it mounts a tmpfs)")
    args = ap.parse_args(argv)
    run = Run(args)
    try:
        setup(run)
        for name, fn in CLASSES:
            if args.only and name not in args.only.split(","):
                continue
            t = time.perf_counter()
            fn(run)
            say(f"{name}: {run.t(name).cases} cases in {time.perf_counter() - t:.1f} s")
        logs(run)
    finally:
        for server in (getattr(run, "a", None), getattr(run, "b", None)):
            if server is not None:
                server.stop()
    rows = [[name, t.cases, t.server_errors, t.leaks, t.lost, len(t.failures)] for name, t in run.tally.items()]
    total = [sum(r[i] for r in rows) for i in range(1, 6)]
    say(md_table(["class", "cases", "5xx", "leaks", "lost acknowledged writes", "failures"],
                 rows + [["all", *total]]))
    if getattr(run, "huge_seconds", None):
        say(f"2 GB files refused in at most {run.huge_seconds:.2f} s (the CLI's start-up included)")
    if getattr(run, "lag", None) is not None:
        say(f"workers agreed on an accepted location within {run.lag:.2f} s")
    for name, t in run.tally.items():
        for f in t.failures[:20]:
            say(f"  {name}: {f}")
    shutil.rmtree(run.tmp, ignore_errors=True)
    return 1 if total[4] else 0


if __name__ == "__main__":
    sys.exit(main())
