/*
 * coopgis maps: place-name labels (provinces, counties, cities, placed villages) in Persian, right to
 * left, with a halo, in a pane of their own above a base map and the boundaries. They come from the
 * server's `places` tiles or, in a standalone file or an offline pack, from labels embedded in the page.
 * Which label shows at which zoom was decided once on the server (coopgis.placenames), so labels do not
 * overlap, also across tile borders; this file only draws them. Names are set with textContent.
 * Needs Leaflet only, so the review page uses it too.
 */
(function () {
  'use strict';

  var PANE = 'coopLabels';
  var POINT_KINDS = {city: 1, village: 1, village_unsure: 1};
  var UNSURE = 'مکان این روستا قطعی نیست';

  function pane(map) {
    var p = map.getPane(PANE);
    if (!p) {
      p = map.createPane(PANE);
      p.style.zIndex = 450;            // above the tile pane (base map, boundaries) and overlays (400)
      p.style.pointerEvents = 'none';  // below the markers (600): clusters and pins stay clickable
    }
    return PANE;
  }

  function marker(latlng, name, kind, paneName) {
    var icon = document.createElement('div');
    var box = document.createElement('div');
    box.className = 'coop-label coop-label-' + kind;
    box.dir = 'rtl';
    box.lang = 'fa';
    var text = document.createElement('span');
    text.className = 'coop-label-text';
    text.textContent = kind === 'village_unsure' ? name + '؟' : name;
    if (kind === 'village_unsure') { box.title = UNSURE; }
    box.appendChild(text);
    icon.appendChild(box);
    if (POINT_KINDS[kind]) {
      var dot = document.createElement('span');
      dot.className = 'coop-label-dot';
      icon.appendChild(dot);
    }
    return L.marker(latlng, {
      icon: L.divIcon({html: icon, className: 'coop-label-icon', iconSize: null}),
      pane: paneName, interactive: false, keyboard: false
    });
  }

  // Labels from the server's tiles: one group of markers per tile, dropped with the tile.
  var LabelTiles = L.GridLayer.extend({
    initialize: function (base, options) {
      L.GridLayer.prototype.initialize.call(this, options);
      this.base = base;
      this.on('tileunload', function (e) {
        e.tile.coopGone = true;
        if (e.tile.coopAbort) { e.tile.coopAbort.abort(); }
        if (e.tile.coopGroup && this._labels) { this._labels.removeLayer(e.tile.coopGroup); }
      }, this);
    },
    onAdd: function (map) {
      this._paneName = pane(map);
      this._labels = L.layerGroup().addTo(map);
      L.GridLayer.prototype.onAdd.call(this, map);
    },
    onRemove: function (map) {
      L.GridLayer.prototype.onRemove.call(this, map);
      map.removeLayer(this._labels);
      this._labels = null;
    },
    createTile: function (coords, done) {
      var tile = document.createElement('div');
      var self = this;
      tile.coopAbort = window.AbortController ? new AbortController() : null;
      fetch(this.base + '/tiles/places/' + coords.z + '/' + coords.x + '/' + coords.y + '.geojson',
        tile.coopAbort ? {signal: tile.coopAbort.signal} : {})
        .then(function (r) {
          if (!r.ok) { throw new Error('HTTP ' + r.status); }
          return r.json();
        })
        .then(function (fc) {
          if (tile.coopGone || !self._labels) { return; }
          var group = L.layerGroup();
          (fc.features || []).forEach(function (f) {
            var c = f.geometry && f.geometry.coordinates;
            var p = f.properties || {};
            if (c && p.name) { group.addLayer(marker(L.latLng(c[1], c[0]), p.name, p.kind, self._paneName)); }
          });
          tile.coopGroup = group;
          self._labels.addLayer(group);
          done(null, tile);
          self.fire('coopplaces');
        })
        .catch(function (err) { if (!tile.coopGone) { done(err, tile); } });
      return tile;
    }
  });

  // Labels embedded in the page ([lon, lat, name, kind, min_zoom, max_zoom] each), drawn for the view.
  var LabelList = L.Layer.extend({
    initialize: function (records) {
      this.records = records || [];
    },
    onAdd: function (map) {
      this._paneName = pane(map);
      this._labels = L.layerGroup().addTo(map);
      map.on('moveend zoomend', this.refresh, this);
      this.refresh();
    },
    onRemove: function (map) {
      map.off('moveend zoomend', this.refresh, this);
      map.removeLayer(this._labels);
      this._labels = null;
    },
    setRecords: function (records) {
      this.records = records || [];
      this.refresh();
    },
    refresh: function () {
      if (!this._map || !this._labels) { return; }
      var z = this._map.getZoom();
      var view = this._map.getBounds().pad(0.2);
      var group = this._labels, paneName = this._paneName;
      group.clearLayers();
      this.records.forEach(function (r) {
        if (r[4] > z || r[5] < z) { return; }
        var ll = L.latLng(r[1], r[0]);
        if (view.contains(ll)) { group.addLayer(marker(ll, r[2], r[3], paneName)); }
      });
      this.fire('coopplaces');
    }
  });

  // The labels of a map: embedded records when the page has them, else the server's tiles.
  function layer(options) {
    if (options.records) { return new LabelList(options.records); }
    return new LabelTiles(options.base || '', {
      tileSize: 256, updateWhenIdle: true, keepBuffer: 1, minZoom: 4, className: 'coop-label-tiles',
      bounds: options.bounds ? L.latLngBounds(options.bounds) : undefined
    });
  }

  window.coopgis = window.coopgis || {};
  window.coopgis.labels = {layer: layer, LabelList: LabelList, PANE: PANE};
}());
