/*
 * coopgis map pages, part 1 of 4: the page state, Persian numbers and labels, DOM helpers and the
 * filters of the page's address. The parts load in order (core, popups, layers, map) and share
 * window.coopgis._; every text that comes from data is put into the page with textContent, never as
 * HTML; there is no eval, no inline event handler and no javascript: URL, so a strict CSP fits.
 */
(function () {
  'use strict';

  var FA_DIGITS = '۰۱۲۳۴۵۶۷۸۹';

  var COARSE = {county: 1, province: 1, district: 1, rural_district: 1};


  var ZERO_COLOR = '#fbfbfb';

  var state = {map: null, cfg: null, data: null, specs: {}, layers: {}, measure: 'cooperatives',
    presetFilter: null, pageFilter: {}, userFilter: {}, breaks: null, registry: {}, legend: null, counter: null,
    onReport: null};

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

  // A small decimal (a per-capita figure) with two significant digits or more: ۰٫۰۴۲, ۱٫۲۵, ۱۲٫۵.

  function faRate(x) {
    if (x === null || x === undefined || isNaN(x)) { return '—'; }
    var v = Math.abs(Number(x));
    return faNum(x, v >= 10 ? 1 : v >= 1 ? 2 : 3);
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

  function pageFilterFromUrl() {
    var out = {};
    var params = new URLSearchParams(window.location.search);
    (state.cfg.filter_names || []).forEach(function (k) {   // coopgis.filters.FILTER_NAMES
      var v = params.get(k);
      if (v) { out[k] = v; }
    });
    return out;
  }

  // The page's filters: the preset's (unless a chip removed them), the address's and the user's.

  function activeFilters() {
    return Object.assign({}, state.presetFilter || state.cfg.filters, state.pageFilter, state.userFilter);
  }

  function paramsOf(spec) {
    return Object.assign(activeFilters(), spec.filters || {});
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

  function sourceLink(url, className, text) {
    var href = safeHref(url, ['http', 'https']);
    if (!href) { return null; }
    var a = el('a', className, text);
    a.href = href;
    a.rel = 'noopener noreferrer';
    a.target = '_blank';
    return a;
  }

  window.coopgis = {state: state, _: {
    FA_DIGITS: FA_DIGITS, COARSE: COARSE, ZERO_COLOR: ZERO_COLOR, faDigits: faDigits, faNum: faNum, faRate: faRate,
    uncertaintyText: uncertaintyText, placeText: placeText, el: el, append: append, safeHref: safeHref,
    query: query, yesNo: yesNo, readJson: readJson, label: label, pageFilterFromUrl: pageFilterFromUrl,
    paramsOf: paramsOf, activeFilters: activeFilters, matches: matches, sourceLink: sourceLink
  }};
}());
