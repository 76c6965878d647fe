/*
 * coopgis field page: locate me, the nearest cooperatives (GET /nearest), search (GET /search),
 * directions through each result's geo: URI, and a form that reports a corrected location
 * (POST /cooperatives/{registration_no}/location-reports) and shows the server's answer.
 * All data text goes into the page with textContent.
 */
(function () {
  'use strict';

  var REASONS = [
    'جای تعاونی روی نقشه نادرست است',
    'مکان تقریبی بود؛ مکان دقیق در بازدید ثبت شد',
    'تعاونی به نشانی دیگری رفته است',
    'نشانی ثبت‌شده نادرست یا ناقص است',
    'دیگر (در توضیح نوشته شده)'
  ];
  var STATUS_FA = {pending: 'در انتظار بررسی', accepted: 'پذیرفته', rejected: 'رد شده'};

  function field(state) {
    var U = window.coopgis.util;
    var el = U.el, append = U.append, faNum = U.faNum;
    var map = state.map, base = state.cfg.base;
    var here = null;          // last position from the browser: {latlng, accuracy}
    var lastNearest = null;   // where the nearest list was last fetched
    var chosen = null;        // the cooperative being reported: {props, latlng}
    var pin = null;

    document.body.classList.add('coop-field-page');
    var panel = el('section');
    panel.id = 'coop-field';
    panel.dir = 'rtl';
    panel.setAttribute('aria-label', 'نزدیک‌ترین تعاونی‌ها و جست‌وجو');

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
    var list = el('ol', 'coop-results');
    var report = reportForm();
    append(panel, bar, status, report.form, list);
    document.body.appendChild(panel);
    map.invalidateSize();

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
    map.on('locationerror', function (e) {
      status.textContent = 'مکان شما پیدا نشد: ' + (e.message || 'اجازه دسترسی به مکان داده نشد') +
        '. می‌توانید جست‌وجو کنید.';
    });
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var q = input.value.trim();
      if (!q) { return; }
      status.textContent = 'در حال جست‌وجو…';
      getJson(base + '/search' + U.query({q: q, limit: 15})).then(function (fc) {
        var n = (fc.features || []).length;
        status.textContent = n ? faNum(n) + ' نتیجه برای «' + q + '»' : 'نتیجه‌ای برای «' + q + '» پیدا نشد.';
        show(fc.features || []);
      }).catch(function (err) { status.textContent = 'جست‌وجو انجام نشد: ' + err.message; });
    });
    state.onReport = function (props, latlng) { openReport(props, latlng); };

    function nearest(latlng) {
      status.textContent = 'در حال یافتن نزدیک‌ترین تعاونی‌ها…';
      var url = base + '/nearest' + U.query({lon: latlng.lng.toFixed(6), lat: latlng.lat.toFixed(6), limit: 10});
      getJson(url).then(function (fc) {
        var n = (fc.features || []).length;
        status.textContent = (n ? faNum(n) + ' تعاونی نزدیک شما' : 'در شعاع جست‌وجو تعاونی‌ای نیست.') +
          nearPlace(fc.nearest_place);
        show(fc.features || []);
      }).catch(function (err) { status.textContent = 'فهرست نزدیک‌ترین‌ها گرفته نشد: ' + err.message; });
    }

    function getJson(url) {
      return fetch(url, {headers: {Accept: 'application/geo+json, application/json'}}).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (!r.ok) { throw new Error(body.detail || ('HTTP ' + r.status)); }
          return body;
        });
      });
    }

    function show(features) {
      while (list.firstChild) { list.removeChild(list.firstChild); }
      features.forEach(function (f) { list.appendChild(item(f)); });
    }

    // "· نزدیک‌ترین آبادی: بادخوره (۱٫۲ کیلومتر)" from the nearest placed village, city or place.
    function nearPlace(place) {
      if (!place || !place.name) { return ''; }
      var kind = place.level === 'city' ? 'شهر' : 'آبادی';
      return ' · نزدیک‌ترین ' + kind + ': ' + place.name + ' (' + distanceText(place.distance_km) + ')';
    }

    function distanceText(km) {
      if (km === null || km === undefined) { return null; }
      return km < 1 ? faNum(Math.round(km * 1000)) + ' متر' : faNum(km, 1) + ' کیلومتر';
    }

    function item(f) {
      var p = f.properties || {};
      var c = f.geometry && f.geometry.coordinates;
      var latlng = c ? L.latLng(c[1], c[0]) : null;
      var li = el('li', 'coop-result');
      li.dataset.registrationNo = p.registration_no || '';
      li.appendChild(el('div', 'coop-result-name', p.name || 'بی‌نام'));
      var where = [U.label('kinds', p.kind), p.place, p.county].filter(Boolean).join(' · ');
      li.appendChild(el('div', 'coop-result-meta', where));
      li.appendChild(el('div', 'coop-result-precision', U.placeText(p)));
      var d = distanceText(p.distance_km);
      if (d) {
        var line = el('div', 'coop-result-where');
        append(line, el('span', 'coop-distance', d), el('span', 'coop-direction', p.direction_fa || ''));
        li.appendChild(line);
      }
      var actions = el('div', 'coop-result-actions');
      var geo = U.safeHref(p.geo_uri, ['geo']);
      if (geo) {
        var a = el('a', 'coop-directions', 'مسیریابی');
        a.href = geo;
        actions.appendChild(a);
      }
      if (latlng) {
        var onMap = el('button', 'coop-button coop-show', 'روی نقشه');
        onMap.type = 'button';
        onMap.addEventListener('click', function () {
          map.setView(latlng, Math.max(map.getZoom(), 15));
          L.popup({className: 'coop-popup-wrap', maxWidth: 320}).setLatLng(latlng)
            .setContent(U.coopPopup(p, p.registration_no, latlng)).openOn(map);
        });
        actions.appendChild(onMap);
      }
      var rep = el('button', 'coop-button coop-report-open', 'گزارش مکان درست');
      rep.type = 'button';
      rep.addEventListener('click', function () { openReport(p, latlng); });
      actions.appendChild(rep);
      li.appendChild(actions);
      return li;
    }

    function openReport(props, latlng) {
      chosen = {props: props, latlng: latlng};
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
      if (chosen && pin && map.hasLayer(pin)) { pin.setLatLng(e.latlng); report.useMarker(); }
    });

    function reportForm() {
      var f = el('form', 'coop-report');
      f.hidden = true;
      f.noValidate = false;
      var title = el('h3');
      var whereBox = el('fieldset');
      whereBox.appendChild(el('legend', null, 'مکان درست'));
      var byPin = radio('where', 'marker', 'نشانگر قرمز روی نقشه (بکشید یا روی نقشه بزنید)', true);
      var byGps = radio('where', 'gps', 'مکان فعلی من (GPS گوشی)', false);
      append(whereBox, byPin.label, byGps.label);
      var pos = el('p', 'coop-report-position');
      var accuracy = field('number', 'accuracy_m', 'دقت مکان (متر)');
      accuracy.input.min = '1';
      accuracy.input.max = '10000';
      accuracy.input.step = '1';
      accuracy.input.required = true;
      var reasonLabel = el('label', null, 'دلیل');
      var reason = el('select');
      reason.name = 'reason';
      reason.required = true;
      REASONS.forEach(function (r) { var o = el('option', null, r); o.value = r; reason.appendChild(o); });
      reasonLabel.appendChild(reason);
      var noteLabel = el('label', null, 'توضیح');
      var note = el('textarea');
      note.name = 'note';
      note.maxLength = 2000;
      note.rows = 2;
      noteLabel.appendChild(note);
      var reporter = field('text', 'reporter', 'نام گزارش‌دهنده');
      reporter.input.maxLength = 100;
      reporter.input.required = true;
      reporter.input.autocomplete = 'name';
      try {
        reporter.input.value = window.localStorage.getItem('coopgis.reporter') || '';
      } catch (e) { /* storage may be blocked; the officer types the name */ }
      var token = field('password', 'token', 'کلید دسترسی مأمور (اگر سرور بخواهد)');
      token.input.autocomplete = 'off';
      try {
        token.input.value = window.sessionStorage.getItem('coopgis.token') || '';
      } catch (e) { /* storage may be blocked */ }
      var send = el('button', 'coop-button coop-primary', 'ارسال گزارش');
      send.type = 'submit';
      var cancel = el('button', 'coop-button', 'انصراف');
      cancel.type = 'button';
      var answer = el('div', 'coop-report-answer');
      answer.setAttribute('aria-live', 'polite');
      append(f, title, whereBox, pos, accuracy.label, reasonLabel, noteLabel, reporter.label, token.label,
        append(el('p', 'coop-result-actions'), send, cancel), answer);

      byGps.input.addEventListener('change', function () { api.update(); });
      byPin.input.addEventListener('change', function () { api.update(); });
      cancel.addEventListener('click', function () {
        f.hidden = true;
        chosen = null;
        if (pin) { map.removeLayer(pin); }
      });
      f.addEventListener('submit', function (e) {
        e.preventDefault();
        var point = current();
        if (!chosen || !point) {
          setAnswer('error', 'مکان درست معلوم نیست: نشانگر را جابه‌جا کنید یا «مکان من» را بزنید.');
          return;
        }
        var body = {lon: +point.lng.toFixed(6), lat: +point.lat.toFixed(6), accuracy_m: Number(accuracy.input.value),
          reason: reason.value, note: note.value || null, reporter: reporter.input.value};
        var headers = {'Content-Type': 'application/json', Accept: 'application/json'};
        if (token.input.value) { headers.Authorization = 'Bearer ' + token.input.value.trim(); }
        try {
          window.localStorage.setItem('coopgis.reporter', reporter.input.value);
          window.sessionStorage.setItem('coopgis.token', token.input.value);   // this tab only
        } catch (err) { /* storage may be blocked */ }
        send.disabled = true;
        setAnswer('pending', 'در حال ارسال…');
        fetch(base + '/cooperatives/' + encodeURIComponent(chosen.props.registration_no) + '/location-reports', {
          method: 'POST', headers: headers, body: JSON.stringify(body)
        }).then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (data) {
            if (r.ok) {
              setAnswer('ok', 'گزارش ثبت شد (' + faNum(r.status) + '). شناسه: ' + (data.id || '—') + ' · وضعیت: ' +
                (STATUS_FA[data.status] || data.status || '—'));
            } else {
              setAnswer('error', 'گزارش پذیرفته نشد (' + faNum(r.status) + '): ' + (data.detail || data.title || ''));
            }
          });
        }).catch(function (err) {
          setAnswer('error', 'ارسال نشد (شبکه): ' + err.message);
        }).then(function () { send.disabled = false; });
      });

      function radio(name, value, text, checked) {
        var lab = el('label');
        var r = el('input');
        r.type = 'radio';
        r.name = name;
        r.value = value;
        r.checked = checked;
        append(lab, r, el('span', null, ' ' + text));
        return {label: lab, input: r};
      }

      function field(type, name, text) {
        var lab = el('label', null, text);
        var i = el('input');
        i.type = type;
        i.name = name;
        lab.appendChild(i);
        return {label: lab, input: i};
      }

      function current() {
        if (byGps.input.checked) { return here ? here.latlng : null; }
        return pin ? pin.getLatLng() : null;
      }

      function setAnswer(kind, text) {        // kind: pending, ok or error
        answer.className = 'coop-report-answer ' + kind;
        answer.textContent = text;
      }

      var api = {
        form: f,
        open: function (props) {
          title.textContent = 'گزارش مکان درست: ' + (props.name || 'بی‌نام');
          answer.textContent = '';
          answer.className = 'coop-report-answer';
          f.hidden = false;
          api.update();
          f.scrollIntoView({block: 'nearest'});
        },
        update: function () {
          var p = current();
          if (byGps.input.checked && here) { accuracy.input.value = String(Math.max(1, Math.round(here.accuracy))); }
          pos.textContent = p ? 'عرض ' + U.faDigits(p.lat.toFixed(6)) + '، طول ' + U.faDigits(p.lng.toFixed(6)) :
            'مکان فعلی هنوز معلوم نیست؛ «مکان من» را بزنید.';
        },
        useMarker: function () {
          byPin.input.checked = true;
          api.update();
        }
      };
      return api;
    }
  }

  window.coopgis.field = field;
}());
