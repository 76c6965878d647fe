/*
 * coopgis field page: one result card of the nearest list or of a search, honest about the point.
 * A cooperative at its own location gets its distance, direction and directions. A stand-in point
 * (the representative point of its rural district, district, county or province) is said to be one:
 * its distance reads as approximate and leads to the stand-in, not to the cooperative; its directions
 * go to the named village or town the server found for it (coopgis.standins), never to the stand-in
 * point; and the card says the exact place is not known yet and invites a location report.
 * All data text goes in with textContent.
 */
(function () {
  'use strict';

  function card(f, options) {
    var U = window.coopgis.util;
    var el = U.el, append = U.append, faNum = U.faNum;
    var p = f.properties || {};
    var c = f.geometry && f.geometry.coordinates;
    var latlng = c ? L.latLng(c[1], c[0]) : null;
    var li = el('li', 'coop-result' + (p.stand_in ? ' coop-result-standin' : ''));
    li.dataset.registrationNo = p.registration_no || '';
    li.dataset.standIn = p.stand_in ? 'true' : 'false';
    li.appendChild(el('div', 'coop-result-name', p.name || 'بی‌نام'));
    var where = [U.label('kinds', p.kind), p.place, p.county].filter(Boolean).join(' · ');
    li.appendChild(el('div', 'coop-result-meta', where));
    li.appendChild(el('div', 'coop-result-precision', precisionText(p, U)));
    var d = distanceText(p.distance_km, faNum);
    if (d) {
      var line = el('div', 'coop-result-where');
      if (p.stand_in) {
        append(line, el('span', 'coop-distance coop-approximate', 'حدود ' + d),
          el('span', 'coop-direction', 'تا نقطه نماینده، نه تا خود تعاونی'));
      } else {
        append(line, el('span', 'coop-distance' + (p.approximate ? ' coop-approximate' : ''),
          (p.approximate ? 'حدود ' : '') + d), el('span', 'coop-direction', p.direction_fa || ''));
      }
      li.appendChild(line);
    }
    if (p.stand_in) {
      li.appendChild(el('p', 'coop-standin-note', 'جای دقیق این تعاونی هنوز معلوم نیست. اگر آن را یافتید، ' +
        '«گزارش مکان درست» را بزنید تا برای همه درست شود.'));
    }
    var actions = el('div', 'coop-result-actions');
    actions.appendChild(directionsLink(p, U));
    if (latlng && options.onShow) {
      var onMap = el('button', 'coop-button coop-show', 'روی نقشه');
      onMap.type = 'button';
      onMap.addEventListener('click', function () { options.onShow(latlng, p); });
      actions.appendChild(onMap);
    }
    if (options.onReport) {
      var rep = el('button', 'coop-button coop-report-open' + (p.stand_in ? ' coop-primary' : ''),
        'گزارش مکان درست');
      rep.type = 'button';
      rep.addEventListener('click', function () { options.onReport(p, latlng); });
      actions.appendChild(rep);
    }
    li.appendChild(actions);
    return li;
  }

  // "دهستان (نقطه نماینده)، حدود ۹٫۱ کیلومتر", or for a stand-in "نقطه نماینده دهستان ماژین، حدود ۹٫۱ کیلومتر".
  function precisionText(p, U) {
    if (!p.stand_in || !p.stand_in_for) { return U.placeText(p); }
    var area = ['نقطه نماینده', p.stand_in_for.level_fa, p.stand_in_for.name].filter(Boolean).join(' ');
    var u = U.uncertaintyText(p.uncertainty_m);
    return u ? area + '، ' + u : area;
  }

  function distanceText(km, faNum) {
    if (km === null || km === undefined || isNaN(km)) { return null; }
    return km < 1 ? faNum(Math.round(km * 1000)) + ' متر' : faNum(km, 1) + ' کیلومتر';
  }

  function directionsLink(p, U) {
    var el = U.el;
    var target = p.directions;
    var href = target ? U.safeHref(target.geo_uri, ['geo']) : null;
    if (!href) {
      return el('span', 'coop-no-directions', p.stand_in ? 'مسیریابی ممکن نیست: آبادی معلومی نزدیک این نقطه نیست' :
        'مسیریابی ممکن نیست: مکان معلوم نیست');
    }
    var text = 'مسیریابی';
    if (p.stand_in) {
      text = 'مسیریابی تا ' + [target.level_fa, target.name].filter(Boolean).join(' ');
      var far = distanceText(target.distance_km, U.faNum);
      if (far) { text += ' (' + far + (target.direction_fa ? '، ' + target.direction_fa : '') + ')'; }
    }
    var a = el('a', 'coop-directions' + (p.stand_in ? ' coop-directions-place' : ''), text);
    a.href = href;
    return a;
  }

  window.coopgis.cards = {card: card, distanceText: distanceText};
}());
