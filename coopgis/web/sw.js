/*
 * coopgis field page's service worker, served as /field-sw.js with its configuration filled in by the
 * app: the page it serves (its scope is that page only), the files it keeps (the page and every
 * allow-listed script, style and font) and a version that changes with them.
 *
 * - the field page: from the network (a few seconds at most: a weak signal), else the kept copy;
 * - scripts, styles, fonts (/vendor): the kept copy, else the network;
 * - tiles: from the network, keeping the last ones seen for offline use, else the kept copy;
 * - everything else (the API, reports, packs) goes to the network as it is: the page itself falls
 *   back to the officer's county pack and queues reports when there is no answer.
 */
'use strict';

var CONFIG = /*COOPGIS_CONFIG*/{};
var SHELL = 'coopgis-shell-' + CONFIG.version;
var TILES = 'coopgis-tiles';
var TILES_KEPT = CONFIG.tiles_kept;     // COOPGIS_OFFLINE_TILES
var PAGE_WAIT_MS = CONFIG.wait_ms;       // COOPGIS_OFFLINE_WAIT_SECONDS
var TILE_WAIT_MS = CONFIG.wait_ms;

self.addEventListener('install', function (event) {
  event.waitUntil(caches.open(SHELL).then(function (cache) {
    return cache.addAll([CONFIG.page].concat(CONFIG.files));
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener('activate', function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (n) { return n.indexOf('coopgis-shell-') === 0 && n !== SHELL; })
      .map(function (n) { return caches.delete(n); }));
  }).then(function () { return self.clients.claim(); }));
});

function within(ms, promise) {
  return new Promise(function (resolve, reject) {
    var timer = setTimeout(function () { reject(new Error('timeout')); }, ms);
    promise.then(function (v) { clearTimeout(timer); resolve(v); }, function (e) { clearTimeout(timer); reject(e); });
  });
}

function page(request) {
  return within(PAGE_WAIT_MS, fetch(request)).then(function (response) {
    if (response.ok) {
      var copy = response.clone();
      caches.open(SHELL).then(function (cache) { cache.put(CONFIG.page, copy); });
    }
    return response;
  }).catch(function () {
    return caches.open(SHELL).then(function (cache) { return cache.match(CONFIG.page); }).then(function (kept) {
      return kept || Response.error();
    });
  });
}

function vendor(request) {
  return caches.open(SHELL).then(function (cache) {
    return cache.match(request, {ignoreSearch: true}).then(function (kept) {
      return kept || fetch(request);
    });
  });
}

function tile(request) {
  return within(TILE_WAIT_MS, fetch(request)).then(function (response) {
    if (response.ok) {
      var copy = response.clone();
      caches.open(TILES).then(function (cache) {
        return cache.put(request, copy).then(function () { return cache.keys(); }).then(function (keys) {
          return Promise.all(keys.slice(0, Math.max(0, keys.length - TILES_KEPT)).map(function (k) {
            return cache.delete(k);
          }));
        });
      });
    }
    return response;
  }).catch(function () {
    return caches.open(TILES).then(function (cache) { return cache.match(request); }).then(function (kept) {
      return kept || Response.error();
    });
  });
}

self.addEventListener('fetch', function (event) {
  var request = event.request;
  if (request.method !== 'GET') { return; }
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) { return; }
  if (url.pathname === CONFIG.page) {
    event.respondWith(page(request));
  } else if (url.pathname.indexOf(CONFIG.base + '/vendor/') === 0) {
    event.respondWith(vendor(request));
  } else if (url.pathname.indexOf(CONFIG.base + '/tiles/') === 0) {
    event.respondWith(tile(request));
  }
});
