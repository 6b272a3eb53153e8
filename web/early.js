// The page's first script: a classic one in the head, so it runs as soon
// as it is read, before the rest of the page is parsed and before any
// module is compiled. It asks for what the page will show — the user,
// and on an app's page the app, its members and its environments — so
// that the answers travel while the modules load; boot.js hands them to
// the page (window.nuboEarly is its only name in the global scope).
(function () {
  'use strict';
  const HINT = 'nubo.session_until';
  // Early GETs by path: each is taken by the page's first GET of its path
  // (api.js), and those left are forgotten once the page is drawn or the
  // sign-in page shown (a later GET asks again).
  const early = new Map();

  // Whether a session may still be there: the session cookie is HttpOnly,
  // so the page keeps its end in localStorage (saves the sign-in page a
  // request that can only fail).
  function maybeSignedIn() {
    const until = localStorage.getItem(HINT);
    return until !== null && Date.parse(until) > Date.now();
  }

  // An answer as api.js takes it: the status and the JSON document (null
  // when the body is not JSON).
  async function readBody(res) {
    let doc = null;
    try { doc = await res.json(); } catch { doc = null; }
    return {ok: res.ok, status: res.status, statusText: res.statusText, doc};
  }

  // The GETs the page at hash starts with, and /me when the user is still
  // unknown; nothing when no session can be there. Paths as api.js's p``
  // writes them (each segment decoded, then escaped).
  function prefetchPage(hash, withMe) {
    if (!maybeSignedIn()) return;
    const parts = hash.replace(/^#/, '').split('/').filter(Boolean);
    let app = null;
    try {
      if (parts[0] === 'apps' && parts[1]) app = '/apps/' + encodeURIComponent(decodeURIComponent(parts[1]));
    } catch {
      app = null;     // not a path the page will ask for either
    }
    for (const path of [withMe ? '/me' : null, app, app && app + '/members', app && app + '/environments']) {
      if (!path || early.has(path)) continue;
      // the body read as it arrives: the page takes the document ready
      const res = fetch('/api/v1' + path, {headers: {Accept: 'application/json'},
        credentials: 'same-origin', cache: 'no-store'}).then(readBody);
      res.catch(() => {});    // said by the GET that takes it, if one does
      early.set(path, res);
    }
  }

  window.nuboEarly = Object.freeze({HINT, early, maybeSignedIn, prefetchPage, readBody});
  prefetchPage(location.hash, true);
})();
