/*
 * coopgis field page, offline: the service worker (/field-sw.js keeps the page, its scripts and fonts),
 * the officer's last county pack (GET /packs/{county}.zip, kept in the Cache Storage and read here:
 * a zip of stored or deflated files), the nearest list and search run on that pack when there is no
 * signal, and the queue of location reports: each report gets an Idempotency-Key when it is made and is
 * sent, with that key, until the server has it, so a report is recorded once however often it is sent.
 */
(function () {
  'use strict';

  var M = window.coopgis.messages, S = window.coopgis.session;
  var QUEUE = 'coopgis.queue', FAILED = 'coopgis.queue-failed', PACK = 'coopgis.pack', CACHE = 'coopgis-pack';
  var STAND_IN_FACTOR = 1.25, STAND_IN_KM = 1.0;            // as coopgis.nearest ranks stand-ins
  var EARTH_KM = 6371.0088;
  var DIRECTIONS = ['شمال', 'شمال شرقی', 'شرق', 'جنوب شرقی', 'جنوب', 'جنوب غربی', 'غرب', 'شمال غربی'];
  var listeners = [];
  var loaded = null;           // the parsed pack, once read

  function read(key, fallback) {
    try { return JSON.parse(window.localStorage.getItem(key) || 'null') || fallback; } catch (e) { return fallback; }
  }

  function write(key, value) {
    try { window.localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* storage full or blocked */ }
  }

  function emit(kind, data) { listeners.forEach(function (f) { f(kind, data); }); }

  // ---- the service worker ---------------------------------------------------------------------
  function register(base) {
    if (!('serviceWorker' in navigator)) { return Promise.resolve(null); }
    return navigator.serviceWorker.register(base + '/field-sw.js', {scope: base + '/maps/field'})
      .catch(function () { return null; });     // e.g. plain HTTP on another host: online use still works
  }

  // ---- reading a zip (what coopgis.packs writes: stored or deflated entries) -----------------------
  function unzip(buffer) {
    var view = new DataView(buffer), bytes = new Uint8Array(buffer);
    var end = -1;
    for (var i = buffer.byteLength - 22; i >= Math.max(0, buffer.byteLength - 65557); i--) {
      if (view.getUint32(i, true) === 0x06054b50) { end = i; break; }
    }
    if (end < 0) { return Promise.reject(new Error('پرونده بسته خراب است.')); }
    var count = view.getUint16(end + 10, true), p = view.getUint32(end + 16, true);
    var decoder = new TextDecoder('utf-8'), jobs = [];
    for (var n = 0; n < count; n++) {
      if (view.getUint32(p, true) !== 0x02014b50) { return Promise.reject(new Error('پرونده بسته خراب است.')); }
      var method = view.getUint16(p + 10, true), size = view.getUint32(p + 20, true);
      var nameLen = view.getUint16(p + 28, true), extra = view.getUint16(p + 30, true);
      var comment = view.getUint16(p + 32, true), local = view.getUint32(p + 42, true);
      var name = decoder.decode(bytes.subarray(p + 46, p + 46 + nameLen));
      var start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
      jobs.push(entry(name, method, bytes.subarray(start, start + size)));
      p += 46 + nameLen + extra + comment;
    }
    return Promise.all(jobs).then(function (pairs) {
      var out = {};
      pairs.forEach(function (pair) { out[pair[0]] = pair[1]; });
      return out;
    });
  }

  function entry(name, method, data) {
    if (method === 0) { return Promise.resolve([name, data]); }
    var stream = new Blob([data]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
    return new Response(stream).arrayBuffer().then(function (b) { return [name, new Uint8Array(b)]; });
  }

  // ---- the officer's last county pack ----------------------------------------------------------
  function packInfo() { return read(PACK, null); }

  function savePack(base, county) {
    var url = base + '/packs/' + encodeURIComponent(county.osm_relation_id) + '.zip';
    if (!window.caches) { return Promise.reject(new Error('این مرورگر جایی برای نگه‌داری بسته ندارد.')); }
    emit('pack-saving', county);
    return fetch(url, {headers: S.headers({Accept: 'application/zip'})}).then(function (r) {
      if (!r.ok) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          throw new Error(M.explain({status: r.status, body: body, headers: r.headers}, 'pack'));
        });
      }
      return r.arrayBuffer().then(function (buffer) {
        return parse(buffer).then(function (pack) {
          return caches.open(CACHE).then(function (cache) {
            return cache.keys().then(function (old) {
              return Promise.all(old.map(function (req) { return cache.delete(req); }));
            }).then(function () {
              return cache.put(url, new Response(buffer, {headers: {'Content-Type': 'application/zip'}}));
            });
          }).then(function () {
            var info = {county: county.osm_relation_id, name: county.name_fa, url: url,
              saved_at: new Date().toISOString(), cooperatives: pack.cooperatives.length,
              etag: r.headers.get('ETag')};
            write(PACK, info);
            pack.info = info;
            loaded = pack;
            emit('pack-saved', info);
            return info;
          });
        });
      });
    }, function () { throw new Error(M.OFFLINE); });
  }

  function parse(buffer) {
    return unzip(buffer).then(function (files) {
      var text = new TextDecoder('utf-8');
      var json = function (name) { return files[name] ? JSON.parse(text.decode(files[name])) : null; };
      var coops = json('cooperatives.geojson'), villages = json('villages.geojson'), county = json('county.geojson');
      if (!coops || !villages || !county) { throw new Error('پرونده بسته کامل نیست.'); }
      return {cooperatives: coops.features || [], villages: villages.features || [], county: county,
        labels: labelRecords(villages.features || [], county)};
    });
  }

  // The pack's villages (and county name) as label records for web/labels.js.
  function labelRecords(villages, county) {
    var out = [];
    (county.features || []).forEach(function (f) {
      var b = L.geoJSON(f).getBounds().getCenter();
      out.push([b.lng, b.lat, f.properties.name_fa, 'county', 7, 10]);
    });
    villages.forEach(function (f) {
      var p = f.properties || {}, c = f.geometry.coordinates;
      if (p.label_min_zoom !== null && p.label_min_zoom !== undefined) {
        out.push([c[0], c[1], p.name, p.unsure ? 'village_unsure' : 'village', p.label_min_zoom, p.label_max_zoom]);
      }
    });
    return out;
  }

  function loadPack() {
    if (loaded) { return Promise.resolve(loaded); }
    var info = packInfo();
    if (!info || !window.caches) { return Promise.resolve(null); }
    return caches.open(CACHE).then(function (cache) { return cache.match(info.url); }).then(function (r) {
      if (!r) { return null; }
      return r.arrayBuffer().then(parse).then(function (pack) {
        pack.info = info;
        loaded = pack;
        return pack;
      });
    }).catch(function () { return null; });
  }

  function packFileUrl() {
    var info = packInfo();
    if (!info || !window.caches) { return Promise.resolve(null); }
    return caches.open(CACHE).then(function (cache) { return cache.match(info.url); }).then(function (r) {
      return r ? r.blob().then(function (b) { return URL.createObjectURL(b); }) : null;
    });
  }

  // ---- nearest and search on the pack (the server's rules: coopgis.nearest, coopgis.standins) ------
  function km(lon1, lat1, lon2, lat2) {
    var r = Math.PI / 180, p1 = lat1 * r, p2 = lat2 * r;
    var a = Math.pow(Math.sin((p2 - p1) / 2), 2) +
      Math.cos(p1) * Math.cos(p2) * Math.pow(Math.sin((lon2 - lon1) * r / 2), 2);
    return 2 * EARTH_KM * Math.asin(Math.sqrt(Math.min(1, Math.max(0, a))));
  }

  function bearing(lon1, lat1, lon2, lat2) {
    var r = Math.PI / 180, p1 = lat1 * r, p2 = lat2 * r, dl = (lon2 - lon1) * r;
    var y = Math.sin(dl) * Math.cos(p2);
    var x = Math.cos(p1) * Math.sin(p2) - Math.sin(p1) * Math.cos(p2) * Math.cos(dl);
    return (Math.atan2(y, x) / r + 360) % 360;
  }

  function direction(deg) { return DIRECTIONS[Math.floor(((deg % 360) + 22.5) / 45) % 8]; }

  function withDistance(f, here) {
    var p = Object.assign({}, f.properties);
    var c = f.geometry && f.geometry.coordinates;
    if (here && c) {
      var b = bearing(here.lng, here.lat, c[0], c[1]);
      p.distance_km = Math.round(km(here.lng, here.lat, c[0], c[1]) * 100) / 100;
      p.bearing_deg = Math.round(b * 10) / 10;
      p.direction_fa = direction(b);
    }
    if (here && p.directions) {
      var d = Object.assign({}, p.directions), bb = bearing(here.lng, here.lat, d.lon, d.lat);
      d.distance_km = Math.round(km(here.lng, here.lat, d.lon, d.lat) * 100) / 100;
      d.direction_fa = direction(bb);
      p.directions = d;
    }
    return {type: 'Feature', id: f.id, geometry: f.geometry, properties: p};
  }

  function nearestLocal(pack, here, limit, radiusKm) {
    var radius = radiusKm || 50, found = [];
    pack.cooperatives.forEach(function (f, i) {
      var c = f.geometry && f.geometry.coordinates;
      if (!c) { return; }
      var d = km(here.lng, here.lat, c[0], c[1]);
      if (d > radius) { return; }
      var rank = f.properties.stand_in ? d * STAND_IN_FACTOR + STAND_IN_KM : d;
      found.push({f: f, rank: rank, i: i});
    });
    found.sort(function (a, b) { return a.rank - b.rank || a.i - b.i; });
    return {matched: found.length, features: found.slice(0, limit || 10).map(function (x) {
      return withDistance(x.f, here);
    })};
  }

  // Persian text folded as coopgis.text.key folds it: letter forms, digits, marks, ZWNJ and spaces.
  var LETTERS = {'ي': 'ی', 'ى': 'ی', 'ئ': 'ی', 'ك': 'ک', 'ة': 'ه', 'ۀ': 'ه', 'أ': 'ا', 'إ': 'ا', 'ٱ': 'ا', 'آ': 'ا',
    'ؤ': 'و', 'ء': ''};
  function fold(text) {
    return String(text || '').replace(/[\u064b-\u065f\u0670\u0640]/g, '')
      .replace(/[يىئكةۀأإٱآؤء]/g, function (ch) { return LETTERS[ch]; })
      .replace(/[۰-۹]/g, function (d) { return String(d.charCodeAt(0) - 0x06f0); })
      .replace(/[٠-٩]/g, function (d) { return String(d.charCodeAt(0) - 0x0660); })
      .replace(/[\s\u200c\u200d]+/g, '').toLowerCase();
  }

  var FIELDS = [['registration_no', 100, true], ['name', 90], ['place', 80], ['rural_district', 80],
    ['district', 80], ['county', 80], ['address', 70]];

  function searchLocal(pack, q, here, limit) {
    var key = fold(q);
    if (!key) { return []; }
    var hits = [];
    pack.cooperatives.forEach(function (f, i) {
      var p = f.properties || {};
      for (var k = 0; k < FIELDS.length; k++) {
        var value = fold(p[FIELDS[k][0]]);
        if (value && (FIELDS[k][2] ? value === key : value.indexOf(key) >= 0)) {
          hits.push({f: f, score: FIELDS[k][1], i: i});
          return;
        }
      }
    });
    hits.sort(function (a, b) { return b.score - a.score || a.i - b.i; });
    return hits.slice(0, limit || 20).map(function (h) { return withDistance(h.f, here); });
  }

  // ---- the report queue ------------------------------------------------------------------------
  function newKey() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join('');
  }

  function queue() { return read(QUEUE, []); }
  function failed() { return read(FAILED, []); }

  function enqueue(reg, name, body) {
    var item = {key: newKey(), reg: reg, name: name, body: body, created: new Date().toISOString()};
    var q = queue();
    q.push(item);
    write(QUEUE, q);
    emit('queued', item);
    return item;
  }

  function drop(key) {
    write(QUEUE, queue().filter(function (x) { return x.key !== key; }));
  }

  function clear() {
    write(QUEUE, []);
    write(FAILED, []);
    loaded = null;
    try { window.localStorage.removeItem(PACK); } catch (e) { /* blocked */ }
    if (window.caches) { caches.delete(CACHE); }
    emit('cleared', null);
  }

  var flushing = null;

  // Send the queued reports, oldest first, each with its own Idempotency-Key; stop at the first that
  // cannot be sent now (no signal, signed out, a limit), drop the ones the server refuses for good.
  function flush(base) {
    if (flushing) { return flushing; }
    if (!S.token() || !queue().length) { return Promise.resolve(0); }
    var sent = 0;
    flushing = next().then(function () { flushing = null; emit('flushed', sent); return sent; });
    return flushing;

    function next() {
      var item = queue()[0];
      if (!item || !S.token()) { return Promise.resolve(); }
      return M.request(base + '/cooperatives/' + encodeURIComponent(item.reg) + '/location-reports', {
        method: 'POST', body: JSON.stringify(item.body),
        headers: S.headers({'Content-Type': 'application/json', Accept: 'application/json',
          'Idempotency-Key': item.key})
      }).then(function (r) {
        if (r.ok) {
          drop(item.key);
          sent += 1;
          emit('sent', {item: item, report: r.body, replayed: r.headers.get('Idempotent-Replayed') === 'true'});
          return next();
        }
        var text = M.explain(r, 'report');
        if (r.status === 401 || r.status === 403 || r.status === 429 || r.status >= 500) {
          emit('waiting', {item: item, text: text});
          return null;
        }
        drop(item.key);
        var f = failed();
        f.push({item: item, text: text, status: r.status});
        write(FAILED, f.slice(-20));
        emit('failed', {item: item, text: text});
        return next();
      }, function () {
        emit('offline', {item: item, text: M.OFFLINE});
        return null;
      });
    }
  }

  // Reports go out by themselves: when the browser says the connection is back, and every half minute.
  function start(base) {
    window.addEventListener('online', function () { flush(base); });
    window.setInterval(function () { if (queue().length) { flush(base); } }, 30000);
    S.onChange(function (me) { if (me) { flush(base); } });
    return flush(base);
  }

  window.coopgis.offline = {
    register: register, unzip: unzip, packInfo: packInfo, savePack: savePack, loadPack: loadPack,
    packFileUrl: packFileUrl, nearestLocal: nearestLocal, searchLocal: searchLocal, fold: fold,
    queue: queue, failed: failed, enqueue: enqueue, flush: flush, start: start, clear: clear,
    on: function (f) { listeners.push(f); },
    off: function (f) { listeners = listeners.filter(function (g) { return g !== f; }); }
  };
}());
