import type { TestStack } from './stack';
import { removeSoftHsm } from './softhsm';

export default async function globalTeardown(): Promise<void> {
  const stack = (globalThis as Record<string, unknown>).__agentinaTestStack as TestStack | undefined;
  await stack?.stop();
  removeSoftHsm();
}
