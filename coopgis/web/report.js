/*
 * coopgis field page: the form that reports a cooperative's right location. The reporter is the
 * signed-in officer (the server takes it from the token; the form only shows it). A report is put in
 * the queue with its own Idempotency-Key first and then sent (web/offline.js), so a report made with
 * no signal is kept and goes out by itself when the connection returns, exactly once. Every answer is
 * shown in Persian (web/messages.js).
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

  // options: {map, base, current(): {latlng, accuracy} | null, pin(): L.Marker | null, onClose()}
  function reportForm(options) {
    var U = window.coopgis.util, S = window.coopgis.session, O = window.coopgis.offline;
    var el = U.el, append = U.append, faNum = U.faNum;
    var chosen = null;
    var watching = null;      // the queue listener of the report last sent from this form
    var f = el('form', 'coop-report');
    f.hidden = true;
    var title = el('h3');
    var whereBox = el('fieldset');
    whereBox.appendChild(el('legend', null, 'مکان درست'));
    var byPin = radio('where', 'marker', 'نشانگر قرمز روی نقشه (بکشید یا روی نقشه بزنید)', true);
    var byGps = radio('where', 'gps', 'مکان فعلی من (GPS گوشی)', false);
    append(whereBox, byPin.label, byGps.label);
    var pos = el('p', 'coop-report-position');
    var accuracy = input('number', 'accuracy_m', 'دقت مکان (متر)');
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
    var reporter = el('p', 'coop-report-reporter');
    var send = el('button', 'coop-button coop-primary', 'ارسال گزارش');
    send.type = 'submit';
    var cancel = el('button', 'coop-button', 'انصراف');
    cancel.type = 'button';
    var answer = el('div', 'coop-report-answer');
    answer.setAttribute('aria-live', 'polite');
    append(f, title, whereBox, pos, accuracy.label, reasonLabel, noteLabel, reporter,
      append(el('p', 'coop-result-actions'), send, cancel), answer);

    byGps.input.addEventListener('change', function () { api.update(); });
    byPin.input.addEventListener('change', function () { api.update(); });
    cancel.addEventListener('click', function () {
      f.hidden = true;
      chosen = null;
      if (options.onClose) { options.onClose(); }
    });
    S.onChange(function () { showReporter(); });
    f.addEventListener('submit', function (e) {
      e.preventDefault();
      var point = current();
      if (!chosen || !point) {
        return setAnswer('error', 'مکان درست معلوم نیست: نشانگر را جابه‌جا کنید یا «مکان من» را بزنید.');
      }
      if (!S.who()) { return setAnswer('error', 'برای فرستادن گزارش، نخست بالای همین بخش با کلید دسترسی وارد شوید.'); }
      var metres = Number(accuracy.input.value);
      if (!(metres > 0 && metres <= 10000)) {
        return setAnswer('error', 'دقت مکان باید عددی بزرگ‌تر از صفر و حداکثر ۱۰٬۰۰۰ متر باشد.');
      }
      var body = {lon: +point.lng.toFixed(6), lat: +point.lat.toFixed(6), accuracy_m: metres,
        reason: reason.value, note: note.value.trim() || null};
      var item = O.enqueue(chosen.props.registration_no, chosen.props.name || '', body);
      send.disabled = true;
      setAnswer('pending', 'در حال ارسال…');
      var answered = false;    // the answer for this report is final (sent, or refused for good)
      var watch = function (kind, data) {
        if (answered || !data || !data.item || data.item.key !== item.key) { return; }
        if (kind === 'sent') {
          answered = true;
          O.off(watch);
          setAnswer('ok', 'گزارش ثبت شد. شناسه: ' + ((data.report && data.report.id) || '—') + ' · وضعیت: ' +
            (STATUS_FA[data.report && data.report.status] || '—'));
        } else if (kind === 'failed') {
          answered = true;
          O.off(watch);
          setAnswer('error', 'گزارش پذیرفته نشد: ' + data.text);
        } else {   // no signal or a limit for now: the report stays in the queue and goes out by itself
          setAnswer('queued', 'گزارش در صف ماند و خودکار فرستاده می‌شود. (' + data.text + ')');
        }
      };
      if (watching) { O.off(watching); }
      watching = watch;
      O.on(watch);
      O.flush(options.base).then(function () {
        if (!answered && answer.className.indexOf('queued') < 0) {   // another send was under way: the queue has it
          setAnswer('queued', 'گزارش در صف ارسال است.');
        }
        send.disabled = false;
      });
    });

    function showReporter() {
      var me = S.who();
      reporter.textContent = me ? 'گزارش‌دهنده: ' + me.name + ' (از کلید ورود)' :
        'گزارش‌دهنده: نخست وارد شوید؛ گزارش به نام صاحب کلید ثبت می‌شود.';
    }

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

    function input(type, name, text) {
      var lab = el('label', null, text);
      var i = el('input');
      i.type = type;
      i.name = name;
      lab.appendChild(i);
      return {label: lab, input: i};
    }

    function current() {
      var here = options.current();
      if (byGps.input.checked) { return here ? here.latlng : null; }
      var pin = options.pin();
      return pin ? pin.getLatLng() : null;
    }

    function setAnswer(kind, text) {        // kind: pending, ok, queued or error
      answer.className = 'coop-report-answer ' + kind;
      answer.textContent = text;
    }

    var api = {
      form: f,
      open: function (props) {
        if (watching) { O.off(watching); watching = null; }   // the answer area is this cooperative's now
        chosen = {props: props};
        title.textContent = 'گزارش مکان درست: ' + (props.name || 'بی‌نام');
        answer.textContent = '';
        answer.className = 'coop-report-answer';
        showReporter();
        f.hidden = false;
        api.update();
        f.scrollIntoView({block: 'nearest'});
      },
      update: function () {
        var p = current();
        var here = options.current();
        if (byGps.input.checked && here) { accuracy.input.value = String(Math.max(1, Math.round(here.accuracy))); }
        pos.textContent = p ? 'عرض ' + U.faDigits(p.lat.toFixed(6)) + '، طول ' + U.faDigits(p.lng.toFixed(6)) :
          'مکان فعلی هنوز معلوم نیست؛ «مکان من» را بزنید.';
      },
      useMarker: function () {
        byPin.input.checked = true;
        api.update();
      },
      isOpen: function () { return !f.hidden && !!chosen; }
    };
    showReporter();
    return api;
  }

  window.coopgis.reportForm = reportForm;
  window.coopgis.REPORT_STATUS_FA = STATUS_FA;
}());
