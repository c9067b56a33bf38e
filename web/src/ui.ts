import { api, ApiError } from './api';
import { formValues, h, type Child } from './dom';

/** Shared pieces of the admin UI and the portal: error lines, forms, tables, badges, dates. */

export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    const details = err.details.map((d) => (d.path ? `${d.path}: ${d.message}` : d.message)).join('; ');
    return details ? `${err.message} (${details})` : err.message;
  }
  return err instanceof Error ? err.message : 'Something went wrong.';
}

/** The one line that says what the last call said when it failed. */
export function errorLine(): HTMLElement {
  return h('p', { class: 'error', role: 'alert', 'aria-live': 'assertive' });
}

export function showError(line: HTMLElement, err: unknown): void {
  line.textContent = describeError(err);
}

export function time(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function badge(value: string): HTMLElement {
  return h('span', { class: `badge badge-${value.replace(/[^a-z_-]/gi, '')}`, 'data-state': value }, value);
}

export function code(value: string): HTMLElement {
  return h('code', {}, value);
}

export function link(href: string, text: string, attrs: Record<string, string> = {}): HTMLElement {
  return h('a', { href, ...attrs }, text);
}

export type Column<T> = { label: string; cell: (row: T) => Child };

export function table<T>(columns: Array<Column<T>>, rows: T[], empty: string, caption?: string): HTMLElement {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  // A wide table scrolls inside its own box, which keyboard users can focus and scroll too.
  return h(
    'div',
    { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption ?? 'Table' },
    h(
      'table',
      {},
      caption ? h('caption', { class: 'sr-only' }, caption) : null,
      h('thead', {}, h('tr', {}, ...columns.map((c) => h('th', { scope: 'col' }, c.label)))),
      h('tbody', {}, ...rows.map((r) => h('tr', {}, ...columns.map((c) => h('td', {}, c.cell(r)))))),
    ),
  );
}

type FieldOpts = {
  name: string;
  type?: string;
  required?: boolean;
  value?: string;
  placeholder?: string;
  min?: number;
  max?: number;
  step?: string;
  autocomplete?: string;
  maxlength?: number;
  hint?: string;
};

let fieldCounter = 0;

/** A label tied to its control by id (so its accessible name is the label alone) and an optional hint. */
function field(label: string, control: HTMLElement, hint?: string): HTMLElement {
  fieldCounter += 1;
  const id = `f${fieldCounter}`;
  control.id = id;
  const help = hint ? h('small', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (help) control.setAttribute('aria-describedby', help.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, help);
}

export function input(label: string, o: FieldOpts): HTMLElement {
  const control = h('input', {
    name: o.name,
    type: o.type ?? 'text',
    required: o.required,
    value: o.value,
    placeholder: o.placeholder,
    min: o.min,
    max: o.max,
    step: o.step,
    autocomplete: o.autocomplete ?? 'off',
    maxlength: o.maxlength,
  });
  return field(label, control, o.hint);
}

export function select(
  label: string,
  name: string,
  options: Array<[value: string, text: string]>,
  selected = '',
): HTMLElement {
  return field(
    label,
    h('select', { name }, ...options.map(([v, t]) => h('option', { value: v, selected: v === selected }, t))),
  );
}

export function textarea(
  label: string,
  name: string,
  o: { rows?: number; placeholder?: string; hint?: string; value?: string } = {},
): HTMLElement {
  const t = h('textarea', { name, rows: o.rows ?? 3, placeholder: o.placeholder }) as HTMLTextAreaElement;
  if (o.value) t.value = o.value;
  return field(label, t, o.hint);
}

/**
 * A form whose submit runs `action` with the field values; the button is disabled while it runs
 * and a failure lands in the form's own error line with the API's message.
 */
export function form(
  o: {
    submit: string;
    action: (values: Record<string, string>, form: HTMLFormElement) => Promise<void>;
    class?: string;
    label?: string;
  },
  ...fields: Child[]
): HTMLFormElement {
  const error = errorLine();
  const button = h('button', { type: 'submit' }, o.submit) as HTMLButtonElement;
  const el = h(
    'form',
    { class: o.class ?? 'form', 'aria-label': o.label },
    ...fields,
    h('div', { class: 'form-actions' }, button),
    error,
  ) as HTMLFormElement;
  el.addEventListener('submit', (e) => {
    e.preventDefault();
    error.textContent = '';
    button.disabled = true;
    o.action(formValues(el), el).then(
      () => {
        button.disabled = false;
      },
      (err: unknown) => {
        button.disabled = false;
        showError(error, err);
      },
    );
  });
  return el;
}

/** A button that runs `action`; failures go to `error`. */
export function actionButton(
  text: string,
  error: HTMLElement,
  action: () => Promise<void>,
  attrs: Record<string, string> = {},
): HTMLButtonElement {
  const b = h('button', { type: 'button', ...attrs }, text) as HTMLButtonElement;
  b.addEventListener('click', () => {
    error.textContent = '';
    b.disabled = true;
    action().then(
      () => {
        b.disabled = false;
      },
      (err: unknown) => {
        b.disabled = false;
        showError(error, err);
      },
    );
  });
  return b;
}

/** A secret the API returns once (activation token, service token, one-time password). */
export function secretOnce(title: string, secret: string): HTMLElement {
  const value = h('code', { class: 'secret', 'data-testid': 'secret' }, secret);
  const status = h('span', { class: 'hint', 'aria-live': 'polite' });
  const copy = h('button', { type: 'button', class: 'secondary' }, 'Copy');
  copy.addEventListener('click', () => {
    navigator.clipboard?.writeText(secret).then(
      () => {
        status.textContent = 'Copied.';
      },
      () => {
        status.textContent = 'Copy it by hand.';
      },
    );
  });
  return h(
    'section',
    { class: 'notice', role: 'status', 'aria-label': title },
    h('strong', {}, title),
    h('p', {}, 'Shown only this once: it is not stored and cannot be shown again. Copy it now.'),
    h('div', { class: 'secret-row' }, value, copy, status),
  );
}

export function section(title: string, ...children: Child[]): HTMLElement {
  return h('section', { class: 'panel' }, h('h2', {}, title), ...children);
}

export function details(summary: string, ...children: Child[]): HTMLElement {
  return h('details', { class: 'panel' }, h('summary', {}, summary), ...children);
}

export function dl(pairs: Array<[string, Child]>): HTMLElement {
  return h('dl', { class: 'facts' }, ...pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export function featuresText(f: Record<string, boolean | number | string>): string {
  const entries = Object.entries(f);
  return entries.length ? entries.map(([k, v]) => (v === true ? k : `${k}=${String(v)}`)).join(', ') : '—';
}

/** `sso, seats=10, tier=gold` → { sso: true, seats: 10, tier: 'gold' }. */
export function parseFeatures(text: string): Record<string, boolean | number | string> {
  const out: Record<string, boolean | number | string> = {};
  for (const part of text
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq < 0) {
      out[part] = true;
      continue;
    }
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    out[k] = v === 'true' ? true : v === 'false' ? false : v !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
  }
  return out;
}

/** A `datetime-local` value → ISO 8601 in UTC, or undefined when empty. */
export function isoFromLocal(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString();
}

export function localInput(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/**
 * For a destructive action: the person types the object's name (or id) before the form submits,
 * so a slip of the mouse on the wrong row or page cannot do it.
 */
export function confirmByName(what: string, name: string, warning: string): HTMLElement {
  const field = input(`Type the ${what} to confirm: ${name}`, { name: 'confirm', required: true });
  const control = field.querySelector('input')!;
  // `pattern` is anchored by the browser; escape the name so it matches only itself.
  control.setAttribute('pattern', name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'));
  control.setAttribute('title', `Type ${name} exactly`);
  return h('div', { class: 'confirm' }, h('p', { class: 'hint' }, warning), field);
}

/**
 * A destructive action's form: it submits only once the object's name is typed in full, then
 * POSTs to `path` and calls `done`.
 */
export function confirmedAction(
  label: string,
  [what, name]: [what: string, name: string],
  warning: string,
  path: string,
  done: () => void,
): HTMLFormElement {
  return form(
    {
      submit: label,
      label,
      class: 'form danger',
      action: async () => {
        await api('POST', path);
        done();
      },
    },
    confirmByName(what, name, warning),
  );
}
