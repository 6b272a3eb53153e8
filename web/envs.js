// An app's environments: state, deployed package, instances, URL; Start,
// Stop, Restart and Transport with the job's progress followed live.
import {api, p, followJob} from './api.js';
import {h, fill, field, table} from './dom.js';

const ACTIONS = [['start', 'Start'], ['stop', 'Stop'], ['restart', 'Restart']];

export async function envsTab(ctx) {
  const {sub, can, body} = ctx;
  const status = {};   // env name → {text, error}: kept across redraws
  let packages = null;

  async function loadPackages() {
    if (!can('transport') || envs.length === 0) return;
    try {
      packages = (await api('GET', p`/apps/${sub}/packages`)).packages;
    } catch (err) {
      packages = null;
      status[''] = {error: 'The package repository cannot be read: ' + err.message};
    }
  }

  async function run(env, label, path, reqBody, method) {
    status[env] = {text: `${label}: asking…`};
    draw();
    try {
      const {job} = await api(method || 'POST', p`/apps/${sub}/environments/${env}` + path, reqBody);
      const end = await followJob(job.id, (j) => {
        setStatus(env, {text: `${label}: ${j.state}${j.progress && j.progress.message ? ' — ' + j.progress.message : ''}`});
      });
      status[env] = end.state === 'completed'
        ? {text: `${label}: done`} : {error: `${label} failed: ${end.error || end.state}`};
    } catch (err) {
      status[env] = {error: `${label} refused: ${err.message}`};
    }
    await load();
  }

  let envs = [];
  async function load() {
    envs = (await api('GET', p`/apps/${sub}/environments`)).environments;
    draw();
  }

  function setStatus(env, s) {
    status[env] = s;
    const el = body.querySelector(`[data-env-status="${CSS.escape(env)}"]`);
    if (el) showStatus(el, s);
  }

  function showStatus(el, s) {
    fill(el, s ? (s.error || s.text || '') : '');
    el.className = s && s.error ? 'error' : 'status';
  }

  function actions(env) {
    if (!can('transport', env.name)) return h('span', {class: 'muted'}, 'view only');
    const buttons = ACTIONS.map(([act, label]) => h('button', {type: 'button', class: 'secondary',
      'aria-label': `${label} ${env.name}`, onclick: () => run(env.name, label, '/' + act)}, label));
    // Clean wipes the data: said first, done on a second button
    buttons.push(h('button', {type: 'button', class: 'secondary', 'aria-label': `Clean ${env.name}`,
      onclick: (e) => {
        const yes = h('button', {type: 'button', class: 'danger',
          onclick: () => run(env.name, 'Clean', '/clean')}, `Wipe ${env.name}'s data`);
        e.target.replaceWith(h('span', {class: 'actions'},
          `Cleaning deletes ${env.name}'s database and files (stopped only).`, yes));
        yes.focus();
      }}, 'Clean…'));
    let transport = null;
    if (packages && packages.length) {
      const pick = h('select', {name: 'package'},
        packages.map((pk) => h('option', {value: pk.id, selected: pk.id === env.package}, pk.id)));
      transport = h('span', {class: 'actions'},
        field(`Package for ${env.name}`, pick),
        h('button', {type: 'button', onclick: () => run(env.name, 'Transport', '/transport', {package: pick.value})},
          `Transport to ${env.name}`));
    }
    // the maintenance page: visitors see it instead of the app
    buttons.push(h('button', {type: 'button', class: 'secondary', 'aria-pressed': env.maintenance ? 'true' : 'false',
      onclick: async () => {
        status[env.name] = {text: 'Maintenance page: asking…'};
        draw();
        try {
          const out = await api('POST', p`/apps/${sub}/environments/${env.name}/maintenance`, {on: !env.maintenance});
          status[env.name] = {text: `Maintenance page ${out.maintenance ? 'on' : 'off'}` +
            (out.applied === false ? ' (the node gets it with its next heartbeat)' : '')};
        } catch (err) {
          status[env.name] = {error: `Maintenance page refused: ${err.message}`};
        }
        await load();
      }}, env.maintenance ? `Maintenance page off for ${env.name}` : `Maintenance page on for ${env.name}`));
    let scale = null;
    if (can('settings', env.name)) {
      const inst = h('input', {type: 'number', name: 'instances', min: 1, max: 16, value: String(env.instances),
        disabled: env.generation !== 'v4'});
      const mem = h('input', {type: 'number', name: 'memory_mb', min: 64, step: 64, value: String(env.memory_mb)});
      scale = h('span', {class: 'actions'},
        field(`Instances of ${env.name}${env.generation !== 'v4' ? ' (v4 only)' : ''}`, inst),
        field(`Memory per instance of ${env.name} (MB)`, mem),
        h('button', {type: 'button', class: 'secondary', onclick: () => {
          const b = {memory_mb: Number(mem.value)};
          if (env.generation === 'v4') b.instances = Number(inst.value);
          run(env.name, 'Scale', '/scale', b, 'PUT');
        }}, `Scale ${env.name}`));
    }
    return h('div', {class: 'actions'}, buttons, transport, scale);
  }

  function draw() {
    if (envs.length === 0) {
      fill(body, h('p', {}, 'This app has no environments yet: link it to a node on the ',
        h('a', {href: '#/nodes'}, 'Nodes'), ' page (as the node\'s Technical Contact).'));
      return;
    }
    const rows = envs.map((env) => {
      const st = h('p', {'data-env-status': env.name, role: 'status', 'aria-live': 'polite'});
      showStatus(st, status[env.name]);
      const running = (env.running || []).length;
      return [
        h('strong', {}, env.name),
        h('span', {class: `state state-${env.state}`}, env.state,
          env.maintenance ? ' · maintenance page' : '',
          env.error ? h('span', {class: 'error'}, ' ', env.error) : null),
        env.package || '—',
        `${running} of ${env.instances}`,
        env.url ? h('a', {href: env.url, rel: 'noopener noreferrer', target: '_blank'}, env.url) : '—',
        h('div', {}, actions(env), st)];
    });
    const general = status[''] ? h('p', {class: 'error', role: 'alert'}, status[''].error) : null;
    const noPackages = packages && packages.length === 0
      ? h('p', {class: 'muted'}, 'No package to transport yet: ',
        h('a', {href: `#/apps/${encodeURIComponent(sub)}/packages`}, 'upload one'), '.')
      : null;
    fill(body, general, noPackages,
      table('Environments', ['Environment', 'State', 'Package', 'Instances', 'URL', 'Actions'], rows),
      h('div', {class: 'actions'}, h('button', {type: 'button', class: 'secondary', onclick: () => load()}, 'Refresh')));
  }

  // the rows first; the package picker once the node answered
  envs = (await api('GET', p`/apps/${sub}/environments`)).environments;
  draw();
  if (can('transport') && envs.length) {
    await loadPackages();
    draw();
  }
}
