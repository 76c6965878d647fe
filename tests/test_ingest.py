"""Registry file -> stored dataset, as `coopgis ingest` users rely on it."""

import json
import subprocess
import sys

import geopandas as gpd
import pandas as pd
import pytest

from coopgis.ingest import SENSITIVE_COLUMNS, ingest
from coopgis.sample import generate_sample, write_sample
from coopgis.store import FileStore, StoreError


@pytest.fixture(scope="module")
def sample_csv(tmp_path_factory, boundaries):
    path = tmp_path_factory.mktemp("sample") / "registry.csv"
    write_sample(generate_sample(1500, seed=7, boundaries=boundaries), path)
    return path


@pytest.fixture(scope="module")
def ingested(sample_csv, tmp_path_factory, boundaries, geocoder):
    store = FileStore(tmp_path_factory.mktemp("data"))
    return store, ingest(sample_csv, store, boundaries, geocoder)


def test_every_row_is_accounted_for(ingested):
    store, result = ingested
    r = result.report
    assert r["rows"] == 1500
    assert r["accepted"] + r["quarantined"] == r["rows"]
    assert r["quarantined"] == len(r["quarantine"]) == sum(r["by_reason"].values()) > 0
    assert sum(r["by_precision"].values()) == r["accepted"]
    assert all(q["reasons"] for q in r["quarantine"])


def test_stored_dataset_reads_back_with_joins(ingested):
    store, result = ingested
    ds = store.read()
    assert len(ds) == result.report["accepted"]
    assert ds.crs.to_epsg() == 4326
    located = ds[ds.geometry.notna()]
    assert located["province"].notna().all()
    assert located["county"].notna().mean() > 0.99
    assert set(ds["deprivation_class"].dropna()) <= {"less_developed_2019", "deprived_2009", "not_listed",
                                                     "no_data"}
    assert ds["registration_no"].is_unique
    # Border-dwellers' cooperatives get the quota of their area where it is known.
    bd = ds[(ds["kind"] == "border_dwellers") & ds["deprived"].notna()]
    assert set(bd["border_quota_usd"].dropna()) <= {300, 600}
    assert ds.loc[ds["kind"] != "border_dwellers", "border_quota_usd"].isna().all()


def test_phone_is_kept_but_marked_sensitive(ingested):
    store, _ = ingested
    assert "phone" in SENSITIVE_COLUMNS
    assert store.read()["phone"].notna().any()


def test_given_coordinates_are_checked_not_silently_used(ingested):
    _, result = ingested
    ds = result.dataset
    swapped = ds[ds["geocode_issues"].fillna("").str.contains("coord_swapped")]
    assert len(swapped) and (swapped["precision"] != "exact").all()
    exact = ds[ds["precision"] == "exact"]
    assert len(exact) and exact["geocode_issues"].fillna("").str.contains("coord_").sum() == 0


def test_a_failed_write_leaves_the_previous_dataset(ingested, tmp_path, monkeypatch):
    store, result = ingested
    target = FileStore(tmp_path)
    target.write(result.dataset, result.report)
    before = target.path.read_bytes()

    def crash(self, path, **kwargs):
        with open(path, "wb") as f:
            f.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(gpd.GeoDataFrame, "to_parquet", crash)
    with pytest.raises(OSError):
        target.write(result.dataset.head(3), {"rows": 3})
    assert target.path.read_bytes() == before
    assert len(target.read()) == len(result.dataset)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_damaged_store_file_gives_a_clear_error(tmp_path):
    (tmp_path / "cooperatives.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(StoreError, match="cooperatives.parquet"):
        FileStore(tmp_path).read()


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "coopgis.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_cli_ingest_writes_report(sample_csv, tmp_path):
    out = _cli("ingest", str(sample_csv), "--data", str(tmp_path / "d"), "--report", str(tmp_path / "r.json"),
               "--no-progress")
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    for k in ("rows", "accepted", "quarantined", "by_reason", "by_precision"):
        assert k in report
    assert "accepted" in out.stdout and "quarantined" in out.stdout
    assert (tmp_path / "d" / "cooperatives.parquet").is_file()


def test_cli_ingest_unreadable_file_exits_non_zero(tmp_path):
    bad = tmp_path / "empty.csv"
    bad.write_bytes(b"")
    out = _cli("ingest", str(bad), "--data", str(tmp_path / "d"), "--no-progress")
    assert out.returncode != 0 and "empty" in out.stderr.lower()
    assert not (tmp_path / "d" / "cooperatives.parquet").exists()


def test_cli_geocode_prints_json():
    out = _cli("geocode", "استان مرکزی، شهرستان آشتیان")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert (r["precision"], r["province"], r["county"]) == ("county", "IR-00", "آشتیان")
    assert {"lon", "lat", "confidence"} <= set(r)


def test_cli_batch_geocode_contract(tmp_path):
    src = tmp_path / "in.csv"
    pd.DataFrame({"id": [1, 2, 3], "address": ["مرکزی، آشتیان", "Zahedan", "نشانی بی معنی"],
                  "note": ["a", "b", "c"]}).to_csv(src, index=False)
    dst = tmp_path / "out.csv"
    out = _cli("geocode", "--batch", str(src), "--out", str(dst))
    assert out.returncode == 0, out.stderr
    got = pd.read_csv(dst, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(got.columns[:3]) == ["id", "address", "note"]
    assert {"lon", "lat", "precision", "confidence", "province", "county"} <= set(got.columns)
    assert list(got["province"]) == ["IR-00", "IR-11", ""]
    assert got["county"][0] == "آشتیان"
    assert list(got["precision"]) == ["county", "county", "none"]


def test_cli_batch_without_address_column(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,addr\n1,x\n")
    out = _cli("geocode", "--batch", str(src), "--out", str(tmp_path / "o.csv"))
    assert out.returncode != 0 and "address" in out.stderr
