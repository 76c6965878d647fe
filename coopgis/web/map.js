/*
 * coopgis map pages, part 4 of 4: setup, the layers a preset names, the title, filter and legend
 * controls, and the public window.coopgis API that the folium page calls.
 */
(function () {
  'use strict';

  var _ = window.coopgis._, state = window.coopgis.state;
  var ZERO_COLOR = _.ZERO_COLOR, faDigits = _.faDigits, faNum = _.faNum, uncertaintyText = _.uncertaintyText,
    placeText = _.placeText, el = _.el, append = _.append, safeHref = _.safeHref, query = _.query,
    readJson = _.readJson, label = _.label, pageFilterFromUrl = _.pageFilterFromUrl, sourceLink = _.sourceLink,
    row = _.row, coopPopup = _.coopPopup, CoopTiles = _.CoopTiles, CoopLocal = _.CoopLocal,
    countiesShown = _.countiesShown, tilePolygons = _.tilePolygons, embeddedPolygons = _.embeddedPolygons;

  function setup(map, configId, dataId) {
    state.map = map;
    state.cfg = readJson(configId);
    state.data = readJson(dataId);
    state.pageFilter = pageFilterFromUrl();
    state.presetFilter = Object.assign({}, state.cfg.filters);
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
    map.on('popupopen', keepPopupInView);
    _.afterFirstClusters(titleControl);
    _.afterFirstClusters(function () { placeLabels(map); });
    // once the page's script has added its layers: without cooperative tiles nothing need wait
    setTimeout(function () {
      var coop = Object.keys(state.layers).some(function (id) {
        return state.layers[id] instanceof CoopTiles && map.hasLayer(state.layers[id]);
      });
      if (!coop) { _.firstClustersShown(); }
    }, 0);
    setTimeout(_.firstClustersShown, 1500);
  }

  // A popup whose content grows after it opened (a cluster's list, read from the server) is panned into
  // view again, so its top and its close button stay on screen.
  // (Not popup.update(): that would build the popup's content again, closing the list.)
  function keepPopupInView(e) {
    var popup = e.popup, box = popup.getElement(), map = state.map;
    if (!box || !window.ResizeObserver) { return; }
    var last = box.offsetHeight, pad = 12;
    var watch = new ResizeObserver(function () {
      if (!popup.isOpen()) { watch.disconnect(); return; }
      var h = box.offsetHeight;
      if (Math.abs(h - last) <= 2) { return; }
      last = h;
      var r = box.getBoundingClientRect(), m = map.getContainer().getBoundingClientRect(), dy = 0;
      if (r.top < m.top + pad) { dy = r.top - m.top - pad; }
      else if (r.bottom > m.bottom - pad) { dy = Math.min(r.bottom - m.bottom + pad, r.top - m.top - pad); }
      if (dy) { map.panBy([0, dy]); }
    });
    watch.observe(box);
    popup.once('remove', function () { watch.disconnect(); });
  }

  // Place names on every map (web/labels.js): the server's places tiles, or the labels a standalone file holds.
  function placeLabels(map) {
    var labels = window.coopgis.labels;
    if (!labels) { return; }
    state.placeLabels = labels.layer({base: state.cfg.base, bounds: state.cfg.bounds,
      records: state.data ? (state.data.places || []) : null}).addTo(map);
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
      var TITLES = {kind: 'نوع تعاونی', sector: 'رشته فعالیت', status: 'وضعیت'};
      var OPTIONS = {kind: cfg.labels.kinds, sector: cfg.labels.sectors, status: cfg.labels.statuses};
      fields.forEach(function (name) {
        var s = select(name, TITLES[name], OPTIONS[name], _.activeFilters()[name]);
        s.select.classList.add('coop-filter-' + name);
        s.select.addEventListener('change', function () { _.setFilter(name, s.select.value || null); });
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
    var breaks = _.breaksOf(source, state.measure);
    var where = source === 'counties' ? 'هر شهرستان' : 'هر استان';
    var per = _.perCapita(state.measure);
    body.appendChild(el('h3', null, label('measures', state.measure) + ' در ' + where +
      (per ? ' (جمعیت: ' + cfg.census.label + ')' : '')));
    var filtered = _.thematicQuery && _.thematicQuery();
    if (filtered) { body.appendChild(el('p', 'coop-legend-filtered', 'فقط تعاونی‌های پالایه‌های بالا شمرده شده‌اند.')); }
    var ul = el('ul', 'coop-legend-list coop-legend-ramp');
    legendLine(ul, 'fill', ZERO_COLOR, 'بدون تعاونی');
    var lo = per ? 0 : 1;
    breaks.forEach(function (b, i) {
      var text = per ? (i === 0 ? 'تا ' + _.faRate(b) : _.faRate(lo) + ' تا ' + _.faRate(b)) :
        lo === b ? faNum(b) : faNum(lo) + ' تا ' + faNum(b);
      legendLine(ul, 'fill', cfg.colors.ramp[i], text);
      lo = per ? b : b + 1;
    });
    legendLine(ul, 'fill', cfg.colors.ramp[Math.min(breaks.length, cfg.colors.ramp.length - 1)],
      'بیش از ' + (per ? _.faRate(lo) : faNum(lo - 1)));
    if (per) {
      legendLine(ul, 'hatch', null, 'بدون واحد سرشماری: شهرستانی که شهرستان مادرش در ' + cfg.census.label +
        ' معلوم نیست (تقسیم نمی‌شود)');
      body.appendChild(ul);
      body.appendChild(el('p', 'coop-legend-source', 'شهرستان‌های جداشده پس از ۱۳۹۵ با شهرستان مادر شمرده و ' +
        'تقسیم می‌شوند. منبع جمعیت: مرکز آمار ایران، ' + cfg.census.label + '.'));
      return;
    }
    body.appendChild(ul);
  }

  function censusSection(body, cfg) {
    Object.keys(state.layers).forEach(function (id) {
      var spec = state.specs[id];
      if (!cfg.labels.indicators[spec.style] || !state.map.hasLayer(state.layers[id])) { return; }
      var ul = legendList(body, cfg.labels.indicators[spec.style] + '، ' + cfg.census.label);
      var ib = (cfg.indicatorBreaks[spec.source] || {})[spec.style] || [];
      var lo = 0;
      ib.forEach(function (b, i) {
        legendLine(ul, 'fill', cfg.colors.indicatorRamp[i], (i ? faNum(lo, 1) + ' تا ' : 'تا ') + faNum(b, 1) + '٪');
        lo = b;
      });
      legendLine(ul, 'fill', cfg.colors.indicatorRamp[Math.min(ib.length, 4)], 'بیش از ' + faNum(lo, 1) + '٪');
      legendLine(ul, 'hatch', null, 'بدون واحد سرشماری');
      body.appendChild(el('p', 'coop-legend-source', 'شاخص سرشماری است، نه طبقه محرومیت. بیکاری سرشماری از ' +
        'نرخ طرح نیروی کار بیشتر است.'));
    });
  }

  function quotaSection(body, cfg) {
    var ul = legendList(body, 'سهمیه ارزی تعاونی‌های مرزنشینان (هر عضو)');
    legendLine(ul, 'fill', cfg.colors.classes.less_developed_2019, '۶۰۰ دلار: فقط جایی که منطقه در فهرست ' +
      'منتشرشده مناطق محروم آمده است');
    legendLine(ul, 'hatch', null, 'نامعلوم (نه ۳۰۰ دلار): جایی که فهرستی نیست یا فهرست درباره آن خاموش است');
    legendLine(ul, 'fill', cfg.colors.classes.not_deprived, '۳۰۰ دلار: فقط جایی که فهرست وزارتخانه ' +
      '(COOPGIS_DEPRIVATION) منطقه را غیرمحروم نامیده است');
    var src = el('p', 'coop-legend-source', 'منبع قاعده: ');
    var en = el('span', null, cfg.quota.source);
    en.lang = 'en';
    en.dir = 'ltr';
    body.appendChild(append(src, en));
  }

  function legendList(body, title, className) {
    if (title) { body.appendChild(el('h3', null, title)); }
    return body.appendChild(el('ul', 'coop-legend-list' + (className ? ' ' + className : '')));
  }

  // One function per legend section a preset may name in legend.sections.

  var LEGEND = {
    choropleth: choroplethSection,
    census: censusSection,
    quota: quotaSection,
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
        if (cfg.classesPresent && cfg.classesPresent.indexOf(c) < 0) { return; }   // e.g. not_deprived
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

  var NEEDS = {choropleth: 'choropleth', classes: 'classes', border: 'border', census: 'census'};

  function shown(style) {
    return Object.keys(state.layers).some(function (id) {
      var s = state.specs[id].style;
      var match = style === 'census' ? !!state.cfg.labels.indicators[s] : s === style;
      return match && state.map.hasLayer(state.layers[id]);
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
      details.open = window.innerWidth > state.cfg.narrow;   // mapview.NARROW_PX
      details.appendChild(el('summary', null, 'راهنمای نقشه'));
      state.legend = el('div', 'coop-legend-body');
      details.appendChild(state.legend);
      box.appendChild(details);
    });
    renderLegend();
  }

  function controls() {
    _.afterFirstClusters(function () {
      _.chipsControl();
      filterControl();
      legendControl();
      if (state.cfg.controls.field && window.coopgis.field) { window.coopgis.field(state); }
      updateCounter();
    });
  }

  window.coopgis = {
    _: _,
    setup: setup,
    layer: layer,
    register: register,
    controls: controls,
    later: _.afterFirstClusters,     // the page's layer list and fullscreen button (mapview._later)
    refreshCooperatives: refreshCooperatives,
    restyle: restyleAll,
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
