/*
 * coopgis review screen (/admin/reports): the pending location reports, each with a small map of the
 * old point (grey ring) and the proposed one (red, with the reported accuracy as a circle), who reported
 * it, when and why; accept or reject with a reason. The page reads the cooperative first
 * (GET /cooperatives/{id}) and sends its ETag as If-Match with the decision, so a change made meanwhile
 * is not overwritten (a 412 reads it again). The list and the latest audit events are read again after
 * each decision. All data text goes in with textContent; every error is said in Persian.
 */
(function () {
  'use strict';

  var M = window.coopgis.messages, S = window.coopgis.session;
  var cfg = JSON.parse(document.getElementById('coopgis-review').textContent);
  var base = cfg.base || '';
  var root = document.getElementById('review');
  var maxComment = Number(root.dataset.maxComment) || 2000;
  var PRECISION_FA = {exact: 'دقیق (مختصات ثبت‌شده)', verified: 'تأییدشده در بازدید', village: 'روستا', city: 'شهر',
    rural_district: 'دهستان (نقطه نماینده)', district: 'بخش (نقطه نماینده)', county: 'شهرستان (نقطه نماینده)',
    province: 'استان (نقطه نماینده)', none: 'نامعلوم'};
  var SHOWN = 20;
  var maps = [];

  function el(tag, className, text) {
    var e = document.createElement(tag);
    if (className) { e.className = className; }
    if (text !== null && text !== undefined) { e.textContent = String(text); }
    return e;
  }

  function when(iso) {
    var d = new Date(iso);
    return isNaN(d) ? '—' : d.toLocaleString('fa-IR', {dateStyle: 'medium', timeStyle: 'short'});
  }

  function km(a, b) {
    var r = Math.PI / 180, p1 = a.lat * r, p2 = b.lat * r;
    var h = Math.pow(Math.sin((p2 - p1) / 2), 2) +
      Math.cos(p1) * Math.cos(p2) * Math.pow(Math.sin((b.lon - a.lon) * r / 2), 2);
    return 2 * 6371.0088 * Math.asin(Math.sqrt(Math.min(1, h)));
  }

  function distanceText(d) {
    return d < 1 ? M.faNum(Math.round(d * 1000)) + ' متر' : M.faNum(Math.round(d * 10) / 10).replace('.', '٫') + ' کیلومتر';
  }

  var session = S.box({base: base, el: el, prompt: 'کلید دسترسی مدیر سامانه (یک بار در این دستگاه؛ تا «خروج» می‌ماند)'});
  var status = el('p', 'review-status');
  status.setAttribute('aria-live', 'polite');
  var list = el('ol', 'review-list');
  var auditBox = el('section', 'review-audit');
  root.appendChild(session);
  root.appendChild(status);
  root.appendChild(list);
  root.appendChild(auditBox);
  S.onChange(load);
  load();

  function clear() {
    maps.forEach(function (m) { m.remove(); });
    maps = [];
    while (list.firstChild) { list.removeChild(list.firstChild); }
  }

  function load() {
    clear();
    while (auditBox.firstChild) { auditBox.removeChild(auditBox.firstChild); }
    if (!S.who()) {
      status.textContent = 'برای دیدن و بررسی گزارش‌ها با کلید مدیر سامانه وارد شوید.';
      return;
    }
    status.textContent = 'در حال خواندن گزارش‌ها…';
    M.request(base + '/location-reports?status=pending&limit=' + SHOWN, {headers: S.headers({Accept: 'application/json'})})
      .then(function (r) {
        if (!r.ok) { status.textContent = 'گزارش‌ها خوانده نشد: ' + M.explain(r, 'review'); return; }
        var reports = r.body.reports || [];
        status.textContent = reports.length ? M.faNum(r.body.numberMatched) + ' گزارش در انتظار بررسی' +
          (r.body.numberMatched > reports.length ? ' (' + M.faNum(reports.length) + ' گزارش نخست در این صفحه)' : '') :
          'گزارشی در انتظار بررسی نیست.';
        reports.forEach(function (report) { list.appendChild(card(report)); });
        audit();
      }, function (err) { status.textContent = err.message; });
  }

  function card(report) {
    var li = el('li', 'review-card');
    li.dataset.reportId = report.id;
    li.dataset.registrationNo = report.registration_no;
    var title = el('h2', 'review-title', 'تعاونی شماره ثبت ' + M.faDigits(report.registration_no));
    li.appendChild(title);
    var facts = el('dl', 'review-facts');
    fact(facts, 'گزارش‌دهنده', report.reporter, 'review-reporter');
    fact(facts, 'زمان', when(report.submitted_at), 'review-when');
    fact(facts, 'دلیل', report.reason, 'review-reason');
    if (report.note) { fact(facts, 'توضیح', report.note, 'review-note'); }
    fact(facts, 'دقت گزارش‌شده', M.faNum(Math.round(report.to.accuracy_m)) + ' متر', 'review-accuracy');
    var from = report.from || {};
    fact(facts, 'جای پیشین', PRECISION_FA[from.precision] || 'نامعلوم', 'review-from');
    if (from.lon !== null && from.lon !== undefined) {
      fact(facts, 'جابه‌جایی', distanceText(km(from, report.to)), 'review-moved');
    }
    var current = fact(facts, 'جای کنونی', 'در حال خواندن…', 'review-current');
    li.appendChild(facts);
    var box = el('div', 'review-map');
    li.appendChild(box);
    var form = el('form', 'review-decide');
    var label = el('label', null, 'دلیل تصمیم (لازم)');
    var comment = el('textarea');
    comment.name = 'comment';
    comment.maxLength = maxComment;
    comment.rows = 2;
    comment.required = true;
    label.appendChild(comment);
    var accept = el('button', 'coop-button coop-primary review-accept', 'پذیرش');
    accept.type = 'button';
    var reject = el('button', 'review-reject coop-button', 'رد');
    reject.type = 'button';
    var answer = el('p', 'review-answer');
    answer.setAttribute('aria-live', 'polite');
    form.appendChild(label);
    form.appendChild(accept);
    form.appendChild(reject);
    form.appendChild(answer);
    li.appendChild(form);
    var etag = null;

    readCooperative();
    window.setTimeout(function () { drawMap(box, report); }, 0);
    accept.addEventListener('click', function () { decide('accepted'); });
    reject.addEventListener('click', function () { decide('rejected'); });
    return li;

    function readCooperative() {
      return M.request(base + '/cooperatives/' + encodeURIComponent(report.registration_no),
        {headers: S.headers({Accept: 'application/geo+json'})}).then(function (r) {
        if (!r.ok) { current.textContent = M.explain(r, 'cooperative'); return; }
        etag = r.headers.get('ETag');
        var p = (r.body && r.body.properties) || {};
        title.textContent = (p.name || 'بی‌نام') + '، شماره ثبت ' + M.faDigits(report.registration_no);
        current.textContent = (PRECISION_FA[p.precision] || p.precision || '—') +
          (p.county ? '، شهرستان ' + p.county : '');
      }, function (err) { current.textContent = err.message; });
    }

    function decide(decision) {
      var text = comment.value.trim();
      if (!text) {
        answer.className = 'review-answer error';
        answer.textContent = 'دلیل تصمیم را بنویسید.';
        comment.focus();
        return;
      }
      if (!etag) {
        answer.className = 'review-answer error';
        answer.textContent = 'نسخه کنونی تعاونی هنوز خوانده نشده است؛ دوباره بکوشید.';
        readCooperative();
        return;
      }
      accept.disabled = reject.disabled = true;
      answer.className = 'review-answer';
      answer.textContent = 'در حال ثبت تصمیم…';
      M.request(base + '/location-reports/' + encodeURIComponent(report.id) + '/decision', {
        method: 'POST', body: JSON.stringify({decision: decision, comment: text}),
        headers: S.headers({'Content-Type': 'application/json', Accept: 'application/json', 'If-Match': etag})
      }).then(function (r) {
        if (r.ok) {
          answer.className = 'review-answer ok';
          answer.textContent = decision === 'accepted' ? 'پذیرفته شد؛ تعاونی به جای پیشنهادی رفت.' : 'رد شد.';
          li.classList.add('review-done');
          window.setTimeout(load, 800);
          return;
        }
        answer.className = 'review-answer error';
        answer.textContent = M.explain(r, 'decision');
        accept.disabled = reject.disabled = false;
        if (r.status === 412) { readCooperative(); }
        if (r.status === 409) { window.setTimeout(load, 1500); }
      }, function (err) {
        answer.className = 'review-answer error';
        answer.textContent = err.message;
        accept.disabled = reject.disabled = false;
      });
    }
  }

  function fact(dl, name, value, className) {
    var wrap = el('div', className);
    wrap.appendChild(el('dt', null, name));
    var dd = el('dd', null, value);
    wrap.appendChild(dd);
    dl.appendChild(wrap);
    return dd;
  }

  function drawMap(box, report) {
    if (!window.L) { return; }
    var to = L.latLng(report.to.lat, report.to.lon);
    var from = report.from && report.from.lat !== null && report.from.lat !== undefined ?
      L.latLng(report.from.lat, report.from.lon) : null;
    var m = L.map(box, {zoomControl: true, attributionControl: false, scrollWheelZoom: false});
    maps.push(m);
    if (cfg.basemap) { L.tileLayer(cfg.basemap, {maxZoom: 18}).addTo(m); }
    window.coopgis.labels.layer({base: base}).addTo(m);
    L.circle(to, {radius: report.to.accuracy_m, color: '#c62828', weight: 1, fillOpacity: 0.12,
      className: 'review-accuracy-circle', interactive: false}).addTo(m);
    L.circleMarker(to, {radius: 6, color: '#fff', weight: 2, fillColor: '#c62828', fillOpacity: 1,
      className: 'review-proposed'}).addTo(m);
    if (from) {
      L.circleMarker(from, {radius: 7, color: '#546e7a', weight: 2.2, dashArray: '3 3', fill: false,
        className: 'review-old'}).addTo(m);
      L.polyline([from, to], {color: '#546e7a', weight: 1.5, dashArray: '4 4', interactive: false}).addTo(m);
      m.fitBounds(L.latLngBounds([from, to]).pad(0.3), {maxZoom: 15});
    } else {
      m.setView(to, 14);
    }
  }

  function audit() {
    M.request(base + '/audit?limit=10', {headers: S.headers({Accept: 'application/json'})}).then(function (r) {
      while (auditBox.firstChild) { auditBox.removeChild(auditBox.firstChild); }
      auditBox.appendChild(el('h2', null, 'آخرین رویدادهای دفتر بررسی (/audit)'));
      if (!r.ok) { auditBox.appendChild(el('p', null, M.explain(r, 'review'))); return; }
      var table = el('table', 'review-audit-table');
      var head = el('tr');
      ['زمان', 'رویداد', 'تعاونی', 'چه کسی', 'دلیل'].forEach(function (h) { head.appendChild(el('th', null, h)); });
      table.appendChild(head);
      (r.body.events || []).slice().reverse().forEach(function (e) {
        var tr = el('tr', 'review-event review-event-' + (e.event === 'decision' ? e.decision : 'report'));
        tr.dataset.eventId = e.id;
        var what = e.event === 'decision' ? (e.decision === 'accepted' ? 'پذیرش گزارش' : 'رد گزارش') : 'گزارش مکان';
        [when(e.at || e.submitted_at), what, M.faDigits(e.registration_no), e.by || e.reporter || '—',
          e.comment || e.reason || ''].forEach(function (v) { tr.appendChild(el('td', null, v)); });
        table.appendChild(tr);
      });
      auditBox.appendChild(table);
    }, function (err) { auditBox.appendChild(el('p', null, err.message)); });
  }
}());
