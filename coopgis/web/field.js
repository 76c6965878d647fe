/*
 * coopgis field page: sign-in (web/signin.js), locate me, the nearest cooperatives (GET /nearest) and
 * search (GET /search, with distance and direction once the officer's location is known), honest result
 * cards (web/cards.js), the location report form (web/report.js), and offline work (web/offline.js):
 * with no signal the lists come from the officer's last county pack and the map shows that pack.
 * All data text goes into the page with textContent; every error is said in Persian (web/messages.js).
 */
(function () {
  'use strict';

  var PACK_REFRESH_MS = 12 * 3600 * 1000;     // a pack older than this is fetched again when online

  function field(state) {
    var U = window.coopgis.util, S = window.coopgis.session, O = window.coopgis.offline;
    var M = window.coopgis.messages, C = window.coopgis.cards;
    var el = U.el, append = U.append, faNum = U.faNum;
    var map = state.map, base = state.cfg.base;
    var here = null;          // last position from the browser: {latlng, accuracy}
    var lastNearest = null;   // where the nearest list was last fetched
    var county = null;        // the county the officer stands in (from /nearest)
    var pin = null, packLayer = null;

    document.body.classList.add('coop-field-page');
    var panel = el('section');
    panel.id = 'coop-field';
    panel.dir = 'rtl';
    panel.setAttribute('aria-label', 'نزدیک‌ترین تعاونی‌ها و جست‌وجو');

    var session = S.box({base: base, el: el, pendingCount: function () { return O.queue().length; },
      onSignOut: function () { O.clear(); }});
    var bar = el('div', 'coop-field-bar');
    var locate = el('button', 'coop-button coop-primary coop-locate', 'مکان من');
    locate.type = 'button';
    var form = el('form', 'coop-search');
    form.setAttribute('role', 'search');
    var input = el('input');
    input.type = 'search';
    input.name = 'q';
    input.placeholder = 'نام، شماره ثبت، روستا یا شهر';
    input.setAttribute('aria-label', 'جست‌وجوی تعاونی');
    input.maxLength = 100;
    var go = el('button', 'coop-button', 'جست‌وجو');
    go.type = 'submit';
    append(form, input, go);
    append(bar, locate, form);

    var status = el('p', 'coop-status', 'برای دیدن نزدیک‌ترین تعاونی‌ها «مکان من» را بزنید یا جست‌وجو کنید.');
    status.setAttribute('aria-live', 'polite');
    var offlineBox = el('div', 'coop-offline');
    var list = el('ol', 'coop-results');
    var report = window.coopgis.reportForm({map: map, base: base,
      current: function () { return here; }, pin: function () { return pin && map.hasLayer(pin) ? pin : null; },
      onClose: function () { if (pin) { map.removeLayer(pin); } }});
    append(panel, session, bar, status, offlineBox, report.form, list);
    document.body.appendChild(panel);
    map.invalidateSize();

    O.on(function () { showOffline(); });
    S.onChange(function () { showOffline(); });
    O.register(base);
    O.start(base);
    showOffline();
    if (navigator.onLine === false) { O.loadPack().then(function (pack) { if (pack) { drawPack(pack); } }); }
    window.addEventListener('online', function () {
      if (packLayer) {
        map.removeLayer(packLayer);
        packLayer = null;
        if (state.placeLabels) { state.placeLabels.addTo(map); }
      }
      if (/^بدون اتصال/.test(status.textContent)) {
        status.textContent = 'اتصال برگشت.';
        if (here) { lastNearest = here.latlng; nearest(here.latlng); }
      }
    });

    locate.addEventListener('click', function () {
      status.textContent = 'در حال یافتن مکان شما…';
      if (state.registry.locate) { state.registry.locate.start(); } else { map.locate({setView: true, maxZoom: 14}); }
    });
    map.on('locationfound', function (e) {
      here = {latlng: e.latlng, accuracy: e.accuracy};
      report.update();
      if (lastNearest && lastNearest.distanceTo(e.latlng) < 50) { return; }
      lastNearest = e.latlng;
      nearest(e.latlng);
    });
    map.on('locationerror', function () {
      status.textContent = 'مکان شما پیدا نشد (اجازه دسترسی به مکان داده نشد یا GPS خاموش است). می‌توانید جست‌وجو کنید.';
    });
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var q = input.value.trim();
      if (!q) { return; }
      search(q);
    });
    state.onReport = function (props, latlng) { openReport(props, latlng); };

    function nearest(latlng) {
      status.textContent = 'در حال یافتن نزدیک‌ترین تعاونی‌ها…';
      var url = base + '/nearest' + U.query({lon: latlng.lng.toFixed(6), lat: latlng.lat.toFixed(6), limit: 10});
      M.request(url, {headers: {Accept: 'application/geo+json'}}).then(function (r) {
        if (!r.ok) { status.textContent = 'فهرست نزدیک‌ترین‌ها گرفته نشد: ' + M.explain(r, 'nearest'); return; }
        var fc = r.body || {};
        var n = (fc.features || []).length;
        status.textContent = (n ? faNum(n) + ' تعاونی نزدیک شما' : 'در شعاع جست‌وجو تعاونی‌ای نیست.') +
          nearPlace(fc.nearest_place);
        show(fc.features || []);
        if (fc.county) { county = fc.county; keepPack(); }
      }).catch(function () {
        fromPack(function (pack) {
          var found = O.nearestLocal(pack, latlng, 10);
          show(found.features);
          return faNum(found.features.length) + ' تعاونی نزدیک شما';
        });
      });
    }

    function search(q) {
      status.textContent = 'در حال جست‌وجو…';
      var params = {q: q, limit: 15};
      if (here) { params.lon = here.latlng.lng.toFixed(6); params.lat = here.latlng.lat.toFixed(6); }
      M.request(base + '/search' + U.query(params), {headers: {Accept: 'application/geo+json'}}).then(function (r) {
        if (!r.ok) { status.textContent = 'جست‌وجو انجام نشد: ' + M.explain(r, 'search'); return; }
        var features = (r.body && r.body.features) || [];
        status.textContent = features.length ? faNum(features.length) + ' نتیجه برای «' + q + '»' :
          'نتیجه‌ای برای «' + q + '» پیدا نشد.';
        show(features);
      }).catch(function () {
        fromPack(function (pack) {
          var found = O.searchLocal(pack, q, here && here.latlng, 15);
          show(found);
          return found.length ? faNum(found.length) + ' نتیجه برای «' + q + '»' : 'نتیجه‌ای برای «' + q + '» پیدا نشد.';
        });
      });
    }

    // No answer from the server: the same list from the officer's county pack, said to come from it.
    function fromPack(work) {
      O.loadPack().then(function (pack) {
        if (!pack) {
          status.textContent = M.OFFLINE + ' بسته آفلاینی هم در این دستگاه نیست؛ با اتصال، وارد شوید و «مکان من» ' +
            'را بزنید تا بسته شهرستانتان ذخیره شود.';
          return;
        }
        drawPack(pack);
        var said = work(pack);
        status.textContent = 'بدون اتصال — از بسته آفلاین شهرستان ' + pack.info.name +
          ' (فقط تعاونی‌های همین شهرستان): ' + said;
      });
    }

    // The pack on the map while offline: the county's outline, its cooperatives and its village names.
    function drawPack(pack) {
      if (packLayer) { return; }
      var spec = {color: null};
      var group = L.layerGroup();
      group.addLayer(L.geoJSON(pack.county, {interactive: false, style: {color: '#37474f', weight: 2, fill: false,
        className: 'coop-pack-county'}}));
      pack.cooperatives.forEach(function (f) {
        var c = f.geometry && f.geometry.coordinates;
        if (c) { group.addLayer(window.coopgis._.pointMarker(L.latLng(c[1], c[0]), f.properties, spec, f.id)); }
      });
      group.addLayer(new window.coopgis.labels.LabelList(pack.labels));
      if (state.placeLabels) { map.removeLayer(state.placeLabels); }   // the pack's names replace the tiles'
      packLayer = group.addTo(map);
      if (!here) { map.fitBounds(L.geoJSON(pack.county).getBounds()); }
    }

    function keepPack() {
      var info = O.packInfo();
      if (!county || !S.who()) { return; }
      var fresh = info && info.county === county.osm_relation_id &&
        Date.now() - new Date(info.saved_at).getTime() < PACK_REFRESH_MS;
      if (!fresh) { savePack(); }
    }

    function savePack() {
      O.savePack(base, county).then(showOffline).catch(function (err) {
        showOffline('بسته آفلاین ذخیره نشد: ' + err.message);
      });
    }

    function showOffline(note) {
      while (offlineBox.firstChild) { offlineBox.removeChild(offlineBox.firstChild); }
      var info = O.packInfo(), queued = O.queue(), failed = O.failed();
      var line = el('p', 'coop-pack-status');
      if (info) {
        line.textContent = 'بسته آفلاین: شهرستان ' + info.name + ' (' + faNum(info.cooperatives) + ' تعاونی)، ذخیره ' +
          new Date(info.saved_at).toLocaleDateString('fa-IR') + '؛ بی‌اینترنت هم فهرست‌ها از آن ساخته می‌شود.';
      } else {
        line.textContent = S.who() ? 'هنوز بسته آفلاینی ذخیره نشده؛ با «مکان من» بسته شهرستانتان خودکار ذخیره می‌شود.' :
          'برای کار بی‌اینترنت وارد شوید؛ پس از «مکان من» بسته شهرستانتان ذخیره می‌شود.';
      }
      offlineBox.appendChild(line);
      var actions = el('p', 'coop-result-actions');
      if (county && S.who()) {
        var save = el('button', 'coop-button coop-pack-save', 'ذخیره بسته شهرستان ' + county.name_fa);
        save.type = 'button';
        save.addEventListener('click', savePack);
        actions.appendChild(save);
      }
      if (info) {
        var file = el('a', 'coop-pack-file', 'پرونده بسته (zip برای OsmAnd، QGIS و ...)');
        file.href = '#';
        file.addEventListener('click', function (e) {
          e.preventDefault();
          O.packFileUrl().then(function (url) {
            if (!url) { return; }
            var a = el('a');
            a.href = url;
            a.download = 'coopgis-pack-' + info.county + '.zip';
            document.body.appendChild(a);
            a.click();
            a.remove();
          });
        });
        actions.appendChild(file);
      }
      if (actions.childNodes.length) { offlineBox.appendChild(actions); }
      if (queued.length) {
        var q = el('p', 'coop-queue-status', faNum(queued.length) + ' گزارش در صف ارسال؛ با برگشت اتصال خودکار ' +
          'فرستاده می‌شود.');
        q.dataset.count = String(queued.length);
        offlineBox.appendChild(q);
      }
      failed.slice(-3).forEach(function (x) {
        offlineBox.appendChild(el('p', 'coop-queue-failed', 'گزارش «' + (x.item.name || x.item.reg) +
          '» پذیرفته نشد: ' + x.text));
      });
      if (typeof note === 'string') { offlineBox.appendChild(el('p', 'coop-pack-error', note)); }
    }

    function show(features) {
      while (list.firstChild) { list.removeChild(list.firstChild); }
      features.forEach(function (f) {
        list.appendChild(C.card(f, {onShow: showOnMap, onReport: openReport}));
      });
    }

    function showOnMap(latlng, p) {
      map.setView(latlng, Math.max(map.getZoom(), 15));
      L.popup({className: 'coop-popup-wrap', maxWidth: 320}).setLatLng(latlng)
        .setContent(U.coopPopup(p, p.registration_no, latlng)).openOn(map);
    }

    // "· نزدیک‌ترین آبادی: بادخوره (۱٫۲ کیلومتر)" from the nearest placed village, city or place.
    function nearPlace(place) {
      if (!place || !place.name) { return ''; }
      var kind = place.level === 'city' ? 'شهر' : 'آبادی';
      return ' · نزدیک‌ترین ' + kind + ': ' + place.name + ' (' + C.distanceText(place.distance_km, faNum) + ')';
    }

    function openReport(props, latlng) {
      map.closePopup();
      var start = latlng || (here && here.latlng) || map.getCenter();
      if (!pin) {
        var body = el('div', 'coop-pin-body');
        pin = L.marker(start, {draggable: true, autoPan: true, title: 'مکان درست را با کشیدن نشان دهید',
          icon: L.divIcon({html: body, className: 'coop-pin', iconSize: [26, 26], iconAnchor: [13, 31]})});
        pin.on('drag dragend', function () { report.useMarker(); });
      } else {
        pin.setLatLng(start);
      }
      pin.addTo(map);
      map.setView(start, Math.max(map.getZoom(), 14));
      report.open(props);
    }

    map.on('click', function (e) {
      if (report.isOpen() && pin && map.hasLayer(pin)) { pin.setLatLng(e.latlng); report.useMarker(); }
    });
  }

  window.coopgis.field = field;
}());
