"""Location reports keep the client's Idempotency-Key and a fingerprint of what was reported, so a retry of
the same report (from a phone that lost its connection, through any replica) is recorded once.

Revision ID: 0002_idempotency_keys
Revises: 0001_initial
"""

from __future__ import annotations

from alembic import op

revision = "0002_idempotency_keys"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE coopgis.location_reports ADD COLUMN idempotency_key text, ADD COLUMN fingerprint text;
-- A key is the reporter's own: one report per (reporter, key).
CREATE UNIQUE INDEX location_reports_idempotency ON coopgis.location_reports (reporter, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
"""

DOWNGRADE = """
DROP INDEX coopgis.location_reports_idempotency;
ALTER TABLE coopgis.location_reports DROP COLUMN idempotency_key, DROP COLUMN fingerprint;
"""


def upgrade() -> None:
    _execute(UPGRADE)


def downgrade() -> None:
    _execute(DOWNGRADE)


def _execute(statements: str) -> None:
    """Run SQL as written, on psycopg's own connection in Alembic's transaction."""
    driver = op.get_bind().connection.driver_connection
    assert driver is not None
    driver.execute(statements)
