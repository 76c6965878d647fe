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


# ---- an ingest never silently replaces the data --------------------------------------------------------

@pytest.fixture
def live_store(tmp_path, sample_csv, boundaries, geocoder):
    """A store holding the 1,500-row sample (its own copy), and that sample's lines."""
    store = FileStore(tmp_path / "data")
    ingest(sample_csv, store, boundaries, geocoder)
    return store, sample_csv.read_text(encoding="utf-8").splitlines(keepends=True)


def _write(path, lines):
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_an_unclosed_quote_is_quarantined_by_line_and_swallows_nothing(live_store, tmp_path, boundaries, geocoder):
    store, lines = live_store
    before = len(store.read())
    broken = list(lines)
    broken[5] = broken[5].replace(",", ',"', 1)           # one stray quote on line 6 of 1,501
    r = ingest(_write(tmp_path / "quote.csv", broken), store, boundaries, geocoder)
    rep = r.report
    assert rep["rows"] == 1500 and rep["accepted"] + rep["quarantined"] == 1500
    bad = [q for q in rep["quarantine"] if "unclosed quote" in q["detail"].get("malformed_row", "")]
    assert [q["line"] for q in bad] == [6]
    assert r.replaced and len(store.read()) >= before - 1


@pytest.mark.parametrize("name, make", [
    ("duplicates", lambda lines: [lines[0]] + [lines[1]] * (len(lines) - 1)),
    ("header only", lambda lines: [lines[0]]),
    ("only commas", lambda lines: [lines[0]] + ["," * 30 + "\n"] * 50),
    ("over-long rows", lambda lines: [lines[0]] + [ln.rstrip("\n") + ",x,y\n" for ln in lines[1:]]),
])
def test_a_file_that_would_empty_or_gut_the_dataset_does_not_replace_it(live_store, tmp_path, boundaries,
                                                                        geocoder, name, make):
    store, lines = live_store
    before = store.path.read_bytes(), store.read_report()
    r = ingest(_write(tmp_path / "bad.csv", make(lines)), store, boundaries, geocoder)
    assert not r.replaced and r.report["refused"]
    assert (store.path.read_bytes(), store.read_report()) == before   # the data served is unchanged
    last = json.loads((store.folder / "last-ingest.json").read_text(encoding="utf-8"))
    assert last["replaced"] is False and last["rows"] == r.report["rows"]
    assert len(last["quarantine"]) == last["quarantined"] == last["rows"] - last["accepted"]
    assert (store.folder / "last-ingest.json").stat().st_mode & 0o777 == 0o600


def test_a_big_drop_needs_allow_shrink(live_store, tmp_path, boundaries, geocoder):
    store, lines = live_store
    small = _write(tmp_path / "small.csv", lines[:301])
    r = ingest(small, store, boundaries, geocoder, max_shrink=0.2)
    assert not r.replaced and "--allow-shrink" in r.report["refused"][0] and "fewer" in r.report["refused"][0]
    r = ingest(small, store, boundaries, geocoder, max_shrink=0.2, allow_shrink=True)
    assert r.replaced and len(store.read()) == r.report["accepted"] <= 300


def test_cli_exit_status_says_whether_the_dataset_was_replaced(live_store, tmp_path):
    store, lines = live_store
    dupes = _write(tmp_path / "dupes.csv", [lines[0]] + [lines[1]] * 200)
    out = _cli("ingest", str(dupes), "--data", str(store.folder), "--report", str(tmp_path / "r.json"),
               "--no-progress")
    assert out.returncode == 3
    assert "NOT replaced" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["replaced"] is False and report["accepted"] == 1
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o600


def test_cli_refuses_a_huge_file_at_once_with_its_size(tmp_path):
    import time

    big = tmp_path / "huge.csv"
    with open(big, "wb") as f:
        f.truncate(2 * 1024 ** 3)   # sparse: 2 GB that take no disk
    started = time.perf_counter()
    out = _cli("ingest", str(big), "--data", str(tmp_path / "d"), "--no-progress")
    assert out.returncode == 1 and "2.0 GB" in out.stderr and "COOPGIS_INGEST_MAX_BYTES" in out.stderr
    assert time.perf_counter() - started < 10      # the CLI's own start-up included; no boundaries loaded
    assert not (tmp_path / "d" / "cooperatives.parquet").exists()


def test_dataset_and_report_switch_together_even_if_the_write_dies(live_store, tmp_path, boundaries, geocoder,
                                                                   monkeypatch):
    import coopgis.store as store_mod

    store, lines = live_store
    frame, report = store.read_with_ingest_report()
    assert report["accepted"] == len(frame)
    fewer = _write(tmp_path / "fewer.csv", lines[:1300])

    def die(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_mod, "write_private", die)   # the report of the new version cannot be written
    with pytest.raises(OSError):
        ingest(fewer, store, boundaries, geocoder)
    frame, report = store.read_with_ingest_report()
    assert report["accepted"] == len(frame) == 1500 - len(report["quarantine"])
    assert [p.name for p in (store.folder / "versions").iterdir() if p.name.endswith(".tmp")] == []


def test_leftovers_of_a_crashed_write_are_removed_by_the_next(live_store, tmp_path, boundaries, geocoder):
    store, lines = live_store
    junk = [store.folder / "versions" / "20990101T000000-dead.tmp", store.folder / ".cooperatives.parquet-x.tmp",
            store.folder / "current.tmp-1234"]
    junk[0].mkdir()
    (junk[0] / "cooperatives.parquet").write_bytes(b"half")
    junk[1].write_bytes(b"half")
    junk[2].symlink_to("versions/nowhere")
    assert ingest(_write(tmp_path / "same.csv", lines), store, boundaries, geocoder).replaced
    assert not any(p.exists() or p.is_symlink() for p in junk)
    assert len(list((store.folder / "versions").iterdir())) <= 3


def test_stored_files_are_private(live_store):
    store, _ = live_store
    for path in (store.path, store.folder / "report.json", store.folder / "last-ingest.json"):
        assert path.resolve().stat().st_mode & 0o777 == 0o600, path
    assert store.version_folder().stat().st_mode & 0o777 == 0o700


def test_serve_removes_what_a_crashed_ingest_left(live_store):
    store, _ = live_store
    junk = store.folder / "versions" / "20990101T000000-dead.tmp"
    junk.mkdir()
    (junk / "cooperatives.parquet").write_bytes(b"half")
    assert store.tidy() == [junk] and not junk.exists()
    assert len(store.read()) > 0
