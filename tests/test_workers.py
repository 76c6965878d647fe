"""``coopgis serve --workers N`` on the file store: the workers are forked from one loaded dataset and share
its memory; a worker that dies is replaced, and a replacement serves what the store holds now."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_maps import UNLIMITED


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return sorted(out)


def _smaps(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":")
        out[name] = int(value.split()[0]) // 1024      # MB
    return out


def _wait(what, seconds: float = 60.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"not within {seconds} s")


def _matched(url: str) -> set[int]:
    """numberMatched as answered by whichever workers take 20 fresh connections."""
    seen = set()
    for _ in range(20):
        with httpx.Client(timeout=30) as h:
            seen.add(h.get(f"{url}/collections/cooperatives/items?limit=1").json()["numberMatched"])
    return seen


@pytest.fixture()
def two_workers(tmp_path, sample_store):
    folder = tmp_path / "data"
    shutil.copytree(sample_store.folder, folder)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, **{f"COOPGIS_{k.upper()}": str(v) for k, v in UNLIMITED.items()}, COOPGIS_WORKERS="2",
               COOPGIS_CACHE_DIR=str(tmp_path / "cache"))
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "coopgis.cli", "serve", "--data", str(folder), "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready():
        try:
            return httpx.get(f"{url}/ready", timeout=5).status_code == 200 and len(_children(proc.pid)) == 2
        except httpx.HTTPError:
            assert proc.poll() is None, (tmp_path / "server.log").read_text(errors="replace")
            return False

    try:
        _wait(ready)
        yield proc, url, folder
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def test_workers_share_the_loaded_dataset_and_stop_together(two_workers):
    proc, url, _ = two_workers
    workers = _children(proc.pid)
    assert len(workers) == 2
    for pid in workers:
        m = _smaps(pid)
        # forked from the loaded supervisor: most of a worker's memory is pages it shares (spawned workers,
        # as uvicorn makes them, each build their own: nothing of the loaded dataset is shared)
        shared = m["Shared_Clean"] + m["Shared_Dirty"]
        assert shared > 150 and shared > m["Rss"] // 2, m
    r = httpx.get(f"{url}/collections/cooperatives/items?limit=5", timeout=30)
    assert r.status_code == 200 and len(r.json()["features"]) == 5
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert not any(Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()
                   for pid in workers)


def test_a_dead_worker_is_replaced_and_serves_the_store_as_it_is_now(two_workers, boundaries):
    from coopgis.store import FileStore

    proc, url, folder = two_workers
    store = FileStore(folder)
    frame, report = store.read(), store.read_report()
    assert _matched(url) == {len(frame)}
    store.write(frame.iloc[:-40].copy(), {**report, "accepted": len(frame) - 40})   # a new ingest's version
    _wait(lambda: _matched(url) == {len(frame) - 40}, 30)     # both workers load it
    before = _children(proc.pid)
    os.kill(before[0], signal.SIGKILL)
    _wait(lambda: len(_children(proc.pid)) == 2 and _children(proc.pid) != before, 30)
    # the replacement is forked from the supervisor's first load, then catches up with the store
    _wait(lambda: _matched(url) == {len(frame) - 40}, 30)
    assert httpx.get(f"{url}/ready", timeout=5).status_code == 200
