import { readFileSync } from 'node:fs';
import { PREFIX_FILES, type TrustedKeys } from '../../agent/settings';
import { createControlPlaneClient } from '../../agent/http-client';
import { readAgentKey } from '../../agent/installation';
import { AGENT_VERSION } from '../../agent/version';
import { createKeySet, verifySignedLicense, type SignedLicense } from '../../protocol';
import { createOffsetClock, startInProcessAgent, type InProcessAgent } from '../support/agent-harness';
import { waitUntil } from '../support/agent-fakes';
import { startAgentStack, type AgentStack } from '../support/agent-stack';

/**
 * Renewals and resumptions reaching a running agent, against the real control plane (API over
 * HTTPS, worker, Temporal, PostgreSQL) with agents in this process. The API and the agents share
 * one movable clock, so "a month later" is a month later for both sides.
 */
jest.setTimeout(150_000);

const DAY_MS = 86_400_000;
const clock = createOffsetClock();
let stack: AgentStack;
let trusted: TrustedKeys;
let ca: string;
const running: InProcessAgent[] = [];

beforeAll(async () => {
  stack = await startAgentStack('agentrenew', { clock });
  trusted = JSON.parse(readFileSync(stack.keysFile, 'utf8')) as TrustedKeys;
  ca = readFileSync(stack.caFile, 'utf8');
});
async function stopAll(): Promise<void> {
  for (const a of running.splice(0)) await a.stop().catch(() => undefined);
}
// Each test's agents stop before the shared clock is put back (they would see it as set back).
afterEach(async () => {
  await stopAll();
  clock.offsetMs = 0;
});
afterAll(async () => {
  await stopAll();
  await stack?.close();
});

async function startAgent(licenseId: string): Promise<InProcessAgent> {
  const a = await startInProcessAgent({
    server: { url: stack.url, origin: stack.url, issueToken: () => stack.issueToken(licenseId) },
    keys: { trusted },
    cert: { cert: ca },
    clock,
    // Parked long-polls: news must arrive by the wake-up, not by the next poll.
    settings: { statusWaitS: 20, taskWaitS: 1 },
  });
  running.push(a);
  return a;
}

const until = <T>(what: string, probe: () => T | undefined | null | false, timeoutMs = 30_000) =>
  waitUntil(what, probe, timeoutMs, 10);

/** A fresh license with one agent running on it. */
async function agentOnNewLicense(): Promise<{ licenseId: string; a: InProcessAgent }> {
  const licenseId = await stack.createLicense();
  return { licenseId, a: await startAgent(licenseId) };
}

const licenseOf = (a: InProcessAgent) => a.agent.checks.license.current() as SignedLicense;
const heldOnDisk = (a: InProcessAgent) => a.store.readJson(PREFIX_FILES.license) as SignedLicense;
const statusAt = (a: InProcessAgent) => Date.parse(a.agent.checks.status.payload()?.serverTime ?? '1970-01-01');

async function runEcho(agentId: string): Promise<{ state: string }> {
  const created = (await stack.admin('POST', '/v1/admin/tasks', { agentId, kind: 'echo', payload: { n: 1 } })) as {
    id: string;
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    const t = (await stack.admin('GET', `/v1/admin/tasks/${created.id}`)) as { state: string };
    if (t.state !== 'queued' && t.state !== 'leased') return t;
    if (Date.now() > deadline) throw new Error(`task ${created.id} still ${t.state}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Moves both clocks and waits until each agent holds a status answer dated after the move. */
async function moveClock(byMs: number, agents: InProcessAgent[]): Promise<void> {
  clock.offsetMs += byMs;
  const moved = clock.now().getTime() - 1000;
  for (const a of agents) await until('a status dated after the move', () => statusAt(a) >= moved, 40_000);
}

describe('a renewal reaches the agent', () => {
  it('a parked agent adopts the re-issued, agent-bound document within a second; past the old expiry + grace it keeps working, an unrenewed one stops', async () => {
    const renewedLicense = await stack.createLicense();
    const lapsedLicense = await stack.createLicense();
    const a = await startAgent(renewedLicense);
    const b = await startAgent(lapsedLicense);
    const before = licenseOf(a).document;
    expect(before.version).toBe(1);
    // Let both long-polls park.
    await new Promise((r) => setTimeout(r, 1500));

    const expiresAt = new Date(clock.now().getTime() + 90 * DAY_MS).toISOString();
    await stack.admin('POST', `/v1/admin/licenses/${renewedLicense}/renew`, { expiresAt });
    const renewedAt = performance.now();
    await until('the renewed document', () => (a.agent.checks.license.version() ?? 0) > before.version, 5000);
    const tookMs = performance.now() - renewedAt;
    expect(tookMs).toBeLessThan(1000);

    const doc = licenseOf(a).document;
    expect(doc).toMatchObject({ licenseId: renewedLicense, agentId: a.agentId, expiresAt });
    expect(doc.fingerprintCommitment).toBe(before.fingerprintCommitment);
    // Kept on disk, so a restart (offline too) starts from the renewed document.
    expect(heldOnDisk(a).document.version).toBe(doc.version);
    expect(a.journal.tail(100).find((e) => e.event === 'license.renewed')).toMatchObject({ version: doc.version });
    // The unrenewed agent was not sent anything.
    expect(licenseOf(b).document.version).toBe(1);

    // Past the first term's end and its 7 grace days, for the control plane and the agents alike.
    await moveClock(38 * DAY_MS, [a, b]);
    expect(await a.agent.gate.admit()).toEqual({ admitted: true });
    expect(a.agent.gate.terminal()).toBeNull();
    expect(await runEcho(a.agentId)).toMatchObject({ state: 'succeeded' });

    const t = await until('the unrenewed agent terminal', () => b.agent.gate.terminal());
    expect(t.permanent).toBe(false);
    expect(t.failures).toContain('LICENSE_EXPIRED');
  });

  it('status and heartbeat answers carry the document only when it is newer than the one held, bound to the asking agent', async () => {
    const licenseId = await stack.createLicense();
    const a = await startAgent(licenseId);
    const b = await startAgent(licenseId);
    await stack.admin('POST', `/v1/admin/licenses/${licenseId}/renew`, {
      expiresAt: new Date(clock.now().getTime() + 60 * DAY_MS).toISOString(),
    });
    const keys = createKeySet(trusted.license);
    for (const agent of [a, b]) {
      // The test speaks as the agent: the agent itself stops first (two users of one identity are a clone).
      await agent.agent.stop();
      const client = createControlPlaneClient({
        server: stack.url,
        tls: { ca },
        credential: agent.credential,
        agentKey: readAgentKey(agent.store)!,
      });
      try {
        const old = await client.status({ license: 1, wait: 0 });
        const v = verifySignedLicense(old.license, keys);
        expect(v.ok && v.document).toMatchObject({ version: 2, agentId: agent.agentId, licenseId });
        expect((await client.status({ license: 2, wait: 0 })).license).toBeUndefined();
        // An agent that does not say what it holds is sent nothing it did not ask for.
        expect((await client.status({ wait: 0 })).license).toBeUndefined();
        const activation = agent.store.readJson(PREFIX_FILES.activation) as { components: Record<string, string> };
        const heartbeat = (licenseVersion: number) =>
          client.heartbeat({
            agentVersion: AGENT_VERSION,
            runtimeHash: 'c'.repeat(64),
            fingerprint: activation.components as never,
            score: 100,
            changedComponents: [],
            inFlightTasks: 0,
            licenseVersion,
          });
        const hb = await heartbeat(1);
        expect(verifySignedLicense(hb.license, keys)).toMatchObject({ ok: true, document: { agentId: agent.agentId } });
        expect((await heartbeat(2)).license).toBeUndefined();
        // A version the license never had is malformed, not a way to fish for documents.
        await expect(client.status({ license: 0, wait: 0 })).rejects.toMatchObject({ status: 400 });
      } finally {
        client.close();
      }
    }
  });
});

describe('a terminal agent whose cause is over works again without a person', () => {
  it('suspended, then resumed: terminal while suspended, then back, and a task runs', async () => {
    const { licenseId, a } = await agentOnNewLicense();
    await stack.admin('POST', `/v1/admin/licenses/${licenseId}/suspend`, { reason: 'invoice overdue' });
    const t = await until('terminal', () => a.agent.gate.terminal());
    expect(t).toMatchObject({ code: 'LICENSE_SUSPENDED', permanent: false });
    await stack.admin('POST', `/v1/admin/licenses/${licenseId}/resume`, {});
    await until('back at work', () => a.agent.gate.terminal() === null);
    expect(a.journal.tail(100).find((e) => e.event === 'agent.resumed')).toMatchObject({ code: 'LICENSE_SUSPENDED' });
    expect(await runEcho(a.agentId)).toMatchObject({ state: 'succeeded' });
  });

  it('expired past its grace, then renewed: the renewal and a newer good answer bring it back', async () => {
    const { licenseId, a } = await agentOnNewLicense();
    await moveClock(38 * DAY_MS, [a]);
    const t = await until('terminal', () => a.agent.gate.terminal());
    expect(t.permanent).toBe(false);
    expect(t.failures).toContain('LICENSE_EXPIRED');
    await stack.admin('POST', `/v1/admin/licenses/${licenseId}/renew`, {
      expiresAt: new Date(clock.now().getTime() + 30 * DAY_MS).toISOString(),
    });
    await until('back at work', () => a.agent.gate.terminal() === null);
    expect(a.agent.checks.license.version()).toBeGreaterThan(1);
    expect(await runEcho(a.agentId)).toMatchObject({ state: 'succeeded' });
  });

  it('revoked: stays terminal, for good, across a restart', async () => {
    const { licenseId, a } = await agentOnNewLicense();
    await stack.admin('POST', `/v1/admin/licenses/${licenseId}/revoke`, { reason: 'contract ended' });
    const t = await until('terminal', () => a.agent.gate.terminal());
    expect(t).toMatchObject({ code: 'LICENSE_REVOKED', permanent: true });
    // Kept on disk: a restart comes back terminal (that a later good answer cannot clear it is
    // shown against the in-test control plane, which can send one: agent-runtime.test.ts).
    await a.restart();
    expect(a.agent.gate.terminal()).toMatchObject({ code: 'LICENSE_REVOKED', permanent: true });
    expect((await a.agent.gate.admit()).admitted).toBe(false);
  });
});
