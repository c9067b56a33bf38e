import { h } from '../dom';
import type { Me } from '../shell';
import { ADMIN_ROLES, roleGrants, SERVICE_SCOPES, type AdminRole, type Permission } from '../types';

/**
 * What the signed-in admin's role allows, so pages hide what it cannot do (the API refuses it
 * regardless: the same table, protocol/enums.ts ROLE_PERMISSIONS, decides there).
 */
export function can(me: Me, permission: Permission): boolean {
  return (ADMIN_ROLES as readonly string[]).includes(me.role ?? '') && roleGrants(me.role as AdminRole, permission);
}

export const ROLE_TEXT: Record<AdminRole, string> = {
  owner: 'Owner — everything, including admins, service tokens, releases',
  operator: 'Operator — licenses, customers, agents, tasks',
  viewer: 'Viewer — read only, including the audit log',
};

/** One checkbox per scope a service token may hold (names `scope:<scope>`). */
export function scopeFields(): HTMLElement {
  return h(
    'fieldset',
    { class: 'field scopes' },
    h('legend', {}, 'Scopes (what the token may do)'),
    ...SERVICE_SCOPES.map((s) =>
      h('label', { class: 'check' }, h('input', { type: 'checkbox', name: `scope:${s}`, value: 'on' }), ` ${s}`),
    ),
  );
}

/** The scopes ticked in a form built with scopeFields(). */
export function scopesFrom(values: Record<string, string>): string[] {
  return SERVICE_SCOPES.filter((s) => values[`scope:${s}`] === 'on');
}
