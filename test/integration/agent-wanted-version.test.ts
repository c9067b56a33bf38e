import { existsSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { heartbeatResponseSchema, newId, systemClock } from '../../protocol';
import { asAgent, createAgentWithLicense, type AgentFixture } from '../support/agent-server-fixtures';
import { mintSession, SAME_ORIGIN, seedAdmin, seedServiceAccount } from '../support/identity';
import { startUpdateBed, type UpdateBed } from '../support/update-bed';

/**
 * Admin-approved updates (issue 13): POST /v1/admin/agents/:id/update sets the release one agent
 * installs; the heartbeat answer carries it with the license's update policy; the real updater
 * (tuf-js against the real repository) installs exactly that release, and under a `manual`
 * policy nothing else.
 */
let bed: UpdateBed;
beforeAll(async () => {
  bed = await startUpdateBed('agent_wanted');
});
afterAll(async () => bed?.close());

const requestUpdate = async (agentId: string, version: unknown, headers?: Record<string, string>) =>
  bed.inject({
    method: 'POST',
    url: `/v1/admin/agents/${agentId}/update`,
    headers: headers ?? (await bed.staff.admin()),
    payload: { version },
  });
const heartbeat: UpdateBed['heartbeat'] = (a, over) => bed.heartbeat(a, over);
const audits = async (agentId: string) =>
  (
    await bed.db.adminPool.query(
      `SELECT actor_kind, actor_id, data FROM agentina.audit_events
        WHERE subject_id = $1 AND action = 'agent.update_requested' ORDER BY seq`,
      [agentId],
    )
  ).rows as Array<{ actor_kind: string; actor_id: string; data: Record<string, unknown> }>;

describe('POST /v1/admin/agents/:id/update', () => {
  it('sets the wanted release, shows it on the agent, and audits agent.update_requested', async () => {
    const a = await createAgentWithLicense(bed.db.pool);
    const res = await requestUpdate(a.agentId, '1.1.0');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: a.agentId, agentVersion: '1.0.0', wantedVersion: '1.1.0' });
    const view = await bed.inject({
      method: 'GET',
      url: `/v1/admin/agents/${a.agentId}`,
      headers: await bed.staff.admin(),
    });
    expect(view.json().wantedVersion).toBe('1.1.0');
    expect(await audits(a.agentId)).toEqual([
      {
        actor_kind: 'admin',
        actor_id: bed.staff.adminId(),
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
    const a = await createAgentWithLicense(bed.db.pool);
    const res = await requestUpdate(a.agentId, version);
    expect(res.statusCode).toBe(status);
    expect(JSON.stringify(res.json().error)).toMatch(message);
    expect(
      (await bed.db.adminPool.query('SELECT wanted_version FROM agentina.agents WHERE id = $1', [a.agentId])).rows[0],
    ).toEqual({ wanted_version: null });
    expect(await audits(a.agentId)).toEqual([]);
  });

  it('refuses a downgrade below what the agent runs (409), and an unknown agent (404)', async () => {
    const a = await createAgentWithLicense(bed.db.pool);
    expect((await heartbeat(a, { agentVersion: '1.2.0' })).statusCode).toBe(200);
    const res = await requestUpdate(a.agentId, '1.1.0');
    expect(res.statusCode).toBe(409);
    expect(res.json().error.message).toMatch(/runs 1\.2\.0; 1\.1\.0 would be a downgrade/);
    expect(await audits(a.agentId)).toEqual([]);
    expect((await requestUpdate(newId('agt'), '1.1.0')).statusCode).toBe(404);
  });

  it('is refused to the agent’s own customer, a viewer admin and a service token, which change nothing', async () => {
    const a = await createAgentWithLicense(bed.db.pool);
    const viewer = await seedAdmin(bed.db.pool, { cheap: true, role: 'viewer' });
    const viewerHeaders = {
      cookie: (await mintSession(bed.db.pool, 'admin', viewer, systemClock)).cookie,
      ...SAME_ORIGIN,
    };
    const svc = await seedServiceAccount(bed.db.pool);
    for (const headers of [
      await bed.staff.customer(a.customerId),
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
    const a = await createAgentWithLicense(bed.db.pool);
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
    const view = await bed.inject({
      method: 'GET',
      url: `/v1/admin/agents/${a.agentId}`,
      headers: await bed.staff.admin(),
    });
    expect(view.json()).toMatchObject({ agentVersion: '1.1.0', wantedVersion: null });
  });
});

describe('the agent installs the wanted release through TUF', () => {
  async function manualAgent(): Promise<AgentFixture> {
    const policyId = newId('pol');
    await bed.db.adminPool.query(
      `INSERT INTO agentina.policies (id, name, created_at, updated_at) VALUES ($1, $1, now(), now())`,
      [policyId],
    );
    await bed.db.adminPool.query(
      `INSERT INTO agentina.policy_versions (policy_id, version, name, plan, kind, duration_days, grace_days,
         trial_end_state, max_agents, features, seat_reclaim_days, update_policy, created_at, created_by_kind, created_by_id)
       VALUES ($1, 1, $1, 'standard', 'term', 30, 7, 'expired', 5, '{}', 14, 'manual', now(), 'admin', 'adm_test')`,
      [policyId],
    );
    const a = await createAgentWithLicense(bed.db.pool);
    await bed.db.adminPool.query(`UPDATE agentina.licenses SET policy_id = $2, policy_version = 1 WHERE id = $1`, [
      a.licenseId,
      policyId,
    ]);
    return a;
  }

  const updaterFor = (name: string) => bed.updaterFor(name);

  /** What the agent does with a heartbeat answer: hand its directive to the updater. */
  async function heartbeatInto(a: AgentFixture, u: ReturnType<UpdateBed['updaterFor']>['u'], agentVersion = '1.0.0') {
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
    const a = await createAgentWithLicense(bed.db.pool);
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
    expect(readlinkSync(path.join(bed.work, 'automatic', 'versions', 'current'))).toBe('1.2.0');
  });

  it('a yanked wanted version is not installed (the signed targets no longer offer it)', async () => {
    const { u, versions } = updaterFor('yanked');
    expect(u.direct({ policy: 'automatic', wanted: '1.3.0' })).toBe(true);
    expect(await u.check(new Date())).toMatchObject({ outcome: 'refused', reason: 'unavailable' });
    expect(existsSync(path.join(versions, '1.3.0'))).toBe(false);
  });
});
