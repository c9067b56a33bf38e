import type { Pool } from 'pg';
import { appendAudit } from '../../db/audit-repo';
import { getLicense } from '../../db/licenses-repo';
import {
  archivePolicyRow,
  getPolicy,
  insertPolicy,
  insertPolicyVersion,
  listLicenseIdsOfPolicy,
  listPolicies,
  listPolicyVersions,
  setPolicyVersion,
  type PolicyRow,
  type PolicyTermsRow,
} from '../../db/policies-repo';
import { withTransaction, type Tx } from '../../db/pool';
import type { AuditAction } from '../../protocol/audit-actions';
import {
  canonicalJson,
  DEFAULT_SEAT_RECLAIM_DAYS,
  newId,
  type Actor,
  type Clock,
  type PolicyKind,
  type TrialEndState,
  type UpdatePolicy,
} from '../../protocol';
import type {
  Features,
  PolicyApplyOutcomeView,
  PolicyApplyView,
  PolicyTermsView,
  PolicyView,
} from '../../protocol/views';
import { AppError } from '../errors';
import { licenseFeatures } from '../licenses/license-features';
import type { CreateLicenseInput, LicenseService } from '../licenses/license-service';
import { diffTerms } from '../licenses/license-terms-change';

export type PolicyInput = {
  name: string;
  plan?: string | undefined;
  kind: PolicyKind;
  durationDays: number;
  graceDays?: number | undefined;
  trialEndState?: TrialEndState | undefined;
  maxAgents: number;
  features?: Features | undefined;
  seatReclaimDays?: number | undefined;
  updatePolicy?: UpdatePolicy | undefined;
};
export type PolicyPatch = Partial<PolicyInput>;

/** A license request as the API takes it: a policy's values, overridden by what is given. */
export type LicenseRequest = {
  id?: string | undefined;
  customerId: string;
  policyId?: string | undefined;
  plan?: string | undefined;
  features?: Features | undefined;
  maxAgents?: number | undefined;
  graceDays?: number | undefined;
  trialEndState?: TrialEndState | undefined;
  notBefore?: string | undefined;
  trial?: { days?: number | undefined; endsAt?: string | undefined } | undefined;
  term?: { days?: number | undefined; expiresAt?: string | undefined } | undefined;
};

/** Defaults of a policy (and of a license typed in by hand). */
export const DEFAULT_GRACE_DAYS = 7;
const APPLY_CONCURRENCY = 4;
const MAX_POLICY_VERSIONS = 10_000;

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);
const isUniqueViolation = (err: unknown): boolean => (err as { code?: string } | null)?.code === '23505';

function termsView(t: PolicyTermsRow): PolicyTermsView {
  return {
    plan: t.plan,
    kind: t.kind,
    durationDays: t.duration_days,
    graceDays: t.grace_days,
    trialEndState: t.trial_end_state,
    maxAgents: t.max_agents,
    features: t.features,
    seatReclaimDays: t.seat_reclaim_days,
    updatePolicy: t.update_policy,
  };
}

export function toPolicyView(p: PolicyRow): PolicyView {
  return {
    id: p.id,
    name: p.name,
    version: p.version,
    archivedAt: iso(p.archived_at),
    createdAt: p.created_at.toISOString(),
    updatedAt: p.updated_at.toISOString(),
    licenseCount: p.license_count,
    ...termsView(p),
  };
}

function termsRow(v: PolicyTermsView): PolicyTermsRow {
  if (v.kind === 'trial' && v.durationDays > 365)
    throw new AppError('BAD_REQUEST', 'A trial policy lasts at most 365 days.');
  return {
    plan: v.plan,
    kind: v.kind,
    duration_days: v.durationDays,
    grace_days: v.graceDays,
    trial_end_state: v.trialEndState,
    max_agents: v.maxAgents,
    features: v.features,
    seat_reclaim_days: v.seatReclaimDays,
    update_policy: v.updatePolicy,
  };
}

/** One audit row about a policy, in the caller's transaction. */
function auditPolicy(
  tx: Tx,
  clock: Clock,
  e: { actor: Actor; action: Extract<AuditAction, `policy.${string}`>; id: string; data: Record<string, unknown> },
) {
  return appendAudit(
    tx,
    { actor: e.actor, action: e.action, subject: { kind: 'policy', id: e.id }, data: e.data },
    clock,
  );
}

/**
 * Policies: named license templates, each change a new immutable version. Licenses copy a
 * version's values when they are created and record which; a policy change reaches existing
 * licenses only through `applyPolicy`, which sends each one's lifecycle a change of terms.
 */
export function createPolicyService(deps: {
  pool: Pool;
  clock: Clock;
  licenses: Pick<LicenseService, 'changeTerms' | 'createLicense'>;
}) {
  const { pool, clock } = deps;

  async function requirePolicy(id: string, db: Parameters<typeof getPolicy>[0] = pool, forUpdate = false) {
    const p = await getPolicy(db, id, { forUpdate });
    if (!p) throw new AppError('NOT_FOUND', `No policy ${id}.`);
    return p;
  }

  /** One license's outcome of an apply: the lifecycle decides; a refusal is reported, not thrown. */
  async function applyTo(
    licenseId: string,
    policy: PolicyRow,
    actor: Actor,
    key: string,
  ): Promise<PolicyApplyOutcomeView> {
    const terms = {
      plan: policy.plan,
      features: policy.features,
      maxAgents: policy.max_agents,
      graceDays: policy.grace_days,
      policy: { id: policy.id, version: policy.version },
    };
    const row = await getLicense(pool, licenseId);
    if (row && !diffTerms(row, terms)) return { licenseId, outcome: 'unchanged', version: row.version, message: null };
    try {
      const { license } = await deps.licenses.changeTerms(licenseId, actor, terms, {
        idempotencyKey: `${key}.${licenseId}`,
      });
      return { licenseId, outcome: 'changed', version: license.version, message: null };
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      return {
        licenseId,
        outcome: err.code === 'UNAVAILABLE' ? 'failed' : 'refused',
        version: row?.version ?? null,
        message: err.message,
      };
    }
  }

  return {
    async createPolicy(actor: Actor, input: PolicyInput): Promise<PolicyView> {
      const id = newId('pol');
      const now = clock.now();
      const terms = termsRow({
        plan: input.plan ?? input.name,
        kind: input.kind,
        durationDays: input.durationDays,
        graceDays: input.graceDays ?? DEFAULT_GRACE_DAYS,
        trialEndState: input.trialEndState ?? 'expired',
        maxAgents: input.maxAgents,
        features: licenseFeatures(input.features),
        seatReclaimDays: input.seatReclaimDays ?? DEFAULT_SEAT_RECLAIM_DAYS,
        updatePolicy: input.updatePolicy ?? 'automatic',
      });
      return withTransaction(pool, async (tx) => {
        const inserted = await insertPolicy(tx, {
          policyId: id,
          version: 1,
          name: input.name,
          terms,
          createdBy: actor,
          now,
        });
        if (!inserted) throw new AppError('CONFLICT', `A policy named "${input.name}" already exists.`);
        await auditPolicy(tx, clock, {
          actor,
          action: 'policy.created',
          id,
          data: { name: input.name, version: 1, terms: termsView(terms) },
        });
        return toPolicyView((await getPolicy(tx, id))!);
      });
    },

    async listPolicies(q: { archived: boolean }): Promise<{ items: PolicyView[] }> {
      return { items: (await listPolicies(pool, { archived: q.archived, limit: 500 })).map(toPolicyView) };
    },

    async getPolicy(id: string): Promise<{
      policy: PolicyView;
      versions: Array<
        PolicyTermsView & { version: number; name: string; createdAt: string; createdBy: { kind: string; id: string } }
      >;
    }> {
      const policy = await requirePolicy(id);
      const versions = await listPolicyVersions(pool, id);
      return {
        policy: toPolicyView(policy),
        versions: versions.map((v) => ({
          version: v.version,
          name: v.name,
          createdAt: v.created_at.toISOString(),
          createdBy: { kind: v.created_by_kind, id: v.created_by_id },
          ...termsView(v),
        })),
      };
    },

    /** Writes version n + 1 from the current one and the patch; licenses keep the version they have. */
    async updatePolicy(actor: Actor, id: string, patch: PolicyPatch): Promise<PolicyView> {
      try {
        return await withTransaction(pool, async (tx) => {
          const cur = await requirePolicy(id, tx, true);
          if (cur.archived_at) throw new AppError('CONFLICT', `Policy ${id} is archived; it cannot be changed.`);
          if (cur.version >= MAX_POLICY_VERSIONS) throw new AppError('CONFLICT', `Policy ${id} has too many versions.`);
          const before = termsView(cur);
          const after: PolicyTermsView = {
            plan: patch.plan ?? before.plan,
            kind: patch.kind ?? before.kind,
            durationDays: patch.durationDays ?? before.durationDays,
            graceDays: patch.graceDays ?? before.graceDays,
            trialEndState: patch.trialEndState ?? before.trialEndState,
            maxAgents: patch.maxAgents ?? before.maxAgents,
            features: patch.features ? licenseFeatures(patch.features) : before.features,
            seatReclaimDays: patch.seatReclaimDays ?? before.seatReclaimDays,
            updatePolicy: patch.updatePolicy ?? before.updatePolicy,
          };
          const name = patch.name ?? cur.name;
          if (name === cur.name && canonicalJson(after) === canonicalJson(before))
            throw new AppError('BAD_REQUEST', `The change leaves policy ${id} as it is.`);
          const version = cur.version + 1;
          const now = clock.now();
          await insertPolicyVersion(tx, { policyId: id, version, name, terms: termsRow(after), createdBy: actor, now });
          await setPolicyVersion(tx, id, version, name, now);
          const changed = (Object.keys(after) as Array<keyof PolicyTermsView>).filter(
            (k) => canonicalJson(after[k]) !== canonicalJson(before[k]),
          );
          await auditPolicy(tx, clock, {
            actor,
            action: 'policy.updated',
            id,
            data: {
              version,
              ...(name !== cur.name ? { name: { before: cur.name, after: name } } : {}),
              before: Object.fromEntries(changed.map((k) => [k, before[k]])),
              after: Object.fromEntries(changed.map((k) => [k, after[k]])),
            },
          });
          return toPolicyView((await getPolicy(tx, id))!);
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw new AppError('CONFLICT', `A policy named "${patch.name}" already exists.`);
        throw err;
      }
    },

    /** Archived policies stay readable (licenses point at them) but make no new licenses and take no changes. */
    async archivePolicy(actor: Actor, id: string): Promise<PolicyView> {
      return withTransaction(pool, async (tx) => {
        const cur = await requirePolicy(id, tx, true);
        if (cur.archived_at) throw new AppError('CONFLICT', `Policy ${id} is already archived.`);
        await archivePolicyRow(tx, id, clock.now());
        await auditPolicy(tx, clock, {
          actor,
          action: 'policy.archived',
          id,
          data: { version: cur.version },
        });
        return toPolicyView((await getPolicy(tx, id))!);
      });
    },

    /**
     * Sends the policy's current terms (plan, features, maxAgents, graceDays) to every license of
     * the policy that is not revoked, each through its lifecycle. A license's refusal (e.g. more
     * agents than the new maxAgents) is listed, not fatal. Dates are not touched: a policy's
     * length applies when a license is created.
     */
    async applyPolicy(
      actor: Actor,
      id: string,
      o: { idempotencyKey?: string | undefined } = {},
    ): Promise<PolicyApplyView> {
      const policy = await requirePolicy(id);
      if (policy.archived_at) throw new AppError('CONFLICT', `Policy ${id} is archived; it cannot be applied.`);
      const key = o.idempotencyKey ?? newId('pol').slice(4);
      const ids = await listLicenseIdsOfPolicy(pool, id);
      const results: PolicyApplyOutcomeView[] = new Array(ids.length);
      let next = 0;
      const worker = async () => {
        while (next < ids.length) {
          const i = next++;
          results[i] = await applyTo(ids[i]!, policy, actor, key);
        }
      };
      await Promise.all(Array.from({ length: Math.min(APPLY_CONCURRENCY, ids.length) }, worker));
      const count = (k: PolicyApplyOutcomeView['outcome']) => results.filter((r) => r.outcome === k).length;
      await withTransaction(pool, async (tx) => {
        await auditPolicy(tx, clock, {
          actor,
          action: 'policy.applied',
          id,
          data: {
            version: policy.version,
            changed: count('changed'),
            unchanged: count('unchanged'),
            refused: results
              .filter((r) => r.outcome === 'refused' || r.outcome === 'failed')
              .slice(0, 100)
              .map((r) => ({ licenseId: r.licenseId, outcome: r.outcome, message: (r.message ?? '').slice(0, 300) })),
          },
        });
      });
      return { policyId: id, policyVersion: policy.version, results };
    },

    /**
     * The license to create: a policy's current values (recorded on the license with its
     * version), overridden field by field by what the request gives; without a policy, the
     * request's own values and the defaults.
     */
    async resolveLicenseInput(r: LicenseRequest): Promise<CreateLicenseInput> {
      const p = r.policyId ? await requirePolicy(r.policyId) : null;
      if (p?.archived_at) throw new AppError('CONFLICT', `Policy ${p.id} is archived; it makes no new licenses.`);
      if (r.trial && r.term) throw new AppError('BAD_REQUEST', 'Give at most one of trial and term.');
      const plan = r.plan ?? p?.plan;
      const maxAgents = r.maxAgents ?? p?.max_agents;
      if (plan === undefined || maxAgents === undefined)
        throw new AppError('BAD_REQUEST', 'Give plan and maxAgents, or a policyId that supplies them.');
      const length =
        r.trial !== undefined
          ? { trial: r.trial, term: undefined }
          : r.term !== undefined
            ? { term: r.term, trial: undefined }
            : p
              ? p.kind === 'trial'
                ? { trial: { days: p.duration_days }, term: undefined }
                : { term: { days: p.duration_days }, trial: undefined }
              : null;
      if (!length) throw new AppError('BAD_REQUEST', 'Give exactly one of trial and term, or a policyId.');
      return {
        id: r.id,
        customerId: r.customerId,
        plan,
        features: r.features ?? p?.features,
        ...(p ? { seatReclaimDays: p.seat_reclaim_days } : {}),
        maxAgents,
        graceDays: r.graceDays ?? p?.grace_days ?? DEFAULT_GRACE_DAYS,
        trialEndState: r.trialEndState ?? p?.trial_end_state ?? 'expired',
        notBefore: r.notBefore,
        ...(p ? { policy: { id: p.id, version: p.version } } : {}),
        ...length,
      };
    },
  };
}

export type PolicyService = ReturnType<typeof createPolicyService>;
