/*
 * coopgis map pages, first of all (inlined at the top of the page's head): the first view's cooperative
 * tiles are asked for while Leaflet and the page's scripts still load, so the first clusters can be drawn
 * as soon as the cooperative layer is added. The tiles are those Leaflet's grid will ask for: the view of
 * the page's centre and zoom in a map as large as the window, within the layer's bounds. A tile the layer
 * asks for is taken from here when its address is exactly one asked for here; any other is fetched as
 * before, so a guess that misses (another window size, a filter in the page's address) costs only the
 * unused requests. Needs nothing but fetch.
 */
(function () {
  'use strict';

  var TILE = 256;
  var kept = {};

  function pixel(lat, lon, zoom) {         // Web Mercator pixel at a zoom, as Leaflet's EPSG3857 projects
    var size = TILE * Math.pow(2, zoom);
    var s = Math.sin(Math.max(Math.min(lat, 85.0511287798), -85.0511287798) * Math.PI / 180);
    return [size * (lon + 180) / 360, size * (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI))];
  }

  function latOf(y, zoom) {
    var n = Math.PI - 2 * Math.PI * y / Math.pow(2, zoom);
    return 180 / Math.PI * Math.atan(0.5 * (Math.exp(n) - Math.exp(-n)));
  }

  // view: {base, center: [lat, lon], zoom, bounds: [[south, west], [north, east]], queries: ["", "?k=v"],
  //        filter_names: [...]}. Nothing is asked for when the page's address names a filter: the layer's
  //        addresses then carry it.
  function start(view) {
    if (!window.fetch || !window.URLSearchParams) { return; }
    var search = new URLSearchParams(window.location.search);
    if ((view.filter_names || []).some(function (k) { return search.has(k); })) { return; }
    var root = document.documentElement;
    var w = root.clientWidth || window.innerWidth, h = root.clientHeight || window.innerHeight;
    if (!w || !h) { return; }
    var z = view.zoom, c = pixel(view.center[0], view.center[1], z);
    var cx = Math.floor(c[0]), cy = Math.floor(c[1]);
    var x0 = Math.floor((cx - w / 2) / TILE), x1 = Math.ceil((cx + w / 2) / TILE) - 1;
    var y0 = Math.floor((cy - h / 2) / TILE), y1 = Math.ceil((cy + h / 2) / TILE) - 1;
    var b = view.bounds, n = Math.pow(2, z);
    for (var y = Math.max(y0, 0); y <= Math.min(y1, n - 1); y++) {
      var north = latOf(y, z), south = latOf(y + 1, z);
      if (!(north > b[0][0] && south < b[1][0])) { continue; }
      for (var x = x0; x <= x1; x++) {
        var west = x / n * 360 - 180, east = (x + 1) / n * 360 - 180;
        if (!(east > b[0][1] && west < b[1][1])) { continue; }
        view.queries.forEach(function (q) {
          var url = view.base + '/tiles/cooperatives/' + z + '/' + x + '/' + y + '.geojson' + q;
          var asked = fetch(url);
          asked.catch(function () {});   // a failure is the layer's to report, when it takes the tile
          kept[url] = asked;
        });
      }
    }
  }

  // The answer asked for earlier at exactly this address (once), or null.
  function take(url) {
    var asked = kept[url] || null;
    delete kept[url];
    return asked;
  }

  window.coopgisPrefetch = {start: start, take: take};
}());
