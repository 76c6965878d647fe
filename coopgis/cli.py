"""The ``coopgis`` command: ingest, geocode, reverse, sample, demo, serve, render, pack, token, build-boundaries.

Each subcommand calls the same functions the API uses; this module only parses
arguments and prints.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from coopgis.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except ValidationError as exc:  # a COOPGIS_* setting or option out of range
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"coopgis: invalid setting: {problems}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="coopgis", description="Geospatial service for Iran's cooperatives.")
    sub = p.add_subparsers(metavar="COMMAND")

    s = sub.add_parser("ingest", help="read, validate, geocode, join and store a registry file")
    s.add_argument("file", type=Path, help="registry file: CSV (UTF-8, UTF-8 BOM, Windows-1256) or XLSX")
    s.add_argument("--data", type=Path, help="dataset folder to write (default: COOPGIS_DATA)")
    s.add_argument("--report", type=Path, help="write the ingest report as JSON here (mode 0600)")
    s.add_argument("--allow-shrink", action="store_true",
                   help="replace the dataset even if this file has far fewer cooperatives (COOPGIS_INGEST_MAX_SHRINK)")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_ingest)

    s = sub.add_parser("geocode", help="geocode one address, or a CSV with an `address` column")
    s.add_argument("address", nargs="?", help="the address (Persian or transliterated)")
    s.add_argument("--batch", type=Path, metavar="IN.csv")
    s.add_argument("--out", type=Path, metavar="OUT.csv")
    s.set_defaults(func=_cmd_geocode)

    s = sub.add_parser("reverse", help="province, county, deprivation and nearest place of a point")
    s.add_argument("lon", type=float)
    s.add_argument("lat", type=float)
    s.set_defaults(func=_cmd_reverse)

    s = sub.add_parser("sample", help="write a deterministic SYNTHETIC registry (CSV)")
    s.add_argument("--size", type=int, default=1000)
    s.add_argument("--seed", type=int, default=1404)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--no-bad-rows", action="store_true", help="leave out the deliberately bad rows")
    s.set_defaults(func=_cmd_sample)

    s = sub.add_parser("demo", help="build the embedded default dataset (a synthetic sample) if missing")
    s.add_argument("--data", type=Path)
    s.add_argument("--size", type=int)
    s.add_argument("--force", action="store_true", help="rebuild even if a dataset exists")
    s.set_defaults(func=_cmd_demo)

    s = sub.add_parser("serve", help="start the web service (maps, OGC API, tiles, geocoding, stats)")
    s.add_argument("--host", help="address to listen on (default 127.0.0.1; COOPGIS_HOST)")
    s.add_argument("--port", type=int, help="port (default 8000; COOPGIS_PORT)")
    s.add_argument("--data", type=Path, help="dataset folder (default: the embedded sample; COOPGIS_DATA)")
    s.add_argument("--workers", type=int, help="worker processes (default 1; COOPGIS_WORKERS)")
    s.set_defaults(func=_cmd_serve)

    s = sub.add_parser("render", help="write a standalone HTML map (assets inline, selection embedded) "
                                      "for e-mail or a USB stick")
    s.add_argument("name", help="a map name from maps/ (national, deprivation, sectors, ...)")
    s.add_argument("--out", type=Path, required=True, metavar="FILE.html")
    s.add_argument("--data", type=Path, help="dataset folder (default: COOPGIS_DATA)")
    for flag, text in (("province", "ISO 3166-2 code (IR-07), Persian or English name"),
                       ("county", "official code, OSM relation id or Persian name"),
                       ("kind", "kind(s), comma-separated"), ("sector", "sector(s), comma-separated"),
                       ("status", "active, troubled, dissolved"), ("deprived", "true or false"),
                       ("border", "true or false"), ("women-led", "true or false"),
                       ("registered-year", "Jalali year or range 1395..1400"),
                       ("precision", "geocoding precision(s)")):
        s.add_argument(f"--{flag}", help=text)
    s.set_defaults(func=_cmd_render)

    s = sub.add_parser("pack", help="write a county's offline field pack (zip: GeoJSON, KML, GPX, CSV, villages, "
                                    "boundary, standalone map, README, MANIFEST.sha256)")
    s.add_argument("--county", required=True, help="OSM relation id, official code or name of the county")
    s.add_argument("--out", type=Path, required=True, metavar="FILE.zip")
    s.add_argument("--data", type=Path, help="dataset folder (default: COOPGIS_DATA)")
    s.add_argument("--staff", action="store_true", help="include the GIS staff fields (never personal data)")
    s.set_defaults(func=_cmd_pack)

    s = sub.add_parser("token", help="manage bearer tokens: add NAME --role ROLE, list, revoke NAME")
    s.add_argument("action", choices=("add", "list", "revoke"))
    s.add_argument("name", nargs="?", help="who the token is for (add, revoke)")
    s.add_argument("--role", choices=("field_officer", "gis_staff", "admin"), help="the token's role (add)")
    s.add_argument("--file", type=Path, help="token file (default: COOPGIS_TOKENS_FILE)")
    s.set_defaults(func=_cmd_token)

    s = sub.add_parser("db", help="the PostgreSQL/PostGIS store (COOPGIS_DATABASE_URL): upgrade, current, "
                                  "grant-readonly ROLE")
    s.add_argument("action", choices=("upgrade", "current", "grant-readonly"))
    s.add_argument("role", nargs="?", help="grant-readonly: the role to create or grant (lower-case, digits, _)")
    s.add_argument("--url", help="the database (default: COOPGIS_DATABASE_URL)")
    s.set_defaults(func=_cmd_db)

    s = sub.add_parser("build-boundaries", help="rebuild boundaries/ from the raw open data")
    s.add_argument("--source", type=Path, default=Path("../shared/data"))
    s.add_argument("--out", type=Path, default=Path("boundaries"))
    s.set_defaults(func=_cmd_build_boundaries)
    return p


# ---- commands -----------------------------------------------------------------------------

def _cmd_ingest(args) -> int:
    from coopgis.ingest import print_ingest_summary
    from coopgis.loading import location_layer, run_ingest
    """Exit 0: the dataset was replaced; 3: the file was read but the dataset was kept (see the report);
    1: the file could not be read or the dataset not written."""
    from coopgis.backend import open_backend
    from coopgis.db.schema import SchemaError
    from coopgis.ingest import LAST_INGEST_FILE, write_ingest_report
    from coopgis.registry import RegistryError, check_file
    from coopgis.store import StoreError

    settings = Settings()
    if settings.database_url and args.data:
        print("coopgis ingest: --data names a folder, but COOPGIS_DATABASE_URL is set: the dataset goes to the "
              "database. Unset one of them", file=sys.stderr)
        return 2
    try:
        backend = open_backend(settings.model_copy(update={"data": args.data or settings.data}))
    except (SchemaError, StoreError) as exc:
        print(f"coopgis ingest: {exc}", file=sys.stderr)
        return 1
    store = backend.store
    try:
        check_file(args.file, settings.ingest_max_bytes)  # before anything is loaded: a refusal is immediate
        boundaries, geocoder = location_layer(settings)
        result = run_ingest(args.file, store, boundaries, geocoder, progress=not args.no_progress,
                             max_bytes=settings.ingest_max_bytes, max_shrink=settings.ingest_max_shrink,
                             allow_shrink=args.allow_shrink)
    except RegistryError as exc:
        failed = {"file": str(args.file), "error": str(exc), "replaced": False}
        folder = getattr(store, "folder", None)
        for where in filter(None, (args.report, folder / LAST_INGEST_FILE if folder else None)):
            with contextlib.suppress(OSError):
                write_ingest_report(where, failed)
        with contextlib.suppress(StoreError):
            if hasattr(store, "record_ingest"):
                store.record_ingest(failed)
        print(f"coopgis ingest: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    except StoreError as exc:  # the database refused or went away: its transaction was rolled back
        print(f"coopgis ingest: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"coopgis ingest: cannot write the dataset to {store.path}: {exc.strerror or exc}"
              f"{_disk_hint(exc)}; the current dataset is kept", file=sys.stderr)
        return 1
    finally:
        backend.close()
    report = result.report
    if args.report:
        try:
            write_ingest_report(args.report, report)
        except OSError as exc:
            print(f"coopgis ingest: cannot write the report {args.report}: {exc.strerror or exc}", file=sys.stderr)
    print_ingest_summary(report, store.path)
    if not result.replaced:
        folder = getattr(store, "folder", None)
        where = folder / LAST_INGEST_FILE if folder else "the database's audit trail (coopgis.audit_events)"
        print(f"coopgis ingest: the dataset was NOT replaced: {'; '.join(report['refused'])}. The current "
              f"dataset is kept; the report is in {where}", file=sys.stderr)
        return 3
    return 0


def _disk_hint(exc: OSError) -> str:
    import errno

    return " (the disk is full)" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""


def _cmd_geocode(args) -> int:
    from coopgis.loading import location_layer
    settings = Settings()
    _, geocoder = location_layer(settings)
    if args.batch:
        if not args.out:
            print("coopgis geocode: --batch needs --out OUT.csv", file=sys.stderr)
            return 2
        from coopgis.batch import BatchError, geocode_csv

        try:
            n = geocode_csv(args.batch, args.out, geocoder)
        except BatchError as exc:
            print(f"coopgis geocode: {exc}", file=sys.stderr)
            return 1
        print(f"{n} rows geocoded -> {args.out}", file=sys.stderr)
        return 0
    if not args.address:
        print("coopgis geocode: give an ADDRESS or --batch IN.csv --out OUT.csv", file=sys.stderr)
        return 2
    result = geocoder.geocode(args.address)
    print(json.dumps(result.to_dict(), ensure_ascii=False, indent=1))
    return 0


def _cmd_reverse(args) -> int:
    from coopgis.loading import location_layer
    _, geocoder = location_layer(Settings())
    print(json.dumps(geocoder.reverse(args.lon, args.lat), ensure_ascii=False, indent=1))
    return 0


def _cmd_sample(args) -> int:
    from coopgis.boundaries import load_boundaries
    from coopgis.sample import generate_sample, write_sample

    settings = Settings()
    if args.size < 1:
        print("coopgis sample: --size must be at least 1", file=sys.stderr)
        return 2
    b = load_boundaries(settings.boundaries, deprivation=settings.deprivation, cache_dir=settings.cache_dir)
    df = generate_sample(args.size, seed=args.seed, boundaries=b, bad_rows=not args.no_bad_rows)
    write_sample(df, args.out)
    print(f"{len(df)} synthetic rows -> {args.out}", file=sys.stderr)
    return 0


def _cmd_demo(args) -> int:
    from coopgis.loading import ensure_default_dataset
    settings = Settings()
    if args.data:
        settings.data = args.data
    if args.size:
        settings.sample_size = args.size
    path = ensure_default_dataset(settings, force=args.force)
    print(f"dataset ready: {path}")
    return 0


def _cmd_serve(args) -> int:
    import os

    from coopgis.loading import check_store, ensure_default_dataset, tune_malloc
    from coopgis.settings import ServiceSettings
    from coopgis.store import StoreError

    tune_malloc()   # before the first load: its passing arrays go back to the system

    # Workers are separate processes that read their settings from the environment.
    for name, value in (("DATA", args.data), ("HOST", args.host), ("PORT", args.port), ("WORKERS", args.workers)):
        if value is not None:
            os.environ[f"COOPGIS_{name}"] = str(Path(value).resolve() if name == "DATA" else value)
    from coopgis.store import FileStore

    settings = ServiceSettings()
    if settings.database_url:
        return _serve_database(settings)
    if args.data is not None and not FileStore(settings.data).exists():
        print(f"coopgis serve: no dataset in {settings.data}; run `coopgis ingest FILE --data {settings.data}` "
              "or leave --data out to serve the embedded sample", file=sys.stderr)
        return 1
    ensure_default_dataset(settings)  # once, before any worker starts
    try:  # a damaged file is named here, not in a worker's traceback
        store = FileStore(settings.data)
        with contextlib.suppress(OSError):  # a read-only folder has nothing of ours to tidy
            store.tidy()  # what a crashed ingest left behind
        check_store(store)   # this process loads what was read (and its workers share it)
    except StoreError as exc:
        print(f"coopgis serve: {exc}", file=sys.stderr)
        return 1
    print(f"coopgis: serving {settings.data} on http://{settings.host}:{settings.port}/ "
          f"(maps: /maps, API: /api)", file=sys.stderr)
    if settings.workers > 1:   # one load, shared by the forked workers
        from coopgis.workers import run_workers

        run_workers(settings)
        return 0
    from coopgis.app import run_server

    run_server(settings)
    return 0


def _serve_database(settings) -> int:
    """``coopgis serve`` on the database: check the schema and that a dataset exists, then serve."""
    from coopgis.app import run_server
    from coopgis.backend import open_backend
    from coopgis.db.connect import safe_url
    from coopgis.db.schema import SchemaError
    from coopgis.store import StoreError

    try:
        backend = open_backend(settings)
    except (SchemaError, StoreError) as exc:
        print(f"coopgis serve: {exc}", file=sys.stderr)
        return 1
    try:
        if not backend.store.exists():
            print(f"coopgis serve: no dataset in the database {safe_url(settings.database_url or '')}: run "
                  "`coopgis ingest FILE` with COOPGIS_DATABASE_URL set", file=sys.stderr)
            return 1
    finally:
        backend.close()
    print(f"coopgis: serving the database {safe_url(settings.database_url or '')} on "
          f"http://{settings.host}:{settings.port}/ (maps: /maps, API: /api, readiness: /ready)", file=sys.stderr)
    run_server(settings)
    return 0


def _cmd_db(args) -> int:
    """upgrade: create or upgrade the schema; current: print the revision; grant-readonly ROLE."""
    from coopgis.db import schema
    from coopgis.db.connect import DatabaseError, connect, safe_url

    url = args.url or Settings().database_url
    if not url:
        print("coopgis db: set COOPGIS_DATABASE_URL=postgresql://... (or give --url)", file=sys.stderr)
        return 2
    try:
        if args.action == "upgrade":
            before, after = schema.upgrade(url)
            said = "created" if before is None else ("already at" if before == after else f"upgraded from {before} to")
            print(f"coopgis db: schema {said} revision {after} in {safe_url(url)}", file=sys.stderr)
            return 0
        with connect(url) as conn:
            if args.action == "current":
                current = schema.revision(conn)
                print(current or "none")
                schema.check(conn)
                return 0
            if not args.role:
                print("coopgis db grant-readonly: give the ROLE", file=sys.stderr)
                return 2
            password = schema.grant_readonly(conn, args.role)
    except (schema.SchemaError, DatabaseError) as exc:
        print(f"coopgis db: {exc}", file=sys.stderr)
        return 1
    if password:
        print(f"role {args.role} created; it reads the views of schema {schema.PUBLIC_SCHEMA} only. Its password "
              "is shown only now, store it safely:", file=sys.stderr)
        print(password)
    else:
        print(f"role {args.role} may read the views of schema {schema.PUBLIC_SCHEMA} only (its password is "
              "unchanged)", file=sys.stderr)
    return 0


def _cmd_render(args) -> int:
    from coopgis.assets import NPM_HINT, missing_assets
    from coopgis.errors import InputError
    from coopgis.filters import FILTER_NAMES
    from coopgis.maps import MapSettings, load_presets
    from coopgis.settings import ServiceSettings
    from coopgis.standalone import RenderError, parse_filters, render_standalone

    map_settings = MapSettings()
    presets, broken = load_presets(map_settings.maps_dir)
    if args.name in broken:
        print(f"coopgis render: {broken[args.name]}", file=sys.stderr)
        return 2
    if args.name not in presets:
        print(f"coopgis render: no map {args.name!r}; maps are: {', '.join(presets)}", file=sys.stderr)
        return 2
    if missing_assets(map_settings.web_dir):
        print(f"coopgis render: the map libraries are missing; {NPM_HINT}", file=sys.stderr)
        return 1
    settings = ServiceSettings()
    dataset = _served_dataset("render", settings, args.data)
    if dataset is None:
        return 1
    values = {name: getattr(args, name) for name in FILTER_NAMES}
    try:
        flt = parse_filters(dataset, values)
        text = render_standalone(presets[args.name], dataset, flt, map_settings, settings.cluster_max_zoom,
                                 label="، ".join(f"{k}={v}" for k, v in values.items() if v))
    except InputError as exc:
        print(f"coopgis render: {exc.detail}", file=sys.stderr)
        return 2
    except RenderError as exc:
        print(f"coopgis render: {exc}", file=sys.stderr)
        return 2
    args.out.write_text(text, encoding="utf-8")
    print(f"{args.out}: {len(text.encode('utf-8')):,} bytes", file=sys.stderr)
    return 0


def _served_dataset(command: str, settings, data: Path | None):
    """The dataset a command reads (from ``data`` when given, else the settings' store), or None after
    saying why there is none."""
    from coopgis.loading import load_dataset
    from coopgis.store import FileStore, StoreError

    if data is not None:
        settings.data = data
        if not FileStore(data).exists():
            print(f"coopgis {command}: no dataset in {data}", file=sys.stderr)
            return None
    try:
        return load_dataset(settings)
    except StoreError as exc:
        print(f"coopgis {command}: {exc}", file=sys.stderr)
        return None


def _cmd_pack(args) -> int:
    """Exit 0: written; 2: no such county (or several by that name); 1: no dataset or map libraries."""
    from coopgis.assets import NPM_HINT, missing_assets
    from coopgis.maps import MapSettings
    from coopgis.packs import PackError, build_pack, resolve_county
    from coopgis.settings import ServiceSettings

    map_settings = MapSettings()
    if missing_assets(map_settings.web_dir):
        print(f"coopgis pack: the map libraries are missing (the pack holds a map); {NPM_HINT}", file=sys.stderr)
        return 1
    dataset = _served_dataset("pack", ServiceSettings(), args.data)
    if dataset is None:
        return 1
    try:
        pack = build_pack(dataset, resolve_county(dataset, args.county), map_settings,
                          "staff" if args.staff else "public")
    except PackError as exc:
        print(f"coopgis pack: {exc}", file=sys.stderr)
        return 2
    args.out.write_bytes(pack.data)
    print(f"{args.out}: county {pack.county_name} ({pack.county}), {pack.cooperatives:,} cooperatives, "
          f"{pack.villages:,} villages, {len(pack.data):,} bytes, sha256 {pack.sha256}", file=sys.stderr)
    return 0


def _cmd_token(args) -> int:
    from coopgis.auth import TokenStore
    from coopgis.settings import ServiceSettings

    settings = ServiceSettings()
    backend = None
    if settings.database_url and not args.file:
        from coopgis.backend import open_backend
        from coopgis.db.schema import SchemaError
        from coopgis.store import StoreError

        try:
            backend = open_backend(settings)
        except (SchemaError, StoreError) as exc:
            print(f"coopgis token: {exc}", file=sys.stderr)
            return 1
        store = backend.tokens
    else:
        store = TokenStore(args.file or settings.tokens_file)
    try:
        return _token_action(args, store)
    finally:
        if backend is not None:
            backend.close()


def _token_action(args, store) -> int:
    from coopgis.auth import TokenError
    from coopgis.store import StoreError

    try:
        if args.action == "list":
            for entry in store.list():
                print(f"{entry['name']}\t{entry['role']}\t{entry.get('created', '')}")
            return 0
        if not args.name:
            print(f"coopgis token {args.action}: give the NAME", file=sys.stderr)
            return 2
        if args.action == "revoke":
            if not store.revoke(args.name):
                print(f"coopgis token revoke: no token named {args.name!r}", file=sys.stderr)
                return 1
            print(f"revoked: {args.name}", file=sys.stderr)
            return 0
        if not args.role:
            print("coopgis token add: give --role field_officer, gis_staff or admin", file=sys.stderr)
            return 2
        token = store.add(args.name, args.role)
    except (TokenError, StoreError) as exc:
        print(f"coopgis token: {exc}", file=sys.stderr)
        return 1
    print(f"token for {args.name} ({args.role}); it is shown only now, store it safely:", file=sys.stderr)
    print(token)
    return 0


def _cmd_build_boundaries(args) -> int:
    from coopgis.build_boundaries import build

    print(json.dumps(build(args.source, args.out), ensure_ascii=False, indent=1))
    return 0


# ---- shared -------------------------------------------------------------------------------

if __name__ == "__main__":
    sys.exit(main())
