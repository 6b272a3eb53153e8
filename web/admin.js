// Platform admin: users (list, create), nodes (create — the agent token
// shown once —, rotate a token), offboarding requests (list, approve).
import {api, p} from './api.js';
import {h, fill, field, table, when, actionForm} from './dom.js';

function once(title, label, value) {
  const input = h('input', {type: 'text', readonly: true, value, name: 'shown_once', size: 50});
  const box = h('section', {class: 'card', 'aria-label': title}, h('h2', {}, title),
    field(label, input), h('p', {class: 'error'}, 'Copy it now: it is shown this once and never again.'));
  setTimeout(() => { input.focus(); input.select(); }, 0);
  return box;
}

export async function adminPage(ctx) {
  document.title = 'Platform · nubo';
  if (!ctx.me.is_admin) {
    fill(ctx.main, h('h1', {}, 'Platform'), h('p', {class: 'muted'}, 'These pages are for platform admins.'));
    return;
  }
  const users = h('div', {});
  const nodes = h('div', {});
  const requests = h('div', {});
  const shown = h('div', {});

  async function load() {
    const [u, n, o] = await Promise.all([api('GET', '/users'), api('GET', '/nodes'),
      api('GET', '/offboarding-requests')]);
    fill(users, table('Users', ['Email', 'Name', 'Platform admin', 'Created'],
      u.users.map((x) => [x.email, x.name || '—', x.is_admin ? 'yes' : 'no', when(x.created_at)])));
    fill(nodes, table('Nodes', ['Node', 'Generation', 'Status', 'Technical Contact', 'App', 'Agent token'],
      n.nodes.map((x) => {
        const cell = h('div', {});
        fill(cell, h('button', {type: 'button', class: 'secondary', onclick: () => {
          const err = h('p', {class: 'error', role: 'alert'});
          const yes = h('button', {type: 'button', class: 'danger', onclick: async () => {
            try {
              const t = await api('POST', p`/nodes/${x.name}/token`, {});
              fill(shown, once(`New agent token of ${x.name}`, 'The token', t.token));
              await load();
            } catch (e) {
              fill(err, `Not rotated: ${e.message}`);
            }
          }}, `Rotate the token of ${x.name}`);
          fill(cell, h('p', {}, `${x.name}'s agent stops being accepted until it runs with the new token.`), yes, err);
          yes.focus();
        }}, 'Rotate…'));
        return [h('strong', {}, x.name), x.generation, x.status + (x.sandbox ? ' (sandbox)' : ''),
          x.technical_contact || '—', x.app || '—', cell];
      })));
    fill(requests, o.offboarding_requests.length === 0 ? h('p', {class: 'muted'}, 'No offboarding requests.')
      : table('Offboarding requests', ['Node', 'App', 'State', 'Reason', 'Requested', 'Data kept until', ''],
        o.offboarding_requests.map((x) => {
          const err = h('p', {class: 'error', role: 'alert'});
          const act = x.state === 'pending' ? h('div', {}, h('button', {type: 'button', onclick: async () => {
            try {
              await api('POST', p`/offboarding-requests/${String(x.id)}/approve`, {});
              await load();
            } catch (e) {
              fill(err, `Not approved: ${e.message}`);
            }
          }}, `Approve offboarding of ${x.node}`), err) : '';
          return [x.node, x.app || '—', x.state, x.reason || '', `${when(x.requested_at)} by ${x.requested_by || '?'}`,
            when(x.keep_until) || '—', act];
        })));
  }

  // a new user
  const email = h('input', {type: 'email', name: 'user_email', required: true, autocomplete: 'off'});
  const name = h('input', {type: 'text', name: 'user_name', autocomplete: 'off'});
  const password = h('input', {type: 'password', name: 'user_password', required: true, minlength: 8, autocomplete: 'new-password'});
  const admin = h('input', {type: 'checkbox', name: 'user_admin'});
  const uForm = actionForm('Create a user', [field('Email', email), field('Name (optional)', name),
    field('Password', password), field('Platform admin', admin)], 'Create user', async (f) => {
    const b = {email: email.value, password: password.value, admin: admin.checked};
    if (name.value) b.name = name.value;
    await api('POST', '/users', b);
    f.reset();
    await load();
  });

  // a new node
  const nName = h('input', {type: 'text', name: 'node_name', required: true, autocomplete: 'off'});
  const gen = h('select', {name: 'node_generation'}, h('option', {value: 'v4'}, 'v4'), h('option', {value: 'v3'}, 'v3'));
  const tc = h('input', {type: 'email', name: 'node_tc', autocomplete: 'off'});
  const sandbox = h('input', {type: 'checkbox', name: 'node_sandbox'});
  const nForm = actionForm('Create a node', [field('Name', nName), field('Generation', gen),
    field('Technical Contact (email, optional)', tc),
    field('The sandbox node (Free Apps\' sandboxes)', sandbox)], 'Create node', async (f) => {
    const b = {name: nName.value, generation: gen.value, sandbox: sandbox.checked};
    if (tc.value) b.technical_contact = tc.value;
    const out = await api('POST', '/nodes', b);
    fill(shown, once(`Agent token of ${out.name || nName.value}`, 'The token', out.token));
    f.reset();
    await load();
  });

  fill(ctx.main, h('h1', {}, 'Platform'), shown,
    h('h2', {}, 'Offboarding requests'), requests,
    h('h2', {}, 'Nodes'), nodes, nForm,
    h('h2', {}, 'Users'), users, uForm);
  await load();
}
