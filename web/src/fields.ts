import { h, type Child } from './dom';
import { code, time } from './ui';

/** Free-shaped JSON (audit data, task payloads and results) as labelled fields people can read. */

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

/** Longer strings are cut at a word's end here; the JSON disclosure keeps every character. */
const SHOWN_CHARS = 240;

function text(s: string): Child {
  if (s.length <= SHOWN_CHARS) return s;
  return h('span', { title: `${s.length} characters; the whole text is in the JSON` }, `${s.slice(0, SHOWN_CHARS)}…`);
}

function value(v: unknown): Child {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'string') return ISO.test(v) ? time(v) : text(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v) && v.every((x) => typeof x !== 'object' || x === null)) return v.join(', ') || '—';
  return code(JSON.stringify(v));
}

/** `changedComponents` → "changed components". */
export function label(key: string): string {
  return key
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .replace(/_/g, ' ')
    .toLowerCase();
}

/** Data as labelled fields, and the exact JSON behind them in a disclosure. */
export function dataCell(data: Record<string, unknown>): Child {
  const entries = Object.entries(data);
  if (entries.length === 0) return '—';
  return h(
    'div',
    { class: 'data' },
    h('dl', { class: 'kv' }, ...entries.flatMap(([k, v]) => [h('dt', {}, label(k)), h('dd', {}, value(v))])),
    h('details', {}, h('summary', {}, 'JSON'), h('pre', { class: 'doc' }, JSON.stringify(data, null, 2))),
  );
}

/** Any JSON value: an object as fields, a string as text, anything else as compact JSON. */
export function jsonCell(v: unknown): Child {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) return dataCell(v as Record<string, unknown>);
  return value(v);
}
