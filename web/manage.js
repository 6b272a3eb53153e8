// Managing an app: rename (manage), hand the Technical Contact role on,
// remove the sandbox, delete (the Technical Contact; the name typed to
// confirm). Each form shows the server's refusal where it is.
import {api, p} from './api.js';
import {h, fill, field, actionForm as form} from './dom.js';

export async function manageTab(ctx) {
  const {app, sub, can, isTC, body} = ctx;
  const parts = [];
  if (can('manage')) {
    const name = h('input', {type: 'text', name: 'name', value: app.name, required: true, autocomplete: 'off'});
    parts.push(form('Rename', field('Display name (the subdomain never changes)', name), 'Rename',
      async () => {
        const out = await api('PATCH', p`/apps/${sub}`, {name: name.value});
        setTimeout(() => ctx.reload(), 800);
        return `Renamed to ${out.name}`;
      }));
  }
  if (isTC) {
    const email = h('input', {type: 'email', name: 'email', required: true, autocomplete: 'off'});
    parts.push(form('Technical Contact', [
      h('p', {}, `${app.technical_contact} is the Technical Contact. Hand the role to another user:`),
      field('Email of the new Technical Contact', email)], 'Transfer',
    async () => {
      await api('POST', p`/apps/${sub}/technical-contact`, {email: email.value});
      setTimeout(() => ctx.reload(), 800);
      return `${email.value} is the Technical Contact now`;
    }));
    if (app.sandbox) {
      const sure = h('input', {type: 'checkbox', name: 'confirm_unlink', required: true});
      parts.push(form('Sandbox', [
        h('p', {}, 'Removing the sandbox deletes its environment and all its data.'),
        field('I understand the sandbox\'s data is deleted', sure)], 'Remove the sandbox',
      async () => {
        await api('POST', p`/apps/${sub}/unlink-sandbox`, {confirm: sure.checked});
        setTimeout(() => ctx.reload(), 800);
        return 'The sandbox is removed';
      }, true));
    }
    const typed = h('input', {type: 'text', name: 'confirm_delete', required: true, autocomplete: 'off'});
    parts.push(form('Delete the app', [
      h('p', {}, 'Deleting the app removes it, its members and its history. ',
        'An app linked to a node cannot be deleted: link another app there first.'),
      field(`Type ${app.subdomain} to confirm`, typed)], 'Delete the app',
    async () => {
      if (typed.value !== app.subdomain) throw new Error(`type ${app.subdomain} exactly to delete it`);
      await api('DELETE', p`/apps/${sub}`);
      ctx.navigate('#/apps');
      return 'Deleted';
    }, true));
  }
  fill(body, parts.length ? parts
    : h('p', {class: 'muted'}, 'Managing the app is for its Technical Contact and members with the manage permission.'));
}
