import { makeSelfSignedCert, makeTestKeys, startFakeControlPlane, type FakeControlPlane } from '../support/agent-fakes';
import { createOffsetClock, startInProcessAgent, type InProcessAgent } from '../support/agent-harness';
import type { SignedLicense } from '../../protocol';

/**
 * An agent enforces its license's end by its own clock, whatever the control plane says or how late
 * its lifecycle is: here the control plane never sends the expiry (it signs "active, good" answers
 * forever, with fresh server times), and the agent, a real one in this process with a movable
 * clock shared with the server, still stops admitting tasks once its clock passes the signed
 * document's expiresAt + graceDays: admitted 1 s before, refused 1 s after (a task queued then
 * is refused by name, not run).
 */
jest.setTimeout(120_000);

const DAY_MS = 86_400_000;
const cert = makeSelfSignedCert();
const keys = makeTestKeys();
const clock = createOffsetClock();
let server: FakeControlPlane;
let a: InProcessAgent;

beforeAll(async () => {
  server = await startFakeControlPlane({ keys, cert, graceDays: 2, now: () => clock.now() });
  a = await startInProcessAgent({ server, keys, cert, clock, settings: { statusWaitS: 2, taskWaitS: 1 } });
});
afterAll(async () => {
  await a?.stop();
  await server?.close();
  keys.remove();
});

const statusAt = () => Date.parse(a.agent.checks.status.payload()?.serverTime ?? '1970-01-01');
/** Sets the shared clock to `at` (ms since the epoch) now. */
const setClock = (at: number) => (clock.offsetMs = at - Date.now());

it('refuses tasks from expiresAt + grace by its own clock while the server still signs "active, good"', async () => {
  const doc = (a.agent.checks.license.current() as SignedLicense).document;
  const deadline = Date.parse(doc.expiresAt) + doc.graceDays * DAY_MS;
  expect(doc.graceDays).toBe(2);

  // A minute before the deadline: a fresh status (server time after the move) and a task that runs.
  setClock(deadline - 60_000);
  const moved = clock.now().getTime() - 1000;
  await server.waitFor('a status dated after the move', () => statusAt() >= moved, 30_000);
  const before = server.enqueue('echo', { n: 1 }, a.agentId);
  await server.waitFor('the task before the deadline ran', () => server.task(before)?.result, 30_000);
  expect(server.task(before)?.result).toMatchObject({ outcome: 'succeeded' });

  // One second before: the gate every task passes still admits.
  setClock(deadline - 1000);
  expect(await a.agent.gate.admit()).toEqual({ admitted: true });

  // One second after: the server has not changed its answer, yet a task queued now is refused.
  setClock(deadline + 1000);
  const after = server.enqueue('echo', { n: 2 }, a.agentId);
  const t = await server.waitFor('the agent terminal by its own clock', () => a.agent.gate.terminal(), 30_000);
  expect(t.failures).toEqual(['LICENSE_EXPIRED']);
  expect(t.permanent).toBe(false);
  const said = server.signedStatusFor(a.agentId).payload;
  expect(said).toMatchObject({ licenseState: 'active', good: true });

  // Newer "good" answers keep coming; the agent stays terminal.
  const heardAt = statusAt();
  await server.waitFor('a newer good status', () => statusAt() > heardAt, 30_000);
  expect(a.agent.gate.terminal()?.failures).toEqual(['LICENSE_EXPIRED']);
  // The task was refused, not run: the agent's gate refused it by name.
  await server.waitFor('the refused task reported', () => server.task(after)?.result, 30_000);
  expect(server.task(after)?.result).toEqual({
    outcome: 'rejected',
    error: 'the agent refused the task: LICENSE_EXPIRED',
  });
});
