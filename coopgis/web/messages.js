/*
 * coopgis field and review pages: every answer of the server a page shows, said in Persian. The
 * server's problem+json `detail` is written for API clients in English; a page never shows it, it
 * shows the Persian text of the status (and, for a bad value, of the field it names). Also the one
 * fetch helper of these pages: it tells a network failure (no signal) from an answer.
 */
(function () {
  'use strict';

  var FA = '۰۱۲۳۴۵۶۷۸۹';

  function faDigits(s) {
    return String(s).replace(/[0-9]/g, function (d) { return FA.charAt(+d); });
  }

  function faNum(n) {
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, '٬').replace(/[0-9]/g, function (d) { return FA.charAt(+d); });
  }

  function waitText(seconds) {
    var s = Number(seconds);
    if (!s || isNaN(s)) { return 'کمی بعد'; }
    if (s < 90) { return faNum(Math.ceil(s)) + ' ثانیه دیگر'; }
    return faNum(Math.ceil(s / 60)) + ' دقیقه دیگر';
  }

  // A bad value, by the field the server names in its detail.
  var FIELDS = [
    [/accuracy_m/, 'دقت مکان باید عددی بزرگ‌تر از صفر و حداکثر ۱۰٬۰۰۰ متر باشد.'],
    [/\breason\b/, 'دلیل گزارش را بنویسید (حداکثر ۵۰۰ نویسه).'],
    [/\bnote\b/, 'توضیح حداکثر ۲٬۰۰۰ نویسه است.'],
    [/\bcomment\b/, 'دلیل تصمیم حداکثر ۲٬۰۰۰ نویسه است.'],
    [/\bdecision\b/, 'تصمیم باید «پذیرش» یا «رد» باشد.'],
    [/\b(lon|lat)\b/, 'مختصات نامعتبر است.'],
    [/Idempotency-Key/i, 'شناسه یکتای گزارش نامعتبر است؛ گزارش را دوباره بسازید.'],
    [/\bq\b|query/i, 'عبارت جست‌وجو را بنویسید (حداکثر ۱۰۰ نویسه).'],
    [/radius_km/, 'شعاع جست‌وجو نامعتبر است.']
  ];
  // Checks of a point the server names with an issue code.
  var ISSUES = {
    coord_zero: 'مختصات صفر است؛ گوشی هنوز مکان را نیافته. چند لحظه صبر کنید و دوباره «مکان من» را بزنید.',
    coord_outside_iran: 'این نقطه بیرون از ایران است.',
    coord_swapped: 'طول و عرض جغرافیایی جابه‌جا به نظر می‌رسد.',
    coord_out_of_range: 'مختصات نامعتبر است.'
  };
  var NOT_FOUND = {
    report: 'این تعاونی در داده‌های کنونی سامانه نیست.',
    decision: 'این گزارش پیدا نشد.',
    pack: 'این شهرستان شناخته نشد.',
    cooperative: 'این تعاونی در داده‌های کنونی سامانه نیست.'
  };

  // The Persian text of an answer that is not a success. `r` is what request() gives: {status, body, headers}.
  function explain(r, context) {
    var body = r.body || {}, status = r.status, title = String(body.title || ''), detail = String(body.detail || '');
    var wait = r.headers && r.headers.get ? r.headers.get('Retry-After') : null;
    switch (status) {
      case 400:
        if (body.issue && ISSUES[body.issue]) { return ISSUES[body.issue]; }
        if (/credentials? in (the )?url/i.test(title)) { return 'کلید دسترسی نباید در نشانی صفحه باشد.'; }
        for (var i = 0; i < FIELDS.length; i++) {
          if (FIELDS[i][0].test(detail)) { return FIELDS[i][1]; }
        }
        return 'درخواست نادرست است؛ ورودی‌ها را بررسی کنید.';
      case 401:
        return (window.coopgis.session && window.coopgis.session.token()) ? 'کلید دسترسی شما شناخته نشد یا باطل شده است؛ دوباره وارد شوید.' :
          'برای این کار باید با کلید دسترسی وارد شوید.';
      case 403:
        if (context === 'decision' || context === 'review') {
          return 'فقط مدیر سامانه می‌تواند گزارش‌ها را بررسی کند؛ نقش کلید شما اجازه این کار را نمی‌دهد.';
        }
        if (context === 'pack') { return 'بسته آفلاین برای کارشناس میدانی و بالاتر است.'; }
        return 'نقش کلید شما اجازه این کار را نمی‌دهد.';
      case 404:
        return NOT_FOUND[context] || 'پیدا نشد.';
      case 409:
        if (/idempotency/i.test(title)) {
          return 'گزارشی دیگر با همین شناسه پیش‌تر فرستاده شده است؛ این گزارش را دوباره بسازید.';
        }
        return 'این گزارش پیش‌تر بررسی شده است (پذیرفته یا رد شده).';
      case 412:
        return 'جای این تعاونی از وقتی این صفحه آن را خواند تغییر کرده است؛ نسخه تازه خوانده شد، دوباره بررسی کنید.';
      case 413:
        return 'حجم درخواست بیش از اندازه است؛ توضیح را کوتاه‌تر کنید.';
      case 415:
        return 'قالب درخواست پذیرفته نیست.';
      case 428:
        return 'صفحه نسخه کنونی تعاونی را همراه تصمیم نفرستاد؛ دوباره بکوشید.';
      case 429:
        if (/pending/i.test(title)) {
          return 'برای این تعاونی گزارش‌های بررسی‌نشده به سقف مجاز رسیده است؛ پس از بررسی مدیر دوباره بفرستید.';
        }
        if (/reports/i.test(title)) {
          return 'در یک ساعت گذشته بیش از سقف مجاز گزارش فرستاده‌اید؛ ' + waitText(wait) + ' دوباره بکوشید.';
        }
        return 'درخواست‌ها بیش از سقف مجاز است؛ ' + waitText(wait) + ' دوباره بکوشید.';
      case 431:
        return 'سرآیند درخواست بیش از اندازه است.';
      case 503:
        return 'سرور اکنون پرکار یا در دسترس نیست؛ ' + waitText(wait) + ' دوباره بکوشید.';
      case 507:
        return 'دیسک سرور پر است و چیزی ذخیره نشد؛ به مدیر سامانه خبر دهید.';
      default:
        if (status >= 500) { return 'خطای سرور؛ ثبت شد. کمی بعد دوباره بکوشید.'; }
        return 'درخواست انجام نشد (کد ' + faNum(status) + ').';
    }
  }

  var OFFLINE = 'اتصال به سرور برقرار نشد (شبکه در دسترس نیست).';

  // fetch, read the JSON body when there is one; resolves {ok, status, body, headers}; rejects with
  // err.offline = true when no answer came at all.
  function request(url, options) {
    return fetch(url, options || {}).then(function (r) {
      var type = r.headers.get('Content-Type') || '';
      var read = /json/.test(type) ? r.json().catch(function () { return {}; }) : Promise.resolve(null);
      return read.then(function (body) { return {ok: r.ok, status: r.status, body: body, headers: r.headers}; });
    }, function (err) {
      var e = new Error(OFFLINE);
      e.offline = true;
      e.cause = err;
      throw e;
    });
  }

  window.coopgis = window.coopgis || {};
  window.coopgis.messages = {explain: explain, request: request, OFFLINE: OFFLINE, faNum: faNum, faDigits: faDigits,
    waitText: waitText};
}());
