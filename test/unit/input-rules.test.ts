import Fastify from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { installErrorHandling } from '../../api/errors';
import { installInputRules, jsonTextProblem, routeInputProblems, unsafeInputPaths } from '../../api/input-rules';
import {
  activateRequestSchema,
  heartbeatRequestSchema,
  isSafeLine,
  isSafeText,
  jsonValue,
  jsonValueProblem,
  MAX_JSON_DEPTH,
  safeString,
  taskResultRequestSchema,
} from '../../protocol';

const nested = (depth: number, leaf = '1') => '['.repeat(depth) + leaf + ']'.repeat(depth);

describe('safeString', () => {
  it.each([
    ['NUL', 'a\u0000b'],
    ['a C0 control', 'a\u0001b'],
    ['escape', '\u001b[31mred'],
    ['carriage return', 'a\rb'],
    ['DEL', 'a\u007fb'],
    ['a C1 control', 'a\u0085b'],
    ['a lone high surrogate', 'a\ud800b'],
    ['a lone low surrogate', '\udc00'],
    ['a reversed pair', '\udc00\ud800'],
  ])('refuses %s everywhere', (_what, value) => {
    expect(safeString(100).safeParse(value).success).toBe(false);
    expect(safeString(100, { multiline: true }).safeParse(value).success).toBe(false);
  });

  it('keeps tab and line feed for free text only', () => {
    expect(safeString(100).safeParse('a\tb').success).toBe(false);
    expect(safeString(100).safeParse('a\nb').success).toBe(false);
    expect(safeString(100, { multiline: true }).safeParse('a\tb\nc').success).toBe(true);
  });

  it('accepts any other text, including paired surrogates, up to its length', () => {
    for (const s of ['plain', 'Zoë Ünïcödé', '日本語', 'emoji 😀 pair', '\u00a0nbsp', 'x'.repeat(100)])
      expect([s, safeString(100).safeParse(s).success]).toEqual([s, true]);
    expect(safeString(100).safeParse('x'.repeat(101)).success).toBe(false);
    expect(isSafeLine('😀')).toBe(true);
    expect(isSafeText('a\n\tb')).toBe(true);
  });

  it('keeps the checks chained onto it', () => {
    const id = safeString(20).regex(/^ab+$/).trim();
    expect(id.safeParse('abbb').success).toBe(true);
    expect(id.safeParse('abc').success).toBe(false);
    expect(id.safeParse('ab\u0000').success).toBe(false);
  });
});

describe('jsonValue', () => {
  it('accepts plain JSON', () => {
    expect(jsonValue.safeParse({ a: [1, 'two', { three: null, four: true }], 'key with space': -1.5 }).success).toBe(
      true,
    );
  });

  it.each([
    ['a NUL in a nested string', { a: [{ b: 'x\u0000' }] }],
    ['a control character in a key', { 'a\u0001': 1 }],
    ['a lone surrogate', ['\ud800']],
    ['an infinite number', { n: Infinity }],
    ['NaN', [NaN]],
    ['deep nesting', JSON.parse(nested(MAX_JSON_DEPTH + 1))],
    ['a __proto__ key', JSON.parse('{"__proto__": {"polluted": true}}')],
    ['a function', { f: () => 1 }],
  ])('refuses %s', (_what, value) => {
    expect(jsonValueProblem(value)).not.toBeNull();
    expect(jsonValue.safeParse(value).success).toBe(false);
  });

  it('walks 100,000 levels without exhausting the stack', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(jsonValueProblem(deep)).toMatch(/nest/);
  });
});

describe('jsonTextProblem', () => {
  it('passes ordinary JSON', () => {
    for (const text of ['{}', '[]', '1', '"s"', '{"a":{"b":[1,{"c":"}{]["}]},"d":"\\"{"}', nested(32)])
      expect([text, jsonTextProblem(text, 32)]).toEqual([text, null]);
  });

  it('refuses nesting past the limit, with 100,000 levels in one linear pass', () => {
    expect(jsonTextProblem(nested(33), 32)).toMatch(/deeper than 32/);
    expect(jsonTextProblem('{"a":'.repeat(33) + '1' + '}'.repeat(33), 32)).toMatch(/deeper/);
    const started = performance.now();
    expect(jsonTextProblem(nested(100_000), 32)).toMatch(/deeper/);
    expect(jsonTextProblem('x'.repeat(1024 * 1024), 32)).toBeNull();
    expect(performance.now() - started).toBeLessThan(500);
  });

  it('refuses a key named twice in one object, however it is spelt', () => {
    expect(jsonTextProblem('{"a":1,"a":2}', 32)).toMatch(/twice/);
    expect(jsonTextProblem('{"a":1,"\\u0061":2}', 32)).toMatch(/twice/);
    expect(jsonTextProblem('{"x":{"a":1,"b":{"a":2}},"a":[{"a":1},{"a":2}]}', 32)).toBeNull();
    expect(jsonTextProblem('{"x":{"a":1},"x":{"a":1}}', 32)).toMatch(/twice/);
    expect(jsonTextProblem('["a","a"]', 32)).toBeNull();
    expect(jsonTextProblem('{"a":"a","b":"a"}', 32)).toBeNull();
  });
});

describe('route input rules', () => {
  it('finds bare strings and free values anywhere in a request schema', () => {
    const schema = z.strictObject({
      ok: safeString(10),
      id: safeString(10).regex(/^a$/).optional(),
      bare: z.string().max(5),
      list: z.array(z.string()),
      map: z.record(z.string(), jsonValue),
      free: z.unknown(),
      either: z.union([z.number(), z.string()]).nullable(),
      fine: z.record(safeString(10), z.union([z.boolean(), safeString(5)])).default({}),
    });
    expect(unsafeInputPaths(schema, 'body').sort()).toEqual(
      ['body.bare', 'body.either', 'body.free', 'body.list[]', 'body.map.<key>'].sort(),
    );
  });

  it('passes the protocol request schemas the agent sends', () => {
    for (const s of [activateRequestSchema, heartbeatRequestSchema, taskResultRequestSchema])
      expect(unsafeInputPaths(s)).toEqual([]);
  });

  it('asks every state-changing route for a body schema', () => {
    expect(routeInputProblems({ method: 'POST', url: '/x', schema: {} })).toEqual([
      'changes state but declares no body schema (use an empty strict object)',
    ]);
    expect(routeInputProblems({ method: 'GET', url: '/x', schema: {} })).toEqual([]);
    expect(routeInputProblems({ method: 'POST', url: '/x', schema: { hide: true } })).toEqual([]);
  });

  it('stops an app whose route lets a bare string through from starting', async () => {
    const app = Fastify();
    app.setValidatorCompiler(validatorCompiler);
    app.setSerializerCompiler(serializerCompiler);
    installInputRules(app);
    app.get('/things', { schema: { querystring: z.object({ q: z.string() }) } }, async () => ({}));
    await expect(app.ready()).rejects.toThrow(/GET \/things: querystring\.q is not built from safeString/);
  });

  it('refuses a deep or duplicate-key JSON body with 400 in the one error shape, before the handler', async () => {
    const app = Fastify();
    app.setValidatorCompiler(validatorCompiler);
    app.setSerializerCompiler(serializerCompiler);
    installErrorHandling(app);
    installInputRules(app);
    let handled = 0;
    app.post('/echo', { schema: { body: z.object({ v: jsonValue }) } }, async (req) => {
      handled++;
      return req.body;
    });
    await app.ready();
    const post = (payload: string) =>
      app.inject({ method: 'POST', url: '/echo', headers: { 'content-type': 'application/json' }, payload });
    for (const payload of [
      `{"v":${nested(100_000)}}`,
      '{"v":1,"v":2}',
      '{"v":{"__proto__":{"x":1}}}',
      '{"v":{"constructor":{"prototype":{"x":1}}}}',
    ]) {
      const res = await post(payload);
      expect([payload.slice(0, 30), res.statusCode]).toEqual([payload.slice(0, 30), 400]);
      expect(res.json()).toMatchObject({ error: { code: 'BAD_REQUEST', message: expect.any(String) } });
    }
    expect(handled).toBe(0);
    expect((await post('{"v":{"a":[1,2]}}')).json()).toEqual({ v: { a: [1, 2] } });
    await app.close();
  });
});
