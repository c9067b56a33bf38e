import { rmSync } from 'node:fs';
import type { PostgresServer } from '../../scripts/stack/postgres';
import type { ManagedProcess } from '../../scripts/stack/processes';

export default async function globalTeardown(): Promise<void> {
  const stack = (globalThis as Record<string, unknown>).__agentinaTestStack as
    | { pg: PostgresServer; temporal: ManagedProcess; bundlePath: string }
    | undefined;
  if (!stack) return;
  await stack.temporal.stop();
  await stack.pg.stop();
  rmSync(stack.bundlePath, { force: true });
}
