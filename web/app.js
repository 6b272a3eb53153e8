// The portal's pages: a hash router (#/apps, #/apps/shop/environments, …)
// over plain ES modules, no build step (docs/ARCHITECTURE.md, Web portal).
// The apps pages load with this module; the others, and each app tab,
// when first shown.
import {api, prefetchPage, forgetPrefetched, setSession, maybeSignedIn, forget} from './api.js';
import {h, fill, field} from './dom.js';
import {appsPage} from './apps.js';
import {appPage} from './app-page.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let me = null;
let rendered = false;
let notice = null;   // said once on the sign-in page

async function whoami() {
  if (me || !maybeSignedIn()) return me;
  try {
    me = await api('GET', '/me');
    setSession(me.csrf_token);
  } catch {
    me = null;
  }
  return me;
}

function signedIn(user) {
  me = user;
  nav.hidden = false;
  document.getElementById('nav-admin').hidden = !user.is_admin;
  fill(document.getElementById('who'), user.email);
}

function signinPage(message) {
  forgetPrefetched();   // asked for with a session that is gone
  document.title = 'Sign in · nubo';
  nav.hidden = true;
  const email = h('input', {type: 'email', name: 'email', autocomplete: 'username', required: true});
  const password = h('input', {type: 'password', name: 'password', autocomplete: 'current-password', required: true});
  const error = h('p', {class: 'error', role: 'alert'}, message || '');
  const button = h('button', {type: 'submit'}, 'Sign in');
  const form = h('form', {class: 'card signin', 'aria-labelledby': 'signin-title'},
    h('h1', {id: 'signin-title'}, 'Sign in to nubo'),
    field('Email', email), field('Password', password), error,
    h('div', {class: 'actions'}, button));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    button.disabled = true;
    fill(error);
    try {
      const s = await api('POST', '/session', {email: email.value, password: password.value});
      setSession(s.csrf_token, s.expires_at);
      me = null;
      const user = await whoami();
      if (!user) throw new Error('signed in, but the session was not accepted');
      signedIn(user);
      if (location.hash === '#/apps') route(); else location.hash = '#/apps';
    } catch (err) {
      fill(error, err.message);
      button.disabled = false;
      password.value = '';
      password.focus();
    }
  });
  fill(main, form);
  email.focus();
}

async function signout() {
  try {
    await api('DELETE', '/session');
  } catch {
    // ended already: the page forgets it all the same
  }
  forget();
  me = null;
  notice = 'You are signed out.';
  if (location.hash === '#/signin') route(); else location.hash = '#/signin';
}

async function route() {
  // data-rendered: the hash this page was drawn for (tests wait for it)
  main.removeAttribute('data-rendered');
  const hash = location.hash.replace(/^#/, '') || '/apps';
  const parts = hash.split('/').filter(Boolean).map(decodeURIComponent);
  prefetchPage(location.hash, me === null);
  const user = await whoami();
  if (!user || parts[0] === 'signin') {
    if (user) { location.hash = '#/apps'; return; }
    signinPage(notice);
    notice = null;
    main.dataset.rendered = location.hash;
    return;
  }
  signedIn(user);
  const ctx = {main, me: user, navigate: (to) => { location.hash = to; }};
  try {
    if (parts[0] === 'apps' && parts.length === 1) await appsPage(ctx);
    else if (parts[0] === 'apps' && parts[1]) await appPage(ctx, parts[1], parts[2] || 'environments');
    else if (parts[0] === 'nodes' && parts.length === 1) await (await import('./nodes.js')).nodesPage(ctx);
    else if (parts[0] === 'nodes' && parts.length === 2) await (await import('./nodes.js')).nodePage(ctx, parts[1]);
    else if (parts[0] === 'keys' && parts.length === 1) await (await import('./keys.js')).keysPage(ctx);
    else if (parts[0] === 'admin' && parts.length === 1) await (await import('./admin.js')).adminPage(ctx);
    else fill(main, h('h1', {}, 'Not found'), h('p', {}, h('a', {href: '#/apps'}, 'Back to the apps')));
  } catch (err) {
    if (err.status === 401) {
      me = null;
      signinPage('Your session ended: sign in again.');
      main.dataset.rendered = location.hash;
      return;
    }
    fill(main, h('h1', {}, 'Something went wrong'), h('p', {class: 'error', role: 'alert'}, err.message));
  }
  forgetPrefetched();
  if (rendered) main.focus();
  rendered = true;
  main.dataset.rendered = location.hash;
}

document.getElementById('signout').addEventListener('click', signout);
window.addEventListener('hashchange', route);
route();
