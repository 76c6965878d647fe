"""CQL2 filters (OGC API - Features Part 3): parsed by pygeofilter, evaluated as numpy masks.

``filter`` is read as CQL2-text or CQL2-JSON (``filter-lang``) by pygeofilter, the parser
pygeoapi uses; its syntax tree is then checked against the collection's queryables (names,
types, the cost limits) and evaluated column by column on the served arrays, never row by
row. Supported: Basic CQL2 (comparisons, AND/OR/NOT, IS NULL, booleans, dates and
timestamps), property-property comparisons, advanced comparison (LIKE, BETWEEN, IN) and the
spatial functions (S_INTERSECTS, S_DISJOINT, S_WITHIN, S_CONTAINS, S_TOUCHES, S_CROSSES,
S_OVERLAPS, S_EQUALS) with any geometry literal or BBOX, in CRS84 or ``filter-crs``.

Comparisons follow SQL's three-valued logic: a comparison with a null value is neither true
nor false, so ``NOT (members > 10)`` does not select cooperatives whose member count is unknown.

Not here: what a property is and its type (``queryables.py``); HTTP (``api/features.py``).
"""

from __future__ import annotations

import json
import operator
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pygeofilter.ast as ast
import pygeofilter.values as values
import shapely
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedToken
from pygeofilter.parsers.cql2_json import parse as parse_json
from pygeofilter.parsers.cql2_text import parse as parse_text

from coopgis.dataset import Collection
from coopgis.errors import InputError
from coopgis.filters import OutputCrs, transformer
from coopgis.queryables import GEOMETRY, Queryable, queryables

LANGS = ("cql2-text", "cql2-json")
TITLE = "Invalid filter"
# Three-valued truth as two masks: rows where the condition is surely true, and surely false.
Truth = tuple[np.ndarray, np.ndarray]

_COMPARE: dict[Any, str] = {ast.Equal: "eq", ast.NotEqual: "ne", ast.LessThan: "lt", ast.LessEqual: "le",
            ast.GreaterThan: "gt", ast.GreaterEqual: "ge"}
_SPATIAL: dict[Any, str] = {
            ast.GeometryIntersects: "intersects", ast.GeometryDisjoint: "disjoint", ast.GeometryWithin: "within",
            ast.GeometryContains: "contains", ast.GeometryTouches: "touches", ast.GeometryCrosses: "crosses",
            ast.GeometryOverlaps: "overlaps", ast.GeometryEquals: "equals"}
_CONVERSE = {"within": "contains", "contains": "within"}   # S_WITHIN(literal, geometry) = S_CONTAINS(geometry, literal)


@dataclass
class Cql2Filter:
    """A checked CQL2 expression over one collection's queryables."""

    node: Any
    text: str

    def mask(self, coll: Collection) -> np.ndarray:
        """Rows where the expression is true."""
        surely, _ = _Evaluator(coll, self.text).truth(self.node)
        return surely


def parse_cql2(text: str, lang: str | None, coll: Collection, crs: OutputCrs | None = None,
               max_length: int = 8000, max_nodes: int = 500, max_values: int = 100) -> Cql2Filter:
    """A CQL2 filter of ``coll`` from CQL2-text or CQL2-JSON; InputError (400) says what is wrong and where."""
    lang = (lang or "cql2-text").strip().lower()
    if lang not in LANGS:
        raise InputError(f"filter-lang={lang!r} is not offered; use cql2-text or cql2-json", title=TITLE)
    if len(text) > max_length:
        raise InputError(f"the filter is {len(text)} characters long; at most {max_length} are read "
                         "(COOPGIS_MAX_CQL2_LENGTH)", title="Filter too long")
    if not text.strip():
        raise InputError("filter is empty; give a CQL2 expression such as kind = 'production'", title=TITLE)
    node = _parse_json(text) if lang == "cql2-json" else _parse_text(text)
    nodes = _count(node, max_values)
    if nodes > max_nodes:
        raise InputError(f"the filter has {nodes} terms; at most {max_nodes} are allowed (COOPGIS_MAX_CQL2_NODES)",
                         title="Filter too complex")
    checked = _Checker(coll, text, crs).check(node)
    return Cql2Filter(checked, text)


# ---- parsing --------------------------------------------------------------------------------

def _parse_text(text: str):
    try:
        return parse_text(text)
    except UnexpectedCharacters as exc:
        at = exc.pos_in_stream or 0
        raise InputError(f"filter: unexpected {text[at:at + 1]!r} at column "
                         f"{exc.column} (CQL2-text)", title=TITLE, column=exc.column) from None
    except UnexpectedEOF:
        raise InputError("filter: the expression ends too early (CQL2-text)", title=TITLE) from None
    except UnexpectedToken as exc:
        if exc.token.type == "$END":
            raise InputError(f"filter: the expression ends too early at column {len(text) + 1} (CQL2-text)",
                             title=TITLE, column=len(text) + 1) from None
        raise InputError(f"filter: unexpected {str(exc.token)!r} at column {exc.column} (CQL2-text)", title=TITLE,
                         column=exc.column) from None
    except (LarkError, ValueError, TypeError, KeyError):
        raise InputError("filter: not a CQL2-text expression this service reads, e.g. kind = 'production' AND "
                         "members > 10", title=TITLE) from None


def _parse_json(text: str):
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"filter is not JSON: {exc.msg} at column {exc.colno} (CQL2-JSON)", title=TITLE,
                         column=exc.colno) from None
    try:
        return parse_json(_bbox_as_polygon(doc))
    except InputError:
        raise
    except Exception:  # pygeofilter raises assorted errors for JSON that is not CQL2
        raise InputError('filter is not a CQL2-JSON expression, e.g. {"op": "=", "args": [{"property": "kind"}, '
                         '"production"]}', title=TITLE) from None


def _bbox_as_polygon(doc):
    """CQL2-JSON ``{"bbox": [minx, miny, maxx, maxy]}`` as a polygon (pygeofilter 0.4 reads its order wrongly)."""
    if isinstance(doc, list):
        return [_bbox_as_polygon(d) for d in doc]
    if not isinstance(doc, dict):
        return doc
    if set(doc) == {"bbox"} and isinstance(doc["bbox"], list):
        box = _box(doc["bbox"])
        return json.loads(shapely.to_geojson(box))
    return {k: _bbox_as_polygon(v) for k, v in doc.items()}


def _box(numbers) -> shapely.Geometry:
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers):
        raise InputError("filter: a BBOX is four numbers: minx, miny, maxx, maxy", title=TITLE)
    minx, miny, maxx, maxy = (float(n) for n in numbers)
    if minx > maxx or miny > maxy:
        raise InputError("filter: in a BBOX the minimum must not exceed the maximum (minx, miny, maxx, maxy)",
                         title=TITLE)
    return shapely.box(minx, miny, maxx, maxy)


def _count(node, max_values: int) -> int:
    """Terms of an expression (each value of an IN list counts)."""
    if isinstance(node, ast.In):
        if len(node.sub_nodes) > max_values:
            raise InputError(f"filter: an IN list names {len(node.sub_nodes)} values; at most {max_values} "
                             "(COOPGIS_MAX_FILTER_VALUES)", title="Too many filter values")
        return 1 + len(node.sub_nodes)
    if isinstance(node, ast.Node):
        return 1 + sum(_count(c, max_values) for c in node.get_sub_nodes())
    if isinstance(node, list):
        return sum(_count(c, max_values) for c in node)
    return 1


# ---- checking -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Literal:
    """A checked literal: a Python value (str, float, bool, numpy datetime64) or a CRS84 shapely geometry."""

    value: Any
    type: str        # string, number, boolean, date, geometry, null


@dataclass(frozen=True)
class Prop:
    queryable: Queryable


class _Checker:
    """Replaces attributes by queryables and literals by typed values, refusing what cannot be evaluated."""

    def __init__(self, coll: Collection, text: str, crs: OutputCrs | None):
        self.coll = coll
        self.text = text
        self.crs = crs
        self.queryables = queryables(coll)

    def check(self, node):
        if _is(node, ast.And, ast.Or):
            return type(node)(self.check(node.lhs), self.check(node.rhs))
        if isinstance(node, ast.Not):
            return ast.Not(self.check(node.sub_node))
        if _is(node, *_COMPARE):
            lhs, rhs = self.operand(node.lhs), self.operand(node.rhs)
            self.comparable(lhs, rhs, "compare")
            return type(node)(lhs, rhs)
        if isinstance(node, ast.Between):
            lhs, low, high = self.operand(node.lhs), self.operand(node.low), self.operand(node.high)
            self.comparable(lhs, low, "BETWEEN")
            self.comparable(lhs, high, "BETWEEN")
            return ast.Between(lhs, low, high, node.not_)
        if isinstance(node, ast.In):
            lhs = self.operand(node.lhs)
            items = [self.operand(v) for v in node.sub_nodes]
            for item in items:
                self.comparable(lhs, item, "IN")
            return ast.In(lhs, items, node.not_)
        if isinstance(node, ast.Like):
            lhs = self.operand(node.lhs)
            if not (isinstance(lhs, Prop) and lhs.queryable.type == "string"):
                raise self.error("LIKE applies to a text property, e.g. name LIKE 'تعاونی%'")
            return ast.Like(lhs, node.pattern, node.nocase, node.wildcard, node.singlechar, node.escapechar,
                            node.not_)
        if isinstance(node, ast.IsNull):
            return ast.IsNull(self.operand(node.lhs), node.not_)
        if _is(node, *_SPATIAL):
            lhs, rhs = self.operand(node.lhs), self.operand(node.rhs)
            kinds = [getattr(x, "type", None) if isinstance(x, Literal) else x.queryable.type for x in (lhs, rhs)]
            if kinds.count("geometry") != 2 or not any(isinstance(x, Prop) for x in (lhs, rhs)):
                raise self.error(f"S_{_SPATIAL[type(node)].upper()} compares the geometry property with a geometry, "
                                 "e.g. S_INTERSECTS(geometry, BBOX(51,35,52,36))")
            return type(node)(lhs, rhs)
        if isinstance(node, ast.Include):
            return node
        if isinstance(node, (bool, np.bool_)):
            return Literal(bool(node), "boolean")
        name = type(node).__name__
        if isinstance(node, ast.TemporalPredicate):
            raise self.error("temporal functions (T_AFTER ...) are not offered; compare registered_on with "
                             "DATE('2015-01-01') or use the datetime parameter")
        if isinstance(node, ast.Arithmetic):
            raise self.error("arithmetic (+ - * /) is not offered in filters")
        raise self.error(f"{name} is not offered in filters; see /conformance for what is")

    def operand(self, node):
        if isinstance(node, ast.Attribute):
            q = self.queryables.get(node.name)
            if q is None:
                at = self.text.find(node.name)
                where = f" (column {at + 1})" if at >= 0 else ""
                known = ", ".join(n for n in self.queryables)
                raise InputError(f"filter: {node.name!r}{where} is not a property of {self.coll.name}; its "
                                 f"queryables are: {known}", title="Unknown property", property=node.name)
            return Prop(q)
        if isinstance(node, ast.Function):
            if node.name.lower() == "bbox":
                return Literal(self.crs84(_box(node.arguments)), "geometry")
            raise self.error(f"the function {node.name}() is not offered in filters (only BBOX)")
        if isinstance(node, values.Geometry):
            try:
                geom = shapely.geometry.shape(node.geometry)
            except Exception:
                raise self.error("a geometry in the filter is not valid") from None
            if not geom.is_valid:
                raise self.error("a geometry in the filter is not valid (a polygon crossing itself?)")
            return Literal(self.crs84(geom), "geometry")
        if isinstance(node, values.Envelope):
            return Literal(self.crs84(shapely.box(node.x1, node.y1, node.x2, node.y2)), "geometry")
        if node is None:
            return Literal(None, "null")
        if isinstance(node, (bool, np.bool_)):
            return Literal(bool(node), "boolean")
        if isinstance(node, (int, float)):
            return Literal(float(node), "number")
        if isinstance(node, str):
            return Literal(node, "string")
        if isinstance(node, datetime):
            return Literal(np.datetime64(_naive_utc(node), "s"), "date")
        if isinstance(node, date):
            return Literal(np.datetime64(node, "s"), "date")
        if isinstance(node, ast.Node):
            return self.check(node)  # a condition as an operand (e.g. NOT): checked as such
        raise self.error(f"{type(node).__name__} values are not offered in filters")

    def comparable(self, a, b, what: str) -> None:
        ta, tb = (self.kind(a), self.kind(b))
        if "null" in (ta, tb):
            raise self.error("compare with NULL using IS NULL, e.g. deprived IS NULL")
        if "geometry" in (ta, tb):
            raise self.error("the geometry is compared with spatial functions, e.g. S_INTERSECTS")
        if ta == tb or {ta, tb} <= {"integer", "number"}:
            return
        if {ta, tb} == {"date", "string"}:  # '2015-01-01' for a date: read it as one
            lit = b if isinstance(b, Literal) else a
            if isinstance(lit, Literal) and isinstance(lit.value, str):
                try:
                    np.datetime64(lit.value, "s")
                    return
                except ValueError:
                    pass
        prop = a if isinstance(a, Prop) else b
        other = b if prop is a else a
        shown = repr(other.value) if isinstance(other, Literal) else other.queryable.name
        if isinstance(prop, Prop):
            how = "compared" if what == "compare" else f"compared ({what})"
            raise self.error(f"{prop.queryable.name} is {_article(prop.queryable.type)}; it cannot be {how} with "
                             f"{shown}")
        raise self.error(f"cannot compare ({what}) {ta} with {tb}")

    @staticmethod
    def kind(x) -> str:
        return x.queryable.type if isinstance(x, Prop) else x.type

    def crs84(self, geom):
        if self.crs is None or self.crs.epsg is None:
            return geom
        if self.crs.epsg == 4326:
            return shapely.transform(geom, lambda xy: xy[:, ::-1])
        t = transformer(self.crs.epsg, inverse=True)
        return shapely.transform(geom, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))

    def error(self, detail: str) -> InputError:
        return InputError("filter: " + detail, title=TITLE)


def _article(kind: str) -> str:
    return {"integer": "a whole number", "number": "a number", "boolean": "true or false", "date": "a date",
            "string": "a text", "geometry": "a geometry"}.get(kind, kind)


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is not None:
        offset = value.utcoffset()
        value = value.replace(tzinfo=None) - (offset or pd.Timedelta(0))
    return value


# ---- evaluating -----------------------------------------------------------------------------

class _Evaluator:
    """Evaluates a checked expression to (surely true, surely false) masks over every row."""

    def __init__(self, coll: Collection, text: str):
        self.coll = coll
        self.n = len(coll)

    def truth(self, node) -> Truth:
        if _is(node, ast.And):
            (t1, f1), (t2, f2) = self.truth(node.lhs), self.truth(node.rhs)
            return t1 & t2, f1 | f2
        if _is(node, ast.Or):
            (t1, f1), (t2, f2) = self.truth(node.lhs), self.truth(node.rhs)
            return t1 | t2, f1 & f2
        if isinstance(node, ast.Not):
            t, f = self.truth(node.sub_node)
            return f, t
        if isinstance(node, ast.Include):
            return np.ones(self.n, bool), np.zeros(self.n, bool)
        if isinstance(node, Literal):  # a bare true / false
            value = bool(node.value)
            return np.full(self.n, value), np.full(self.n, not value)
        if _is(node, *_COMPARE):
            return self.compare(node.lhs, node.rhs, _COMPARE[type(node)])
        if isinstance(node, ast.Between):
            (t1, f1), (t2, f2) = self.compare(node.lhs, node.low, "ge"), self.compare(node.lhs, node.high, "le")
            return _negated((t1 & t2, f1 | f2), node.not_)
        if isinstance(node, ast.In):
            return _negated(self.is_in(node.lhs, node.sub_nodes), node.not_)
        if isinstance(node, ast.Like):
            return _negated(self.like(node.lhs, node.pattern), node.not_)
        if isinstance(node, ast.IsNull):
            _, known = self.values(node.lhs)
            return _negated((~known, known.copy()), node.not_)
        if _is(node, *_SPATIAL):
            return self.spatial(node.lhs, node.rhs, _SPATIAL[type(node)])
        raise InputError(f"filter: {type(node).__name__} cannot be evaluated", title=TITLE)  # checked before

    # -- operands as arrays
    def values(self, x) -> tuple[Any, np.ndarray]:
        """(values, known mask) of a property or literal; literals are scalars."""
        if isinstance(x, Literal):
            return x.value, np.ones(self.n, bool)
        q = x.queryable
        return self.coll.cached(("cql2", q.name), lambda: _column(self.coll, q))

    def compare(self, a, b, op: str) -> Truth:
        (va, ka), (vb, kb) = self.values(a), self.values(b)
        va, vb = _aligned(va, vb, a, b)
        known = ka & kb
        with np.errstate(invalid="ignore"):
            result = OPS[op](va, vb)
        if isinstance(result, pd.Series):  # text columns compare as pandas strings (Arrow, in C)
            result = result.to_numpy(dtype=bool, na_value=False)
        result = np.asarray(result, dtype=bool)
        if result.ndim == 0:
            result = np.full(self.n, bool(result))
        return known & result, known & ~result

    def is_in(self, a, items) -> Truth:
        va, known = self.values(a)
        wanted = [i.value for i in items if isinstance(i, Literal)]
        if any(not isinstance(i, Literal) for i in items):  # a property in the list: compare one by one
            t, f = np.zeros(self.n, bool), np.ones(self.n, bool)
            for item in items:
                ti, fi = self.compare(a, item, "eq")
                t, f = t | ti, f & fi
            return t, f
        if isinstance(a, Prop) and a.queryable.type == "date":
            wanted = [np.datetime64(w, "s") for w in wanted]
        if isinstance(va, pd.Series):
            hit = va.isin(wanted).to_numpy(dtype=bool, na_value=False)
        elif isinstance(va, np.ndarray):
            hit = np.isin(va, np.asarray(wanted, dtype=va.dtype))
        else:
            hit = np.full(self.n, va in wanted)
        return known & hit, known & ~hit

    def like(self, a, pattern: str) -> Truth:
        va, known = self.values(a)
        regex = _like_regex(pattern)
        hit = va.str.fullmatch(regex).to_numpy(dtype=bool, na_value=False)
        return known & hit, known & ~hit

    def spatial(self, a, b, op: str) -> Truth:
        if isinstance(a, Literal):  # S_WITHIN(literal, geometry) is S_CONTAINS(geometry, literal)
            a, b, op = b, a, _CONVERSE.get(op, op)
        geom = b.value
        coll = self.coll
        if coll.lon is not None and coll.lat is not None and op in ("intersects", "disjoint", "within"):
            lon, lat = coll.points
            known = ~(np.isnan(lon) | np.isnan(lat))
            if _is_box(geom):  # BBOX(...) or a rectangle: range tests on the coordinates, as bbox= does
                minx, miny, maxx, maxy = geom.bounds
                with np.errstate(invalid="ignore"):
                    if op == "within":  # inside, not on the boundary
                        hit = (lon > minx) & (lon < maxx) & (lat > miny) & (lat < maxy)
                    else:
                        hit = (lon >= minx) & (lon <= maxx) & (lat >= miny) & (lat <= maxy)
            else:
                shapely.prepare(geom)
                hit = shapely.contains_xy(geom, lon, lat) if op == "within" else shapely.intersects_xy(geom, lon, lat)
            if op == "disjoint":
                hit = ~hit
            hit &= known
            return hit, known & ~hit
        geoms = coll.cached(("cql2", GEOMETRY), lambda: _geometries(coll))
        known = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
        shapely.prepare(geom)
        hit = np.asarray(getattr(shapely, op)(geoms, geom), dtype=bool) & known
        return hit, known & ~hit


def _is(node: Any, *classes: Any) -> bool:
    """isinstance, without narrowing ``node`` (pygeofilter's classes are untyped)."""
    return isinstance(node, classes)


OPS = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le, "gt": operator.gt,
       "ge": operator.ge}


def _is_box(geom) -> bool:
    """True for an axis-aligned rectangle (a BBOX literal, or a polygon drawn as one)."""
    return geom.geom_type == "Polygon" and not geom.interiors and geom.equals(shapely.box(*geom.bounds))


def _negated(truth: Truth, negate: bool) -> Truth:
    return (truth[1], truth[0]) if negate else truth


def _aligned(va, vb, a, b):
    """Dates compared with a text literal: the text read as a date."""
    for value, other in ((va, b), (vb, a)):
        if isinstance(other, Prop) and other.queryable.type == "date" and isinstance(value, str):
            if value is va:
                va = np.datetime64(value, "s")
            else:
                vb = np.datetime64(value, "s")
    return va, vb


def _like_regex(pattern: str) -> str:
    """A CQL2 LIKE pattern (``%`` any text, ``_`` one character, ``\\`` escapes) as a regular expression."""
    out, escaped = [], False
    for ch in pattern:
        if escaped:
            out.append(re.escape(ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return "(?s)" + "".join(out)


def _column(coll: Collection, q: Queryable) -> tuple[Any, np.ndarray]:
    """A property's values as a numpy array of its type, and where they are known."""
    s = coll.frame[q.name]
    known = s.notna().to_numpy(dtype=bool)
    if q.type in ("integer", "number"):
        return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan), known
    if q.type == "boolean":
        b = s.map(lambda v: None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else bool(v))
        return b.astype("boolean").to_numpy(dtype=bool, na_value=False), b.notna().to_numpy(dtype=bool)
    if q.type == "date":
        d = pd.to_datetime(s, errors="coerce", format="ISO8601").to_numpy(dtype="datetime64[s]")
        return d, ~np.isnat(d)
    if isinstance(s.dtype, pd.CategoricalDtype):   # few distinct texts (coopgis.dataset): ordered as text
        s = s.astype("str")
    return s.reset_index(drop=True), known   # text: the served pandas strings, compared in C


def _geometries(coll: Collection) -> np.ndarray:
    return np.asarray(coll.frame.geometry.values, dtype=object)
