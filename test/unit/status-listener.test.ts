import { createAgentRateLimit } from '../../api/agent-status/agent-rate-limit';
import { createBatchLoader } from '../../services/agent-status/batch-loader';
import { parseStatusNotice } from '../../services/agent-status/status-listener';
import { statusPayloadOf } from '../../services/agent-status/status-service';
import { AppError } from '../../api/errors';
import type { AgentStatusRow } from '../../db/agents-repo';

describe('status notices, batching and the per-agent limit', () => {
  it('parses the NOTIFY payload and ignores anything malformed or oversized', () => {
    expect(parseStatusNotice('{"licenseId":"lic_a","agentId":null,"feedId":7}')).toEqual({
      licenseId: 'lic_a',
      agentId: null,
      feedId: 7,
    });
    expect(parseStatusNotice('{"licenseId":"lic_a","agentId":"agt_b","feedId":8}')).toEqual({
      licenseId: 'lic_a',
      agentId: 'agt_b',
      feedId: 8,
    });
    for (const bad of [
      undefined,
      '',
      'not json',
      '{"agentId":"agt_b"}',
      '{"licenseId":5}',
      '{"licenseId":"lic_a","agentId":3}',
      `{"licenseId":"${'x'.repeat(2000)}"}`,
    ]) {
      expect(parseStatusNotice(bad)).toBeUndefined();
    }
  });

  it('coalesces lookups made in one turn into one load and answers each caller', async () => {
    const loads: string[][] = [];
    const load = createBatchLoader<string, number>(async (keys) => {
      loads.push(keys);
      return new Map(keys.filter((k) => k !== 'missing').map((k) => [k, k.length]));
    });
    const answers = await Promise.all(['a', 'bb', 'a', 'missing', 'ccc'].map(load));
    expect(answers).toEqual([1, 2, 1, undefined, 3]);
    expect(loads).toEqual([['a', 'bb', 'missing', 'ccc']]);
  });

  it('passes a failed load to every caller of that batch', async () => {
    const load = createBatchLoader<string, number>(async () => {
      throw new Error('db down');
    });
    await expect(Promise.all([load('a'), load('b')])).rejects.toThrow('db down');
  });

  it('limits each agent per window, separately, with a Retry-After', () => {
    let t = 0;
    const limit = createAgentRateLimit(3, 60_000, () => t);
    for (let i = 0; i < 3; i++) limit.take('agt_a');
    limit.take('agt_b');
    t = 15_000;
    let err: unknown;
    try {
      limit.take('agt_a');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('RATE_LIMITED');
    expect((err as AppError).headers).toEqual({ 'retry-after': '45' });
    t = 60_000;
    expect(() => limit.take('agt_a')).not.toThrow();
  });

  it('says why a status is not good, license first', () => {
    const row: AgentStatusRow = {
      agent_id: 'agt_aaaaaaaaaaaaaaaaaaaaaa',
      license_id: 'lic_aaaaaaaaaaaaaaaaaaaaaa',
      customer_id: 'cus_aaaaaaaaaaaaaaaaaaaaaa',
      license_state: 'active',
      license_version: 4,
      license_reason: null,
      expires_at: new Date('2027-01-01T00:00:00Z'),
      trial_ends_at: null,
      grace_days: 7,
      trial_end_state: 'grace',
      agent_status: 'active',
      status_version: 2,
      agent_reason: null,
    };
    const now = new Date('2026-11-26T12:00:00Z');
    expect(statusPayloadOf(row, now)).toMatchObject({ good: true, version: 6, serverTime: now.toISOString() });
    expect(statusPayloadOf(row, now).reason).toBeUndefined();
    expect(statusPayloadOf({ ...row, agent_status: 'offline' }, now).good).toBe(true);
    expect(statusPayloadOf({ ...row, agent_status: 'quarantined', agent_reason: 'tamper' }, now)).toMatchObject({
      good: false,
      reason: 'tamper',
    });
    expect(
      statusPayloadOf({ ...row, license_state: 'suspended', agent_status: 'quarantined', agent_reason: 'tamper' }, now),
    ).toMatchObject({ good: false, reason: 'license suspended' });
    expect(statusPayloadOf({ ...row, license_state: 'grace' }, now).good).toBe(true);
  });
});
