import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { InjectOptions } from 'fastify';
import { createJournal } from '../../agent/journal';
import { createPrefixStore } from '../../agent/prefix-store';
import { createUpdater } from '../../agent/updater';
import {
  heartbeatResponseSchema,
  loadPurposeKeySet,
  loadPurposeSigner,
  systemClock,
  type HeartbeatRequest,
} from '../../protocol';
import { createStaff, heartbeatRequest, type AgentFixture, withJsonBody } from './agent-server-fixtures';
import { actAsAgents } from './agent-keys';
import { createTestDatabase } from './db';
import { createTestKeysDir } from './license-helpers';
import { startTestServer } from './server';
import { makeRelease } from './tuf';

const SYSTEM = { kind: 'system' as const, id: 'update-bed' };

/**
 * The control plane with a TUF repository holding releases 1.0.0 … 1.3.0 (1.3.0 yanked), agents
 * that heartbeat as ones that update themselves, and the real updater (tuf-js) in a directory of
 * its own: what the update-policy and wanted-version tests share.
 */
export async function startUpdateBed(label: string) {
  const db = await createTestDatabase(label);
  const keys = createTestKeysDir();
  const server = await startTestServer({ pool: db.pool, env: { AGENTINA_KEYS_DIR: keys.dir } });
  await server.services.releases.repository.init();
  // Requests with an agent credential carry the agent's proof of possession, as the agent's own.
  actAsAgents(server.app, () => Date.now());
  const pinnedRoot = await (await fetch(`${server.baseUrl}/v1/dist/metadata/1.root.json`)).text();
  const hashes = new Map<string, string>();
  for (const v of ['1.0.0', '1.1.0', '1.2.0', '1.3.0']) {
    const r = makeRelease(loadPurposeSigner(keys.dir, 'release'), v);
    await server.services.releases.publish(SYSTEM, r);
    hashes.set(v, r.signed.manifest.runtimeHash);
  }
  await server.services.releases.yank(SYSTEM, '1.3.0', 'withdrawn');
  const work = mkdtempSync(path.join(tmpdir(), `agentina-${label}-`));
  const inject = (opts: InjectOptions) => server.app.inject(withJsonBody(opts));

  return {
    db,
    keys,
    server,
    staff: createStaff(db.pool, systemClock),
    pinnedRoot,
    hashes,
    work,
    inject,
    /** A heartbeat of an agent that reports its update checks (so it is sent the `update` directive). */
    heartbeat: (a: AgentFixture, over: Partial<HeartbeatRequest> = {}) =>
      inject(
        heartbeatRequest(a, hashes.get(over.agentVersion ?? '1.0.0')!, {
          update: { outcome: 'current', at: new Date().toISOString() },
          ...over,
        }),
      ),
    /** The heartbeat answer's `update` for an agent running `agentVersion`. */
    async directive(a: AgentFixture, agentVersion = '1.0.0') {
      const res = await this.heartbeat(a, { agentVersion });
      if (res.statusCode !== 200) throw new Error(`heartbeat → ${res.statusCode}: ${res.body}`);
      return heartbeatResponseSchema.parse(res.json()).update;
    },
    /** The real updater of an agent running 1.0.0, its state under `work/<name>`. */
    updaterFor(name: string) {
      const state = path.join(work, name);
      const versions = path.join(state, 'versions');
      const u = createUpdater({
        distUrl: `${server.baseUrl}/v1/dist`,
        versionsDir: versions,
        pinnedRoot,
        releaseKeys: loadPurposeKeySet(keys.dir, 'release'),
        runningVersion: '1.0.0',
        journal: createJournal({ store: createPrefixStore(state), clock: systemClock }),
      });
      const installed = () => readdirSync(versions).filter((n) => /^\d/.test(n));
      return { u, versions, installed };
    },
    async close(): Promise<void> {
      await server.close();
      await db.drop();
      keys.remove();
      rmSync(work, { recursive: true, force: true });
    },
  };
}
export type UpdateBed = Awaited<ReturnType<typeof startUpdateBed>>;
