// What early.js (a classic script run before any module) asked for, as
// the modules take it. The page's first module is app.js: a static
// graph, evaluated as soon as its modules are in (a dynamic import of it
// from here cost a turn of the event loop more).
const early = window.nuboEarly;

export const HINT = early.HINT;
export const maybeSignedIn = early.maybeSignedIn;
export const prefetchPage = early.prefetchPage;
export const readBody = early.readBody;

// The early GET of path, once: a later GET of it asks again.
export function takeEarly(path) {
  const res = early.early.get(path);
  early.early.delete(path);
  return res;
}

export function forgetPrefetched() {
  early.early.clear();
}
