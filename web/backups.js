// Backups of one environment: list, create with a comment (the job
// followed live), download.
import {api, p, followJob} from './api.js';
import {envPicker} from './env-pick.js';
import {h, fill, field, table, bytes, when} from './dom.js';

export async function backupsTab(ctx) {
  const {sub, body} = ctx;
  const pick = await envPicker(ctx, 'backups', 'Backups');
  if (pick === null) return;
  const listEl = h('div', {});
  const listError = h('p', {class: 'error', role: 'alert'});
  const comment = h('input', {type: 'text', name: 'comment', maxlength: 1000, autocomplete: 'off'});
  const status = h('p', {class: 'status', role: 'status', 'aria-live': 'polite'});
  const error = h('p', {class: 'error', role: 'alert'});
  const button = h('button', {type: 'submit'}, 'Create backup');
  const form = h('form', {class: 'card', 'aria-labelledby': 'backup-title'},
    h('h2', {id: 'backup-title'}, 'Create a backup'),
    field('Comment (optional)', comment), status, error,
    h('div', {class: 'actions'}, button));

  const env = () => pick.value;

  async function download(snap, kind, errEl) {
    fill(errEl);
    try {
      const d = await api('POST', p`/apps/${sub}/environments/${env()}/snapshots/${snap.id}/download`, {kind});
      const a = h('a', {href: d.url.split('#')[0], download: d.filename || ''});
      document.body.appendChild(a);
      a.click();
      a.remove();
    } catch (err) {
      fill(errEl, `Download refused: ${err.message}`);
    }
  }

  async function load() {
    fill(listError);
    let snaps;
    try {
      snaps = (await api('GET', p`/apps/${sub}/environments/${env()}/snapshots`)).snapshots;
    } catch (err) {
      fill(listEl);
      fill(listError, err.message);
      return;
    }
    fill(listEl, snaps.length === 0 ? h('p', {class: 'muted'}, `No backups of ${env()} yet.`)
      : table(`Backups of ${env()}`, ['Created', 'Kind', 'State', 'Comment', 'Size', 'Expires', 'Download'],
        snaps.map((s) => {
          const errEl = h('p', {class: 'error', role: 'alert'});
          const dl = s.state === 'completed'
            ? h('div', {}, h('div', {class: 'actions'}, ['full', 'database', 'files'].map((k) =>
              h('button', {type: 'button', class: 'secondary', 'aria-label': `Download ${k} of the backup of ${when(s.created)}`,
                onclick: () => download(s, k, errEl)}, k === 'full' ? 'Full' : k === 'database' ? 'Database' : 'Files'))), errEl)
            : '—';
          return [when(s.created), s.type, h('span', {class: `state state-${s.state}`}, s.state,
            s.error ? h('span', {class: 'error'}, ' ', s.error) : null),
          s.comment || '', bytes(s.archive_size), when(s.expires), dl];
        })));
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    button.disabled = true;
    fill(error);
    const on = env();
    try {
      const reqBody = comment.value ? {comment: comment.value} : {};
      const {job} = await api('POST', p`/apps/${sub}/environments/${on}/snapshots`, reqBody);
      const end = await followJob(job.id, (j) =>
        fill(status, `Backup of ${on}: ${j.state}${j.progress && j.progress.message ? ' — ' + j.progress.message : ''}`));
      if (end.state === 'completed') {
        fill(status, `Backup of ${on}: done`);
        form.reset();
      } else {
        fill(status);
        fill(error, `Backup of ${on} failed: ${end.error || end.state}`);
      }
    } catch (err) {
      fill(status);
      fill(error, `Backup refused: ${err.message}`);
    }
    button.disabled = false;
    await load();
  });
  pick.addEventListener('change', load);

  fill(body, field('Environment', pick), listEl, listError, form);
  await load();
}
