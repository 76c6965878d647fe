"""A preset as a folium map: the page, its assets (served or inlined) and the configuration its script reads.

The layers themselves are drawn in the browser by ``coopgis/web/`` (core.js, popups.js, layers.js, map.js) from the
server's tiles (or, in a standalone file, from GeoJSON embedded in the page);
this module only declares them to folium so they take part in folium's layer
control, and writes the small configuration the script needs: the preset,
Persian labels, colours, choropleth class breaks and province extents. No
collection is ever written into a served page.
"""

from __future__ import annotations

import base64
import html
import json
from urllib.parse import quote

import folium
from branca.element import Element, Figure, MacroElement
from folium.elements import JSCSSMixin
from folium.plugins import Fullscreen, LocateControl
from folium.template import Template
from folium.utilities import JsCode

from coopgis.assets import BUNDLES, ICON, inline_script, inline_style, joined_in, read_asset, vendor_url
from coopgis.census import CENSUS_LABEL_FA, CENSUS_SOURCE, LINK_FA
from coopgis.dataset import ATTRIBUTION_SHORT
from coopgis.filters import FILTER_NAMES
from coopgis.joins import CLASS_WORDS_FA, QUOTA_SOURCE
from coopgis.mappage import CLASS_COLORS, KIND_COLORS, Page
from coopgis.maps import DEPRIVATION_CLASSES, Preset
from coopgis.vocab import GALAXY_SECTORS, KINDS, PRECISION_FA, SECTORS, STATUSES

IRAN_BOUNDS = [[24.0, 43.5], [40.5, 64.0]]     # [[south, west], [north, east]]
JS_SAFE = "-_.!~*'()"     # what encodeURIComponent leaves as it is
PREFETCH = "coopgis/prefetch.js"
NARROW_PX = 700    # a window this wide or narrower is a phone's: the layer list and the legend start closed
FIELD_ZOOM = 13     # where "locate me" flies to: the named villages around (no base map draws streets)
SECTOR_COLORS = {"clothing": "#e41a1c", "handicrafts": "#984ea3", "carpet": "#a65628", "beekeeping": "#e6ab02",
                 "fish_farming": "#377eb8", "poultry": "#4daf4a"}
INDICATOR_RAMP = ["#fef0d9", "#fdcc8a", "#fc8d59", "#e34a33", "#b30000"]
RAMP = ["#c7e9c0", "#a1d99b", "#74c476", "#31a354", "#006d2c"]
CLASS_FA = CLASS_WORDS_FA
HATCH = ('<svg class="coop-defs" width="0" height="0" aria-hidden="true"><defs>'
         '<pattern id="coop-hatch" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
         '<rect width="8" height="8" fill="#e6e6e6"></rect>'
         '<line x1="0" y1="0" x2="0" y2="8" stroke="#8a8a8a" stroke-width="3"></line></pattern></defs></svg>')
MEASURE_FA = {"cooperatives": "شمار تعاونی‌ها", "members": "شمار اعضا", "jobs": "اشتغال",
              "cooperatives_per_10k": "تعاونی در هر ۱۰٬۰۰۰ نفر", "members_per_10k": "عضو در هر ۱۰٬۰۰۰ نفر",
              "jobs_per_10k": "شغل در هر ۱۰٬۰۰۰ نفر"}
INDICATOR_FA = {"unemployment": "نرخ بیکاری (درصد)", "illiteracy": "بی‌سوادی جمعیت ۱۵ ساله و بیشتر (درصد)"}
LINK_COLUMN_FA = LINK_FA


def build_map(preset: Preset, page: Page) -> folium.Map:
    """The folium map of a preset, in a right-to-left Persian page."""
    fig = PageFigure(title=html.escape(f"{preset.title_fa} — coopgis"))
    # Not on the field page: its map shares a phone's window with the panel, so a guess from the window's size
    # would fetch tiles the map never shows, on the weakest connections.
    early = not page.inline and page.data is None and not preset.controls["field"]
    fig.first_script = _prefetch(preset, page) if early else ""
    # minZoom/maxZoom on the map itself: without them Leaflet takes its zoom range from the layers
    # and jumps to a layer's min_zoom (e.g. counties from 7) when that layer is added first.
    m = folium.Map(location=list(preset.center), zoom_start=preset.zoom, tiles=None,
                   control_scale=preset.controls["scale"], prefer_canvas=False, max_bounds=False,
                   minZoom=preset.min_zoom, maxZoom=preset.max_zoom)
    fig.add_child(m)
    served = not page.inline
    m.default_js, m.default_css = [], []      # Leaflet comes with the page's other assets (PageAssets)
    bundles = _bundles(preset, page)
    PageAssets(bundles, page).add_to(m)
    if page.basemap_url and served:
        folium.TileLayer(tiles=page.basemap_url, attr="نقشه پایه", name="نقشه پایه", overlay=False,
                         control=True, max_zoom=preset.max_zoom).add_to(m)
    Setup(config(preset, page), page.data).add_to(m)
    for spec in preset.layers:
        PresetLayer(spec.id, html.escape(spec.title_fa), show=spec.show).add_to(m)
    if preset.controls["fullscreen"]:
        fs = LaterFullscreen(position="topleft", title="تمام‌صفحه", title_cancel="خروج از تمام‌صفحه")
        _assets_of(fs, "fullscreen", page)
        fs.add_to(m)
    if preset.controls["locate"]:
        loc = Locate(position="topleft", flyTo=True, keepCurrentZoomLevel=False, showPopup=False,
                     initialZoomLevel=FIELD_ZOOM, locateOptions={"maxZoom": FIELD_ZOOM, "enableHighAccuracy": True},
                     strings={"title": "مکان من", "metersUnit": "متر",
                              "outsideMapBoundsMsg": "بیرون از محدوده نقشه"})
        _assets_of(loc, "locate", page)
        loc.add_to(m)
    if preset.controls["layers"]:
        # collapsed to its button on the field page and on a phone-sized window, where the open list covered
        # the filter chips and most of the map
        layers = LaterLayerControl(position="topright", collapsed=True)
        if not preset.controls["field"]:
            layers.options["collapsed"] = JsCode(f"window.innerWidth <= {NARROW_PX}")  # type: ignore[assignment]
        layers.add_to(m)
    Controls().add_to(m)
    return m


def config(preset: Preset, page: Page) -> dict:
    """The configuration ``map.js`` reads: labels, colours, layers and the facts of the data."""
    styling = preset.styling
    return {
        "preset": {"name": preset.name, "title_fa": preset.title_fa, "title_en": preset.title_en,
                   "description_fa": preset.description_fa},
        "mode": "embedded" if page.data is not None else "tiles",
        "base": page.base,
        "links": not page.inline,
        "note": page.note,
        "attribution": ATTRIBUTION_SHORT,
        "bounds": IRAN_BOUNDS,
        "narrow": NARROW_PX,
        "controls": {k: (list(v) if isinstance(v, tuple) else v) for k, v in preset.controls.items()},
        "filters": preset.filters,
        "filter_names": list(FILTER_NAMES),           # the parameters a page's address may filter by
        "place_filters": ["province", "county"],      # they frame the map; the others colour the areas too
        "census": {"label": CENSUS_LABEL_FA, "source": CENSUS_SOURCE, "links": LINK_COLUMN_FA},
        "quota": {"source": QUOTA_SOURCE},
        "layers": [{"id": s.id, "source": s.source, "style": s.style, "title_fa": s.title_fa,
                    "minZoom": s.min_zoom, "maxZoom": s.max_zoom, "filters": s.filters, "color": s.color}
                   for s in preset.layers],
        "colors": {"kinds": KIND_COLORS | styling.get("kinds", {}),
                   "sectors": SECTOR_COLORS | styling.get("sectors", {}),
                   "classes": CLASS_COLORS | styling.get("classes", {}),
                   "ramp": styling.get("ramp") or RAMP, "cluster": styling.get("cluster", "#1f3b73"),
                   "indicatorRamp": INDICATOR_RAMP,
                   "border": styling.get("border", "#5e3c99")},
        "labels": {"kinds": {t.code: t.fa for t in KINDS}, "sectors": {t.code: t.fa for t in SECTORS},
                   "statuses": {t.code: t.fa for t in STATUSES}, "precision": PRECISION_FA,
                   "classes": {c: CLASS_FA[c] for c in DEPRIVATION_CLASSES}, "measures": MEASURE_FA,
                   "indicators": INDICATOR_FA,
                   "galaxy": list(GALAXY_SECTORS)},
        "legend": {"sections": list(preset.legend_sections),
                   "items": [{"label_fa": i.label_fa, "label_en": i.label_en, "swatch": i.swatch,
                              "color": i.color} for i in preset.legend_items]},
        **page.facts,
        **page.extra,
    }


def to_script_json(value) -> str:
    """JSON that cannot end the ``<script>`` element it sits in."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# ---- folium elements --------------------------------------------------------------------------

class PageFigure(Figure):
    """folium's page with ``lang="fa" dir="rtl"`` on the root element, and a first script before any other."""

    first_script = ""

    _template = Template(
        "<!DOCTYPE html>\n"
        '<html lang="fa" dir="rtl">\n'
        "<head>\n"
        "{% if this.title %}<title>{{this.title}}</title>{% endif %}"
        "{{this.first_script}}"
        "    {{this.header.render(**kwargs)}}\n"
        "</head>\n"
        "<body>\n"
        "    {{this.html.render(**kwargs)}}\n"
        "</body>\n"
        "<script>\n"
        "    {{this.script.render(**kwargs)}}\n"
        "</script>\n"
        "</html>\n"
    )


class Raw(Element):
    """Text put into the page as it is: branca would otherwise read it as a Jinja template."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def render(self, **kwargs) -> str:
        return self.text


class RawParts(MacroElement):
    """An element that adds fixed text to the page's header, body and script, never templated."""

    header_text = html_text = script_text = ""

    def render(self, **kwargs):
        figure = self.get_root()
        if not isinstance(figure, Figure):
            raise TypeError("RawParts must be added to a map on a page (a branca Figure)")
        for part, text in ((figure.header, self.header_text), (figure.html, self.html_text),
                           (figure.script, self.script_text)):
            if text:
                part.add_child(Raw(text), name=self.get_name())


class PageAssets(RawParts):
    """The page's scripts and styles: links to ``/vendor`` or, in a standalone file, their text."""

    def __init__(self, bundles: list[str], page: Page):
        super().__init__()
        self._name = "PageAssets"
        order = ["leaflet", *bundles]
        css = [n for b in order for n in BUNDLES[b]["css"]]
        js = [n for b in order for n in BUNDLES[b]["js"]]
        if page.inline:
            icon = base64.b64encode(read_asset(page.web_dir, ICON)).decode("ascii")
            parts = [f'<link rel="icon" href="data:image/svg+xml;base64,{icon}">']
            parts += [f"<style>{inline_style(page.web_dir, n)}</style>" for n in css]
            parts += [f"<script>{inline_script(page.web_dir, n)}</script>" for n in js]
        else:   # the app's own scripts and styles in one request each (assets.JOINED)
            parts = [f'<link rel="icon" href="{html.escape(vendor_url(page.base, ICON))}">']
            parts += [f'<link rel="stylesheet" href="{html.escape(vendor_url(page.base, n))}">' for n in joined_in(css)]
            parts += [f'<script src="{html.escape(vendor_url(page.base, n))}"></script>' for n in joined_in(js)]
        self.header_text = "\n".join(parts)


class Setup(RawParts):
    """The configuration (and embedded data) as JSON script elements, read by ``coopgis.setup``."""

    def __init__(self, cfg: dict, data: dict | None):
        super().__init__()
        self._name = "Setup"
        parts = [f'<script type="application/json" id="coopgis-config">{to_script_json(cfg)}</script>']
        if data is not None:
            parts.append(f'<script type="application/json" id="coopgis-data">{to_script_json(data)}</script>')
        parts.append(HATCH)
        self.html_text = "\n".join(parts)

    def render(self, **kwargs):
        parent = self._parent
        if parent is None:
            raise TypeError("the coopgis setup must be added to a map")
        self.script_text = f'coopgis.setup({parent.get_name()}, "coopgis-config", "coopgis-data");'
        super().render(**kwargs)


def _later(cls: type[MacroElement]) -> Template:
    """The template of a folium element with its script put off until the map's first clusters are shown."""
    template = Template("{% macro script(this, kwargs) %}\ncoopgis.later(function () {\n"
                        "{{ script_of(this, kwargs) }}\n});\n{% endmacro %}")
    template.globals["script_of"] = cls._template.module.script   # before .module is first made
    return template


class LaterLayerControl(folium.LayerControl):
    """folium's layer list, added once the first clusters are shown (``coopgis.later``, web/layers.js)."""

    _template = _later(folium.LayerControl)


class LaterFullscreen(Fullscreen):
    """folium's fullscreen button, added once the first clusters are shown."""

    _template = _later(Fullscreen)


class PresetLayer(folium.map.Layer):
    """A layer of the preset, made by ``coopgis.layer`` and listed in folium's layer control."""

    _template = Template("""
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = coopgis.layer({{ this.layer_id|tojson }});
        {% endmacro %}
    """)

    def __init__(self, layer_id: str, name: str, show: bool):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "PresetLayer"
        self.layer_id = layer_id


class Locate(LocateControl):
    """folium's LocateControl, registered with ``coopgis`` so the field panel can start it."""

    _template = Template("""
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = L.control.locate(
                {{ this.options|tojson }}
            ).addTo({{ this._parent.get_name() }});
            coopgis.register("locate", {{ this.get_name() }});
        {% endmacro %}
    """)


class Controls(MacroElement):
    """Title, filters, choropleth switch, legend and field panel, once every layer exists."""

    _template = Template("""
        {% macro script(this, kwargs) %}
            coopgis.controls();
        {% endmacro %}
    """)

    def __init__(self):
        super().__init__()
        self._name = "Controls"


# ---- helpers ----------------------------------------------------------------------------------

def _bundles(preset: Preset, page: Page) -> list[str]:
    """The asset bundles a preset needs besides Leaflet, in load order."""
    out = []
    if page.data is None:    # boundary layers come as MVT from the server; every served map page
        out.append("vectorgrid")     # has it, so all of them load one cached file (assets.JOINED)
    if page.inline:
        out += [b for b, on in (("fullscreen", preset.controls["fullscreen"]),
                                ("locate", preset.controls["locate"])) if on]
    out.append("coopgis")
    if preset.controls["field"]:
        out.append("field")
    return out


def _prefetch(preset: Preset, page: Page) -> str:
    """The head's first script: the first view's cooperative tiles asked for while the scripts load.

    ``web/prefetch.js`` works out the tiles for the window's size; the addresses carry each shown cooperative
    layer's filters as ``web/core.js`` writes them (sorted, ``encodeURIComponent``), so the layer finds them.
    """
    queries = []
    for spec in preset.layers:
        if spec.source == "cooperatives" and spec.show and \
                (spec.min_zoom or 0) <= preset.zoom <= (spec.max_zoom if spec.max_zoom is not None else 22):
            params = {k: v for k, v in (preset.filters | spec.filters).items() if v not in (None, "")}
            queries.append("?" + "&".join(f"{quote(k, safe=JS_SAFE)}={quote(str(v), safe=JS_SAFE)}"
                                          for k, v in sorted(params.items())) if params else "")
    if not queries:
        return ""
    view = {"base": page.base, "center": list(preset.center), "zoom": preset.zoom, "bounds": IRAN_BOUNDS,
            "queries": list(dict.fromkeys(queries)), "filter_names": list(FILTER_NAMES)}
    return (f"<script>{inline_script(page.web_dir, PREFETCH)}\n"
            f"coopgisPrefetch.start({to_script_json(view)});</script>\n")


def _assets_of(plugin: JSCSSMixin, bundle: str, page: Page) -> None:
    """Point a folium plugin's JS/CSS links at ``/vendor`` (or drop them when the page inlines them)."""
    if page.inline:
        plugin.default_js, plugin.default_css = [], []
        return
    plugin.default_js = [(f"{bundle}_js_{i}", vendor_url(page.base, n)) for i, n in enumerate(BUNDLES[bundle]["js"])]
    plugin.default_css = [(f"{bundle}_css_{i}", vendor_url(page.base, n))
                          for i, n in enumerate(BUNDLES[bundle]["css"])]


def render_preset(preset: Preset, page: Page) -> str:
    """The HTML page of a preset; ``page`` says where assets and data come from."""
    return build_map(preset, page).get_root().render()


if __name__ == "__main__":   # the server's child process (mappage.render_page): a pickled (preset, page) in, HTML out
    import pickle
    import sys

    preset, page = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(render_preset(preset, page).encode("utf-8"))
