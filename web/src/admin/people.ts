import { api } from '../api';
import { h } from '../dom';
import type { RouteContext } from '../shell';
import { page } from '../shell';
import { ADMIN_ROLES, type Admin, type Customer, type CustomerUser, type ServiceAccount } from '../types';
import { can, ROLE_TEXT, scopeFields, scopesFrom } from './access';
import {
  confirmedAction,
  actionButton,
  badge,
  code,
  confirmByName,
  details,
  dl,
  errorLine,
  form,
  input,
  isoFromLocal,
  link,
  secretOnce,
  section,
  select,
  showError,
  table,
  time,
} from '../ui';

function accountState(a: { active: boolean; locked: boolean; mustChangePassword: boolean }): HTMLElement {
  return h(
    'span',
    {},
    badge(a.active ? 'active' : 'deactivated'),
    a.locked ? badge('locked') : '',
    a.mustChangePassword ? badge('one-time password') : '',
  );
}

/** #/customers: list and create. */
export async function customersView(ctx: RouteContext): Promise<Node> {
  const { customers } = await api<{ customers: Customer[] }>('GET', '/v1/admin/customers');
  const create = form(
    {
      submit: 'Create customer',
      class: 'form inline',
      label: 'New customer',
      action: async (v) => {
        const c = await api<Customer>('POST', '/v1/admin/customers', { name: v.name });
        ctx.go(`#/customers/${c.id}`);
      },
    },
    input('Customer name', { name: 'name', required: true, maxlength: 200 }),
  );
  return page(
    'Customers',
    can(ctx.me, 'customers:write') ? create : '',
    table(
      [
        { label: 'Name', cell: (c: Customer) => link(`#/customers/${c.id}`, c.name) },
        { label: 'Id', cell: (c: Customer) => code(c.id) },
        { label: 'State', cell: (c: Customer) => badge(c.active ? 'active' : 'deactivated') },
        { label: 'Created', cell: (c: Customer) => time(c.createdAt) },
      ],
      customers,
      'No customers yet.',
      'Customers',
    ),
  );
}

const DEACTIVATE_WARNING = 'All its portal sessions end at once.';

/** #/customers/cus_…: the customer, its portal users, and a way to its licenses. */
export async function customerView(ctx: RouteContext): Promise<Node> {
  const id = ctx.params[0] ?? '';
  const base = `/v1/admin/customers/${encodeURIComponent(id)}`;
  const [customer, { users }] = await Promise.all([
    api<Customer>('GET', base),
    api<{ users: CustomerUser[] }>('GET', `${base}/users`),
  ]);
  const error = errorLine();
  const once = h('div');
  const userAction = (u: CustomerUser, action: string, text: string) =>
    actionButton(
      text,
      error,
      async () => {
        await api('POST', `${base}/users/${u.id}/${action}`);
        ctx.refresh();
      },
      { class: 'secondary small', 'aria-label': `${text} ${u.email}` },
    );

  const create = form(
    {
      submit: 'Create portal user',
      label: 'New portal user',
      action: async (v) => {
        const res = await api<{ user: CustomerUser; oneTimePassword?: string }>('POST', `${base}/users`, {
          email: v.email,
          ...(v.displayName ? { displayName: v.displayName } : {}),
          ...(v.password ? { password: v.password } : {}),
        });
        once.replaceChildren(
          res.oneTimePassword
            ? secretOnce(`One-time password for ${res.user.email}`, res.oneTimePassword)
            : h('p', { class: 'flash', role: 'status' }, `Created ${res.user.email}.`),
        );
        const { users: fresh } = await api<{ users: CustomerUser[] }>('GET', `${base}/users`);
        usersTable.replaceChildren(renderUsers(fresh));
      },
    },
    h(
      'div',
      { class: 'grid' },
      input('Email', { name: 'email', type: 'email', required: true, maxlength: 254 }),
      input('Display name', { name: 'displayName', maxlength: 200 }),
      input('Password', {
        name: 'password',
        type: 'password',
        autocomplete: 'new-password',
        hint: 'Leave empty to get a one-time password, to be changed at first sign-in.',
      }),
    ),
  );
  const renderUsers = (list: CustomerUser[]) =>
    table(
      [
        { label: 'Email', cell: (u: CustomerUser) => u.email },
        { label: 'Name', cell: (u: CustomerUser) => u.displayName || '—' },
        { label: 'State', cell: (u: CustomerUser) => accountState(u) },
        { label: 'Created', cell: (u: CustomerUser) => time(u.createdAt) },
        {
          label: '',
          cell: (u: CustomerUser) =>
            h(
              'span',
              { class: 'row-actions' },
              u.active ? userAction(u, 'deactivate', 'Deactivate') : userAction(u, 'reactivate', 'Reactivate'),
              u.locked ? userAction(u, 'unlock', 'Unlock') : '',
            ),
        },
      ],
      list,
      'No portal users yet.',
      'Portal users',
    );
  const usersTable = h('div', {}, renderUsers(users));
  // Destructive: the customer's name typed in full, so a slip on the wrong customer's page cannot do it.
  const deactivate = customer.active
    ? details(
        'Deactivate customer',
        confirmedAction(
          'Deactivate customer',
          ['customer name', customer.name],
          DEACTIVATE_WARNING,
          `${base}/deactivate`,
          () => ctx.refresh(),
        ),
      )
    : '';
  return page(
    customer.name,
    dl([
      ['Id', code(customer.id)],
      ['State', badge(customer.active ? 'active' : 'deactivated')],
      ['Created', time(customer.createdAt)],
      ['Licenses', link(`#/licenses?customerId=${customer.id}`, 'Show licenses')],
      ['Agents', link(`#/agents?customerId=${customer.id}`, 'Show agents')],
    ]),
    section('Portal users', once, usersTable, details('New portal user', create)),
    error,
    deactivate,
  );
}

/** #/service-accounts: list, create (token shown once), revoke. */
export async function serviceAccountsView(ctx: RouteContext): Promise<Node> {
  const { serviceAccounts } = await api<{ serviceAccounts: ServiceAccount[] }>('GET', '/v1/admin/service-accounts');
  const owner = can(ctx.me, 'admins:write');
  const once = h('div');
  const error = errorLine();
  const list = h('div');
  const render = (items: ServiceAccount[]) =>
    list.replaceChildren(
      table(
        [
          { label: 'Name', cell: (s: ServiceAccount) => s.name },
          { label: 'Token ends in', cell: (s: ServiceAccount) => code(`…${s.tokenHint}`) },
          { label: 'Scopes', cell: (s: ServiceAccount) => s.scopes.join(', ') },
          { label: 'Expires', cell: (s: ServiceAccount) => (s.expiresAt ? time(s.expiresAt) : 'never') },
          {
            label: 'State',
            cell: (s: ServiceAccount) =>
              badge(
                s.revokedAt ? 'revoked' : s.expiresAt && Date.parse(s.expiresAt) <= Date.now() ? 'expired' : 'active',
              ),
          },
          { label: 'Last used', cell: (s: ServiceAccount) => time(s.lastUsedAt) },
          { label: 'Created', cell: (s: ServiceAccount) => `${time(s.createdAt)} by ${s.createdBy}` },
          {
            label: '',
            cell: (s: ServiceAccount) =>
              s.revokedAt || !owner
                ? ''
                : actionButton(
                    'Revoke',
                    error,
                    async () => {
                      await api('POST', `/v1/admin/service-accounts/${s.id}/revoke`);
                      ctx.refresh();
                    },
                    { class: 'secondary small', 'aria-label': `Revoke ${s.name}` },
                  ),
          },
        ],
        items,
        'No service accounts.',
        'Service accounts',
      ),
    );
  render(serviceAccounts);
  const create = form(
    {
      submit: 'Create service account',
      class: 'form inline',
      label: 'New service account',
      action: async (v) => {
        const expiresAt = isoFromLocal(v.expiresAt);
        const res = await api<{ serviceAccount: ServiceAccount; token: string }>('POST', '/v1/admin/service-accounts', {
          name: v.name,
          scopes: scopesFrom(v),
          ...(expiresAt ? { expiresAt } : {}),
        });
        once.replaceChildren(secretOnce(`Token for ${res.serviceAccount.name}`, res.token));
        render((await api<{ serviceAccounts: ServiceAccount[] }>('GET', '/v1/admin/service-accounts')).serviceAccounts);
      },
    },
    input('Name', { name: 'name', required: true, maxlength: 200 }),
    input('Expires', {
      name: 'expiresAt',
      type: 'datetime-local',
      hint: 'Leave empty for a token that does not expire.',
    }),
    scopeFields(),
  );
  return page(
    'Service accounts',
    h(
      'p',
      { class: 'hint' },
      'Scripts call the API with Authorization: Bearer svc_…; their actions are audited as system. A token may do what its scopes name and nothing else.',
    ),
    once,
    owner ? create : '',
    list,
    error,
  );
}

/** #/admins: list, create (one-time password shown once), roles, deactivate, reactivate, unlock, reset 2FA. */
export async function adminsView(ctx: RouteContext): Promise<Node> {
  const { admins } = await api<{ admins: Admin[] }>('GET', '/v1/admin/admins');
  const owner = can(ctx.me, 'admins:write');
  const once = h('div');
  const error = errorLine();
  const act = (a: Admin, action: string, text: string) =>
    actionButton(
      text,
      error,
      async () => {
        await api('POST', `/v1/admin/admins/${a.id}/${action}`);
        ctx.refresh();
      },
      { class: 'secondary small', 'aria-label': `${text} ${a.email}` },
    );
  /** Deactivating wants the admin's email typed in full, so a slip onto the wrong row does nothing. */
  const deactivateAdmin = (a: Admin) =>
    details(
      'Deactivate…',
      form(
        {
          submit: 'Deactivate',
          label: `Deactivate ${a.email}`,
          class: 'form danger',
          action: async () => {
            await api('POST', `/v1/admin/admins/${a.id}/deactivate`);
            ctx.refresh();
          },
        },
        confirmByName('email', a.email, 'Every session of this admin ends at once; they can no longer sign in.'),
      ),
    );
  const create = form(
    {
      submit: 'Create admin',
      class: 'form inline',
      label: 'New admin',
      action: async (v) => {
        const res = await api<{ admin: Admin; oneTimePassword?: string }>('POST', '/v1/admin/admins', {
          email: v.email,
          role: v.role,
          ...(v.displayName ? { displayName: v.displayName } : {}),
        });
        once.replaceChildren(
          res.oneTimePassword
            ? secretOnce(`One-time password for ${res.admin.email}`, res.oneTimePassword)
            : h('p', { class: 'flash' }, `Created ${res.admin.email}.`),
        );
      },
    },
    input('Email', { name: 'email', type: 'email', required: true, maxlength: 254 }),
    input('Display name', { name: 'displayName', maxlength: 200 }),
    select(
      'Role',
      'role',
      ADMIN_ROLES.map((r) => [r, ROLE_TEXT[r]]),
      'viewer',
    ),
  );
  /** An owner's role picker for another admin; the API keeps the last owner an owner. */
  const roleCell = (a: Admin) => {
    if (!owner || a.id === ctx.me.id) return badge(a.role);
    const picker = h(
      'select',
      { 'aria-label': `Role of ${a.email}` },
      ...ADMIN_ROLES.map((r) => h('option', { value: r, selected: r === a.role }, r)),
    ) as HTMLSelectElement;
    picker.addEventListener('change', () => {
      error.textContent = '';
      api('POST', `/v1/admin/admins/${a.id}/role`, { role: picker.value }).then(
        () => ctx.refresh(),
        (err: unknown) => {
          picker.value = a.role;
          showError(error, err);
        },
      );
    });
    return picker;
  };
  return page(
    'Admins',
    once,
    owner ? create : '',
    table(
      [
        {
          label: 'Email',
          cell: (a: Admin) => (a.id === ctx.me.id ? h('span', {}, a.email, ' ', h('small', {}, '(you)')) : a.email),
        },
        { label: 'Name', cell: (a: Admin) => a.displayName || '—' },
        { label: 'Role', cell: roleCell },
        { label: 'Second factor', cell: (a: Admin) => (a.totpEnrolled ? badge('enrolled') : '—') },
        { label: 'State', cell: (a: Admin) => accountState(a) },
        { label: 'Locked until', cell: (a: Admin) => time(a.lockedUntil) },
        { label: 'Created', cell: (a: Admin) => time(a.createdAt) },
        {
          label: '',
          cell: (a: Admin) =>
            a.id === ctx.me.id || !owner
              ? ''
              : h(
                  'span',
                  { class: 'row-actions' },
                  a.active ? deactivateAdmin(a) : act(a, 'reactivate', 'Reactivate'),
                  a.locked ? act(a, 'unlock', 'Unlock') : '',
                  a.totpEnrolled ? act(a, 'totp/reset', 'Reset second factor') : '',
                ),
        },
      ],
      admins,
      'No admins.',
      'Admins',
    ),
    error,
  );
}
