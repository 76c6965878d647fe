/*
 * coopgis map pages, part 2 of 4: the popups of a cooperative, a cluster and a boundary polygon,
 * built with textContent.
 */
(function () {
  'use strict';

  var _ = window.coopgis._, state = window.coopgis.state;
  var COARSE = _.COARSE, faDigits = _.faDigits, faNum = _.faNum, placeText = _.placeText, el = _.el,
    append = _.append, yesNo = _.yesNo, label = _.label, sourceLink = _.sourceLink;

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

  function clusterPopup(p, latlng, spec) {
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
    if (_.clusterList && p.cell && state.cfg.links) { _.clusterList(box, p, spec); }
    return box;
  }

  // Cooperatives from the server's GeoJSON tiles: one group of markers per tile, dropped with the tile.

  function polygonPopup(spec, p) {
    var box = el('div', 'coop-popup');
    box.dir = 'rtl';
    box.appendChild(el('h3', 'coop-popup-title', p.name_fa || p.name_en || '—'));
    var t = el('table');
    if (spec.source === 'deprivation') {
      var c = p.deprivation_class || 'no_data';
      row(t, 'فهرست محرومیت', label('classes', c));
      if (p.border !== undefined && p.border !== null) { row(t, 'مرزی', yesNo(p.border)); }
      row(t, 'سهمیه ارزی مرزنشینان', p.border_quota === '600' ? faNum(600) + ' دلار' :
        p.border_quota === '300' ? faNum(300) + ' دلار' : 'نامعلوم');
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
    censusRows(t, spec, p);
    box.appendChild(t);
    if (spec.source === 'provinces' && p.iso_3166_2 && state.cfg.links) {
      var link = el('a', 'coop-popup-link', 'آمار در داشبورد');
      link.href = state.cfg.base + '/dashboard#' + encodeURIComponent(p.iso_3166_2);
      box.appendChild(append(el('p'), link));
    }
    return box;
  }

  // Per-capita figures and census indicators, named with the census and its year; a county without a
  // census unit says so instead of dividing.

  function censusRows(t, spec, p) {
    var census = state.cfg.census || {};
    var pop = spec.source === 'counties' ? p.unit_population_1395 : p.population_1395;
    if (spec.source === 'counties' && p.unit_link) {
      row(t, 'واحد ' + census.label, p.unit_link === 'none' ? 'ندارد' : p.census_unit_name || '—');
      if (p.unit_link !== 'same' && census.links) { row(t, 'پیوند', census.links[p.unit_link] || p.unit_link); }
    }
    if (pop === undefined) { return; }
    row(t, 'جمعیت ' + census.label, pop === null ? '—' : faNum(pop));
    ['cooperatives_per_10k', 'members_per_10k', 'jobs_per_10k'].forEach(function (m) {
      row(t, label('measures', m), p[m] === null || p[m] === undefined ? 'بدون واحد سرشماری' : _.faRate(p[m]));
    });
    if (p.unemployment_rate_pct !== undefined && p.unemployment_rate_pct !== null) {
      row(t, 'بیکاری (' + census.label + ')', faNum(p.unemployment_rate_pct, 1) + '٪');
      row(t, 'بی‌سوادی ۱۵+ (' + census.label + ')', faNum(p.illiteracy_pct_15plus, 1) + '٪');
    }
  }

  _.row = row; _.coopPopup = coopPopup; _.clusterPopup = clusterPopup; _.polygonPopup = polygonPopup;
}());
