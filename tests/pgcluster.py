"""A throw-away PostgreSQL cluster for tests and benchmarks: initdb into a temporary folder, a free port,
the unix socket in that folder, stopped and removed at the end.

PostgreSQL refuses to run as root: as root the cluster runs as the ``postgres`` user (``runuser``).
Local (socket) connections are trusted; TCP connections on 127.0.0.1 need a password (scram-sha-256), so a
role's real login can be tested. ``.ci/run`` starts one the same way and passes its URL in
``COOPGIS_TEST_DATABASE_URL``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time


def binaries() -> str | None:
    """The folder of PostgreSQL's server programs (the newest version installed), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(found[-1]) if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """``with Cluster() as c: c.url``: a superuser URL over the unix socket."""

    def __init__(self, bin_dir: str | None = None):
        self.bin = bin_dir or binaries()
        if self.bin is None:
            raise RuntimeError("PostgreSQL's server programs are not installed (postgresql-15)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="coopgis-pg-")
        self.data = os.path.join(self.dir, "data")
        self.user = "postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True)

    def start(self) -> Cluster:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        else:
            self.user = os.environ.get("USER") or "postgres"
        self._run(os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        opts = (f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                "-c shared_buffers=128MB")
        self._run(os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-o", opts, "-l",
                  os.path.join(self.dir, "server.log"), "-w", "-t", "60", "start")
        return self

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.dir}&port={self.port}"

    def url_for(self, dbname: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@/{dbname}?host={self.dir}&port={self.port}"

    def stop(self) -> None:
        self._run(os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop", check=False)
        for _ in range(50):
            if not os.path.exists(os.path.join(self.data, "postmaster.pid")):
                break
            time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
