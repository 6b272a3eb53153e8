// Environment Details: an environment's settings as the seed's tabs show
// them — Model Options (constants, scheduled events), Network (custom
// domains, access restriction profiles, headers: what v3 lacks said, not
// hidden), Runtime (instances, memory, custom settings, environment
// variables with secrets masked), Maintenance (weekly window) — with the
// common edits, an export, and a side-by-side diff with another
// environment. A refused edit shows the server's reasons on its form.
import {api, p} from './api.js';
import {envPicker} from './env-pick.js';
import {h, fill, field, table, actionForm} from './dom.js';

const V3_HEADERS = 'v3 nodes add only X-Frame-Options; v4 also Access-Control-Allow-Origin, ' +
  'Content-Security-Policy, Referrer-Policy, X-Content-Type-Options, X-Permitted-Cross-Domain-Policies, X-XSS-Protection.';

function shown(v) {
  if (v === null || v === undefined) return '—';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

export async function settingsTab(ctx) {
  const {sub, body} = ctx;
  const pick = await envPicker(ctx, 'settings', 'Settings');
  if (pick === null) return;
  const view = h('div', {});
  const {environments} = await api('GET', p`/apps/${sub}/environments`);

  async function load() {
    const env = pick.value;
    const base = p`/apps/${sub}/environments/${env}/settings`;
    const doc = await api('GET', base);
    const st = doc.settings || {};
    const reload = async () => { await load(); return 'Saved'; };

    // Model Options
    const cName = h('input', {type: 'text', name: 'constant_name', required: true, autocomplete: 'off'});
    const cValue = h('input', {type: 'text', name: 'constant_value', required: true, autocomplete: 'off'});
    const events = Object.entries(st.scheduled_events || {});
    const model = h('section', {class: 'card', 'aria-labelledby': 's-model'}, h('h2', {id: 's-model'}, 'Model Options'),
      table('Constants (values set here; others have the package default)', ['Constant', 'Value'],
        Object.entries(st.constants || {}).map(([k, v]) => [k, v])),
      actionForm('Set a constant', [field('Constant', cName), field('Value', cValue)], 'Set constant', async () => {
        await api('PUT', `${base}/constants/${encodeURIComponent(cName.value)}`, {value: cValue.value});
        return reload();
      }),
      table('Scheduled events', ['Event', 'Enabled'], events.map(([k, v]) => [k, v ? 'yes' : 'no'])));

    // Network
    const hName = h('input', {type: 'text', name: 'header_name', required: true, autocomplete: 'off'});
    const hValue = h('input', {type: 'text', name: 'header_value', required: true, autocomplete: 'off'});
    const access = st.access || {};
    const network = h('section', {class: 'card', 'aria-labelledby': 's-net'}, h('h2', {id: 's-net'}, 'Network'),
      table('Custom domains', ['Domain', 'Certificate', 'Private key'],
        Object.entries(st.domains || {}).map(([d, v]) => [d, v.certificate ? 'set' : '—',
          v.private_key ? 'set' : '(kept, not shown)'])),
      table('Access restriction profiles', ['Profile', 'Allow', 'Deny', 'Basic auth users'],
        Object.entries(access.profiles || {}).map(([n, v]) => [n, (v.allow || []).join(', ') || '—',
          (v.deny || []).join(', ') || '—', Object.keys(v.basic_auth || {}).join(', ') || '—'])),
      table('Where profiles apply', ['Path', 'Profile'], Object.entries(access.paths || {})),
      table('HTTP response headers', ['Header', 'Value'], Object.entries(st.headers || {})),
      h('p', {class: 'muted'}, doc.generation === 'v3' ? `This is a v3 node: ${V3_HEADERS}` : V3_HEADERS),
      actionForm('Set a header', [field('Header', hName), field('Value', hValue)], 'Set header', async () => {
        await api('PUT', `${base}/headers/${encodeURIComponent(hName.value)}`, {value: hValue.value});
        return reload();
      }));

    // Runtime
    const rt = st.runtime || {};
    const vName = h('input', {type: 'text', name: 'var_name', required: true, autocomplete: 'off'});
    const vValue = h('input', {type: 'password', name: 'var_value', required: true, autocomplete: 'off'});
    const vSecret = h('input', {type: 'checkbox', name: 'var_secret', checked: true});
    const runtime = h('section', {class: 'card', 'aria-labelledby': 's-rt'}, h('h2', {id: 's-rt'}, 'Runtime'),
      h('p', {}, `Instances: ${shown(rt.instances)} · memory per instance: ${rt.memory_mb ? rt.memory_mb + ' MB' : '—'}`,
        doc.generation === 'v3' ? ' (v3 runs one instance)' : ''),
      table('Custom runtime settings', ['Setting', 'Value'], Object.entries(rt.settings || {})),
      table('Environment variables', ['Variable', 'Value'], Object.entries(st.env_vars || {}).map(([k, v]) =>
        [k, v.secret ? '(secret)' : shown(v.value)])),
      actionForm('Set an environment variable', [field('Name', vName), field('Value', vValue),
        field('Secret (never shown again)', vSecret)], 'Set variable', async () => {
        await api('PUT', `${base}/env-vars/${encodeURIComponent(vName.value)}`,
          {value: vValue.value, secret: vSecret.checked});
        return reload();
      }));

    // Maintenance
    const w = st.maintenance_window;
    const day = h('select', {name: 'window_day'}, ['monday', 'tuesday', 'wednesday', 'thursday', 'friday',
      'saturday', 'sunday'].map((d) => h('option', {value: d, selected: w && w.day === d}, d)));
    const start = h('input', {type: 'time', name: 'window_start', required: true, value: w ? w.start : '02:00'});
    const dur = h('input', {type: 'number', name: 'window_minutes', min: 30, max: 1440, value: String(w ? w.duration_minutes : 120)});
    const maint = h('section', {class: 'card', 'aria-labelledby': 's-mt'}, h('h2', {id: 's-mt'}, 'Maintenance'),
      h('p', {}, w ? `Every ${w.day} at ${w.start} UTC for ${w.duration_minutes} minutes` +
        (w.apply_pending_restarts ? '; pending restarts are applied then.' : '.') : 'No maintenance window.'),
      actionForm('Set the weekly window', [field('Day', day), field('Start (UTC)', start),
        field('Minutes', dur)], 'Set window', async () => {
        await api('PUT', `${base}/maintenance-window`,
          {day: day.value, start: start.value, duration_minutes: Number(dur.value), apply_pending_restarts: true});
        return reload();
      }));

    // Export and diff
    const others = environments.filter((e) => e.name !== env);
    const other = h('select', {name: 'diff_env'}, others.map((e) => h('option', {value: e.name}, e.name)));
    const diffOut = h('div', {});
    const tools = h('section', {class: 'card', 'aria-labelledby': 's-tools'}, h('h2', {id: 's-tools'}, 'Export and compare'),
      h('div', {class: 'actions'}, h('button', {type: 'button', class: 'secondary', onclick: async () => {
        const docx = await api('GET', `${base}/export`);
        const a = h('a', {href: URL.createObjectURL(new Blob([JSON.stringify(docx, null, 2) + '\n'],
          {type: 'application/json'})), download: `${sub}-${env}-settings.json`});
        document.body.appendChild(a);
        a.click();
        a.remove();
      }}, 'Export settings')),
      others.length ? actionForm(`Compare ${env} with`, field('Environment', other), 'Compare', async () => {
        const df = await api('GET', `${base}/diff?app=${encodeURIComponent(sub)}&env=${encodeURIComponent(other.value)}`);
        fill(diffOut, df.differences.length === 0 ? h('p', {}, 'The same settings.')
          : table(`${env} and ${other.value}, side by side`, ['Setting', env, other.value],
            df.differences.map((x) => [x.setting, shown(x.a), shown(x.b)])),
        df.unsupported.length ? table('Only possible on one side', ['Setting', 'Side', 'Why'],
          df.unsupported.map((x) => [x.setting, x.side, x.reason])) : null);
        return '';
      }) : null, diffOut);

    fill(view, doc.restart_pending ? h('p', {class: 'error'}, `${env} runs with older settings: restart it to apply them.`) : null,
      h('p', {class: 'muted'}, `${env} on ${doc.node} (${doc.generation}), settings version ${doc.version}`),
      model, network, runtime, maint, tools);
  }

  pick.addEventListener('change', load);
  fill(body, field('Environment', pick), view);
  await load();
}
