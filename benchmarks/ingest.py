"""Ingest benchmark: sample -> read -> geocode -> join -> store for N rows, with geocoder accuracy.

Run: ``python -m benchmarks.ingest [--size 100000] [--runs 3]``. Prints medians (min-max) of
each phase, rows per second, peak memory, the accuracy of the geocoder against the
sample's hidden truth, and the join's speed against geopandas.sjoin measured in the same run.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from coopgis.boundaries import load_boundaries
from coopgis.geocode import Geocoder
from coopgis.ingest import ingest
from coopgis.joins import join_boundaries
from coopgis.sample import generate_sample, write_sample
from coopgis.store import FileStore
from coopgis.text import to_ascii_digits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    b, g, t_load, t_index = location_layer()
    t = time.perf_counter()
    sample = generate_sample(args.size, boundaries=b)
    t_sample = time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "sample.csv"
        write_sample(sample, csv)
        runs = []
        for _ in range(args.runs):
            t = time.perf_counter()
            result = ingest(csv, FileStore(Path(tmp) / "data"), b, g)
            runs.append((time.perf_counter() - t, result.report["timing_s"]))
        dataset = result.dataset

    total = [r[0] for r in runs]
    print(f"# ingest benchmark: {args.size:,} synthetic rows, {args.runs} runs, medians (min-max)")
    print(f"boundaries load (cached) {t_load:.2f} s; geocoder index {t_index:.2f} s; sample generation "
          f"{t_sample:.2f} s")
    for phase in ("read", "geocode_join", "write"):
        _line(phase, [r[1][phase] for r in runs], "s")
    _line("total ingest", total, "s")
    print(f"rows per second (median): {args.size / statistics.median(total):,.0f}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"report: rows {result.report['rows']:,}, accepted {result.report['accepted']:,}, "
          f"quarantined {result.report['quarantined']:,}")
    print("precision:", result.report["by_precision"])
    shares = dataset["precision"].value_counts(normalize=True)
    print("precision shares: " + ", ".join(f"{k} {v:.1%}" for k, v in shares.items()))
    if "uncertainty_m" in dataset.columns:
        unc = dataset.groupby("precision")["uncertainty_m"].median()
        print("median uncertainty_m by precision: " + ", ".join(f"{k} {v:,.0f}" for k, v in unc.items()))

    _accuracy(sample, dataset)
    _join_baseline(dataset, b)


def location_layer():
    """The boundaries and the geocoder, with the seconds their loading and indexing took."""
    t = time.perf_counter()
    b = load_boundaries()
    t_load = time.perf_counter() - t
    t = time.perf_counter()
    g = Geocoder(b)
    return b, g, t_load, time.perf_counter() - t


def _accuracy(sample: pd.DataFrame, dataset: gpd.GeoDataFrame) -> None:
    truth = sample[sample["truth_bad_reason"].fillna("") == ""]
    truth = truth.assign(registration_no=truth["registration_no"].map(to_ascii_digits)).set_index("registration_no")
    got = pd.DataFrame({"registration_no": dataset["registration_no"], "place_code": dataset["place_code"],
                        "province_got": dataset["province"], "precision": dataset["precision"],
                        "x": dataset.geometry.x, "y": dataset.geometry.y}).set_index("registration_no")
    both = truth.join(got, how="inner")
    n = len(both)
    place_ok = (both["place_code"].astype(str) == both["truth_place_code"].astype(str))
    prov_ok = both["province_got"] == both["truth_province_iso"]
    fine = both["precision"].isin(["village", "city"])
    print(f"# geocoder against the sample's truth ({n:,} good rows)")
    print(f"place found (official code equal): {place_ok.mean():.1%}")
    print(f"province right: {prov_ok.mean():.1%}")
    print(f"village/city precision claimed: {fine.mean():.1%}; of those, the right place: "
          f"{place_ok[fine].mean():.1%}  (precision honesty)")
    in_village = both["truth_level"] == "village"
    mix = both.loc[in_village, "precision"].value_counts(normalize=True)
    print(f"rows in a village ({in_village.sum():,}): " + ", ".join(f"{k} {v:.1%}" for k, v in mix.items()))
    has_truth_pt = both["truth_lon"].astype(str).str.len() > 0
    sub = both[has_truth_pt & both["x"].notna()]
    if len(sub):
        d = _km(sub["x"].to_numpy(), sub["y"].to_numpy(),
                pd.to_numeric(sub["truth_lon"]).to_numpy(), pd.to_numeric(sub["truth_lat"]).to_numpy())
        print(f"distance to the true point (places with one): median {np.median(d):.2f} km, "
              f"90th pct {np.percentile(d, 90):.1f} km")


def _join_baseline(dataset: gpd.GeoDataFrame, b) -> None:
    pts = dataset[dataset.geometry.notna()]
    lon, lat = pts.geometry.x.to_numpy(), pts.geometry.y.to_numpy()
    ours, base = [], []
    for _ in range(3):
        t = time.perf_counter()
        join_boundaries(lon, lat, b)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        gpd.sjoin(pts[["geometry"]], b.counties[["osm_relation_id", "geometry"]], how="left",
                  predicate="intersects")
        gpd.sjoin(pts[["geometry"]], b.provinces[["iso_3166_2", "geometry"]], how="left", predicate="intersects")
        base.append(time.perf_counter() - t)
    print(f"# joins of {len(pts):,} points (county + province)")
    _line("join_boundaries (STRtree)", ours, "s")
    _line("baseline geopandas.sjoin x2", base, "s")
    print(f"ratio ours/baseline: {statistics.median(ours) / statistics.median(base):.2f}")


def _line(label: str, values: list[float], unit: str) -> None:
    print(f"{label:<30} {statistics.median(values):8.2f} {unit} ({min(values):.2f}-{max(values):.2f})")


def _km(lon1, lat1, lon2, lat2):
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 6371.0 * 2 * np.arcsin(np.sqrt(a))


if __name__ == "__main__":
    main()
