"""A short version of benchmarks/load.py: the real server under mixed load at 64 connections."""

from __future__ import annotations

from benchmarks.load import mixed_paths
from benchmarks.loadgen import httpx_load


def test_mixed_load_at_64_connections_has_no_errors(live_server, dataset):
    paths = mixed_paths(dataset, n=800)
    load = httpx_load(live_server, paths, connections=64, max_requests=3000, max_seconds=8)
    assert load.requests >= 500
    assert load.errors == 0, load.statuses
    assert set(load.statuses) <= {200}
    print(f"{load.requests} requests in {load.seconds:.1f} s, p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms")
