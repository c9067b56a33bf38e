import { existsSync } from 'node:fs';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { keyFilePaths, licenseId, signedLicenseSchema, type SignedLicense } from '../../protocol';
import type { LicenseRow } from '../../db/licenses-repo';
import type { AppDeps } from '../app';
import { principalOf } from '../auth/access';
import { AppError } from '../errors';
import { errorSchema } from '../schemas';
import { createLicenseServiceFor } from '../licenses/routes';
import type { LicenseService } from '../../services/licenses/license-service';

const idParams = z.strictObject({ id: licenseId });
const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 503: errorSchema };

/**
 * The license's current document, freshly signed with the license key (unbound: no agent id or
 * fingerprint). Read-only; it lets a person check a signature against
 * /.well-known/agentina-keys.json without trusting the page that shows it.
 */
export function licenseDocumentRoutes(
  deps: AppDeps,
  service: LicenseService = createLicenseServiceFor(deps),
): FastifyPluginAsyncZod {
  // A server without its license key is misconfigured: say so plainly instead of a bare 500.
  const sign = (row: LicenseRow): SignedLicense => {
    if (!existsSync(keyFilePaths(deps.config.keysDir, 'license').privateKey))
      throw new AppError('UNAVAILABLE', 'This server has no license signing key; run `agentina keys ensure`.');
    return service.signLicenseDocument(row);
  };
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
        config: { access: ['admin', 'service'] },
      },
      async (req, reply) => {
        void reply.header('cache-control', 'no-store');
        return sign(await service.getLicenseRow(req.params.id));
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
        return sign(
          await service.getLicenseRow(req.params.id, { customerId: principalOf(req, 'customer').customerId }),
        );
      },
    );
  };
}
