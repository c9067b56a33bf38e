import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { idSchema, isoTime, safeString, SERVICE_SCOPES } from '../../protocol';
import { principalOf } from '../auth/access';
import { errorSchema } from '../schemas';
import {
  adminRole,
  adminSchema,
  customerSchema,
  customerUserSchema,
  displayName,
  email,
  emptyBody,
  password,
  serviceAccountSchema,
} from './schemas';
import type { Services } from '../../services';

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema };
const security: Array<Record<string, string[]>> = [{ adminSession: [] }, { serviceToken: [] }];
const adminParams = z.object({ id: idSchema('adm') }).strict();
const customerParams = z.object({ id: idSchema('cus') }).strict();
const userParams = z.object({ id: idSchema('cus'), userId: idSchema('usr') }).strict();
const serviceAccountParams = z.object({ id: idSchema('svcacct') }).strict();
const newAccountBody = z.object({ email, displayName: displayName.optional(), password: password.optional() }).strict();
const newAdminBody = newAccountBody.extend({ role: adminRole.optional() }).strict();
const roleBody = z.object({ role: adminRole }).strict();
const nameBody = z.object({ name: safeString(200).trim().min(1) }).strict();
const serviceAccountBody = z
  .object({
    name: safeString(200).trim().min(1),
    scopes: z.array(z.enum(SERVICE_SCOPES)).min(1).max(SERVICE_SCOPES.length),
    expiresAt: isoTime.optional(),
  })
  .strict();
const unlockedSchema = z.object({ unlocked: z.boolean() });

/**
 * /v1/admin/admins, /v1/admin/customers (+ users) and /v1/admin/service-accounts.
 * Admins and service accounts are managed by admins only; customers and their users may also be
 * provisioned by service accounts (audited as `system`). Unlocking is an admin's decision.
 */
export function adminIdentityRoutes(services: Services['identity']): FastifyPluginAsyncZod {
  const s = services.accounts;
  return async (app) => {
    // --- admins
    app.get(
      '/v1/admin/admins',
      {
        schema: {
          tags: ['admins'],
          summary: 'List admins',
          security,
          response: { 200: z.object({ admins: z.array(adminSchema) }), ...errors },
        },
        config: { access: ['admin'], permission: 'admins:read' },
      },
      async () => ({ admins: await s.listAdmins() }),
    );

    app.post(
      '/v1/admin/admins',
      {
        schema: {
          tags: ['admins'],
          summary:
            'Create an admin (a viewer unless `role` says otherwise); without a password, a one-time password is returned once',
          security,
          body: newAdminBody,
          response: { 201: z.object({ admin: adminSchema, oneTimePassword: z.string().optional() }), ...errors },
        },
        config: { access: ['admin'], permission: 'admins:write' },
      },
      async (req, reply) => reply.status(201).send(await s.createAdmin(principalOf(req, 'admin'), req.body)),
    );

    for (const [action, active] of [
      ['deactivate', false],
      ['reactivate', true],
    ] as const) {
      app.post(
        `/v1/admin/admins/:id/${action}`,
        {
          schema: {
            tags: ['admins'],
            summary: `${action[0]!.toUpperCase()}${action.slice(1)} an admin${active ? '' : ' (ends all their sessions)'}`,
            security,
            params: adminParams,
            body: emptyBody,
            response: { 200: adminSchema, ...errors },
          },
          config: { access: ['admin'], permission: 'admins:write' },
        },
        async (req) => s.setAdminActive(principalOf(req, 'admin'), req.params.id, active),
      );
    }

    app.post(
      '/v1/admin/admins/:id/role',
      {
        schema: {
          tags: ['admins'],
          summary: 'Change an admin’s role (owner, operator, viewer); the last active owner cannot be demoted',
          security,
          params: adminParams,
          body: roleBody,
          response: { 200: adminSchema, ...errors },
        },
        config: { access: ['admin'], permission: 'admins:write' },
      },
      async (req) => s.setAdminRole(principalOf(req, 'admin'), req.params.id, req.body.role),
    );

    app.post(
      '/v1/admin/admins/:id/unlock',
      {
        schema: {
          tags: ['admins'],
          summary: 'End a lockout early',
          security,
          params: adminParams,
          body: emptyBody,
          response: { 200: unlockedSchema, ...errors },
        },
        config: { access: ['admin'], permission: 'admins:write' },
      },
      async (req) => s.unlockAdmin(principalOf(req, 'admin'), req.params.id),
    );

    // --- customers
    app.get(
      '/v1/admin/customers',
      {
        schema: {
          tags: ['customers'],
          summary: 'List customers',
          security,
          response: { 200: z.object({ customers: z.array(customerSchema) }), ...errors },
        },
        config: { access: ['admin', 'service'], permission: 'customers:read' },
      },
      async () => ({ customers: await s.listCustomers() }),
    );

    app.post(
      '/v1/admin/customers',
      {
        schema: {
          tags: ['customers'],
          summary: 'Create a customer',
          security,
          body: nameBody,
          response: { 201: customerSchema, ...errors },
        },
        config: { access: ['admin', 'service'], permission: 'customers:write' },
      },
      async (req, reply) =>
        reply.status(201).send(await s.createCustomer(principalOf(req, 'admin', 'service'), req.body)),
    );

    app.get(
      '/v1/admin/customers/:id',
      {
        schema: {
          tags: ['customers'],
          summary: 'One customer',
          security,
          params: customerParams,
          response: { 200: customerSchema, ...errors },
        },
        config: { access: ['admin', 'service'], permission: 'customers:read' },
      },
      async (req) => s.getCustomer(req.params.id),
    );

    app.post(
      '/v1/admin/customers/:id/deactivate',
      {
        schema: {
          tags: ['customers'],
          summary: 'Deactivate a customer (ends all its portal sessions)',
          security,
          params: customerParams,
          body: emptyBody,
          response: { 200: customerSchema, ...errors },
        },
        config: { access: ['admin', 'service'], permission: 'customers:write' },
      },
      async (req) => s.deactivateCustomer(principalOf(req, 'admin', 'service'), req.params.id),
    );

    // --- customer users
    app.get(
      '/v1/admin/customers/:id/users',
      {
        schema: {
          tags: ['customers'],
          summary: "List a customer's portal users",
          security,
          params: customerParams,
          response: { 200: z.object({ users: z.array(customerUserSchema) }), ...errors },
        },
        config: { access: ['admin', 'service'], permission: 'customers:read' },
      },
      async (req) => ({ users: await s.listCustomerUsers(req.params.id) }),
    );

    app.post(
      '/v1/admin/customers/:id/users',
      {
        schema: {
          tags: ['customers'],
          summary: 'Create a portal user; without a password, a one-time password is returned once',
          security,
          params: customerParams,
          body: newAccountBody,
          response: { 201: z.object({ user: customerUserSchema, oneTimePassword: z.string().optional() }), ...errors },
        },
        config: { access: ['admin', 'service'], permission: 'customers:write' },
      },
      async (req, reply) =>
        reply
          .status(201)
          .send(await s.createCustomerUser(principalOf(req, 'admin', 'service'), req.params.id, req.body)),
    );

    for (const [action, active] of [
      ['deactivate', false],
      ['reactivate', true],
    ] as const) {
      app.post(
        `/v1/admin/customers/:id/users/:userId/${action}`,
        {
          schema: {
            tags: ['customers'],
            summary: `${action[0]!.toUpperCase()}${action.slice(1)} a portal user${active ? '' : ' (ends all their sessions)'}`,
            security,
            params: userParams,
            body: emptyBody,
            response: { 200: customerUserSchema, ...errors },
          },
          config: { access: ['admin', 'service'], permission: 'customers:write' },
        },
        async (req) =>
          s.setCustomerUserActive(principalOf(req, 'admin', 'service'), req.params.id, req.params.userId, active),
      );
    }

    app.post(
      '/v1/admin/customers/:id/users/:userId/unlock',
      {
        schema: {
          tags: ['customers'],
          summary: "End a portal user's lockout early",
          security,
          params: userParams,
          body: emptyBody,
          response: { 200: unlockedSchema, ...errors },
        },
        config: { access: ['admin'], permission: 'customers:write' },
      },
      async (req) => s.unlockCustomerUser(principalOf(req, 'admin'), req.params.id, req.params.userId),
    );

    // --- service accounts
    app.get(
      '/v1/admin/service-accounts',
      {
        schema: {
          tags: ['service accounts'],
          summary: 'List service accounts',
          security,
          response: { 200: z.object({ serviceAccounts: z.array(serviceAccountSchema) }), ...errors },
        },
        config: { access: ['admin'], permission: 'admins:read' },
      },
      async () => ({ serviceAccounts: await s.listServiceAccounts() }),
    );

    app.post(
      '/v1/admin/service-accounts',
      {
        schema: {
          tags: ['service accounts'],
          summary:
            'Create a service account with its scopes and an optional expiry; its svc_ token is shown in this answer only',
          security,
          body: serviceAccountBody,
          response: { 201: z.object({ serviceAccount: serviceAccountSchema, token: z.string() }), ...errors },
        },
        config: { access: ['admin'], permission: 'admins:write' },
      },
      async (req, reply) => {
        void reply.header('cache-control', 'no-store');
        return reply.status(201).send(await s.createServiceAccount(principalOf(req, 'admin'), req.body));
      },
    );

    app.post(
      '/v1/admin/service-accounts/:id/revoke',
      {
        schema: {
          tags: ['service accounts'],
          summary: 'Revoke a service account; its token stops working at once',
          security,
          params: serviceAccountParams,
          body: emptyBody,
          response: { 200: serviceAccountSchema, ...errors },
        },
        config: { access: ['admin'], permission: 'admins:write' },
      },
      async (req) => s.revokeServiceAccount(principalOf(req, 'admin'), req.params.id),
    );
  };
}
