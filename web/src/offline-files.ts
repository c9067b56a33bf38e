import { api } from './api';
import { h } from './dom';
import { form, input, section, textarea } from './ui';

/**
 * Air-gapped sites in the admin UI and the portal: an agent's request file (pasted or uploaded)
 * and its activation token become a response file to download; an admin issues a status file for
 * one agent. Nothing is kept in the page after the download link is made.
 */

/** A link that downloads `value` as a JSON file (made in the browser; nothing is stored). */
function downloadLink(fileName: string, value: unknown, text: string): HTMLElement {
  const blob = new Blob([`${JSON.stringify(value, null, 2)}\n`], { type: 'application/json' });
  return h(
    'p',
    { class: 'notice', role: 'status' },
    h('a', { href: URL.createObjectURL(blob), download: fileName, 'data-testid': 'download' }, text),
  );
}

export type OfflineScope = 'admin' | 'portal';

/** The request → response form (activation tokens page). */
export function offlineActivationSection(scope: OfflineScope): HTMLElement {
  const result = h('div');
  const requestField = textarea('Request file (agentina-agent activate --offline-request)', 'request', {
    rows: 6,
    placeholder: '{ "format": "agentina.offline-activation-request/v1", … }',
    hint: 'Paste its content, or choose the file below.',
  });
  const upload = h('input', { type: 'file', accept: '.json,application/json', 'aria-label': 'Request file to upload' });
  upload.addEventListener('change', () => {
    const file = (upload as HTMLInputElement).files?.[0];
    if (!file) return;
    void file.text().then((text) => {
      requestField.querySelector('textarea')!.value = text;
    });
  });
  const submit = form(
    {
      submit: 'Make response file',
      label: 'Offline activation',
      action: async (v, el) => {
        let request: unknown;
        try {
          request = JSON.parse(v.request ?? '');
        } catch {
          throw new Error('The request is not JSON: paste the whole file the agent wrote.');
        }
        const response = await api<{ activation: { agentId: string } }>(
          'POST',
          `/v1/${scope}/activation-tokens/offline-response`,
          { request, token: (v.token ?? '').trim() },
        );
        // The token is spent: clear it from the page at once.
        el.reset();
        result.replaceChildren(
          downloadLink(
            `agentina-offline-response-${response.activation.agentId}.json`,
            response,
            `Download the response for agent ${response.activation.agentId}`,
          ),
          h(
            'p',
            { class: 'hint' },
            'Carry it to the machine and run agentina-agent activate --offline-response FILE there. It completes the activation of that machine only.',
          ),
        );
      },
    },
    requestField,
    h('div', { class: 'field' }, upload),
    input('Activation token (spent by this)', {
      name: 'token',
      type: 'password',
      required: true,
      placeholder: 'act_…',
      maxlength: 80,
    }),
  );
  return section(
    'Offline activation (air-gapped machine)',
    h(
      'p',
      { class: 'hint' },
      'For a machine that cannot reach this control plane: its request names the token by id; the token itself is entered only here.',
    ),
    submit,
    result,
  );
}

/** The status-file form of an agent's page (admins). */
export function statusFileForm(agentId: string): HTMLElement {
  const result = h('div');
  return h(
    'div',
    {},
    form(
      {
        submit: 'Issue status file',
        label: 'Status file',
        action: async (v) => {
          const file = await api<{ validUntil: string }>(
            'POST',
            `/v1/admin/agents/${encodeURIComponent(agentId)}/status-file`,
            { validForDays: Number(v.days) },
          );
          result.replaceChildren(
            downloadLink(
              `agentina-status-${agentId}.json`,
              file,
              `Download the status file (valid until ${file.validUntil})`,
            ),
            h('p', { class: 'hint' }, 'On the machine: agentina-agent status --import FILE (as the agent’s user).'),
          );
        },
      },
      input('Status file valid for (days, air-gapped sites)', {
        name: 'days',
        type: 'number',
        value: '30',
        min: 1,
        max: 365,
        required: true,
      }),
    ),
    result,
  );
}
