/*
 * coopgis map pages, part 3 of 4: the layers. Cooperatives come from the server's clustered
 * GeoJSON tiles or, in a standalone file, from GeoJSON embedded in the page; boundaries are MVT
 * through Leaflet.VectorGrid or embedded GeoJSON.
 */
(function () {
  'use strict';

  var _ = window.coopgis._, state = window.coopgis.state;
  var COARSE = _.COARSE, ZERO_COLOR = _.ZERO_COLOR, faNum = _.faNum, el = _.el, query = _.query,
    paramsOf = _.paramsOf, matches = _.matches, coopPopup = _.coopPopup, clusterPopup = _.clusterPopup,
    polygonPopup = _.polygonPopup;

  function coopColor(spec, props) {
    if (spec.color) { return spec.color; }
    return state.cfg.colors.kinds[props.kind] || '#555555';
  }

  function clusterMarker(latlng, props, spec) {
    var n = props.count || 0;
    var text = faNum(n);
    var d = Math.round(Math.max(15 + 4.5 * Math.log10(Math.max(n, 2)), 6 + 5.6 * text.length));
    var body = el('div', 'coop-cluster-body');
    body.style.width = d + 'px';
    body.style.height = d + 'px';
    body.style.background = spec.color || state.cfg.colors.cluster;
    body.appendChild(el('span', 'coop-cluster-count', text));
    var icon = L.divIcon({html: body, className: 'coop-cluster', iconSize: [d, d]});
    var m = L.marker(latlng, {icon: icon, keyboard: false, riseOnHover: true});
    m.coopCount = n;
    m.bindPopup(function () { return clusterPopup(props, latlng, spec); },
      {className: 'coop-popup-wrap', maxWidth: 340});
    return m;
  }

  function pointMarker(latlng, props, spec, id) {
    var coarse = !!COARSE[props.precision];
    var color = coopColor(spec, props);
    var m = L.circleMarker(latlng, {
      radius: coarse ? 7 : 5.5, color: coarse ? color : '#ffffff', weight: coarse ? 2.2 : 1.2,
      dashArray: coarse ? '3 3' : null, fillColor: color, fill: true, fillOpacity: coarse ? 0.08 : 0.95,
      className: 'coop-point ' + (coarse ? 'coop-coarse' : 'coop-precise')
    });
    m.coopCount = 1;
    m.bindPopup(function () { return coopPopup(props, id || props.registration_no, latlng); },
      {className: 'coop-popup-wrap', maxWidth: 320});
    return m;
  }

  function drawFeatures(features, spec) {
    var group = L.layerGroup();
    features.forEach(function (f) {
      var c = f.geometry && f.geometry.coordinates;
      if (!c) { return; }
      var p = f.properties || {};
      var latlng = L.latLng(c[1], c[0]);
      group.addLayer(p.cluster ? clusterMarker(latlng, p, spec) : pointMarker(latlng, p, spec, f.id));
    });
    return group;
  }

  // A page shows its cooperatives first. What the first clusters do not need (the boundary layers' tiles, the
  // place names, the title, the layer list and the other controls) waits until they are drawn and painted, or
  // until the page turns out to have no cooperative tiles, or 1.5 s at most; then each waiting step runs in a
  // task of its own, in the order it was put off.
  var clustersShown = false, waiting = [];

  function firstClustersShown() {
    if (clustersShown) { return; }
    clustersShown = true;
    waiting.splice(0).forEach(function (f) { setTimeout(f, 0); });
  }

  function afterFirstClusters(f) {
    if (clustersShown) { f(); } else { waiting.push(f); }
  }

  function afterClusters(layer) {    // a boundary layer asks for no tile until then
    if (clustersShown) { return layer; }
    var update = layer._update;
    layer._update = function () { return clustersShown ? update.apply(this, arguments) : undefined; };
    waiting.push(function () {
      layer._update = update;
      if (layer._map) { layer._update(); }
    });
    return layer;
  }

  function clustersPainted() {   // after the browser has painted what was just drawn
    if (clustersShown) { return; }
    (window.requestAnimationFrame || setTimeout)(function () { setTimeout(firstClustersShown, 0); });
  }

  var CoopTiles = L.GridLayer.extend({
    initialize: function (spec, options) {
      L.GridLayer.prototype.initialize.call(this, options);
      this.spec = spec;
      this.on('tileunload', this._unloadTile, this);
    },
    onAdd: function (map) {
      this._markers = L.layerGroup().addTo(map);
      L.GridLayer.prototype.onAdd.call(this, map);
    },
    onRemove: function (map) {
      L.GridLayer.prototype.onRemove.call(this, map);
      map.removeLayer(this._markers);
      this._markers = null;
      this.fire('coopdata');
    },
    refresh: function () {
      if (this._map) { this.redraw(); }
    },
    createTile: function (coords, done) {
      var tile = document.createElement('div');
      var self = this;
      var url = state.cfg.base + '/tiles/cooperatives/' + coords.z + '/' + coords.x + '/' + coords.y + '.geojson' +
        query(paramsOf(this.spec));
      tile.coopAbort = window.AbortController ? new AbortController() : null;
      var early = window.coopgisPrefetch && window.coopgisPrefetch.take(url);   // web/prefetch.js
      (early || fetch(url, tile.coopAbort ? {signal: tile.coopAbort.signal} : {}))
        .then(function (r) {
          if (!r.ok) { throw new Error('HTTP ' + r.status); }
          return r.json();
        })
        .then(function (fc) {
          if (tile.coopGone || !self._markers) { return; }
          tile.coopGroup = drawFeatures(fc.features || [], self.spec);
          tile.coopCount = (fc.features || []).reduce(function (s, f) { return s + (f.properties.count || 0); }, 0);
          self._markers.addLayer(tile.coopGroup);
          done(null, tile);
          self.fire('coopdata');
          clustersPainted();
        })
        .catch(function (err) {
          clustersPainted();
          if (!tile.coopGone) { done(err, tile); }
        });
      return tile;
    },
    shownCount: function () {
      var sum = 0;
      var tiles = this._tiles || {};
      Object.keys(tiles).forEach(function (k) {
        var t = tiles[k];
        if (t.current && t.el.coopCount) { sum += t.el.coopCount; }
      });
      return sum;
    },
    _unloadTile: function (e) {
      var tile = e.tile;
      tile.coopGone = true;
      if (tile.coopAbort) { tile.coopAbort.abort(); }
      if (tile.coopGroup && this._markers) { this._markers.removeLayer(tile.coopGroup); }
    }
  });

  // Cooperatives embedded in a standalone page, clustered here on the same 32-pixel grid as the server's.

  var CoopLocal = L.Layer.extend({
    initialize: function (spec, features) {
      this.spec = spec;
      this.features = features;
      this._count = 0;
    },
    onAdd: function (map) {
      this._markers = L.layerGroup().addTo(map);
      map.on('moveend', this.refresh, this);
      this.refresh();
    },
    onRemove: function (map) {
      map.off('moveend', this.refresh, this);
      map.removeLayer(this._markers);
      this._markers = null;
      this._count = 0;
      this.fire('coopdata');
    },
    refresh: function () {
      if (!this._map) { return; }
      var map = this._map;
      var z = map.getZoom();
      var params = paramsOf(this.spec);
      var view = map.getBounds().pad(0.25);
      var cells = {};
      var order = [];
      this.features.forEach(function (f) {
        var c = f.geometry.coordinates;
        var ll = L.latLng(c[1], c[0]);
        if (!view.contains(ll) || !matches(f.properties, params)) { return; }
        var key = f.id;
        if (z <= state.cfg.clusterMaxZoom) {
          var px = map.project(ll, z);
          key = Math.floor(px.x / 32) + ':' + Math.floor(px.y / 32);
        }
        if (!cells[key]) { cells[key] = []; order.push(key); }
        cells[key].push(f);
      });
      var features = order.map(function (key) { return clusterOf(cells[key]); });
      this._markers.clearLayers();
      this._markers.addLayer(drawFeatures(features, this.spec));
      this._count = features.reduce(function (s, f) { return s + (f.properties.count || 1); }, 0);
      this.fire('coopdata');
    },
    shownCount: function () { return this._count; }
  });

  function clusterOf(members) {
    if (members.length === 1) {
      var one = members[0];
      return {type: 'Feature', id: one.id, geometry: one.geometry,
        properties: Object.assign({cluster: false, count: 1}, one.properties)};
    }
    var x = 0, y = 0, people = 0, jobs = 0, kinds = {};
    members.forEach(function (f) {
      x += f.geometry.coordinates[0];
      y += f.geometry.coordinates[1];
      people += f.properties.members || 0;
      jobs += f.properties.jobs || 0;
      if (f.properties.kind) { kinds[f.properties.kind] = (kinds[f.properties.kind] || 0) + 1; }
    });
    return {type: 'Feature', geometry: {type: 'Point', coordinates: [x / members.length, y / members.length]},
      properties: {cluster: true, count: members.length, members: people, jobs: jobs, kinds: kinds}};
  }

  function rampColor(value, breaks) {
    if (!value) { return ZERO_COLOR; }
    var ramp = state.cfg.colors.ramp;
    for (var i = 0; i < breaks.length; i++) {
      if (value <= breaks[i]) { return ramp[i]; }
    }
    return ramp[Math.min(breaks.length, ramp.length - 1)];
  }

  function countiesShown() {
    return Object.keys(state.specs).some(function (id) {
      var s = state.specs[id];
      return s.source === 'counties' && s.style === 'choropleth' && state.layers[id] &&
        state.map.hasLayer(state.layers[id]) &&
        state.map.getZoom() >= (s.minZoom || 0);
    });
  }

  var INDICATOR_COLUMNS = {unemployment: 'unemployment_rate_pct', illiteracy: 'illiteracy_pct_15plus'};

  function perCapita(measure) { return /_per_10k$/.test(measure); }

  // Class breaks of the choropleth: the filtered ones from /stats when the page is filtered, else the page's.

  function breaksOf(source, measure) {
    var b = state.breaks && state.breaks[source] ? state.breaks[source] : state.cfg.breaks[source];
    return (b && b[measure]) || [];
  }

  function polygonStyle(spec) {
    var colors = state.cfg.colors;
    return function (p, zoom) {
      if (spec.minZoom !== null && spec.minZoom !== undefined && zoom < spec.minZoom) { return null; }
      var cls = 'coop-area coop-' + spec.source;
      if (spec.style === 'choropleth') {
        if (spec.source === 'provinces' && countiesShown()) {
          return {fill: false, color: '#263238', weight: 2.2, opacity: 0.9, className: cls + ' coop-outline'};
        }
        var value = p[state.measure];
        if (perCapita(state.measure) && (value === null || value === undefined)) {   // no census unit
          return {fill: true, fillColor: 'url(#coop-hatch)', fillOpacity: 0.8, color: '#8a8a8a', weight: 0.6,
            dashArray: '3 3', className: cls + ' coop-choropleth coop-no-census'};
        }
        return {fill: true, fillColor: rampColor(value, breaksOf(spec.source, state.measure)), fillOpacity: 0.78,
          color: '#5f6b73', weight: spec.source === 'provinces' ? 1.2 : 0.6, opacity: 0.9,
          className: cls + ' coop-choropleth'};
      }
      if (INDICATOR_COLUMNS[spec.style]) {
        var v = p[INDICATOR_COLUMNS[spec.style]];
        if (v === null || v === undefined) {
          return {fill: true, fillColor: 'url(#coop-hatch)', fillOpacity: 0.8, color: '#8a8a8a', weight: 0.6,
            dashArray: '3 3', className: cls + ' coop-indicator coop-no-census'};
        }
        var ib = (state.cfg.indicatorBreaks[spec.source] || {})[spec.style] || [];
        var ramp = colors.indicatorRamp, color = ramp[Math.min(ib.length, ramp.length - 1)];
        for (var i = 0; i < ib.length; i++) { if (v <= ib[i]) { color = ramp[i]; break; } }
        return {fill: true, fillColor: color, fillOpacity: 0.8, color: '#7d7d7d', weight: 0.5,
          className: cls + ' coop-indicator coop-indicator-' + spec.style};
      }
      if (spec.style === 'outline') {
        return {fill: false, color: spec.source === 'provinces' ? '#37474f' : '#78909c',
          weight: spec.source === 'provinces' ? 1.6 : 0.7, opacity: 0.9, className: cls + ' coop-outline'};
      }
      if (spec.style === 'classes') {
        var c = p.deprivation_class || 'no_data';
        if (c === 'no_data') {
          return {fill: true, fillColor: 'url(#coop-hatch)', fillOpacity: 0.8, color: '#8a8a8a', weight: 0.6,
            dashArray: '3 3', className: cls + ' coop-class-no_data'};
        }
        return {fill: true, fillColor: colors.classes[c] || '#cccccc', fillOpacity: 0.75, color: '#7d7d7d',
          weight: 0.6, className: cls + ' coop-class-' + c};
      }
      if (spec.style === 'border') {
        return p.border === true || p.border === 'true' ?
          {fill: false, color: colors.border, weight: 2.6, opacity: 0.95, className: cls + ' coop-border'} : null;
      }
      return null;
    };
  }

  // Provinces and counties carry the figures of the page's filters (less the places, which frame the map).

  function polygonUrl(spec) {
    var url = state.cfg.base + '/tiles/' + spec.source + '/{z}/{x}/{y}.mvt';
    return spec.style === 'choropleth' && _.thematicQuery ? url + _.thematicQuery() : url;
  }

  function tilePolygons(spec) {
    var style = polygonStyle(spec);
    var styles = {};
    styles[spec.source] = function (p, z) { return style(p, z) || []; };
    var layer = L.vectorGrid.protobuf(polygonUrl(spec), {
      rendererFactory: L.svg.tile, vectorTileLayerStyles: styles, interactive: true,
      minZoom: spec.minZoom || 0, maxZoom: spec.maxZoom || 22, bounds: L.latLngBounds(state.cfg.bounds),
      zIndex: spec.zIndex
    });
    layer.on('click', function (e) {
      if (!e.layer || !e.layer.properties) { return; }
      L.popup({className: 'coop-popup-wrap', maxWidth: 320}).setLatLng(e.latlng)
        .setContent(polygonPopup(spec, e.layer.properties)).openOn(state.map);
    });
    layer.coopRestyle = function () { layer.redraw(); };
    layer.coopRefilter = function () { layer.setUrl(polygonUrl(spec)); };
    return afterClusters(layer);
  }

  function embeddedPolygons(spec) {
    var style = polygonStyle(spec);
    var source = spec.source === 'deprivation' ? 'counties' : spec.source;
    var hidden = {stroke: false, fill: false, interactive: false};
    function styleOf(f) { return style(f.properties, state.map.getZoom()) || hidden; }
    var layer = L.geoJSON(state.data[source], {
      style: styleOf,
      onEachFeature: function (f, lyr) {
        lyr.on('click', function (e) {
          if (!style(f.properties, state.map.getZoom())) { return; }
          L.popup({className: 'coop-popup-wrap', maxWidth: 320}).setLatLng(e.latlng)
            .setContent(polygonPopup(spec, f.properties)).openOn(state.map);
        });
      }
    });
    layer.coopRestyle = function () { layer.setStyle(styleOf); };
    return layer;
  }

  _.coopColor = coopColor; _.clusterMarker = clusterMarker; _.pointMarker = pointMarker;
  _.drawFeatures = drawFeatures; _.CoopTiles = CoopTiles; _.CoopLocal = CoopLocal; _.clusterOf = clusterOf;
  _.rampColor = rampColor; _.countiesShown = countiesShown; _.polygonStyle = polygonStyle;
  _.perCapita = perCapita; _.breaksOf = breaksOf;
  _.tilePolygons = tilePolygons; _.embeddedPolygons = embeddedPolygons; _.firstClustersShown = firstClustersShown;
  _.afterFirstClusters = afterFirstClusters;
}());
