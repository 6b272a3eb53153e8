// Nodes: the nodes you can see, and linking an app to one (its Technical
// Contact; the app's too). Linking another app unlinks the one there and
// wipes what it left in the node's environments: said before you confirm.
import {api, p} from './api.js';
import {h, fill, field, table, when, actionForm} from './dom.js';

export async function nodesPage(ctx) {
  document.title = 'Nodes · nubo';
  const {me} = ctx;
  let mine = [];
  const status = {};  // node name → {text, error}

  function linkCell(node) {
    if (!(me.is_admin || node.technical_contact === me.email)) return h('span', {class: 'muted'}, '—');
    const out = h('p', {role: 'status', 'aria-live': 'polite'});
    const s = status[node.name];
    if (s) { fill(out, s.error || s.text); out.className = s.error ? 'error' : 'status'; }
    const choices = mine.filter((a) => a.subdomain !== node.app && !a.temporary);
    if (choices.length === 0) return h('div', {}, h('span', {class: 'muted'}, 'no other app of yours to link'), out);
    const pick = h('select', {name: 'app'}, choices.map((a) => h('option', {value: a.subdomain}, a.subdomain)));
    const confirmEl = h('div', {});

    async function link(app) {
      fill(confirmEl);
      try {
        const res = await api('POST', p`/nodes/${node.name}/link`, {app});
        status[node.name] = {text: `Linked ${app} to ${node.name}` +
          (res.unlinked_app ? `; ${res.unlinked_app} was unlinked` : '')};
        await draw();
      } catch (err) {
        fill(out, `Linking refused: ${err.message}`);
        out.className = 'error';
      }
    }

    const button = h('button', {type: 'button', onclick: () => {
      const app = pick.value;
      if (!node.app) { link(app); return; }
      const cancel = h('button', {type: 'button', class: 'secondary', onclick: () => { fill(confirmEl); button.focus(); }}, 'Cancel');
      const go = h('button', {type: 'button', onclick: () => link(app)}, `Link ${app} and unlink ${node.app}`);
      fill(confirmEl, h('p', {class: 'error', role: 'alert'},
        `${node.name} serves ${node.app} now. Linking ${app} unlinks ${node.app} and wipes what it left in ` +
        `the node's environments (database, files, settings, packages).`),
      h('div', {class: 'actions'}, go, cancel));
      go.focus();
    }}, `Link to ${node.name}`);
    return h('div', {}, h('div', {class: 'actions'}, field(`App to link to ${node.name}`, pick), button), confirmEl, out);
  }

  async function draw() {
    const [{nodes}, {apps}] = await Promise.all([api('GET', '/nodes'), api('GET', '/apps')]);
    mine = apps.filter((a) => me.is_admin || a.technical_contact === me.email);
    render(nodes);
  }

  function render(list) {
    fill(ctx.main, h('h1', {}, 'Nodes'), list.length === 0
      ? h('p', {class: 'muted'}, 'You see no nodes: a platform admin creates them, and names their Technical Contact.')
      : table('Nodes you can see', ['Node', 'Generation', 'Status', 'Technical Contact', 'App', 'Last seen', 'Link an app'],
        list.map((n) => [h('a', {href: `#/nodes/${encodeURIComponent(n.name)}`}, h('strong', {}, n.name)), n.generation, n.status + (n.sandbox ? ' (sandbox)' : ''),
          n.technical_contact || '—', n.app || '—', when(n.last_seen_at) || 'never', linkCell(n)])));
  }

  await draw();
}

// One node (#/nodes/NAME): what it is and runs, its Technical Contact and
// address (platform admins set them), the certificate it presented
// instead of its pinned one (an admin trusts it), an offboarding request
// filed by hand (its Technical Contact), and its activity. Controls the
// user may not use are shown disabled, saying who may; the server
// decides anyway, and a refusal is shown on the form.
export async function nodePage(ctx, name) {
  document.title = `${name} · Nodes · nubo`;
  const {me} = ctx;
  const path = p`/nodes/${name}`;

  function only(form, who) {
    if (who) return form;
    form.querySelectorAll('input, select, button').forEach((el) => { el.disabled = true; });
    form.insertBefore(h('p', {class: 'muted'}, 'Only a platform admin changes this.'), form.querySelector('.actions'));
    return form;
  }

  async function draw() {
    const [node, {activity}, {offboarding_requests: reqs}] = await Promise.all([api('GET', path),
      api('GET', path + '/activity?limit=100'), api('GET', '/offboarding-requests')]);
    const admin = me.is_admin;
    const tc = admin || node.technical_contact === me.email;
    const done = async () => { await draw(); return ''; };

    const email = h('input', {type: 'email', name: 'node_tc', required: true, autocomplete: 'off',
      value: node.technical_contact || ''});
    const tcForm = only(actionForm('Technical Contact', field('Email of the new Technical Contact', email),
      'Set Technical Contact', async () => {
        await api('PUT', path + '/technical-contact', {email: email.value.trim()});
        return done();
      }), admin);

    const address = h('input', {type: 'text', name: 'node_address', autocomplete: 'off', value: node.address || '',
      'aria-describedby': 'node-address-note'});
    const addrForm = only(actionForm('Address', [field('Address (an IP address or host name; empty clears it)', address),
      h('p', {class: 'muted', id: 'node-address-note'},
        'The address the node\'s agent URL may name besides the one it registers from.')],
    'Set address', async () => {
      await api('PUT', path + '/address', {address: address.value.trim()});
      return done();
    }), admin);

    const certError = h('p', {class: 'error', role: 'alert'});
    const pending = node.tls_pin_pending;
    const cert = h('section', {class: 'card', 'aria-labelledby': 'node-cert'}, h('h2', {id: 'node-cert'}, 'Certificate'),
      h('p', {}, node.tls_pin ? ['Known by its certificate\'s key ', h('code', {}, node.tls_pin)]
        : 'Calls without a pinned certificate.'),
      pending ? [h('p', {class: 'error'}, 'The node presented another certificate: ',
        pending === 'none' ? 'none at all' : h('code', {}, pending), '. Its calls are refused until it is trusted.'),
      h('div', {class: 'actions'}, h('button', {type: 'button', disabled: !admin, onclick: async () => {
        fill(certError);
        try {
          await api('POST', path + '/trust', {pin: pending});
          await draw();
        } catch (err) {
          fill(certError, `Not trusted: ${err.message}`);
        }
      }}, 'Trust the new certificate')), admin ? null : h('p', {class: 'muted'}, 'Only a platform admin trusts it.')]
        : h('p', {class: 'muted'}, 'No other certificate is waiting.'), certError);

    const mine = reqs.filter((x) => x.node === node.name);
    const open = mine.find((x) => x.state === 'pending');
    const reason = h('input', {type: 'text', name: 'offboard_reason', autocomplete: 'off', maxlength: 1000});
    const force = h('input', {type: 'checkbox', name: 'offboard_force'});
    const offForm = actionForm('Request offboarding', [field('Reason', reason),
      field('Even though the latest backup or package was not downloaded', force),
      h('p', {class: 'muted'}, 'A platform admin approves the request; the linked app is then detached and stays a Free App.')],
    `Request the offboarding of ${node.name}`, async () => {
      const b = {force: force.checked};
      if (reason.value.trim()) b.reason = reason.value.trim();
      await api('POST', path + '/offboarding-requests', b);
      return done();
    }, true);
    if (!tc) {
      offForm.querySelectorAll('input, button').forEach((el) => { el.disabled = true; });
      offForm.insertBefore(h('p', {class: 'muted'}, 'Only the node\'s Technical Contact requests this.'),
        offForm.querySelector('.actions'));
    }
    const offboarding = h('section', {class: 'card', 'aria-labelledby': 'node-off'},
      h('h2', {id: 'node-off'}, 'Offboarding'),
      mine.length ? table(`Offboarding requests of ${node.name}`, ['Request', 'State', 'Reason', 'Requested', 'By'],
        mine.map((x) => [String(x.id), x.state + (x.forced ? ' (forced)' : ''), x.reason || '—', when(x.requested_at),
          x.requested_by || '—'])) : h('p', {class: 'muted'}, 'No offboarding requests.'),
      node.status === 'offboarded' || open || node.sandbox ? null : offForm);

    fill(ctx.main, h('p', {}, h('a', {href: '#/nodes'}, '← Nodes')), h('h1', {}, node.name),
      h('p', {class: 'muted'}, `${node.generation} · ${node.status}${node.sandbox ? ' (sandbox)' : ''} · ` +
        `${node.online ? 'online' : 'offline'} · last seen ${when(node.last_seen_at) || 'never'}`),
      table('Node', ['Technical Contact', 'App', 'Agent URL', 'Address', 'Router'], [[node.technical_contact || '—',
        node.app || '—', node.agent_url || '—', node.address || '—', node.router || '—']]),
      table('Environments', ['Environment', 'State', 'App'], (node.environments || []).map((e) =>
        [e.name, e.state, e.app || '—'])),
      tcForm, addrForm, cert, offboarding,
      activity.length === 0 ? h('p', {class: 'muted'}, 'Nothing happened yet.')
        : table('Activity, newest first', ['When', 'Who', 'What', 'Detail', 'App'],
          activity.map((a) => [when(a.at), a.user || 'the system', a.action, a.detail || '', a.app || '—'])));
  }

  await draw();
}
