// The page's first module, run as soon as it is loaded (async, no
// imports): it asks for what the page will show — the user, and on an
// app's page the app, its members and its environments — while the
// other modules load, then loads them (app.js). A warm load so waits for
// the answers side by side, not one after another.
export const HINT = 'nubo.session_until';

// Whether a session may still be there: the session cookie is HttpOnly,
// so the page keeps its end in localStorage (saves the sign-in page a
// request that can only fail).
export function maybeSignedIn() {
  const until = localStorage.getItem(HINT);
  return until !== null && Date.parse(until) > Date.now();
}

// Early GETs by path: each is taken by the page's first GET of its path
// (api.js), and those left are forgotten once the page is drawn or the
// sign-in page shown (a later GET asks again).
const early = new Map();

export function takeEarly(path) {
  const res = early.get(path);
  early.delete(path);
  return res;
}

export function forgetPrefetched() {
  early.clear();
}

// The GETs the page at hash starts with, and /me when the user is still
// unknown; nothing when no session can be there. Paths as api.js's p``
// writes them (each segment decoded, then escaped).
export function prefetchPage(hash, withMe) {
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
    const res = fetch('/api/v1' + path, {headers: {Accept: 'application/json'},
      credentials: 'same-origin', cache: 'no-store'});
    res.catch(() => {});    // said by the GET that takes it, if one does
    early.set(path, res);
  }
}

prefetchPage(location.hash, true);
import('./app.js');
