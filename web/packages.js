// The app's package repository: list, and upload with a progress bar
// (straight to the node through a signed URL, as `nubo packages upload`).
import {api, p, uploadTo} from './api.js';
import {h, fill, table, bytes, when, uploadForm} from './dom.js';

export async function packagesTab(ctx) {
  const {sub, can, body} = ctx;
  if (!can('transport')) {
    fill(body, h('p', {class: 'muted'}, 'The package repository is for members with the transport permission.'));
    return;
  }
  const listEl = h('div', {});
  const {form, file, bar, status, error, button} = uploadForm('upload-title', 'Upload a package',
    'package', 'Package file (.tar.gz)', 'Upload');

  function actions(pk) {
    const err = h('p', {class: 'error', role: 'alert'});
    const cell = h('div', {});
    const download = h('button', {type: 'button', class: 'secondary', 'aria-label': `Download ${pk.id}`,
      onclick: async () => {
        fill(err);
        try {
          const t = await api('GET', p`/apps/${sub}/packages/${pk.id}/download`);
          const a = h('a', {href: t.url.split('#')[0], download: pk.file_name || `${pk.id}.tar.gz`});
          document.body.appendChild(a);
          a.click();
          a.remove();
        } catch (e) {
          fill(err, `Download refused: ${e.message}`);
        }
      }}, 'Download');
    const remove = h('button', {type: 'button', class: 'secondary', 'aria-label': `Delete ${pk.id}`,
      onclick: () => {
        const yes = h('button', {type: 'button', class: 'danger', onclick: async () => {
          try {
            await api('DELETE', p`/apps/${sub}/packages/${pk.id}`);
            await load();
          } catch (e) {
            fill(err, `Not deleted: ${e.message}`);
          }
        }}, `Delete ${pk.id} from the repository`);
        remove.replaceWith(yes);
        yes.focus();
      }}, 'Delete…');
    fill(cell, h('div', {class: 'actions'}, download, remove), err);
    return cell;
  }

  async function load() {
    const doc = await api('GET', p`/apps/${sub}/packages`);
    const note = doc.node_reachable === false
      ? h('p', {class: 'error'}, `The node is not reachable (${doc.node_error || 'no answer'}): the list is the portal's record.`) : null;
    fill(listEl, note, doc.packages.length === 0 ? h('p', {class: 'muted'}, 'No packages yet.')
      : table(`Packages on ${doc.node || 'the sandbox'}`,
        ['Package', 'Version', 'Size', 'sha256', 'Uploaded', 'Deployed in', ''],
        doc.packages.map((pk) => [
          h('strong', {}, pk.name), pk.version, bytes(pk.size),
          h('code', {title: pk.sha256}, (pk.sha256 || '').slice(0, 12)),
          `${when(pk.uploaded_at)} by ${pk.uploaded_by || 'unknown'}`,
          (pk.environments || []).map((e) => e.name || e).join(', ') || '—',
          actions(pk)])),
      doc.quota ? h('p', {class: 'muted'}, `Quota: ${bytes(doc.quota.used)} of ${bytes(doc.quota.limit)} used`) : null);
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = file.files[0];
    if (!f) return;
    button.disabled = true;
    fill(error);
    bar.hidden = false;
    bar.value = 0;
    fill(status, `Uploading ${f.name}…`);
    try {
      const ticket = await api('POST', p`/apps/${sub}/packages/uploads`, {size: f.size});
      const url = ticket.url.split('#')[0] + '&filename=' + encodeURIComponent(f.name);
      const done = await uploadTo(url, ticket.method, f, (sent, total) => {
        bar.value = Math.round(100 * sent / total);
        fill(status, `Uploading ${f.name}: ${bar.value}% (${bytes(sent)} of ${bytes(total)})`);
      });
      bar.value = 100;
      // the portal records it now (it would at the next list too)
      await api('GET', p`/apps/${sub}/packages/${done.id}`);
      fill(status, `Uploaded ${done.id} (sha256 ${done.sha256.slice(0, 12)}…)`);
      form.reset();
      await load();
    } catch (err) {
      bar.hidden = true;
      fill(status);
      fill(error, err.message);
    }
    button.disabled = false;
  });

  fill(body, listEl, form);
  await load();
}
