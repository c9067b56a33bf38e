import type { FastifyPluginAsync } from 'fastify';
import type { AppDeps } from '../app';

/** RFC 9116 security.txt; the policy itself is SECURITY.md. */
export function wellKnownRoutes(deps: AppDeps): FastifyPluginAsync {
  return async (app) => {
    app.get(
      '/.well-known/security.txt',
      {
        config: { access: ['anonymous'] },
        schema: { tags: ['health'], summary: 'Responsible disclosure contact (RFC 9116)' },
      },
      async (_req, reply) => {
        const expires = new Date(deps.clock.now().getTime() + 180 * 24 * 3600 * 1000);
        expires.setUTCHours(0, 0, 0, 0);
        const origin = deps.config.publicOrigin;
        const body = [
          'Contact: mailto:security@digcub-lab.com',
          `Expires: ${expires.toISOString()}`,
          'Preferred-Languages: en',
          `Canonical: ${origin}/.well-known/security.txt`,
          '# We acknowledge reports within 2 business days and keep you updated through resolution.',
          '# Public credit with your permission; a written acknowledgement on request. No paid bounty.',
          '',
        ].join('\n');
        return reply.type('text/plain; charset=utf-8').send(body);
      },
    );
  };
}
