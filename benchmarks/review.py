"""What location reports and their review cost the served dataset.

Run: ``python -m benchmarks.review [--size 100000] [--reps 5]``.

In one process, on a copy of the benchmark dataset (built once):

1. a pending report: the time to bring the served dataset up to date with the log (nothing to do);
2. an accepted decision applied in place (``apply_decisions``) against a full reload of the store in
   the same run (the baseline; a reload was what every decision and every report cost before);
3. 16 administrators accepting 16 cooperatives at once through the API: the slowest answer, and the
   process's resident memory before and at its peak.

Prints medians (min-max) and the ratio to the reload.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import ensure_dataset, md_table, mm, say


def rss_mb() -> int:
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) // 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)

    from fastapi.testclient import TestClient

    from coopgis.app import _reload, apply_decisions, create_app
    from coopgis.auth import TokenStore
    from coopgis.location_reports import new_decision, new_report
    from coopgis.settings import ServiceSettings

    store, _ = ensure_dataset(args.size)
    tmp = Path(tempfile.mkdtemp(prefix="coopgis-review-"))
    try:
        data = tmp / "data"
        shutil.copytree(store, data, symlinks=True)
        tokens = TokenStore(tmp / "tokens.json")
        officer, admin = tokens.add("o", "field_officer"), tokens.add("a", "admin")
        app = create_app(ServiceSettings(data=data, tokens_file=tmp / "tokens.json", reports_per_hour=10**6))
        app.state.dataset.warm()
        app.state.tile_engine.warm()
        coll = app.state.dataset.collections["cooperatives"]
        log = app.state.location_reports
        pending, applied, reloads = [], [], []
        for k in range(args.reps):
            reg = str(coll.frame["registration_no"].iat[1000 + k])
            here = {"lon": 51.0, "lat": 35.0, "precision": "city"}
            report = new_report(reg, "o", here, 51.4 + k / 1000, 35.7, 10, "r", None)
            log.append(report)
            t = time.perf_counter()
            apply_decisions(app)
            pending.append((time.perf_counter() - t) * 1000)
            log.append(new_decision(report, "accepted", "a", here, None))
            t = time.perf_counter()
            apply_decisions(app)
            applied.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            _reload(app)
            reloads.append((time.perf_counter() - t) * 1000)
        base = statistics.median(reloads)
        rows = [["a pending report", mm(pending, 2, " ms"), f"{base / max(statistics.median(pending), 1e-3):,.0f}x"],
                ["an accepted decision, in place", mm(applied, 0, " ms"), f"{base / statistics.median(applied):,.1f}x"],
                ["a full reload (baseline)", mm(reloads, 0, " ms"), "1.0x"]]
        say(f"# review on {len(coll):,} cooperatives, {args.reps} repetitions")
        say(md_table(["what the served dataset does", "median (min-max)", "faster than a reload"], rows))

        c = TestClient(app)
        regs = [str(v) for v in coll.frame["registration_no"].iloc[2000:2016]]
        rids = [c.post(f"/cooperatives/{r}/location-reports", headers={"Authorization": f"Bearer {officer}"},
                       json={"lon": 51.4, "lat": 35.7, "accuracy_m": 5, "reason": "x"}).json()["id"] for r in regs]
        etags = [c.get(f"/cooperatives/{r}").headers["etag"] for r in regs]
        before, peak, answers = rss_mb(), [rss_mb()], []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                peak.append(rss_mb())
                time.sleep(0.05)

        def accept(i):
            t = time.perf_counter()
            r = c.post(f"/location-reports/{rids[i]}/decision", json={"decision": "accepted"},
                       headers={"Authorization": f"Bearer {admin}", "If-Match": etags[i]})
            answers.append((time.perf_counter() - t, r.status_code))

        watcher = threading.Thread(target=watch)
        watcher.start()
        threads = [threading.Thread(target=accept, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        watcher.join()
        codes = sorted(code for _, code in answers)
        say(f"16 concurrent acceptances: answers {codes}, slowest {max(s for s, _ in answers):.2f} s, "
            f"resident memory {before:,} MB before, {max(peak):,} MB at the peak")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
