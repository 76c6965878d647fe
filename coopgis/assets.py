"""The browser files of the map pages: an explicit allow-list, served under ``/vendor`` or inlined.

Third-party files come from npm (``npm ci --prefix coopgis/web``, pinned in
``coopgis/web/package-lock.json``) and are read from ``node_modules``; coopgis's
own script and styles sit beside ``package.json``. Only the files listed in
:data:`ASSETS` are ever served, never the rest of ``node_modules``. For a
standalone file the same files are inlined, with the images and fonts their
stylesheets refer to turned into ``data:`` URIs.
"""

from __future__ import annotations

import base64
import gzip
import posixpath
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

NPM_HINT = "run `npm ci --prefix coopgis/web` to install the map libraries (Leaflet and plugins, Vazirmatn)"


@dataclass(frozen=True)
class Asset:
    """A file the app may serve: where it lives (npm package or coopgis's own) and its media type."""

    origin: str          # "npm": under node_modules; "own": beside package.json
    path: str
    media: str


_JS, _CSS, _PNG, _WOFF2 = ("text/javascript; charset=utf-8", "text/css; charset=utf-8", "image/png",
                           "font/woff2")
ASSETS: dict[str, Asset] = {
    "leaflet/leaflet.js": Asset("npm", "leaflet/dist/leaflet.js", _JS),
    "leaflet/leaflet.css": Asset("npm", "leaflet/dist/leaflet.css", _CSS),
    "leaflet/images/layers.png": Asset("npm", "leaflet/dist/images/layers.png", _PNG),
    "leaflet/images/layers-2x.png": Asset("npm", "leaflet/dist/images/layers-2x.png", _PNG),
    "leaflet/images/marker-icon.png": Asset("npm", "leaflet/dist/images/marker-icon.png", _PNG),
    "leaflet/images/marker-icon-2x.png": Asset("npm", "leaflet/dist/images/marker-icon-2x.png", _PNG),
    "leaflet/images/marker-shadow.png": Asset("npm", "leaflet/dist/images/marker-shadow.png", _PNG),
    "vectorgrid/Leaflet.VectorGrid.bundled.min.js":
        Asset("npm", "leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js", _JS),
    "locatecontrol/L.Control.Locate.min.js": Asset("npm", "leaflet.locatecontrol/dist/L.Control.Locate.min.js", _JS),
    "locatecontrol/L.Control.Locate.min.css":
        Asset("npm", "leaflet.locatecontrol/dist/L.Control.Locate.min.css", _CSS),
    "fullscreen/Control.FullScreen.js": Asset("npm", "leaflet.fullscreen/dist/Control.FullScreen.umd.js", _JS),
    "fullscreen/Control.FullScreen.css": Asset("npm", "leaflet.fullscreen/dist/Control.FullScreen.css", _CSS),
    "vazirmatn/Vazirmatn-Variable.woff2": Asset("npm", "vazirmatn/fonts/webfonts/Vazirmatn[wght].woff2", _WOFF2),
    "coopgis/fonts.css": Asset("own", "fonts.css", _CSS),
    "coopgis/map.css": Asset("own", "map.css", _CSS),
    "coopgis/pages.css": Asset("own", "pages.css", _CSS),
    "coopgis/icon.svg": Asset("own", "icon.svg", "image/svg+xml"),
    "coopgis/core.js": Asset("own", "core.js", _JS),
    "coopgis/popups.js": Asset("own", "popups.js", _JS),
    "coopgis/layers.js": Asset("own", "layers.js", _JS),
    "coopgis/map.js": Asset("own", "map.js", _JS),
    "coopgis/field.js": Asset("own", "field.js", _JS),
    "coopgis/labels.js": Asset("own", "labels.js", _JS),
    "coopgis/labels.css": Asset("own", "labels.css", _CSS),
    "coopgis/messages.js": Asset("own", "messages.js", _JS),
    "coopgis/signin.js": Asset("own", "signin.js", _JS),
    "coopgis/offline.js": Asset("own", "offline.js", _JS),
    "coopgis/cards.js": Asset("own", "cards.js", _JS),
    "coopgis/report.js": Asset("own", "report.js", _JS),
    "coopgis/field.css": Asset("own", "field.css", _CSS),
    "coopgis/review.js": Asset("own", "review.js", _JS),
    "coopgis/review.css": Asset("own", "review.css", _CSS),
    "coopgis/filters.js": Asset("own", "filters.js", _JS),
    "coopgis/clusters.js": Asset("own", "clusters.js", _JS),
    "coopgis/item.js": Asset("own", "item.js", _JS),
    "coopgis/prefetch.js": Asset("own", "prefetch.js", _JS),
}

ICON = "coopgis/icon.svg"

# What each part of a page needs, in load order.
BUNDLES: dict[str, dict[str, tuple[str, ...]]] = {
    "leaflet": {"js": ("leaflet/leaflet.js",), "css": ("leaflet/leaflet.css",)},
    "vectorgrid": {"js": ("vectorgrid/Leaflet.VectorGrid.bundled.min.js",), "css": ()},
    "locate": {"js": ("locatecontrol/L.Control.Locate.min.js",), "css": ("locatecontrol/L.Control.Locate.min.css",)},
    "fullscreen": {"js": ("fullscreen/Control.FullScreen.js",), "css": ("fullscreen/Control.FullScreen.css",)},
    "coopgis": {"js": ("coopgis/core.js", "coopgis/popups.js", "coopgis/layers.js", "coopgis/filters.js",
                       "coopgis/clusters.js", "coopgis/map.js", "coopgis/labels.js"),
                "css": ("coopgis/fonts.css", "coopgis/map.css", "coopgis/labels.css")},
    "field": {"js": ("coopgis/messages.js", "coopgis/signin.js", "coopgis/offline.js", "coopgis/cards.js",
                     "coopgis/report.js", "coopgis/field.js"), "css": ("coopgis/field.css",)},
    "item": {"js": ("coopgis/item.js",), "css": ("coopgis/fonts.css", "coopgis/map.css")},
}

# Files a served map page asks for in one request instead of several (each its parts joined in order, the
# scripts separated by ";\n"): fewer round trips before the first clusters. Only names listed here are joined.
# A stylesheet's relative url()s are rewritten to point from the joined file's folder to the same files.
JOINED: dict[str, tuple[str, ...]] = {
    "coopgis/map-bundle.js": (*BUNDLES["leaflet"]["js"], *BUNDLES["vectorgrid"]["js"], *BUNDLES["coopgis"]["js"]),
    "coopgis/map-bundle.css": (*BUNDLES["leaflet"]["css"], *BUNDLES["coopgis"]["css"]),
}

_URL = re.compile(r"url\(\s*(['\"]?)([^'\")]+)\1\s*\)")
_COMPRESSIBLE = ("text/", "image/svg")


def file_of(web_dir: Path, name: str) -> Path | None:
    """The file behind an allow-listed name, or None when the name is not on the list."""
    asset = ASSETS.get(name)
    if asset is None:
        return None
    root = Path(web_dir) / "node_modules" if asset.origin == "npm" else Path(web_dir)
    return root / asset.path


def missing_assets(web_dir: Path) -> list[str]:
    """Allow-listed names whose files are absent (npm not run, or a file removed)."""
    return [name for name in ASSETS if not (path := file_of(web_dir, name)) or not path.is_file()]


def vendor_url(base: str, name: str) -> str:
    """The app URL of an allow-listed file (``base`` is the app's root path)."""
    return f"{base}/vendor/{name}"


def joined_in(names: list[str]) -> list[str]:
    """``names`` with each run that a :data:`JOINED` file holds (in its order) replaced by that file."""
    out, i = [], 0
    while i < len(names):
        for joined, parts in JOINED.items():
            if tuple(names[i:i + len(parts)]) == parts:
                out.append(joined)
                i += len(parts)
                break
        else:
            out.append(names[i])
            i += 1
    return out


def read_asset(web_dir: Path, name: str) -> bytes:
    """The bytes of an allow-listed file (KeyError for any other name, OSError when absent)."""
    if name in JOINED:
        return _joined(Path(web_dir), name, tuple(_mtime(web_dir, n) for n in JOINED[name]))
    path = file_of(web_dir, name)
    if path is None:
        raise KeyError(name)
    return _read(path, path.stat().st_mtime_ns)


def gzipped(web_dir: Path, name: str) -> bytes | None:
    """The file gzip-compressed (kept in memory), or None for media that do not compress."""
    if name in JOINED:
        return _gzip_joined(Path(web_dir), name, tuple(_mtime(web_dir, n) for n in JOINED[name]))
    if not ASSETS[name].media.startswith(_COMPRESSIBLE):
        return None
    path = file_of(web_dir, name)
    if path is None:
        raise KeyError(name)
    return _gzip(path, path.stat().st_mtime_ns)


def inline_script(web_dir: Path, name: str) -> str:
    """A script's text, safe to put between ``<script>`` tags."""
    text = read_asset(web_dir, name).decode("utf-8")
    return re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE)


def inline_style(web_dir: Path, name: str) -> str:
    """A stylesheet's text with its allow-listed images and fonts as ``data:`` URIs."""
    text = read_asset(web_dir, name).decode("utf-8")

    def replace(m: re.Match) -> str:
        ref = m.group(2).strip()
        if ref.startswith(("data:", "#")):
            return m.group(0)
        target = _url_target(name, ref)
        if target not in ASSETS:
            return "url(data:,)"       # never point a standalone file at anything outside it
        data = base64.b64encode(read_asset(web_dir, target)).decode("ascii")
        return f"url(data:{ASSETS[target].media.split(';')[0]};base64,{data})"

    return re.sub(r"</(style)", r"<\\/\1", _URL.sub(replace, text), flags=re.IGNORECASE)


@lru_cache(maxsize=64)
def _read(path: Path, mtime_ns: int) -> bytes:
    return path.read_bytes()


@lru_cache(maxsize=64)
def _gzip(path: Path, mtime_ns: int) -> bytes:
    return gzip.compress(_read(path, mtime_ns), compresslevel=9, mtime=0)


def media_of(name: str) -> str:
    """The media type of an allow-listed or joined file."""
    return ASSETS[JOINED[name][0] if name in JOINED else name].media


def _mtime(web_dir: Path, name: str) -> int:
    path = file_of(web_dir, name)
    if path is None:
        raise KeyError(name)
    return path.stat().st_mtime_ns


@lru_cache(maxsize=8)
def _joined(web_dir: Path, name: str, mtimes: tuple[int, ...]) -> bytes:
    if name.endswith(".js"):
        return b"\n;\n".join(read_asset(web_dir, part) for part in JOINED[name])
    return b"\n".join(_moved_css(read_asset(web_dir, part).decode("utf-8"), part, name).encode("utf-8")
                      for part in JOINED[name])


def _moved_css(text: str, part: str, joined: str) -> str:
    """A stylesheet's relative url()s made relative to the joined file's folder instead of the part's."""
    def replace(m: re.Match) -> str:
        ref = m.group(2).strip()
        if ref.startswith(("data:", "#", "/")) or "://" in ref:
            return m.group(0)
        target = posixpath.relpath(_url_target(part, ref), posixpath.dirname(joined))
        return f"url({m.group(1)}{target}{m.group(1)})"

    return _URL.sub(replace, text)


def _url_target(stylesheet: str, ref: str) -> str:
    """The allow-list name a stylesheet's relative ``url(ref)`` points at (``leaflet/images/layers.png``)."""
    return posixpath.normpath(posixpath.join(posixpath.dirname(stylesheet), ref))


@lru_cache(maxsize=8)
def _gzip_joined(web_dir: Path, name: str, mtimes: tuple[int, ...]) -> bytes:
    return gzip.compress(_joined(web_dir, name, mtimes), compresslevel=9, mtime=0)
