import type { Pool } from 'pg';
import { listRevocationsForLicense } from '../../db/agents-repo';
import type { Clock, Signer } from '../../protocol';
import type { z } from 'zod';
import type { revocationsPayloadSchema, signedRevocationsSchema } from '../../protocol';

export type SignedRevocations = z.infer<typeof signedRevocationsSchema>;
type RevocationsPayload = z.infer<typeof revocationsPayloadSchema>;

/**
 * The revocation list for agents that poll instead of parking: feed rows with bad news for the
 * caller's own license (never another tenant's), signed with the license key. `nextCursor` is
 * the last row returned (or the cursor given), so paging never skips a row it has not shown.
 */
export function createRevocationService(deps: { pool: Pool; signer: Signer; clock: Clock }) {
  return {
    async listSince(licenseId: string, cursor: number, limit: number): Promise<SignedRevocations> {
      const rows = await listRevocationsForLicense(deps.pool, licenseId, cursor, limit);
      const payload: RevocationsPayload = {
        kind: 'agentina.revocations/v1',
        items: rows.map((r) => ({
          cursor: r.id,
          licenseId: r.license_id,
          ...(r.agent_id ? { agentId: r.agent_id } : {}),
          state: r.state,
          version: r.version,
          ...(r.reason ? { reason: r.reason } : {}),
          at: r.created_at.toISOString(),
        })),
        nextCursor: rows.length ? rows[rows.length - 1]!.id : cursor,
        serverTime: deps.clock.now().toISOString(),
      };
      return { payload, signature: deps.signer.sign(payload) };
    },
  };
}
