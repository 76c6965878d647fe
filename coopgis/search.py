"""Finding cooperatives by what a field officer types: registration number, name, place or address.

:func:`build_search_index` makes, once per served table, the keys of names, places,
counties and (when first needed) addresses, a word vocabulary of the names and the
English names of places and counties; :func:`search_rows` ranks the matches in fixed
score ranges (registration number > name > place > address > fuzzy, typo-tolerant with
rapidfuzz). Every key goes through :func:`coopgis.text.key`, so Persian and Arabic
letter forms, digits, ZWNJ and spacing do not matter.

Not here: HTTP parameters and the GeoJSON answer (``api/field.py``); the index of the
served dataset is kept by the dataset (``Dataset.search_index``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

from coopgis.text import is_latin, key, latin_key, tokens
from coopgis.values import registration_no_key

if TYPE_CHECKING:
    from coopgis.boundaries import Boundaries

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
    def build(cls, texts_of) -> Vocabulary:
        rows: dict[str, list[int]] = {}
        cache: dict[str, str] = {}
        for i, text in enumerate(texts_of):
            if not isinstance(text, str):
                continue
            for tok in tokens(text):
                k = cache.get(tok)
                if k is None:
                    k = cache[tok] = key(tok, prefixes=False)
                if k:
                    lst = rows.setdefault(k, [])
                    if not lst or lst[-1] != i:
                        lst.append(i)
        words = list(rows)
        return cls(words, Postings([rows[w] for w in words]))


@dataclass
class KeyColumn:
    """Matching keys of one column: joined into one string for substring search, and grouped by value
    (when asked: the place and county columns)."""

    lengths: np.ndarray
    joined: str
    starts: np.ndarray          # offset of each row's key in ``joined`` (keys are separated by newlines)
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
        length = np.concatenate(lengths)
        starts = np.concatenate([[0], np.cumsum(length.astype(np.int64) + 1)[:-1]]).astype(np.int64)
        groups = Groups([k or None for k in every]) if grouped else None  # type: ignore[misc]
        return cls(length, "".join(pieces), starts, groups)

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
        i = text.find(needle)
        while i >= 0:
            r = int(np.searchsorted(starts, i, "right")) - 1
            if allowed is None or allowed[r]:
                out.append(r)
                if need is not None and len(out) >= need:
                    break
            if r + 1 >= n:
                break
            i = text.find(needle, int(starts[r + 1]))  # one hit per row is enough
        return np.asarray(out, np.int64)


@dataclass
class SearchIndex:
    name: KeyColumn
    name_words: Vocabulary
    place: KeyColumn
    county: KeyColumn
    latin: dict[str, np.ndarray]      # latin_key of English place/county names -> rows
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
    name = KeyColumn.build(f["name"], lambda v: key(v, prefixes=False))
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
    latin_rows = {k: np.unique(np.concatenate(v)) for k, v in latin.items()}
    return SearchIndex(name, Vocabulary.build(texts(f["name"])), place, county, latin_rows,
                       sorted(set(place.groups or ()) | set(county.groups or ())), sorted(latin_rows),
                       f["address"])


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
