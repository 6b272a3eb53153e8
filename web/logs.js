// Logs of one environment: the last lines, then followed live (long
// polling from the byte offset the node answered: the portal holds each
// GET until there are new lines), filtered by a search, and downloaded as
// text. Lines are shown as text.
import {api, p, WAIT_S} from './api.js';
import {envPicker} from './env-pick.js';
import {h, fill, field} from './dom.js';

const KEEP = 5000;       // lines kept in the page
const FIRST = 500;       // lines read first
const AGAIN_MS = 2000;   // after a failed read, before the next

export async function logsTab(ctx) {
  const {sub, body} = ctx;
  const pick = await envPicker(ctx, 'logs', 'Logs');
  if (pick === null) return;
  const search = h('input', {type: 'search', name: 'search', autocomplete: 'off'});
  const follow = h('input', {type: 'checkbox', name: 'follow', checked: true});
  const pre = h('pre', {class: 'log', role: 'log', tabindex: 0, 'aria-label': 'Log lines'});
  const info = h('p', {class: 'status', role: 'status', 'aria-live': 'polite'});
  const error = h('p', {class: 'error', role: 'alert'});
  const download = h('button', {type: 'button', class: 'secondary'}, 'Download');
  let lines = [];
  let partial = '';
  let offset = null;
  let gen = 0;           // a newer environment choice ends older reads
  let held = null;       // the held GET, ended by stop()
  function stop() {
    gen++;
    if (held) held.abort();
    held = null;
  }

  function show() {
    const term = search.value.toLowerCase();
    const shown = term ? lines.filter((l) => l.toLowerCase().includes(term)) : lines;
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = shown.join('\n');
    if (atEnd) pre.scrollTop = pre.scrollHeight;
    fill(info, term ? `${shown.length} of ${lines.length} lines match` : `${lines.length} lines`);
  }

  function add(text) {
    const parts = (partial + text).split('\n');
    partial = parts.pop();
    lines = lines.concat(parts);
    if (lines.length > KEEP) lines = lines.slice(lines.length - KEEP);
  }

  async function poll(mine) {
    while (mine === gen) {
      try {
        held = new AbortController();
        const q = offset === null ? `?lines=${FIRST}` : `?offset=${offset}&wait=${WAIT_S}`;
        const doc = await api('GET', p`/apps/${sub}/environments/${pick.value}/logs` + q,
          undefined, held.signal);
        if (mine !== gen) return;
        if (offset !== null && doc.offset < offset) {
          lines = [];     // the log was cleaned or replaced: start over
          partial = '';
        }
        add(doc.text || '');
        offset = doc.offset;
        fill(error);
        show();
      } catch (err) {
        if (mine !== gen) return;
        fill(error, err.message);
        await new Promise((ok) => setTimeout(ok, AGAIN_MS));
      }
      if (!follow.checked) return;
    }
  }

  function restart() {
    stop();
    lines = [];
    partial = '';
    offset = null;
    pre.textContent = '';
    poll(gen);
  }

  pick.addEventListener('change', restart);
  search.addEventListener('input', show);
  follow.addEventListener('change', () => {
    stop();
    if (follow.checked) poll(gen);
  });
  download.addEventListener('click', () => {
    const blob = new Blob([lines.join('\n') + '\n'], {type: 'text/plain'});
    const a = h('a', {href: URL.createObjectURL(blob), download: `${sub}-${pick.value}.log`});
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  });
  // leaving the page ends the reading
  window.addEventListener('hashchange', stop, {once: true});

  fill(body, h('div', {class: 'actions'}, field('Environment', pick), field('Search', search),
    field('Follow new lines', follow), download), error, info, pre);
  poll(gen);
}
