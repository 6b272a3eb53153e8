// One-off runs: a command in a fresh instance of an environment (as
// `nubo envs run`), its output shown as it comes (polled from the byte
// offset the node answered), its end and exit status said, Stop asking
// the node to end it. The command line runs under sh -c, as a terminal's
// would. Output is shown as text.
import {api, p} from './api.js';
import {envPicker} from './env-pick.js';
import {h, fill, field} from './dom.js';

const EVERY_MS = 300;
const ENDS = {
  'timed-out': 'ran out of its time limit and was stopped',
  'output-limit': 'printed more than the node keeps and was stopped',
  lost: 'was lost: the node restarted while it ran',
};

export async function runsTab(ctx) {
  const {sub, body} = ctx;
  const pick = await envPicker(ctx, 'transport', 'One-off runs');
  if (pick === null) return;
  const line = h('input', {type: 'text', name: 'run_command', required: true, autocomplete: 'off',
    placeholder: 'ls -l', spellcheck: 'false'});
  const limit = h('input', {type: 'number', name: 'run_timeout', min: 1, max: 3600, value: '60'});
  const start = h('button', {type: 'submit'}, 'Run');
  const stop = h('button', {type: 'button', class: 'secondary', disabled: true}, 'Stop');
  const pre = h('pre', {class: 'log', role: 'log', tabindex: 0, 'aria-label': 'Output of the run'});
  const info = h('p', {class: 'status', role: 'status', 'aria-live': 'polite'});
  const error = h('p', {class: 'error', role: 'alert'});
  let gen = 0;           // a newer run, or leaving the page, ends older polls

  async function follow(mine, path) {
    const text = new TextDecoder();
    let offset = 0;
    for (;;) {
      if (mine !== gen) return;
      const doc = await api('GET', path + `?offset=${offset}`);
      if (mine !== gen) return;
      const bin = atob(doc.output || '');
      pre.textContent += text.decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)), {stream: true});
      offset = doc.offset ?? offset;
      if (doc.more) continue;
      if (doc.state !== 'running') {
        pre.textContent += text.decode();
        return doc;
      }
      await new Promise((ok) => setTimeout(ok, EVERY_MS));
    }
  }

  const form = h('form', {class: 'card', 'aria-labelledby': 't-run'},
    h('h2', {id: 't-run'}, 'Run a command'),
    h('div', {class: 'actions'}, field('Environment', pick), field('Time limit (s)', limit)),
    field('Command (run by sh -c in a fresh instance)', line),
    error, h('div', {class: 'actions'}, start, stop));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const mine = ++gen;
    start.disabled = true;
    fill(error);
    pre.textContent = '';
    fill(info, 'Starting…');
    try {
      const run = await api('POST', p`/apps/${sub}/environments/${pick.value}/runs`,
        {command: ['sh', '-c', line.value], timeout: Number(limit.value)});
      const path = p`/apps/${sub}/environments/${pick.value}/runs/${run.id}`;
      stop.disabled = false;
      stop.onclick = () => api('DELETE', path).catch((err) => fill(error, err.message));
      fill(info, `Running in ${pick.value}…`);
      const end = await follow(mine, path);
      if (end) {
        fill(info, end.state === 'exited' ? `Exited with status ${end.exit_status}` +
          (end.oom_killed ? ' (killed for using more than its memory limit)' : '')
          : `The command ${ENDS[end.state] || end.state}`);
      }
    } catch (err) {
      fill(info);
      fill(error, err.message);
    }
    if (mine === gen) {
      start.disabled = false;
      stop.disabled = true;
    }
  });
  // leaving the page ends the polling (the run goes on to its end)
  window.addEventListener('hashchange', () => { gen++; }, {once: true});
  fill(body, form, info, pre);
}
