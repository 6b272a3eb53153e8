// Environment Details: an environment's settings as the seed's tabs show
// them — Model Options (constants, scheduled events), Network (custom
// domains with an uploaded certificate or one ordered by ACME, access
// restriction profiles, headers: what v3 lacks said, not hidden),
// Runtime (instances, memory, custom settings, environment variables with
// secrets masked), Maintenance (weekly window) — each entry set and
// removed through the settings routes the CLI uses; an export, an import
// of an exported file, and a side-by-side diff with another environment.
// A refused edit shows the server's reasons where it was asked.
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

    // A button in a table row doing act(); what it throws is shown in
    // the section's alert (where the action was).
    const rowButton = (label, aria, errEl, act) => h('button', {type: 'button', class: 'secondary',
      'aria-label': aria, onclick: async (e) => {
        e.target.disabled = true;
        fill(errEl);
        try {
          await act();
          await load();
        } catch (err) {
          fill(errEl, `${aria} refused: ${err.message}`);
          e.target.disabled = false;
        }
      }}, label);
    const put = (path, b) => api('PUT', base + path, b);
    const del = (path) => api('DELETE', base + path);
    const enc = encodeURIComponent;

    // Model Options
    const modelErr = h('p', {class: 'error', role: 'alert'});
    const cName = h('input', {type: 'text', name: 'constant_name', required: true, autocomplete: 'off'});
    const cValue = h('input', {type: 'text', name: 'constant_value', required: true, autocomplete: 'off'});
    const eName = h('input', {type: 'text', name: 'event_name', required: true, autocomplete: 'off'});
    const eOn = h('input', {type: 'checkbox', name: 'event_enabled', checked: true});
    const events = Object.entries(st.scheduled_events || {});
    const model = h('section', {class: 'card', 'aria-labelledby': 's-model'}, h('h2', {id: 's-model'}, 'Model Options'),
      modelErr,
      table('Constants (values set here; others have the package default)', ['Constant', 'Value', ''],
        Object.entries(st.constants || {}).map(([k, v]) => [k, v,
          rowButton('Reset', `Reset constant ${k}`, modelErr, () => del(`/constants/${enc(k)}`))])),
      actionForm('Set a constant', [field('Constant', cName), field('Value', cValue)], 'Set constant', async () => {
        await put(`/constants/${enc(cName.value)}`, {value: cValue.value});
        return reload();
      }),
      table('Scheduled events (others as the package declares them)', ['Event', 'Enabled', ''],
        events.map(([k, v]) => [k, v ? 'yes' : 'no',
          rowButton(v ? 'Disable' : 'Enable', `${v ? 'Disable' : 'Enable'} event ${k}`, modelErr,
            () => put(`/scheduled-events/${enc(k)}`, {enabled: !v}))])),
      actionForm('Enable or disable a scheduled event', [field('Event', eName), field('Enabled', eOn)],
        'Set event', async () => {
          await put(`/scheduled-events/${enc(eName.value)}`, {enabled: eOn.checked});
          return reload();
        }));

    // Network
    const netErr = h('p', {class: 'error', role: 'alert'});
    const dName = h('input', {type: 'text', name: 'domain', required: true, autocomplete: 'off'});
    const dCert = h('input', {type: 'file', name: 'domain_certificate', accept: '.pem,.crt,.cer,text/plain'});
    const dKey = h('input', {type: 'file', name: 'domain_key', accept: '.pem,.key,text/plain'});
    const hName = h('input', {type: 'text', name: 'header_name', required: true, autocomplete: 'off'});
    const hValue = h('input', {type: 'text', name: 'header_value', required: true, autocomplete: 'off'});
    const access = st.access || {profiles: {}, paths: {}};
    const profiles = access.profiles || {};
    const paths = access.paths || {};
    const v3 = doc.generation === 'v3';
    // PUT /settings/access takes the whole section: basic auth users
    // sent as {} keep their stored password
    const accessDoc = (change) => {
      const pr = {};
      for (const [n, v] of Object.entries(profiles)) {
        pr[n] = {...v};
        if (v.basic_auth) pr[n].basic_auth = Object.fromEntries(Object.keys(v.basic_auth).map((u) => [u, {}]));
      }
      const out = {profiles: pr, paths: {...paths}};
      change(out);
      return out;
    };
    const aName = h('input', {type: 'text', name: 'profile_name', required: true, autocomplete: 'off'});
    const aAllow = h('input', {type: 'text', name: 'profile_allow', autocomplete: 'off', placeholder: '10.0.0.0/8, 192.0.2.7'});
    const aDeny = h('input', {type: 'text', name: 'profile_deny', autocomplete: 'off'});
    const aUser = h('input', {type: 'text', name: 'profile_user', autocomplete: 'off'});
    const aPass = h('input', {type: 'password', name: 'profile_password', autocomplete: 'new-password'});
    const aCa = h('input', {type: 'file', name: 'profile_client_ca', accept: '.pem,.crt,.cer,text/plain'});
    const aPath = h('input', {type: 'text', name: 'profile_path', autocomplete: 'off', value: '/',
      readonly: v3, 'aria-describedby': 's-path-note'});
    const list = (s) => s.split(/[\s,]+/).filter(Boolean);
    const network = h('section', {class: 'card', 'aria-labelledby': 's-net'}, h('h2', {id: 's-net'}, 'Network'),
      netErr,
      table('Custom domains', ['Domain', 'Certificate', 'Private key', ''],
        Object.entries(st.domains || {}).map(([d, v]) => [d,
          v.certificate ? 'uploaded' : 'ordered automatically (ACME)',
          v.certificate ? '(kept, not shown)' : '—',
          rowButton('Remove', `Remove domain ${d}`, netErr, () => del(`/domains/${enc(d)}`))])),
      actionForm('Add a custom domain', [field('Domain', dName),
        field('Certificate (PEM)', dCert), field('Private key (PEM)', dKey),
        h('p', {class: 'muted'}, 'Without a certificate and key the node orders one (ACME) and serves it once issued; ' +
          'an uploaded certificate must cover the domain, match its key and not be expired.')],
      'Add domain', async () => {
        const c = dCert.files[0], k = dKey.files[0];
        if (!!c !== !!k) throw new Error('give both the certificate and its private key, or neither');
        await put(`/domains/${enc(dName.value.trim())}`,
          c ? {certificate: await c.text(), private_key: await k.text()} : {});
        return reload();
      }),
      table('Access restriction profiles', ['Profile', 'Allow', 'Deny', 'Basic auth users', 'Client certificates', ''],
        Object.entries(profiles).map(([n, v]) => [n, (v.allow || []).join(', ') || '—',
          (v.deny || []).join(', ') || '—', Object.keys(v.basic_auth || {}).join(', ') || '—',
          v.client_ca ? 'required, signed by the CA set' : '—',
          rowButton('Remove', `Remove profile ${n}`, netErr, () => put('/access', accessDoc((a) => {
            delete a.profiles[n];
            for (const [pt, pn] of Object.entries(a.paths)) if (pn === n) delete a.paths[pt];
          })))])),
      table('Where profiles apply', ['Path', 'Profile', ''], Object.entries(paths).map(([pt, pn]) => [pt, pn,
        rowButton('Remove', `Remove the profile at ${pt}`, netErr, () => put('/access', accessDoc((a) => {
          delete a.paths[pt];
        })))])),
      actionForm('Add or replace an access restriction profile', [field('Profile', aName),
        field('Allow (IP addresses or CIDRs)', aAllow), field('Deny (IP addresses or CIDRs)', aDeny),
        field('Basic auth user (optional)', aUser), field('Basic auth password', aPass),
        field('Client certificate CA (PEM, optional)', aCa),
        field('Apply at path', aPath),
        h('p', {class: 'muted'}, 'With a CA, a client must present a certificate it signed (HTTPS only). ' +
          'Saving a profile again without a file keeps its CA.'),
        h('p', {class: 'muted', id: 's-path-note'}, v3
          ? 'This is a v3 node: a profile applies to the whole environment (path /); per-path restrictions need v4.'
          : 'v4 applies a profile per path; v3 nodes only at / (the whole environment).')],
      'Save profile', async () => {
        const name = aName.value.trim();
        const ca = aCa.files[0] ? await aCa.files[0].text() : null;
        await put('/access', accessDoc((a) => {
          const pr = {};
          if (list(aAllow.value).length) pr.allow = list(aAllow.value);
          if (list(aDeny.value).length) pr.deny = list(aDeny.value);
          if (aUser.value.trim()) pr.basic_auth = {[aUser.value.trim()]: {password: aPass.value}};
          if (ca !== null) pr.client_ca = ca;
          else if (a.profiles[name] && a.profiles[name].client_ca) pr.client_ca = a.profiles[name].client_ca;
          a.profiles[name] = pr;
          if (aPath.value.trim()) a.paths[aPath.value.trim()] = name;
        }));
        return reload();
      }),
      table('HTTP response headers', ['Header', 'Value', ''], Object.entries(st.headers || {}).map(([k, v]) => [k, v,
        rowButton('Remove', `Remove header ${k}`, netErr, () => del(`/headers/${enc(k)}`))])),
      h('p', {class: 'muted'}, v3 ? `This is a v3 node: ${V3_HEADERS}` : V3_HEADERS),
      actionForm('Set a header', [field('Header', hName), field('Value', hValue)], 'Set header', async () => {
        await put(`/headers/${enc(hName.value)}`, {value: hValue.value});
        return reload();
      }));

    // Runtime
    const rtErr = h('p', {class: 'error', role: 'alert'});
    const rt = st.runtime || {};
    const sName = h('input', {type: 'text', name: 'runtime_name', required: true, autocomplete: 'off'});
    const sValue = h('input', {type: 'text', name: 'runtime_value', required: true, autocomplete: 'off'});
    const vName = h('input', {type: 'text', name: 'var_name', required: true, autocomplete: 'off'});
    const vValue = h('input', {type: 'password', name: 'var_value', required: true, autocomplete: 'off'});
    const vSecret = h('input', {type: 'checkbox', name: 'var_secret', checked: true});
    const runtime = h('section', {class: 'card', 'aria-labelledby': 's-rt'}, h('h2', {id: 's-rt'}, 'Runtime'),
      rtErr,
      h('p', {}, `Instances: ${shown(rt.instances)} · memory per instance: ${rt.memory_mb ? rt.memory_mb + ' MB' : '—'}`,
        v3 ? ' (v3 runs one instance)' : ' (Scale on the Environments page)'),
      table('Custom runtime settings', ['Setting', 'Value', ''], Object.entries(rt.settings || {}).map(([k, v]) => [k, v,
        rowButton('Remove', `Remove runtime setting ${k}`, rtErr,
          () => api('PATCH', `${base}/runtime`, {settings: {[k]: null}}))])),
      actionForm('Set a custom runtime setting', [field('Setting', sName), field('Value', sValue)], 'Set setting',
        async () => {
          await api('PATCH', `${base}/runtime`, {settings: {[sName.value]: sValue.value}});
          return reload();
        }),
      table('Environment variables', ['Variable', 'Value', ''], Object.entries(st.env_vars || {}).map(([k, v]) =>
        [k, v.secret ? '(secret)' : shown(v.value),
          rowButton('Remove', `Remove variable ${k}`, rtErr, () => del(`/env-vars/${enc(k)}`))])),
      actionForm('Set an environment variable', [field('Name', vName), field('Value', vValue),
        field('Secret (never shown again)', vSecret)], 'Set variable', async () => {
        await put(`/env-vars/${enc(vName.value)}`, {value: vValue.value, secret: vSecret.checked});
        return reload();
      }));

    // Maintenance
    const w = st.maintenance_window;
    const day = h('select', {name: 'window_day'}, ['monday', 'tuesday', 'wednesday', 'thursday', 'friday',
      'saturday', 'sunday'].map((d) => h('option', {value: d, selected: w && w.day === d}, d)));
    const start = h('input', {type: 'time', name: 'window_start', required: true, value: w ? w.start : '02:00'});
    const dur = h('input', {type: 'number', name: 'window_minutes', min: 30, max: 1440, value: String(w ? w.duration_minutes : 120)});
    const mtErr = h('p', {class: 'error', role: 'alert'});
    const maint = h('section', {class: 'card', 'aria-labelledby': 's-mt'}, h('h2', {id: 's-mt'}, 'Maintenance'),
      mtErr,
      h('p', {}, w ? `Every ${w.day} at ${w.start} UTC for ${w.duration_minutes} minutes` +
        (w.apply_pending_restarts ? '; pending restarts are applied then.' : '.') : 'No maintenance window.'),
      w ? h('div', {class: 'actions'}, rowButton('Remove the window', 'Remove the maintenance window', mtErr,
        () => del('/maintenance-window'))) : null,
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
    const importFile = h('input', {type: 'file', name: 'settings_file', accept: '.json,application/json'});
    const tools = h('section', {class: 'card', 'aria-labelledby': 's-tools'}, h('h2', {id: 's-tools'}, 'Export, import and compare'),
      h('div', {class: 'actions'}, h('button', {type: 'button', class: 'secondary', onclick: async () => {
        const docx = await api('GET', `${base}/export`);
        const a = h('a', {href: URL.createObjectURL(new Blob([JSON.stringify(docx, null, 2) + '\n'],
          {type: 'application/json'})), download: `${sub}-${env}-settings.json`});
        document.body.appendChild(a);
        a.click();
        a.remove();
      }}, 'Export settings')),
      actionForm(`Import settings into ${env}`, [field('Settings file (JSON, as exported)', importFile),
        h('p', {class: 'muted'}, `Importing replaces all of ${env}'s settings with the file's (a v3 file is ` +
          'translated for v4); a file exported without secrets keeps the stored ones where it can.')],
      'Import', async () => {
        const f = importFile.files[0];
        if (!f) throw new Error('choose a settings file');
        let docIn;
        try {
          docIn = JSON.parse(await f.text());
        } catch (err) {
          throw new Error(`${f.name} is not JSON: ${err.message}`);
        }
        await api('PUT', base, docIn);
        await load();
        return `Imported ${f.name}`;
      }),
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
