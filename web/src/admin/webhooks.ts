import { WEBHOOK_EVENTS } from '../../../protocol/audit-actions';
import type { WebhookAttemptView, WebhookDeliveryView, WebhookEndpointView } from '../../../protocol/webhooks';
import { api, withQuery } from '../api';
import { h } from '../dom';
import type { RouteContext } from '../shell';
import { page } from '../shell';
import {
  actionButton,
  badge,
  code,
  dl,
  errorLine,
  form,
  input,
  link,
  secretOnce,
  section,
  table,
  textarea,
  time,
} from '../ui';

const DEFAULT_EVENTS = ['license.revoked', 'license.expired', 'license.expiring_soon', 'agent.quarantined'];

/** Events typed one a line (or separated by commas), as the API names them. */
const eventList = (text: string): string[] =>
  text
    .split(/[\s,]+/)
    .map((e) => e.trim())
    .filter(Boolean);

const stateOf = (e: WebhookEndpointView): HTMLElement =>
  badge(e.enabled ? 'enabled' : e.disabledReason === 'persistent delivery failure' ? 'failing: disabled' : 'disabled');

/** #/webhooks: endpoints, a notice for those disabled after failing, and a form to add one. */
export async function webhooksView(_ctx: RouteContext): Promise<Node> {
  const { items } = await api<{ items: WebhookEndpointView[] }>('GET', '/v1/admin/webhooks');
  const once = h('div');
  const failing = items.filter((e) => !e.enabled && e.disabledReason === 'persistent delivery failure');
  const create = form(
    {
      submit: 'Add endpoint',
      label: 'New webhook endpoint',
      action: async (v) => {
        const res = await api<{ endpoint: WebhookEndpointView; secret: string }>('POST', '/v1/admin/webhooks', {
          url: v.url,
          description: v.description,
          events: eventList(v.events ?? ''),
        });
        once.replaceChildren(
          secretOnce(`Signing secret for ${res.endpoint.url}`, res.secret),
          h('p', {}, link(`#/webhooks/${res.endpoint.id}`, 'Open the endpoint')),
        );
      },
    },
    input('URL', { name: 'url', required: true, maxlength: 2000, placeholder: 'https://billing.example.com/hooks' }),
    input('Description', { name: 'description', maxlength: 500 }),
    textarea('Events', 'events', {
      rows: 4,
      value: DEFAULT_EVENTS.join('\n'),
      hint: `One a line. Available: ${WEBHOOK_EVENTS.join(', ')}.`,
    }),
  );
  return page(
    'Webhooks',
    failing.length
      ? h(
          'section',
          { class: 'notice bad', role: 'alert', 'data-testid': 'webhooks-failing' },
          h('strong', {}, `${failing.length} endpoint(s) disabled after failing for 3 days: `),
          ...failing.map((e) => link(`#/webhooks/${e.id}`, e.url)),
        )
      : '',
    h(
      'p',
      { class: 'hint' },
      'Deliveries are signed per the Standard Webhooks specification (webhook-id, webhook-timestamp, webhook-signature) and retried for up to 3 days.',
    ),
    once,
    table(
      [
        { label: 'URL', cell: (e: WebhookEndpointView) => link(`#/webhooks/${e.id}`, e.url) },
        { label: 'Description', cell: (e: WebhookEndpointView) => e.description },
        { label: 'Events', cell: (e: WebhookEndpointView) => String(e.events.length) },
        { label: 'State', cell: stateOf },
        { label: 'Failed tries in a row', cell: (e: WebhookEndpointView) => String(e.consecutiveFailures) },
        { label: 'Created', cell: (e: WebhookEndpointView) => time(e.createdAt) },
      ],
      items,
      'No webhook endpoints.',
      'Webhook endpoints',
    ),
    section('Add an endpoint', create),
  );
}

function attemptLine(a: WebhookAttemptView): HTMLElement {
  return h(
    'li',
    { class: a.ok ? 'ok' : 'bad' },
    `#${a.attempt} ${time(a.startedAt)} — ${a.statusCode ?? 'no answer'} in ${a.latencyMs} ms`,
    a.error ? ` (${a.error})` : '',
    a.responseExcerpt ? h('code', { class: 'clip', title: a.responseExcerpt }, a.responseExcerpt) : '',
  );
}

/** #/webhooks/<id>: the endpoint, enable/disable, secret rotation, and the delivery attempt log. */
export async function webhookView(ctx: RouteContext): Promise<Node> {
  const id = ctx.params[0]!;
  const e = await api<WebhookEndpointView>('GET', `/v1/admin/webhooks/${id}`);
  const error = errorLine();
  const once = h('div');
  const list = h('div');
  const rows: WebhookDeliveryView[] = [];
  async function loadPage(cursor?: string): Promise<void> {
    const res = await api<{ items: WebhookDeliveryView[]; nextCursor: string | null }>(
      'GET',
      withQuery(`/v1/admin/webhooks/${id}/deliveries`, { cursor, limit: 50 }),
    );
    rows.push(...res.items);
    const next = res.nextCursor;
    list.replaceChildren(
      table(
        [
          { label: 'Event', cell: (d: WebhookDeliveryView) => h('span', {}, code(d.type), ' ', code(d.eventId)) },
          { label: 'State', cell: (d: WebhookDeliveryView) => badge(d.state) },
          {
            label: 'Attempts',
            cell: (d: WebhookDeliveryView) => h('ol', { class: 'attempts' }, ...d.attempts.map(attemptLine)),
          },
          { label: 'Created', cell: (d: WebhookDeliveryView) => time(d.createdAt) },
          {
            label: '',
            cell: (d: WebhookDeliveryView) =>
              d.state === 'succeeded' || d.state === 'failed'
                ? actionButton(
                    'Redeliver',
                    error,
                    async () => {
                      await api('POST', `/v1/admin/webhooks/${id}/deliveries/${d.eventId}/redeliver`, {});
                      ctx.refresh();
                    },
                    { class: 'secondary small', 'aria-label': `Redeliver ${d.eventId}` },
                  )
                : '',
          },
        ],
        rows,
        'No deliveries yet.',
        'Deliveries, newest event first',
      ),
      next ? actionButton('Older deliveries', error, () => loadPage(next), { class: 'secondary' }) : '',
    );
  }
  await loadPage();

  const toggle = actionButton(e.enabled ? 'Disable' : 'Enable', error, async () => {
    await api('PATCH', `/v1/admin/webhooks/${id}`, { enabled: !e.enabled });
    ctx.refresh();
  });
  const rotate = actionButton(
    'Rotate secret',
    error,
    async () => {
      const res = await api<{ secret: string }>('POST', `/v1/admin/webhooks/${id}/rotate-secret`, {
        overlapSeconds: 86400,
      });
      once.replaceChildren(secretOnce('New signing secret (the old one also signs for 24 hours)', res.secret));
    },
    { class: 'secondary' },
  );
  return page(
    'Webhook endpoint',
    once,
    dl([
      ['URL', code(e.url)],
      ['Description', e.description],
      ['State', h('span', {}, stateOf(e), e.disabledReason ? ` ${e.disabledReason}` : '')],
      ['Events', e.events.join(', ')],
      ['Previous secret signs until', e.previousSecretExpiresAt ? time(e.previousSecretExpiresAt) : '—'],
      ['Failed tries in a row', String(e.consecutiveFailures)],
    ]),
    h('div', { class: 'form-actions' }, toggle, rotate),
    error,
    section('Deliveries', list),
  );
}
