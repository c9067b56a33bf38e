import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { MAX_JSON_DEPTH, SAFE_STRING_CHECKS, jsonValue } from '../protocol';
import { AppError, errorBody } from './errors';

/**
 * What a JSON text must be before it is parsed: nested at most `maxDepth` levels, and no object
 * naming a key twice (parsers disagree on which value wins, so a proxy and this API could read two
 * different requests; RFC 7493 forbids it). Returns why not, or null. One linear pass over the
 * text, no recursion; JSON.parse still decides whether the text is JSON at all.
 */
export function jsonTextProblem(text: string, maxDepth: number): string | null {
  // One entry per open container: the keys seen so far for an object, null for an array.
  const open: Array<Set<string> | null> = [];
  let keyNext = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 0x5c /* \ */) {
          escaped = true;
          j += 2;
        } else if (d === 0x22) break;
        else j++;
      }
      if (keyNext) {
        const keys = open[open.length - 1];
        let key: string;
        try {
          key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        } catch {
          return null; // not JSON: the parser says so
        }
        if (keys) {
          if (keys.has(key)) return `the key ${JSON.stringify(key.slice(0, 50))} appears twice in one object`;
          keys.add(key);
        }
        keyNext = false;
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (open.length >= maxDepth) return `it nests deeper than ${maxDepth} levels`;
      open.push(c === 0x7b ? new Set() : null);
      keyNext = c === 0x7b;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      open.pop();
      keyNext = false;
    } else if (c === 0x2c /* , */) {
      keyNext = open.length > 0 && open[open.length - 1] !== null;
    } else if (c === 0x3a /* : */) {
      keyNext = false;
    }
  }
  return null;
}

/** The request parts a route's schema may declare, and what each is called in error details. */
const INPUT_PARTS = ['body', 'querystring', 'params', 'headers'] as const;
const BODYLESS = new Set(['GET', 'HEAD', 'OPTIONS']);

type ZodLike = { _zod: { def: Record<string, unknown> & { type: string } } };
const isZod = (s: unknown): s is ZodLike =>
  typeof s === 'object' && s !== null && '_zod' in s && typeof (s as ZodLike)._zod?.def?.type === 'string';

/**
 * Paths (within one zod schema) of strings not built by safeString and of free-shaped values not
 * taken through jsonValue: what a request could use to carry control characters, unpaired
 * surrogates or unbounded JSON past validation.
 */
export function unsafeInputPaths(schema: unknown, at = ''): string[] {
  const found: string[] = [];
  const seen = new Set<unknown>();
  const walk = (s: unknown, path: string): void => {
    if (!isZod(s) || seen.has(s)) return;
    seen.add(s);
    const def = s._zod.def;
    const inner = (key: string, suffix = '') => walk(def[key], path + suffix);
    switch (def.type) {
      case 'string': {
        const checks = (def.checks as Array<{ _zod: { def: { fn?: unknown } } }> | undefined) ?? [];
        if (!checks.some((c) => SAFE_STRING_CHECKS.has(c._zod.def.fn as (s: string) => boolean)))
          found.push(path || '(root)');
        return;
      }
      case 'unknown':
      case 'any':
        if ((s as unknown) !== jsonValue) found.push(path || '(root)');
        return;
      case 'object':
        for (const [k, v] of Object.entries(def.shape as Record<string, unknown>)) walk(v, `${path}.${k}`);
        if (def.catchall) inner('catchall', '.*');
        return;
      case 'record':
        inner('keyType', '.<key>');
        inner('valueType', '.*');
        return;
      case 'array':
        inner('element', '[]');
        return;
      case 'tuple':
        (def.items as unknown[]).forEach((item, i) => walk(item, `${path}[${i}]`));
        if (def.rest) inner('rest', '[]');
        return;
      case 'union':
        for (const option of def.options as unknown[]) walk(option, path);
        return;
      case 'intersection':
        inner('left');
        inner('right');
        return;
      case 'pipe':
        inner('in');
        return;
      case 'lazy':
        walk((def.getter as () => unknown)(), path);
        return;
      case 'optional':
      case 'nullable':
      case 'default':
      case 'prefault':
      case 'catch':
      case 'readonly':
      case 'nonoptional':
        inner('innerType');
        return;
      default:
        return; // numbers, booleans, enums, literals, dates: nothing free-form to carry
    }
  };
  walk(schema, at);
  return found;
}

/** Why a route's declared input breaks the input rules (docs/api.md, "Input rules"), or []. */
export function routeInputProblems(route: Pick<RouteOptions, 'method' | 'url' | 'schema'>): string[] {
  const schema = (route.schema ?? {}) as Record<string, unknown>;
  if ((schema as { hide?: boolean }).hide) return [];
  const problems = INPUT_PARTS.flatMap((part) =>
    unsafeInputPaths(schema[part], part).map((p) => `${p} is not built from safeString/jsonValue`),
  );
  const methods = [route.method].flat().map(String);
  if (methods.some((m) => !BODYLESS.has(m)) && schema.body === undefined)
    problems.push('changes state but declares no body schema (use an empty strict object)');
  return problems;
}

/**
 * The input rules every route gets:
 * - JSON bodies are checked for depth and duplicate keys before they are parsed, then parsed by
 *   Fastify's own parser (which refuses `__proto__` and `constructor.prototype`); the body size
 *   limit stays the app's (1 MiB) or the route's own.
 * - A route whose request schema lets a bare string or free-shaped value through, or that changes
 *   state without a body schema, stops the app from starting (like a route without an access rule).
 */
declare module 'fastify' {
  interface FastifyRequest {
    /** A JSON body's text as received (set by the JSON parser below). */
    rawBody?: string;
  }
}

export function installInputRules(app: FastifyInstance, opts: { maxDepth?: number } = {}): void {
  const maxDepth = opts.maxDepth ?? MAX_JSON_DEPTH;
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const problem = jsonTextProblem(body as string, maxDepth);
    if (problem) {
      done(new AppError('BAD_REQUEST', `The JSON body is refused: ${problem}.`), undefined);
      return;
    }
    // Kept for the agent proof of possession, which covers the body's exact bytes.
    req.rawBody = body as string;
    void parse(req, body as string, done);
  });

  const broken: string[] = [];
  app.addHook('onRoute', (route) => {
    for (const problem of routeInputProblems(route)) broken.push(`${String(route.method)} ${route.url}: ${problem}`);
  });
  app.addHook('onReady', async () => {
    if (broken.length) throw new Error(`routes that break the input rules:\n  ${broken.join('\n  ')}`);
  });
}

/**
 * Fastify's own refusals that happen before routing (a path that is not valid percent-encoded
 * UTF-8, a path parameter over the router's length limit), in the one error shape.
 */
export function frameworkErrorHandler(headers: Record<string, string>) {
  return (err: { code?: string }, req: FastifyRequest, reply: FastifyReply): void => {
    void reply.headers(headers).header('x-request-id', req.id);
    const url = err.code === 'FST_ERR_BAD_URL' || err.code === 'FST_ERR_MAX_PARAM_LENGTH';
    if (!url) req.log.error({ err }, 'framework error');
    void reply
      .status(url ? 400 : 500)
      .send(
        url
          ? errorBody('BAD_REQUEST', 'The request path is not valid.', req.id)
          : errorBody('INTERNAL', 'Something went wrong on our side.', req.id),
      );
  };
}
