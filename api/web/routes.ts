import { existsSync } from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';
import { AppError } from '../errors';

export const WEB_DIST = path.resolve(__dirname, '..', '..', 'web', 'dist');

/**
 * The admin UI at `/` and the customer portal at `/portal`: static files built by Vite
 * (`npm run build:web`; `npm start` builds them). The pages themselves are public; every API call
 * they make is authenticated like any other.
 */
export function webRoutes(dist = WEB_DIST): FastifyPluginAsync {
  return async (app) => {
    const built = existsSync(path.join(dist, 'index.html'));
    await app.register(fastifyStatic, { root: dist, serve: false });
    const page =
      (file: string) =>
      async (_req: unknown, reply: { sendFile(f: string): unknown; header(k: string, v: string): unknown }) => {
        if (!built) throw new AppError('UNAVAILABLE', 'The web UI is not built; run `npm run build:web`.');
        reply.header('cache-control', 'no-store');
        return reply.sendFile(file);
      };
    const hidden = { hide: true };
    app.get('/', { config: { access: ['anonymous'] }, schema: hidden }, page('index.html'));
    app.get('/portal', { config: { access: ['anonymous'] }, schema: hidden }, page('portal.html'));
    app.get('/assets/*', { config: { access: ['anonymous'] }, schema: hidden }, async (req, reply) => {
      if (!built) throw new AppError('NOT_FOUND', 'No such asset.');
      const rel = (req.params as { '*': string })['*'];
      if (!/^[A-Za-z0-9._-]+$/.test(rel)) throw new AppError('NOT_FOUND', 'No such asset.');
      reply.header('cache-control', 'public, max-age=31536000, immutable');
      return reply.sendFile(path.join('assets', rel));
    });
  };
}
