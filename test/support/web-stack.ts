import { mkdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { systemClock } from '../../protocol';
import { ensureWebBuilt } from '../../scripts/stack/web';
import { ROOT } from '../../scripts/stack/tools';
import { launchBrowser } from './browser';
import { createTestDatabase, type TestDatabase } from './db';
import { createTestKeysDir } from './license-helpers';
import { startTestServer } from './server';
import { connectTestTemporal, type TestTemporal, runTestWorker } from './temporal';

/**
 * Everything a browser test needs: the built UI, a fresh database, the real app listening on a
 * free port with the production authenticator, a Temporal worker for license lifecycles on this
 * file's own task queue, its own key files, and Debian's Chromium.
 */
export type WebStack = {
  db: TestDatabase;
  temporal: TestTemporal;
  baseUrl: string;
  keysDir: string;
  browser: Browser;
  close(): Promise<void>;
};

const LOCK = path.join(ROOT, '.data', 'web-build.lock');
const STALE_LOCK_MS = 180_000;

/** Builds web/dist if stale; test files running in parallel build it once, not at the same time. */
export async function buildWebOnce(): Promise<void> {
  mkdirSync(path.dirname(LOCK), { recursive: true });
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch {
      try {
        if (Date.now() - statSync(LOCK).mtimeMs > STALE_LOCK_MS) rmSync(LOCK, { recursive: true, force: true });
      } catch {
        // gone meanwhile: try again
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  try {
    ensureWebBuilt();
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

export async function startWebStack(label: string): Promise<WebStack> {
  await buildWebOnce();
  // Closed in reverse order; a failure half-way closes what was already started.
  const closers: Array<() => Promise<void> | void> = [];
  const close = async () => {
    for (const c of closers.reverse()) await c();
  };
  try {
    const db = await createTestDatabase(label);
    closers.push(() => db.drop());
    const keys = createTestKeysDir();
    closers.push(() => keys.remove());
    const temporal = await connectTestTemporal(label);
    closers.push(() => temporal.close());
    closers.push(await runTestWorker(temporal, { pool: db.pool, clock: systemClock, keysDir: keys.dir }));
    const server = await startTestServer({
      pool: db.pool,
      env: {
        TEMPORAL_TASK_QUEUE: temporal.taskQueue,
        AGENTINA_KEYS_DIR: keys.dir,
        TEMPORAL_UI_URL: 'http://127.0.0.1:8233',
      },
    });
    closers.push(() => server.close());
    const browser = await launchBrowser();
    closers.push(() => browser.close());
    return { db, temporal, baseUrl: server.baseUrl, keysDir: keys.dir, browser, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Pages in fresh browser contexts that record uncaught page errors and CSP refusals, so a test
 * file can assert after each test that none happened; `closeAll` closes every context it made.
 */
export function createPageTracker(stack: () => WebStack) {
  const contexts: BrowserContext[] = [];
  const problems: string[] = [];
  return {
    problems,
    async newPage(): Promise<Page> {
      const context = await stack().browser.newContext();
      contexts.push(context);
      const page = await context.newPage();
      page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
      page.on('console', (msg) => {
        if (/Content Security Policy/i.test(msg.text())) problems.push(`CSP: ${msg.text()}`);
      });
      return page;
    },
    async closeAll(): Promise<void> {
      for (const c of contexts.splice(0)) await c.close();
    },
  };
}

/** The text of the first element `locator` finds, once it is attached. */
export async function textOf(locator: Locator): Promise<string> {
  await locator.first().waitFor({ state: 'attached' });
  return (await locator.first().textContent()) ?? '';
}

/** JSON calls to the API from inside `page`, with its session cookie, as the UI makes them. */
export function pageApi(page: Page) {
  return (method: string, url: string, body: unknown) =>
    page.evaluate(
      async ([m, u, b]) => {
        const r = await fetch(u, {
          method: m,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(b),
        });
        return (await r.json()) as Record<string, unknown>;
      },
      [method, url, body] as const,
    );
}
