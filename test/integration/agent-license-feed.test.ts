import { readFileSync } from 'node:fs';
import { PREFIX_FILES, type TrustedKeys } from '../../agent/settings';
import type { JournalEntry } from '../../agent/journal';
import { startInProcessAgent, type InProcessAgent } from '../support/agent-harness';
import { waitUntil } from '../support/agent-fakes';
import { startAgentStack, type AgentStack } from '../support/agent-stack';
import { startMitm } from '../support/agent-mitm';

/**
 * The signed bad-news feed (GET /v1/agent/revocations) as the agent uses it: after a time out of
 * contact it journals what happened to its license meanwhile, and believes nothing unsigned.
 * Real control plane (API over HTTPS, worker, Temporal, PostgreSQL); between it and the agent, a
 * man in the middle holding the API's own certificate and key, who can cut the agent off or rewrite
 * the feed's answers (the strongest network attacker: one the pinned CA does not stop).
 */
jest.setTimeout(150_000);

type Mode = 'pass' | 'cut' | 'tamper' | 'strip' | 'replay';
let stack: AgentStack;
let trusted: TrustedKeys;
let proxy: Awaited<ReturnType<typeof startMitm>> | undefined;
let proxyUrl: string;
let mode: Mode = 'pass';
/** The last authentic feed answer with items seen (signed, about the first test's license), for the replay. */
let answerWithItems: string | null = null;
const running: InProcessAgent[] = [];

function rewrite(path: string, body: string): string {
  if (!path.startsWith('/v1/agent/revocations')) return body;
  const signed = JSON.parse(body) as { payload: { items: Array<Record<string, unknown>> }; signature?: unknown };
  if (mode === 'pass' && signed.payload.items.length > 0) answerWithItems = body;
  if (mode === 'replay' && answerWithItems) return answerWithItems;
  if (mode === 'tamper') {
    // The attacker hides the bad news and keeps the signature.
    for (const item of signed.payload.items) item.reason = 'paid in full';
    signed.payload.items = signed.payload.items.filter((i) => i.state !== 'revoked');
  }
  if (mode === 'strip') delete signed.signature;
  return JSON.stringify(signed);
}

beforeAll(async () => {
  stack = await startAgentStack('agentfeed');
  trusted = JSON.parse(readFileSync(stack.keysFile, 'utf8')) as TrustedKeys;
  proxy = await startMitm({
    upstream: stack.url,
    cert: stack.cert,
    onRequest: () => (mode === 'cut' ? 'cut' : undefined),
    onAnswer: (req, answer) =>
      answer.status === 200 ? { body: rewrite(req.url ?? '', answer.body.toString('utf8')) } : undefined,
  });
  proxyUrl = proxy.url;
});
afterEach(async () => {
  mode = 'pass';
  for (const a of running.splice(0)) await a.stop().catch(() => undefined);
});
afterAll(async () => {
  await proxy?.close();
  await stack?.close();
});

async function agentOnNewLicense(): Promise<{ licenseId: string; a: InProcessAgent }> {
  const licenseId = await stack.createLicense();
  const a = await startInProcessAgent({
    server: { url: proxyUrl, origin: proxyUrl, issueToken: () => stack.issueToken(licenseId) },
    keys: { trusted },
    cert: { cert: stack.cert.cert },
    settings: { statusWaitS: 2, taskWaitS: 1 },
  });
  running.push(a);
  // At start it reads the feed once: nothing yet, the cursor kept beside its other state.
  await waitUntil('the first feed read', () => a.store.readJson(PREFIX_FILES.feedCursor), 20_000, 10);
  return { licenseId, a };
}

const events = (a: InProcessAgent, name: string): JournalEntry[] =>
  a.journal.tail(1000).filter((e) => e.event === name);

/** Cuts the agent off until it has noticed (a failed request), runs `meanwhile`, lets it back in. */
async function whileCutOff(a: InProcessAgent, meanwhile: () => Promise<void>, back: Mode = 'pass'): Promise<void> {
  mode = 'cut';
  const failedBefore = a.logs.lines.filter((l) => l.includes('failed')).length;
  for (const s of proxy!.sockets) s.destroy();
  await waitUntil(
    'the agent to notice it is cut off',
    () => a.logs.lines.filter((l) => l.includes('failed')).length > failedBefore,
    30_000,
    10,
  );
  await meanwhile();
  mode = back;
}

describe('the agent journals the signed bad-news feed it missed while out of contact', () => {
  it('suspended, resumed and revoked while cut off: back in contact, each item is in the journal with its time and version, once', async () => {
    const { licenseId, a } = await agentOnNewLicense();
    expect(a.store.readJson(PREFIX_FILES.feedCursor)).toMatchObject({ cursor: 0 });
    expect(events(a, 'license.feed_event')).toEqual([]);

    const cutAt = Date.now();
    await whileCutOff(a, async () => {
      await stack.admin('POST', `/v1/admin/licenses/${licenseId}/suspend`, { reason: 'invoice overdue' });
      await stack.admin('POST', `/v1/admin/licenses/${licenseId}/resume`, {});
      await stack.admin('POST', `/v1/admin/licenses/${licenseId}/revoke`, { reason: 'contract ended' });
    });
    // The agent learned nothing while cut off.
    expect(a.agent.gate.terminal()).toBeNull();

    const got = await waitUntil(
      'the missed items in the journal',
      () => {
        const e = events(a, 'license.feed_event');
        return e.length >= 2 ? e : null;
      },
      30_000,
      10,
    );
    expect(got.map((e) => [e.state, e.reason, e.licenseId])).toEqual([
      ['suspended', 'invoice overdue', licenseId],
      ['revoked', 'contract ended', licenseId],
    ]);
    const [suspended, revoked] = got as [JournalEntry, JournalEntry];
    expect(Number(revoked.version)).toBeGreaterThan(Number(suspended.version));
    for (const e of got) {
      expect(Date.parse(String(e.happenedAt))).toBeGreaterThanOrEqual(cutAt - 1000);
      expect(Date.parse(String(e.happenedAt))).toBeLessThanOrEqual(Date.parse(e.at));
    }
    expect(a.store.readJson(PREFIX_FILES.feedCursor)).toMatchObject({ cursor: revoked.cursor });
    // The long-poll, not the feed, decides: the revocation stops the agent for good.
    const t = await waitUntil('terminal', () => a.agent.gate.terminal(), 30_000, 10);
    expect(t.permanent).toBe(true);
    expect(events(a, 'license.feed_refused')).toEqual([]);

    // A restart reads from the stored cursor: nothing is journaled twice.
    await a.restart();
    await waitUntil('a status after the restart', () => a.agent.checks.status.payload(), 20_000, 10);
    await new Promise((r) => setTimeout(r, 1500));
    expect(events(a, 'license.feed_event')).toHaveLength(2);
  });

  it("a rewritten, an unsigned and another license's feed answer are refused and journaled; the cursor stays; honest contact later brings the items", async () => {
    const { licenseId, a } = await agentOnNewLicense();
    await whileCutOff(
      a,
      async () => {
        await stack.admin('POST', `/v1/admin/licenses/${licenseId}/suspend`, { reason: 'invoice overdue' });
        await stack.admin('POST', `/v1/admin/licenses/${licenseId}/revoke`, { reason: 'contract ended' });
      },
      'tamper',
    );
    const refused = () => events(a, 'license.feed_refused');
    await waitUntil('the rewritten feed refused', () => refused().length >= 1, 30_000, 10);
    expect(refused()[0]).toMatchObject({ reason: expect.stringMatching(/^feed signature rejected/) });

    // The other license's signed answer was recorded in the first test.
    expect(answerWithItems).not.toBeNull();
    for (const [attack, reason] of [
      ['strip', 'malformed feed answer'],
      // An authentic signed page, but about the first test's license (same license key).
      ['replay', 'feed item about another license'],
    ] as const) {
      const before = refused().length;
      await whileCutOff(a, async () => undefined, attack);
      await waitUntil(`the ${attack} feed refused`, () => refused().length > before, 30_000, 10);
      expect(refused().at(-1)).toMatchObject({ reason });
    }
    // No attack put anything in the journal or moved the cursor.
    expect(events(a, 'license.feed_event')).toEqual([]);
    expect(a.store.readJson(PREFIX_FILES.feedCursor)).toMatchObject({ cursor: 0 });
    // The long-poll went through untouched: the revocation stopped the agent all the same.
    expect((await waitUntil('terminal', () => a.agent.gate.terminal(), 30_000, 10)).permanent).toBe(true);

    // The next honest contact after a cut brings the items the attacker hid.
    await whileCutOff(a, async () => undefined, 'pass');
    const got = await waitUntil(
      'the items',
      () => (events(a, 'license.feed_event').length >= 2 ? events(a, 'license.feed_event') : null),
      30_000,
      10,
    );
    expect(got.map((e) => [e.state, e.reason])).toEqual([
      ['suspended', 'invoice overdue'],
      ['revoked', 'contract ended'],
    ]);
  });
});
