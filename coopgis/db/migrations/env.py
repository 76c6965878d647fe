"""Alembic's environment for coopgis: migrations run on the connection :mod:`coopgis.db.schema` gives.

There is no alembic.ini: ``coopgis db upgrade`` builds the configuration and passes an open
SQLAlchemy connection (over psycopg) in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
