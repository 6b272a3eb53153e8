// API keys: yours (never their secrets), a new one (shown once), revoke.
import {api, p} from './api.js';
import {h, fill, field, table, when, onSubmit} from './dom.js';

export async function keysPage(ctx) {
  document.title = 'API keys · nubo';
  const listEl = h('div', {});
  const listError = h('p', {class: 'error', role: 'alert'});
  const shown = h('div', {});
  const name = h('input', {type: 'text', name: 'name', maxlength: 100, autocomplete: 'off'});
  const readOnly = h('input', {type: 'checkbox', name: 'read_only'});
  const expires = h('input', {type: 'date', name: 'expires'});
  const error = h('p', {class: 'error', role: 'alert'});
  const button = h('button', {type: 'submit'}, 'Create key');
  const form = h('form', {class: 'card', 'aria-labelledby': 'key-title'},
    h('h2', {id: 'key-title'}, 'Create an API key'),
    field('Name', name), field('Read-only', readOnly),
    field('Expires on (optional, end of the day UTC)', expires),
    error, h('div', {class: 'actions'}, button));

  async function revoke(k, cell) {
    const out = h('p', {class: 'error', role: 'alert'});
    const go = h('button', {type: 'button', onclick: async () => {
      try {
        await api('DELETE', p`/keys/${String(k.id)}`);
        await load();
      } catch (err) {
        fill(out, `Revoking refused: ${err.message}`);
      }
    }}, `Revoke ${k.prefix}…`);
    const cancel = h('button', {type: 'button', class: 'secondary', onclick: () => load()}, 'Cancel');
    fill(cell, h('p', {}, 'Programs using this key stop working, and so do the keys made with it.'),
      h('div', {class: 'actions'}, go, cancel), out);
    go.focus();
  }

  async function load() {
    fill(listError);
    let keys;
    try {
      keys = (await api('GET', '/keys')).keys;
    } catch (err) {
      fill(listError, err.message);
      return;
    }
    fill(listEl, keys.length === 0 ? h('p', {class: 'muted'}, 'No API keys yet.')
      : table('Your API keys', ['Key', 'Name', 'Access', 'Expires', 'Created', 'State'],
        keys.map((k) => {
          const cell = h('div', {});
          if (k.revoked_at) fill(cell, `revoked ${when(k.revoked_at)}`);
          else fill(cell, h('button', {type: 'button', class: 'secondary',
            'aria-label': `Revoke key ${k.prefix}`, onclick: () => revoke(k, cell)}, 'Revoke'));
          return [h('code', {}, `${k.prefix}…`), k.name || '—',
            (k.read_only ? 'read-only' : 'read and write') +
              (k.app_names ? ` · apps ${k.app_names.join(', ')}` : ''),
            k.expires_at ? when(k.expires_at) : 'never', when(k.created_at), cell];
        })));
  }

  onSubmit(form, button, error, async () => {
    fill(shown);
    const body = {read_only: readOnly.checked};
    if (name.value.trim()) body.name = name.value.trim();
    if (expires.value) body.expires_at = `${expires.value}T23:59:59Z`;
    const k = await api('POST', '/keys', body);
    const value = h('input', {type: 'text', readonly: true, value: k.key, name: 'new_key',
      size: 50, 'aria-describedby': 'key-once'});
    fill(shown, h('section', {class: 'card', 'aria-labelledby': 'key-new'},
      h('h2', {id: 'key-new'}, `New key ${k.name || k.prefix}`),
      field('The key', value),
      h('p', {id: 'key-once', class: 'error'}, 'Copy it now: it is shown this once and never again.')));
    value.focus();
    value.select();
    form.reset();
    await load();
  });

  fill(ctx.main, h('h1', {}, 'API keys'),
    h('p', {class: 'muted'}, 'Keys let programs and the nubo CLI act as you. ',
      'A key made here is yours: it outlives this browser session.'),
    shown, listEl, listError, form);
  await load();
}
