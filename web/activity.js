// An app's activity log, newest first: who did what, when, on which node.
import {api, p} from './api.js';
import {h, fill, table, when} from './dom.js';

export async function activityTab(ctx) {
  const {sub, body} = ctx;
  const {activity} = await api('GET', p`/apps/${sub}/activity` + '?limit=200');
  fill(body, activity.length === 0 ? h('p', {class: 'muted'}, 'Nothing happened yet.')
    : table('Activity, newest first', ['When', 'Who', 'What', 'Detail', 'Node'],
      activity.map((a) => [when(a.at), a.user || 'the system', a.action, a.detail || '', a.node || '—'])));
}
