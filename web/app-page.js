// One app: its tabs (Environments, Settings, … Logs, Run, …) and what the
// signed-in user may do there. The server decides every call anyway; the
// page only leaves out what would be refused.
import {api, p} from './api.js';
import {h, fill} from './dom.js';
import {kindOf} from './apps.js';
// The first tab comes with the page; each other tab's module is loaded
// when the tab is first shown (from the browser's cache after that: its
// URL is versioned and immutable).
import {envsTab} from './envs.js';
const TABS = [
  ['environments', 'Environments', () => envsTab],
  ['settings', 'Settings', () => import('./settings.js').then((m) => m.settingsTab)],
  ['packages', 'Packages', () => import('./packages.js').then((m) => m.packagesTab)],
  ['backups', 'Backups', () => import('./backups.js').then((m) => m.backupsTab)],
  ['logs', 'Logs', () => import('./logs.js').then((m) => m.logsTab)],
  ['run', 'Run', () => import('./runs.js').then((m) => m.runsTab)],
  ['team', 'Team', () => import('./team.js').then((m) => m.teamTab)],
  ['migration', 'Migration', () => import('./migration.js').then((m) => m.migrationTab)],
  ['activity', 'Activity', () => import('./activity.js').then((m) => m.activityTab)],
  ['manage', 'Manage', () => import('./manage.js').then((m) => m.manageTab)],
];

// can(perm, env): the permission on env (or on some environment).
function permissions(me, app, members) {
  const mine = members.find((m) => m.email === me.email);
  const all = me.is_admin || (mine && mine.technical_contact) ||
    app.technical_contact === me.email;
  const perms = (mine && mine.permissions) || {};
  return (perm, env) => {
    if (all) return true;
    const envs = perms[perm] || [];
    if (env === undefined) return envs.length > 0;
    return envs.includes('*') || envs.some((e) => e.toLowerCase() === env.toLowerCase());
  };
}

export async function appPage(ctx, sub, tab) {
  const current = TABS.find((t) => t[0] === tab) || TABS[0];
  const [app, {members}, show] = await Promise.all([
    api('GET', p`/apps/${sub}`), api('GET', p`/apps/${sub}/members`), current[2]()]);
  const can = permissions(ctx.me, app, members);
  document.title = `${current[1]} · ${app.name} · nubo`;
  const body = h('div', {});
  fill(ctx.main,
    h('p', {}, h('a', {href: '#/apps'}, '← Apps')),
    h('h1', {}, app.name),
    h('p', {class: 'muted'},
      `${app.subdomain} · ${kindOf(app)} · node ${app.node || 'none'} · Technical Contact ${app.technical_contact}`),
    h('nav', {class: 'tabs', 'aria-label': 'App'}, TABS.map(([id, label]) =>
      h('a', {href: `#/apps/${encodeURIComponent(sub)}/${id}`,
        'aria-current': id === current[0] ? 'page' : null}, label))),
    body);
  const isTC = ctx.me.is_admin || app.technical_contact === ctx.me.email;
  const reload = () => appPage(ctx, sub, tab).then(() => {
    ctx.main.dataset.rendered = location.hash;
  });
  await show({...ctx, app, can, isTC, body, sub, reload});
}
