"""The served features written once and read by every worker (issue 16: memory shared between workers, and
not held by any): what a planner or GIS user gets is the same bytes, never a stale copy of other rows."""

from __future__ import annotations

import mmap
import os

import numpy as np
import orjson
import pytest

import coopgis.dataset as dataset_module
import coopgis.search as search_module
from coopgis.dataset import Dataset
from coopgis.packed import READ_GAP, Packed


@pytest.fixture()
def small_files(monkeypatch):
    monkeypatch.setattr(dataset_module, "FEATURE_FILE_MIN_ROWS", 0)   # the test registry has 1,500 rows


def _served(store, boundaries, geocoder, folder, frame=None) -> Dataset:
    return Dataset(store.read() if frame is None else frame, boundaries, store.read_report(), geocoder,
                   feature_files=folder)


def test_packed_file_round_trip_and_damaged_files(tmp_path):
    items = [b'{"a":1}', b"", "«تعاونی»".encode(), b"x" * 5000, b"y" * (3 * READ_GAP), b"z"]
    Packed(items).save(tmp_path / "p.packed")
    mapped, opened = Packed.mapped(tmp_path / "p.packed"), Packed.opened(tmp_path / "p.packed")
    assert mapped is not None and isinstance(mapped._buf, mmap.mmap)
    assert opened is not None and opened._file is not None
    rows = np.array([3, 0, 2, 2, 1, 5, 3, 4, 0])     # any order, repeats, items near and far apart
    for back in (mapped, opened):
        assert list(back) == items
        assert back.items(rows) == [items[i] for i in rows]
        assert back.items(np.array([], dtype=int)) == []
        assert bytes(back.view(2)) == items[2] and back.find(2, "تعاونی".encode()) == 2
    assert oct(os.stat(tmp_path / "p.packed").st_mode & 0o777) == "0o600"   # the features hold clerks' text
    whole = (tmp_path / "p.packed").read_bytes()
    for name, damaged in (("short", whole[:-3]), ("magic", b"X" + whole[1:]), ("empty", b""), ("head", whole[:10])):
        (tmp_path / name).write_bytes(damaged)
        assert Packed.mapped(tmp_path / name) is None, name
        assert Packed.opened(tmp_path / name) is None, name
    assert Packed.mapped(tmp_path / "missing") is None and Packed.opened(tmp_path / "missing") is None
    os.truncate(tmp_path / "p.packed", len(whole) - 100)   # cut short under an opened reader: said, never half
    with pytest.raises(OSError, match="cut short"):
        opened.items(rows)


def _mapped_kib(path) -> int:
    """How much of ``path`` this process maps, in KiB (/proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            if "-" in line.split(" ", 1)[0] and len(line.split()) >= 5 and ":" not in line.split()[0]:
                inside = line.rstrip().endswith(str(path))
            elif inside and line.startswith("Size:"):
                total += int(line.split()[1])
    return total


def test_served_features_are_read_not_mapped_whole(small_files, sample_store, boundaries, geocoder, tmp_path):
    """A page of features read from the file leaves no pages of it in the worker: only its offsets are mapped
    (a mapped file's pages, once touched, counted in every worker under load: +88 MB at 100,000)."""
    served = _served(sample_store, boundaries, geocoder, tmp_path)
    coll = served.collections["cooperatives"]
    plain = Dataset(sample_store.read(), boundaries, sample_store.read_report(), geocoder).collections["cooperatives"]
    every = np.arange(len(coll))
    assert coll.features(every) == plain.features(every)
    (props,) = tmp_path.glob("*-public-props.packed")
    offsets_kib = -(-(len(Packed.MAGIC) + 8 + 8 * (len(coll) + 1)) // 4096) * 4
    assert props.stat().st_size > 8 * offsets_kib * 1024
    assert 0 < _mapped_kib(props) <= offsets_kib


def test_second_worker_maps_the_same_features(small_files, sample_store, boundaries, geocoder, tmp_path):
    plain = Dataset(sample_store.read(), boundaries, sample_store.read_report(), geocoder)   # in memory only
    first = _served(sample_store, boundaries, geocoder, tmp_path)
    second = _served(sample_store, boundaries, geocoder, tmp_path)
    a, b, c = (d.collections["cooperatives"] for d in (plain, first, second))
    b.parts()       # the first worker serialises and writes
    written = sorted(p.name for p in tmp_path.glob("*.packed"))
    assert len(written) == 3
    assert all(part._file is not None for part in c.parts())   # read from the files, not serialised again
    assert sorted(p.name for p in tmp_path.glob("*.packed")) == written   # nothing new written
    for i in (0, 1, len(a) // 2, len(a) - 1):
        assert a.feature(i) == b.feature(i) == c.feature(i)
    rows = np.array([len(a) - 1, 0, 5, 4, len(a) // 2])
    assert a.features(rows) == c.features(rows)
    # the staff level has its own files, with the staff columns
    staff = orjson.loads(c.feature(0, level="staff"))
    assert "source_row" in staff["properties"] and "source_row" not in orjson.loads(c.feature(0))["properties"]
    assert len(list(tmp_path.glob("*.packed"))) == 6
    for path in written:   # a newer set of files pruned these: a worker mapping them still reads them whole
        (tmp_path / path).unlink()
    assert c.feature(len(a) - 2) == a.feature(len(a) - 2)


def test_changed_rows_never_get_old_features(small_files, sample_store, boundaries, geocoder, tmp_path):
    first = _served(sample_store, boundaries, geocoder, tmp_path)
    before = orjson.loads(first.collections["cooperatives"].feature(7))
    frame = sample_store.read()
    frame.loc[7, "name"] = "تعاونی تازه‌نام"
    frame.loc[7, "geometry"] = frame.geometry.iloc[7].__class__(55.5, 30.5)
    changed = _served(sample_store, boundaries, geocoder, tmp_path, frame=frame)
    after = orjson.loads(changed.collections["cooperatives"].feature(7))
    assert before["properties"]["name"] != after["properties"]["name"] == "تعاونی تازه‌نام"
    assert after["geometry"]["coordinates"] == [55.5, 30.5]
    assert len(list(tmp_path.glob("*.packed"))) == 6     # a second set of files, the first left for its readers


def test_a_file_in_the_way_is_not_fatal(small_files, sample_store, boundaries, geocoder, tmp_path):
    blocker = tmp_path / "features"
    blocker.write_text("not a folder")       # the cache path can't be written: features stay in memory
    served = _served(sample_store, boundaries, geocoder, blocker)
    coll = served.collections["cooperatives"]
    assert orjson.loads(coll.feature(3))["type"] == "Feature"
    assert coll.parts()[2]._file is None


# ---- the search index, kept the same way ----------------------------------------------------------------

@pytest.fixture()
def small_index(monkeypatch):
    monkeypatch.setattr(search_module, "INDEX_MIN_ROWS", 0)


def _found(ds: Dataset, text: str) -> list[tuple[int, str, float]]:
    coll = ds.collections["cooperatives"]
    return search_module.search_rows(ds.search_index(), coll.row_of, text, 20)


def test_second_worker_maps_the_search_index_and_finds_the_same(small_index, sample_store, boundaries, geocoder,
                                                                tmp_path, monkeypatch):
    plain = Dataset(sample_store.read(), boundaries, sample_store.read_report(), geocoder)   # built in memory
    plain.search_index()
    first = _served(sample_store, boundaries, geocoder, tmp_path)
    first.search_index()
    kept = list(tmp_path.glob("search-*.index"))
    assert len(kept) == 1 and oct(os.stat(kept[0]).st_mode & 0o777) == "0o600"
    monkeypatch.setattr(search_module, "build_search_index", lambda *a: pytest.fail("built again, not mapped"))
    second = _served(sample_store, boundaries, geocoder, tmp_path)
    frame = sample_store.read()
    queries = [frame["name"].iloc[3], frame["name"].iloc[3][:6], frame["registration_no"].iloc[9],
               frame["place"].dropna().iloc[0], frame["county"].dropna().iloc[0], "تعاونى", "tehran", "Isfahan",
               frame["address"].iloc[5][:12]]
    for text in queries:
        assert _found(second, text) == _found(plain, text), text
    assert _found(second, frame["name"].iloc[3])                     # and it finds something
    assert not second.search_index().name.starts.flags.owndata       # the file's pages, not a copy


def test_renamed_cooperative_is_found_by_its_new_name_never_from_an_old_index(small_index, sample_store,
                                                                              boundaries, geocoder, tmp_path):
    _served(sample_store, boundaries, geocoder, tmp_path).search_index()
    frame = sample_store.read()
    frame.loc[7, "name"] = "تعاونی زعفران‌کاران نوبنیاد"
    changed = _served(sample_store, boundaries, geocoder, tmp_path, frame=frame)
    hits = _found(changed, "زعفران کاران نوبنیاد")
    assert hits and hits[0][0] == 7
    assert len(list(tmp_path.glob("search-*.index"))) == 2       # its own file; the first left for its readers


def test_damaged_or_unwritable_index_file_is_made_again(small_index, sample_store, boundaries, geocoder, tmp_path):
    plain = Dataset(sample_store.read(), boundaries, sample_store.read_report(), geocoder)
    _served(sample_store, boundaries, geocoder, tmp_path).search_index()
    (kept,) = tmp_path.glob("search-*.index")
    kept.write_bytes(kept.read_bytes()[:-40])                  # cut short: refused, built and written again
    again = _served(sample_store, boundaries, geocoder, tmp_path)
    name = sample_store.read()["name"].iloc[11]
    assert _found(again, name) == _found(plain, name)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    in_memory = _served(sample_store, boundaries, geocoder, blocker)
    assert _found(in_memory, name) == _found(plain, name)


def test_boundary_polygons_are_read_from_files_too(sample_store, boundaries, geocoder, tmp_path):
    """The counties' polygons (8 MB of GeoJSON) were serialised into each process; now written once and mapped."""
    plain = Dataset(sample_store.read(), boundaries, sample_store.read_report(), geocoder)
    served = _served(sample_store, boundaries, geocoder, tmp_path)
    for name in ("provinces", "counties"):
        a, b = plain.collections[name], served.collections[name]
        assert all(isinstance(part._buf, mmap.mmap) for part in b.parts())
        rows = np.arange(len(a))[::-3]
        assert a.features(rows) == b.features(rows)
        assert orjson.loads(b.feature(0))["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert len(list(tmp_path.glob("counties-*-public-*.packed"))) == 3


def test_place_labels_written_once_and_mapped_with_the_same_tiles(sample_store, boundaries, geocoder, tmp_path):
    """The labels' GeoJSON features (7.7 MB for the country) are a file every worker maps, and a label tile
    read from it is the one made in memory; a folder that cannot be written leaves them in memory."""
    from coopgis.tiles import PlaceLayer

    table = _served(sample_store, boundaries, geocoder, None).place_labels()
    plain = PlaceLayer(table)
    first = PlaceLayer(table, tmp_path)
    written = sorted(tmp_path.glob("places-*-labels.packed"))
    second = PlaceLayer(table, tmp_path)
    assert len(written) == 1 and sorted(tmp_path.glob("*.packed")) == written
    assert isinstance(first.features._buf, mmap.mmap) and isinstance(second.features._buf, mmap.mmap)
    assert not isinstance(plain.features._buf, mmap.mmap)
    for z, x, y in ((5, 20, 12), (8, 165, 101), (10, 660, 405)):
        for fmt in ("geojson", "mvt"):
            assert plain.tile(z, x, y, fmt) == second.tile(z, x, y, fmt)
    shown = orjson.loads(second.tile(5, 20, 12, "geojson")[0])["features"]
    assert shown and all(f["properties"]["name"] for f in shown)
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_bytes(b"")
    kept = PlaceLayer(table, not_a_folder)
    assert not isinstance(kept.features._buf, mmap.mmap) and list(kept.features) == list(plain.features)
