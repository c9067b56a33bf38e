import { unlinkSync } from 'node:fs';
import { GRACE_FILE } from '../../agent/checks/grace-check';
import { PREFIX_FILES } from '../../agent/settings';
import { makeSelfSignedCert, makeTestKeys, startFakeControlPlane, type FakeControlPlane } from '../support/agent-fakes';
import { startInProcessAgent, type InProcessAgent } from '../support/agent-harness';

/**
 * The agent's runtime inside the test process, against the in-test HTTPS control plane, with a
 * fake machine and a movable clock: tasks, each fail-closed cause with a task in flight and one
 * queued, drain timeout, crash recovery.
 */
const cert = makeSelfSignedCert();
const keys = makeTestKeys();
let server: FakeControlPlane;
const running: InProcessAgent[] = [];

beforeAll(async () => {
  server = await startFakeControlPlane({ keys, cert });
});
afterAll(async () => {
  for (const a of running) await a.stop();
  await server.close();
  keys.remove();
});

async function start(settings = {}) {
  const a = await startInProcessAgent({ server, keys, cert, settings });
  running.push(a);
  return a;
}
const resultOf = (id: string) => server.task(id)?.result;

describe('tasks', () => {
  let a: InProcessAgent;
  beforeAll(async () => {
    a = await start();
  });

  it('runs echo, sleep and an allow-listed http.get and reports the results', async () => {
    const e = server.enqueue('echo', { hello: 'world' });
    const s = server.enqueue('sleep', { ms: 50 });
    const h = server.enqueue('http.get', { url: `${server.origin}/data/one` });
    await server.waitFor('three results', () => resultOf(e) && resultOf(s) && resultOf(h));
    expect(resultOf(e)).toEqual({ outcome: 'succeeded', result: { echo: { hello: 'world' } } });
    expect(resultOf(s)).toEqual({ outcome: 'succeeded', result: { sleptMs: 50 } });
    expect(resultOf(h)?.outcome).toBe('succeeded');
    expect((resultOf(h)?.result as { status: number }).status).toBe(200);
  });

  it('rejects unknown kinds and bad payloads, and fails http.get off the allow-list', async () => {
    const unknown = server.enqueue('shell.exec', { cmd: 'rm -rf /' });
    const bad = server.enqueue('sleep', { ms: 'forever' });
    const off = server.enqueue('http.get', { url: 'https://example.com/' });
    await server.waitFor('three results', () => resultOf(unknown) && resultOf(bad) && resultOf(off));
    expect(resultOf(unknown)).toMatchObject({ outcome: 'rejected', error: 'unknown task kind shell.exec' });
    expect(resultOf(bad)?.outcome).toBe('rejected');
    expect(resultOf(off)).toMatchObject({ outcome: 'failed' });
    expect(resultOf(off)?.error).toMatch(/allow-list/);
    expect(server.httpGets.every((g) => g.url.startsWith('/data/'))).toBe(true);
  });

  it('heartbeats with version, runtime hash, fingerprint hashes, score and in-flight count', async () => {
    const hb = await server.waitFor('a heartbeat', () => server.heartbeats.find((h) => h.agentId === a.agentId));
    expect(hb.body).toMatchObject({
      agentVersion: '0.1.0',
      runtimeHash: 'c'.repeat(64),
      score: 100,
      changedComponents: [],
    });
    expect(Object.keys(hb.body.fingerprint).sort()).toEqual(['baseboard', 'cpu', 'disk', 'hostname', 'mac']);
    expect(JSON.stringify(hb.body)).not.toContain('agent-host-7');
    // The status version it has accepted: the one the server signed for it.
    expect(hb.body.statusVersion).toBe(server.signedStatusFor(a.agentId).payload.version);
  });
});

type Cause = {
  name: string;
  codes: string[];
  inflict(a: InProcessAgent): void | Promise<void>;
  heal?(a: InProcessAgent): void;
  /** Not permanent: once healed, a newer good answer reopens the gate without a person. */
  resumes?: boolean;
};
const causes: Cause[] = [
  {
    name: 'license revoked',
    codes: ['LICENSE_REVOKED'],
    inflict: () => server.setLicenseState('revoked', 'admin revoked'),
    heal: () => server.setLicenseState('active'),
  },
  {
    name: 'license suspended',
    codes: ['LICENSE_SUSPENDED'],
    inflict: () => server.setLicenseState('suspended'),
    heal: () => server.setLicenseState('active'),
    resumes: true,
  },
  {
    name: 'license expired',
    codes: ['LICENSE_EXPIRED'],
    inflict: () => server.setLicenseState('expired'),
    heal: () => server.setLicenseState('active'),
    resumes: true,
  },
  {
    name: 'agent quarantined',
    codes: ['AGENT_QUARANTINED'],
    inflict: (a) => server.setAgentStatus(a.agentId, 'quarantined', 'runtime hash mismatch'),
    heal: (a) => server.setAgentStatus(a.agentId, 'active'),
    resumes: true,
  },
  {
    name: 'machine fingerprint mismatched (moved install)',
    codes: ['FINGERPRINT_MISMATCH'],
    inflict: (a) => a.source.set({ cpu: 'Intel', mac: '02:00:00:00:00:99', hostname: 'elsewhere' }),
  },
  {
    name: 'grace state tampered',
    codes: ['GRACE_TAMPERED'],
    inflict: (a) => {
      const f = JSON.parse(a.store.readText(GRACE_FILE)!);
      f.state.deadline = '2099-01-01T00:00:00.000Z';
      a.store.writeJson(GRACE_FILE, f);
    },
  },
  {
    name: 'status answer forged',
    codes: ['STATUS_TAMPERED'],
    inflict: () => {
      server.setBadSignatures(true);
      server.setLicenseState('active', 'nudge');
    },
    heal: () => server.setBadSignatures(false),
  },
  {
    name: 'clock set back beyond 5 minutes',
    codes: ['CLOCK_ROLLBACK'],
    inflict: (a) => void (a.clock.offsetMs = -10 * 60_000),
  },
];

describe('fail closed: the task in flight finishes, the queued one never starts, the reason is journaled and reported', () => {
  it.each(causes)('$name', async (cause) => {
    const a = await start();
    try {
      const inflight = server.enqueue('sleep', { ms: 1500 }, a.agentId);
      await server.waitFor('the first task running', () => a.agent.inFlight() === 1);
      const queued = server.enqueue('echo', { n: 2 }, a.agentId);
      await cause.inflict(a);
      const t = await server.waitFor('terminal', () => a.agent.gate.terminal(), 30_000);
      expect(cause.codes.some((c) => t.failures.includes(c))).toBe(true);
      await server.waitFor('the in-flight task result', () => resultOf(inflight));
      expect(resultOf(inflight)?.outcome).toBe('succeeded');
      expect(server.task(queued)?.state).toBe('queued');
      const journaled = a.journal.tail(200).find((e) => e.event === 'agent.terminal');
      expect(journaled).toMatchObject({ code: t.code });
      const reported = await server.waitFor(
        'terminal reason in a heartbeat',
        () => server.heartbeats.find((h) => h.agentId === a.agentId && h.body.terminalReason?.startsWith(t.code)),
        30_000,
      );
      expect(reported.body.terminalReason).toContain(t.code);
      expect(t.permanent).toBe(!cause.resumes);
      cause.heal?.(a);
      if (cause.resumes) {
        // The license resumed (or the quarantine lifted): a newer good answer, and the agent works again.
        await server.waitFor('the queued task run after resumption', () => resultOf(queued), 30_000);
        expect(resultOf(queued)?.outcome).toBe('succeeded');
        expect(a.agent.gate.terminal()).toBeNull();
        expect(a.journal.tail(200).find((e) => e.event === 'agent.resumed')).toMatchObject({ code: t.code });
        return;
      }
      // Permanent: still terminal once the agent holds the control plane's newest answer.
      await server.waitFor(
        'the newest answer held',
        () => a.agent.checks.status.payload()?.version === server.signedStatusFor(a.agentId).payload.version,
        30_000,
      );
      expect((await a.agent.gate.admit()).admitted).toBe(false);
      expect(server.task(queued)?.state).toBe('queued');
      server.task(queued)!.state = 'done';
    } finally {
      cause.heal?.(a);
      await a.stop();
    }
  });

  it('grace file deleted while offline: fails closed instead of starting a fresh grace', async () => {
    const a = await start();
    try {
      const before = server.refusals();
      server.setOffline(true);
      // Once the agent has seen the outage, no answer sent before it can still be in flight.
      await server.waitFor('the agent meeting the outage', () => server.refusals() >= before + 2);
      unlinkSync(a.store.resolve(GRACE_FILE));
      const queued = server.enqueue('echo', { n: 3 }, a.agentId);
      const t = await server
        .waitFor('terminal', () => a.agent.gate.terminal(), 30_000)
        .catch(async (err) => {
          throw new Error(`${err}: ${JSON.stringify(await a.agent.evaluate())}`);
        });
      expect(t.failures).toContain('GRACE_MISSING');
      server.setOffline(false);
      await server
        .waitFor(
          'reported',
          () => server.heartbeats.find((h) => h.agentId === a.agentId && h.body.terminalReason?.startsWith(t.code)),
          30_000,
        )
        .catch((err) => {
          throw new Error(
            `${err}: terminal ${JSON.stringify(t)}; heartbeats ${JSON.stringify(server.heartbeats.filter((h) => h.agentId === a.agentId).map((h) => h.body.terminalReason ?? null))}`,
          );
        });
      expect(server.task(queued)?.state).toBe('queued');
      server.task(queued)!.state = 'done';
    } finally {
      server.setOffline(false);
      await a.stop();
    }
  });

  it('offline within the grace period: keeps working', async () => {
    const a = await start();
    try {
      server.setOffline(true);
      // Tasks cannot be leased while offline; the checks, judged at this moment, still pass.
      expect(await a.agent.gate.admit()).toEqual({ admitted: true });
      server.setOffline(false);
      const e = server.enqueue('echo', { after: 'outage' }, a.agentId);
      await server.waitFor('result', () => resultOf(e));
      expect(resultOf(e)?.outcome).toBe('succeeded');
    } finally {
      server.setOffline(false);
      await a.stop();
    }
  });

  it('aborts the task in flight when the drain timeout runs out and reports it interrupted', async () => {
    const a = await start({ drainTimeoutS: 1 });
    try {
      const long = server.enqueue('sleep', { ms: 60_000 }, a.agentId);
      await server.waitFor('running', () => a.agent.inFlight() === 1);
      server.setAgentStatus(a.agentId, 'quarantined');
      await server.waitFor('result', () => resultOf(long), 30_000);
      expect(resultOf(long)?.outcome).toBe('interrupted');
    } finally {
      await a.stop();
    }
  });
});

describe('restarts', () => {
  it('reports a task that was in flight during a crash as interrupted, and never re-runs it when re-offered', async () => {
    const a = await startInProcessAgent({ server, keys, cert, start: false });
    running.push(a);
    const id = server.enqueue('echo', { crashed: true }, a.agentId);
    server.task(id)!.state = 'leased';
    // What a crash leaves behind: the in-flight record written before the handler started.
    a.store.writeJson(PREFIX_FILES.tasks, {
      inflight: { id, kind: 'echo', startedAt: new Date().toISOString() },
      outbox: [],
      done: [],
    });
    await a.agent.start();
    await server.waitFor('interrupted reported', () => resultOf(id));
    expect(resultOf(id)?.outcome).toBe('interrupted');
    expect(a.journal.tail(50).some((e) => e.event === 'task.interrupted' && e.taskId === id)).toBe(true);
    // The lease expired on the server and it offers the task again: still not run.
    server.task(id)!.state = 'queued';
    delete server.task(id)!.result;
    await server.waitFor('re-offer answered', () => resultOf(id));
    expect(resultOf(id)?.outcome).toBe('interrupted');
    expect(resultOf(id)?.result).toBeUndefined();
  });

  it('a grace file edited while the agent was stopped is caught at the next start, although the control plane answers', async () => {
    const a = await start();
    try {
      await a.restart(() => {
        const f = JSON.parse(a.store.readText(GRACE_FILE)!);
        f.state.deadline = '2099-01-01T00:00:00.000Z';
        a.store.writeJson(GRACE_FILE, f);
      });
      const t = await server.waitFor('terminal', () => a.agent.gate.terminal(), 30_000);
      expect(t.code).toBe('GRACE_TAMPERED');
      expect(JSON.parse(a.store.readText(GRACE_FILE)!).state.deadline).toBe('2099-01-01T00:00:00.000Z');
      await server.waitFor(
        'reported',
        () =>
          server.heartbeats.find((h) => h.agentId === a.agentId && h.body.terminalReason?.startsWith('GRACE_TAMPERED')),
        30_000,
      );
    } finally {
      await a.stop();
    }
  });

  it('a revoked agent restarted while offline stays terminal: the terminal state is kept on disk', async () => {
    const a = await start();
    try {
      server.setLicenseState('revoked', 'admin revoked');
      await server.waitFor('terminal', () => a.agent.gate.terminal(), 30_000);
      await a.restart(() => server.setOffline(true));
      const t = a.agent.gate.terminal();
      expect(t).toMatchObject({ code: 'LICENSE_REVOKED', permanent: true });
      const queued = server.enqueue('echo', { late: true }, a.agentId);
      server.setOffline(false);
      server.setLicenseState('active');
      await server.waitFor(
        'the newest answer held',
        () => a.agent.checks.status.payload()?.version === server.signedStatusFor(a.agentId).payload.version,
        30_000,
      );
      expect((await a.agent.gate.admit()).admitted).toBe(false);
      expect(server.task(queued)?.state).toBe('queued');
      server.task(queued)!.state = 'done';
      expect(a.journal.tail(200).some((e) => e.event === 'agent.terminal_restored')).toBe(true);
    } finally {
      server.setOffline(false);
      await a.stop();
    }
  });

  it('grace.json and status.json copied aside, put back while stopped, clock set back, offline: a replay', async () => {
    const a = await start();
    try {
      const saved = { grace: a.store.readText(GRACE_FILE)!, status: a.store.readText(PREFIX_FILES.status)! };
      const before = (JSON.parse(saved.status) as { payload: { version: number } }).payload.version;
      // Time passes and the agent moves on: a newer answer, later high-water marks.
      server.setLicenseState('active', 'renewed');
      await server.waitFor('the newer answer', () => (a.agent.checks.status.payload()?.version ?? 0) > before, 30_000);
      a.clock.offsetMs = 3_600_000;
      expect((await a.agent.gate.admit()).admitted).toBe(true);
      await a.restart(() => {
        a.store.writeText(GRACE_FILE, saved.grace);
        a.store.writeText(PREFIX_FILES.status, saved.status);
        a.clock.offsetMs = 0;
        server.setOffline(true);
      });
      const v = await a.agent.gate.admit();
      expect(v.admitted).toBe(false);
      const codes = (await a.agent.evaluate()).flatMap((r) => (r.result.ok ? [] : [r.result.code]));
      expect(codes).toEqual(expect.arrayContaining(['GRACE_REPLAYED', 'STATUS_REPLAYED']));
      expect(v.admitted === false && v.terminal.permanent).toBe(true);
    } finally {
      server.setOffline(false);
      await a.stop();
    }
  });

  it('a status version implausibly far ahead is refused, not adopted: a later revocation still lands', async () => {
    const a = await start();
    try {
      const held = a.agent.checks.status.payload()!.version;
      server.setVersionBoost(200_000);
      await server.waitFor(
        'the refusal journaled',
        () => a.journal.tail(200).find((e) => e.event === 'status.implausible'),
        30_000,
      );
      expect(a.agent.checks.status.payload()!.version).toBe(held);
      expect(a.agent.gate.terminal()).toBeNull();
      server.setVersionBoost(0);
      server.setLicenseState('revoked', 'after the bad answer');
      const t = await server.waitFor('terminal', () => a.agent.gate.terminal(), 30_000);
      expect(t.code).toBe('LICENSE_REVOKED');
    } finally {
      server.setVersionBoost(0);
      server.setLicenseState('active');
      await a.stop();
    }
  });

  it('a not-good answer does not extend the grace', async () => {
    const a = await start();
    try {
      const deadline = () => JSON.parse(a.store.readText(GRACE_FILE)!).state.deadline as string;
      const before = deadline();
      const held = a.agent.checks.status.payload()!.version;
      server.setLicenseState('suspended');
      await server.waitFor('the suspension', () => (a.agent.checks.status.payload()?.version ?? 0) > held, 30_000);
      expect(a.agent.checks.status.payload()!.good).toBe(false);
      expect(deadline()).toBe(before);
      server.setLicenseState('active');
      await server.waitFor('a good answer re-seals', () => deadline() > before, 30_000);
    } finally {
      server.setLicenseState('active');
      await a.stop();
    }
  });

  it('a restart does not forgive a terminal cause: a quarantined agent is still refused after restart', async () => {
    const a = await start();
    try {
      server.setAgentStatus(a.agentId, 'quarantined');
      await server.waitFor('terminal', () => a.agent.gate.terminal(), 30_000);
      await a.restart();
      const t = await server.waitFor('terminal after restart', () => a.agent.gate.terminal(), 30_000);
      expect(t.code).toBe('AGENT_QUARANTINED');
      expect((await a.agent.gate.admit()).admitted).toBe(false);
    } finally {
      await a.stop();
    }
  });
});
