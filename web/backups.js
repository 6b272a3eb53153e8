// Backups of one environment: list, create with a comment (the job
// followed live), download, restore (a confirmation naming what is
// replaced), upload an archive (straight to the node, with progress; the
// node's validation errors shown).
import {api, p, followJob, uploadTo} from './api.js';
import {envPicker} from './env-pick.js';
import {h, fill, field, table, bytes, when, onSubmit, uploadForm} from './dom.js';

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

  async function restore(snap, cell) {
    const into = env();
    const dbOnly = h('input', {type: 'checkbox', name: 'database_only'});
    const out = h('p', {class: 'status', role: 'status', 'aria-live': 'polite'});
    const err = h('p', {class: 'error', role: 'alert'});
    const go = h('button', {type: 'button', class: 'danger', onclick: async () => {
      go.disabled = true;
      fill(err);
      try {
        const {job} = await api('POST', p`/apps/${sub}/environments/${into}/restores`,
          {snapshot: snap.id, database_only: dbOnly.checked});
        const end = await followJob(job.id, (j) => fill(out,
          `Restore into ${into}: ${j.state}${j.progress && j.progress.message ? ' — ' + j.progress.message : ''}`));
        if (end.state === 'completed') fill(out, `Restore into ${into}: done`);
        else { fill(out); fill(err, `Restore failed: ${end.error || end.state}`); }
      } catch (e) {
        fill(out);
        fill(err, `Restore refused: ${e.message}`);
      }
      go.disabled = false;
    }}, `Restore into ${into}`);
    const cancel = h('button', {type: 'button', class: 'secondary', onclick: () => load()}, 'Cancel');
    fill(cell, h('p', {}, `Restoring the backup of ${when(snap.created)}${snap.comment ? ` (${snap.comment})` : ''} `,
      `replaces the database and the files of ${into} (database only: its database) with the backup's. `,
      `${into} must be stopped.`), field('Database only', dbOnly),
    h('div', {class: 'actions'}, go, cancel), out, err);
    go.focus();
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
      : table(`Backups of ${env()}`, ['Created', 'Kind', 'State', 'Comment', 'Size', 'Expires', 'Actions'],
        snaps.map((s) => {
          const errEl = h('p', {class: 'error', role: 'alert'});
          const cell = h('div', {});
          if (s.state === 'completed') {
            fill(cell, h('div', {class: 'actions'}, ['full', 'database', 'files'].map((k) =>
              h('button', {type: 'button', class: 'secondary', 'aria-label': `Download ${k} of the backup of ${when(s.created)}`,
                onclick: () => download(s, k, errEl)}, k === 'full' ? 'Full' : k === 'database' ? 'Database' : 'Files')),
            h('button', {type: 'button', 'aria-label': `Restore the backup of ${when(s.created)}`,
              onclick: () => restore(s, cell)}, 'Restore…')), errEl);
          } else {
            fill(cell, '—');
          }
          const dl = cell;
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
  // upload an archive: a signed PUT URL on the node, then the portal
  // records it
  const upComment = h('input', {type: 'text', name: 'upload_comment', maxlength: 1000, autocomplete: 'off'});
  const {form: upForm, file, bar, status: upStatus, error: upError, button: upButton} = uploadForm(
    'up-title', 'Upload a backup archive', 'archive',
    'Archive (.tar.gz: files and database, as a download gives)', 'Upload backup',
    field('Comment (optional)', upComment));
  onSubmit(upForm, upButton, upError, async () => {
    const f = file.files[0];
    const on = env();
    if (!f) return;
    bar.hidden = false;
    bar.value = 0;
    fill(upStatus, `Uploading ${f.name}…`);
    try {
      const t = await api('POST', p`/apps/${sub}/environments/${on}/snapshot-uploads`);
      await uploadTo(t.url.split('#')[0], 'PUT', f, (sent, total) => {
        bar.value = Math.round(100 * sent / total);
        fill(upStatus, `Uploading ${f.name}: ${bar.value}%`);
      });
      const done = await api('POST', p`/apps/${sub}/environments/${on}/snapshot-uploads/${t.snapshot}`,
        upComment.value ? {comment: upComment.value} : {});
      fill(upStatus, `Uploaded: backup ${done.id || t.snapshot} of ${on}`);
      upForm.reset();
    } catch (err) {
      bar.hidden = true;
      fill(upStatus);
      throw new Error(`The archive was refused: ${err.message}`);
    }
    await load();
  });

  pick.addEventListener('change', load);

  fill(body, field('Environment', pick), listEl, listError, form, upForm);
  await load();
}
