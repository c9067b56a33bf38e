import { appendFileSync, closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { redactDeep, type Clock } from '../protocol';
import type { PrefixStore } from './prefix-store';

/**
 * The append-only event journal under the prefix: one JSON object per line, redacted with the
 * shared policy before it touches the disk. The live file rotates to journal.1.jsonl … journal.N
 * when it grows past maxBytes; the oldest is dropped.
 */
export type JournalEntry = { at: string; event: string } & Record<string, unknown>;
export type Journal = ReturnType<typeof createJournal>;

export const JOURNAL_DIR = 'journal';
const LIVE = `${JOURNAL_DIR}/journal.jsonl`;

export function createJournal(input: { store: PrefixStore; clock: Clock; maxBytes?: number; keep?: number }) {
  const { store, clock } = input;
  const maxBytes = input.maxBytes ?? 1024 * 1024;
  const keep = input.keep ?? 5;
  store.ensureDir(JOURNAL_DIR);
  const live = store.resolve(LIVE);
  const rotated = (n: number) => store.resolve(`${JOURNAL_DIR}/journal.${n}.jsonl`);

  function rotateIfNeeded(): void {
    let size = 0;
    try {
      size = statSync(live).size;
    } catch {
      return;
    }
    if (size < maxBytes) return;
    rmSync(rotated(keep), { force: true });
    for (let n = keep - 1; n >= 1; n--) {
      try {
        renameSync(rotated(n), rotated(n + 1));
      } catch {
        // a gap in the sequence is fine
      }
    }
    renameSync(live, rotated(1));
  }

  return {
    /** Appends one event; `durable` fsyncs it (task starts, terminal reasons). */
    append(event: string, data: Record<string, unknown> = {}, durable = false): void {
      rotateIfNeeded();
      const entry = { ...(redactDeep(data) as Record<string, unknown>), at: clock.now().toISOString(), event };
      const line = `${JSON.stringify(entry)}\n`;
      appendFileSync(live, line, { mode: 0o600 });
      if (durable) {
        const fd = openSync(live, 'r');
        try {
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
      }
    },
    /** The newest `limit` entries of the live file. */
    tail(limit = 20): JournalEntry[] {
      let text = '';
      try {
        text = readFileSync(live, 'utf8');
      } catch {
        return [];
      }
      const out: JournalEntry[] = [];
      for (const line of text.split('\n').filter(Boolean).slice(-limit)) {
        try {
          out.push(JSON.parse(line) as JournalEntry);
        } catch {
          // a torn last line after a crash is skipped
        }
      }
      return out;
    },
  };
}
