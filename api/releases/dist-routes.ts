import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { safeString } from '../../protocol';
import { AppError } from '../../services/errors';
import type { AppDeps } from '../app';
import { errorSchema } from '../schemas';

/**
 * The release repository as TUF clients fetch it, anonymous and cacheable (the signatures are
 * the protection, not who asks): `metadata/<v>.root.json`, `timestamp.json`,
 * `<v>.snapshot.json`, `<v>.targets.json` and `targets/<sha256>.<name>`. Everything but
 * timestamp.json is named by version or hash and never changes, so it is cached as immutable;
 * timestamp.json is what says "nothing newer" and is cached briefly.
 */
export function distRoutes(deps: Pick<AppDeps, 'services'>): FastifyPluginAsyncZod {
  const repo = deps.services.releases.repository;
  const file = z.strictObject({ file: safeString(200).min(1) });
  return async (app) => {
    app.get(
      '/v1/dist/metadata/:file',
      {
        schema: {
          tags: ['dist'],
          summary: 'Signed TUF metadata (root, timestamp, snapshot, targets)',
          params: file,
          response: { 404: errorSchema, 400: errorSchema },
        },
        config: { access: ['anonymous'] },
      },
      async (req, reply) => {
        const body = await repo.metadataFile(req.params.file);
        if (body === null) throw new AppError('NOT_FOUND', 'No such metadata file.');
        const mutable = req.params.file === 'timestamp.json' || req.params.file === 'root.json';
        return reply
          .header('content-type', 'application/json')
          .header('cache-control', mutable ? 'public, max-age=10' : 'public, max-age=31536000, immutable')
          .send(body as never); // the signed bytes as stored, not re-serialised
      },
    );
    app.get(
      '/v1/dist/targets/:file',
      {
        schema: {
          tags: ['dist'],
          summary: 'A release file by its sha256 and name',
          params: file,
          response: { 404: errorSchema, 400: errorSchema },
        },
        config: { access: ['anonymous'] },
      },
      async (req, reply) => {
        const body = await repo.targetFile(req.params.file);
        if (body === null) throw new AppError('NOT_FOUND', 'No such target file.');
        return reply
          .header('content-type', 'application/octet-stream')
          .header('cache-control', 'public, max-age=31536000, immutable')
          .send(body as never);
      },
    );
  };
}
