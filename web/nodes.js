// Nodes: the nodes you can see, and linking an app to one (its Technical
// Contact; the app's too). Linking another app unlinks the one there and
// wipes what it left in the node's environments: said before you confirm.
import {api, p} from './api.js';
import {h, fill, field, table, when} from './dom.js';

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
        list.map((n) => [h('strong', {}, n.name), n.generation, n.status + (n.sandbox ? ' (sandbox)' : ''),
          n.technical_contact || '—', n.app || '—', when(n.last_seen_at) || 'never', linkCell(n)])));
  }

  await draw();
}
