// Apps: the apps you can see, and a new one.
import {api} from './api.js';
import {h, fill, field, table} from './dom.js';

export function kindOf(app) {
  if (app.status === 'licensed') return 'licensed';
  return app.sandbox ? 'Free App (sandbox)' : 'Free App';
}

export async function appsPage(ctx) {
  document.title = 'Apps · nubo';
  const {apps} = await api('GET', '/apps');
  const list = apps.length === 0
    ? h('p', {class: 'muted'}, 'No apps yet: create one below.')
    : table('Your apps', ['App', 'Subdomain', 'Kind', 'Node', 'Technical Contact'],
      apps.map((a) => [
        h('a', {href: '#/apps/' + encodeURIComponent(a.subdomain)}, a.name),
        a.subdomain, kindOf(a), a.node || '—', a.technical_contact]));

  const sub = h('input', {type: 'text', name: 'subdomain', required: true, autocomplete: 'off',
    pattern: '[a-z0-9]([a-z0-9\\-]*[a-z0-9])?', 'aria-describedby': 'sub-help'});
  const name = h('input', {type: 'text', name: 'name', autocomplete: 'off'});
  const sandbox = h('input', {type: 'checkbox', name: 'sandbox'});
  const error = h('p', {class: 'error', role: 'alert'});
  const button = h('button', {type: 'submit'}, 'Create app');
  const form = h('form', {class: 'card', 'aria-labelledby': 'create-title'},
    h('h2', {id: 'create-title'}, 'Create an app'),
    field('Subdomain', sub, h('small', {id: 'sub-help', class: 'muted'},
      'lowercase letters, digits and dashes; part of every environment\'s address, never changes')),
    field('Display name (optional)', name),
    field('Give it a sandbox on the sandbox node', sandbox),
    error, h('div', {class: 'actions'}, button));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    button.disabled = true;
    fill(error);
    try {
      const body = {subdomain: sub.value.trim(), sandbox: sandbox.checked};
      if (name.value.trim()) body.name = name.value.trim();
      const app = await api('POST', '/apps', body);
      ctx.navigate('#/apps/' + encodeURIComponent(app.subdomain));
    } catch (err) {
      fill(error, err.message);
      button.disabled = false;
    }
  });
  fill(ctx.main, h('h1', {}, 'Apps'), list, form);
}
