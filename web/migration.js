// Migration of an app to a v4 node (seed §3): the plan (prerequisites,
// steps, sizes, estimated downtime), then start / rehearse / cut over /
// resume / abort / roll back (each where the server allows it) with the
// journal — every step's state, attempts, times and error — followed
// live, earlier migrations' journals, the measured
// downtime, and the offboarding request the cutover filed (a platform
// admin approves it here).
import {api, p, followJob, WAIT_S} from './api.js';
import {h, fill, field, table, bytes, when} from './dom.js';

const AGAIN_MS = 2000;    // after a failed read, before the next
const ABORTABLE = ['created', 'copying', 'copied', 'rehearsing'];
const ROLLBACK = ['cut-over', 'cutting-over'];

function seconds(s) {
  return s === null || s === undefined ? '' : `${Number(s).toFixed(1)} s`;
}

export async function migrationTab(ctx) {
  const {sub, body, isTC, me} = ctx;
  const status = h('p', {class: 'status', role: 'status', 'aria-live': 'polite'});
  const error = h('p', {class: 'error', role: 'alert'});
  const view = h('div', {});
  let gen = 0;           // a newer follow, or leaving the page, ends older ones
  let held = null;       // the follow's held GET, ended by stop()
  function stop() {
    gen++;
    if (held) held.abort();
    held = null;
  }
  window.addEventListener('hashchange', stop, {once: true});

  async function act(label, path, reqBody) {
    fill(error);
    fill(status, `${label}: asking…`);
    try {
      const out = await api('POST', path, reqBody || {});
      const job = out.job;
      if (job) {
        live(true);
        const end = await followJob(job.id, (j) => fill(status,
          `${label}: ${j.state}${j.progress && j.progress.message ? ' — ' + j.progress.message : ''}`));
        stop();   // the page is drawn once more below
        if (end.state === 'completed') fill(status, `${label}: done`);
        else { fill(status); fill(error, `${label} failed: ${end.error || end.state}`); }
      } else {
        fill(status, `${label}: done`);
      }
    } catch (err) {
      fill(status);
      fill(error, `${label} refused: ${err.message}`);
    }
    await load();
  }

  // The journal: every step as recorded before and after it ran.
  function journal(steps, caption) {
    const took = (s) => s.started_at && s.finished_at
      ? seconds((Date.parse(s.finished_at) - Date.parse(s.started_at)) / 1000) : '';
    return table(caption || 'Journal', ['#', 'Phase', 'Step', 'Environment', 'State', 'Attempts', 'Started',
      'Finished', 'Took', 'Detail'],
    steps.map((s) => [String(s.seq), s.round ? `${s.phase} (round ${s.round})` : s.phase, s.name,
      s.environment || '—', h('span', {class: `state state-${s.state}`}, s.state), String(s.attempts || 0),
      when(s.started_at), when(s.finished_at), took(s),
      s.error ? h('span', {class: 'error'}, s.error)
        : s.progress_json && s.progress_json.message ? s.progress_json.message
          : s.progress && s.progress.message ? s.progress.message : '']));
  }

  async function offboarding(m) {
    if (!m.offboarding_request_id) return null;
    let req;
    try {
      req = await api('GET', p`/offboarding-requests/${String(m.offboarding_request_id)}`);
    } catch (err) {
      return h('p', {class: 'muted'}, `Offboarding request ${m.offboarding_request_id}: ${err.message}`);
    }
    const approve = me.is_admin && req.state === 'pending'
      ? h('button', {type: 'button', onclick: () => act('Approve offboarding',
        p`/offboarding-requests/${String(req.id)}/approve`)}, `Approve the offboarding of ${req.node}`)
      : null;
    return h('section', {class: 'card', 'aria-labelledby': 'off-title'},
      h('h2', {id: 'off-title'}, `Offboarding of node ${req.node}`),
      h('p', {}, `State: ${req.state}. ${req.reason || ''}`),
      req.approved_by ? h('p', {}, `Approved by ${req.approved_by} ${when(req.approved_at)}; data kept until ${when(req.keep_until) || '—'}.`) : null,
      approve);
  }

  async function showMigration(m) {
    const buttons = [];
    const path = p`/migrations/${String(m.id)}`;
    const button = (label, what, cls) => h('button', {type: 'button', class: cls || null,
      onclick: () => act(label, path + what)}, label);
    // offered as the server allows them (migrate.c): resume after a
    // failure, abort before the cutover, roll back after it until the
    // offboarding is approved (also while a step is retrying: they stop
    // the retries)
    if (isTC && m.status === 'waiting' && m.state === 'copied') {
      buttons.push(button('Rehearse', '/rehearse', 'secondary'), button('Cut over', '/cutover'));
    }
    if (isTC && m.status === 'failed') buttons.push(button('Resume', '/resume'));
    if (isTC && m.status !== 'running' && ABORTABLE.includes(m.state)) buttons.push(button('Abort', '/abort', 'secondary'));
    if (isTC && m.status !== 'running' && ROLLBACK.includes(m.state)) buttons.push(button('Roll back', '/rollback', 'danger'));
    const est = m.cutover_estimates ? table('Estimated cutover downtime', ['Environment', 'Downtime', 'Basis'],
      Object.entries(m.cutover_estimates).map(([env, e]) => [env, seconds(e.seconds), e.basis ? e.basis.text : ''])) : null;
    fill(view,
      h('section', {class: 'card', 'aria-labelledby': 'mig-title'},
        h('h2', {id: 'mig-title'}, `Migration ${m.id}: ${m.source} → ${m.target}`),
        h('p', {}, h('strong', {class: `state state-${m.status}`}, `${m.state} (${m.status})`),
          m.temporary_app ? ` · temporary app ${m.temporary_app}` : '',
          m.downtime_ms !== null ? ` · measured downtime ${(m.downtime_ms / 1000).toFixed(1)} s` : ''),
        m.error ? h('p', {class: 'error'}, m.error) : null,
        m.next ? h('p', {}, 'Next: ', m.next) : null,
        buttons.length ? h('div', {class: 'actions'}, buttons) : null),
      m.state === 'cut-over' && isTC ? h('p', {class: 'muted'}, 'Rolling back stops the app on ' +
        `${m.target} and starts it on ${m.source} again: what was written on ${m.target} since the cutover is not carried back.`) : null,
      est, await offboarding(m), m.steps ? journal(m.steps) : null);
  }

  async function planForm() {
    const {nodes} = await api('GET', '/nodes');
    const targets = nodes.filter((n) => n.generation === 'v4');
    if (!isTC) return h('p', {class: 'muted'}, 'Migrating the app is for its Technical Contact.');
    if (targets.length === 0) return h('p', {class: 'muted'}, 'You see no v4 node to migrate to.');
    const to = h('select', {name: 'target'}, targets.map((n) => h('option', {value: n.name}, `${n.name} (${n.status})`)));
    // how the database is copied: replication unless the source holds
    // what it cannot carry (the plan says), or asked for
    const how = h('select', {name: 'method'},
      h('option', {value: ''}, 'By replication where it can'),
      h('option', {value: 'replicate'}, 'By replication only'),
      h('option', {value: 'dump'}, 'By a dump at every copy'));
    const plan = h('div', {});
    const button = h('button', {type: 'submit'}, 'Plan');
    const f = h('form', {class: 'card', 'aria-labelledby': 'plan-title'},
      h('h2', {id: 'plan-title'}, 'Migrate to a v4 node'), field('Target node', to),
      field('Copy the database', how), h('div', {class: 'actions'}, button));
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      fill(error);
      fill(plan);
      const ask = (mode) => Object.assign({app: sub, to: to.value, mode}, how.value ? {method: how.value} : {});
      try {
        const pl = await api('POST', '/migrations', ask('plan'));
        const start = h('button', {type: 'button', onclick: () => act('Start the migration', '/migrations',
          ask('start'))}, `Start the migration to ${pl.to}`);
        const carried = pl.environments.flatMap((e) => e.replication ?
          (e.replication.tables || []).map((t) => [e.environment, t.table, t.method])
            .concat(e.replication.refused || e.replication.error ?
              [[e.environment, '—', e.replication.refused || e.replication.error]] : []) : []);
        fill(plan,
          h('p', {}, `Plan: ${pl.app} from ${pl.from} to ${pl.to}; estimated downtime ${seconds(pl.estimated_downtime_seconds)}.`),
          h('p', {}, pl.method === 'replicate' ?
            'The database is copied once, then follows the source (PostgreSQL logical replication) until the cutover.' :
            `The database is copied by a dump at every copy${pl.method_reason ? `: ${pl.method_reason}` : '.'}`),
          carried.length ? table('How each table is replicated', ['Environment', 'Table', 'How'], carried) : null,
          table('Environments', ['Environment', 'Package', 'State', 'Database', 'Tables', 'Rows', 'Files', 'Downtime', 'Basis'],
            pl.environments.map((e) => [e.environment, e.package || '—', e.state, bytes(e.database_bytes),
              e.tables, e.rows, `${e.files} (${bytes(e.files_bytes)})`, seconds(e.estimated_downtime_seconds),
              e.estimate_basis ? e.estimate_basis.text : ''])),
          table('Steps', ['Phase', 'Step', 'Environment', 'What it does'],
            pl.steps.map((s) => [s.phase, s.step, s.environment || '—', s.does])),
          h('div', {class: 'actions'}, start));
      } catch (err) {
        fill(error, `The plan says no: ${err.message}`);
      }
    });
    return h('div', {}, f, plan);
  }

  // Follow the migration while a step runs (or, untilStopped, until
  // stop(): an action's job is followed meanwhile): long polling, each
  // GET naming the revision drawn, answered once the migration's record,
  // steps or job change (or after WAIT_S seconds as they were).
  async function live(untilStopped) {
    stop();
    const mine = gen;
    let m = null;
    while (mine === gen) {
      try {
        if (m === null) {
          m = await current();
        } else {
          held = new AbortController();
          m = await api('GET', p`/migrations/${String(m.id)}` +
            `?wait=${WAIT_S}&revision=${encodeURIComponent(m.revision)}`, undefined, held.signal);
        }
      } catch (err) {
        if (mine !== gen) return;
        fill(error, `The migration cannot be read: ${err.message}`);
        await new Promise((ok) => setTimeout(ok, AGAIN_MS));
        m = null;
        continue;
      }
      if (mine !== gen || !m) return;
      fill(error);
      await showMigration(m);
      if (!untilStopped && m.status !== 'running' && m.status !== 'retrying') return;
    }
  }

  async function current() {
    const {migrations} = await api('GET', `/migrations?app=${encodeURIComponent(sub)}`);
    const open = migrations.filter((m) => m.status !== 'finished');
    const m = open.length ? open[open.length - 1] : null;
    return m ? api('GET', p`/migrations/${String(m.id)}`) : null;
  }

  async function load() {
    const m = await current();
    if (m) {
      await showMigration(m);
      if (m.status === 'running' || m.status === 'retrying') live();
    } else {
      const {migrations} = await api('GET', `/migrations?app=${encodeURIComponent(sub)}`);
      const done = migrations.filter((x) => x.status === 'finished');
      const shownJournal = h('div', {});
      fill(view, await planForm(), done.length ? table('Earlier migrations',
        ['Migration', 'From', 'To', 'State', 'Finished', 'Downtime', 'Journal'],
        done.map((x) => [String(x.id), x.source, x.target, x.state, when(x.finished_at),
          x.downtime_ms !== null ? `${(x.downtime_ms / 1000).toFixed(1)} s` : '—',
          h('button', {type: 'button', class: 'secondary', 'aria-label': `Journal of migration ${x.id}`,
            onclick: async () => {
              try {
                const full = await api('GET', p`/migrations/${String(x.id)}`);
                fill(shownJournal, journal(full.steps, `Journal of migration ${x.id} (${x.state})`));
              } catch (err) {
                fill(shownJournal, h('p', {class: 'error', role: 'alert'}, err.message));
              }
            }}, 'Journal')])) : null, shownJournal);
    }
  }

  fill(body, status, error, view);
  await load();
}
