"""Section 4: time to first rendered clusters of the national map page, in headless Chromium.

Measured with Playwright for Python driving Debian's ``/usr/bin/chromium`` (never a
downloaded browser), a fresh browser context (empty cache) per load: the time from
navigation start until the first cluster marker element is in the DOM (a
MutationObserver installed before any page script records ``performance.now()``),
the bytes transferred before that moment (Resource Timing ``transferSize`` of the
document and of every resource that finished before it) and the page's HTML size.

Beside it, two folium pages made in the same run from the same cooperatives: a
naive ``folium.plugins.MarkerCluster`` holding one ``folium.Marker`` per cooperative
and a ``folium.plugins.FastMarkerCluster``. Their CDN URLs are replaced by local
files (Leaflet from ``coopgis/web/node_modules`` when present, the rest from npm into
``benchmarks/.cache/node``) served by a static server on 127.0.0.1; a page that
shows no cluster within the limit is reported as "> limit" with its size.

The national page (``/maps/national`` of ``coopgis serve``) is measured only when it
exists; its cluster selector is read from the maps code (``coopgis/web/*.js``), else
generic selectors are used, with a fallback of "first successful cooperative tile
response and a rendered marker".
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

from benchmarks.common import (
    CACHE,
    NO_RATE_LIMITS,
    READY,
    ROOT,
    Config,
    Results,
    Server,
    coopgis_serve_argv,
    free_port,
    load_dataset,
    md_table,
    med,
    mm,
    run,
    say,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SITE = CACHE / "page-site"
NODE_DIR = CACHE / "node"
WEB = ROOT / "coopgis" / "web"
NPM_PACKAGES = ["leaflet.markercluster@1.1.0", "jquery@3.7.1", "bootstrap@5.2.2",
                "@fortawesome/fontawesome-free@6.2.0", "leaflet.awesome-markers@2.0.4", "leaflet@1.9.3"]
GENERIC_CLUSTER = [".marker-cluster", ".coop-cluster", ".cluster-marker", "[data-cluster]",
                   ".leaflet-marker-icon[class*='cluster']"]
# Fallback only when no cluster class is known: a marker drawn after a cooperative tile arrived
# (not canvas tiles: the boundary layers draw those).
RENDERED_MARKER = ".leaflet-marker-icon, .leaflet-marker-pane > *, svg path.leaflet-interactive"
COOP_TILES = "/tiles/cooperatives/"

# Installed before any script of the page: records when the first cluster element appears.
PROBE = r"""
(() => {
  const B = window.__bench = { first: null, how: null, tileAt: null };
  const SEL = %(selectors)s, FALLBACK = %(fallback)s, TILE = %(tile)s;
  const check = () => {
    if (B.first !== null) return;
    for (const s of SEL) {
      try { if (document.querySelector(s)) { B.first = performance.now(); B.how = s; return; } } catch (e) {}
    }
    if (FALLBACK && B.tileAt !== null && document.querySelector(FALLBACK)) {
      B.first = Math.max(performance.now(), B.tileAt); B.how = 'tile response + rendered marker';
    }
  };
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        if (TILE && B.tileAt === null && e.name.includes(TILE) && (!e.responseStatus || e.responseStatus === 200)
            && e.transferSize > 0) { B.tileAt = e.responseEnd; check(); }
      }
    }).observe({ type: 'resource', buffered: true });
  } catch (e) {}
  new MutationObserver(check).observe(document, { childList: true, subtree: true, attributes: true,
                                                  attributeFilter: ['class'] });
  const tick = () => { check(); if (B.first === null) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
})();
"""

COLLECT = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const t = window.__bench.first;
  const res = performance.getEntriesByType('resource');
  let bytes = nav ? nav.transferSize : 0;
  let n = 0;
  for (const r of res) if (r.responseEnd <= t) { bytes += r.transferSize; n += 1; }
  const scripts = res.filter(r => r.initiatorType === 'script' && r.responseEnd <= t).map(r => r.responseEnd);
  const tiles = res.filter(r => r.name.includes(%(tile)s)).sort((a, b) => a.startTime - b.startTime);
  return { first: t, how: window.__bench.how, bytes: bytes, resources: n, total_resources: res.length,
           html_transfer: nav ? nav.transferSize : 0, html_body: nav ? nav.decodedBodySize : 0,
           path: { html: nav ? nav.responseEnd : null, scripts: scripts.length ? Math.max(...scripts) : null,
                   dom_interactive: nav ? nav.domInteractive : null,
                   tile_requested: tiles.length ? tiles[0].startTime : null,
                   tile_received: tiles.length ? Math.min(...tiles.map(r => r.responseEnd)) : null,
                   tiles_before: tiles.filter(r => r.responseEnd <= t).length } };
}"""


# ---- folium pages ------------------------------------------------------------------------------

def ensure_vendor(cfg: Config) -> str | None:
    """npm packages folium's pages need, under benchmarks/.cache/node; None when there, else why not."""
    mods = NODE_DIR / "node_modules"
    want = [p.rsplit("@", 1)[0] for p in NPM_PACKAGES]
    if all((mods / w / "package.json").is_file() for w in want):
        return None
    if not shutil.which("npm"):
        return "npm is not installed"
    if not cfg.install:
        return "installs disabled (--no-install)"
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    r = run(["npm", "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", *NPM_PACKAGES], timeout=600)
    return None if r.returncode == 0 else f"npm install failed: {(r.stderr or r.stdout)[-400:]}"


def _local(url: str) -> str | None:
    """The local path (under the static site) serving a folium CDN URL, or None."""
    name = url.rsplit("/", 1)[-1]
    if "/leaflet@" in url and "/dist/" in url:
        if (WEB / "node_modules" / "leaflet" / "dist" / name).is_file():
            return f"/vendor/web/leaflet/dist/{name}"
        return f"/vendor/npm/leaflet/dist/{name}"
    table = {
        "jquery-": "/vendor/npm/jquery/dist/jquery.min.js",
        "bootstrap.bundle.min.js": "/vendor/npm/bootstrap/dist/js/bootstrap.bundle.min.js",
        "bootstrap.min.css": "/vendor/npm/bootstrap/dist/css/bootstrap.min.css",
        "all.min.css": "/vendor/npm/@fortawesome/fontawesome-free/css/all.min.css",
        "leaflet.awesome-markers.js": "/vendor/npm/leaflet.awesome-markers/dist/leaflet.awesome-markers.js",
        "leaflet.awesome-markers.css": "/vendor/npm/leaflet.awesome-markers/dist/leaflet.awesome-markers.css",
        "leaflet.markercluster.js": "/vendor/npm/leaflet.markercluster/dist/leaflet.markercluster.js",
        "MarkerCluster.css": "/vendor/npm/leaflet.markercluster/dist/MarkerCluster.css",
        "MarkerCluster.Default.css": "/vendor/npm/leaflet.markercluster/dist/MarkerCluster.Default.css",
    }
    for k, v in table.items():
        if name.startswith(k) if k.endswith("-") else name == k:
            return v
    return None


def localise(html: str) -> tuple[str, list[str]]:
    """Replace every CDN URL of a folium page by a local file; drop tags with no local copy."""
    dropped = []

    def tag(m):
        url = m.group(2)
        path = _local(url)
        if path is None or not (SITE / path.lstrip("/")).resolve().is_file():
            dropped.append(url.rsplit("/", 1)[-1])
            return ""
        return m.group(0).replace(url, path)

    html = re.sub(r"""<(script|link)[^>]*?(?:src|href)=["'](https?://[^"']+)["'][^>]*>(?:\s*</script>)?""",
                  tag, html)
    leftover = re.findall(r"https?://(?:cdn|code|netdna|cdnjs)[^\"' )]+", html)
    return html, dropped + [f"left in page: {u}" for u in leftover]


def folium_pages(store, cfg: Config) -> dict[str, dict]:
    import folium
    import numpy as np
    from folium.plugins import FastMarkerCluster, MarkerCluster

    ds = load_dataset(store)
    c = ds.collections["cooperatives"]
    ok = np.isfinite(c.lon) & np.isfinite(c.lat)
    locs = np.column_stack([c.lat[ok], c.lon[ok]]).round(5).tolist()
    pages = {}
    for name, make in (("fastmarkercluster", lambda m: FastMarkerCluster(locs).add_to(m)),
                       ("markercluster", lambda m: MarkerCluster(locations=locs).add_to(m))):
        t = time.perf_counter()
        m = folium.Map(location=[32.5, 53.5], zoom_start=5, tiles=None, maxZoom=18)  # no base map: no internet
        make(m)
        html = m.get_root().render()
        gen = time.perf_counter() - t
        html, dropped = localise(html)
        path = SITE / f"{name}-{cfg.size}.html"
        path.write_text(html, encoding="utf-8")
        pages[name] = {"path": "/" + path.name, "bytes": path.stat().st_size, "generate_s": gen, "dropped": dropped,
                       "markers": len(locs)}
    return pages


# ---- the browser -------------------------------------------------------------------------------

def cluster_selectors() -> tuple[list[str], str]:
    """Selectors of a cluster marker, read from the maps code when it exists."""
    found = []
    for js in sorted(WEB.glob("*.js")):
        text = js.read_text(encoding="utf-8", errors="replace")
        for m in re.finditer(r"""className\s*[:=]\s*[`'"]([^`'"]*cluster[^`'"]*)[`'"]""", text):
            for cls in m.group(1).split():
                if "cluster" in cls and re.fullmatch(r"[A-Za-z0-9_-]+", cls):
                    found.append(".leaflet-marker-icon." + cls)      # a marker (divIcon), not a legend swatch
    found = list(dict.fromkeys(found))
    if found:
        return found, "read from " + ", ".join(sorted({p.name for p in WEB.glob('*.js')}))
    return GENERIC_CLUSTER, "generic (no cluster class found in coopgis/web/*.js)"


def measure_page(browser, url: str, selectors: list[str], limit: float, fallback: bool = False) -> dict:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, service_workers="block")
    try:
        context.add_init_script(PROBE % {"selectors": json.dumps(selectors),
                                         "fallback": json.dumps(RENDERED_MARKER if fallback else ""),
                                         "tile": json.dumps(COOP_TILES)})
        page = context.new_page()
        t0 = time.perf_counter()
        try:
            page.goto(url, wait_until="commit", timeout=limit * 1000)
            left = max(1.0, limit - (time.perf_counter() - t0))
            page.wait_for_function("() => window.__bench && window.__bench.first !== null", timeout=left * 1000,
                                   polling=100)
        except Exception as exc:  # Playwright's TimeoutError and friends
            return {"timeout": True, "wall_s": time.perf_counter() - t0, "error": type(exc).__name__}
        d = page.evaluate(COLLECT % {"tile": json.dumps(COOP_TILES)})
        d["timeout"] = False
        return d
    finally:
        context.close()


def run_section(cfg: Config, res: Results, store) -> None:
    import httpx

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        res.table("page", "page section NOT MEASURED: playwright (Python) is not installed")
        return
    if not Path(CHROMIUM).exists():
        res.table("page", f"page section NOT MEASURED: {CHROMIUM} is missing (apt-get install chromium)")
        return
    why = ensure_vendor(cfg)
    if why:
        res.note(f"folium pages: local vendor files incomplete: {why}")
    SITE.mkdir(parents=True, exist_ok=True)
    vendor = SITE / "vendor"
    vendor.mkdir(exist_ok=True)
    for link, target in ((vendor / "npm", NODE_DIR / "node_modules"), (vendor / "web", WEB / "node_modules")):
        if not link.exists() and target.exists():
            link.symlink_to(target, target_is_directory=True)
    say("generating the folium pages (same cooperatives)")
    pages = folium_pages(store, cfg)

    port_app, port_static = free_port(), free_port()
    app = Server("coopgis-page", coopgis_serve_argv(store, port_app), port_app, READY, env=NO_RATE_LIMITS)
    static = Server("static", [sys.executable, "-m", "http.server", str(port_static), "--bind", "127.0.0.1",
                               "--directory", str(SITE)], port_static, "/")
    before = None
    if cfg.before is not None:   # the national page of another checkout (an older commit), in the same run
        port_before = free_port()
        before = Server("coopgis-page-before", coopgis_serve_argv(store, port_before), port_before, READY,
                        env=NO_RATE_LIMITS, cwd=cfg.before)
    results: dict[str, list[dict]] = {}
    national = None
    try:
        app.start()
        static.start()
        if before is not None:
            before.start()
        r = httpx.get(app.base + "/maps/national", timeout=60)
        if r.status_code == 200 and "html" in r.headers.get("content-type", ""):
            national = {"bytes": len(r.content)}
        else:
            national = None
            res.table("page", f"national page: not available yet (GET /maps/national -> HTTP {r.status_code})")
        selectors, source = cluster_selectors()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                order = []
                if national:
                    order.append(("national", app.base + "/maps/national", selectors, cfg.page_reps,
                                  source.startswith("generic")))
                if national and before is not None:
                    order.append(("national_before", before.base + "/maps/national", selectors, cfg.page_reps,
                                  source.startswith("generic")))
                order.append(("fastmarkercluster", static.base + pages["fastmarkercluster"]["path"],
                              [".marker-cluster"], cfg.page_reps, False))
                order.append(("markercluster", static.base + pages["markercluster"]["path"], [".marker-cluster"],
                              cfg.page_reps, False))
                for name, url, sel, reps, fallback in order:
                    for i in range(reps):
                        say(f"  loading {name} ({i + 1}/{reps}) ...")
                        m = measure_page(browser, url, sel, cfg.page_limit, fallback)
                        results.setdefault(name, []).append(m)
                        if m["timeout"] or m["first"] > cfg.page_limit * 1000 / 4:
                            break          # one slow load is enough to report it
            finally:
                browser.close()
    finally:
        static.stop()
        app.stop()
        if before is not None:
            before.stop()

    rows = []
    paths: list[str] = []
    fig = {"limit_s": cfg.page_limit}
    for name in ("national", "national_before", "fastmarkercluster", "markercluster"):
        ms = results.get(name)
        if name == "national_before" and not ms:
            continue
        if name == "national" and national is None:
            rows.append(["national page (/maps/national)", "not available yet", "", "", "", "", ""])
            continue
        size = national["bytes"] if name.startswith("national") else pages[name]["bytes"]
        label = {"national": "national page (/maps/national)",
                 "national_before": f"national page of {cfg.before} (before)",
                 "fastmarkercluster": f"folium FastMarkerCluster ({pages['fastmarkercluster']['markers']:,} points)",
                 "markercluster": f"folium MarkerCluster, naive ({pages['markercluster']['markers']:,} Markers)"}[name]
        ok = [m for m in ms if not m["timeout"]]
        if not ok:
            rows.append([label, f"> {cfg.page_limit:.0f} s (limit)", "> limit", "n/a", f"{size / 1024:,.0f}", len(ms),
                         "no cluster within the limit"])
            fig[name] = {"first_ms": None, "html": size, "bytes": None}
            continue
        first = [m["first"] for m in ok]
        byts = [m["bytes"] for m in ok]
        first_load = "> limit" if ms[0]["timeout"] else f"{ms[0]['first'] / 1000:.2f} s"
        rows.append([label, mm([f / 1000 for f in first], 2, " s"), first_load, mm([b / 1024 for b in byts], 0),
                     f"{size / 1024:,.0f}", len(ok), ok[0]["how"]])
        mid = sorted(ok, key=lambda m: m["first"])[len(ok) // 2]
        p = mid.get("path") or {}
        steps = [("HTML received", p.get("html")), ("last script received", p.get("scripts")),
                 ("DOM interactive", p.get("dom_interactive")),
                 ("first cooperative tile requested", p.get("tile_requested")),
                 ("first cooperative tile received", p.get("tile_received")), ("first cluster in DOM", mid["first"])]
        paths.append(f"{label}, median load: " + " -> ".join(f"{k} {v:,.0f} ms" for k, v in steps if v is not None))
        fig[name] = {"first_ms": med(first), "html": size, "bytes": med(byts), "how": ok[0]["how"]}
    res.table("page", f"\n### time to first rendered clusters, headless Chromium ({CHROMIUM}), "
                      "fresh context per load\n")
    res.table("page", md_table(["page", "first clusters after navigation start", "first load", "KiB transferred before",
                                "HTML KiB", "loads", "detected by"], rows))
    res.table("page", "first load: the first page load after the server (or static server) started; for the national "
                      "page its tiles are then cold in the server's cache\n")
    for line in paths:
        res.table("page", "- " + line)
    res.table("page", f"cluster selector of the national page: {', '.join(selectors)} ({source})")
    for name in ("fastmarkercluster", "markercluster"):
        p = pages[name]
        res.table("page", f"{name}: generated by folium in {p['generate_s']:.1f} s; CDN files with no local copy, "
                          f"dropped: {', '.join(p['dropped']) or 'none'}")
    fig["national_available"] = national is not None
    res.figures["page"] = fig
