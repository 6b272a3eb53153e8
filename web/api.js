// The portal's pages talk to /api/v1 only, as the CLI does; signed in
// with the session cookie, and the session's CSRF token on every request
// but GET.
import {takeEarly, HINT, maybeSignedIn, readBody} from './boot.js';

export {prefetchPage, forgetPrefetched, maybeSignedIn} from './boot.js';

let csrf = null;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function request(method, path, body, signal) {
  const headers = {Accept: 'application/json'};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  return fetch('/api/v1' + path, {
    method, headers, credentials: 'same-origin', cache: 'no-store', signal,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

// signal (an AbortSignal): a page that moves on ends the request (a
// long poll would hold a connection for nothing).
export async function api(method, path, body, signal) {
  let res;
  try {
    res = await ((method === 'GET' && takeEarly(path)) || request(method, path, body, signal).then(readBody));
  } catch (e) {
    if (e.name === 'AbortError') throw new ApiError(0, 'ABORTED', 'the page moved on');
    throw new ApiError(0, 'NETWORK', 'the portal cannot be reached: ' + e.message);
  }
  const doc = res.doc;
  if (!res.ok) {
    const err = doc && doc.error ? doc.error : {};
    if (res.status === 401) forget();
    // a refused document names every refused setting and why
    const details = Array.isArray(err.details) && err.details.length
      ? ': ' + err.details.map((x) => `${x.setting}: ${x.reason}`).join('; ') : '';
    throw new ApiError(res.status, err.code || String(res.status),
      (err.message || `${res.status} ${res.statusText}`) + details);
  }
  return doc;
}

// Path segments are escaped: names come from the user.
export function p(strings, ...vals) {
  return strings.reduce((acc, s, i) =>
    acc + s + (i < vals.length ? encodeURIComponent(vals[i]) : ''), '');
}

export function setSession(token, until) {
  csrf = token;
  if (until) localStorage.setItem(HINT, until);
}

export function forget() {
  csrf = null;
  localStorage.removeItem(HINT);
}

// Follow a job until it ends: onProgress(job) after each change. Long
// polling: each GET after the first names the revision the page has and
// is answered once the job changes (or after WAIT_S seconds unchanged),
// so progress shows as it happens without asking again and again.
export const WAIT_S = 25;

export async function followJob(id, onProgress) {
  let job = await api('GET', p`/jobs/${id}`);
  for (;;) {
    onProgress(job);
    if (job.state === 'completed' || job.state === 'failed' ||
        job.state === 'cancelled') return job;
    job = await api('GET', p`/jobs/${id}` +
      `?wait=${WAIT_S}&revision=${encodeURIComponent(job.revision)}`);
  }
}

// Upload a file to a signed URL with progress (XMLHttpRequest: fetch has
// no upload progress). The body is sent without a content type, so that
// the node needs no CORS preflight.
export function uploadTo(url, method, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method || 'POST', url);
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    });
    xhr.addEventListener('load', () => {
      let doc = null;
      try { doc = JSON.parse(xhr.responseText); } catch { doc = null; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(doc);
      else {
        const err = doc && doc.error ? doc.error : {};
        reject(new ApiError(xhr.status, err.code || String(xhr.status),
          err.message || `upload failed (${xhr.status})`));
      }
    });
    xhr.addEventListener('error', () =>
      reject(new ApiError(0, 'NETWORK', 'the node did not take the upload')));
    xhr.send(new Blob([file]));
  });
}
