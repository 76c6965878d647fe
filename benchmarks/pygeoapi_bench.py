"""Section 2: the same items requests against pygeoapi serving the same cooperatives from a GeoPackage.

pygeoapi (pinned below) is installed in its own virtual environment under
``benchmarks/.cache/pygeoapi-venv`` and run the way its documentation recommends
for production: ``gunicorn pygeoapi.flask_app:APP`` (sync workers; 1 and 2 workers
beside ``coopgis serve`` with 1 and 2). Its SQLiteGPKG provider needs SQLite
extension loading and mod_spatialite; when this Python's sqlite3 lacks
``enable_load_extension``, the venv is made from Debian's ``/usr/bin/python3``.
The GeoPackage holds the public columns only, written with pyogrio; an index on
``registration_no`` is added (pygeoapi's item lookup filters on it).

Both servers run at the same time and are loaded in turn, endpoint by endpoint, so
each ratio ours/theirs comes from the same minutes of the same run.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

from benchmarks.common import (
    CACHE,
    NO_RATE_LIMITS,
    READY,
    Config,
    Results,
    Server,
    apt_install,
    coopgis_serve_argv,
    free_port,
    load_dataset,
    md_table,
    med,
    mm,
    run,
    say,
)
from benchmarks.loadgen import have_wrk, httpx_load, wrk_load
from benchmarks.service import IRAN_BBOX, TEHRAN_BBOX, sample_id

PYGEOAPI = "pygeoapi==0.21.0"
GUNICORN = "gunicorn==23.0.0"
VENV = CACHE / "pygeoapi-venv"
SITE = CACHE / "pygeoapi"


class Unavailable(Exception):
    """pygeoapi cannot be run here; the message says exactly why."""


def _python_with_extensions() -> str:
    import sys

    candidates = [sys.executable, "/usr/bin/python3"]
    for py in candidates:
        if not Path(py).exists():
            continue
        r = run([py, "-c", "import sqlite3; sqlite3.connect(':memory:').enable_load_extension(True)"])
        if r.returncode == 0:
            return py
    raise Unavailable("no Python here has sqlite3 with enable_load_extension (pygeoapi's SQLiteGPKG provider "
                      f"needs it); tried {', '.join(candidates)}")


def ensure_venv(cfg: Config) -> Path:
    py = VENV / "bin" / "python"
    marker = VENV / ".installed"
    if py.exists() and marker.is_file() and marker.read_text() == f"{PYGEOAPI} {GUNICORN}":
        return VENV
    base = _python_with_extensions()
    if base.startswith("/usr/bin") and run([base, "-c", "import ensurepip"]).returncode != 0:
        why = apt_install(["python3-venv"], cfg.install)
        if why:
            raise Unavailable(f"Debian's python3 has no venv module and python3-venv cannot be installed: {why}")
    if VENV.exists():
        shutil.rmtree(VENV)
    say(f"creating {VENV} from {base} and installing {PYGEOAPI} {GUNICORN} (once)")
    r = run([base, "-m", "venv", str(VENV)])
    if r.returncode != 0:
        raise Unavailable(f"python3 -m venv failed: {r.stderr[-500:]}")
    if not cfg.install:
        raise Unavailable("pygeoapi is not installed and installs are disabled (--no-install)")
    r = run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", PYGEOAPI, GUNICORN],
            timeout=1200)
    if r.returncode != 0:
        raise Unavailable(f"pip install {PYGEOAPI} {GUNICORN} failed: {(r.stderr or r.stdout)[-800:]}")
    marker.write_text(f"{PYGEOAPI} {GUNICORN}")
    return VENV


def check_spatialite(cfg: Config) -> None:
    py = str(VENV / "bin" / "python")
    probe = [py, "-c", "import sqlite3; c = sqlite3.connect(':memory:'); c.enable_load_extension(True); "
                       "c.load_extension('mod_spatialite')"]
    if run(probe).returncode == 0:
        return
    why = apt_install(["libsqlite3-mod-spatialite"], cfg.install)
    r = run(probe)
    if r.returncode != 0:
        raise Unavailable("mod_spatialite cannot be loaded by the venv's sqlite3 "
                          f"({r.stderr.strip()[-300:]}); libsqlite3-mod-spatialite: {why or 'installed'}")


def write_geopackage(store: Path, size: int) -> Path:
    """The served public columns of the same dataset as a GeoPackage (once per dataset)."""
    from coopgis.dataset import PUBLIC_COLUMNS

    out = SITE / f"cooperatives-{store.parent.name}.gpkg"
    if out.is_file():
        return out
    import pandas as pd
    import pyogrio

    ds = load_dataset(store)
    frame = ds.collections["cooperatives"].frame
    cols = [c for c in PUBLIC_COLUMNS if c in frame.columns]
    gdf = frame[cols + ["geometry"]].copy()
    for c in cols:        # object columns mixing bools/None or numbers: as text or numbers GDAL can write
        s = gdf[c]
        if s.dtype == object:
            kinds = {type(v) for v in s.dropna()}
            if kinds <= {bool}:
                gdf[c] = s.map(lambda v: None if v is None or v is pd.NA else int(bool(v))).astype("Int64")
            elif not kinds <= {str}:
                gdf[c] = s.map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))
        elif str(s.dtype) == "boolean":
            gdf[c] = s.astype("Int64")
    gdf["registration_no"] = gdf["registration_no"].astype(str)
    SITE.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.gpkg")
    tmp.unlink(missing_ok=True)
    pyogrio.write_dataframe(gdf, tmp, layer="cooperatives", driver="GPKG")
    con = sqlite3.connect(tmp)
    con.execute("CREATE INDEX IF NOT EXISTS cooperatives_registration_no ON cooperatives(registration_no)")
    con.commit()
    con.close()
    os.replace(tmp, out)
    return out


def write_config(gpkg: Path, port: int, extent: list[float]) -> tuple[Path, Path]:
    """A pygeoapi configuration (JSON is valid YAML) and its OpenAPI document."""
    url = f"http://127.0.0.1:{port}"
    config = {
        "server": {
            "bind": {"host": "127.0.0.1", "port": port}, "url": url,
            "mimetype": "application/json; charset=UTF-8", "encoding": "utf-8", "languages": ["en-US"],
            "gzip": False, "pretty_print": False,
            "limits": {"default_items": 10, "max_items": 10000, "on_exceed": "throttle"},
            "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "attribution": "OpenStreetMap"},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {"title": "coopgis benchmark", "description": "the same synthetic cooperatives",
                               "keywords": ["cooperatives"], "keywords_type": "theme",
                               "terms_of_service": "https://creativecommons.org/licenses/by/4.0/",
                               "url": "https://example.org"},
            "license": {"name": "CC-BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
            "provider": {"name": "coopgis benchmark", "url": "https://example.org"},
            "contact": {"name": "benchmark", "position": "none", "address": "none", "city": "none",
                        "stateorprovince": "none", "postalcode": "0", "country": "IR", "phone": "0",
                        "fax": "0", "email": "none@example.org", "url": "https://example.org",
                        "hours": "none", "instructions": "none", "role": "pointOfContact"},
        },
        "resources": {
            "cooperatives": {
                "type": "collection", "title": "Cooperatives", "description": "synthetic sample",
                "keywords": ["cooperatives"],
                "extents": {"spatial": {"bbox": extent, "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
                "providers": [{"type": "feature", "name": "SQLiteGPKG", "data": str(gpkg),
                               "id_field": "registration_no", "table": "cooperatives"}],
            }
        },
    }
    cfg_path = SITE / "pygeoapi-config.yml"
    openapi = SITE / "pygeoapi-openapi.yml"
    cfg_path.write_text(json.dumps(config, indent=1), encoding="utf-8")
    env = _env(cfg_path, openapi)
    r = run([str(VENV / "bin" / "pygeoapi"), "openapi", "generate", str(cfg_path), "--output-file", str(openapi)],
            env=env, timeout=300)
    if r.returncode != 0 or not openapi.is_file():
        raise Unavailable(f"pygeoapi openapi generate failed: {(r.stderr or r.stdout)[-800:]}")
    return cfg_path, openapi


def _env(cfg_path: Path, openapi: Path) -> dict:
    return {**os.environ, "PYGEOAPI_CONFIG": str(cfg_path), "PYGEOAPI_OPENAPI": str(openapi),
            "SPATIALITE_LIBRARY_PATH": "mod_spatialite", "PYTHONPATH": ""}


def version() -> str:
    r = run([str(VENV / "bin" / "python"), "-c", "import pygeoapi; print(pygeoapi.__version__)"])
    return r.stdout.strip() or PYGEOAPI


def run_section(cfg: Config, res: Results, store) -> None:
    try:
        ensure_venv(cfg)
        check_spatialite(cfg)
        gpkg = write_geopackage(store, cfg.size)
    except Unavailable as exc:
        res.table("pygeoapi", f"pygeoapi NOT MEASURED: {exc}")
        res.figures["pygeoapi"] = {"unavailable": str(exc)}
        return
    ds = load_dataset(store)
    fid = sample_id(ds)
    ours_base = "/collections/cooperatives/items"
    cases = [
        ("ceiling", "GET /conformance (each server's ceiling)", "/conformance", "/conformance?f=json", False),
        ("items100", "items limit=100", f"{ours_base}?limit=100", f"{ours_base}?f=json&limit=100", False),
        ("items_tehran", f"items bbox={TEHRAN_BBOX} limit=1000", f"{ours_base}?bbox={TEHRAN_BBOX}&limit=1000",
         f"{ours_base}?f=json&bbox={TEHRAN_BBOX}&limit=1000", False),
        ("items_iran", f"items bbox={IRAN_BBOX} limit=10000", f"{ours_base}?bbox={IRAN_BBOX}&limit=10000",
         f"{ours_base}?f=json&bbox={IRAN_BBOX}&limit=10000", True),
        ("item", "one item by id", f"{ours_base}/{fid}", f"{ours_base}/{fid}?f=json", False),
    ]
    tools = ["wrk", "httpx"] if cfg.use_wrk and have_wrk() else ["httpx"]
    res.figures["pygeoapi"] = {"version": version()}
    for workers in cfg.workers:
        port_o, port_t = free_port(), free_port()
        try:
            cfg_path, openapi = write_config(gpkg, port_t, ds.collections["cooperatives"].extent)
        except Unavailable as exc:
            res.table("pygeoapi", f"pygeoapi NOT MEASURED: {exc}")
            res.figures["pygeoapi"]["unavailable"] = str(exc)
            return
        ours = Server(f"coopgis-vs-w{workers}", coopgis_serve_argv(store, port_o, workers if workers > 1 else None),
                      port_o, READY, env=NO_RATE_LIMITS)
        theirs = Server(f"pygeoapi-w{workers}", [str(VENV / "bin" / "gunicorn"), "pygeoapi.flask_app:APP",
                                                  "-b", f"127.0.0.1:{port_t}", "-w", str(workers),
                                                  "--timeout", "120"],
                        port_t, "/conformance?f=json", env=_env(cfg_path, openapi), cwd=SITE)
        runs: dict = {}
        checks = []
        try:
            ours.start()
            try:
                theirs.start()
            except RuntimeError as exc:
                res.table("pygeoapi", f"pygeoapi NOT MEASURED: it did not start: {exc}")
                res.figures["pygeoapi"]["unavailable"] = str(exc)
                return
            say(f"## coopgis serve (port {port_o}) beside gunicorn pygeoapi.flask_app:APP -w {workers} "
                f"(port {port_t})")
            # same answers? (features returned by each) and warm both
            import httpx

            for key, _, po, pt, _ in cases:
                a = httpx.get(ours.base + po, timeout=300)
                b = httpx.get(theirs.base + pt, timeout=300)
                checks.append((key, a.status_code, _count(a), b.status_code, _count(b)))
            for rep in range(cfg.reps):
                for key, label, po, pt, heavy in cases:
                    conns = cfg.heavy_connections if heavy else cfg.connections
                    for who, srv, path in (("coopgis", ours, po), ("pygeoapi", theirs, pt)):
                        for tool in (tools[:1] if key == "ceiling" else tools):   # ceilings: context only
                            fn = wrk_load if tool == "wrk" else httpx_load
                            try:
                                r = fn(srv.base, [path], conns, cfg.max_requests, cfg.seconds)
                            except Exception as exc:
                                say(f"  {who} {key} {tool}: failed: {exc}")
                                continue
                            runs.setdefault((who, key, tool), []).append(r)
                say(f"  repetition {rep + 1}/{cfg.reps} done")
        finally:
            theirs.stop()
            ours.stop()
        res.table("pygeoapi", f"\n### coopgis serve vs pygeoapi {res.figures['pygeoapi']['version']} "
                              f"(gunicorn, SQLiteGPKG), {workers} worker{'s' if workers > 1 else ''} each: "
                              f"medians (min-max) of {cfg.reps} runs\n")
        res.table("pygeoapi", "features returned (ours / pygeoapi): " + "; ".join(
            f"{k}: {ca}/{cb} (HTTP {sa}/{sb})" for k, sa, ca, sb, cb in checks))
        rows = []
        ratios = {}
        for key, label, _, _, _ in cases:
            for tool in tools:
                o = runs.get(("coopgis", key, tool), [])
                t = runs.get(("pygeoapi", key, tool), [])
                if not o or not t:
                    continue
                ratio = med([r.rps for r in o]) / med([r.rps for r in t]) if med([r.rps for r in t]) else float("inf")
                ratios[(key, tool)] = ratio
                for who, rs in (("coopgis", o), ("pygeoapi", t)):
                    rows.append([label, who, tool, rs[0].connections, mm([r.seconds for r in rs], 2),
                                 mm([r.requests for r in rs], 0), mm([r.rps for r in rs], 1),
                                 mm([r.p50_ms for r in rs], 1), mm([r.p99_ms for r in rs], 1),
                                 sum(r.errors for r in rs), f"{ratio:,.1f}x" if who == "coopgis" else ""])
        res.table("pygeoapi", md_table(["endpoint", "server", "tool", "conc.", "duration s", "requests", "req/s",
                                        "p50 ms", "p99 ms", "errors", "ours/theirs req/s"], rows))
        res.figures["pygeoapi"][workers] = {"ratios": ratios, "checks": checks}


def _count(r) -> str:
    try:
        d = r.json()
    except ValueError:
        return "?"
    if isinstance(d, dict) and "features" in d:
        return str(len(d["features"]))
    if isinstance(d, dict) and d.get("type") == "Feature":
        return "1"
    return "-"
