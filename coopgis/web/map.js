/*
 * coopgis map pages: the layers, popups, legend and controls of the folium maps built from maps/*.toml.
 *
 * Layers come from the server's tiles (cooperatives as clustered GeoJSON tiles, boundaries as MVT
 * through Leaflet.VectorGrid) or, in a standalone file, from GeoJSON embedded in the page.
 * Every text that comes from data is put into the page with textContent, never as HTML; there is
 * no eval, no inline event handler and no javascript: URL, so a strict Content-Security-Policy fits.
 */
(function () {
  'use strict';

  var FA_DIGITS = '۰۱۲۳۴۵۶۷۸۹';
  var COARSE = {county: 1, province: 1, district: 1, rural_district: 1};
  var FILTER_KEYS = ['kind', 'sector', 'status', 'province', 'county', 'deprived', 'border', 'women_led',
    'registered_year', 'precision'];
  var ZERO_COLOR = '#fbfbfb';
  var state = {map: null, cfg: null, data: null, specs: {}, layers: {}, measure: 'cooperatives',
    pageFilter: {}, userFilter: {}, registry: {}, legend: null, counter: null, onReport: null};

  // ---- small helpers ------------------------------------------------------------------------

  function faDigits(s) {
    return String(s).replace(/[0-9]/g, function (d) { return FA_DIGITS.charAt(+d); });
  }

  function faNum(n, decimals) {
    if (n === null || n === undefined || isNaN(n)) { return '—'; }
    var x = Number(n);
    var whole = decimals ? Math.floor(Math.abs(x)) : Math.round(Math.abs(x));
    var s = whole.toString().replace(/\B(?=(\d{3})+(?!\d))/g, '٬');
    if (decimals) {
      var frac = Math.round((Math.abs(x) - whole) * Math.pow(10, decimals));
      if (frac >= Math.pow(10, decimals)) { return faNum(x < 0 ? -(whole + 1) : whole + 1, decimals); }
      if (frac) { s += '٫' + String(frac).padStart(decimals, '0').replace(/0+$/, ''); }
    }
    return faDigits((x < 0 ? '-' : '') + s);
  }

  // How far the cooperative may be from its point, in words ("حدود ۷ کیلومتر"); '' when it is there.
  function uncertaintyText(metres) {
    if (metres === null || metres === undefined || isNaN(metres) || Number(metres) <= 0) { return ''; }
    var m = Number(metres);
    if (m < 1000) { return 'حدود ' + faNum(Math.max(100, Math.round(m / 100) * 100)) + ' متر'; }
    return 'حدود ' + faNum(m < 10000 ? Math.round(m / 100) / 10 : Math.round(m / 1000), 1) + ' کیلومتر';
  }

  // The precision in words with its uncertainty: "دهستان (نقطه نماینده)، حدود ۶ کیلومتر".
  function placeText(p) {
    var words = label('precision', p.precision);
    var u = uncertaintyText(p.uncertainty_m);
    return u ? words + '، ' + u : words;
  }

  function el(tag, className, text) {
    var e = document.createElement(tag);
    if (className) { e.className = className; }
    if (text !== null && text !== undefined) { e.textContent = String(text); }
    return e;
  }

  function append(parent) {
    for (var i = 1; i < arguments.length; i++) {
      if (arguments[i]) { parent.appendChild(arguments[i]); }
    }
    return parent;
  }

  function safeHref(url, schemes) {
    if (typeof url !== 'string') { return null; }
    var m = /^([a-z][a-z0-9+.-]*):/i.exec(url.trim());
    return m && schemes.indexOf(m[1].toLowerCase()) >= 0 ? url.trim() : null;
  }

  function query(params) {
    var parts = [];
    Object.keys(params).sort().forEach(function (k) {
      if (params[k] !== null && params[k] !== undefined && params[k] !== '') {
        parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(params[k]));
      }
    });
    return parts.length ? '?' + parts.join('&') : '';
  }

  function yesNo(v) { return v === true || v === 'true' ? 'بله' : 'خیر'; }

  function readJson(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function label(group, code) {
    var table = state.cfg.labels[group] || {};
    return table[code] || code || '—';
  }

  // ---- filters ------------------------------------------------------------------------------

  function pageFilterFromUrl() {
    var out = {};
    var params = new URLSearchParams(window.location.search);
    FILTER_KEYS.forEach(function (k) {
      var v = params.get(k);
      if (v) { out[k] = v; }
    });
    return out;
  }

  function paramsOf(spec) {
    return Object.assign({}, state.cfg.filters, state.pageFilter, state.userFilter, spec.filters || {});
  }

  function matches(props, params) {
    return Object.keys(params).every(function (k) {
      var want = String(params[k]).split(',');
      var have = props[k];
      if (k === 'deprived' || k === 'border' || k === 'women_led') {
        return have !== null && have !== undefined && String(have) === want[0];
      }
      if (k === 'province' || k === 'county' || k === 'registered_year') { return true; } // applied when embedded
      return want.indexOf(String(have)) >= 0;
    });
  }

  // ---- cooperatives -------------------------------------------------------------------------

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
    m.bindPopup(function () { return clusterPopup(props, latlng); }, {className: 'coop-popup-wrap'});
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

  function row(table, name, value) {
    var tr = el('tr');
    append(tr, el('th', null, name), el('td', null, value));
    table.appendChild(tr);
  }

  function coopPopup(p, id, latlng) {
    var box = el('div', 'coop-popup');
    box.dir = 'rtl';
    box.appendChild(el('h3', 'coop-popup-title', p.name || 'بی‌نام'));
    var t = el('table');
    row(t, 'نوع', label('kinds', p.kind));
    row(t, 'رشته فعالیت', label('sectors', p.sector));
    row(t, 'وضعیت', label('statuses', p.status));
    row(t, 'اعضا', faNum(p.members));
    row(t, 'اشتغال', faNum(p.jobs));
    row(t, 'دقت مکان', placeText(p));
    if (p.county) { row(t, 'شهرستان', p.county); }
    if (p.registration_no) { row(t, 'شماره ثبت', faDigits(p.registration_no)); }
    box.appendChild(t);
    if (COARSE[p.precision]) {
      box.appendChild(el('p', 'coop-popup-note',
        'این نقطه مکان دقیق تعاونی نیست؛ نقطه نماینده ' + label('precision', p.precision).split(' ')[0] + ' است.'));
    }
    var actions = el('p', 'coop-popup-actions');
    if (state.cfg.links && id) {
      var a = el('a', 'coop-popup-link', 'جزئیات در API');
      a.href = state.cfg.base + '/collections/cooperatives/items/' + encodeURIComponent(id) + '?f=html';
      actions.appendChild(a);
    }
    if (state.onReport && p.registration_no) {
      var b = el('button', 'coop-button coop-report-open', 'گزارش مکان درست');
      b.type = 'button';
      b.addEventListener('click', function () { state.onReport(p, latlng); });
      actions.appendChild(b);
    }
    if (actions.childNodes.length) { box.appendChild(actions); }
    return box;
  }

  function clusterPopup(p, latlng) {
    var box = el('div', 'coop-popup');
    box.dir = 'rtl';
    box.appendChild(el('h3', 'coop-popup-title', faNum(p.count) + ' تعاونی در این خوشه'));
    var t = el('table');
    row(t, 'اعضا', faNum(p.members));
    row(t, 'اشتغال', faNum(p.jobs));
    var kinds = p.kinds || {};
    Object.keys(kinds).sort(function (a, b) { return kinds[b] - kinds[a]; }).forEach(function (k) {
      row(t, label('kinds', k), faNum(kinds[k]));
    });
    box.appendChild(t);
    var zoom = el('button', 'coop-button', 'بزرگ‌نمایی روی این خوشه');
    zoom.type = 'button';
    zoom.addEventListener('click', function () {
      state.map.closePopup();
      state.map.setView(latlng, Math.min(state.map.getZoom() + 2, state.map.getMaxZoom()));
    });
    box.appendChild(zoom);
    return box;
  }

  // Cooperatives from the server's GeoJSON tiles: one group of markers per tile, dropped with the tile.
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
      fetch(url, tile.coopAbort ? {signal: tile.coopAbort.signal} : {})
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
        })
        .catch(function (err) {
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

  // ---- boundaries ---------------------------------------------------------------------------

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

  function polygonStyle(spec) {
    var colors = state.cfg.colors;
    return function (p, zoom) {
      if (spec.minZoom !== null && spec.minZoom !== undefined && zoom < spec.minZoom) { return null; }
      var cls = 'coop-area coop-' + spec.source;
      if (spec.style === 'choropleth') {
        if (spec.source === 'provinces' && countiesShown()) {
          return {fill: false, color: '#263238', weight: 2.2, opacity: 0.9, className: cls + ' coop-outline'};
        }
        var breaks = state.cfg.breaks[spec.source][state.measure] || [];
        return {fill: true, fillColor: rampColor(p[state.measure], breaks), fillOpacity: 0.78, color: '#5f6b73',
          weight: spec.source === 'provinces' ? 1.2 : 0.6, opacity: 0.9, className: cls + ' coop-choropleth'};
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

  function polygonPopup(spec, p) {
    var box = el('div', 'coop-popup');
    box.dir = 'rtl';
    box.appendChild(el('h3', 'coop-popup-title', p.name_fa || p.name_en || '—'));
    var t = el('table');
    if (spec.source === 'deprivation') {
      var c = p.deprivation_class || 'no_data';
      row(t, 'طبقه محرومیت', label('classes', c));
      if (p.border !== undefined && p.border !== null) { row(t, 'مرزی', yesNo(p.border)); }
      box.appendChild(t);
      var src = sourceLink(p.source_url, 'coop-popup-link', 'منبع');
      if (src) { box.appendChild(append(el('p'), src)); }
      if (p.note) {
        var note = el('p', 'coop-popup-note', p.note);
        note.dir = 'ltr';
        note.lang = 'en';
        box.appendChild(note);
      }
      return box;
    }
    row(t, 'تعاونی‌ها', faNum(p.cooperatives));
    row(t, 'اعضا', faNum(p.members));
    row(t, 'اشتغال', faNum(p.jobs));
    row(t, 'در مناطق محروم', faNum(p.in_deprived_areas));
    if (spec.source === 'counties' && p.border !== undefined) { row(t, 'مرزی', yesNo(p.border)); }
    box.appendChild(t);
    if (spec.source === 'provinces' && p.iso_3166_2 && state.cfg.links) {
      var link = el('a', 'coop-popup-link', 'آمار در داشبورد');
      link.href = state.cfg.base + '/dashboard#' + encodeURIComponent(p.iso_3166_2);
      box.appendChild(append(el('p'), link));
    }
    return box;
  }

  function tilePolygons(spec) {
    var style = polygonStyle(spec);
    var styles = {};
    styles[spec.source] = function (p, z) { return style(p, z) || []; };
    var layer = L.vectorGrid.protobuf(state.cfg.base + '/tiles/' + spec.source + '/{z}/{x}/{y}.mvt', {
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
    return layer;
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

  // ---- public: setup, layers, controls --------------------------------------------------------

  function setup(map, configId, dataId) {
    state.map = map;
    state.cfg = readJson(configId);
    state.data = readJson(dataId);
    state.pageFilter = pageFilterFromUrl();
    (state.cfg.controls.measures || []).slice(0, 1).forEach(function (m) { state.measure = m; });
    state.cfg.layers.forEach(function (spec, i) {
      spec.zIndex = i + 1;
      state.specs[spec.id] = spec;
    });
    map.attributionControl.setPrefix(false);
    map.attributionControl.addAttribution(state.cfg.attribution || '© OpenStreetMap contributors');
    var box = state.pageFilter.province && state.cfg.provinces[state.pageFilter.province];
    if (box) { map.fitBounds([[box[1], box[0]], [box[3], box[2]]]); }
    if (state.cfg.fit) { map.fitBounds(state.cfg.fit, {padding: [30, 30], maxZoom: 12}); }
    map.on('zoomend', restyleAll);
    map.on('overlayadd overlayremove', restyleAll);
    titleControl();
  }

  function layer(id) {
    var spec = state.specs[id];
    var made;
    if (spec.source === 'cooperatives') {
      made = state.data ? new CoopLocal(spec, state.data.cooperatives.features) :
        new CoopTiles(spec, {tileSize: 256, updateWhenIdle: true, keepBuffer: 1, zIndex: spec.zIndex,
          bounds: L.latLngBounds(state.cfg.bounds), minZoom: spec.minZoom || 0, maxZoom: spec.maxZoom || 22,
          className: 'coop-tiles'});
      made.on('coopdata', updateCounter);
    } else {
      made = state.data ? embeddedPolygons(spec) : tilePolygons(spec);
    }
    state.layers[id] = made;
    return made;
  }

  function register(name, value) {
    state.registry[name] = value;
  }

  function restyleAll() {
    Object.keys(state.layers).forEach(function (id) {
      var spec = state.specs[id];
      if (spec.source === 'cooperatives' || !state.map.hasLayer(state.layers[id])) { return; }
      var needs = spec.style === 'choropleth' || (state.data && spec.minZoom);
      if (needs && state.layers[id].coopRestyle) { state.layers[id].coopRestyle(); }
    });
    renderLegend();
  }

  function refreshCooperatives() {
    Object.keys(state.layers).forEach(function (id) {
      if (state.specs[id].source === 'cooperatives') { state.layers[id].refresh(); }
    });
  }

  function shownTotal() {
    return Object.keys(state.layers).reduce(function (sum, id) {
      var l = state.layers[id];
      return sum + (state.specs[id].source === 'cooperatives' && state.map.hasLayer(l) ? l.shownCount() : 0);
    }, 0);
  }

  function updateCounter() {
    if (!state.counter) { return; }
    var n = shownTotal();
    state.counter.dataset.total = String(n);
    state.counter.textContent = 'نمایش در این نما: ' + faNum(n) + ' تعاونی';
  }

  function control(position, build) {
    var C = L.Control.extend({
      onAdd: function () {
        var box = el('div', 'leaflet-control coop-control');
        box.dir = 'rtl';
        build(box);
        L.DomEvent.disableClickPropagation(box);
        L.DomEvent.disableScrollPropagation(box);
        return box;
      }
    });
    return new C({position: position}).addTo(state.map);
  }

  function titleControl() {
    var cfg = state.cfg;
    control('topright', function (box) {
      box.classList.add('coop-title');
      box.appendChild(el('h1', null, cfg.preset.title_fa));
      if (cfg.preset.description_fa) { box.appendChild(el('p', 'coop-desc', cfg.preset.description_fa)); }
      if (cfg.note) { box.appendChild(el('p', 'coop-note', cfg.note)); }
      if (cfg.synthetic) {
        box.appendChild(el('p', 'coop-synthetic', 'داده‌ها نمونه ساختگی‌اند و هیچ تعاونی واقعی را نشان نمی‌دهند.'));
      }
      if (cfg.links) {
        var nav = el('p', 'coop-nav');
        var maps = el('a', null, 'همه نقشه‌ها');
        maps.href = cfg.base + '/maps';
        var dash = el('a', null, 'داشبورد');
        dash.href = cfg.base + '/dashboard';
        append(nav, maps, el('span', null, ' · '), dash);
        box.appendChild(nav);
      }
    });
  }

  function select(name, title, options, current) {
    var wrap = el('label', 'coop-field-row');
    wrap.appendChild(el('span', null, title));
    var s = el('select');
    s.name = name;
    var all = el('option', null, 'همه');
    all.value = '';
    s.appendChild(all);
    Object.keys(options).forEach(function (code) {
      var o = el('option', null, options[code]);
      o.value = code;
      if (code === current) { o.selected = true; }
      s.appendChild(o);
    });
    wrap.appendChild(s);
    return {wrap: wrap, select: s};
  }

  function filterControl() {
    var cfg = state.cfg;
    var fields = cfg.controls.filter || [];
    var measures = cfg.controls.measures || [];
    var hasCoops = cfg.layers.some(function (s) { return s.source === 'cooperatives'; });
    if (!fields.length && !measures.length && !hasCoops) { return; }
    control('topright', function (box) {
      box.classList.add('coop-filters');
      if (measures.length) {
        var fs = el('fieldset', 'coop-measures');
        fs.appendChild(el('legend', null, 'رنگ استان‌ها و شهرستان‌ها'));
        measures.forEach(function (m) {
          var lab = el('label');
          var r = el('input');
          r.type = 'radio';
          r.name = 'coop-measure';
          r.value = m;
          r.checked = m === state.measure;
          r.addEventListener('change', function () {
            if (r.checked) { state.measure = m; restyleAll(); }
          });
          append(lab, r, el('span', null, label('measures', m)));
          fs.appendChild(lab);
        });
        box.appendChild(fs);
      }
      fields.forEach(function (name) {
        var options = name === 'kind' ? cfg.labels.kinds : cfg.labels.sectors;
        var s = select(name, name === 'kind' ? 'نوع تعاونی' : 'رشته فعالیت', options, state.pageFilter[name]);
        s.select.classList.add('coop-filter-' + name);
        s.select.addEventListener('change', function () {
          if (s.select.value) { state.userFilter[name] = s.select.value; } else { delete state.userFilter[name]; }
          if (!s.select.value && state.pageFilter[name]) { delete state.pageFilter[name]; }
          refreshCooperatives();
        });
        box.appendChild(s.wrap);
      });
      if (hasCoops) {
        state.counter = el('p', 'coop-counter');
        state.counter.setAttribute('aria-live', 'polite');
        box.appendChild(state.counter);
      }
    });
  }

  function swatch(kind, color) {
    var s = el('span', 'coop-swatch coop-swatch-' + kind);
    if (color) {
      if (kind === 'ring' || kind === 'line') { s.style.borderColor = color; } else { s.style.background = color; }
    }
    return s;
  }

  function legendLine(list, kind, color, text, english) {
    var li = el('li');
    if (kind && kind !== 'none') { li.appendChild(swatch(kind, color)); }
    li.appendChild(el('span', 'coop-legend-text', text));
    if (english) {
      var en = el('span', 'coop-legend-en', english);
      en.lang = 'en';
      en.dir = 'ltr';
      li.appendChild(en);
    }
    list.appendChild(li);
    return li;
  }

  function choroplethSection(body) {
    var cfg = state.cfg;
    var source = countiesShown() ? 'counties' : 'provinces';
    var breaks = cfg.breaks[source][state.measure] || [];
    var where = source === 'counties' ? 'هر شهرستان' : 'هر استان';
    body.appendChild(el('h3', null, label('measures', state.measure) + ' در ' + where));
    var ul = el('ul', 'coop-legend-list coop-legend-ramp');
    legendLine(ul, 'fill', ZERO_COLOR, 'بدون تعاونی');
    var lo = 1;
    breaks.forEach(function (b, i) {
      legendLine(ul, 'fill', cfg.colors.ramp[i], lo === b ? faNum(b) : faNum(lo) + ' تا ' + faNum(b));
      lo = b + 1;
    });
    legendLine(ul, 'fill', cfg.colors.ramp[Math.min(breaks.length, cfg.colors.ramp.length - 1)],
      'بیش از ' + faNum(lo - 1));
    body.appendChild(ul);
  }

  function sourceLink(url, className, text) {
    var href = safeHref(url, ['http', 'https']);
    if (!href) { return null; }
    var a = el('a', className, text);
    a.href = href;
    a.rel = 'noopener noreferrer';
    a.target = '_blank';
    return a;
  }

  function legendList(body, title, className) {
    if (title) { body.appendChild(el('h3', null, title)); }
    return body.appendChild(el('ul', 'coop-legend-list' + (className ? ' ' + className : '')));
  }

  // One function per legend section a preset may name in legend.sections.
  var LEGEND = {
    choropleth: choroplethSection,
    clusters: function (body, cfg) {
      var own = cfg.layers.filter(function (l) { return l.source === 'cooperatives' && l.color; });
      var li = legendLine(legendList(body), null, null, 'خوشه: عدد، شمار تعاونی‌هاست؛ اندازه دایره با شمار ' +
        'بزرگ می‌شود. از بزرگ‌نمایی ' + faNum(cfg.clusterMaxZoom + 1) + ' هر تعاونی جدا نشان داده می‌شود.' +
        (own.length > 1 ? ' رنگ خوشه‌ها و نقطه‌ها رنگ لایه آن‌هاست.' : ''));
      var sample = el('span', 'coop-swatch coop-swatch-cluster', faNum(12));
      sample.style.background = own.length === 1 ? own[0].color : own.length ? '#6b6b6b' : cfg.colors.cluster;
      li.insertBefore(sample, li.firstChild);
    },
    precision: function (body) {
      var ul = legendList(body, 'دقت مکان');
      legendLine(ul, 'dot', '#37474f', 'دایره توپر: مکان دقیق، روستا یا شهر');
      legendLine(ul, 'ring', '#37474f', 'حلقه خط‌چین توخالی: مکان دقیق معلوم نیست؛ ' +
        'نقطه نماینده شهرستان، بخش، دهستان یا استان');
    },
    kinds: function (body, cfg) {
      var ul = legendList(body, 'رنگ نقطه‌ها: نوع تعاونی', 'coop-legend-columns');
      Object.keys(cfg.labels.kinds).forEach(function (k) {
        legendLine(ul, 'dot', cfg.colors.kinds[k], cfg.labels.kinds[k]);
      });
    },
    sectors: function (body, cfg) {
      var ul = legendList(body, 'رشته‌های کهکشان تعاون', 'coop-legend-columns');
      cfg.labels.galaxy.forEach(function (k) { legendLine(ul, 'dot', cfg.colors.sectors[k], label('sectors', k)); });
    },
    classes: function (body, cfg) {
      var ul = legendList(body, 'طبقه محرومیت شهرستان');
      Object.keys(cfg.labels.classes).forEach(function (c) {
        var unknown = c === 'no_data';
        var line = legendLine(ul, unknown ? 'hatch' : 'fill', unknown ? null : cfg.colors.classes[c],
          cfg.labels.classes[c]);
        append(line, sourceLink(cfg.sources[c], 'coop-source', 'منبع'));
      });
    },
    border: function (body, cfg) {
      legendLine(legendList(body), 'line', cfg.colors.border, 'شهرستان مرزی (مرز خشکی یا آبی کشور)');
    }
  };

  // Legend sections that explain one kind of layer appear while such a layer is on the map.
  var NEEDS = {choropleth: 'choropleth', classes: 'classes', border: 'border'};

  function shown(style) {
    return Object.keys(state.layers).some(function (id) {
      return state.specs[id].style === style && state.map.hasLayer(state.layers[id]);
    });
  }

  function renderLegend() {
    var body = state.legend;
    if (!body) { return; }
    var cfg = state.cfg;
    while (body.firstChild) { body.removeChild(body.firstChild); }
    if (cfg.legend.items.length) {          // the preset's own notes first: they qualify what follows
      var notes = legendList(body, null, 'coop-legend-notes');
      cfg.legend.items.forEach(function (item) { legendLine(notes, item.swatch, item.color, item.label_fa, null); });
    }
    cfg.legend.sections.forEach(function (section) {
      if (!NEEDS[section] || shown(NEEDS[section])) { LEGEND[section](body, cfg); }
    });
  }

  function legendControl() {
    control('bottomleft', function (box) {
      box.classList.add('coop-legend');
      var details = el('details');
      details.open = window.innerWidth > 700;
      details.appendChild(el('summary', null, 'راهنمای نقشه'));
      state.legend = el('div', 'coop-legend-body');
      details.appendChild(state.legend);
      box.appendChild(details);
    });
    renderLegend();
  }

  function controls() {
    filterControl();
    legendControl();
    if (state.cfg.controls.field && window.coopgis.field) { window.coopgis.field(state); }
    updateCounter();
  }

  window.coopgis = {
    setup: setup,
    layer: layer,
    register: register,
    controls: controls,
    state: state,
    util: {faNum: faNum, faDigits: faDigits, el: el, append: append, safeHref: safeHref, query: query,
      label: label, coopPopup: coopPopup, uncertaintyText: uncertaintyText, placeText: placeText}
  };

  if (!L.control.fullscreen) {
    // leaflet.fullscreen 5 no longer defines the factory that folium's Fullscreen plugin calls;
    // the class is looked up when the map is built, after the plugin's script has run.
    L.control.fullscreen = function (options) { return new L.Control.FullScreen(options); };
  }
}());
