"""Finding cooperatives by what a field officer types: registration number, name, place or address.

:func:`build_search_index` makes, once per served table, the keys of names, places,
counties and (when first needed) addresses, a word vocabulary of the names and the
English names of places and counties; :func:`search_rows` ranks the matches in fixed
score ranges (registration number > name > place > address > fuzzy, typo-tolerant with
rapidfuzz). Every key goes through :func:`coopgis.text.key`, so Persian and Arabic
letter forms, digits, ZWNJ and spacing do not matter.

:func:`search_index_of` keeps the index in the cache folder (``packed.Packed``), so a restart and
every worker map it instead of building it again.

Not here: HTTP parameters and the GeoJSON answer (``api/field.py``); the index of the
served dataset is kept by the dataset (``Dataset.search_index``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

from coopgis import text as text_module
from coopgis.packed import Packed, prune
from coopgis.text import fold, is_latin, key, latin_key, norm, tokens, words
from coopgis.values import registration_no_key

if TYPE_CHECKING:
    from coopgis.boundaries import Boundaries

log = logging.getLogger("coopgis")
FUZZY_CUTOFF = 80
CHUNK = 50_000   # rows turned into Python text at a time (the table's text is Arrow)
# Score ranges keep the match kinds in order: registration_no > name > place > address > fuzzy.
SCORE = {"registration_no": 100.0, "name": 90.0, "place": 80.0, "address": 70.0, "fuzzy": 50.0}


class Groups:
    """Rows per distinct key, in one array (``key in groups``, ``groups[key]``, ``groups.get(key)``, iteration).

    One dict from key to slot and two arrays: a numpy array per key would cost its ~100-byte header
    for each of tens of thousands of keys, in every worker.
    """

    def __init__(self, keys: list[str]):
        codes, uniques = pd.factorize(pd.Series(keys, dtype=object), use_na_sentinel=True)
        codes = np.asarray(codes, np.int64)
        named = np.flatnonzero(codes >= 0)
        order = named[np.argsort(codes[named], kind="stable")]
        self._rows = order.astype(np.int32)
        self._bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1)).astype(np.int64)
        self._slot = {str(k): i for i, k in enumerate(uniques)}

    @classmethod
    def of(cls, keys: list[str], rows: np.ndarray, bounds: np.ndarray) -> Groups:
        """Groups as :meth:`parts` gave them (a saved index)."""
        out = cls.__new__(cls)
        out._rows, out._bounds = rows, bounds
        out._slot = {k: i for i, k in enumerate(keys)}
        return out

    def parts(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The keys (in slot order), the rows and the bounds of each key's rows."""
        return list(self._slot), self._rows, self._bounds

    def __len__(self) -> int:
        return len(self._slot)

    def __iter__(self):
        return iter(self._slot)

    def __contains__(self, key: object) -> bool:
        return key in self._slot

    def __getitem__(self, key: str) -> np.ndarray:
        i = self._slot[key]
        return self._rows[self._bounds[i]:self._bounds[i + 1]]

    def get(self, key: str) -> np.ndarray | None:
        return self[key] if key in self._slot else None


def texts(column) -> Iterator:
    """The values of a column (a pandas Series or a list), ``CHUNK`` rows at a time."""
    if isinstance(column, pd.Series):
        for start in range(0, len(column), CHUNK):
            yield from column.iloc[start:start + CHUNK].tolist()
    else:
        yield from column


class Postings:
    """``postings[i]``: the rows of word ``i``, all in one array."""

    def __init__(self, lists: list[list[int]]):
        lengths = np.fromiter((len(v) for v in lists), np.int64, len(lists))
        self._bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self._rows = np.fromiter((r for v in lists for r in v), np.int32, int(self._bounds[-1]))

    @classmethod
    def of(cls, bounds: np.ndarray, rows: np.ndarray) -> Postings:
        out = cls([])
        out._bounds, out._rows = bounds, rows
        return out

    def __len__(self) -> int:
        return len(self._bounds) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self._rows[self._bounds[i]:self._bounds[i + 1]]


@dataclass
class Vocabulary:
    """Distinct word keys of a text column and, per word, the rows it occurs in."""

    words: list[str]
    postings: Postings

    @classmethod
    def build(cls, word_keys_of) -> Vocabulary:
        """``word_keys_of``: per row, its distinct word keys (:meth:`NameKeys.words`)."""
        rows: dict[str, list[int]] = {}
        for i, keys in enumerate(word_keys_of):
            for k in keys:
                lst = rows.get(k)
                if lst is None:
                    rows[k] = [i]
                else:
                    lst.append(i)
        words = list(rows)
        return cls(words, Postings([rows[w] for w in words]))


class NameKeys:
    """Each distinct name normalised once, for both its key and its words' keys (names repeat: at
    1,000,000 cooperatives about half are distinct, and :func:`norm` is most of the index's cost)."""

    NO_WORDS: tuple[str, ...] = ()

    def __init__(self):
        self._of: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._word: dict[str, str] = {}

    def _made(self, name: str) -> tuple[str, tuple[str, ...]]:
        got = self._of.get(name)
        if got is None:
            normalised = norm(name)
            keys = []
            for w in words(normalised):
                k = self._word.get(w)
                if k is None:
                    k = self._word[w] = key(w, prefixes=False)
                if k:
                    keys.append(k)
            got = self._of[name] = (fold(normalised), tuple(dict.fromkeys(keys)))
        return got

    def key(self, name: str) -> str:
        """``key(name, prefixes=False)``."""
        return self._made(name)[0]

    def words(self, column) -> Iterator[tuple[str, ...]]:
        """Per row of a name column, the distinct keys of its words."""
        for v in texts(column):
            yield self._made(v)[1] if isinstance(v, str) else self.NO_WORDS


@dataclass
class KeyColumn:
    """Matching keys of one column: joined into one UTF-8 text for substring search (a substring of the
    bytes is a substring of the text: UTF-8 never starts a character inside another), and grouped by value
    (when asked: the place and county columns)."""

    lengths: np.ndarray         # each row's key, in characters
    joined: bytes | PackedText  # the keys, each ended by a newline: in memory, or the pages of a kept file
    starts: np.ndarray          # byte offset of each row's key in ``joined``
    groups: Groups | None

    @classmethod
    def build(cls, values, to_key, grouped: bool = False) -> KeyColumn:
        """``values``: a Series or list of text; ``grouped``: also rows per key (keys repeat: a place, a county)."""
        cache: dict[str, str] = {}
        keys: list[str] = []          # every row's key: kept only while building (the joined text holds them)
        pieces: list[str] = []
        lengths: list[np.ndarray] = []
        every: list[str] = []         # grouped columns: the keys of all rows (repeated keys are shared objects)
        for v in texts(values):
            if not isinstance(v, str):
                keys.append("")
            else:
                k = cache.get(v)
                if k is None:
                    k = cache[v] = to_key(v)
                keys.append(k)
            if len(keys) == CHUNK:
                pieces.append("\n".join(keys) + "\n")
                lengths.append(np.fromiter((len(k) for k in keys), np.int32, len(keys)))
                if grouped:
                    every += keys
                keys = []
        pieces.append("".join(k + "\n" for k in keys))
        lengths.append(np.fromiter((len(k) for k in keys), np.int32, len(keys)))
        if grouped:
            every += keys
        joined = "".join(pieces).encode("utf-8")
        ends = np.flatnonzero(np.frombuffer(joined, np.uint8) == ord("\n"))
        starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
        groups = Groups([k or None for k in every]) if grouped else None  # type: ignore[misc]
        return cls(np.concatenate(lengths), joined, starts, groups)

    def group(self, k: str) -> np.ndarray | None:
        """The rows whose key is ``k`` (None: none, or the column is not grouped)."""
        return self.groups.get(k) if self.groups is not None else None

    def containing(self, needle: str, allowed: np.ndarray | None = None, need: int | None = None) -> np.ndarray:
        """Rows whose key contains ``needle``, in row order; with ``allowed``/``need``, the first ``need``
        allowed ones. Keys hold no newline, so a hit never spans two rows."""
        out: list[int] = []
        if not needle or "\n" in needle:
            return np.empty(0, np.int64)
        text, starts, n = self.joined, self.starts, len(self.starts)
        sought = needle.encode("utf-8")
        i = text.find(sought)
        while i >= 0:
            r = int(np.searchsorted(starts, i, "right")) - 1
            if allowed is None or allowed[r]:
                out.append(r)
                if need is not None and len(out) >= need:
                    break
            if r + 1 >= n:
                break
            i = text.find(sought, int(starts[r + 1]))  # one hit per row is enough
        return np.asarray(out, np.int64)


@dataclass(frozen=True)
class PackedText:
    """Item ``item`` of a kept file as the text of a :class:`KeyColumn`: searched in its mapped pages, which
    every worker shares, rather than copied into each process (200 MB at 1,000,000 cooperatives)."""

    packed: Packed
    item: int

    def find(self, sub: bytes, start: int = 0) -> int:
        return self.packed.find(self.item, sub, start)


@dataclass
class SearchIndex:
    name: KeyColumn
    name_words: Vocabulary
    place: KeyColumn
    county: KeyColumn
    latin: Groups                     # latin_key of English place/county names -> rows
    place_keys: list[str]             # distinct place/county keys, for fuzzy matching
    latin_keys: list[str]
    addresses: pd.Series | list       # the address column; its keys are made when first needed
    _address: KeyColumn | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def rows(self) -> int:
        return len(self.addresses)

    @property
    def address(self) -> KeyColumn:
        if self._address is None:
            with self._lock:
                if self._address is None:
                    self._address = KeyColumn.build(self.addresses, lambda v: key(v, prefixes=False))
        return self._address


def build_search_index(f: pd.DataFrame, boundaries: Boundaries | None = None) -> SearchIndex:
    """The search index of a cooperatives table; ``boundaries`` add the English place and county names."""
    names = NameKeys()
    name = KeyColumn.build(f["name"], names.key)
    name_words = Vocabulary.build(names.words(f["name"]))
    del names
    place = KeyColumn.build(f["place"], key, grouped=True)
    county = KeyColumn.build(f["county"], key, grouped=True)
    latin: dict[str, list[np.ndarray]] = {}
    if boundaries is not None:
        b = boundaries
        en_of_place: dict[tuple[str, str], str] = {}
        p = b.places
        for lvl, code, en in zip(p["level"], p["code"], p["name_en"], strict=False):
            if isinstance(en, str) and en:
                en_of_place.setdefault((lvl, str(code)), en)
        for (lvl, code), rows in f.groupby(["place_level", "place_code"], dropna=True).indices.items():
            en = en_of_place.get((lvl, str(code)))
            if en and latin_key(en):
                latin.setdefault(latin_key(en), []).append(np.asarray(rows, np.int64))
        en_of_county = dict(zip(b.counties["osm_relation_id"].astype("int64"), b.counties["name_en"], strict=False))
        for osm, rows in f.groupby("county_osm", dropna=True).indices.items():
            en = en_of_county.get(int(osm))
            if isinstance(en, str) and latin_key(en):
                latin.setdefault(latin_key(en), []).append(np.asarray(rows, np.int64))
    latin_keys = list(latin)
    latin_rows = [np.unique(np.concatenate(latin[k])) for k in latin_keys]
    sizes = np.fromiter((len(r) for r in latin_rows), np.int64, len(latin_rows))
    latin_groups = Groups.of(latin_keys, np.concatenate(latin_rows) if latin_rows else np.empty(0, np.int64),
                             np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
    return SearchIndex(name, name_words, place, county, latin_groups,
                       sorted(set(place.groups or ()) | set(county.groups or ())), sorted(latin_keys),
                       f["address"])


# ---- the index kept in a file -------------------------------------------------------------------------
# Building the index is Python work on every name (about 13 s at 1,000,000 cooperatives). It is written once
# to the cache folder, named by a digest of what it is made of, and mapped by later starts and by every
# worker: its arrays are then the file's pages, shared; only the texts and the dicts are made again.

INDEX_FILES_KEPT = 4           # the newest index files kept in the folder
INDEX_MIN_ROWS = 10_000        # a smaller table is indexed in well under a second: not kept
_INDEX_COLUMNS = ("name", "place", "county", "place_level", "place_code", "county_osm")
_INDEX_PARTS = 24


def search_index_of(f: pd.DataFrame, boundaries: Boundaries | None, folder: Path | None) -> SearchIndex:
    """The search index of ``f``: mapped from ``folder`` when an index of the same rows is kept there,
    else built (and kept there). A folder that cannot be written leaves the index in memory."""
    if folder is None or len(f) < INDEX_MIN_ROWS:
        return build_search_index(f, boundaries)
    path = folder / f"search-{_index_digest(f, boundaries)}.index"
    idx = _mapped_index(path, f["address"])
    if idx is not None:
        return idx
    idx = build_search_index(f, boundaries)
    try:
        Packed.write(path, _index_parts(idx))
        prune(folder, "search-*.index", INDEX_FILES_KEPT)
    except OSError as exc:
        log.warning("search index not written to %s (%s): kept in memory", folder, exc)
        return idx
    return _mapped_index(path, f["address"]) or idx


def _index_digest(f: pd.DataFrame, boundaries: Boundaries | None) -> str:
    """What the index is made of: the indexed columns, the English names of places and counties, the code."""
    h = hashlib.blake2b(digest_size=16)
    for module in (__file__, text_module.__file__):
        h.update(Path(module).read_bytes())
    h.update(repr((len(f), [c for c in _INDEX_COLUMNS if c in f.columns])).encode())
    tables: list[tuple[pd.DataFrame, tuple[str, ...]]] = [(f, _INDEX_COLUMNS)]
    if boundaries is not None:
        tables += [(boundaries.places, ("level", "code", "name_en")),
                   (boundaries.counties, ("osm_relation_id", "name_en"))]
    for table, columns in tables:
        for col in columns:
            if col in table.columns:
                h.update(pd.util.hash_pandas_object(table[col], index=False).to_numpy().tobytes())
    return h.hexdigest()


def _lines(keys) -> bytes:
    return "\n".join(keys).encode("utf-8")      # keys hold no newline (KeyColumn.containing relies on it)


def _unlines(data: memoryview) -> list[str]:
    text = bytes(data).decode("utf-8")
    return text.split("\n") if text else []   # no key is empty


def _column_parts(col: KeyColumn) -> list:
    keys, rows, bounds = col.groups.parts() if col.groups is not None else ([], np.empty(0, np.int32),
                                                                            np.empty(0, np.int64))
    return [col.lengths.astype(np.int32), col.starts.astype(np.int64), col.joined,
            _lines(keys), rows.astype(np.int32), bounds.astype(np.int64)]


def _index_parts(idx: SearchIndex) -> list:
    latin = list(idx.latin)
    sizes = np.fromiter((len(idx.latin[k]) for k in latin), np.int64, len(latin))
    return [*_column_parts(idx.name), *_column_parts(idx.place), *_column_parts(idx.county),
            _lines(idx.name_words.words), idx.name_words.postings._bounds.astype(np.int64),
            idx.name_words.postings._rows.astype(np.int32),
            _lines(latin), np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            (np.concatenate([idx.latin[k] for k in latin]) if latin else np.empty(0)).astype(np.int64)]


def _mapped_index(path: Path, addresses) -> SearchIndex | None:
    """The index a :func:`search_index_of` kept at ``path`` (None: none there, or not whole, or not of
    ``len(addresses)`` rows)."""
    packed = Packed.mapped(path)
    if packed is None or len(packed) != _INDEX_PARTS:
        return None
    n = len(addresses)

    def array(i: int, dtype) -> np.ndarray:
        return np.frombuffer(packed.view(i), dtype)

    def column(at: int, rows: int | None) -> KeyColumn | None:
        lengths, starts = array(at, np.int32), array(at + 1, np.int64)
        joined = PackedText(packed, at + 2)
        keys, grows, bounds = _unlines(packed.view(at + 3)), array(at + 4, np.int32), array(at + 5, np.int64)
        if len(lengths) != len(starts) or (rows is not None and len(lengths) != rows) or \
                (len(starts) and (starts[0] != 0 or starts[-1] >= len(packed.view(at + 2)))):
            return None
        groups = None
        if len(bounds):
            if len(bounds) != len(keys) + 1 or bounds[-1] != len(grows):
                return None
            groups = Groups.of(keys, grows, bounds)
        return KeyColumn(lengths, joined, starts, groups)

    try:
        name, place, county = column(0, n), column(6, n), column(12, n)
        words, bounds, rows = _unlines(packed.view(18)), array(19, np.int64), array(20, np.int32)
        latin_keys, latin_bounds, latin_rows = _unlines(packed.view(21)), array(22, np.int64), array(23, np.int64)
    except (UnicodeDecodeError, ValueError):   # damaged: made again
        return None
    if name is None or place is None or county is None or len(bounds) != len(words) + 1 or \
            len(latin_bounds) != len(latin_keys) + 1 or place.groups is None or county.groups is None:
        return None
    return SearchIndex(name, Vocabulary(words, Postings.of(bounds, rows)), place, county,
                       Groups.of(latin_keys, latin_rows, latin_bounds),
                       sorted(set(place.groups) | set(county.groups)), sorted(latin_keys), addresses)


def search_rows(idx: SearchIndex, row_of: Callable[[str], int | None], text: str, limit: int,
                mask: np.ndarray | None = None) -> list[tuple[int, str, float]]:
    """Up to ``limit`` (row, match, score), best first: registration number, name, place, address, fuzzy.

    ``row_of`` finds a row by registration number (``Collection.row_of``).
    """
    n = idx.rows
    allowed = np.ones(n, bool) if mask is None else mask.copy()   # rows not yet taken and passing the filters
    out: list[tuple[int, str, float]] = []

    def take(rows: np.ndarray, match: str, scores: np.ndarray | float) -> None:
        """Add the best of ``rows`` (higher score first, then row order) until ``limit`` is reached."""
        rows = np.asarray(rows, np.int64)
        tenths = np.broadcast_to(np.round(np.asarray(scores, float) * 10).astype(np.int64), rows.shape)
        keep = allowed[rows]
        rows, tenths = rows[keep], tenths[keep]
        room = limit - len(out)
        if not len(rows) or room <= 0:
            return
        rank = -tenths * (n + 1) + rows          # one integer: score descending, then row ascending
        if len(rank) > room:
            part = np.argpartition(rank, room - 1)[:room]
            rows, tenths, rank = rows[part], tenths[part], rank[part]
        order = np.argsort(rank, kind="stable")
        for r, t in zip(rows[order], tenths[order], strict=False):
            out.append((int(r), match, float(t) / 10))
            allowed[r] = False

    def full() -> bool:
        return len(out) >= limit

    # 1. registration number; a number that is one is not looked for anywhere else
    reg = registration_no_key(text)
    row = row_of(reg)
    if row is not None:
        take(np.array([row]), "registration_no", SCORE["registration_no"])
    numeric = reg.isdigit()
    if full() or (numeric and row is not None):
        return out
    latin = is_latin(text)
    qkey = key(text)
    words = [w for w in (key(t, prefixes=False) for t in tokens(text)) if w]
    # 2. name holds every word of the query (as part of a word, or across the spaces of the name)
    if words:
        hit = None
        for w in words:
            m = np.zeros(n, bool)
            ids = [i for i, v in enumerate(idx.name_words.words) if w in v]
            if ids:
                m[np.concatenate([idx.name_words.postings[i] for i in ids])] = True
            else:  # the name may write it with or without a space: "احمد آباد" / "احمدآباد"
                m[idx.name.containing(w)] = True
            hit = m if hit is None else (hit & m)
            if not hit.any():
                break
        hit = np.flatnonzero(hit & allowed) if hit is not None else np.empty(0, np.int64)
        if len(hit):
            covered = sum(len(w) for w in words)
            take(hit, "name", SCORE["name"] + 9.0 * np.minimum(1.0, covered / np.maximum(idx.name.lengths[hit], 1)))
    if full() or numeric:  # digits in addresses are house numbers; fuzzy digits match anything
        return out
    # 3. the village or city, or the county, is the query
    if latin:
        lk = latin_key(text)
        if lk in idx.latin:
            take(idx.latin[lk], "place", SCORE["place"] + 5)
    elif qkey:
        rows = idx.place.group(qkey)
        if rows is not None:
            take(rows, "place", SCORE["place"] + 5)
        rows = idx.county.group(qkey)
        if not full() and rows is not None:
            take(rows, "place", SCORE["place"])
    if full():
        return out
    # 4. the address holds the query (a village the geocoder did not resolve)
    if not latin and len(qkey) >= 3:
        take(idx.address.containing(qkey, allowed, limit - len(out)), "address", SCORE["address"])
    if full():
        return out
    # 5. fuzzy: every query word close to a word of the name, or the query close to a place name
    similarity = np.zeros(n)     # best rapidfuzz similarity per row, 0 = no fuzzy match
    if latin:
        for k, sim, _ in process.extract(latin_key(text), idx.latin_keys, scorer=fuzz.ratio,
                                         score_cutoff=FUZZY_CUTOFF, limit=None):
            rows = idx.latin[k]
            similarity[rows] = np.maximum(similarity[rows], sim)
    else:
        long_words = [w for w in words if len(w) >= 3]  # a fuzzy one- or two-letter word matches anything
        total: np.ndarray | None = None
        for w in long_words:
            best = np.zeros(n)
            for _, sim, i in process.extract(w, idx.name_words.words, scorer=fuzz.ratio,
                                             score_cutoff=FUZZY_CUTOFF, limit=None):
                rows = idx.name_words.postings[i]
                best[rows] = np.maximum(best[rows], sim)
            total = best if total is None else np.where((total > 0) & (best > 0), total + best, 0.0)
        if total is not None:
            similarity = total / len(long_words)
        if len(qkey) >= 3:
            for k, sim, _ in process.extract(qkey, idx.place_keys, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF,
                                             limit=None):
                for column in (idx.place, idx.county):
                    group = column.group(k)
                    if group is not None:
                        similarity[group] = np.maximum(similarity[group], sim)
    rows = np.flatnonzero(similarity)
    if len(rows):
        take(rows, "fuzzy", _fuzzy_score(similarity[rows]))
    return out


def _fuzzy_score(similarity):
    """A rapidfuzz similarity (80..100) mapped into the fuzzy range 50..69."""
    return SCORE["fuzzy"] + (np.asarray(similarity, float) - FUZZY_CUTOFF) * 0.95
