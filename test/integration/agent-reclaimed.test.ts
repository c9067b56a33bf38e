import { makeSelfSignedCert, makeTestKeys, startFakeControlPlane, type FakeControlPlane } from '../support/agent-fakes';
import { startInProcessAgent, type InProcessAgent } from '../support/agent-harness';

/**
 * An agent whose seat was reclaimed while it was away (its credential now dead) learns it when it
 * returns: terminal for good, and told why and what to do. The control plane side of the reclaim
 * is in seat-reclaim.test.ts.
 */
const cert = makeSelfSignedCert();
const keys = makeTestKeys();
let server: FakeControlPlane;
let a: InProcessAgent;

beforeAll(async () => {
  server = await startFakeControlPlane({ keys, cert });
  a = await startInProcessAgent({ server, keys, cert });
});
afterAll(async () => {
  await a?.stop();
  await server?.close();
  keys.remove();
});

it('an agent that comes back after its seat was reclaimed stops for good, saying it must be re-activated', async () => {
  // Stopped (the machine was off for weeks); meanwhile the control plane reclaimed its seat.
  await a.restart(() => server.setAgentStatus(a.agentId, 'deregistered', 'seat reclaimed'));
  const queued = server.enqueue('echo', { n: 1 }, a.agentId);
  const t = await server.waitFor('terminal', () => a.agent.gate.terminal(), 30_000);
  expect(t.code).toBe('CREDENTIAL_REJECTED');
  expect(t.permanent).toBe(true);
  expect(t.detail).toMatch(/deregistered/);
  expect(t.detail).toMatch(/seat was reclaimed/);
  expect(t.detail).toMatch(/re-activate it with a new activation token/);
  expect(a.journal.tail(50).find((e) => e.event === 'agent.terminal')).toMatchObject({ code: 'CREDENTIAL_REJECTED' });
  expect(server.task(queued)?.state).toBe('queued');
});
