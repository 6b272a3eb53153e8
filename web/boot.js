// The page's first module: what early.js (a classic script run before
// it) asked for, as the other modules take it, then the page (app.js).
const early = window.nuboEarly;

export const HINT = early.HINT;
export const maybeSignedIn = early.maybeSignedIn;
export const prefetchPage = early.prefetchPage;

// The early GET of path, once: a later GET of it asks again.
export function takeEarly(path) {
  const res = early.early.get(path);
  early.early.delete(path);
  return res;
}

export function forgetPrefetched() {
  early.early.clear();
}

import('./app.js');
