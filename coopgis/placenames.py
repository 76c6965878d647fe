"""Place-name labels for every map: which places are named, at which zooms, without overlaps.

The labels come from the project's own gazetteer (:class:`~coopgis.boundaries.Boundaries`), so a
map needs no base map to be read: province and county names (at a point well inside their
polygon), cities (the most populous first, where the population is known) and the villages that
have a placed point (strong points first; a weak or outlier point is labelled as *unsure*, with
its own kind, never as if it were sure).

Each label's zooms are decided once, for the whole country, so that labels neither overlap
nor depend on tile borders: a kind may show from :data:`KIND_ZOOMS` ``lo`` to ``hi``; going
down the zooms from :data:`LABEL_MIN_ZOOM` to :data:`LABEL_MAX_ZOOM`, a label not yet shown
gets zoom ``z`` as its ``min_zoom`` when its text box (estimated from its length at the
kind's font size, :data:`KIND_STYLE`) keeps :data:`LABEL_GAP_PX` pixels from every box
already shown at ``z``, in the order of importance: the kinds in the order of :data:`KINDS`, then
the larger population first (census 1395 for provinces and counties, GeoNames for cities; a
city may show from the zoom of its population class, :data:`CITY_ZOOMS`). Distances double
with each zoom, so a label shown at ``z`` stays clear of the others at every deeper zoom; a
tile then only needs the labels of its area with ``min_zoom <= z <= max_zoom``. Labels not
shown by :data:`LABEL_MAX_ZOOM` (a namesake within metres of another) stay unlabelled.

Not here: tiles of the labels (``tiles.py``), drawing them (``web/labels.js``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
import shapely.ops

from coopgis.boundaries import Boundaries
from coopgis.text import TextColumn, shared_texts

LABEL_MIN_ZOOM = 4
LABEL_MAX_ZOOM = 16
LABEL_GAP_PX = 4.0          # free pixels kept between two label boxes
KINDS = ("province", "county", "city", "village", "village_unsure")
# The zooms each kind of label may show at (its own min_zoom is decided by room): provinces on the
# national view, counties around the province view, cities and villages from where they are told apart.
KIND_ZOOMS = {"province": (4, 7), "county": (7, 10), "city": (6, 99), "village": (10, 99),
              "village_unsure": (11, 99)}
# A city may show from the zoom of its population class (the first threshold it reaches); a town of
# unknown population from the last zoom, so a small town never takes the room of a large one's view.
CITY_ZOOMS = ((200_000, 6), (50_000, 7), (10_000, 8), (0, 9))
# Font size (px) and average advance per character (em) of each kind as web/labels.js draws it in
# Vazirmatn; the box estimate errs on the wide side so drawn labels stay apart.
KIND_STYLE = {"province": (15.0, 0.62), "county": (12.5, 0.60), "city": (13.0, 0.60),
              "village": (11.5, 0.60), "village_unsure": (11.5, 0.60)}
LINE_HEIGHT = 1.35          # of the font size
PAD_PX = 4.0                # left and right of the text, inside its box
DOT_PX = 6.0                # the dot of a point place, under its text
ZOOM_FIELDS = ("min_zoom", "max_zoom")


@dataclass
class LabelTable:
    """One row per labelled place, sorted by importance (most important first)."""

    name: TextColumn        # Persian name as shown
    kind: np.ndarray        # object: one of KINDS
    lon: np.ndarray
    lat: np.ndarray
    rank: np.ndarray        # 0 = most important
    min_zoom: np.ndarray    # int8: the first zoom it shows at (decided by room)
    max_zoom: np.ndarray    # int8: the last zoom it shows at (99: every deeper zoom)
    may_from: np.ndarray    # int8: the first zoom its kind (and a city's population) would allow
    width: np.ndarray       # box width (px) as estimated
    height: np.ndarray
    county_osm: np.ndarray  # int64, -1 where none (provinces)
    code: TextColumn        # official code, None where none

    def __len__(self) -> int:
        return len(self.name)

    def shown_at(self, z: int) -> np.ndarray:
        """Row numbers of the labels shown at zoom ``z``."""
        return np.flatnonzero((self.min_zoom <= z) & (self.max_zoom >= z))

    def rows_in(self, bbox: tuple[float, float, float, float], up_to_zoom: int = LABEL_MAX_ZOOM) -> np.ndarray:
        """Row numbers of the labels inside a lon/lat box that show at some zoom up to ``up_to_zoom``."""
        minx, miny, maxx, maxy = bbox
        inside = (self.lon >= minx) & (self.lon <= maxx) & (self.lat >= miny) & (self.lat <= maxy)
        return np.flatnonzero(inside & (self.min_zoom <= up_to_zoom))

    def records(self, rows: np.ndarray) -> list[list]:
        """Compact rows for a page that embeds its labels: [lon, lat, name, kind, min_zoom, max_zoom]."""
        return [[round(float(self.lon[r]), 5), round(float(self.lat[r]), 5), self.name[r], self.kind[r],
                 int(self.min_zoom[r]), int(self.max_zoom[r])] for r in rows.tolist()]

    def box(self, rows: np.ndarray, z: int) -> np.ndarray:
        """Label boxes (minx, miny, maxx, maxy) in world pixels of zoom ``z`` (y down)."""
        return _boxes(self.lon[rows], self.lat[rows], self.width[rows], self.height[rows], self.kind[rows], z)


def build_labels(boundaries: Boundaries) -> LabelTable:
    """Every label of the gazetteer with the zooms it shows at (about a second for the whole country)."""
    cand = _candidates(boundaries)
    font = cand["kind"].map(lambda k: KIND_STYLE[k][0]).to_numpy(float)
    advance = cand["kind"].map(lambda k: KIND_STYLE[k][1]).to_numpy(float)
    chars = cand["name"].map(len).to_numpy(float)
    width = np.ceil(chars * font * advance + 2 * PAD_PX)
    height = np.ceil(font * LINE_HEIGHT)
    lo = cand["kind"].map(lambda k: KIND_ZOOMS[k][0]).to_numpy(np.int16)
    city = (cand["kind"] == "city").to_numpy()
    lo[city] = np.maximum(lo[city], [_city_zoom(v) for v in cand["population"].to_numpy(float)[city]])
    hi = cand["kind"].map(lambda k: min(KIND_ZOOMS[k][1], LABEL_MAX_ZOOM)).to_numpy(np.int16)
    lon, lat = cand["lon"].to_numpy(float), cand["lat"].to_numpy(float)
    kind = np.array(shared_texts(cand["kind"].tolist(), {}), dtype=object)   # 5 kinds, not a text per label
    min_zoom = _place(lon, lat, width, height, kind, lo, hi)
    shown = min_zoom <= hi
    max_zoom = np.where(hi >= LABEL_MAX_ZOOM, 99, hi)
    keep = np.flatnonzero(shown)
    return LabelTable(name=TextColumn(cand["name"]).subset(keep), kind=kind[keep], lon=lon[keep], lat=lat[keep],
                      rank=np.arange(len(keep)), min_zoom=min_zoom[keep].astype(np.int8),
                      max_zoom=max_zoom[keep].astype(np.int8), may_from=lo[keep].astype(np.int8),
                      width=width[keep], height=height[keep],
                      county_osm=cand["county_osm"].to_numpy(np.int64)[keep],
                      code=TextColumn(cand["code"]).subset(keep))


# ---- candidates ----------------------------------------------------------------------------

def _candidates(b: Boundaries) -> pd.DataFrame:
    """Places that may be labelled, most important first: name, kind, lon, lat, county_osm, code."""
    frames = []
    prov = b.provinces
    prov_pop, county_pop = _census(b)
    frames.append(pd.DataFrame({"name": prov["name_fa"].map(_display), "kind": "province",
                                "point": [_inner_point(g) for g in prov.geometry], "county_osm": -1,
                                "code": prov["iso_3166_2"],
                                "population": prov["iso_3166_2"].map(prov_pop).fillna(0.0).to_numpy()}))
    cty = b.counties
    frames.append(pd.DataFrame({"name": cty["display_name_fa"].map(_display), "kind": "county",
                                "point": [_inner_point(g) for g in cty.geometry],
                                "county_osm": cty["osm_relation_id"].astype(np.int64),
                                "code": cty["official_county_code"],
                                "population": cty["osm_relation_id"].map(county_pop).fillna(0.0).to_numpy()}))
    p = b.places
    located = p["lon"].notna() & p["lat"].notna() & p["county_osm"].notna()
    cities = p[located & (p["level"] == "city")]
    villages = p[located & (p["level"] == "village") & p["settlement"]]
    unsure = (villages["point_strength"] != "strong") | villages["point_outlier"]
    for frame, kind in ((cities, "city"), (villages[~unsure], "village"), (villages[unsure], "village_unsure")):
        frames.append(pd.DataFrame({
            "name": frame["name"].map(_display), "kind": kind,
            "point": shapely.points(frame["lon"].to_numpy(float), frame["lat"].to_numpy(float)),
            "county_osm": frame["county_osm"].astype(np.int64).to_numpy(),
            "code": frame["code"].to_numpy(object),
            "population": pd.to_numeric(frame["population"], errors="coerce").fillna(0.0).to_numpy()
            if "population" in frame else 0.0}))
    out = pd.concat(frames, ignore_index=True)
    out = out[out["name"].map(bool)]
    out["lon"] = shapely.get_x(out["point"].to_numpy())
    out["lat"] = shapely.get_y(out["point"].to_numpy())
    out["order"] = out["kind"].map(KINDS.index)
    # Importance: kind, population (census for provinces and counties, GeoNames for cities), then the
    # official code, so the order never depends on the file's row order.
    out = out.sort_values(["order", "population", "code", "name"], ascending=[True, False, True, True],
                          kind="stable", na_position="last")
    return out.drop(columns=["point", "order"]).reset_index(drop=True)


def _census(b: Boundaries) -> tuple[dict[str, float], dict[int, float]]:
    """Census 1395 population by province (ISO code) and by county (OSM id; a county newer than the census
    shows its census unit's), to order area names by importance; empty where the tables are absent."""
    provinces: dict[str, float] = {}
    counties: dict[int, float] = {}
    path = b.source_dir / "census1395_provinces.csv"
    if path.is_file():
        t = pd.read_csv(path, dtype={"iso_3166_2": str})
        provinces = dict(zip(t["iso_3166_2"], pd.to_numeric(t["population"], errors="coerce"), strict=True))
    path = b.source_dir / "census1395.csv"
    if path.is_file():
        t = pd.read_csv(path, usecols=["osm_relation_id", "population"])
        counties = dict(zip(t["osm_relation_id"].astype(int), pd.to_numeric(t["population"], errors="coerce"),
                            strict=True))
    return provinces, counties


def _city_zoom(population: float) -> int:
    """The first zoom a city of this population may show at (:data:`CITY_ZOOMS`)."""
    return next(z for least, z in CITY_ZOOMS if population >= least)


def _display(name: object) -> str:
    """A name as a label shows it: one line, without the brackets some official entries wear."""
    if not isinstance(name, str):
        return ""
    text = " ".join(name.split())
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    return text


def _inner_point(geom) -> shapely.Point:
    """A point well inside an area (the pole of inaccessibility of its largest part), for its name."""
    parts = list(shapely.get_parts(geom))
    largest = max(parts, key=lambda g: g.area)
    tolerance = max(math.sqrt(largest.area) / 50, 0.002)
    return shapely.ops.polylabel(largest, tolerance=tolerance)


# ---- placement -----------------------------------------------------------------------------

def _world_pixels(lon: np.ndarray, lat: np.ndarray, z: int) -> tuple[np.ndarray, np.ndarray]:
    """Web Mercator pixels of zoom ``z`` (256-px tiles, y down)."""
    from coopgis.tiles import lonlat_to_world  # tiles.py builds on the dataset, which owns the labels

    u, v = lonlat_to_world(lon, lat)
    scale = 256.0 * 2 ** z
    return u * scale, v * scale


def _boxes(lon, lat, width, height, kind, z: int) -> np.ndarray:
    """Boxes of labels at zoom ``z``: an area's name centred on its point, a place's name above its dot."""
    x, y = _world_pixels(lon, lat, z)
    point_place = np.isin(kind.astype(str), ("city", "village", "village_unsure"))
    top = np.where(point_place, y - height - DOT_PX / 2, y - height / 2)
    bottom = np.where(point_place, y + DOT_PX / 2, y + height / 2)
    return np.column_stack([x - width / 2, top, x + width / 2, bottom])


def _place(lon, lat, width, height, kind, lo, hi) -> np.ndarray:
    """The min_zoom of each label (rows in importance order); LABEL_MAX_ZOOM + 1 for never."""
    never = LABEL_MAX_ZOOM + 1
    min_zoom = np.full(len(lon), never, dtype=np.int16)
    half = LABEL_GAP_PX / 2
    for z in range(LABEL_MIN_ZOOM, LABEL_MAX_ZOOM + 1):
        shown = np.flatnonzero((min_zoom <= z) & (hi >= z))
        waiting = np.flatnonzero((min_zoom == never) & (lo <= z) & (hi >= z))
        if not len(waiting):
            continue
        padded = _boxes(lon, lat, width, height, kind, z) + np.array([-half, -half, half, half])
        rects = shapely.box(padded[:, 0], padded[:, 1], padded[:, 2], padded[:, 3])
        if len(shown):
            hit = shapely.STRtree(rects[shown]).query(rects[waiting], predicate="intersects")[0]
            free = np.ones(len(waiting), bool)
            free[hit] = False
            waiting = waiting[free]
        if not len(waiting):
            continue
        # Among the labels still free, the more important one wins each overlap (greedy, in row order).
        a, b = shapely.STRtree(rects[waiting]).query(rects[waiting], predicate="intersects")
        pairs = a != b
        a, b = a[pairs], b[pairs]
        neighbours: dict[int, list[int]] = {}
        for i, j in zip(a.tolist(), b.tolist(), strict=True):
            neighbours.setdefault(i, []).append(j)
        taken = np.zeros(len(waiting), bool)
        for i in range(len(waiting)):
            near = neighbours.get(i)
            if near is None or not any(taken[j] for j in near if j < i):
                taken[i] = True
        min_zoom[waiting[taken]] = z
    return min_zoom
