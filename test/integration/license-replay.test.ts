import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { testEnv } from '../support/env';
import { expectTemporalWarnings, quietTemporalRuntime } from '../support/temporal';
import { bundleTestWorkflows } from '../support/workflow-bundle';

/**
 * Recorded licenseLifecycle histories (test/fixtures/histories/<version>, re-record the current
 * version with `npm run histories:record`) replayed through the production bundle: a change that
 * breaks determinism for running lifecycles fails here. v1 histories ran every transition as a
 * scheduled activity; v2 (the LOCAL_TRANSITION_PATCH) as a local activity; v3 (the
 * UPDATE_ORIGIN_PATCH) hands each Update's origin proof to the transition; v4 adds the changeTerms
 * Update (a new handler, no patch needed: older histories never received it). All must replay.
 */
const ROOT = path.join(__dirname, '..', 'fixtures', 'histories');
const VERSIONS = {
  'v1-scheduled-activity': 'scheduled',
  'v2-local-activity': 'local',
  'v3-update-origin': 'local',
  'v4-terms-change': 'local',
} as const;
const file = (version: string, name: string) => path.join(ROOT, version, `${name}.json`);
const load = (version: string, name: string) =>
  temporal.api.history.v1.History.fromObject(JSON.parse(readFileSync(file(version, name), 'utf8')));
const namesIn = (version: string) =>
  readdirSync(path.join(ROOT, version))
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.replace(/\.json$/, ''))
    .sort();
const all = Object.keys(VERSIONS).flatMap((version) => namesIn(version).map((name) => ({ version, name })));

const decode = (d: Uint8Array | null | undefined): unknown =>
  d ? JSON.parse(Buffer.from(d).toString('utf8')) : undefined;

/** The states a history moved through: the LicenseState upserted after each transition. */
function transitions(history: temporal.api.history.v1.IHistory): string[] {
  return (history.events ?? [])
    .map((e) =>
      decode(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields?.LicenseState?.data),
    )
    .filter((s): s is string => typeof s === 'string');
}

/** How the history ran its transitions. */
function transitionKinds(history: temporal.api.history.v1.IHistory): { scheduled: number; local: number } {
  const events = history.events ?? [];
  return {
    scheduled: events.filter(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'applyLicenseTransition',
    ).length,
    local: events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity').length,
  };
}

describe('licenseLifecycle replay', () => {
  beforeAll(() => quietTemporalRuntime());

  it.each(Object.entries(VERSIONS))(
    '%s has a recorded history for every transition path, run as %s activities',
    (version, kind) => {
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
      expect([['suspended', 'revoked'], ['revoked']]).toContainEqual(
        transitions(load(version, 'concurrent-suspend-revoke')),
      );
      for (const [name, path_] of Object.entries(expected)) {
        const history = load(version, name);
        expect([name, transitions(history)]).toEqual([name, path_]);
        // Every transition ran the way this version runs them, and only that way.
        const kinds = transitionKinds(history);
        expect([name, kinds]).toEqual([
          name,
          kind === 'local' ? { scheduled: 0, local: path_.length } : { scheduled: path_.length, local: 0 },
        ]);
      }
      expect(
        load(version, 'continue-as-new-first-run').events?.some(
          (e) => e.workflowExecutionContinuedAsNewEventAttributes,
        ),
      ).toBe(true);
      expect(namesIn(version)).toEqual(
        expect.arrayContaining([
          ...Object.keys(expected),
          'concurrent-suspend-revoke',
          'continue-as-new-first-run',
          'continue-as-new-last-run',
        ]),
      );
    },
  );

  it('v3 records the origin patch, and an Update made by hand refused by the transition without a change', () => {
    const history = load('v3-update-origin', 'update-by-hand-refused');
    const events = history.events ?? [];
    const patches = events
      .filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch')
      .map((e) =>
        JSON.stringify(decode(e.markerRecordedEventAttributes?.details?.['patch-data']?.payloads?.[0]?.data)),
      );
    expect(patches.join(' ')).toContain('update-origin-proof');
    const outcomes = events
      .map((e) => e.workflowExecutionUpdateCompletedEventAttributes?.outcome)
      .filter((o) => o)
      .map((o) => (o?.failure ? `refused: ${o.failure.message}` : 'applied'));
    expect(outcomes).toEqual([expect.stringMatching(/^refused: .*origin check: missing_proof/), 'applied']);
    expect(transitions(history)).toEqual(['suspended']);
  });

  it('v4 records a change of terms that re-armed the grace timer, and one sent by hand refused before the API’s applied', () => {
    const rearmed = load('v4-terms-change', 'terms-changed-grace-rearmed');
    // grace (timer, day 5) → grace (terms: 10 → 2 grace days) → expired (the re-armed timer, day 7).
    expect(transitions(rearmed)).toEqual(['grace', 'grace', 'expired']);
    const updates = (rearmed.events ?? [])
      .map((e) => e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name)
      .filter(Boolean);
    expect(updates).toEqual(['changeTerms']);
    const byHand = load('v4-terms-change', 'terms-change-by-hand-refused');
    const outcomes = (byHand.events ?? [])
      .map((e) => e.workflowExecutionUpdateCompletedEventAttributes?.outcome)
      .filter((o) => o)
      .map((o) => (o?.failure ? `refused: ${o.failure.message}` : 'applied'));
    expect(outcomes).toEqual([expect.stringMatching(/^refused: .*origin check: missing_proof/), 'applied']);
    expect(transitions(byHand)).toEqual(['active']);
  });

  it('recorded payloads carry ids, dates and reasons only: no key material or secrets', () => {
    for (const { version, name } of all) {
      const text = readFileSync(file(version, name), 'utf8');
      const decoded = [...text.matchAll(/"data":"([A-Za-z0-9+/=]+)"/g)]
        .map((m) => Buffer.from(m[1]!, 'base64').toString('utf8'))
        .join('\n');
      expect(decoded).not.toMatch(/PRIVATE KEY|(act|svc|agc|sess)_[A-Za-z0-9_-]{20,}|password|token/i);
      expect(decoded).toMatch(/lic_/);
    }
  });

  it('replays every recorded history through the production workflow bundle', async () => {
    const results = [];
    const histories = all.map(({ version, name }) => ({
      workflowId: `${version}/${name}`,
      history: load(version, name),
    }));
    for await (const r of Worker.runReplayHistories(
      { workflowBundle: { codePath: testEnv('AGENTINA_TEST_WORKFLOW_BUNDLE') } },
      histories,
    )) {
      results.push({ name: r.workflowId, error: r.error ? String(r.error) : null });
    }
    expect(results).toHaveLength(all.length);
    expect(results.filter((r) => r.error)).toEqual([]);
  });

  it('a non-deterministic change fails the replay', async () => {
    // Provoked on purpose: the core's "Nondeterminism error" warnings are claimed, not printed.
    const warnings = expectTemporalWarnings(/Nondeterminism error/);
    const workflowBundle = await bundleTestWorkflows(require.resolve('../support/workflows/license-nondeterministic'));
    const errors = [];
    for await (const r of Worker.runReplayHistories(
      { workflowBundle },
      Object.keys(VERSIONS).map((version) => ({ workflowId: version, history: load(version, 'trial-expired') })),
    ))
      errors.push(r.error);
    expect(errors).toEqual(
      Object.keys(VERSIONS).map(() => expect.objectContaining({ name: 'DeterminismViolationError' })),
    );
    // The core forwards its logs in batches: wait for every warning before releasing the claim.
    const want = Object.keys(VERSIONS).length;
    for (let i = 0; i < 300 && warnings.lines.length < want; i++) await new Promise((r) => setTimeout(r, 100));
    warnings.release();
    // The core may fold repeated warnings into one batch: at least one must have come through.
    expect(warnings.lines.length).toBeGreaterThanOrEqual(1);
  });
});
