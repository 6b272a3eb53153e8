// The environments of an app on which the user holds a permission, as a
// labelled <select>; or null after saying in body why there are none.
import {api, p} from './api.js';
import {h, fill} from './dom.js';

export async function envPicker(ctx, perm, what) {
  const {sub, can, body} = ctx;
  const {environments} = await api('GET', p`/apps/${sub}/environments`);
  const envs = environments.filter((e) => can(perm, e.name));
  if (envs.length === 0) {
    fill(body, h('p', {class: 'muted'}, environments.length
      ? `${what} are for members with the ${perm} permission.`
      : 'This app has no environments yet.'));
    return null;
  }
  return h('select', {name: 'environment'}, envs.map((e) => h('option', {value: e.name}, e.name)));
}
