"""CQL2 filters against the same filters given as query parameters, over every cooperative.

    python -m benchmarks.cql2 [--size 100000] [--repeat 15] [--qgis]

Builds (or reuses, in benchmarks/.cache) a synthetic store of ``--size`` cooperatives, then
times, in the same run and on the same dataset, the selection of each filter written both
ways (the core's mask: ``CooperativeFilter.mask`` against ``Cql2Filter.mask`` including the
parse), and the same pairs as whole HTTP requests (``numberMatched`` with ``limit=1``) through
the app. Prints medians and the ratio CQL2 / query parameters (target: at most 2).
``--qgis`` also times QGIS 3.22 (Debian's /usr/bin/python3) loading every cooperative through
a default OAPIF connection against a live server.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

PAIRS = [
    ("kind=production", "kind = 'production'"),
    ("kind=production,services&province=IR-07", "kind IN ('production','services') AND province = 'IR-07'"),
    ("deprived=true&border=true", "deprived = true AND border = true"),
    ("registered_year=1395..1400", "registered_year BETWEEN 1395 AND 1400"),
    ("status=troubled&precision=village,city&women_led=true",
     "status = 'troubled' AND precision IN ('village','city') AND women_led = true"),
    ("bbox=51,35,53,37&kind=rural", "S_INTERSECTS(geometry, BBOX(51,35,53,37)) AND kind = 'rural'"),
]
CACHE = Path(__file__).resolve().parent / ".cache"


def store_of(size: int):
    from coopgis.boundaries import load_boundaries
    from coopgis.geocode import Geocoder
    from coopgis.ingest import ingest
    from coopgis.sample import generate_sample, write_sample
    from coopgis.store import FileStore

    folder = CACHE / f"sample-{size}"
    store = FileStore(folder / "data")
    if not (folder / "data" / "current").exists():
        folder.mkdir(parents=True, exist_ok=True)
        b = load_boundaries()
        write_sample(generate_sample(size, seed=1404, boundaries=b), folder / "sample.csv")
        ingest(folder / "sample.csv", store, b, Geocoder(b))
    return store


def paired_ms(a, b, repeat: int) -> tuple[float, float]:
    """Medians (ms) of ``a`` and ``b`` run in turn (a, b, a, b ...), so a busy moment of the shared
    machine falls on both."""
    a(), b()  # warm (typed column arrays are made once per dataset)
    ta, tb = [], []
    for _ in range(repeat):
        for fn, out in ((a, ta), (b, tb)):
            t = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t) * 1000)
    return statistics.median(ta), statistics.median(tb)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=41)
    ap.add_argument("--qgis", action="store_true")
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from coopgis.app import create_app
    from coopgis.boundaries import load_boundaries
    from coopgis.cql2 import parse_cql2
    from coopgis.dataset import Dataset
    from coopgis.filters import parse_bbox, parse_filter, select
    from coopgis.settings import ServiceSettings

    store = store_of(args.size)
    ds = Dataset(store.read(), load_boundaries(), store.read_report())
    coll = ds.collections["cooperatives"]
    client = TestClient(create_app(ServiceSettings(data=store.folder, rate_read_per_minute=1e9, rate_burst=10**9),
                                   ds))
    print(f"{len(coll):,} cooperatives; median of {args.repeat} runs each, the two ways in turn, ms")
    print(f"{'filter':62} {'params':>8} {'cql2':>8} {'ratio':>6} | {'http p':>7} {'http c':>7} {'ratio':>6}")
    ratios, http_ratios = [], []
    for params, cql in PAIRS:
        values = dict(p.split("=", 1) for p in params.split("&"))
        bbox = values.pop("bbox", None)

        def by_params(values=values, bbox=bbox):
            return select(coll, parse_filter(ds, values), parse_bbox(bbox))

        def by_cql2(cql=cql):
            return parse_cql2(cql, None, coll).mask(coll).nonzero()[0]

        assert len(by_params()) == len(by_cql2()), (params, cql)
        a, b = paired_ms(by_params, by_cql2, args.repeat)
        url = "/collections/cooperatives/items?limit=1&"
        ha, hb = paired_ms(lambda params=params: client.get(url + params),
                           lambda cql=cql: client.get(url + "filter=" + quote(cql)), args.repeat)
        ratios.append(b / a)
        http_ratios.append(hb / ha)
        print(f"{cql[:62]:62} {a:8.2f} {b:8.2f} {b / a:6.2f} | {ha:7.1f} {hb:7.1f} {hb / ha:6.2f}")
    print(f"worst ratio: selection {max(ratios):.2f}, whole request {max(http_ratios):.2f} (target <= 2)")
    if args.qgis:
        qgis(store)


def qgis(store) -> None:
    """QGIS 3.22 loading every cooperative through a default OAPIF connection to a live server."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "coopgis.cli", "serve", "--data", str(store.folder), "--port",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(15)
        script = ("import os,time\nos.environ['QT_QPA_PLATFORM']='offscreen'\n"
                  "from qgis.core import QgsApplication, QgsVectorLayer\n"
                  "app=QgsApplication([],False);app.initQgis();t=time.time()\n"
                  f"l=QgsVectorLayer(\"url='http://127.0.0.1:{port}' typename='cooperatives'\",'c','OAPIF')\n"
                  "n=sum(1 for _ in l.getFeatures());print(n, round(time.time()-t,1))\n")
        out = subprocess.run(["/usr/bin/python3", "-c", script], capture_output=True, text=True, timeout=600)
        n, seconds = out.stdout.split()[-2:]
        print(f"QGIS 3.22 default OAPIF connection: {int(n):,} cooperatives in {seconds} s")
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
