import { TASK_KINDS, type TaskKind } from './enums';

/**
 * Entitlements: the license features the control plane and the agent both obey. A task kind runs
 * only when its feature is `true`; the numeric features cap what a license may run. Plain values
 * and pure functions, so the control plane, the agent and the browser read one rule.
 */
export type FeatureValue = boolean | number | string;
export type Features = Readonly<Record<string, FeatureValue>>;

/** The feature each task kind requires (`true` grants it; absent or anything else refuses it). */
export const TASK_KIND_FEATURES: Readonly<Record<TaskKind, string>> = {
  echo: 'tasks.echo',
  sleep: 'tasks.sleep',
  'http.get': 'tasks.http_get',
};

/** At most this many tasks of the license leased at once, across all its agents (absent: no cap). */
export const MAX_CONCURRENT_FEATURE = 'tasks.max_concurrent';
/** At most this many tasks queued for the license in any 24 hours (absent: no cap). */
export const PER_DAY_FEATURE = 'tasks.per_day';
export const PER_DAY_WINDOW_MS = 24 * 60 * 60 * 1000;

/** Every documented feature name and what it means (docs/api.md lists the same). */
export const DOCUMENTED_FEATURES: Readonly<Record<string, { type: 'boolean' | 'count'; meaning: string }>> = {
  'tasks.echo': { type: 'boolean', meaning: 'may run echo tasks' },
  'tasks.sleep': { type: 'boolean', meaning: 'may run sleep tasks' },
  'tasks.http_get': { type: 'boolean', meaning: 'may run http.get tasks' },
  [MAX_CONCURRENT_FEATURE]: { type: 'count', meaning: 'tasks leased at once across the license, at most' },
  [PER_DAY_FEATURE]: { type: 'count', meaning: 'tasks queued for the license in any 24 hours, at most' },
};

/**
 * What a license created without a `features` field holds, written into its row and signed into
 * its documents as these explicit values; migration 0095 gave the same to every license that
 * existed before entitlements.
 */
export const DEFAULT_TASK_FEATURES: Readonly<Record<string, boolean>> = Object.fromEntries(
  TASK_KINDS.map((k) => [TASK_KIND_FEATURES[k], true]),
);

/**
 * The features a license is stored and signed with: none given → the default grant; given →
 * exactly those, with every task kind they do not name written as `false`. So every document
 * issued from now on names every task kind, and only a document issued before entitlements
 * names none (see agentFeatures).
 */
export function explicitTaskFeatures(given: Features | undefined): Record<string, FeatureValue> {
  if (given === undefined) return { ...DEFAULT_TASK_FEATURES };
  const denied = Object.fromEntries(TASK_KINDS.map((k) => [TASK_KIND_FEATURES[k], false]));
  return { ...denied, ...given };
}

export type EntitlementVerdict =
  | { ok: true }
  | { ok: false; code: 'NOT_ENTITLED'; feature: string; message: string }
  | { ok: false; code: 'UNKNOWN_KIND'; feature: null; message: string };

/** The feature a kind requires, or null for a kind no license can grant. */
export function featureForKind(kind: string): string | null {
  return (TASK_KINDS as readonly string[]).includes(kind) ? TASK_KIND_FEATURES[kind as TaskKind] : null;
}

/** Whether `features` grant the task kind: only a literal `true` does. */
export function taskEntitlement(features: Features, kind: string): EntitlementVerdict {
  const feature = featureForKind(kind);
  if (feature === null) return { ok: false, code: 'UNKNOWN_KIND', feature: null, message: `unknown task kind ${kind}` };
  if (features[feature] === true) return { ok: true };
  return {
    ok: false,
    code: 'NOT_ENTITLED',
    feature,
    message: `the license does not grant ${feature} (required to run ${kind} tasks)`,
  };
}

/** The kinds `features` grant. */
export function entitledKinds(features: Features): TaskKind[] {
  return TASK_KINDS.filter((k) => features[TASK_KIND_FEATURES[k]] === true);
}

/** A numeric cap, or null when the license sets none. */
export function featureLimit(features: Features, name: typeof MAX_CONCURRENT_FEATURE | typeof PER_DAY_FEATURE) {
  const v = features[name];
  return typeof v === 'number' ? v : null;
}

/**
 * Problems with the documented features in a request (wrong type, negative or fractional count),
 * as `[name, message]`; undocumented names are the vendor's own and pass untouched.
 */
export function featureProblems(features: Features): Array<[string, string]> {
  const problems: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(features)) {
    const doc = DOCUMENTED_FEATURES[name];
    if (!doc) continue;
    if (doc.type === 'boolean' && typeof value !== 'boolean') problems.push([name, `${name} must be true or false`]);
    if (doc.type === 'count' && !(typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 1e9))
      problems.push([name, `${name} must be a whole number from 0 to 1000000000`]);
  }
  return problems;
}

/**
 * How the agent reads a document: one issued before entitlements names no `tasks.*` feature and
 * is read as the grant migration 0095 gave its license on the control plane; every other
 * document is read exactly as signed.
 */
export function agentFeatures(features: Features): Features {
  const named = Object.keys(features).some((k) => k.startsWith('tasks.'));
  return named ? features : { ...DEFAULT_TASK_FEATURES, ...features };
}
