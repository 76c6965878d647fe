"""Section 3: our server-side cluster index and per-tile cluster query beside supercluster (npm, node).

Ours: :class:`coopgis.tiles.PointIndex` built on the located cooperatives (Morton
sort and the tile columns), and per tile ``PointIndex.span`` + :func:`coopgis.tiles.cluster`
(the grouping; no encoding), plus the whole uncached tile (cluster + MVT encoding) for
reference. Supercluster 8 (installed with ``npm install --prefix benchmarks/.cache/node``)
loads the same points from a JSON file in node and times ``index.load(points)`` and
``getTile(z, x, y)`` for the same tiles: all z5 tiles over Iran and a seeded sample
of z8 tiles. Supercluster runs with ``maxZoom: 11`` (our ``cluster_max_zoom``) and
``radius: 32`` (our cell is 32 px of a 256-px tile), once plain and once with
``map``/``reduce`` summing members and jobs (our clusters carry those sums and a
kind breakdown).
"""

from __future__ import annotations

import json
import shutil
import statistics
import time

from benchmarks.common import (
    CACHE,
    Config,
    Results,
    load_dataset,
    md_table,
    med,
    mm,
    occupied_tiles,
    percentile,
    run,
    say,
    tiles_in_bbox,
)

NODE_DIR = CACHE / "node"
SUPERCLUSTER = "supercluster@8"

JS = r"""
// written by benchmarks/clustering.py: time supercluster's load and getTile on the given points and tiles
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import Supercluster from 'supercluster';

const [pointsFile, tilesFile, repsArg] = process.argv.slice(2);
const reps = Number(repsArg || 5);
const points = JSON.parse(readFileSync(pointsFile, 'utf8'));
const tiles = JSON.parse(readFileSync(tilesFile, 'utf8'));
const base = { maxZoom: 11, radius: 32, extent: 512, minPoints: 2 };
const configs = {
  plain: base,
  sums: { ...base,
    map: (p) => ({ members: p.members, jobs: p.jobs }),
    reduce: (a, b) => { a.members += b.members; a.jobs += b.jobs; } },
};
const out = { n: points.length, version: JSON.parse(readFileSync(new URL('./node_modules/supercluster/package.json',
  import.meta.url), 'utf8')).version, configs: {} };
for (const [name, opts] of Object.entries(configs)) {
  const load = [];
  let index;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    index = new Supercluster(opts).load(points);
    load.push(performance.now() - t);
  }
  const perTile = {};
  const features = {};
  for (let r = 0; r < reps; r++) {
    for (const [z, x, y] of tiles) {
      const key = `${z}/${x}/${y}`;
      const t = performance.now();
      const tile = index.getTile(z, x, y);
      (perTile[key] ||= []).push(performance.now() - t);
      features[key] = tile ? tile.features.length : 0;
    }
  }
  out.configs[name] = { load_ms: load, tile_ms: perTile, features };
}
process.stdout.write(JSON.stringify(out));
"""


def ensure_supercluster(cfg: Config) -> str | None:
    """None when supercluster is installed under benchmarks/.cache/node, else why not."""
    pkg = NODE_DIR / "node_modules" / "supercluster" / "package.json"
    if pkg.is_file():
        return None
    if not shutil.which("node") or not shutil.which("npm"):
        return "node or npm is not installed"
    if not cfg.install:
        return "supercluster is not installed and installs are disabled (--no-install)"
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    r = run(["npm", "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", SUPERCLUSTER], timeout=600)
    if r.returncode != 0 or not pkg.is_file():
        return f"npm install {SUPERCLUSTER} failed: {(r.stderr or r.stdout)[-500:]}"
    return None


def run_section(cfg: Config, res: Results, store) -> None:
    import numpy as np

    from coopgis.tiles import POINT_LAYER, PointIndex, TileEngine, cluster_span

    ds = load_dataset(store)
    coll = ds.collections[POINT_LAYER]
    reps = 5 if not cfg.quick else 2
    tiles = tiles_in_bbox(5) + occupied_tiles(ds, 8, 100 if not cfg.quick else 10, cfg.seed)

    build = []
    for _ in range(reps):
        t = time.perf_counter()
        index = PointIndex(coll)
        build.append((time.perf_counter() - t) * 1000)
    ours: dict[str, list[float]] = {}
    whole: dict[str, list[float]] = {}
    ours_feats: dict[str, int] = {}
    for _ in range(reps):
        for z, x, y in tiles:
            key = f"{z}/{x}/{y}"
            t = time.perf_counter()
            lo, hi = index.span(z, x, y)
            c = cluster_span(index, lo, hi, z) if hi > lo else None   # the server's unfiltered path
            ours.setdefault(key, []).append((time.perf_counter() - t) * 1000)
            ours_feats[key] = len(c.count) if c is not None else 0
    eng = TileEngine(ds)
    eng._points = index
    for _ in range(reps):
        for z, x, y in tiles:
            t = time.perf_counter()
            eng._point_tile(z, x, y, "mvt", None)
            whole.setdefault(f"{z}/{x}/{y}", []).append((time.perf_counter() - t) * 1000)

    why = ensure_supercluster(cfg)
    sc = None
    if why is None:
        pts_file = NODE_DIR / f"points-{cfg.size}.json"
        ok = np.isfinite(coll.lon) & np.isfinite(coll.lat)
        frame = coll.frame
        members = frame["members"].fillna(0).astype(int).to_numpy()[ok]
        jobs = frame["jobs"].fillna(0).astype(int).to_numpy()[ok]
        feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [float(a), float(b)]},
                  "properties": {"members": int(m), "jobs": int(j)}}
                 for a, b, m, j in zip(coll.lon[ok], coll.lat[ok], members, jobs, strict=False)]
        pts_file.write_text(json.dumps(feats), encoding="utf-8")
        tiles_file = NODE_DIR / "tiles.json"
        tiles_file.write_text(json.dumps(tiles))
        script = NODE_DIR / "bench_supercluster.mjs"
        script.write_text(JS, encoding="utf-8")
        r = run(["node", str(script), str(pts_file), str(tiles_file), str(reps)], timeout=900)
        if r.returncode != 0:
            why = f"node failed: {r.stderr[-800:]}"
        else:
            sc = json.loads(r.stdout)
    say(f"{len(tiles)} tiles: {sum(1 for t in tiles if t[0] == 5)} at z5 (all over Iran), "
        f"{sum(1 for t in tiles if t[0] == 8)} at z8 (seeded sample of tiles holding cooperatives); "
        f"{reps} repetitions, per-tile medians")

    def per_tile(d: dict, zoom: int) -> list[float]:
        return [statistics.median(v) for k, v in d.items() if int(k.split("/")[0]) == zoom]

    rows = [["index build (100k points)" if cfg.size >= 100_000 else "index build",
             f"{mm(build, 1)} ms (ours: PointIndex)", "", ""]]
    fig = {"build_ms": build, "tile_ms": {}, "sc": None}
    if sc:
        for name in ("plain", "sums"):
            s = sc["configs"][name]
            rows.append([f"index build, supercluster {sc['version']} ({name})", f"{mm(s['load_ms'], 1)} ms",
                         f"{med(build) / med(s['load_ms']):.2f}", ""])
    for z in (5, 8):
        ot = per_tile(ours, z)
        wt = per_tile(whole, z)
        nf = [ours_feats[k] for k in ours if int(k.split('/')[0]) == z]
        rows.append([f"z{z} per tile, ours span+cluster ({len(ot)} tiles)",
                     f"p50 {percentile(ot, 50):.3f} ms, p99 {percentile(ot, 99):.3f}, max {max(ot):.3f}", "",
                     f"{statistics.median(nf):.0f}"])
        rows.append([f"z{z} per tile, ours whole uncached MVT tile", f"p50 {percentile(wt, 50):.3f} ms, p99 "
                     f"{percentile(wt, 99):.3f}, max {max(wt):.3f}", "", ""])
        fig["tile_ms"][z] = {"ours": percentile(ot, 50), "whole": percentile(wt, 50)}
        if sc:
            for name in ("plain", "sums"):
                s = sc["configs"][name]
                st = per_tile(s["tile_ms"], z)
                sf = [s["features"][k] for k in s["features"] if int(k.split('/')[0]) == z]
                rows.append([f"z{z} per tile, supercluster getTile ({name})",
                             f"p50 {percentile(st, 50):.3f} ms, p99 {percentile(st, 99):.3f}, max {max(st):.3f}",
                             f"{percentile(ot, 50) / percentile(st, 50):.2f}", f"{statistics.median(sf):.0f}"])
                fig["tile_ms"][z][name] = percentile(st, 50)
    res.table("clustering", f"\n### clustering: {int(np.isfinite(coll.lon).sum()):,} located points\n")
    res.table("clustering", md_table(["what", "time: median (min-max) / per-tile percentiles",
                                      "ratio ours/supercluster",
                                      "features per tile (median)"], rows))
    if sc is None:
        res.table("clustering", f"supercluster NOT MEASURED: {why}")
    else:
        fig["sc"] = {"version": sc["version"], "load_ms": {n: med(sc["configs"][n]["load_ms"])
                                                           for n in ("plain", "sums")}}
    res.figures["clustering"] = fig
