// Team: the app's members and what each may do, per environment, as a
// grid of checkboxes (transport, backups, settings, logs, manage × all
// environments or each one); add and remove members. The server refuses
// a grant the granter does not hold; the refusal shows on the member.
import {api, p} from './api.js';
import {h, fill, field, onSubmit} from './dom.js';

const PERMS = ['transport', 'backups', 'settings', 'logs', 'manage'];

export async function teamTab(ctx) {
  const {sub, can, body} = ctx;
  const edit = can('manage');
  const list = h('div', {});

  async function load() {
    const [{members}, {environments}] = await Promise.all([
      api('GET', p`/apps/${sub}/members`), api('GET', p`/apps/${sub}/environments`)]);
    const envs = ['*', ...environments.map((e) => e.name)];
    fill(list, members.map((m) => member(m, envs)));
  }

  function member(m, envs) {
    const title = m.name ? `${m.name} (${m.email})` : m.email;
    if (m.technical_contact) {
      return h('section', {class: 'card', 'aria-label': title},
        h('h2', {}, title), h('p', {}, 'Technical Contact: holds every permission on every environment.'));
    }
    const boxes = {};
    const grid = h('table', {class: 'grid'},
      h('caption', {class: 'muted'}, `Permissions of ${m.email}`),
      h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Environment'),
        PERMS.map((perm) => h('th', {scope: 'col'}, perm)))),
      h('tbody', {}, envs.map((env) => h('tr', {},
        h('th', {scope: 'row'}, env === '*' ? 'All environments' : env),
        PERMS.map((perm) => {
          const held = (m.permissions[perm] || []).some((e) => e === env ||
            (env !== '*' && e.toLowerCase() === env.toLowerCase()));
          const box = h('input', {type: 'checkbox', checked: held, disabled: !edit,
            'aria-label': `${perm} on ${env === '*' ? 'all environments' : env} for ${m.email}`});
          boxes[`${perm} ${env}`] = box;
          return h('td', {}, box);
        })))));
    const error = h('p', {class: 'error', role: 'alert'});
    const done = h('p', {class: 'status', role: 'status', 'aria-live': 'polite'});
    const parts = [h('h2', {}, title), h('div', {class: 'table-wrap'}, grid)];
    if (edit) {
      const save = h('button', {type: 'button', onclick: async () => {
        fill(error);
        fill(done);
        const perms = {};
        for (const perm of PERMS) {
          perms[perm] = boxes[`${perm} *`].checked ? ['*']
            : envs.filter((e) => e !== '*' && boxes[`${perm} ${e}`].checked);
        }
        try {
          await api('PUT', p`/apps/${sub}/members/${String(m.user_id)}/permissions`, {permissions: perms});
          fill(done, `Saved the permissions of ${m.email}`);
        } catch (err) {
          fill(error, `Not saved: ${err.message}`);
        }
      }}, `Save ${m.email}`);
      const remove = h('button', {type: 'button', class: 'secondary', onclick: () => {
        const yes = h('button', {type: 'button', class: 'danger', onclick: async () => {
          try {
            await api('DELETE', p`/apps/${sub}/members/${String(m.user_id)}`);
            await load();
          } catch (err) {
            fill(error, `Not removed: ${err.message}`);
          }
        }}, `Remove ${m.email} from the app`);
        fill(done, `${m.email} loses every permission on ${sub}. `, yes);
        yes.focus();
      }}, 'Remove');
      parts.push(h('div', {class: 'actions'}, save, remove));
    }
    parts.push(error, done);
    return h('section', {class: 'card', 'aria-label': title}, parts);
  }

  const parts = [list];
  if (edit) {
    const email = h('input', {type: 'email', name: 'member_email', required: true, autocomplete: 'off'});
    const error = h('p', {class: 'error', role: 'alert'});
    const button = h('button', {type: 'submit'}, 'Add member');
    const form = h('form', {class: 'card', 'aria-labelledby': 'add-title'},
      h('h2', {id: 'add-title'}, 'Add a member'), field('Email of a user', email),
      h('p', {class: 'muted'}, 'A new member has no permissions until you give some above.'),
      error, h('div', {class: 'actions'}, button));
    onSubmit(form, button, error, async () => {
      await api('POST', p`/apps/${sub}/members`, {email: email.value});
      form.reset();
      await load();
    });
    parts.push(form);
  }
  fill(body, parts);
  await load();
}
