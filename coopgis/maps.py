"""Named maps: the presets in ``maps/*.toml``, loaded, validated and rendered with folium.

A preset is a small declarative TOML file (title, description, view, layers,
default filters, colours, legend); adding a map is adding a file. This module
checks every key of a preset and names the file and the key when one is wrong.
Rendering a preset into a page is :func:`coopgis.mapview.render_preset`. It does not serve
HTTP (``api/maps.py``) nor select data for standalone files (``standalone.py``).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from coopgis.filters import BOOL_FILTERS, TEXT_FILTERS, VOCABULARY_FILTERS
from coopgis.joins import DEPRIVATION_CLASSES
from coopgis.settings import ROOT
from coopgis.vocab import KINDS, SECTORS

WEB = Path(__file__).resolve().parent / "web"
SOURCES = ("cooperatives", "provinces", "counties", "deprivation")
# unemployment, illiteracy: census 1395 indicators of counties and provinces (their own layers).
STYLES = {
    "cooperatives": ("clusters",),
    "provinces": ("choropleth", "outline", "unemployment", "illiteracy"),
    "counties": ("choropleth", "outline", "unemployment", "illiteracy"),
    "deprivation": ("classes", "border"),
}
INDICATOR_STYLES = ("unemployment", "illiteracy")
MEASURES = ("cooperatives", "members", "jobs", "cooperatives_per_10k", "members_per_10k", "jobs_per_10k")
FILTER_CONTROLS = ("kind", "sector", "status")
LEGEND_SECTIONS = ("choropleth", "kinds", "sectors", "precision", "clusters", "classes", "border", "census", "quota")
SWATCHES = ("none", "fill", "dot", "ring", "hatch", "line")
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


class MapSettings(BaseSettings):
    """Where presets and browser libraries live, and how big a standalone file may get (``COOPGIS_*``)."""

    model_config = SettingsConfigDict(env_prefix="COOPGIS_")

    maps_dir: Path = Field(default=ROOT / "maps", description="folder of map presets (*.toml)")
    web_dir: Path = Field(default=WEB, description="folder holding package.json and node_modules")
    max_render: int = Field(default=5000, ge=1, description="most cooperatives in one standalone file")


class PresetError(ValueError):
    """A preset file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a map: what it shows, how, and whether it is on at first."""

    id: str
    source: str
    style: str
    title_fa: str
    title_en: str
    show: bool = True
    min_zoom: int | None = None
    max_zoom: int | None = None
    filters: dict[str, str] = field(default_factory=dict)
    color: str | None = None


@dataclass(frozen=True)
class LegendItem:
    """A line of the legend written in the preset."""

    label_fa: str
    label_en: str = ""
    swatch: str = "none"
    color: str | None = None


@dataclass(frozen=True)
class Preset:
    """A named map as declared in its TOML file."""

    name: str
    path: Path
    title_fa: str
    title_en: str
    description_fa: str
    description_en: str
    audience: str
    order: int
    center: tuple[float, float]
    zoom: int
    min_zoom: int
    max_zoom: int
    controls: dict
    filters: dict[str, str]
    layers: tuple[LayerSpec, ...]
    styling: dict
    legend_sections: tuple[str, ...]
    legend_items: tuple[LegendItem, ...]

    def summary(self, base: str = "") -> dict:
        """The preset as listed by ``/maps?f=json``."""
        return {"name": self.name, "title_fa": self.title_fa, "title_en": self.title_en,
                "description_fa": self.description_fa, "description_en": self.description_en,
                "audience": self.audience, "href": f"{base}/maps/{self.name}",
                "layers": [{"id": s.id, "source": s.source, "style": s.style, "title_fa": s.title_fa,
                            "title_en": s.title_en, "show": s.show} for s in self.layers]}


def load_presets(folder: Path) -> tuple[dict[str, Preset], dict[str, str]]:
    """Every preset of a folder by name, in display order, and the errors of the broken files by name."""
    presets, errors = [], {}
    for path in sorted(Path(folder).glob("*.toml")):
        try:
            presets.append(load_preset(path))
        except PresetError as exc:
            errors[path.stem] = str(exc)
    presets.sort(key=lambda p: (p.order, p.name))
    return {p.name: p for p in presets}, errors


def load_preset(path: Path) -> Preset:
    """One preset file, checked key by key; :class:`PresetError` names the file and the bad key."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"{path.name}: cannot read the file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{path.name}: not valid TOML ({exc})") from None
    return _Checker(path).preset(doc)


# ---- validation -------------------------------------------------------------------------------

class _Checker:
    """Reads a parsed TOML document into a Preset, raising PresetError at the first bad key."""

    TOP = {"name", "title_fa", "title_en", "description_fa", "description_en", "audience", "order", "view",
           "controls", "filters", "styling", "layers", "legend"}

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, message: str):
        raise PresetError(f"{self.path.name}: {where}: {message}")

    def preset(self, doc: dict) -> Preset:
        self.keys(doc, self.TOP, "top level")
        name = doc.get("name", self.path.stem)
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            self.fail("name", f"{name!r} must be lower-case letters, digits, '-' or '_' (at most 40)")
        if name != self.path.stem:
            self.fail("name", f"{name!r} must equal the file name {self.path.stem!r}")
        view = self.table(doc, "view", {"center", "zoom", "min_zoom", "max_zoom"})
        center = view.get("center", [32.4, 53.7])
        if (not isinstance(center, list) or len(center) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in center)
                or not (20 <= center[0] <= 45 and 40 <= center[1] <= 70)):
            self.fail("view.center", f"{center!r} must be [latitude, longitude] in and around Iran")
        min_zoom = self.integer(view, "min_zoom", "view.min_zoom", 4, 0, 20)
        max_zoom = self.integer(view, "max_zoom", "view.max_zoom", 18, 0, 22)
        zoom = self.integer(view, "zoom", "view.zoom", 5, min_zoom, max_zoom)
        layers = doc.get("layers", [])
        if not isinstance(layers, list) or not layers:
            self.fail("layers", "give at least one [[layers]] table")
        specs = tuple(self.layer(i, t) for i, t in enumerate(layers))
        ids = [s.id for s in specs]
        if len(set(ids)) != len(ids):
            self.fail("layers", f"layer ids must be unique: {ids}")
        legend = self.table(doc, "legend", {"sections", "items"})
        sections = self.choices(legend, "sections", "legend.sections", LEGEND_SECTIONS)
        items = legend.get("items", [])
        if not isinstance(items, list):
            self.fail("legend.items", "must be a list of [[legend.items]] tables")
        return Preset(
            name=name, path=self.path,
            title_fa=self.text(doc, "title_fa", "title_fa", required=True),
            title_en=self.text(doc, "title_en", "title_en", required=True),
            description_fa=self.text(doc, "description_fa", "description_fa"),
            description_en=self.text(doc, "description_en", "description_en"),
            audience=self.text(doc, "audience", "audience"),
            order=self.integer(doc, "order", "order", 100, 0, 10_000),
            center=(float(center[0]), float(center[1])), zoom=zoom, min_zoom=min_zoom, max_zoom=max_zoom,
            controls=self.controls(self.table(doc, "controls", {"layers", "fullscreen", "scale", "locate",
                                                                "filter", "measures", "field", "troubled"})),
            filters=self.filters(self.table(doc, "filters", None), "filters"),
            layers=specs,
            styling=self.styling(self.table(doc, "styling", {"kinds", "sectors", "classes", "ramp",
                                                             "cluster", "border"})),
            legend_sections=sections,
            legend_items=tuple(self.legend_item(i, t) for i, t in enumerate(items)),
        )

    def keys(self, table: dict, allowed: set[str], where: str) -> None:
        for k in table:
            if k not in allowed:
                self.fail(f"{where}.{k}" if where != "top level" else k,
                          f"unknown key; allowed here: {', '.join(sorted(allowed))}")

    def table(self, doc: dict, key: str, allowed: set[str] | None) -> dict:
        value = doc.get(key, {})
        if not isinstance(value, dict):
            self.fail(key, "must be a table")
        if allowed is not None:
            self.keys(value, allowed, key)
        return value

    def text(self, table: dict, key: str, where: str, required: bool = False) -> str:
        value = table.get(key)
        if value is None:
            if required:
                self.fail(where, "is required")
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            self.fail(where, "must be a non-empty string" if required else "must be a string")
        return value.strip()

    def integer(self, table: dict, key: str, where: str, default: int, lo: int, hi: int) -> int:
        value = table.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            self.fail(where, f"{value!r} must be a whole number from {lo} to {hi}")
        return value

    def boolean(self, table: dict, key: str, where: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            self.fail(where, f"{value!r} must be true or false")
        return value

    def color(self, value, where: str) -> str:
        if not isinstance(value, str) or not _COLOR.fullmatch(value):
            self.fail(where, f"{value!r} must be a colour like \"#1b9e77\"")
        return value.lower()

    def choices(self, table: dict, key: str, where: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list):
            self.fail(where, "must be a list")
        for v in value:
            if v not in allowed:
                self.fail(where, f"{v!r} is not one of: {', '.join(allowed)}")
        return tuple(value)

    def controls(self, t: dict) -> dict:
        return {"layers": self.boolean(t, "layers", "controls.layers", True),
                "fullscreen": self.boolean(t, "fullscreen", "controls.fullscreen", True),
                "scale": self.boolean(t, "scale", "controls.scale", True),
                "locate": self.boolean(t, "locate", "controls.locate", False),
                "field": self.boolean(t, "field", "controls.field", False),
                "troubled": self.boolean(t, "troubled", "controls.troubled", False),
                "filter": self.choices(t, "filter", "controls.filter", FILTER_CONTROLS),
                "measures": self.choices(t, "measures", "controls.measures", MEASURES)}

    def filters(self, t: dict, where: str) -> dict[str, str]:
        """Filters as query-string values, each checked against its vocabulary."""
        parsers = VOCABULARY_FILTERS
        out = {}
        for key, value in t.items():
            here = f"{where}.{key}"
            if key in BOOL_FILTERS:
                if not isinstance(value, bool):
                    self.fail(here, f"{value!r} must be true or false")
                out[key] = "true" if value else "false"
            elif key in parsers:
                values = value if isinstance(value, list) else [value]
                codes: list[str] = []
                for v in values:
                    code = parsers[key](v) if isinstance(v, str) else None
                    if code is None:
                        self.fail(here, f"{v!r} is not a known {key}")
                    codes.append(str(code))
                out[key] = ",".join(codes)
            elif key in TEXT_FILTERS:
                if not isinstance(value, (str, int)) or isinstance(value, bool):
                    self.fail(here, f"{value!r} must be a string")
                out[key] = str(value)
            else:
                self.fail(here, "unknown filter; allowed: " + ", ".join(
                    sorted((*BOOL_FILTERS, *parsers, *TEXT_FILTERS))))
        return out

    def layer(self, i: int, t) -> LayerSpec:
        where = f"layers[{i}]"
        if not isinstance(t, dict):
            self.fail(where, "must be a table")
        self.keys(t, {"id", "source", "style", "title_fa", "title_en", "show", "min_zoom", "max_zoom",
                      "filters", "color"}, where)
        lid = t.get("id")
        if not isinstance(lid, str) or not _NAME.fullmatch(lid):
            self.fail(f"{where}.id", f"{lid!r} must be lower-case letters, digits, '-' or '_'")
        source = t.get("source")
        if source not in SOURCES:
            self.fail(f"{where}.source", f"{source!r} is not one of: {', '.join(SOURCES)}")
        style = t.get("style", STYLES[source][0])
        if style not in STYLES[source]:
            self.fail(f"{where}.style", f"{style!r} is not a style of {source}: {', '.join(STYLES[source])}")
        filters = t.get("filters", {})
        if not isinstance(filters, dict):
            self.fail(f"{where}.filters", "must be a table")
        if filters and source != "cooperatives":
            self.fail(f"{where}.filters", "filters apply to cooperative layers only")
        min_zoom = t.get("min_zoom")
        max_zoom = t.get("max_zoom")
        return LayerSpec(
            id=lid, source=source, style=style,
            title_fa=self.text(t, "title_fa", f"{where}.title_fa", required=True),
            title_en=self.text(t, "title_en", f"{where}.title_en", required=True),
            show=self.boolean(t, "show", f"{where}.show", True),
            min_zoom=None if min_zoom is None else self.integer(t, "min_zoom", f"{where}.min_zoom", 0, 0, 22),
            max_zoom=None if max_zoom is None else self.integer(t, "max_zoom", f"{where}.max_zoom", 22, 0, 22),
            filters=self.filters(filters, f"{where}.filters"),
            color=None if t.get("color") is None else self.color(t["color"], f"{where}.color"),
        )

    def styling(self, t: dict) -> dict:
        out: dict[str, Any] = {}
        for key, terms in (("kinds", KINDS), ("sectors", SECTORS), ("classes", None)):
            table = t.get(key, {})
            if not isinstance(table, dict):
                self.fail(f"styling.{key}", "must be a table of code = \"#rrggbb\"")
            known = [x.code for x in terms] if terms else list(DEPRIVATION_CLASSES)
            for code, value in table.items():
                if code not in known:
                    self.fail(f"styling.{key}.{code}", f"unknown code; known: {', '.join(known)}")
                self.color(value, f"styling.{key}.{code}")
            out[key] = {k: v.lower() for k, v in table.items()}
        ramp = t.get("ramp", [])
        if not isinstance(ramp, list) or (ramp and len(ramp) != 5):
            self.fail("styling.ramp", "must be a list of five colours, lightest first")
        out["ramp"] = [self.color(c, f"styling.ramp[{i}]") for i, c in enumerate(ramp)]
        for key in ("cluster", "border"):
            if key in t:
                out[key] = self.color(t[key], f"styling.{key}")
        return out

    def legend_item(self, i: int, t) -> LegendItem:
        where = f"legend.items[{i}]"
        if not isinstance(t, dict):
            self.fail(where, "must be a table")
        self.keys(t, {"label_fa", "label_en", "swatch", "color"}, where)
        swatch = t.get("swatch", "none")
        if swatch not in SWATCHES:
            self.fail(f"{where}.swatch", f"{swatch!r} is not one of: {', '.join(SWATCHES)}")
        return LegendItem(label_fa=self.text(t, "label_fa", f"{where}.label_fa", required=True),
                          label_en=self.text(t, "label_en", f"{where}.label_en"), swatch=swatch,
                          color=None if t.get("color") is None else self.color(t["color"], f"{where}.color"))


__all__ = ["MapSettings", "Preset", "PresetError", "LayerSpec", "LegendItem", "load_presets", "load_preset"]
