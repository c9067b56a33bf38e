import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowIdConflictPolicy,
  WorkflowIdReusePolicy,
} from '@temporalio/client';
import type { Pool, PoolClient } from 'pg';
import { listen } from '../../db/pool';
import * as repo from '../../db/webhooks-repo';
import type { Clock } from '../../protocol';
import { WEBHOOK_WORKFLOW_TYPE, webhookEventId, webhookWorkflowId } from '../../workflows/webhook-delivery';
import type { TemporalDeps } from '../temporal';

/** The dispatcher looks for deliveries whose notice it missed (a restart, a dropped connection). */
export const DISPATCH_POLL_MS = 5_000;
const DISPATCH_BATCH = 200;
const DISPATCH_CONCURRENCY = 16;

/** A delivery workflow's input: two ids, never the payload or a secret. */
export type WebhookDeliveryInput = { endpointId: string; eventSeq: string };
export type WebhookDeliveryResult = { outcome: 'succeeded' | 'failed'; attempts: number };

/**
 * Starts one delivery's workflow; false when its id refuses: one is running, or (unless `again`,
 * a redelivery by hand) one ran before.
 */
export async function startDelivery(
  temporal: TemporalDeps,
  endpointId: string,
  seq: string,
  again: boolean,
): Promise<boolean> {
  try {
    await temporal.client.workflow.start(WEBHOOK_WORKFLOW_TYPE, {
      taskQueue: temporal.taskQueue,
      workflowId: webhookWorkflowId(endpointId, webhookEventId(seq)),
      args: [{ endpointId, eventSeq: seq } satisfies WebhookDeliveryInput],
      staticSummary: `webhook ${webhookEventId(seq)} to ${endpointId}`,
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
      workflowIdReusePolicy: again ? WorkflowIdReusePolicy.ALLOW_DUPLICATE : WorkflowIdReusePolicy.REJECT_DUPLICATE,
    });
    return true;
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return false;
    throw err;
  }
}

/** Starts delivery workflows: one per pending delivery, on the fan-out's notice or a poll. */
export function createWebhookDispatcher(deps: {
  pool: Pool;
  temporal: TemporalDeps;
  clock: Clock;
  onWarning: (message: string, err: unknown) => void;
}) {
  const { pool, clock } = deps;

  /** Starts the workflow of every delivery not yet started; one pass, oldest event first. */
  async function dispatchPending(): Promise<number> {
    let started = 0;
    for (;;) {
      const rows = await repo.listUndispatched(pool, DISPATCH_BATCH);
      // Several starts in flight at once: each is a round trip to Temporal, then one to PostgreSQL.
      let next = 0;
      const lane = async () => {
        for (let i = next++; i < rows.length; i = next++) {
          const r = rows[i]!;
          // Already started (a pass that died before marking it): the id refuses a twin.
          await startDelivery(deps.temporal, r.endpoint_id, r.event_seq, false);
          await repo.markDispatched(pool, r.endpoint_id, r.event_seq, clock.now());
          started++;
        }
      };
      await Promise.all(Array.from({ length: DISPATCH_CONCURRENCY }, lane));
      if (rows.length < DISPATCH_BATCH) return started;
    }
  }

  return {
    dispatchPending,

    /**
     * The worker's dispatcher: starts delivery workflows when the fan-out trigger NOTIFYs, and
     * every DISPATCH_POLL_MS for whatever a missed notice left behind. Returns its stop function.
     */
    startDispatcher(pollMs = DISPATCH_POLL_MS): () => Promise<void> {
      let stopped = false;
      let running: Promise<void> = Promise.resolve();
      let again = false;
      let client: PoolClient | undefined;
      const pass = () => {
        if (stopped) return;
        if (again) return;
        again = true;
        running = running.then(async () => {
          again = false;
          if (stopped) return;
          await dispatchPending().catch((err: unknown) => deps.onWarning('webhook dispatch failed', err));
        });
      };
      const connect = async () => {
        try {
          const c = await pool.connect();
          c.on('notification', pass);
          c.on('error', (err) => {
            deps.onWarning('webhook LISTEN connection failed', err);
            if (client === c) client = undefined;
            c.release(err);
          });
          await listen(c, repo.WEBHOOKS_CHANNEL);
          if (stopped) c.release(true);
          else client = c;
        } catch (err) {
          deps.onWarning('webhook LISTEN connection failed', err);
        }
      };
      void connect().then(pass);
      const timer = setInterval(() => {
        if (!client) void connect();
        pass();
      }, pollMs);
      return async () => {
        stopped = true;
        clearInterval(timer);
        await running;
        client?.release(true);
        client = undefined;
      };
    },
  };
}
