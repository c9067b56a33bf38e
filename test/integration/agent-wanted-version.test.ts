import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
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
  newId,
  systemClock,
  type HeartbeatRequest,
} from '../../protocol';
import {
  asAgent,
  createAgentWithLicense,
  createStaff,
  heartbeatRequest,
  type AgentFixture,
  type Staff,
  withJsonBody,
} from '../support/agent-server-fixtures';
import { actAsAgents } from '../support/agent-keys';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { mintSession, SAME_ORIGIN, seedAdmin, seedServiceAccount } from '../support/identity';
import { createTestKeysDir } from '../support/license-helpers';
import { startTestServer } from '../support/server';
import { makeRelease } from '../support/tuf';

/**
 * Admin-approved updates (issue 13): POST /v1/admin/agents/:id/update sets the release one agent
 * installs; the heartbeat answer carries it with the license's update policy; the real updater
 * (tuf-js against the real repository) installs exactly that release, and under a `manual`
 * policy nothing else.
 */
const SYSTEM = { kind: 'system' as const, id: 'wanted-version-test' };

let db: TestDatabase;
let keys: ReturnType<typeof createTestKeysDir>;
let server: Awaited<ReturnType<typeof startTestServer>>;
let staff: Staff;
let pinnedRoot: string;
const hashes = new Map<string, string>();
const work = mkdtempSync(path.join(tmpdir(), 'agentina-wanted-'));

beforeAll(async () => {
  db = await createTestDatabase('agent_wanted');
  keys = createTestKeysDir();
  server = await startTestServer({ pool: db.pool, env: { AGENTINA_KEYS_DIR: keys.dir } });
  await server.services.releases.repository.init();
  // Requests with an agent credential carry the agent's proof of possession, as the agent's own.
  actAsAgents(server.app, () => Date.now());
  pinnedRoot = await (await fetch(`${server.baseUrl}/v1/dist/metadata/1.root.json`)).text();
  for (const v of ['1.0.0', '1.1.0', '1.2.0', '1.3.0']) {
    const r = makeRelease(loadPurposeSigner(keys.dir, 'release'), v);
    await server.services.releases.publish(SYSTEM, r);
    hashes.set(v, r.signed.manifest.runtimeHash);
  }
  await server.services.releases.yank(SYSTEM, '1.3.0', 'withdrawn');
  staff = createStaff(db.pool, systemClock);
});

afterAll(async () => {
  await server?.close();
  await db?.drop();
  keys?.remove();
  rmSync(work, { recursive: true, force: true });
});

const inject = (opts: InjectOptions) => server.app.inject(withJsonBody(opts));
const requestUpdate = async (agentId: string, version: unknown, headers?: Record<string, string>) =>
  inject({
    method: 'POST',
    url: `/v1/admin/agents/${agentId}/update`,
    headers: headers ?? (await staff.admin()),
    payload: { version },
  });
const heartbeat = (a: AgentFixture, over: Partial<HeartbeatRequest> = {}) =>
  inject(
    heartbeatRequest(a, hashes.get(over.agentVersion ?? '1.0.0')!, {
      update: { outcome: 'current', at: new Date().toISOString() },
      ...over,
    }),
  );
const audits = async (agentId: string) =>
  (
    await db.adminPool.query(
      `SELECT actor_kind, actor_id, data FROM agentina.audit_events
        WHERE subject_id = $1 AND action = 'agent.update_requested' ORDER BY seq`,
      [agentId],
    )
  ).rows as Array<{ actor_kind: string; actor_id: string; data: Record<string, unknown> }>;

describe('POST /v1/admin/agents/:id/update', () => {
  it('sets the wanted release, shows it on the agent, and audits agent.update_requested', async () => {
    const a = await createAgentWithLicense(db.pool);
    const res = await requestUpdate(a.agentId, '1.1.0');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: a.agentId, agentVersion: '1.0.0', wantedVersion: '1.1.0' });
    const view = await inject({ method: 'GET', url: `/v1/admin/agents/${a.agentId}`, headers: await staff.admin() });
    expect(view.json().wantedVersion).toBe('1.1.0');
    expect(await audits(a.agentId)).toEqual([
      {
        actor_kind: 'admin',
        actor_id: staff.adminId(),
        data: { licenseId: a.licenseId, version: '1.1.0', runningVersion: '1.0.0', previouslyWanted: null },
      },
    ]);
  });

  it.each([
    ['an unknown version', '9.9.9', 404, /No release 9\.9\.9 is published/],
    ['a yanked version', '1.3.0', 409, /1\.3\.0 was yanked/],
    ['the version it runs', '1.0.0', 409, /already runs 1\.0\.0/],
    ['not a version', 'latest', 400, /version/],
    ['a version with a control character', '1.1.0\n', 400, /version/],
  ])('refuses %s with a clear error and changes nothing', async (_, version, status, message) => {
    const a = await createAgentWithLicense(db.pool);
    const res = await requestUpdate(a.agentId, version);
    expect(res.statusCode).toBe(status);
    expect(JSON.stringify(res.json().error)).toMatch(message);
    expect(
      (await db.adminPool.query('SELECT wanted_version FROM agentina.agents WHERE id = $1', [a.agentId])).rows[0],
    ).toEqual({ wanted_version: null });
    expect(await audits(a.agentId)).toEqual([]);
  });

  it('refuses a downgrade below what the agent runs (409), and an unknown agent (404)', async () => {
    const a = await createAgentWithLicense(db.pool);
    expect((await heartbeat(a, { agentVersion: '1.2.0' })).statusCode).toBe(200);
    const res = await requestUpdate(a.agentId, '1.1.0');
    expect(res.statusCode).toBe(409);
    expect(res.json().error.message).toMatch(/runs 1\.2\.0; 1\.1\.0 would be a downgrade/);
    expect(await audits(a.agentId)).toEqual([]);
    expect((await requestUpdate(newId('agt'), '1.1.0')).statusCode).toBe(404);
  });

  it('is refused to the agent’s own customer, a viewer admin and a service token, which change nothing', async () => {
    const a = await createAgentWithLicense(db.pool);
    const viewer = await seedAdmin(db.pool, { cheap: true, role: 'viewer' });
    const viewerHeaders = { cookie: (await mintSession(db.pool, 'admin', viewer, systemClock)).cookie, ...SAME_ORIGIN };
    const svc = await seedServiceAccount(db.pool);
    for (const headers of [
      await staff.customer(a.customerId),
      viewerHeaders,
      { authorization: `Bearer ${svc.token}` },
      asAgent(a),
    ]) {
      const res = await requestUpdate(a.agentId, '1.1.0', headers);
      expect([401, 403]).toContain(res.statusCode);
    }
    expect(await audits(a.agentId)).toEqual([]);
  });
});

describe('the heartbeat answer', () => {
  it('carries the policy and wanted release to agents that update themselves, until the agent runs it', async () => {
    const a = await createAgentWithLicense(db.pool);
    const before = heartbeatResponseSchema.parse((await heartbeat(a)).json());
    expect(before.update).toEqual({ policy: 'automatic' });
    expect((await requestUpdate(a.agentId, '1.1.0')).statusCode).toBe(200);
    expect(heartbeatResponseSchema.parse((await heartbeat(a)).json()).update).toEqual({
      policy: 'automatic',
      wanted: '1.1.0',
    });
    // An agent that reports no update check (one that predates the field) is sent none.
    const old = (await heartbeat(a, { update: undefined })).json<Record<string, unknown>>();
    expect(Object.keys(old).sort()).toEqual(['heartbeatIntervalS', 'status']);
    // Running the wanted version ends the request.
    expect(heartbeatResponseSchema.parse((await heartbeat(a, { agentVersion: '1.1.0' })).json()).update).toEqual({
      policy: 'automatic',
    });
    const view = await inject({ method: 'GET', url: `/v1/admin/agents/${a.agentId}`, headers: await staff.admin() });
    expect(view.json()).toMatchObject({ agentVersion: '1.1.0', wantedVersion: null });
  });
});

describe('the agent installs the wanted release through TUF', () => {
  async function manualAgent(): Promise<AgentFixture> {
    const policyId = newId('pol');
    await db.adminPool.query(
      `INSERT INTO agentina.policies (id, name, created_at, updated_at) VALUES ($1, $1, now(), now())`,
      [policyId],
    );
    await db.adminPool.query(
      `INSERT INTO agentina.policy_versions (policy_id, version, name, plan, kind, duration_days, grace_days,
         trial_end_state, max_agents, features, seat_reclaim_days, update_policy, created_at, created_by_kind, created_by_id)
       VALUES ($1, 1, $1, 'standard', 'term', 30, 7, 'expired', 5, '{}', 14, 'manual', now(), 'admin', 'adm_test')`,
      [policyId],
    );
    const a = await createAgentWithLicense(db.pool);
    await db.adminPool.query(`UPDATE agentina.licenses SET policy_id = $2, policy_version = 1 WHERE id = $1`, [
      a.licenseId,
      policyId,
    ]);
    return a;
  }

  function updaterFor(name: string) {
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
  }

  /** What the agent does with a heartbeat answer: hand its directive to the updater. */
  async function heartbeatInto(a: AgentFixture, u: ReturnType<typeof createUpdater>, agentVersion = '1.0.0') {
    const answer = heartbeatResponseSchema.parse((await heartbeat(a, { agentVersion })).json());
    expect(answer.update).toBeDefined();
    return u.direct(answer.update!);
  }

  it('manual policy: installs nothing until a version is wanted, then exactly that one, not the latest', async () => {
    const a = await manualAgent();
    const { u, versions, installed } = updaterFor('manual');
    expect(await heartbeatInto(a, u)).toBe(false);
    expect(await u.check(new Date())).toEqual({ outcome: 'current', version: '1.0.0' });
    expect(existsSync(versions) ? installed() : []).toEqual([]);
    // The directive survives a restart: a fresh updater over the same state holds back too.
    expect(await updaterFor('manual').u.check(new Date())).toEqual({ outcome: 'current', version: '1.0.0' });

    expect((await requestUpdate(a.agentId, '1.1.0')).statusCode).toBe(200);
    expect(await heartbeatInto(a, u)).toBe(true);
    expect(await u.check(new Date())).toEqual({ outcome: 'installed', version: '1.1.0', previous: null });
    expect(readlinkSync(path.join(versions, 'current'))).toBe('1.1.0');
    expect(installed()).toEqual(['1.1.0']);

    // The agent now runs it: the request ends, and under `manual` it stays on 1.1.0 although 1.2.0 is offered.
    expect(await heartbeatInto(a, u, '1.1.0')).toBe(false);
    expect(u.state().directive).toEqual({ policy: 'manual' });
    expect(await u.check(new Date())).toMatchObject({ outcome: 'current' });
    expect(readlinkSync(path.join(versions, 'current'))).toBe('1.1.0');
  });

  it('automatic policy: a wanted version pins the update below the latest; afterwards the latest again', async () => {
    const a = await createAgentWithLicense(db.pool);
    const { u, versions } = updaterFor('automatic');
    expect((await requestUpdate(a.agentId, '1.1.0')).statusCode).toBe(200);
    expect(await heartbeatInto(a, u)).toBe(true);
    expect(await u.check(new Date())).toMatchObject({ outcome: 'installed', version: '1.1.0' });
    expect(await heartbeatInto(a, u, '1.1.0')).toBe(false);
    expect(await u.check(new Date())).toMatchObject({ outcome: 'installed', version: '1.2.0' });
    expect(readlinkSync(path.join(versions, 'current'))).toBe('1.2.0');
  });

  it('a wanted version below the highest installed is still refused by the agent (downgrades are never installed)', async () => {
    const { u } = updaterFor('automatic');
    // What a forged or stale answer could say: the agent's own floor decides.
    expect(u.direct({ policy: 'manual', wanted: '1.1.0' })).toBe(true);
    expect(await u.check(new Date())).toMatchObject({ outcome: 'refused', reason: 'downgrade' });
    expect(readlinkSync(path.join(work, 'automatic', 'versions', 'current'))).toBe('1.2.0');
  });

  it('a yanked wanted version is not installed (the signed targets no longer offer it)', async () => {
    const { u, versions } = updaterFor('yanked');
    expect(u.direct({ policy: 'automatic', wanted: '1.3.0' })).toBe(true);
    expect(await u.check(new Date())).toMatchObject({ outcome: 'refused', reason: 'unavailable' });
    expect(existsSync(path.join(versions, '1.3.0'))).toBe(false);
  });
});
