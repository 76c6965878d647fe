"""What an items request asks for beyond filters: ``datetime``, ``sortby``, ``properties`` and ``skipGeometry``.

- ``datetime`` (OGC API - Features Part 1) selects cooperatives by ``registered_on``: an
  instant (``2015-01-01`` or ``2015-01-01T10:00:00Z``: the day it falls on), a closed interval
  (``2015-01-01/2019-12-31``) or a half-open one (``../2020-01-01``, ``2015-01-01/..``).
  Collections without a time property (the boundaries) have no temporal extent; there
  ``datetime`` is refused with the reason rather than answered with nothing.
- ``sortby`` orders by one or more queryable properties, ``+name`` / ``name`` ascending and
  ``-members`` descending; unknown values (null) come last either way, ties keep the stored order.
- ``properties`` names the properties to write (the id and geometry are always there).

Not here: property filters (``filters.py``), CQL2 (``cql2.py``), HTTP (``api/features.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from coopgis.dataset import Collection
from coopgis.errors import InputError
from coopgis.queryables import DATE_COLUMNS, GEOMETRY, queryables
from coopgis.text import norm, to_ascii_digits
from coopgis.values import parse_bool

TEMPORAL_PROPERTY = "registered_on"


@dataclass(frozen=True)
class Interval:
    """A closed day interval [start, end]; None for an open end."""

    start: np.datetime64 | None
    end: np.datetime64 | None

    def mask(self, coll: Collection) -> np.ndarray:
        days = coll.cached(("days", TEMPORAL_PROPERTY), lambda: _days(coll))
        m = ~np.isnat(days)
        if self.start is not None:
            m &= days >= self.start
        if self.end is not None:
            m &= days <= self.end
        return m


def temporal_property(coll: Collection) -> str | None:
    """The property ``datetime`` filters on, or None when the collection has no time."""
    return TEMPORAL_PROPERTY if TEMPORAL_PROPERTY in coll.properties else None


def temporal_extent(coll: Collection) -> list[str | None] | None:
    """[first, last] registration date (ISO), or None when the collection has no time."""
    if temporal_property(coll) is None:
        return None
    days = coll.cached(("days", TEMPORAL_PROPERTY), lambda: _days(coll))
    known = days[~np.isnat(days)]
    if not len(known):
        return [None, None]
    return [f"{known.min()}T00:00:00Z", f"{known.max()}T23:59:59Z"]


def parse_datetime(value: str | None, coll: Collection) -> Interval | None:
    """The ``datetime`` parameter as a day interval; InputError (400) says what is wrong."""
    if value is None or not value.strip():
        return None
    if temporal_property(coll) is None:
        raise InputError(f"datetime: {coll.name} have no time property (no temporal extent); leave datetime out",
                         title="No temporal property")
    v = to_ascii_digits(norm(value)).strip()
    if "/" in v:
        a, _, b = v.partition("/")
        start, end = _moment(a, value, open_ok=True), _moment(b, value, open_ok=True)
        if start is not None and end is not None and start > end:
            raise InputError(f"datetime={value!r}: the interval starts after it ends", title="Invalid datetime")
        return Interval(start, end)
    day = _moment(v, value, open_ok=False)
    return Interval(day, day)


def parse_sortby(value: str | None, coll: Collection) -> list[tuple[str, bool]] | None:
    """``sortby`` as [(property, ascending)]; InputError for an unknown or unsortable property."""
    if value is None or not value.strip():
        return None
    known = queryables(coll)
    keys: list[tuple[str, bool]] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        ascending = not part.startswith("-")
        name = part.lstrip("+-").strip()
        if name.upper().endswith((" ASC", " DESC")):  # also accepted: "name DESC"
            name, _, direction = name.rpartition(" ")
            ascending = direction.upper() == "ASC"
            name = name.strip()
        if name not in known or name == GEOMETRY:
            raise InputError(f"sortby: {name!r} is not a property of {coll.name} to sort by; use one of: "
                             + ", ".join(n for n in known if n != GEOMETRY), title="Unknown property",
                             property=name)
        keys.append((name, ascending))
    return keys or None


def sort_rows(coll: Collection, rows: np.ndarray, keys: list[tuple[str, bool]] | None) -> np.ndarray:
    """``rows`` ordered by ``keys`` (stable; nulls last)."""
    if not keys or len(rows) < 2:
        return rows
    frame = coll.frame
    sub = pd.DataFrame({f"k{i}": _sort_values(frame[name], name).iloc[rows].to_numpy()
                        for i, (name, _) in enumerate(keys)})
    order = sub.sort_values([f"k{i}" for i in range(len(keys))], ascending=[a for _, a in keys], kind="stable",
                            na_position="last").index.to_numpy()
    return rows[order]


def parse_properties(value: str | None, coll: Collection, level_columns: tuple[str, ...]) -> tuple[str, ...] | None:
    """``properties`` as the columns to write, in the order given; None for all of them."""
    if value is None:
        return None
    names = [p.strip() for p in value.split(",") if p.strip()]
    out = []
    for name in names:
        if name == GEOMETRY:
            continue
        if name not in level_columns:
            raise InputError(f"properties: {name!r} is not a property of {coll.name}; use some of: "
                             + ", ".join(level_columns), title="Unknown property", property=name)
        out.append(name)
    return tuple(dict.fromkeys(out))


def parse_skip_geometry(value: str | None) -> bool:
    if value is None or not value.strip():
        return False
    try:
        flag = parse_bool(value)
    except ValueError:
        flag = None
    if flag is None:
        raise InputError(f"skipGeometry={value!r} must be true or false")
    return flag


# ---- helpers --------------------------------------------------------------------------------

def _days(coll: Collection) -> np.ndarray:
    return pd.to_datetime(coll.frame[TEMPORAL_PROPERTY], errors="coerce", format="ISO8601").to_numpy(
        dtype="datetime64[D]")


def _moment(part: str, whole: str, open_ok: bool) -> np.datetime64 | None:
    """The day of an RFC 3339 date or date-time (its UTC day); None for an open end ('..' or empty)."""
    part = part.strip()
    if part in ("..", ""):
        if open_ok:
            return None
        raise InputError(f"datetime={whole!r}: give a date (2015-01-01), a date-time (2015-01-01T00:00:00Z) or "
                         "an interval (2015-01-01/2020-12-31, ../2020-01-01, 2015-01-01/..)",
                         title="Invalid datetime")
    try:
        if len(part) == 10:
            return np.datetime64(datetime.strptime(part, "%Y-%m-%d").date(), "D")
        moment = datetime.fromisoformat(part.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"datetime={whole!r}: {part!r} is not an RFC 3339 date or date-time "
                         "(2015-01-01, 2015-01-01T10:00:00Z)", title="Invalid datetime") from None
    if moment.tzinfo is not None:
        moment = (moment - (moment.utcoffset() or pd.Timedelta(0))).replace(tzinfo=None)  # its UTC day
    return np.datetime64(moment.date(), "D")


def _sort_values(column: pd.Series, name: str) -> pd.Series:
    """Values that sort as their type: dates as dates, flags and numbers as numbers, text as text."""
    if name in DATE_COLUMNS:
        return pd.to_datetime(column, errors="coerce", format="ISO8601")
    if column.dtype == object:
        return column.map(lambda v: None if v is None or (isinstance(v, float) and v != v) else v).astype("object")
    return column
