import type { Pool } from 'pg';
import { listRevocationsForLicense } from '../../db/status-feed-repo';
import type { Clock, Signer, SignedRevocations } from '../../protocol';

type RevocationsPayload = SignedRevocations['payload'];

/**
 * The signed bad-news feed an agent reads when it is back in contact (for its journal): feed rows with bad news for the
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
