import { z } from 'zod';
import { taskId, taskResultRequestSchema, type TaskResultRequest } from '../protocol';
import type { PrefixStore } from './prefix-store';
import { PREFIX_FILES } from './settings';

/**
 * Task state under the prefix, written atomically before and after every step: the task in
 * flight (so a crash is found at the next start), results not yet delivered (the outbox), and the
 * ids already handled (so a re-offered task is never run twice).
 */
const taskStateSchema = z.strictObject({
  inflight: z.strictObject({ id: taskId, kind: z.string().max(64), startedAt: z.string().max(40) }).nullable(),
  outbox: z.array(z.strictObject({ id: taskId, body: taskResultRequestSchema })).max(1000),
  done: z.array(z.strictObject({ id: taskId, outcome: taskResultRequestSchema.shape.outcome })).max(1000),
});
export type TaskState = z.infer<typeof taskStateSchema>;
const DONE_KEEP = 500;

export function createTaskStore(store: PrefixStore) {
  let state: TaskState = { inflight: null, outbox: [], done: [] };
  const load = () => {
    const loaded = taskStateSchema.safeParse(store.readJson(PREFIX_FILES.tasks));
    state = loaded.success ? loaded.data : { inflight: null, outbox: [], done: [] };
  };
  load();
  const save = () => store.writeJson(PREFIX_FILES.tasks, state);

  return {
    /** Re-reads the file: the runner does so when it starts, to find what the last run left. */
    load,
    state: (): Readonly<TaskState> => state,
    begin(id: string, kind: string, at: Date): void {
      state = { ...state, inflight: { id, kind, startedAt: at.toISOString() } };
      save();
    },
    /** Records the outcome, clears the in-flight slot and queues the result for delivery. */
    finish(id: string, body: TaskResultRequest): void {
      const done = [...state.done.filter((d) => d.id !== id), { id, outcome: body.outcome }].slice(-DONE_KEEP);
      state = {
        inflight: state.inflight?.id === id ? null : state.inflight,
        outbox: [...state.outbox.filter((o) => o.id !== id), { id, body }].slice(-1000),
        done,
      };
      save();
    },
    delivered(id: string): void {
      state = { ...state, outbox: state.outbox.filter((o) => o.id !== id) };
      save();
    },
    handled: (id: string) => state.done.find((d) => d.id === id) ?? null,
  };
}
export type TaskStore = ReturnType<typeof createTaskStore>;
