import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Pool } from 'pg';
import type { KeyStore } from '../keys';
import { findCheckpointByKey, insertCheckpoint, latestCheckpoint } from '../../db/audit-checkpoints-repo';
import { appendAudit, readChainHead } from '../../db/audit-repo';
import { withTransaction } from '../../db/pool';
import { checkpointToExportLine, type ChainCheckpoint, type CheckpointStatement, type Clock } from '../../protocol';

export type AuditCheckpointInput = { workflowId: string };

export type AuditCheckpointResult =
  | { outcome: 'signed'; checkpointId: number; sequence: number; hash: string; kid: string }
  | { outcome: 'unchanged'; sequence: number }
  | { outcome: 'empty' };

/** The idempotency key of a checkpoint run: a retried activity stores one checkpoint. */
export const checkpointKey = (workflowId: string): string => `${workflowId}#checkpoint`;

function signed(c: ChainCheckpoint): AuditCheckpointResult {
  return {
    outcome: 'signed',
    checkpointId: c.id,
    sequence: c.statement.sequence,
    hash: c.statement.hash,
    kid: c.signature.kid,
  };
}

export type CheckpointServiceDeps = {
  pool: Pool;
  clock: Clock;
  keys: Pick<KeyStore, 'signer'>;
  /** AUDIT_CHECKPOINT_DIR: where each signed checkpoint is also written, outside the database. */
  heldDir?: string | undefined;
};

export const HELD_CHECKPOINTS_FILE = 'audit-checkpoints.jsonl';

/**
 * Appends the checkpoint, as an export line, to a file outside the database: what CloudTrail's
 * digest files are to its logs. `agentina audit verify --checkpoints <file>` then catches a
 * superuser who cut rows and deleted the stored checkpoints with them. A retried activity may
 * write a line twice; verification ignores the duplicate.
 */
function holdCheckpoint(dir: string, checkpoint: ChainCheckpoint): void {
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  appendFileSync(path.join(dir, HELD_CHECKPOINTS_FILE), `${checkpointToExportLine(checkpoint)}\n`, { mode: 0o640 });
}

export function createCheckpointService(deps: CheckpointServiceDeps) {
  return {
    /** A checkpoint run that gave up: audited once per run (and so announced to webhooks). */
    async recordFailure(input: { workflowId: string; cause: string }): Promise<void> {
      await withTransaction(deps.pool, (tx) =>
        appendAudit(
          tx,
          {
            actor: { kind: 'workflow', id: input.workflowId },
            action: 'audit.checkpoint_failed',
            subject: { kind: 'audit_checkpoint', id: input.workflowId },
            data: { cause: input.cause },
            idempotencyKey: `${input.workflowId}#checkpoint-failed`,
          },
          deps.clock,
        ),
      );
    },

    /**
     * Signs the chain head read from audit_events itself (never the audit_head cache) with the
     * `audit` key from AGENTINA_KEYS_DIR, stores the checkpoint and chains an
     * `audit.checkpoint_signed` event naming it, in one transaction. Nothing is signed when no row
     * was added since the last checkpoint other than that checkpoint's own event.
     */
    async signCheckpoint(input: AuditCheckpointInput): Promise<AuditCheckpointResult> {
      const key = checkpointKey(input.workflowId);
      // Read per run, so a rotated key (`agentina keys generate --purpose audit`) takes effect.
      const signer = deps.keys.signer('audit');
      const result = await withTransaction(
        deps.pool,
        async (tx): Promise<{ outcome: AuditCheckpointResult; checkpoint?: ChainCheckpoint }> => {
          const done = await findCheckpointByKey(tx, key);
          if (done) return { outcome: signed(done), checkpoint: done };
          const head = await readChainHead(tx);
          if (!head) return { outcome: { outcome: 'empty' } };
          const last = await latestCheckpoint(tx);
          const headSeq = head.seq;
          if (
            last &&
            (last.statement.sequence === headSeq ||
              (head.action === 'audit.checkpoint_signed' && head.checkpointId === last.id))
          ) {
            return { outcome: { outcome: 'unchanged', sequence: last.statement.sequence } };
          }
          const statement: CheckpointStatement = {
            sequence: headSeq,
            hash: head.hash,
            time: deps.clock.now().toISOString(),
          };
          const { checkpoint } = await insertCheckpoint(tx, statement, signer.sign(statement), key);
          await appendAudit(
            tx,
            {
              actor: { kind: 'workflow', id: input.workflowId },
              action: 'audit.checkpoint_signed',
              subject: { kind: 'audit_checkpoint', id: String(checkpoint.id) },
              data: {
                checkpointId: checkpoint.id,
                sequence: checkpoint.statement.sequence,
                hash: checkpoint.statement.hash,
                kid: checkpoint.signature.kid,
              },
              idempotencyKey: key,
            },
            deps.clock,
          );
          return { outcome: signed(checkpoint), checkpoint };
        },
      );
      // After the commit: the file never holds a checkpoint the database rolled back.
      if (result.checkpoint && deps.heldDir) holdCheckpoint(deps.heldDir, result.checkpoint);
      return result.outcome;
    },
  };
}

export type CheckpointService = ReturnType<typeof createCheckpointService>;
