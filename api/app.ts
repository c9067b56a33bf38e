import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type RawServerDefault } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import {
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { Pool } from 'pg';
import type { Config, TrustProxy } from '../config';
import type { Clock } from '../protocol';
import { installAccessControl, type Authenticate } from './auth/access';
import { installAgentProof } from './auth/agent-proof';
import { createAuthenticator, presentsCredential } from './auth/authenticate';
import { clientAddressKey, createFailureBudget, createProvenCredentials } from '../services/identity/failure-budget';
import { installErrorHandling } from './errors';
import { frameworkErrorHandler, installInputRules } from './input-rules';
import { securityHeaders, SECURITY_HEADER_OPTIONS } from './security-headers';
import { healthRoutes } from './health/routes';
import { wellKnownRoutes } from './well-known/routes';
import { identityRoutes } from './identity/routes';
import { agentHeartbeatRoutes } from './agent-heartbeat/routes';
import { agentsRoutes } from './agents/routes';
import { updatePolicyRoutes } from './agents/update-policy-routes';
import { tasksRoutes } from './tasks/routes';
import { releasesRoutes } from './releases/routes';
import { webhooksRoutes } from './webhooks/routes';
import { webhookEventV1Schema } from '../protocol/webhooks';
import { z } from 'zod';
import { distRoutes } from './releases/dist-routes';
import { webRoutes } from './web/routes';
import { activationRoutes } from './activation/routes';
import { offlineRoutes } from './activation/offline-routes';
import { licenseRoutes } from './licenses/routes';
import { policyRoutes } from './policies/routes';
import { agentStatusRoutes } from './agent-status/routes';
import type { Services } from '../services';
import { auditRoutes } from './audit/routes';
import { consoleRoutes } from './console/routes';
import { publicKeyRoutes } from './public-keys/routes';
import { licenseDocumentRoutes } from './license-documents/routes';
import { createLogger } from './logger';
import { createMetrics, type Metrics } from '../services/metrics';
import type { TemporalDeps } from '../services/temporal';

export type AppDeps = {
  config: Config;
  /** Pool connected as the least-privileged application role (readiness probe, pool gauges). */
  pool: Pool;
  temporal: TemporalDeps;
  clock: Clock;
  /** The business rules, built once by createServices(); the app starts and closes them. */
  services: Services;
  metrics: Metrics;
  logger: Logger;
  /** Resolves the caller of each request; see api/auth/access.ts. */
  authenticate: Authenticate;
};

export type BuildAppInput = Omit<AppDeps, 'metrics' | 'logger' | 'authenticate'> &
  Partial<Pick<AppDeps, 'metrics' | 'logger' | 'authenticate'>>;

/**
 * Failed authentications (unknown or dead bearer tokens and session cookies) each client address
 * may make per window; past it, credentials from that address are not looked up at all.
 */
export const AUTH_FAILURES_PER_ADDRESS = { max: 30, windowMs: 60_000 };
/**
 * How long a credential that authenticated is remembered as not a guess (it then skips the
 * budget): a day covers an outage and the reconnection of a whole fleet behind one address.
 */
export const PROVEN_CREDENTIAL_MS = 86_400_000;

/** How long start-up waits for the status LISTEN connection before serving anyway. */
const LISTEN_START_WAIT_MS = 2000;

export type App = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  ZodTypeProvider
>;

const REQUEST_ID = /^[A-Za-z0-9._-]{8,64}$/;

/**
 * Request ids are for correlation, not secrets: a random per-process prefix and a counter are
 * unique across replicas and cost nothing per request (randomBytes per request cost ~3% CPU).
 */
const REQUEST_ID_PREFIX = `req_${randomBytes(6).toString('base64url')}`;
let requestCounter = 0;
function nextRequestId(): string {
  requestCounter = (requestCounter + 1) % Number.MAX_SAFE_INTEGER;
  return `${REQUEST_ID_PREFIX}${requestCounter.toString(36).padStart(6, '0')}`;
}

/**
 * The app owns its services' lifecycle: the status LISTEN connection opens before serving (but
 * never holds start-up hostage to a slow database: it keeps retrying, and parked requests poll
 * until it is up); parked long-polls answer before the server stops accepting; the connections
 * close with the app.
 */
function installServiceLifecycle(app: App, services: Services): void {
  app.addHook('onReady', async () => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      services.start(),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, LISTEN_START_WAIT_MS))),
    ]);
    clearTimeout(timer);
  });
  app.addHook('preClose', async () => {
    await services.stopParking();
  });
  app.addHook('onClose', async () => {
    await services.close();
  });
}

/**
 * TRUST_PROXY for Fastify. A hop count trusts that many hops whoever connects (Fastify itself no
 * longer takes a number, since a client that reaches the API directly could then name any
 * address): it is for an API that only its proxies can reach. A list is checked hop by hop.
 */
function trustProxyOption(t: TrustProxy): false | string[] | ((address: string, hop: number) => boolean) {
  if (typeof t === 'number') return (_address, hop) => hop < t;
  return t;
}

/** Builds the Fastify app from its dependencies; it does not listen. */
export async function buildApp(input: BuildAppInput): Promise<App> {
  const deps: AppDeps = {
    ...input,
    metrics: input.metrics ?? createMetrics(),
    logger: input.logger ?? createLogger(input.config.logLevel),
    authenticate: input.authenticate ?? createAuthenticator(input.services, input.config.publicOrigin),
  };
  const headers = securityHeaders(SECURITY_HEADER_OPTIONS);
  const app = Fastify<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger>({
    loggerInstance: deps.logger,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : nextRequestId();
    },
    requestIdHeader: false,
    bodyLimit: 1024 * 1024,
    // Per-address limits and audited IPs see the client behind trusted proxies only (TRUST_PROXY).
    trustProxy: trustProxyOption(deps.config.trustProxy),
    frameworkErrors: frameworkErrorHandler(headers),
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandling(app);
  installInputRules(app);
  // Before access control, so refusals carry the security headers and the request id too.
  app.addHook('onRequest', (req, reply, done) => {
    void reply.headers(headers).header('x-request-id', req.id);
    done();
  });
  const now = () => deps.clock.now().getTime();
  installAccessControl(app, deps.authenticate, {
    presented: presentsCredential,
    keyOf: (req) => clientAddressKey(req.ip),
    budget: createFailureBudget({ ...AUTH_FAILURES_PER_ADDRESS, now }),
    proven: createProvenCredentials({ ttlMs: PROVEN_CREDENTIAL_MS, now }),
  });
  installAgentProof(app, deps.services.agentProof, deps.services.credentialRotation, deps.clock);
  installServiceLifecycle(app, deps.services);

  app.addHook('onResponse', (req, reply, done) => {
    const labels = { method: req.method, route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) };
    deps.metrics.inc('agentina_http_requests_total', 'HTTP requests answered', labels);
    deps.metrics.observe(
      'agentina_http_request_duration_seconds',
      'Time from request to answer (status long-polls include their wait)',
      labels,
      reply.elapsedTime / 1000,
    );
    done();
  });
  deps.metrics.gauge('agentina_db_pool_total', 'PostgreSQL connections open in the pool', () => deps.pool.totalCount);
  deps.metrics.gauge(
    'agentina_db_pool_waiting',
    'Queries waiting for a PostgreSQL connection',
    () => deps.pool.waitingCount,
  );

  // Global limit is generous; login and activation routes set tighter ones of their own.
  // Limit headers only on refusals: agents poll often, and every header is bytes on every answer.
  await app.register(rateLimit, {
    global: true,
    max: 1000,
    timeWindow: '1 minute',
    keyGenerator: (req) => clientAddressKey(req.ip),
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
  });

  await app.register(swagger, {
    openapi: {
      info: { title: 'Agentina control plane', version: '0.1.0', description: 'Admin, portal and agent APIs.' },
      components: {
        securitySchemes: {
          adminSession: { type: 'apiKey', in: 'cookie', name: '__Host-agentina_admin' },
          portalSession: { type: 'apiKey', in: 'cookie', name: '__Host-agentina_portal' },
          serviceToken: { type: 'http', scheme: 'bearer' },
          metricsToken: { type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN' },
        },
        // What a webhook receiver gets (docs/webhooks.md): the body of every delivery.
        schemas: { WebhookEventV1: z.toJSONSchema(webhookEventV1Schema, { target: 'openapi-3.0' }) as never },
      },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  await app.register(healthRoutes(deps));
  await app.register(wellKnownRoutes(deps));
  await app.register(identityRoutes(deps));
  await app.register(webRoutes());
  await app.register(licenseRoutes(deps));
  await app.register(policyRoutes(deps));
  await app.register(activationRoutes(deps));
  await app.register(offlineRoutes(deps));
  await app.register(agentStatusRoutes(deps));
  await app.register(agentHeartbeatRoutes(deps));
  await app.register(agentsRoutes(deps));
  await app.register(updatePolicyRoutes(deps));
  await app.register(tasksRoutes(deps));
  await app.register(releasesRoutes(deps));
  await app.register(distRoutes(deps));
  await app.register(auditRoutes(deps));
  await app.register(consoleRoutes(deps));
  await app.register(publicKeyRoutes(deps));
  await app.register(licenseDocumentRoutes(deps));
  await app.register(webhooksRoutes(deps));

  return app;
}
