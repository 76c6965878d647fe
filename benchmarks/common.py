"""Shared pieces of the benchmark suite: the cached dataset, server processes, statistics, results.

Nothing here talks to anything but 127.0.0.1. Every process started here is
started in a session of its own and ended by its process-group id (the id of the
process this module started), never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
LOOPBACK = "127.0.0.1"
# What a benchmark waits for before measuring coopgis: the read model warmed. The process answers requests
# earlier (the warm-up runs in the background), and what it serves then would measure the warm-up.
READY = "/ready"


# ---- configuration of one run ---------------------------------------------------------------

@dataclass
class Config:
    size: int = 100_000
    quick: bool = False
    reps: int = 3                  # repetitions of every load run (medians over these)
    seconds: float = 2.0           # time bound of one load run
    max_requests: int = 30_000     # count bound of one load run
    connections: int = 16          # concurrent keep-alive connections
    heavy_connections: int = 4     # for responses of megabytes (items limit=10000)
    tiles_per_zoom: int = 150      # cold walk: distinct tiles per zoom (all of them when fewer)
    warm_tiles: int = 20           # warm runs cycle over this many (cached) tiles per zoom
    page_limit: float = 120.0      # seconds a page may take to show its first clusters
    page_reps: int = 3
    ingest_runs: int = 3
    use_wrk: bool = True
    install: bool = True           # apt-get / pip / npm installs of what the suite needs
    seed: int = 1404
    workers: tuple = (1, 2)        # `coopgis serve --workers N` (and gunicorn -w N for pygeoapi)
    before: Path | None = None     # page: also the national page of this checkout (an older commit)

    @classmethod
    def make(cls, size: int | None, quick: bool, **kw) -> Config:
        if quick:
            c = cls(size=size or 3000, quick=True, reps=1, seconds=0.5, max_requests=400, tiles_per_zoom=12,
                    warm_tiles=4, page_limit=30.0, page_reps=1, ingest_runs=1, workers=(1,))
        else:
            c = cls(size=size or 100_000)
        for k, v in kw.items():
            if v is not None:
                setattr(c, k, v)
        return c


# ---- statistics and printing ----------------------------------------------------------------

def med(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def mm(values, digits: int = 1, unit: str = "") -> str:
    """``median (min-max)`` of a list, or the single value when there is one."""
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    f = f"{{:,.{digits}f}}"
    m = f.format(statistics.median(values))
    if len(values) == 1 or min(values) == max(values):
        return f"{m}{unit}"
    return f"{m}{unit} ({f.format(min(values))}-{f.format(max(values))})"


def percentile(values, q: float) -> float:
    if not len(values):
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def md_table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def say(*args) -> None:
    print(*args, flush=True)


@dataclass
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None           # None: not measured
    note: str = ""


@dataclass
class Results:
    """Everything a run found: per-section tables (markdown), figures and the targets."""

    config: Config
    tables: dict[str, list[str]] = field(default_factory=dict)
    figures: dict[str, object] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self, section: str, text: str) -> None:
        self.tables.setdefault(section, []).append(text)
        say(text)

    def target(self, name: str, goal: str, measured: str, met: bool | None, note: str = "") -> None:
        self.targets.append(Target(name, goal, measured, met, note))

    def note(self, text: str) -> None:
        self.notes.append(text)
        say(f"note: {text}")


# ---- the dataset, built once ----------------------------------------------------------------

def dataset_folder(size: int, seed: int = 1404) -> Path:
    return CACHE / f"data-{size}-{seed}"


def ensure_dataset(size: int, seed: int = 1404) -> tuple[Path, Path]:
    """The folder of an ingested synthetic registry of ``size`` rows, and its sample CSV (built once)."""
    from coopgis.boundaries import load_boundaries
    from coopgis.geocode import Geocoder
    from coopgis.ingest import ingest
    from coopgis.sample import generate_sample, write_sample
    from coopgis.store import FileStore

    folder = dataset_folder(size, seed)
    store = folder / "store"
    csv = folder / "sample.csv"
    if FileStore(store).exists() and csv.is_file():
        return store, csv
    folder.mkdir(parents=True, exist_ok=True)
    say(f"building the benchmark dataset: generate_sample({size:,}) -> ingest -> {store} (once)")
    t = time.perf_counter()
    b = load_boundaries()
    write_sample(generate_sample(size, seed=seed, boundaries=b), csv)
    result = ingest(csv, FileStore(store), b, Geocoder(b))
    say(f"dataset built in {time.perf_counter() - t:.1f} s: {result.report['accepted']:,} accepted of "
        f"{result.report['rows']:,} rows")
    return store, csv


_LOADED: dict = {}


def load_dataset(store: Path):
    """The served Dataset of a store, loaded once per process (as the app builds it)."""
    key = str(store)
    if key not in _LOADED:
        from coopgis.boundaries import load_boundaries
        from coopgis.dataset import Dataset
        from coopgis.store import FileStore

        fs = FileStore(store)
        _LOADED[key] = Dataset(fs.read(), load_boundaries(), fs.read_report())
    return _LOADED[key]


# ---- tiles covering Iran ----------------------------------------------------------------------

IRAN_BBOX = (44.0, 25.0, 63.4, 39.8)


def tiles_in_bbox(z: int, bbox=IRAN_BBOX) -> list[tuple[int, int, int]]:
    from coopgis.tiles import lonlat_to_world

    n = 2 ** z
    (u0, u1), (v1, v0) = lonlat_to_world([bbox[0], bbox[2]], [bbox[1], bbox[3]])
    xs = range(int(u0 * n), min(int(u1 * n), n - 1) + 1)
    ys = range(int(v0 * n), min(int(v1 * n), n - 1) + 1)
    return [(z, x, y) for x in xs for y in ys]


def occupied_tiles(dataset, z: int, limit: int | None, seed: int = 1404) -> list[tuple[int, int, int]]:
    """Distinct tiles of zoom z holding at least one cooperative, a seeded random sample of ``limit``."""
    import numpy as np

    from coopgis.tiles import lonlat_to_world

    coll = dataset.collections["cooperatives"]
    ok = np.isfinite(coll.lon) & np.isfinite(coll.lat)
    u, v = lonlat_to_world(coll.lon[ok], coll.lat[ok])
    n = 2 ** z
    xy = np.unique(np.column_stack([np.floor(u * n).astype(np.int64), np.floor(v * n).astype(np.int64)]), axis=0)
    if limit is not None and len(xy) > limit:
        rng = np.random.default_rng(seed + z)
        xy = xy[np.sort(rng.choice(len(xy), limit, replace=False))]
    return [(z, int(x), int(y)) for x, y in xy]


# ---- processes ----------------------------------------------------------------------------

def stop_session(proc: subprocess.Popen) -> None:
    """End a process started in its own session, and everything it started: SIGTERM to the session by its id,
    SIGKILL after 15 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class Server:
    """A server subprocess in its own session, waited for until ``ready_path`` answers 200."""

    def __init__(self, name: str, argv: list[str], port: int, ready_path: str, env: dict | None = None,
                 cwd: Path | None = None, log: Path | None = None, timeout: float = 240.0):
        self.name, self.argv, self.port, self.ready_path = name, argv, port, ready_path
        self.env = {**os.environ, **(env if env is not None else {})}
        self.cwd = cwd if cwd is not None else ROOT
        self.log = log or (CACHE / "logs" / f"{name}.log")
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None

    @property
    def base(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Server:
        import httpx

        self.log.parent.mkdir(parents=True, exist_ok=True)
        logf = self.log.open("wb")
        t = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, stdout=logf, stderr=subprocess.STDOUT, env=self.env,
                                     cwd=self.cwd, start_new_session=True)
        logf.close()
        _STARTED.append(self)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} while starting; "
                                   f"last lines of {self.log}:\n{tail(self.log)}")
            try:
                r = httpx.get(self.base + self.ready_path, timeout=5)
                if r.status_code == 200:
                    self.startup_s = time.perf_counter() - t
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer {self.ready_path} within {self.timeout:.0f} s; "
                           f"last lines of {self.log}:\n{tail(self.log)}")

    def pids(self) -> list[int]:
        """The server process and its descendants (uvicorn/gunicorn workers)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [self.proc.pid, *descendants(self.proc.pid)]

    def stop(self) -> None:
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            stop_session(p)
        self.proc = None
        if self in _STARTED:
            _STARTED.remove(self)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


_STARTED: list[Server] = []


def stop_all() -> None:
    """Stop every server still running (called from the suite's finally)."""
    for s in list(_STARTED):
        s.stop()


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def rss_mb(pid: int) -> float | None:
    """VmRSS of a process from /proc/PID/status, in MB (MiB)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# All benchmark load comes from one loopback client; the service's per-client rate limits (geocode 120/min,
# pages over 1,000 items 30/min, burst 30 by default) would answer most of it with 429. They are raised for
# the servers the suite starts; everything else is the production configuration.
NO_RATE_LIMITS = {"COOPGIS_RATE_GEOCODE_PER_MINUTE": "1000000000", "COOPGIS_RATE_DOWNLOAD_PER_MINUTE": "1000000000",
                  "COOPGIS_RATE_READ_PER_MINUTE": "1000000000", "COOPGIS_RATE_TILES_PER_MINUTE": "1000000000",
                  "COOPGIS_RATE_BURST": "1000000000", "COOPGIS_RATE_TILES_BURST": "1000000000"}


def coopgis_serve_argv(store: Path, port: int, workers: int | None = None) -> list[str]:
    """``coopgis serve --data STORE --port P [--workers N]``, as the README says production runs it."""
    # ``python -m coopgis.cli`` from the repository root (the servers' working directory is ROOT): the code
    # of this checkout, whatever an installed ``coopgis`` script points at (an editable install elsewhere)
    argv = [sys.executable, "-m", "coopgis.cli", "serve", "--data", str(store), "--port", str(port)]
    if workers:
        argv += ["--workers", str(workers)]
    return argv


def run(cmd: list[str], timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def apt_install(packages: list[str], allowed: bool) -> str | None:
    """apt-get install the Debian packages; None when done, else why not."""
    if not allowed:
        return "installs disabled (--no-install)"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "not root or no apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    r = run(["apt-get", "install", "-y", "-qq", *packages], env=env, timeout=600)
    if r.returncode != 0:
        run(["apt-get", "update", "-qq"], env=env, timeout=600)
        r = run(["apt-get", "install", "-y", "-qq", *packages], env=env, timeout=600)
    return None if r.returncode == 0 else f"apt-get install {' '.join(packages)} failed: {r.stderr[-400:]}"


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    info = {"nproc": os.cpu_count(), "memory": mem, "cpu": cpu, "python": platform.python_version(),
            "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    try:
        import uvicorn

        info["uvicorn"] = uvicorn.__version__
    except ImportError:
        pass
    try:
        import folium

        info["folium"] = folium.__version__
    except ImportError:
        pass
    if shutil.which("node"):
        info["node"] = run(["node", "--version"]).stdout.strip()
    if shutil.which("chromium"):
        info["chromium"] = run(["chromium", "--version"]).stdout.strip()
    if shutil.which("wrk"):
        info["wrk"] = (run(["wrk", "-v"]).stdout or "").splitlines()[0:1]
        info["wrk"] = info["wrk"][0].split(" [")[0] if info["wrk"] else "wrk"
    return info


def save_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
