"""Bearer tokens in the database: :class:`PostgisTokenStore`, the token file's methods over ``coopgis.tokens``.

Only each token's SHA-256 is stored. A presented token is hashed and compared with every stored hash
with ``secrets.compare_digest``, read afresh on each check, so a revoked token stops working on every
replica at its next request. Making and revoking a token is written to the audit trail.
"""

from __future__ import annotations

import secrets
from datetime import UTC

from coopgis.auth import ROLES, Principal, TokenError, hash_token
from coopgis.db.connect import Database, DatabaseError, notify
from coopgis.db.store import audit, os_user


class PostgisTokenStore:
    """Tokens in ``coopgis.tokens``."""

    def __init__(self, db: Database):
        self.db = db
        self.path = "coopgis.tokens"

    def verify(self, token: str) -> Principal | None:
        digest = hash_token(token)
        try:
            with self.db.connection() as conn:
                rows = conn.execute("SELECT name, role, sha256 FROM coopgis.tokens").fetchall()
        except DatabaseError as exc:
            raise TokenError(str(exc)) from None
        found = None
        for name, role, stored in rows:
            if secrets.compare_digest(digest, stored) and found is None:
                found = Principal(name, role)
        return found

    def add(self, name: str, role: str) -> str:
        if role not in ROLES or role == "public":
            raise TokenError(f"role must be one of {', '.join(ROLES[1:])}")
        if not name or len(name) > 100:
            raise TokenError("name must be 1 to 100 characters")
        token = secrets.token_urlsafe(32)
        with self.db.connection() as conn:
            conn.execute("INSERT INTO coopgis.tokens (name, role, sha256) VALUES (%s, %s, %s) ON CONFLICT (name) "
                         "DO UPDATE SET role = EXCLUDED.role, sha256 = EXCLUDED.sha256, created = now()",
                         (name, role, hash_token(token)))
            audit(conn, os_user(), "token add", {"name": name, "role": role})
            notify(conn, "tokens")
        return token

    def revoke(self, name: str) -> bool:
        with self.db.connection() as conn:
            gone = conn.execute("DELETE FROM coopgis.tokens WHERE name = %s", (name,)).rowcount
            if gone:
                audit(conn, os_user(), "token revoke", {"name": name})
                notify(conn, "tokens")
        return bool(gone)

    def list(self) -> list[dict]:
        with self.db.connection() as conn:
            rows = conn.execute("SELECT name, role, created FROM coopgis.tokens ORDER BY created, name").fetchall()
        return [{"name": n, "role": r, "created": c.astimezone(UTC).isoformat(timespec="seconds")} for n, r, c in rows]



