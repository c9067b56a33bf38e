import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { licenseId, signedLicenseSchema } from '../../protocol';
import type { AppDeps } from '../app';
import { principalOf } from '../auth/access';
import { errorSchema } from '../schemas';

const idParams = z.strictObject({ id: licenseId });
const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 503: errorSchema };

/**
 * The license's current document, freshly signed with the license key (unbound: no agent id or
 * fingerprint). Read-only; it lets a person check a signature against
 * /.well-known/agentina-keys.json without trusting the page that shows it.
 */
export function licenseDocumentRoutes(deps: AppDeps): FastifyPluginAsyncZod {
  const service = deps.services.licenses;
  return async (app) => {
    app.get(
      '/v1/admin/licenses/:id/document',
      {
        schema: {
          tags: ['licenses'],
          summary: "A license's signed document",
          params: idParams,
          response: { 200: signedLicenseSchema, ...errors },
        },
        config: { access: ['admin', 'service'], permission: 'licenses:read' },
      },
      async (req, reply) => {
        void reply.header('cache-control', 'no-store');
        return service.signLicenseDocument(await service.getLicenseRow(req.params.id));
      },
    );

    app.get(
      '/v1/portal/licenses/:id/document',
      {
        schema: {
          tags: ['licenses'],
          summary: "One of your licenses' signed document",
          params: idParams,
          response: { 200: signedLicenseSchema, ...errors },
        },
        config: { access: ['customer'] },
      },
      async (req, reply) => {
        void reply.header('cache-control', 'no-store');
        return service.signLicenseDocument(
          await service.getLicenseRow(req.params.id, { customerId: principalOf(req, 'customer').customerId }),
        );
      },
    );
  };
}
