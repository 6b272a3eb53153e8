// Building the page: elements from tag, attributes and children. Data is
// only ever set as text (textContent, attribute values), never parsed as
// HTML, so a stored "<script>" shows as those characters.

// h('td', {class: 'x', 'data-label': 'State'}, 'text', child, [more])
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.className = v;
    } else if (k === 'for') {
      el.htmlFor = v;
    } else if (k === 'value') {
      el.value = v;
    } else if (v === true) {
      el.setAttribute(k, '');
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// Replace what el holds.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// On the form's submit: act() with the button disabled meanwhile; what
// it throws is shown in errorEl (where the action was).
export function onSubmit(form, button, errorEl, act) {
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    button.disabled = true;
    fill(errorEl);
    try {
      await act();
    } catch (err) {
      fill(errorEl, err.message);
    }
    button.disabled = false;
  });
}

// A form card that runs act() on submit: its fields, a button (danger:
// red), act()'s answer shown as a status, what it throws as an error.
export function actionForm(title, fields, label, act, danger) {
  const error = h('p', {class: 'error', role: 'alert'});
  const done = h('p', {class: 'status', role: 'status', 'aria-live': 'polite'});
  const button = h('button', {type: 'submit', class: danger ? 'danger' : null}, label);
  const id = `t-${label.toLowerCase().replace(/[^a-z]+/g, '-')}`;
  const f = h('form', {class: 'card', 'aria-labelledby': id},
    h('h2', {id}, title), fields, error, done, h('div', {class: 'actions'}, button));
  onSubmit(f, button, error, async () => {
    fill(done);
    fill(done, await act(f));
  });
  return f;
}

// A form that uploads one file: {form, file, bar, status, error, button};
// extra: more fields after the file's.
export function uploadForm(id, title, name, label, buttonLabel, extra) {
  const file = h('input', {type: 'file', name, accept: '.tar.gz,.tgz,.mda,application/gzip', required: true});
  const bar = h('progress', {max: 100, value: 0, hidden: true, 'aria-label': 'Upload progress'});
  const status = h('p', {class: 'status', role: 'status', 'aria-live': 'polite'});
  const error = h('p', {class: 'error', role: 'alert'});
  const button = h('button', {type: 'submit'}, buttonLabel);
  const form = h('form', {class: 'card', 'aria-labelledby': id},
    h('h2', {id}, title), field(label, file), extra, bar, status, error,
    h('div', {class: 'actions'}, button));
  return {form, file, bar, status, error, button};
}

let ids = 0;
// A labelled form field: {label, input} where input gets a fresh id.
export function field(label, input, extra) {
  input.id = input.id || `f${++ids}`;
  const inline = input.type === 'checkbox';
  return h('div', {class: inline ? 'field inline' : 'field'},
    inline ? [input, h('label', {for: input.id}, label)]
      : [h('label', {for: input.id}, label), input], extra);
}

// A table that stacks into cards below 600 px: columns [title…], rows of
// cells (each a node or text).
export function table(caption, columns, rows) {
  return h('div', {class: 'table-wrap'},
    h('table', {class: 'stack'},
      h('caption', {class: 'muted', style: null}, caption),
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', {scope: 'col'}, c)))),
      h('tbody', {}, rows.map((cells) => h('tr', {},
        cells.map((c, i) => h('td', {'data-label': columns[i]}, c)))))));
}

export function bytes(n) {
  if (n === null || n === undefined) return '';
  const u = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return `${i ? n.toFixed(1) : n} ${u[i]}`;
}

export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString();
}
