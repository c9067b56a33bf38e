import type { Pool } from 'pg';
import { appendAudit, withTransaction } from '../../db';
import { readAgentStatuses } from '../../db/agents-repo';
import {
  signedStatusSchema,
  STATUS_FILE_FORMAT,
  STATUS_FILE_MAX_DAYS,
  statusFileValidUntil,
  type Actor,
  type Clock,
  type Signer,
  type StatusFile,
} from '../../protocol';
import { AppError } from '../errors';
import { statusPayloadOf } from './status-service';

export type StatusFileDeps = { pool: Pool; clock: Clock; signer: Signer };

/**
 * Status files for sites that never connect: the agent's signed status answer as it stands now,
 * with `graceDays` set to the window the admin chose, so the agent's own checks (signature,
 * binding to its id and license, freshness, never older than the answer it holds) take it as
 * they take an online answer and its grace runs to the end of the window. Audited on issue.
 */
export function createStatusFileService(deps: StatusFileDeps) {
  return {
    async issue(input: { actor: Actor; agentId: string; validForDays: number }): Promise<StatusFile> {
      if (!Number.isInteger(input.validForDays) || input.validForDays < 1 || input.validForDays > STATUS_FILE_MAX_DAYS)
        throw new AppError('VALIDATION_FAILED', `A status file is valid for 1 to ${STATUS_FILE_MAX_DAYS} days.`, [
          { path: 'body.validForDays', message: `must be an integer from 1 to ${STATUS_FILE_MAX_DAYS}` },
        ]);
      const [row] = await readAgentStatuses(deps.pool, [input.agentId]);
      if (!row) throw new AppError('NOT_FOUND', 'No such agent.');
      if (row.agent_status === 'deregistered')
        throw new AppError('CONFLICT', 'This agent is deregistered; it must be activated again.');
      const now = deps.clock.now();
      const payload = { ...statusPayloadOf(row, now), graceDays: input.validForDays };
      const status = signedStatusSchema.parse({ payload, signature: deps.signer.sign(payload) });
      const validUntil = statusFileValidUntil(payload).toISOString();
      await withTransaction(deps.pool, (tx) =>
        appendAudit(
          tx,
          {
            actor: input.actor,
            action: 'agent.status_file_issued',
            subject: { kind: 'agent', id: row.agent_id },
            data: {
              licenseId: row.license_id,
              customerId: row.customer_id,
              version: payload.version,
              good: payload.good,
              validForDays: input.validForDays,
              validUntil,
            },
          },
          deps.clock,
        ),
      );
      return { format: STATUS_FILE_FORMAT, status, validUntil };
    },
  };
}

export type StatusFileService = ReturnType<typeof createStatusFileService>;
