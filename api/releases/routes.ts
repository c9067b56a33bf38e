import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { hex64, releaseVersionSchema, safeString, signedReleaseManifestSchema } from '../../protocol';
import type { AppDeps } from '../app';
import { actorOf, principalOf } from '../auth/access';
import { errorSchema } from '../schemas';

const releaseViewSchema = z.strictObject({
  id: z.string().max(80),
  version: z.string().max(60),
  runtimeHash: hex64,
  keyId: z.string().max(64),
  fileCount: z.number().int().min(0),
  publishedBy: z.strictObject({ kind: z.string().max(20), id: z.string().max(200) }),
  createdAt: z.string().max(40),
  yankedAt: z.string().max(40).nullable(),
  tarballTarget: z.string().max(128).nullable(),
});
const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema };

/** Signed release manifests: admins register them (verified against the `release` key set); agents fetch the latest. */
export function releasesRoutes(deps: AppDeps): FastifyPluginAsyncZod {
  return async (app) => {
    const releases = deps.services.releases;

    app.get(
      '/v1/admin/releases',
      {
        schema: {
          tags: ['admin'],
          summary: 'Registered releases, highest version first',
          querystring: z.strictObject({
            limit: z.coerce.number().int().min(1).max(200).optional(),
            offset: z.coerce.number().int().min(0).max(100000).optional(),
          }),
          response: { 200: z.strictObject({ items: z.array(releaseViewSchema) }), ...errors },
        },
        config: { access: ['admin', 'service'], permission: 'releases:read' },
      },
      async (req) => releases.list(req.query),
    );

    app.post(
      '/v1/admin/releases',
      {
        schema: {
          tags: ['admin'],
          summary: 'Register a signed release manifest (signature checked against the release key set)',
          body: signedReleaseManifestSchema,
          response: {
            200: releaseViewSchema,
            201: releaseViewSchema,
            ...errors,
            409: errorSchema,
            422: errorSchema,
            503: errorSchema,
          },
        },
        config: { access: ['admin', 'service'], permission: 'releases:write' },
        bodyLimit: 4 * 1024 * 1024,
      },
      async (req, reply) => {
        const principal = principalOf(req, 'admin', 'service');
        const r = await releases.register(actorOf(principal), req.body);
        return reply.status(r.created ? 201 : 200).send(r.release);
      },
    );

    app.post(
      '/v1/admin/releases/:version/yank',
      {
        schema: {
          tags: ['admin'],
          summary:
            'Withdraw a version from the signed targets (audited release.yanked): no agent is offered it again; its row stays',
          params: z.strictObject({ version: releaseVersionSchema }),
          body: z.strictObject({ reason: safeString(500).optional() }),
          response: { 200: releaseViewSchema, ...errors, 404: errorSchema, 409: errorSchema },
        },
        config: { access: ['admin', 'service'], permission: 'releases:write' },
      },
      async (req) => releases.yank(actorOf(principalOf(req, 'admin', 'service')), req.params.version, req.body.reason),
    );

    app.get(
      '/v1/agent/releases/latest',
      {
        schema: {
          tags: ['agent'],
          summary: 'The signed manifest of the highest published version',
          response: { 200: signedReleaseManifestSchema, ...errors, 404: errorSchema },
        },
        config: { access: ['agent'] },
      },
      async (_req, reply) => {
        void reply.header('cache-control', 'no-store');
        return releases.latest();
      },
    );
  };
}
