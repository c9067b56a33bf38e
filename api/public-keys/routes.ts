import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { KEY_PURPOSES, type KeyPurpose } from '../../protocol';
import type { AppDeps } from '../app';
import { errorSchema } from '../schemas';

const keySchema = z.strictObject({
  kid: z.string().max(64),
  alg: z.literal('Ed25519'),
  publicKeyPem: z.string().max(1000),
  createdAt: z.string().max(40),
});
const keySetSchema = z.strictObject({ keys: z.array(keySchema).max(1000) });
export const publicKeySetsSchema = z.strictObject({
  license: keySetSchema,
  release: keySetSchema,
  audit: keySetSchema,
});
export type PublicKeySets = z.infer<typeof publicKeySetsSchema>;

/** Re-read at most this often, so a key rotation shows up without a restart. */
const CACHE_MS = 60_000;

/**
 * GET /.well-known/agentina-keys.json: the public halves of the license, release and audit key
 * sets (every key ever used, so old signatures still verify). Public and read-only: anyone holding
 * a signed document may check it, e.g. the admin UI in the browser.
 */
export function publicKeyRoutes(deps: Pick<AppDeps, 'services' | 'clock'>): FastifyPluginAsyncZod {
  let cached: { at: number; body: PublicKeySets } | undefined;
  const read = (purpose: KeyPurpose) => ({
    keys: deps.services.keys.publicKeySet(purpose).keys.map((k) => ({
      kid: k.kid,
      alg: 'Ed25519' as const,
      publicKeyPem: k.publicKeyPem,
      createdAt: k.createdAt,
    })),
  });
  return async (app) => {
    app.get(
      '/.well-known/agentina-keys.json',
      {
        schema: {
          tags: ['health'],
          summary: 'Public key sets for license, release and audit signatures',
          response: { 200: publicKeySetsSchema, 500: errorSchema },
        },
        config: { access: ['anonymous'] },
      },
      async (_req, reply) => {
        const now = deps.clock.now().getTime();
        if (!cached || now - cached.at > CACHE_MS) {
          const sets = Object.fromEntries(KEY_PURPOSES.map((p) => [p, read(p)])) as PublicKeySets;
          cached = { at: now, body: sets };
        }
        void reply.header('cache-control', 'public, max-age=300');
        return cached.body;
      },
    );
  };
}
