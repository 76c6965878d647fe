"""Which store the service stands on, chosen by the settings: the embedded files, or PostgreSQL/PostGIS.

:func:`open_backend` gives the four things that must be shared between processes and hosts: the
dataset store, the location-report log (reports, decisions, the review's audit trail), the tokens,
and, for the database, the connection pool. Everything above them (loading, the app, the routers)
uses the same methods whichever it is; the routers never know.

- no ``COOPGIS_DATABASE_URL``: the embedded default, the data folder (``store.py``,
  ``location_reports.py``) and the token file (``auth.py``); several workers agree by watching the folder.
- ``COOPGIS_DATABASE_URL=postgresql://...``: the database (``coopgis.db``); the schema must be at this
  coopgis's revision (``coopgis db upgrade``); replicas agree through LISTEN/NOTIFY.

Not here: the HTTP app (``app.py``), the database code itself (``coopgis/db``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coopgis.auth import TokenStore
from coopgis.location_reports import LocationReportLog
from coopgis.settings import Settings
from coopgis.store import FileStore


@dataclass
class Backend:
    store: Any               # FileStore or coopgis.db.store.PostgisStore
    reports: LocationReportLog
    tokens: Any              # TokenStore or coopgis.db.tokens.PostgisTokenStore
    database: Any = None     # coopgis.db.connect.Database, for the database store

    @property
    def kind(self) -> str:
        return "postgis" if self.database is not None else "file"

    def close(self) -> None:
        if self.database is not None:
            self.database.close()


def open_backend(settings: Settings) -> Backend:
    """The store of ``settings``; for the database, SchemaError/DatabaseError when it cannot be used."""
    if settings.database_url:
        from coopgis.db import schema
        from coopgis.db.connect import Database
        from coopgis.db.reports import PostgisReportLog
        from coopgis.db.store import PostgisStore
        from coopgis.db.tokens import PostgisTokenStore

        db = Database(settings.database_url, settings.database_pool_size, settings.database_timeout_seconds)
        try:
            with db.connection() as conn:
                schema.check(conn)
        except BaseException:
            db.close()
            raise
        return Backend(PostgisStore(db, settings.database_keep_datasets), PostgisReportLog(db),
                       PostgisTokenStore(db), db)
    return Backend(FileStore(settings.data), LocationReportLog(settings.data),
                   TokenStore(getattr(settings, "tokens_file", None)))
