"""The database schema: Alembic migrations, the check before use, and the read-only role for QGIS.

- :func:`upgrade` (``coopgis db upgrade``) creates the schema, or brings it up to this coopgis's
  head revision; a database whose revision this coopgis does not know (written by a newer coopgis)
  is refused with :class:`SchemaError` and left as it is.
- :func:`check` is what every process does before it reads or writes: the database must be at
  this coopgis's head revision, else a :class:`SchemaError` that says what to do.
- :func:`grant_readonly` (``coopgis db grant-readonly ROLE``) makes a login role that can read the
  views of the ``coopgis_public`` schema (public columns only) and nothing else.

The migrations live in ``coopgis/db/migrations`` (inside the package, so a wheel carries them).
Not here: what the tables hold (``store.py``, ``reports.py``, ``tokens.py``).
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import psycopg
from psycopg import sql

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
PUBLIC_SCHEMA = "coopgis_public"


class SchemaError(Exception):
    """The database's schema is missing, older or newer than this coopgis; the message says what to do."""


def _script():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg, ScriptDirectory.from_config(cfg)


def head() -> str:
    """The newest revision this coopgis knows."""
    _, script = _script()
    return script.get_current_head() or ""


def known_revisions() -> set[str]:
    _, script = _script()
    return {rev.revision for rev in script.walk_revisions()}


def revision(conn: psycopg.Connection) -> str | None:
    """The database's revision (None when it has no coopgis schema yet)."""
    exists = conn.execute("SELECT to_regclass('public.alembic_version') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute("SELECT version_num FROM public.alembic_version").fetchone()
    return row[0] if row else None


def check(conn: psycopg.Connection) -> str:
    """The revision, when it is this coopgis's head; SchemaError otherwise."""
    current, newest = revision(conn), head()
    if current is None:
        raise SchemaError("the database has no coopgis schema: run `coopgis db upgrade` first")
    if current not in known_revisions():
        raise SchemaError(newer_message(current, newest))
    if current != newest:
        raise SchemaError(f"the database's schema is at revision {current}, older than this coopgis "
                          f"({newest}): run `coopgis db upgrade`")
    return current


def newer_message(current: str, newest: str) -> str:
    return (f"the database's schema is at revision {current!r}, which this coopgis does not know: a newer "
            f"coopgis wrote it (this one knows up to {newest!r}). Run that newer coopgis against it; "
            "nothing was changed")


def upgrade(url: str) -> tuple[str | None, str]:
    """Create or upgrade the schema to the head revision; returns (revision before, revision after)."""
    from alembic import command
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from coopgis.db.connect import connect

    with connect(url) as conn:
        before = revision(conn)
    if before is not None and before not in known_revisions():
        raise SchemaError(newer_message(before, head()))
    cfg, _ = _script()
    engine = create_engine("postgresql+psycopg://", creator=lambda: connect(url), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()
    with connect(url) as conn:
        return before, revision(conn) or ""


ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def grant_readonly(conn: psycopg.Connection, role: str, password: str | None = None) -> str | None:
    """Let ``role`` read the public views (and nothing else); create it as a login role when it does not
    exist, with ``password`` or a new random one. Returns the password of a new role (None for an old one)."""
    if not ROLE_NAME.match(role):
        raise SchemaError(f"role {role!r}: use lower-case letters, digits and _ (at most 63, not starting with "
                          "a digit)")
    check(conn)
    ident = sql.Identifier(role)
    made = None
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    if not exists:
        made = password or secrets.token_urlsafe(24)
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident, sql.Literal(made)))
    else:
        flags = conn.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles "
                             "WHERE rolname = %s", (role,)).fetchone()
        if flags and any(flags):
            raise SchemaError(f"role {role!r} is a superuser or may create roles or databases: it cannot be made "
                              "read-only; choose another name")
    dbname = (conn.execute("SELECT current_database()").fetchone() or ("",))[0]
    for statement in (
        "GRANT CONNECT ON DATABASE {db} TO {role}",
        "REVOKE ALL ON SCHEMA coopgis FROM {role}",
        "REVOKE ALL ON ALL TABLES IN SCHEMA coopgis FROM {role}",
        "GRANT USAGE ON SCHEMA coopgis_public TO {role}",
        "GRANT SELECT ON ALL TABLES IN SCHEMA coopgis_public TO {role}",
        "ALTER ROLE {role} SET default_transaction_read_only = on",
    ):
        conn.execute(sql.SQL(statement).format(db=sql.Identifier(dbname), role=ident))
    from coopgis.db.store import audit

    audit(conn, "coopgis db", "grant-readonly", {"role": role, "created": made is not None})
    return made
