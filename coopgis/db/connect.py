"""Connections to the database: a small pool per process, and the notification channel.

Every change that replicas must see is announced on one channel, :data:`CHANNEL`, in the
transaction that makes it (PostgreSQL delivers a NOTIFY only when its transaction commits):
``dataset <id>`` after an ingest switched the current dataset, ``decision <seq>`` after a
location decision, ``tokens`` after a token was made or revoked.

Not here: what is stored (``store.py``, ``reports.py``, ``tokens.py``), the schema (``schema.py``).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool

from coopgis.store import StoreError

CHANNEL = "coopgis"
log = logging.getLogger("coopgis")


class DatabaseError(StoreError):
    """The database cannot be reached or used; the message says why, without the password."""


def safe_url(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def connect(url: str, timeout: float = 5, **kwargs) -> psycopg.Connection:
    """One connection (for the command line); DatabaseError naming the server when it cannot be reached."""
    try:
        return psycopg.connect(url, connect_timeout=max(1, round(timeout)), **kwargs)
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot connect to the database {safe_url(url)}: {_first_line(exc)}") from None


class Database:
    """The database of one process: a connection pool, opened lazily, and the URL for the listener."""

    def __init__(self, url: str, pool_size: int = 4, timeout: float = 5):
        self.url = url
        self.timeout = timeout
        self.pool = ConnectionPool(url, min_size=1, max_size=pool_size, timeout=timeout, open=False,
                                   name="coopgis", check=ConnectionPool.check_connection,
                                   kwargs={"connect_timeout": max(1, round(timeout))})
        self._opened = False
        self._lock = threading.Lock()

    @contextmanager
    def connection(self):
        """A pooled connection; the transaction commits when the block ends, rolls back on an exception."""
        if not self._opened:
            with self._lock:
                if not self._opened:
                    self.pool.open(wait=False)
                    self._opened = True
        try:
            with self.pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            raise DatabaseError(f"the database {safe_url(self.url)} is unavailable: {_first_line(exc)}") from None

    def ping(self) -> bool:
        """True when the database answers a query within the timeout."""
        try:
            with self.connection() as conn:
                conn.execute("SELECT 1")
            return True
        except Exception:
            return False

    def stats(self) -> dict[str, int]:
        """The pool's figures: size, available, waiting, and the counts psycopg_pool keeps."""
        return dict(self.pool.get_stats()) if self._opened else {}

    def close(self) -> None:
        if self._opened:
            self.pool.close()
            self._opened = False


class Listener:
    """A thread that LISTENs on :data:`CHANNEL` and calls ``on_notify(payload)`` for each notification.

    ``on_connect()`` is called after every (re)connection, before notifications are read, so whatever
    was committed while the listener was not connected is caught up. Nothing is polled: the thread
    waits on the connection's socket (waking once a second to see whether it must stop).
    """

    def __init__(self, url: str, on_notify: Callable[[str], None], on_connect: Callable[[], None],
                 timeout: float = 5):
        self.url = url
        self.on_notify = on_notify
        self.on_connect = on_connect
        self.timeout = timeout
        self.connected = threading.Event()
        # The current dataset as this connection last saw it, and when: /ready reads these, so it never
        # waits for a pooled connection (a busy pool must not take a replica out of the balancer).
        self.current_dataset: str | None = None
        self.seen_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="coopgis-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, round(self.timeout))) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._look(conn)
                    self.connected.set()
                    self._call(self.on_connect)
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._call(self.on_notify, note.payload)
                            if self._stop.is_set():
                                break
                        self._look(conn)   # a second without news: is the database still there?
            except psycopg.Error as exc:
                if not self._stop.is_set():
                    log.warning("database notifications interrupted (%s); reconnecting", _first_line(exc))
            finally:
                self.connected.clear()
            self._stop.wait(1.0)

    def _look(self, conn: psycopg.Connection) -> None:
        row = conn.execute("SELECT dataset_id FROM coopgis.current_dataset").fetchone()
        self.current_dataset = str(row[0]) if row else "-"
        self.seen_at = time.monotonic()

    def alive(self, within: float = 3.0) -> bool:
        """Connected, and the database answered on this connection in the last ``within`` seconds."""
        return self.connected.is_set() and time.monotonic() - self.seen_at < within

    def _call(self, fn: Callable, *args) -> None:
        try:
            fn(*args)
        except Exception:  # a failed refresh keeps the previous read model; the next notification retries
            log.exception("refreshing the read model failed")


def notify(conn: psycopg.Connection, payload: str) -> None:
    """Announce ``payload`` on the channel when ``conn``'s transaction commits."""
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def wait_for(predicate: Callable[[], bool], seconds: float, every: float = 0.05) -> bool:
    """True once ``predicate()`` holds, False after ``seconds`` (for start-up and tests)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()
