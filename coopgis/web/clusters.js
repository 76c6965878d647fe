/*
 * coopgis map pages: a cluster's cooperatives, page by page, in its popup. The list comes from
 * /clusters/{cell} with the layer's filters, so it holds exactly the cooperatives the cluster counted.
 */
(function () {
  'use strict';

  var _ = window.coopgis._, state = window.coopgis.state;
  var el = _.el, append = _.append, faNum = _.faNum, label = _.label, placeText = _.placeText, query = _.query;
  var PAGE = 10;

  function clusterList(box, p, spec) {
    var open = el('button', 'coop-button coop-cluster-list-open', 'فهرست تعاونی‌های این خوشه');
    open.type = 'button';
    var panel = el('div', 'coop-cluster-list');
    panel.hidden = true;
    open.addEventListener('click', function () {
      open.hidden = true;
      panel.hidden = false;
      show(panel, p, spec, 0);
    });
    append(box, open, panel);
  }

  function show(panel, p, spec, offset) {
    var params = Object.assign(spec ? _.paramsOf(spec) : _.activeFilters(), {limit: PAGE, offset: offset});
    var url = state.cfg.base + '/clusters/' + p.cell + query(params);
    while (panel.firstChild) { panel.removeChild(panel.firstChild); }
    panel.appendChild(el('p', 'coop-muted', 'در حال خواندن…'));
    fetch(url).then(function (r) {
      if (!r.ok) { throw new Error('HTTP ' + r.status); }
      return r.json();
    }).then(function (fc) {
      while (panel.firstChild) { panel.removeChild(panel.firstChild); }
      var total = fc.numberMatched;
      panel.dataset.matched = String(total);
      var from = total ? offset + 1 : 0, to = offset + fc.features.length;
      panel.appendChild(el('p', 'coop-cluster-range', faNum(from) + ' تا ' + faNum(to) + ' از ' + faNum(total)));
      var ol = el('ol', 'coop-cluster-items');
      ol.start = from;
      fc.features.forEach(function (f) {
        var q = f.properties || {};
        var li = el('li', 'coop-cluster-item');
        li.dataset.registrationNo = q.registration_no || '';
        var name = el(state.cfg.links ? 'a' : 'span', 'coop-cluster-name', q.name || 'بی‌نام');
        if (state.cfg.links && f.id) {
          name.href = state.cfg.base + '/collections/cooperatives/items/' + encodeURIComponent(f.id) + '?f=html';
        }
        var where = [q.place, q.county].filter(function (x) { return x; }).join('، ');
        append(li, name,
          el('span', 'coop-cluster-kind', label('kinds', q.kind)),
          el('span', 'coop-cluster-place', where || '—'),
          el('span', 'coop-cluster-precision', placeText(q)));
        ol.appendChild(li);
      });
      panel.appendChild(ol);
      var nav = el('p', 'coop-cluster-pager');
      if (offset > 0) { nav.appendChild(pager('قبلی', panel, p, spec, Math.max(0, offset - PAGE))); }
      if (to < total) { nav.appendChild(pager('بعدی', panel, p, spec, offset + PAGE)); }
      panel.appendChild(nav);
    }).catch(function () {
      while (panel.firstChild) { panel.removeChild(panel.firstChild); }
      panel.appendChild(el('p', 'coop-popup-note', 'فهرست خوانده نشد؛ دوباره بکوشید.'));
    });
  }

  function pager(text, panel, p, spec, offset) {
    var b = el('button', 'coop-button coop-cluster-page', text);
    b.type = 'button';
    b.addEventListener('click', function () { show(panel, p, spec, offset); });
    return b;
  }

  _.clusterList = clusterList;
}());
