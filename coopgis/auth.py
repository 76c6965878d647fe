"""Who is asking: roles and bearer tokens.

Roles, each with everything of the ones before it:
``public`` (no credentials) < ``field_officer`` < ``gis_staff`` < ``admin``.

Tokens are random strings shown once when made (``coopgis token add``); only
their SHA-256 is stored, in a JSON file. A presented token is hashed and
compared with every stored hash using ``secrets.compare_digest``. Tokens are
high-entropy random values, so a fast hash is enough; there is nothing to
brute-force.

Not here: which fields each role sees (``dataset.py``) and the HTTP side
(``api/security.py``).
"""

from __future__ import annotations

import builtins
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from coopgis.files import write_private

ROLES = ("public", "field_officer", "gis_staff", "admin")


class TokenError(Exception):
    """The token file is unreadable or an operation on it is invalid."""


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    def can(self, role: str) -> bool:
        """True when this principal has ``role`` or a higher one."""
        return ROLES.index(self.role) >= ROLES.index(role)


PUBLIC = Principal("public", "public")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """The token file: a JSON list of ``{"name", "role", "sha256", "created"}``."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._entries: list[dict] = []
        self._mtime: float | None = None

    def verify(self, token: str) -> Principal | None:
        """The principal a token belongs to, or None; the same work whatever the answer."""
        digest = hash_token(token)
        found = None
        for entry in self._load():
            if secrets.compare_digest(digest, entry["sha256"]) and found is None:
                found = Principal(entry["name"], entry["role"])
        return found

    def add(self, name: str, role: str) -> str:
        """Make a token for ``name`` with ``role``; returns the token, which is not stored."""
        if role not in ROLES or role == "public":
            raise TokenError(f"role must be one of {', '.join(ROLES[1:])}")
        if not name or len(name) > 100:
            raise TokenError("name must be 1 to 100 characters")
        if self.path is None:
            raise TokenError("no token file configured (COOPGIS_TOKENS_FILE)")
        with self._lock:
            entries = [e for e in self._load(force=True) if e["name"] != name]
            token = secrets.token_urlsafe(32)
            entries.append({"name": name, "role": role, "sha256": hash_token(token),
                            "created": datetime.now(UTC).isoformat(timespec="seconds")})
            self._write(entries)
        return token

    def revoke(self, name: str) -> bool:
        with self._lock:
            entries = self._load(force=True)
            kept = [e for e in entries if e["name"] != name]
            if len(kept) == len(entries):
                return False
            self._write(kept)
        return True

    def list(self) -> builtins.list[dict]:
        return [{k: e[k] for k in ("name", "role", "created") if k in e} for e in self._load(force=True)]

    def _load(self, force: bool = False) -> builtins.list[dict]:
        if self.path is None or not self.path.is_file():
            return []
        mtime = self.path.stat().st_mtime
        if force or mtime != self._mtime:
            try:
                entries = json.loads(self.path.read_text(encoding="utf-8"))
                assert isinstance(entries, list)
                for e in entries:
                    assert e["role"] in ROLES and isinstance(e["sha256"], str) and isinstance(e["name"], str)
            except (OSError, ValueError, AssertionError, KeyError, TypeError) as exc:
                raise TokenError(f"token file {self.path} is not a valid token list: {exc!r}") from exc
            self._entries, self._mtime = entries, mtime
        return self._entries

    def _write(self, entries: builtins.list[dict]) -> None:
        """Write the list atomically, 0600 from the start; TokenError naming the cause when the disk refuses."""
        if self.path is None:
            raise TokenError("no token file configured (COOPGIS_TOKENS_FILE)")
        try:
            write_private(self.path, json.dumps(entries, ensure_ascii=False, indent=1).encode("utf-8"))
        except OSError as exc:
            raise TokenError(f"cannot write the token file {self.path}: {exc.strerror or exc}; "
                             "nothing was changed") from None
        self._mtime = None
