"""Field work: what the place-name tiles cost next to the cooperatives' tiles, and what a county pack costs.

Run: ``python -m benchmarks.fieldwork [--size 100000] [--reps 5] [--tiles 150]``.

In one process, on the benchmark dataset (the 100,000 synthetic sample, built once):

1. **places tiles vs cooperatives tiles**, per zoom: the server's work for one tile (``TileEngine.tile`` with
   the tile cache off, so every call is a cold tile), over the same tiles — up to ``--tiles`` tiles of each
   zoom that hold cooperatives — for both layers, ``--reps`` times; medians and the ratio
   places / cooperatives (target: at most 20 %). The HTTP handling around a tile is the same for both
   layers and is not counted. Also the once-per-process costs: deciding every label's zooms, and the label
   tile index.
2. **the pack of the county with the most cooperatives**: ``build_pack`` on the served (warmed) dataset,
   ``--reps`` times: median time and the zip's size (targets: under 3 s, under 5 MB); and ``coopgis pack``
   end to end in a new process (loading the dataset included), once, for what an operator waits.

Prints medians (min-max). The machine is shared: run it when it is quiet, and read the ratios more than the
absolute times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, ensure_dataset, md_table, mm, say

ZOOMS = (5, 6, 7, 9, 10, 12, 14)
PLACES_SHARE = 0.20
PACK_SECONDS = 3.0
PACK_BYTES = 5 * 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--tiles", type=int, default=150, help="tiles per zoom (those holding cooperatives)")
    args = ap.parse_args(argv)

    from coopgis.loading import load_dataset
    from coopgis.maps import MapSettings
    from coopgis.packs import build_pack
    from coopgis.placenames import build_labels
    from coopgis.settings import ServiceSettings
    from coopgis.tiles import PlaceLayer, TileEngine, lonlat_to_world

    store, _ = ensure_dataset(args.size)
    say(f"loading {store}")
    dataset = load_dataset(ServiceSettings(data=store))
    t = time.perf_counter()
    table = dataset.place_labels()
    labels_s = time.perf_counter() - t
    again = []
    for _ in range(max(1, args.reps // 2)):
        t = time.perf_counter()
        build_labels(dataset.boundaries)
        again.append(time.perf_counter() - t)
    engine = TileEngine(dataset, ServiceSettings().cluster_max_zoom, cache_size=0)
    engine.warm()
    t = time.perf_counter()
    PlaceLayer(table)
    index_s = time.perf_counter() - t

    coll = dataset.collections["cooperatives"]
    ok = np.flatnonzero(np.isfinite(coll.lon))
    rng = np.random.default_rng(1404)
    u, v = lonlat_to_world(coll.lon[ok], coll.lat[ok])
    worst = {}
    for sampling, text in (("occupied", "every tile that holds cooperatives is as likely (remote tiles of one "
                                        "or two cooperatives dominate)"),
                           ("where cooperatives are", "the tiles of randomly chosen cooperatives (where the "
                                                      "maps are looked at: dense tiles count more)")):
        rows, ratios = [], []
        for z in ZOOMS:
            n = 2 ** z
            cells = np.column_stack([np.floor(u * n), np.floor(v * n)]).astype(np.int64)
            if sampling == "occupied":
                cells = np.unique(cells, axis=0)
                cells = cells[rng.choice(len(cells), min(args.tiles, len(cells)), replace=False)]
            else:
                cells = np.unique(cells[rng.choice(len(cells), args.tiles, replace=False)], axis=0)
            tiles = [(z, int(x), int(y)) for x, y in cells]
            times, features = _time_tiles(engine, tiles, args.reps)
            ratio = [p / c for p, c in zip(times["places"], times["cooperatives"], strict=True)]
            rows.append([z, len(tiles), mm(times["cooperatives"], 4, " ms"), mm(times["places"], 4, " ms"),
                         f"{statistics.median(features['cooperatives']):.0f} / "
                         f"{statistics.median(features['places']):.0f}", mm([r * 100 for r in ratio], 1, " %")])
            ratios.append(statistics.median(ratio))
        say(f"\n### Places tiles against cooperatives tiles, tiles {sampling}: {text} (GeoJSON, cold: tile cache "
            "off)\n")
        say(md_table(["zoom", "tiles", "cooperatives tile (median per tile)", "places tile", "features (median)",
                      "places / cooperatives"], rows))
        worst[sampling] = max(zip(ratios, ZOOMS, strict=True))
    for sampling, (ratio, z) in worst.items():
        say(f"tiles {sampling}: the worst zoom is z{z}, where places cost {ratio * 100:.1f} % of a cooperatives "
            f"tile (target at most {PLACES_SHARE * 100:.0f} %): {'met' if ratio <= PLACES_SHARE else 'MISSED'}")
    say(f"once per process: every label's zooms decided in {labels_s:.2f} s (again: {mm(again, 2, ' s')}), "
        f"the label tile index in {index_s:.2f} s; {len(table):,} labels")

    county = int(dataset.cooperatives["county_osm"].value_counts().index[0])
    name = dataset.collections["counties"].frame.set_index("osm_relation_id").loc[county, "name_fa"]
    settings = MapSettings()
    first = time.perf_counter()
    pack = build_pack(dataset, county, settings)
    first_s = time.perf_counter() - first
    builds = []
    for _ in range(args.reps):
        t = time.perf_counter()
        again_pack = build_pack(dataset, county, settings)
        builds.append(time.perf_counter() - t)
        assert again_pack.data == pack.data, "the same data gave different bytes"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pack.zip"
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "coopgis.cli", "pack", "--county", str(county), "--out",
                               str(out), "--data", str(store)], cwd=ROOT, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
        cli_s = time.perf_counter() - t
        same = done.returncode == 0 and out.read_bytes() == pack.data
    say(f"\n### The pack of the county with the most cooperatives: {name} ({county}), {pack.cooperatives:,} "
        f"cooperatives, {pack.villages:,} villages\n")
    say(md_table(["what", "measured", "target"], [
        [f"build_pack on the served dataset (median of {args.reps})", mm(builds, 2, " s"),
         f"< {PACK_SECONDS:g} s: {'met' if statistics.median(builds) < PACK_SECONDS else 'MISSED'}"],
        ["first build_pack (field guide, labels, features made)", f"{first_s:.2f} s", ""],
        ["zip size", f"{len(pack.data) / 1024 / 1024:.2f} MB ({len(pack.data):,} bytes)",
         f"< 5 MB: {'met' if len(pack.data) < PACK_BYTES else 'MISSED'}"],
        ["`coopgis pack` in a new process (loading included)", f"{cli_s:.1f} s",
         "same bytes" if same else "DIFFERENT bytes or failed: " + done.stderr[-300:]],
    ]))
    return 0


def _time_tiles(engine, tiles, reps: int) -> tuple[dict, dict]:
    """Per layer: the median time of a tile in each of ``reps`` passes (ms), and the features of each tile."""
    times: dict[str, list[float]] = {"cooperatives": [], "places": []}
    features: dict[str, list[int]] = {"cooperatives": [], "places": []}
    for _ in range(reps):
        for layer in ("cooperatives", "places"):      # alternated, so load changes hit both alike
            per = []
            for tz, tx, ty in tiles:
                t = time.perf_counter()
                tile = engine.tile(layer, tz, tx, ty, "geojson")
                per.append(time.perf_counter() - t)
                features[layer].append(tile.features)
            times[layer].append(statistics.median(per) * 1e3)
    return times, features


if __name__ == "__main__":
    sys.exit(main())
