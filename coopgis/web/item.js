/*
 * coopgis item page: a small map of one cooperative (or one area) from the page's JSON configuration:
 * the point (a filled dot where it is, a dashed ring for a representative point), the circle it may truly
 * lie in (uncertainty_m), and the province and county outlines from the server's MVT tiles.
 */
(function () {
  'use strict';

  function start() {
    var node = document.getElementById('coop-item-config');
    var box = document.getElementById('coop-item-map');
    if (!node || !box || !window.L) { return; }
    var cfg = JSON.parse(node.textContent);
    var map = L.map(box, {minZoom: 4, maxZoom: 18, attributionControl: true, scrollWheelZoom: false});
    map.attributionControl.setPrefix(false);
    map.attributionControl.addAttribution(cfg.attribution || '© OpenStreetMap contributors');
    place(map, cfg);
    if (L.vectorGrid) {
      var outline = function (color, weight) {
        return function () { return {fill: false, color: color, weight: weight, opacity: 0.9}; };
      };
      ['counties', 'provinces'].forEach(function (src) {
        var styles = {};
        styles[src] = outline(src === 'provinces' ? '#37474f' : '#90a4ae', src === 'provinces' ? 1.6 : 0.7);
        L.vectorGrid.protobuf(cfg.base + '/tiles/' + src + '/{z}/{x}/{y}.mvt',
          {rendererFactory: L.svg.tile, vectorTileLayerStyles: styles, interactive: false}).addTo(map);
      });
    }
  }

  function place(map, cfg) {
    if (cfg.lat === null || cfg.lat === undefined) {
      if (cfg.bounds) { map.fitBounds(cfg.bounds); } else { map.setView([32.4, 53.7], 5); }
      return;
    }
    var coarse = !!cfg.coarse;
    var ll = L.latLng(cfg.lat, cfg.lon);
    var radius = Number(cfg.uncertainty_m) || 0;
    // The view first: a layer added to a map without one cannot be projected.
    if (radius > 0) {
      map.fitBounds(ll.toBounds(2 * radius), {padding: [10, 10], maxZoom: 14});
      L.circle(ll, {radius: radius, color: '#0b6e4f', weight: 1, dashArray: '4 4', fillOpacity: 0.06,
        className: 'coop-item-uncertainty'}).addTo(map);
    } else {
      map.setView(ll, 13);
    }
    L.circleMarker(ll, {radius: coarse ? 8 : 6, color: coarse ? '#0b6e4f' : '#ffffff', weight: coarse ? 2.2 : 1.2,
      dashArray: coarse ? '3 3' : null, fillColor: '#0b6e4f', fill: true, fillOpacity: coarse ? 0.08 : 0.95,
      className: 'coop-item-point ' + (coarse ? 'coop-coarse' : 'coop-precise')}).addTo(map);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
}());
