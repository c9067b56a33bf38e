import { PREFIX_FILES } from '../../agent/settings';
import type { SignedLicense } from '../../protocol';
import { makeSelfSignedCert, makeTestKeys, startFakeControlPlane, type FakeControlPlane } from '../support/agent-fakes';
import { startInProcessAgent, type InProcessAgent } from '../support/agent-harness';

/**
 * The agent obeys the features of its own signed, bound license document, whatever is leased to
 * it. The in-test control plane plays the attacker who answers as the control plane (or a control
 * plane that leases what it should not): it leases kinds the document does not grant.
 */
const cert = makeSelfSignedCert();
const keys = makeTestKeys();
const servers: FakeControlPlane[] = [];
const agents: InProcessAgent[] = [];

afterAll(async () => {
  for (const a of agents) await a.stop();
  for (const s of servers) await s.close();
  keys.remove();
});

async function agentWith(features: Record<string, boolean | number | string>) {
  const server = await startFakeControlPlane({ keys, cert, features });
  servers.push(server);
  const a = await startInProcessAgent({ server, keys, cert });
  agents.push(a);
  return { server, a };
}

describe('the agent refuses a task its license does not grant', () => {
  it('a forged http.get lease is rejected naming tasks.http_get, its URL never fetched; echo still runs', async () => {
    const { server, a } = await agentWith({ 'tasks.echo': true, 'tasks.sleep': true, 'tasks.http_get': false });
    const fetchesBefore = server.httpGets.length;
    const forged = server.enqueue('http.get', { url: `${server.origin}/data/secret` }, a.agentId);
    const allowed = server.enqueue('echo', { n: 1 }, a.agentId);
    await server.waitFor('both results', () => server.task(forged)?.result && server.task(allowed)?.result);
    expect(server.task(forged)?.result).toMatchObject({ outcome: 'rejected' });
    expect(server.task(forged)?.result?.error).toContain('tasks.http_get');
    expect(server.httpGets.length).toBe(fetchesBefore);
    expect(server.task(allowed)?.result).toEqual({ outcome: 'succeeded', result: { echo: { n: 1 } } });
    expect(a.journal.tail(100).find((e) => e.event === 'task.not_entitled')).toMatchObject({
      taskId: forged,
      kind: 'http.get',
      feature: 'tasks.http_get',
    });
    // A refused entitlement is the task's end, not the agent's: it keeps working.
    expect(a.agent.gate.terminal()).toBeNull();
  });

  it('a kind the document does not name at all is refused (only a literal true grants)', async () => {
    const { server, a } = await agentWith({ 'tasks.echo': true, 'tasks.http_get': 'yes' });
    const sleep = server.enqueue('sleep', { ms: 1 }, a.agentId);
    const get = server.enqueue('http.get', { url: `${server.origin}/data/x` }, a.agentId);
    await server.waitFor('both results', () => server.task(sleep)?.result && server.task(get)?.result);
    expect(server.task(sleep)?.result?.error).toContain('tasks.sleep');
    expect(server.task(get)?.result?.error).toContain('tasks.http_get');
  });

  it('tasks.max_concurrent = 0 grants no task at all', async () => {
    const { server, a } = await agentWith({ 'tasks.echo': true, 'tasks.max_concurrent': 0 });
    const echo = server.enqueue('echo', { n: 1 }, a.agentId);
    await server.waitFor('the result', () => server.task(echo)?.result);
    expect(server.task(echo)?.result).toMatchObject({ outcome: 'rejected' });
    expect(server.task(echo)?.result?.error).toContain('tasks.max_concurrent');
  });

  it('a non-root user who writes tasks.http_get: true into license.json gets a tampered license, not the task', async () => {
    const { server, a } = await agentWith({ 'tasks.echo': true, 'tasks.http_get': false });
    const doc = a.store.readJson(PREFIX_FILES.license) as SignedLicense;
    a.store.writeJson(PREFIX_FILES.license, {
      ...doc,
      document: { ...doc.document, features: { ...doc.document.features, 'tasks.http_get': true } },
    });
    // The running agent holds the document it verified; a restart reads the edited file.
    await a.restart();
    const get = server.enqueue('http.get', { url: `${server.origin}/data/y` }, a.agentId);
    const t = await server.waitFor('terminal', () => a.agent.gate.terminal(), 30_000);
    expect(t.code).toBe('LICENSE_TAMPERED');
    expect(t.permanent).toBe(true);
    expect(server.httpGets.some((g) => g.url === '/data/y')).toBe(false);
    expect(server.task(get)?.state).not.toBe('done');
  });

  it('a document issued before entitlements (no tasks.* feature) keeps every kind it ran before', async () => {
    const { server, a } = await agentWith({ seats: 5 });
    const echo = server.enqueue('echo', { n: 1 }, a.agentId);
    const get = server.enqueue('http.get', { url: `${server.origin}/data/z` }, a.agentId);
    await server.waitFor('both results', () => server.task(echo)?.result && server.task(get)?.result);
    expect(server.task(echo)?.result?.outcome).toBe('succeeded');
    expect(server.task(get)?.result?.outcome).toBe('succeeded');
  });
});
