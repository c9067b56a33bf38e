import { api } from '../api';
import { h } from '../dom';
import type { Me, RouteContext } from '../shell';
import { page } from '../shell';
import { ADMIN_ROLES, type AdminRole } from '../types';
import { badge, dl, errorLine, form, input, secretOnce, section, actionButton } from '../ui';
import { can } from './access';

type Enrolment = { otpauthUri: string; secret: string; qrCode: string };

/**
 * Enrolling a TOTP second factor: the secret is shown once (QR code, otpauth URI and the bare
 * secret for typing in), a first code confirms it, and the ten recovery codes are shown once.
 * The same card serves admins and portal users (`prefix`).
 */
export function enrolmentCard(
  onDone: () => void | Promise<void>,
  prefix: '/v1/admin' | '/v1/portal' = '/v1/admin',
): HTMLElement {
  const body = h('div', { class: 'enrolment' });
  const error = errorLine();
  const start = actionButton('Set up an authenticator app', error, async () => {
    const e = await api<Enrolment>('POST', `${prefix}/me/totp`);
    body.replaceChildren(
      h('p', {}, 'Scan this QR code with your authenticator app, or enter the secret by hand.'),
      h('img', { src: e.qrCode, alt: 'QR code of your authenticator secret', class: 'qr', width: '200' }),
      secretOnce('Authenticator secret', e.secret),
      confirm,
    );
    confirm.querySelector('input')?.focus();
  });
  const confirm = form(
    {
      submit: 'Confirm',
      class: 'form',
      label: 'Confirm the authenticator',
      action: async (v) => {
        const { recoveryCodes } = await api<{ recoveryCodes: string[] }>('POST', `${prefix}/me/totp/confirm`, {
          code: v.code ?? '',
        });
        const done = h('button', { type: 'button' }, 'I have saved them — continue');
        done.addEventListener('click', () => void onDone());
        body.replaceChildren(
          h('p', { class: 'flash' }, 'Your second factor is set up.'),
          secretOnce('Recovery codes (each works once, if you lose your device)', recoveryCodes.join('  ')),
          done,
        );
      },
    },
    input('Code from the app', {
      name: 'code',
      required: true,
      autocomplete: 'one-time-code',
      maxlength: 6,
      hint: 'Six digits.',
    }),
  );
  body.replaceChildren(start, error);
  return body;
}

/** Before anything else: an admin whose role requires a second factor and who has none enrols. */
export function enrolmentGate(me: Me, done: () => Promise<void>): HTMLElement | null {
  if (!me.totpRequired || me.totpEnrolled) return null;
  return h(
    'div',
    { class: 'card login' },
    h('h1', {}, 'Set up a second factor'),
    h('p', {}, `Your role (${me.role ?? 'admin'}) signs in with a code from an authenticator app as well.`),
    enrolmentCard(done),
  );
}

/** Your own second factor: its state, and the enrolment card until it is set up (admins and portal users). */
export async function ownFactorSection(
  ctx: RouteContext,
  prefix: '/v1/admin' | '/v1/portal',
  enrolledHint: string,
): Promise<HTMLElement> {
  const status = await api<{ enrolled: boolean; recoveryCodesLeft: number }>('GET', `${prefix}/me/totp`);
  return section(
    'Your second factor',
    dl([
      ['State', badge(status.enrolled ? 'enrolled' : 'not enrolled')],
      ['Recovery codes left', String(status.recoveryCodesLeft)],
    ]),
    status.enrolled ? h('p', { class: 'hint' }, enrolledHint) : enrolmentCard(() => ctx.refresh(), prefix),
  );
}

/** #/security: your second factor, and (owners) which roles must have one. */
export async function securityView(ctx: RouteContext): Promise<Node> {
  const own = await ownFactorSection(
    ctx,
    '/v1/admin',
    'Lost your device? An owner can reset your second factor; you then set it up again.',
  );
  const policy = await api<Record<AdminRole, boolean>>('GET', '/v1/admin/totp-policy');
  const owner = can(ctx.me, 'admins:write');
  const policyForm = form(
    {
      submit: 'Save',
      class: 'form',
      label: 'Roles that must use a second factor',
      action: async (v) => {
        await api('POST', '/v1/admin/totp-policy', Object.fromEntries(ADMIN_ROLES.map((r) => [r, v[r] === 'on'])));
        ctx.refresh();
      },
    },
    ...ADMIN_ROLES.map((r) =>
      h(
        'label',
        { class: 'check' },
        h('input', { type: 'checkbox', name: r, value: 'on', checked: policy[r], disabled: !owner }),
        ` ${r}`,
      ),
    ),
  );
  if (!owner) policyForm.querySelector('button')?.remove();
  return page(
    'Security',
    own,
    section(
      'Roles that must sign in with a second factor',
      h('p', { class: 'hint' }, 'An admin of such a role without one can only set it up until they do.'),
      policyForm,
    ),
  );
}
