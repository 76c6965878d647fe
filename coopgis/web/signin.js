/*
 * coopgis field and review pages: sign-in with a bearer token, entered once per device and kept (in
 * localStorage) until «خروج». The token is checked once with GET /whoami; the page then shows who is
 * signed in, and the reporter of a location report is the token's owner (the server decides it).
 * A page that holds unsent reports asks again before signing out (they would be lost).
 */
(function () {
  'use strict';

  var M = window.coopgis.messages;
  var TOKEN = 'coopgis.token', WHO = 'coopgis.who';
  var listeners = [];

  function read(key) {
    try { return window.localStorage.getItem(key); } catch (e) { return null; }
  }

  function write(key, value) {
    try {
      if (value === null) { window.localStorage.removeItem(key); } else { window.localStorage.setItem(key, value); }
    } catch (e) { /* storage blocked: the sign-in lasts as long as the page */ }
  }

  var memory = {token: read(TOKEN), who: null};
  try { memory.who = JSON.parse(read(WHO) || 'null'); } catch (e) { memory.who = null; }

  function token() { return memory.token; }
  function who() { return memory.token ? memory.who : null; }

  function headers(extra) {
    var h = Object.assign({}, extra || {});
    if (memory.token) { h.Authorization = 'Bearer ' + memory.token; }
    return h;
  }

  function changed() { listeners.forEach(function (f) { f(who()); }); }

  // Check a token with the server; resolves {name, role, role_fa}, rejects with a Persian message.
  function signIn(base, value) {
    var t = String(value || '').trim();
    if (!t) { return Promise.reject(new Error('کلید دسترسی را وارد کنید.')); }
    return M.request(base + '/whoami', {headers: {Authorization: 'Bearer ' + t, Accept: 'application/json'}})
      .then(function (r) {
        if (!r.ok) {
          throw new Error(r.status === 401 ? 'این کلید دسترسی شناخته نشد یا باطل شده است.' : M.explain(r, 'signin'));
        }
        if (!r.body || r.body.role === 'public') { throw new Error('این کلید دسترسی شناخته نشد.'); }
        memory.token = t;
        memory.who = {name: r.body.name, role: r.body.role, role_fa: r.body.role_fa};
        write(TOKEN, t);
        write(WHO, JSON.stringify(memory.who));
        changed();
        return memory.who;
      });
  }

  function signOut() {
    memory.token = null;
    memory.who = null;
    write(TOKEN, null);
    write(WHO, null);
    changed();
  }

  // The sign-in box: a token field while signed out, «کارشناس: نام · خروج» while signed in.
  // options: {base, el, append, role_needed_fa, pendingCount(): number, onSignOut()}
  function box(options) {
    var el = options.el;
    var root = el('div', 'coop-session');
    root.dir = 'rtl';
    render();
    listeners.push(render);

    function render() {
      while (root.firstChild) { root.removeChild(root.firstChild); }
      var me = who();
      if (me) {
        var line = el('p', 'coop-session-who');
        line.appendChild(el('span', null, 'وارد شده: '));
        line.appendChild(el('strong', 'coop-session-name', me.name));
        line.appendChild(el('span', null, ' (' + (me.role_fa || me.role) + ')'));
        var out = el('button', 'coop-button coop-signout', 'خروج');
        out.type = 'button';
        var warn = el('p', 'coop-session-warning');
        warn.hidden = true;
        out.addEventListener('click', function () {
          var pending = options.pendingCount ? options.pendingCount() : 0;
          if (pending && warn.hidden) {
            warn.hidden = false;
            warn.textContent = M.faNum(pending) + ' گزارش هنوز فرستاده نشده است و با خروج پاک می‌شود. ' +
              'برای خروج دوباره «خروج» را بزنید.';
            return;
          }
          if (options.onSignOut) { options.onSignOut(); }
          signOut();
        });
        line.appendChild(out);
        root.appendChild(line);
        root.appendChild(warn);
        return;
      }
      var form = el('form', 'coop-signin');
      var label = el('label', null, options.prompt || 'کلید دسترسی کارشناس (یک بار در این دستگاه؛ تا «خروج» می‌ماند)');
      var input = el('input');
      input.type = 'password';
      input.name = 'token';
      input.autocomplete = 'off';
      input.required = true;
      label.appendChild(input);
      var go = el('button', 'coop-button coop-primary', 'ورود');
      go.type = 'submit';
      var answer = el('p', 'coop-signin-answer');
      answer.setAttribute('aria-live', 'polite');
      form.appendChild(label);
      form.appendChild(go);
      form.appendChild(answer);
      form.addEventListener('submit', function (e) {
        e.preventDefault();
        go.disabled = true;
        answer.textContent = 'در حال بررسی کلید…';
        signIn(options.base, input.value).then(function () {
          input.value = '';
        }).catch(function (err) {
          answer.textContent = err.message;
          answer.className = 'coop-signin-answer error';
        }).then(function () { go.disabled = false; });
      });
      root.appendChild(form);
    }
    return root;
  }

  window.coopgis.session = {token: token, who: who, headers: headers, signIn: signIn, signOut: signOut, box: box,
    onChange: function (f) { listeners.push(f); }};
}());
