import type { Logger } from 'pino';
import type { Pool } from 'pg';
import { pingDatabase } from '../db/pool';
import type { Config } from '../config';
import type { Clock } from '../protocol';
import { createActivationService } from './activation/activation-service';
import { createOfflineActivationService } from './activation/offline-activation-service';
import { createAgentCredentialLookup } from './agent-status/agent-credentials';
import { createAgentProofVerifier } from './agent-status/agent-proof';
import { createRevocationService } from './agent-status/revocation-service';
import { createStatusListener } from './agent-status/status-listener';
import { createStatusService } from './agent-status/status-service';
import { createStatusFileService } from './agent-status/status-file-service';
import { createAgentsService } from './agents/agents-service';
import { createAgentUpdateService } from './agents/agent-update-service';
import { createUpdatePolicyService } from './agents/update-policy-service';
import { createHeartbeatService } from './agents/heartbeat-service';
import { createQuarantineService } from './agents/quarantine-service';
import { createSeatReclaimService } from './agents/seat-reclaim-service';
import { createAuditService } from './audit/audit-service';
import { createCheckpointService } from './audit/checkpoint-service';
import { createOverviewService } from './console/overview-service';
import { createIdentityService } from './identity/identity-service';
import { createLoginService } from './identity/login-service';
import { createSecondFactorService } from './identity/second-factor-service';
import { createSealer } from './sealed-values';
import { createPasswordHasher } from './identity/passwords';
import { createSessionService } from './identity/session-service';
import type { KeyStore } from './keys';
import { createLicenseService } from './licenses/license-service';
import { createLicenseTransitions } from './licenses/license-transitions';
import { createUpdateOrigin } from './licenses/update-origin';
import { createPolicyService } from './policies/policy-service';
import type { Metrics } from './metrics';
import { createReconcileService } from './operations/reconcile-service';
import { createReleasesService } from './releases/releases-service';
import { releaseKeysFromConfig } from './releases/release-keys';
import { createTufRepository } from './releases/tuf-repository';
import { createTaskWaker } from './tasks/task-waker';
import { createTaskSecrets } from './tasks/task-secrets';
import { createTasksService } from './tasks/tasks-service';
import type { TemporalDeps } from './temporal';
import { createCredentialRotation } from './agents/credential-rotation';
import { createWebhooksService } from './webhooks/webhooks-service';
import type { SendLimits } from './webhooks/webhook-sender';

export type ServicesDeps = {
  /** Pool connected as the least-privileged application role. */
  pool: Pool;
  temporal: TemporalDeps;
  clock: Clock;
  keys: KeyStore;
  config: Pick<Config, 'temporal' | 'agents' | 'audit' | 'releases' | 'keysDir' | 'webhooks' | 'licenses'>;
  logger: Pick<Logger, 'warn' | 'info'>;
  /** Counters the services add to (quarantines started); the API serves them at /metrics. */
  metrics?: Metrics;
  /**
   * How old an Update's origin proof may be at the workflow's time of the transition
   * (ORIGIN_PROOF_MAX_AGE_MS); raised by tests whose Temporal server skips time.
   */
  updateOriginMaxAgeMs?: number;
  /** Bounds of one webhook try (time, bytes read); tests shorten them. */
  webhookSendLimits?: SendLimits;
};

const QUARANTINES_STARTED = 'agentina_agent_quarantines_started_total';
const QUARANTINES_STARTED_HELP = 'agentQuarantine workflows started by heartbeats';

/**
 * Every business rule of the control plane, wired once per process (API server, worker, CLI).
 * Nothing else constructs a service. `start()` opens the LISTEN connection for status notices
 * (task wake-ups listen on first use); `close()` answers parked requests and closes both. Neither
 * is needed by a process that parks nothing (the CLI, the worker).
 */
export function createServices(deps: ServicesDeps) {
  const { pool, temporal, clock, keys, config, logger } = deps;
  const releaseKeys = releaseKeysFromConfig(config);
  deps.metrics?.declareCounter(QUARANTINES_STARTED, QUARANTINES_STARTED_HELP, ['reason']);
  const onWarning = (message: string, err: unknown) => logger.warn({ err }, message);

  // This process's one LISTEN connection for status notices: long-polls and the agent caches.
  const statusListener = createStatusListener({ pool });
  const taskWaker = createTaskWaker(pool, (err) => logger.warn({ err }, 'task LISTEN connection failed'));

  // One gate for every scrypt this process runs (logins, password changes, new accounts).
  const passwords = createPasswordHasher();
  const sessions = createSessionService({ pool, clock });
  const secondFactors = createSecondFactorService({
    pool,
    clock,
    sealer: createSealer(() => keys.secrets('totp-secrets'), 'second-factor secret'),
  });
  const login = createLoginService({ pool, clock, temporal, logger, passwords, sessions, secondFactors });

  // The API signs its lifecycle Updates with it; the worker's transition activity checks them.
  const origin = createUpdateOrigin({
    secrets: () => keys.secrets('update-origin'),
    ...(deps.updateOriginMaxAgeMs !== undefined ? { maxAgeMs: deps.updateOriginMaxAgeMs } : {}),
  });

  const licenses = createLicenseService({
    pool,
    temporal,
    clock,
    signer: keys.license,
    origin,
    temporalUi: { url: config.temporal.uiUrl, namespace: config.temporal.namespace },
    expiryNoticeDays: config.licenses.expiryNoticeDays,
  });

  const status = createStatusService({ pool, signer: keys.license, clock, listener: statusListener });
  // Answers right after a write (activation, heartbeat) read the row itself, never a cached one.
  const freshStatus = (agentId: string) => status.freshStatus(agentId);
  const agentUpdates = createAgentUpdateService({ pool, clock });
  const updatePolicies = createUpdatePolicyService({ pool, clock });
  const activation = createActivationService({ pool, clock, signer: keys.license, currentStatus: freshStatus });
  const agentCredentials = createAgentCredentialLookup({ pool, statusListener });
  const credentialRotation = createCredentialRotation({
    pool,
    temporal,
    clock,
    onWarning,
    onPromoted: (agentId) => agentCredentials.forgetAgent(agentId),
    onQuarantineStarted: () =>
      deps.metrics?.inc('agentina_agent_quarantines_started_total', 'agentQuarantine workflows started by heartbeats', {
        reason: 'clone_detected',
      }),
  });

  return {
    keys,
    statusListener,
    passwords,
    identity: {
      sessions,
      login,
      secondFactors,
      accounts: createIdentityService({ pool, clock, passwords }),
    },
    licenses,
    /** License templates; applying one changes its licenses through their lifecycles. */
    policies: createPolicyService({ pool, clock, licenses }),
    /** Rows ⇄ workflows: repairs lifecycles and quarantines from the rows (worker start, Schedule, CLI). */
    reconcile: createReconcileService({ pool, temporal, clock, ensureLifecycle: licenses.ensureLifecycle }),
    /** The lifecycle workflow's one writer of license state (called by its activity). */
    transitions: createLicenseTransitions({ pool, clock, origin }),
    activation,
    /** Air-gapped activation: a request file and a token in, a signed response bound to that request out. */
    offlineActivation: createOfflineActivationService({ pool, clock, signer: keys.license, activation }),
    /** Signed, agent-bound status files for sites that never connect. */
    statusFiles: createStatusFileService({ pool, clock, signer: keys.license }),
    status,
    /** The signed bad-news feed of one license, read by an agent back from a time out of contact. */
    revocations: createRevocationService({ pool, signer: keys.license, clock }),
    agentCredentials,
    agentProof: createAgentProofVerifier({ secrets: () => keys.secrets('agent-sessions'), clock }),
    credentialRotation,
    heartbeats: createHeartbeatService({
      pool,
      temporal,
      clock,
      credentialRotation,
      settings: config.agents,
      currentStatus: freshStatus,
      reissuedLicense: (agentId, held) => status.reissuedLicense(agentId, held),
      updateDirective: (agentId) => updatePolicies.directive(agentId),
      onWarning,
      onQuarantineStarted: (reason) => deps.metrics?.inc(QUARANTINES_STARTED, QUARANTINES_STARTED_HELP, { reason }),
    }),
    agents: createAgentsService({ pool, temporal, clock, onWarning, origin }),
    /** Admin-approved agent updates: the wanted release the heartbeat answer carries. */
    agentUpdates,
    /** Update policy per license or agent (automatic, manual, pinned), and the heartbeat answer's `update`. */
    updatePolicies,
    /** Status changes made by the quarantine and offline-sweep workflows. */
    quarantine: createQuarantineService({ pool, clock, origin }),
    /** Seat reclaim of agents offline past their license's window (agentSeatReclaim workflow). */
    seats: createSeatReclaimService({ pool, clock }),
    tasks: createTasksService({
      pool,
      clock,
      waker: taskWaker,
      leaseMs: config.agents.taskLeaseMs,
      secrets: createTaskSecrets(() => keys.secrets('task-secrets')),
    }),
    releases: createReleasesService({
      pool,
      clock,
      releaseKeys: () => keys.keySet('release'),
      publicKeys: (purpose) => keys.publicKeySet(purpose).keys,
      repository: createTufRepository({
        pool,
        clock,
        keys: releaseKeys,
        expiry: { timestampMs: config.releases.timestampExpiryMs },
      }),
    }),
    audit: createAuditService({ pool, keys }),
    checkpoints: createCheckpointService({ pool, clock, keys, heldDir: config.audit.checkpointDir }),
    console: createOverviewService({ pool, clock }),
    webhooks: createWebhooksService({
      pool,
      temporal,
      clock,
      secrets: () => keys.secrets('webhook-secrets'),
      allowHosts: config.webhooks.allowHosts,
      ...(deps.webhookSendLimits ? { sendLimits: deps.webhookSendLimits } : {}),
      onWarning,
    }),

    /** Rejects when PostgreSQL does not answer (the readiness probe). */
    pingDatabase: () => pingDatabase(pool),

    /** Opens the LISTEN connection for status notices; resolves once it is up (or failed once). */
    async start(): Promise<void> {
      await statusListener.start(logger);
    },

    /** Answers every parked long-poll (status and tasks) now: shutdown begins. */
    async stopParking(): Promise<void> {
      status.close();
      await taskWaker.close();
    },

    async close(): Promise<void> {
      status.close();
      await taskWaker.close();
      await statusListener.close();
      releaseKeys.close();
      // Lockout timers being started finish (or give up) before the Temporal client closes.
      await login.settle();
    },
  };
}

export type Services = ReturnType<typeof createServices>;
