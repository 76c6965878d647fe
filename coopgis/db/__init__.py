"""PostgreSQL/PostGIS as the system of record (``COOPGIS_DATABASE_URL``): the same core interfaces as the
embedded file store, over a database that several replicas share.

- :mod:`coopgis.db.connect`: connections (a pool per process), the LISTEN/NOTIFY channel;
- :mod:`coopgis.db.schema`: Alembic migrations (``coopgis db upgrade``), the schema check every process
  makes before it uses the database, and the read-only role for QGIS (``coopgis db grant-readonly``);
- :mod:`coopgis.db.store`: :class:`~coopgis.db.store.PostgisStore`, datasets written with COPY in one
  transaction and switched atomically;
- :mod:`coopgis.db.reports`: :class:`~coopgis.db.reports.PostgisReportLog`, location reports and
  decisions (append-only), decisions as transactions with a row-version check;
- :mod:`coopgis.db.tokens`: :class:`~coopgis.db.tokens.PostgisTokenStore`, hashed bearer tokens.

Only psycopg 3 is used here (COPY, LISTEN/NOTIFY, binary reads); SQLAlchemy is loaded only by Alembic,
to run the migrations. Not here: choosing a store from the settings (``backend.py``), HTTP (``api/``).
"""
