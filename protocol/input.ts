import { z } from 'zod';

/**
 * The one rule for strings that come in from outside (every body, query, path parameter and header
 * the API or the agent reads), and for JSON whose shape is free (task payloads and results).
 *
 * Refused everywhere: C0 control characters (U+0000–U+001F; free text keeps tab and line feed),
 * DEL and C1 controls (U+007F–U+009F), and UTF-16 halves without their other half (they cannot be
 * encoded as UTF-8: PostgreSQL refuses NUL, and a lone half turns into U+FFFD on the way, so two
 * different inputs would become one). Every string has a maximum length.
 */
// Matching control characters is the point of these two.
// eslint-disable-next-line no-control-regex
const UNSAFE_LINE = /[\x00-\x1F\x7F-\x9F]|\p{Cs}/u;
// eslint-disable-next-line no-control-regex
const UNSAFE_TEXT = /[\x00-\x08\x0B-\x1F\x7F-\x9F]|\p{Cs}/u;

/** True when `s` may be stored and shown as one line (no control characters, well-formed UTF-16). */
export function isSafeLine(s: string): boolean {
  return !UNSAFE_LINE.test(s);
}

/** True when `s` may be stored as free text: like isSafeLine, but tab and line feed are allowed. */
export function isSafeText(s: string): boolean {
  return !UNSAFE_TEXT.test(s);
}

const LINE_MESSAGE = 'must not contain control characters or unpaired surrogates';
const TEXT_MESSAGE = 'must not contain control characters (other than tab and line feed) or unpaired surrogates';

/**
 * A string from outside, at most `max` UTF-16 units. Single-line unless `multiline` (then tab and
 * line feed are allowed). Chain further checks (`.regex`, `.min`, `.trim`) onto it.
 */
export function safeString(max: number, opts: { multiline?: boolean } = {}) {
  return opts.multiline
    ? z.string().max(max).refine(isSafeText, TEXT_MESSAGE)
    : z.string().max(max).refine(isSafeLine, LINE_MESSAGE);
}

/** The check functions that mark a string schema as built by safeString (see test/unit/input-schemas.test.ts). */
export const SAFE_STRING_CHECKS: ReadonlySet<(s: string) => boolean> = new Set([isSafeLine, isSafeText]);

/** How deep a JSON body (and any free-shaped JSON value inside it) may nest. */
export const MAX_JSON_DEPTH = 32;
/** Most keys of one object inside a free-shaped JSON value (its total size is the caller's to bound). */
export const MAX_JSON_KEYS = 1000;

/**
 * Why `v` is not plain, storable JSON (null when it is): nesting deeper than MAX_JSON_DEPTH,
 * strings that isSafeText refuses (keys: isSafeLine), numbers that are not finite, `__proto__`
 * keys. Iterative, so no input can exhaust the stack.
 */
export function jsonValueProblem(v: unknown, maxDepth = MAX_JSON_DEPTH): string | null {
  const stack: Array<{ v: unknown; depth: number }> = [{ v, depth: 0 }];
  while (stack.length) {
    const { v: cur, depth } = stack.pop()!;
    if (cur === null || typeof cur === 'boolean') continue;
    if (typeof cur === 'number') {
      if (!Number.isFinite(cur)) return 'numbers must be finite';
      continue;
    }
    if (typeof cur === 'string') {
      if (!isSafeText(cur)) return `strings ${TEXT_MESSAGE}`;
      continue;
    }
    if (typeof cur !== 'object') return 'must be JSON';
    if (depth >= maxDepth) return `must nest at most ${maxDepth} levels deep`;
    if (Array.isArray(cur)) {
      for (const item of cur) stack.push({ v: item, depth: depth + 1 });
      continue;
    }
    const keys = Object.keys(cur);
    if (keys.length > MAX_JSON_KEYS) return `objects must have at most ${MAX_JSON_KEYS} keys`;
    for (const key of keys) {
      if (key === '__proto__') return 'keys must not be __proto__';
      if (key.length > 200 || !isSafeLine(key)) return `keys must be at most 200 characters and ${LINE_MESSAGE}`;
      stack.push({ v: (cur as Record<string, unknown>)[key], depth: depth + 1 });
    }
  }
  return null;
}

/** Free-shaped JSON (a task payload's values, a task result): checked by jsonValueProblem. */
export const jsonValue = z.unknown().superRefine((v, ctx) => {
  const problem = jsonValueProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
