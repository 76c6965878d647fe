/*
 * coopgis map pages: the page's filters as removable chips, the troubled-cooperatives toggle, and what a
 * change of filters redraws: the cooperatives, the choropleth tiles (which carry the filtered figures) and
 * the choropleth's class breaks (from /stats under the same filters). Loaded after layers.js, before map.js.
 */
(function () {
  'use strict';

  var _ = window.coopgis._, state = window.coopgis.state;
  var el = _.el, append = _.append, faDigits = _.faDigits, label = _.label, query = _.query, yesNo = _.yesNo;

  var NAMES = {kind: 'نوع', sector: 'رشته', status: 'وضعیت', province: 'استان', county: 'شهرستان',
    deprived: 'در فهرست محرومیت', border: 'مرزی', women_led: 'زن‌سرپرست', registered_year: 'سال ثبت',
    precision: 'دقت مکان'};
  var LABELS = {kind: 'kinds', sector: 'sectors', status: 'statuses', precision: 'precision'};

  function words(name, value) {
    var parts = String(value).split(',');
    if (LABELS[name]) { return parts.map(function (v) { return label(LABELS[name], v); }).join('، '); }
    if (name === 'province') {
      var names = state.cfg.provinceNames || {};
      return parts.map(function (v) { return names[v] || v; }).join('، ');
    }
    if (name === 'deprived' || name === 'border' || name === 'women_led') { return yesNo(value); }
    return faDigits(value);
  }

  // The thematic part of the filters (not the places, which frame the map) as a query string.

  function thematicQuery() {
    var f = _.activeFilters(), out = {};
    Object.keys(f).forEach(function (k) {
      if ((state.cfg.place_filters || []).indexOf(k) < 0) { out[k] = f[k]; }
    });
    return query(out);
  }

  function setFilter(name, value) {
    if (!state.presetFilter) { state.presetFilter = Object.assign({}, state.cfg.filters); }
    delete state.presetFilter[name];
    delete state.pageFilter[name];
    if (value) { state.userFilter[name] = value; } else { delete state.userFilter[name]; }
    filtersChanged();
  }

  function filtersChanged() {
    var f = _.activeFilters();
    var params = new URLSearchParams(window.location.search);
    (state.cfg.filter_names || []).forEach(function (k) {
      var preset = (state.presetFilter || state.cfg.filters)[k];
      if (f[k] && f[k] !== preset) { params.set(k, f[k]); } else { params.delete(k); }
    });
    if (window.history && window.history.replaceState && window.location.protocol !== 'file:') {
      var qs = params.toString();
      window.history.replaceState(null, '', window.location.pathname + (qs ? '?' + qs : '') + window.location.hash);
    }
    document.querySelectorAll('select[class^="coop-filter-"]').forEach(function (s) {
      var name = s.name;
      if (s.value !== (f[name] || '')) { s.value = f[name] || ''; }
    });
    if (window.coopgis.refreshCooperatives) { window.coopgis.refreshCooperatives(); }
    Object.keys(state.layers).forEach(function (id) {
      var l = state.layers[id];
      if (l.coopRefilter && state.specs[id].style === 'choropleth') { l.coopRefilter(); }
    });
    loadBreaks();
    renderChips();
  }

  // The choropleth's classes follow the filtered figures: /stats gives the breaks of every area.

  function loadBreaks() {
    var q = thematicQuery();
    var sources = {};
    state.cfg.layers.forEach(function (s) { if (s.style === 'choropleth') { sources[s.source] = true; } });
    if (!q || state.data || !Object.keys(sources).length) {
      state.breaks = null;
      if (window.coopgis.restyle) { window.coopgis.restyle(); }
      return;
    }
    var wanted = Object.keys(sources);
    Promise.all(wanted.map(function (src) {
      var by = src === 'provinces' ? 'province' : 'county';
      return fetch(state.cfg.base + '/stats' + q + '&by=' + by).then(function (r) {
        if (!r.ok) { throw new Error('HTTP ' + r.status); }
        return r.json();
      });
    })).then(function (bodies) {
      if (thematicQuery() !== q) { return; }       // the filters changed meanwhile
      var breaks = {};
      wanted.forEach(function (src, i) { breaks[src] = bodies[i].breaks; });
      state.breaks = breaks;
      if (window.coopgis.restyle) { window.coopgis.restyle(); }
    }).catch(function () {
      state.breaks = null;
    });
  }

  function renderChips() {
    var box = state.chips;
    if (!box) { return; }
    var list = box.querySelector('.coop-chip-list');
    while (list.firstChild) { list.removeChild(list.firstChild); }
    var f = _.activeFilters();
    var keys = Object.keys(f).filter(function (k) { return f[k]; });
    box.classList.toggle('coop-chips-empty', !keys.length);
    keys.forEach(function (k) {
      var chip = el('span', 'coop-chip');
      chip.dataset.filter = k;
      chip.dataset.value = f[k];
      var text = el('span', 'coop-chip-text', (NAMES[k] || k) + ': ' + words(k, f[k]));
      var x = el('button', 'coop-chip-remove', '×');
      x.type = 'button';
      x.title = 'برداشتن این پالایه';
      x.setAttribute('aria-label', 'برداشتن پالایه ' + (NAMES[k] || k));
      x.addEventListener('click', function () { setFilter(k, null); });
      list.appendChild(append(chip, text, x));
    });
    var toggle = box.querySelector('input.coop-troubled-toggle');
    if (toggle) { toggle.checked = f.status === 'troubled'; }
  }

  function chipsControl() {
    var cfg = state.cfg;
    var C = L.Control.extend({
      onAdd: function () {
        var box = el('div', 'leaflet-control coop-control coop-chips');
        box.dir = 'rtl';
        box.appendChild(el('span', 'coop-chips-title', 'پالایه‌ها:'));
        box.appendChild(el('span', 'coop-chip-list'));
        if (cfg.controls.troubled) {
          var lab = el('label', 'coop-troubled');
          var input = el('input', 'coop-troubled-toggle');
          input.type = 'checkbox';
          input.addEventListener('change', function () { setFilter('status', input.checked ? 'troubled' : null); });
          append(lab, input, el('span', null, 'فقط تعاونی‌های مشکل‌دار'));
          box.appendChild(lab);
        }
        L.DomEvent.disableClickPropagation(box);
        return box;
      }
    });
    var control = new C({position: 'topleft'}).addTo(state.map);
    state.chips = control.getContainer();
    renderChips();
    if (thematicQuery()) { loadBreaks(); }
  }

  _.thematicQuery = thematicQuery; _.setFilter = setFilter; _.filtersChanged = filtersChanged;
  _.chipsControl = chipsControl; _.renderChips = renderChips; _.filterWords = words;
}());
