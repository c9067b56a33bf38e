import { WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { Pool } from 'pg';
import { appendAudit } from '../../db/audit-repo';
import { getLicense, insertLicenseForCustomer, listLicenses, type LicenseRow } from '../../db/licenses-repo';
import { findCustomer } from '../../db/customers-repo';
import { withTransaction, type Queryable } from '../../db/pool';
import {
  DEFAULT_SEAT_RECLAIM_DAYS,
  DAY_MS,
  entitledKinds,
  newId,
  scrubFreeText,
  signLicense,
  type Actor,
  type Clock,
  type LicenseState,
  type SignedLicense,
  type Signer,
} from '../../protocol';
import {
  changeTermsUpdate,
  convertTrialUpdate,
  LICENSE_WORKFLOW_TYPE,
  licenseStateQuery,
  licenseWorkflowId,
  renewUpdate,
  resumeUpdate,
  revokeUpdate,
  suspendUpdate,
  type TermsChange,
  type LicenseSnapshot,
  type TrialEndState,
} from '../../workflows/license-contract';
import { scheduledState } from '../../workflows/license-rules';
import { AppError } from '../errors';
import type { LicenseDetailView, LicenseView, WorkflowView } from '../../protocol/views';
import { licenseActions } from './license-actions';
import { licenseFeatures } from './license-features';
import { decodeCursor, encodeCursor } from './license-cursor';
import { lifecycleStartOptions } from './license-lifecycle-start';
import { licenseDocumentFor, snapshotOfView, toLicenseView } from './license-views';
import { mapUpdateError } from './update-errors';
import type { UpdateOriginService } from './update-origin';

export type { LicenseView, WorkflowView };

/**
 * The license rules the API (admin, portal) and the agent area use. Every change of state goes
 * through the license's workflow; this service writes the row only when it creates it.
 *
 * For the activation area: `buildSignedLicense(licenseId, { agentId, fingerprintCommitment })`
 * returns the Ed25519-signed document for a bound agent (key from the key files only), and
 * `revokeLicense(id, actor, reason)` returns once the revocation is committed and NOTIFYed.
 */

export type CreateLicenseInput = {
  /** Optional client-chosen id: repeating a create with the same id returns the same license. */
  id?: string | undefined;
  customerId: string;
  plan: string;
  /** Absent: the default task grant; present: exactly these (see protocol/entitlements.ts). */
  features?: Record<string, boolean | number | string> | undefined;
  maxAgents: number;
  graceDays: number;
  trialEndState: TrialEndState;
  notBefore?: string | undefined;
  /** The policy version the terms were copied from (services/policies), recorded on the license. */
  policy?: { id: string; version: number } | undefined;
  /** Days an offline agent keeps its seat (the policy's); absent: DEFAULT_SEAT_RECLAIM_DAYS. */
  seatReclaimDays?: number | undefined;
} & (
  | { trial: { days?: number | undefined; endsAt?: string | undefined }; term?: undefined }
  | { term: { days?: number | undefined; expiresAt?: string | undefined }; trial?: undefined }
);

export type LicenseListQuery = {
  customerId?: string | undefined;
  state?: LicenseState | undefined;
  cursor?: string | undefined;
  limit: number;
};

export type LicenseServiceDeps = {
  pool: Pool;
  temporal: { client: Client; taskQueue: string };
  clock: Clock;
  /** The `license` key: it signs documents (see services/keys.ts). */
  signer: Signer;
  /** Signs every Update this service sends, so the lifecycle can tell it from one made by hand. */
  origin: Pick<UpdateOriginService, 'sign'>;
  /** Temporal Web base URL and namespace, for links. */
  temporalUi: { url: string; namespace: string };
  /** How long an API call waits for the workflow (updates run one PostgreSQL transaction). */
  updateTimeoutMs?: number;
  /** Tests lower the continue-as-new threshold of the workflows they start. */
  continueAsNewAtHistoryLength?: number;
  /** Tests lower how many times a transition is tried as a local activity before the server retries it. */
  localTransitionAttempts?: number;
  /** Tests lower how long a refused timer transition waits before its next try. */
  refusedTimerRetryMs?: number;
  /** Days before expiry the lifecycles it starts announce `license.expiring_soon` (LICENSE_EXPIRY_NOTICE_DAYS). */
  expiryNoticeDays?: number[];
};

/**
 * A caller's idempotency key: the same key on a repeated request reaches the workflow as the same
 * update id, and Temporal answers it with the first outcome instead of applying it twice.
 */
export type ChangeOptions = { idempotencyKey?: string | undefined };
const updateIdOf = (o: ChangeOptions, action: string): { updateId?: string } =>
  o.idempotencyKey ? { updateId: `api:${action}:${o.idempotencyKey}` } : {};

const QUERY_TIMEOUT_MS = 3000;
const DEFAULT_UPDATE_TIMEOUT_MS = 20000;

export function createLicenseService(deps: LicenseServiceDeps) {
  const { pool, clock } = deps;
  const client = deps.temporal.client;

  /** Temporal Web page of the lifecycle: of the exact run when its id is known, else of the latest run. */
  const workflowUrl = (licenseId: string, runId?: string): string =>
    `${deps.temporalUi.url.replace(/\/+$/, '')}/namespaces/${encodeURIComponent(deps.temporalUi.namespace)}/workflows/${encodeURIComponent(licenseWorkflowId(licenseId))}${runId ? `/${encodeURIComponent(runId)}/history` : ''}`;

  /**
   * Starts the lifecycle of `row` unless it runs already (the workflow id is the business key).
   * `customerName` is for its summary; a caller that has just read the customer passes it, and
   * saves the query that reads it otherwise.
   */
  async function ensureLifecycle(row: LicenseRow, customerName?: string): Promise<WorkflowHandle> {
    const name = customerName ?? (await findCustomer(pool, row.customer_id))?.name ?? row.customer_id;
    return client.workflow.start(
      LICENSE_WORKFLOW_TYPE,
      lifecycleStartOptions(row, name, deps.temporal.taskQueue, {
        continueAsNewAtHistoryLength: deps.continueAsNewAtHistoryLength,
        localTransitionAttempts: deps.localTransitionAttempts,
        refusedTimerRetryMs: deps.refusedTimerRetryMs,
        expiryNoticeDays: deps.expiryNoticeDays,
      }),
    );
  }

  /** An Update's arguments with this API's origin proof (signed at each try: a retry is a new proof). */
  const signed = <A extends object>(licenseId: string, name: string, args: A) =>
    deps.origin.sign(licenseWorkflowId(licenseId), name, args);

  async function requireLicense(id: string, scope?: { customerId: string }, db: Queryable = pool): Promise<LicenseRow> {
    const row = await getLicense(db, id);
    // Another customer's license is as absent as one that does not exist.
    if (!row || (scope && row.customer_id !== scope.customerId)) throw new AppError('NOT_FOUND', `No license ${id}.`);
    return row;
  }

  async function queryWorkflow(id: string): Promise<LicenseSnapshot | null> {
    try {
      return await client.withDeadline(Date.now() + QUERY_TIMEOUT_MS, () =>
        client.workflow.getHandle(licenseWorkflowId(id)).query(licenseStateQuery),
      );
    } catch {
      return null; // no worker, or Temporal down: the row still answers
    }
  }

  /** The id of the lifecycle's current run, or undefined when Temporal cannot say right now. */
  async function currentRunId(id: string): Promise<string | undefined> {
    try {
      const d = await client.withDeadline(Date.now() + QUERY_TIMEOUT_MS, () =>
        client.workflow.getHandle(licenseWorkflowId(id)).describe(),
      );
      return d.runId;
    } catch {
      return undefined; // the link then opens the workflow id's latest run
    }
  }

  /** Sends one update; a lifecycle that is missing is restarted from the row and asked again. */
  async function update<A>(
    id: string,
    run: (h: WorkflowHandle) => Promise<A>,
  ): Promise<{ license: LicenseView; workflow: LicenseSnapshot }> {
    const row = await requireLicense(id);
    const deadline = Date.now() + (deps.updateTimeoutMs ?? DEFAULT_UPDATE_TIMEOUT_MS);
    const attempt = async (h: WorkflowHandle) => client.withDeadline(deadline, () => run(h));
    let snapshot: LicenseSnapshot;
    try {
      try {
        snapshot = (await attempt(client.workflow.getHandle(licenseWorkflowId(id)))) as LicenseSnapshot;
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        snapshot = (await attempt(await ensureLifecycle(row))) as LicenseSnapshot;
      }
    } catch (err) {
      mapUpdateError(err, id);
    }
    // The update returns after its transaction committed: the row is current.
    return { license: toLicenseView(await requireLicense(id)), workflow: snapshot };
  }

  return {
    workflowUrl,
    ensureLifecycle,

    /**
     * Creates the row (version 1) and its audit event in one transaction, then starts the
     * lifecycle. Repeating the call with the same id returns the existing license (created:
     * false) and starts its lifecycle if an earlier try could not.
     */
    async createLicense(
      actor: Actor,
      input: CreateLicenseInput,
    ): Promise<{ license: LicenseView; created: boolean; workflow: { id: string; url: string } }> {
      const now = clock.now();
      const features = licenseFeatures(input.features);
      const notBefore = input.notBefore ? new Date(input.notBefore) : now;
      const endOf = (days: number | undefined, at: string | undefined, what: string): Date => {
        if ((days === undefined) === (at === undefined))
          throw new AppError(
            'BAD_REQUEST',
            `Give exactly one of ${what}.days and ${what}.${what === 'trial' ? 'endsAt' : 'expiresAt'}.`,
          );
        const t =
          days !== undefined ? new Date(Math.max(now.getTime(), notBefore.getTime()) + days * DAY_MS) : new Date(at!);
        if (t.getTime() <= now.getTime() || t.getTime() <= notBefore.getTime())
          throw new AppError('BAD_REQUEST', `The ${what} must end in the future and after notBefore.`);
        return t;
      };
      const trialEndsAt = input.trial ? endOf(input.trial.days, input.trial.endsAt, 'trial') : null;
      const expiresAt = input.term ? endOf(input.term.days, input.term.expiresAt, 'term') : trialEndsAt!;
      const id = input.id ?? newId('lic');

      const { row, created, customerName } = await withTransaction(pool, async (tx) => {
        const terms = {
          expiresAt: expiresAt.toISOString(),
          trialEndsAt: trialEndsAt?.toISOString() ?? null,
          graceDays: input.graceDays,
          trialEndState: input.trialEndState,
        };
        // One statement reads the customer and inserts the row only if it exists and is active.
        const { customer, inserted } = await insertLicenseForCustomer(tx, {
          id,
          customerId: input.customerId,
          plan: input.plan,
          features,
          maxAgents: input.maxAgents,
          state: scheduledState(terms, now.getTime()),
          notBefore,
          expiresAt,
          trialEndsAt,
          trialEndState: input.trialEndState,
          graceDays: input.graceDays,
          policy: input.policy,
          seatReclaimDays: input.seatReclaimDays ?? DEFAULT_SEAT_RECLAIM_DAYS,
          now,
        });
        if (!customer) throw new AppError('NOT_FOUND', `No customer ${input.customerId}.`);
        if (!customer.active) throw new AppError('CONFLICT', `Customer ${input.customerId} is deactivated.`);
        if (!inserted) {
          const existing = await getLicense(tx, id);
          if (!existing || existing.customer_id !== input.customerId)
            throw new AppError('CONFLICT', `License id ${id} is already in use.`);
          return { row: existing, created: false, customerName: customer.name };
        }
        await appendAudit(
          tx,
          {
            actor,
            action: 'license.created',
            subject: { kind: 'license', id },
            data: {
              customerId: input.customerId,
              plan: input.plan,
              maxAgents: input.maxAgents,
              state: inserted.state,
              expiresAt: terms.expiresAt,
              trialEndsAt: terms.trialEndsAt,
              graceDays: input.graceDays,
              trialEndState: input.trialEndState,
              ...(input.policy ? { policyId: input.policy.id, policyVersion: input.policy.version } : {}),
              taskKinds: entitledKinds(features),
            },
            idempotencyKey: `${licenseWorkflowId(id)}#0`,
          },
          clock,
        );
        return { row: inserted, created: true, customerName: customer.name };
      });
      try {
        await ensureLifecycle(row, customerName);
      } catch {
        throw new AppError(
          'UNAVAILABLE',
          `License ${id} was recorded but its lifecycle could not be started; repeat the request with the same id.`,
        );
      }
      return { license: toLicenseView(row), created, workflow: { id: licenseWorkflowId(id), url: workflowUrl(id) } };
    },

    async listLicenses(q: LicenseListQuery): Promise<{ items: LicenseView[]; nextCursor: string | null }> {
      const rows = await listLicenses(pool, {
        customerId: q.customerId,
        states: q.state ? [q.state] : undefined,
        after: q.cursor ? decodeCursor(q.cursor) : undefined,
        limit: q.limit + 1,
      });
      const page = rows.slice(0, q.limit);
      return {
        items: page.map(toLicenseView),
        nextCursor: rows.length > q.limit ? encodeCursor(page[page.length - 1]!) : null,
      };
    },

    /**
     * The row, plus (for operators) the workflow's own view, its Temporal Web link and the
     * changes the lifecycle accepts in the current state (the workflow's answer when it gives one).
     */
    async getLicense(id: string, scope?: { customerId: string }): Promise<LicenseDetailView> {
      const row = await requireLicense(id, scope);
      const license = toLicenseView(row);
      const [current, runId] = await Promise.all([queryWorkflow(id), currentRunId(id)]);
      return {
        license,
        workflow: { id: licenseWorkflowId(id), url: workflowUrl(id, runId), current },
        actions: licenseActions(current ?? snapshotOfView(license), clock.now().getTime()),
      };
    },

    async getLicenseRow(id: string, scope?: { customerId: string }, db: Queryable = pool): Promise<LicenseRow> {
      return requireLicense(id, scope, db);
    },

    renewLicense: (id: string, actor: Actor, expiresAt: string, o: ChangeOptions = {}) =>
      update(id, (h) =>
        h.executeUpdate(renewUpdate, { args: [signed(id, 'renew', { expiresAt, actor })], ...updateIdOf(o, 'renew') }),
      ),
    convertTrial: (id: string, actor: Actor, expiresAt: string, o: ChangeOptions = {}) =>
      update(id, (h) =>
        h.executeUpdate(convertTrialUpdate, {
          args: [signed(id, 'convertTrial', { expiresAt, actor })],
          ...updateIdOf(o, 'convertTrial'),
        }),
      ),
    /** The reason is stored, audited and shown: secret-looking parts of it are scrubbed first. */
    suspendLicense: (id: string, actor: Actor, reason: string, o: ChangeOptions = {}) =>
      update(id, (h) =>
        h.executeUpdate(suspendUpdate, {
          args: [signed(id, 'suspend', { reason: scrubFreeText(reason, 500), actor })],
          ...updateIdOf(o, 'suspend'),
        }),
      ),
    resumeLicense: (id: string, actor: Actor, o: ChangeOptions = {}) =>
      update(id, (h) =>
        h.executeUpdate(resumeUpdate, { args: [signed(id, 'resume', { actor })], ...updateIdOf(o, 'resume') }),
      ),
    /** Returns once the revocation is committed and its NOTIFY sent. */
    revokeLicense: (id: string, actor: Actor, reason: string, o: ChangeOptions = {}) =>
      update(id, (h) =>
        h.executeUpdate(revokeUpdate, {
          args: [signed(id, 'revoke', { reason: scrubFreeText(reason, 500), actor })],
          ...updateIdOf(o, 'revoke'),
        }),
      ),

    /**
     * Changes plan, features (the whole map), maxAgents and/or graceDays through the lifecycle.
     * The row refuses a change that changes nothing (400) and a maxAgents below the agents that
     * hold a seat (409); the version rises, so every bound agent gets its re-issued document.
     */
    changeTerms: (id: string, actor: Actor, terms: TermsChange, o: ChangeOptions = {}) =>
      update(id, (h) =>
        h.executeUpdate(changeTermsUpdate, {
          // Features go through the same rule as at creation: task kinds not named are written as false.
          args: [
            signed(id, 'changeTerms', {
              terms: terms.features ? { ...terms, features: licenseFeatures(terms.features) } : terms,
              actor,
            }),
          ],
          ...updateIdOf(o, 'changeTerms'),
        }),
      ),

    /** Signs the document of a license row (key from the key files; never from a payload). */
    signLicenseDocument(row: LicenseRow, binding?: { agentId: string; fingerprintCommitment: string }): SignedLicense {
      return signLicense(deps.signer, licenseDocumentFor(row, clock.now(), binding));
    },

    /** Reads the license (inside the caller's transaction if given) and signs its document. */
    async buildSignedLicense(
      licenseId: string,
      binding?: { agentId: string; fingerprintCommitment: string },
      db: Queryable = pool,
    ): Promise<SignedLicense> {
      const row = await requireLicense(licenseId, undefined, db);
      return signLicense(deps.signer, licenseDocumentFor(row, clock.now(), binding));
    },
  };
}

export type LicenseService = ReturnType<typeof createLicenseService>;
