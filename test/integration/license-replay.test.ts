import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { testEnv } from '../support/env';
import { quietTemporalRuntime } from '../support/temporal';
import { bundleTestWorkflows } from '../support/workflow-bundle';

/**
 * Recorded licenseLifecycle histories (test/fixtures/histories, re-record with
 * `npm run histories:record`) replayed through the production bundle: a change that breaks
 * determinism for running lifecycles fails here.
 */
const DIR = path.join(__dirname, '..', 'fixtures', 'histories');
const load = (name: string) => temporal.api.history.v1.History.fromObject(JSON.parse(readFileSync(path.join(DIR, `${name}.json`), 'utf8')));
const names = readdirSync(DIR).filter((f) => f.endsWith('.json')).map((f) => f.replace(/\.json$/, '')).sort();

/** The `to` state of every transition activity the history scheduled. */
function transitions(history: temporal.api.history.v1.IHistory): string[] {
  return (history.events ?? [])
    .map((e) => e.activityTaskScheduledEventAttributes?.input?.payloads?.[0]?.data)
    .filter((d): d is Uint8Array => !!d)
    .map((d) => (JSON.parse(Buffer.from(d).toString('utf8')) as { to: string }).to);
}

describe('licenseLifecycle replay', () => {
  beforeAll(() => quietTemporalRuntime());

  it('has a recorded history for every transition path', () => {
    const expected: Record<string, string[]> = {
      'trial-expired': ['expired'],
      'trial-grace-expired': ['grace', 'expired'],
      'active-grace-expired': ['grace', 'expired'],
      'active-expired-zero-grace': ['expired'],
      'grace-renewed-active': ['grace', 'active'],
      'expired-renewed-active': ['expired', 'active'],
      'suspended-resumed-grace-expired': ['suspended', 'grace', 'expired'],
      'trial-converted': ['active'],
      'revoked-from-trial': ['revoked'],
      'revoked-from-active-renew-refused': ['revoked'],
      'revoked-from-suspended': ['suspended', 'revoked'],
      'revoked-from-grace': ['grace', 'revoked'],
      'revoked-from-expired': ['expired', 'revoked'],
    };
    // Two updates sent at once: whichever the workflow took first, the revoke ends it.
    expect([['suspended', 'revoked'], ['revoked']]).toContainEqual(transitions(load('concurrent-suspend-revoke')));
    for (const [name, path_] of Object.entries(expected)) expect([name, transitions(load(name))]).toEqual([name, path_]);
    const first = load('continue-as-new-first-run');
    expect(first.events?.some((e) => e.workflowExecutionContinuedAsNewEventAttributes)).toBe(true);
    expect(names).toEqual(expect.arrayContaining([...Object.keys(expected), 'concurrent-suspend-revoke', 'continue-as-new-first-run', 'continue-as-new-last-run']));
  });

  it('recorded payloads carry ids, dates and reasons only: no key material or secrets', () => {
    for (const name of names) {
      const text = readFileSync(path.join(DIR, `${name}.json`), 'utf8');
      const decoded = [...text.matchAll(/"data":"([A-Za-z0-9+/=]+)"/g)].map((m) => Buffer.from(m[1]!, 'base64').toString('utf8')).join('\n');
      expect(decoded).not.toMatch(/PRIVATE KEY|(act|svc|agc|sess)_[A-Za-z0-9_-]{20,}|password|token/i);
      expect(decoded).toMatch(/lic_/);
    }
  });

  it('replays every recorded history through the production workflow bundle', async () => {
    const results = [];
    const histories = names.map((name) => ({ workflowId: name, history: load(name) }));
    for await (const r of Worker.runReplayHistories({ workflowBundle: { codePath: testEnv('AGENTINA_TEST_WORKFLOW_BUNDLE') } }, histories)) {
      results.push({ name: r.workflowId, error: r.error ? String(r.error) : null });
    }
    expect(results).toHaveLength(names.length);
    expect(results.filter((r) => r.error)).toEqual([]);
  });

  it('a non-deterministic change fails the replay', async () => {
    const workflowBundle = await bundleTestWorkflows(require.resolve('../support/workflows/license-nondeterministic'));
    const errors = [];
    for await (const r of Worker.runReplayHistories({ workflowBundle }, [{ workflowId: 'trial-expired', history: load('trial-expired') }])) errors.push(r.error);
    expect(errors[0]).toMatchObject({ name: 'DeterminismViolationError' });
  });
});
