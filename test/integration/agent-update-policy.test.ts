import { readlinkSync } from 'node:fs';
import path from 'node:path';
import { newId } from '../../protocol';
import { createAgent, createAgentWithLicense, type AgentFixture } from '../support/agent-server-fixtures';
import { startUpdateBed, type UpdateBed } from '../support/update-bed';

/**
 * Update policy per license or per agent (issue 13): automatic, manual (admin-approved) or pinned
 * to one version, over the policy version's; set through the admin API, audited, and what each
 * heartbeat answer tells the agent, which the real updater (tuf-js, the real repository) obeys.
 */
let bed: UpdateBed;
beforeAll(async () => {
  bed = await startUpdateBed('update_policy');
});
afterAll(async () => bed?.close());

const setPolicy = async (kind: 'agents' | 'licenses', id: string, payload: object) =>
  bed.inject({
    method: 'PUT',
    url: `/v1/admin/${kind}/${id}/update-policy`,
    headers: await bed.staff.admin(),
    payload,
  });
const directive = (a: AgentFixture, agentVersion = '1.0.0') => bed.directive(a, agentVersion);
const audits = async (subjectId: string) =>
  (
    await bed.db.adminPool.query(
      `SELECT action, actor_id, data FROM agentina.audit_events
        WHERE subject_id = $1 AND action LIKE '%.update_policy_set' ORDER BY seq`,
      [subjectId],
    )
  ).rows as Array<{ action: string; actor_id: string; data: Record<string, unknown> }>;

/** A second agent on the license of `a`. */
const sibling = (a: AgentFixture) => createAgent(bed.db.pool, a.licenseId, a.customerId);

describe('the heartbeat answer follows the policy in force', () => {
  it('automatic by default; the license’s setting reaches all its agents; an agent’s own wins; inherit undoes', async () => {
    const a = await createAgentWithLicense(bed.db.pool);
    const b = await sibling(a);
    expect(await directive(a)).toEqual({ policy: 'automatic' });

    const lic = await setPolicy('licenses', a.licenseId, { policy: 'manual' });
    expect(lic.statusCode).toBe(200);
    expect(lic.json()).toEqual({
      kind: 'license',
      id: a.licenseId,
      own: { policy: 'manual', pinnedVersion: null },
      effective: { policy: 'manual', pinnedVersion: null, source: 'license' },
    });
    expect(await directive(a)).toEqual({ policy: 'manual' });
    expect(await directive(b)).toEqual({ policy: 'manual' });

    expect((await setPolicy('agents', b.agentId, { policy: 'automatic' })).json().effective).toEqual({
      policy: 'automatic',
      pinnedVersion: null,
      source: 'agent',
    });
    expect(await directive(a)).toEqual({ policy: 'manual' });
    expect(await directive(b)).toEqual({ policy: 'automatic' });

    expect((await setPolicy('agents', b.agentId, { policy: 'inherit' })).json()).toMatchObject({
      own: null,
      effective: { policy: 'manual', source: 'license' },
    });
    expect(await directive(b)).toEqual({ policy: 'manual' });
    const got = await bed.inject({
      method: 'GET',
      url: `/v1/admin/agents/${b.agentId}/update-policy`,
      headers: await bed.staff.admin(),
    });
    expect(got.json()).toMatchObject({ own: null, effective: { policy: 'manual', source: 'license' } });

    expect(await audits(a.licenseId)).toEqual([
      {
        action: 'license.update_policy_set',
        actor_id: bed.staff.adminId(),
        data: {
          licenseId: a.licenseId,
          before: null,
          after: { policy: 'manual', pinnedVersion: null },
          effective: { policy: 'manual', pinnedVersion: null, source: 'license' },
        },
      },
    ]);
    expect((await audits(b.agentId)).map((r) => [r.action, r.data.before, r.data.after])).toEqual([
      ['agent.update_policy_set', null, { policy: 'automatic', pinnedVersion: null }],
      ['agent.update_policy_set', { policy: 'automatic', pinnedVersion: null }, null],
    ]);
  });

  it('manual (admin-approved): nothing is wanted until POST /:id/update approves a version', async () => {
    const a = await createAgentWithLicense(bed.db.pool);
    await setPolicy('agents', a.agentId, { policy: 'manual' });
    expect(await directive(a)).toEqual({ policy: 'manual' });
    const approved = await bed.inject({
      method: 'POST',
      url: `/v1/admin/agents/${a.agentId}/update`,
      headers: await bed.staff.admin(),
      payload: { version: '1.1.0' },
    });
    expect(approved.statusCode).toBe(200);
    expect(await directive(a)).toEqual({ policy: 'manual', wanted: '1.1.0' });
    expect(await directive(a, '1.1.0')).toEqual({ policy: 'manual' });
  });

  it('pinned: the pin is wanted while the agent runs below it, and nothing once it runs it or above', async () => {
    const a = await createAgentWithLicense(bed.db.pool);
    const res = await setPolicy('licenses', a.licenseId, { policy: 'pinned', version: '1.1.0' });
    expect(res.json().effective).toEqual({ policy: 'pinned', pinnedVersion: '1.1.0', source: 'license' });
    expect(await directive(a)).toEqual({ policy: 'manual', wanted: '1.1.0' });
    // Unlike an approval, the pin stays after the agent reached it: it is not moved on to 1.2.0.
    expect(await directive(a, '1.1.0')).toEqual({ policy: 'manual' });
    expect(await directive(a, '1.1.0')).toEqual({ policy: 'manual' });
    expect(await directive(a, '1.2.0')).toEqual({ policy: 'manual' });
    // An agent pinned on its own to a later version than its license's.
    await setPolicy('agents', a.agentId, { policy: 'pinned', version: '1.2.0' });
    expect(await directive(a, '1.1.0')).toEqual({ policy: 'manual', wanted: '1.2.0' });
  });
});

describe('setting a policy', () => {
  it.each([
    ['pinned without a version', { policy: 'pinned' }, 400, /version/],
    ['a version without pinned', { policy: 'automatic', version: '1.1.0' }, 400, /version/],
    ['an unknown policy', { policy: 'latest' }, 400, /policy/],
    ['an unknown field', { policy: 'manual', channel: 'beta' }, 400, /channel|unrecognized/i],
    ['a pin to an unpublished version', { policy: 'pinned', version: '9.9.9' }, 404, /No release 9\.9\.9/],
    ['a pin to a yanked version', { policy: 'pinned', version: '1.3.0' }, 409, /1\.3\.0 was yanked/],
  ])('refuses %s with a clear error, and changes and audits nothing', async (_, body, status, message) => {
    const a = await createAgentWithLicense(bed.db.pool);
    for (const [kind, id] of [
      ['agents', a.agentId],
      ['licenses', a.licenseId],
    ] as const) {
      const res = await setPolicy(kind, id, body);
      expect(res.statusCode).toBe(status);
      expect(JSON.stringify(res.json().error)).toMatch(message);
      expect(await audits(id)).toEqual([]);
    }
    expect(await directive(a)).toEqual({ policy: 'automatic' });
  });

  it('404s an unknown agent or license; 409s a deregistered agent', async () => {
    expect((await setPolicy('agents', newId('agt'), { policy: 'manual' })).statusCode).toBe(404);
    expect((await setPolicy('licenses', newId('lic'), { policy: 'manual' })).statusCode).toBe(404);
    const a = await createAgentWithLicense(bed.db.pool);
    await bed.db.adminPool.query(
      `UPDATE agentina.agents SET status = 'deregistered', deregistered_at = now() WHERE id = $1`,
      [a.agentId],
    );
    expect((await setPolicy('agents', a.agentId, { policy: 'manual' })).statusCode).toBe(409);
  });
});

describe('the real updater obeys a pin', () => {
  it('installs exactly the pinned release through TUF, not the later one, and stays there', async () => {
    const a = await createAgentWithLicense(bed.db.pool);
    await setPolicy('agents', a.agentId, { policy: 'pinned', version: '1.1.0' });
    const { u, versions, installed } = bed.updaterFor('pinned');
    expect(u.direct((await directive(a))!)).toBe(true);
    expect(await u.check(new Date())).toEqual({ outcome: 'installed', version: '1.1.0', previous: null });
    expect(readlinkSync(path.join(versions, 'current'))).toBe('1.1.0');
    // Running the pin: nothing is wanted, and 1.2.0 (offered) is not taken.
    u.direct((await directive(a, '1.1.0'))!);
    expect(await u.check(new Date())).toMatchObject({ outcome: 'current' });
    expect(installed()).toEqual(['1.1.0']);
    // Unpinned (automatic): the next check takes the latest.
    await setPolicy('agents', a.agentId, { policy: 'automatic' });
    u.direct((await directive(a, '1.1.0'))!);
    expect(await u.check(new Date())).toMatchObject({ outcome: 'installed', version: '1.2.0' });
  });
});
