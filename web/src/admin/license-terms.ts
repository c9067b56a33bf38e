import { api } from '../api';
import { h } from '../dom';
import type { License } from '../types';
import { canonicalJson } from '../../../protocol/canonical-json';
import { form, input, parseFeatures } from '../ui';

type Terms = Pick<License, 'plan' | 'features' | 'maxAgents' | 'graceDays'>;

/** The fields of `next` that differ from the license's terms: what the PATCH sends. */
export function changedTerms(l: Terms, next: Terms): Partial<Terms> {
  const out: Partial<Terms> = {};
  if (next.plan !== l.plan) out.plan = next.plan;
  if (canonicalJson(next.features) !== canonicalJson(l.features)) out.features = next.features;
  if (next.maxAgents !== l.maxAgents) out.maxAgents = next.maxAgents;
  if (next.graceDays !== l.graceDays) out.graceDays = next.graceDays;
  return out;
}

export function featuresInput(f: License['features']): string {
  return Object.entries(f)
    .map(([k, v]) => (v === true ? k : `${k}=${String(v)}`))
    .join(', ');
}

/** The "Change terms" form of the license page: prefilled, sends only what changed. */
export function changeTermsForm(l: License, done: (flash: string) => Promise<void>): HTMLFormElement {
  return form(
    {
      submit: 'Change terms',
      label: 'Change terms',
      action: async (v) => {
        const body = changedTerms(l, {
          plan: (v.plan ?? '').trim(),
          features: parseFeatures(v.features ?? ''),
          maxAgents: Number(v.maxAgents),
          graceDays: Number(v.graceDays),
        });
        if (!Object.keys(body).length) throw new Error('Nothing to change: these are the terms the license has.');
        await api('PATCH', `/v1/admin/licenses/${encodeURIComponent(l.id)}`, body);
        await done(`Terms changed (${Object.keys(body).join(', ')}).`);
      },
    },
    input('Plan', { name: 'plan', required: true, value: l.plan, maxlength: 100 }),
    input('Features', {
      name: 'features',
      value: featuresInput(l.features),
      hint: 'Comma-separated; name or name=value. Replaces the whole list.',
    }),
    input('Max agents', {
      name: 'maxAgents',
      type: 'number',
      required: true,
      value: String(l.maxAgents),
      min: 1,
      max: 100000,
    }),
    input('Grace days', {
      name: 'graceDays',
      type: 'number',
      required: true,
      value: String(l.graceDays),
      min: 0,
      max: 365,
    }),
    h('p', { class: 'hint' }, 'The version rises and every agent of the license receives the re-signed document.'),
  );
}
