import fc from 'fast-check';

/**
 * Hostile requests for every operation of the app's own OpenAPI document
 * (test/integration/hostile-input.test.ts). Each case is a request that is valid as far as the
 * schema can say (ids of real rows, values in range), with one to three hostile changes applied to
 * its body, query, path parameters or headers. Every change is one the API must refuse wherever it
 * lands, so no case may change anything.
 */

export type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  propertyNames?: JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  maxItems?: number;
};

export type Param = { in: 'path' | 'query' | 'header'; name: string; required: boolean; schema: JsonSchema };
export type Operation = { method: string; path: string; params: Param[]; body?: JsonSchema };

type OpenApi = {
  paths: Record<
    string,
    Record<string, { parameters?: Param[]; requestBody?: { content?: Record<string, { schema?: JsonSchema }> } }>
  >;
};

/** Every operation the document lists (the app's own routes; hidden ones are not in it). */
export function operationsOf(doc: unknown): Operation[] {
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries((doc as OpenApi).paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const body = op.requestBody?.content?.['application/json']?.schema;
      ops.push({ method: method.toUpperCase(), path, params: op.parameters ?? [], ...(body ? { body } : {}) });
    }
  }
  return ops;
}

/** Ids of real rows, by prefix, for the `^lic_…` style patterns. */
export type IdFixtures = Record<string, string>;

const ALNUM = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789'.split(''));
const ID_PATTERN = /^\^([a-z]+)_\[/;
/** A date the schemas accept wherever a time is asked for: a month ahead. */
const FUTURE = new Date(Date.now() + 30 * 86_400_000).toISOString();

const typesOf = (s: JsonSchema): string[] => {
  const own = s.type === undefined ? [] : [s.type].flat();
  const options = [...(s.anyOf ?? []), ...(s.oneOf ?? [])].flatMap(typesOf);
  const enumTypes = (s.enum ?? []).map((v) => (v === null ? 'null' : typeof v));
  return [...own, ...options, ...enumTypes, ...(s.const !== undefined ? [typeof s.const] : [])];
};
/** An unconstrained (free-shaped JSON) position. */
const isFree = (s: JsonSchema) => typesOf(s).length === 0 && !s.properties && !s.allOf;

function stringArb(s: JsonSchema, ids: IdFixtures): fc.Arbitrary<string> {
  const id = s.pattern ? ID_PATTERN.exec(s.pattern) : null;
  if (id && ids[id[1]!]) return fc.constant(ids[id[1]!]!);
  if (s.format === 'date-time') return fc.constant(FUTURE);
  const max = s.maxLength ?? 50;
  if (s.pattern)
    return fc
      .stringMatching(new RegExp(s.pattern))
      .filter((v) => v.length <= max && v.length >= (s.minLength ?? 0) && v.trim() === v);
  const min = Math.max(1, s.minLength ?? 0);
  return fc.string({ unit: ALNUM, minLength: min, maxLength: Math.min(max, min + 12) });
}

/** A value the schema accepts (as far as JSON Schema can tell). */
export function validArb(s: JsonSchema, ids: IdFixtures): fc.Arbitrary<unknown> {
  if (s.const !== undefined) return fc.constant(s.const);
  if (s.enum?.length) return fc.constantFrom(...s.enum);
  const options = s.anyOf ?? s.oneOf;
  if (options?.length) return fc.oneof(...options.map((o) => validArb(o, ids)));
  const type = [s.type ?? ''].flat()[0];
  switch (type) {
    case 'string':
      return stringArb(s, ids);
    case 'integer':
    case 'number': {
      const min = s.minimum ?? (s.exclusiveMinimum !== undefined ? s.exclusiveMinimum + 1 : 0);
      const max = s.maximum ?? (s.exclusiveMaximum !== undefined ? s.exclusiveMaximum - 1 : min + 1000);
      return fc.integer({ min, max: Math.min(max, min + 1000) });
    }
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      return fc.array(s.items ? validArb(s.items, ids) : fc.constant('x'), {
        minLength: s.minItems ?? 0,
        maxLength: Math.max(s.minItems ?? 0, Math.min(s.maxItems ?? 2, 2)),
      });
    case 'object': {
      if (s.properties && Object.keys(s.properties).length) {
        const required = s.required ?? [];
        const shape = Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, validArb(v, ids)]));
        return fc.record(shape, { requiredKeys: required });
      }
      if (typeof s.additionalProperties === 'object') {
        const key = s.propertyNames ? stringArb(s.propertyNames, ids) : fc.string({ unit: ALNUM, minLength: 1 });
        return fc.dictionary(key, validArb(s.additionalProperties, ids), { maxKeys: 2 });
      }
      return fc.constant({});
    }
    default:
      return fc.constantFrom('x', 1, { a: 'b' }, [true]);
  }
}

/** JSON text spliced into a body as is (numbers JSON.parse turns into Infinity, 10,000-deep nesting). */
export class Raw {
  constructor(readonly text: string) {}
}
/** Keys an object repeats in its JSON text. */
const DUPLICATES = Symbol('duplicates');
type Dupable = Record<string, unknown> & { [DUPLICATES]?: string[] };

export function jsonText(v: unknown): string {
  if (v instanceof Raw) return v.text;
  if (Array.isArray(v)) return `[${v.map(jsonText).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Dupable;
    const parts = Object.keys(o).map((k) => `${JSON.stringify(k)}:${jsonText(o[k])}`);
    for (const k of o[DUPLICATES] ?? []) parts.push(`${JSON.stringify(k)}:${jsonText(o[k] ?? 1)}`);
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

export const MUTATIONS = [
  'control',
  'long',
  'number',
  'type',
  'unknownKey',
  'duplicateKey',
  'protoKey',
  'constructorKey',
  'deep',
] as const;
export type MutationKind = (typeof MUTATIONS)[number];
export type Mutation = { kind: MutationKind; target: number; pick: number };

/** Refused in every string, free text included (tab and line feed are the only controls free text keeps). */
export const HOSTILE_STRINGS = [
  'a\u0000b',
  '\u0000',
  'x\u0001y',
  'line\rbreak',
  'esc\u001b[2J',
  'bell\u0007',
  'del\u007f',
  'c1\u0085',
  'lone \ud800 high',
  'lone \udc00 low',
  '\udc00\ud800',
] as const;
const LONG = 'x'.repeat(1_000_000);
const DEEP = '['.repeat(10_000) + ']'.repeat(10_000);
/** Percent-encoding as UTF-8 (lone surrogates as the bytes a careless encoder writes: not valid UTF-8). */
export function pctEncode(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff && !(c <= 0xdbff && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00)) {
      out += [0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f)]
        .map((b) => `%${b.toString(16).toUpperCase()}`)
        .join('');
    } else if (c >= 0xd800 && c <= 0xdbff) {
      out += encodeURIComponent(s.slice(i, i + 2));
      i++;
    } else out += encodeURIComponent(s[i]!);
  }
  return out;
}

/** Numbers that break the schema's bounds; 1e400 (Infinity once parsed) breaks every number. */
function badNumbers(s: JsonSchema): unknown[] {
  const out: unknown[] = [new Raw('1e400'), new Raw('-1e400')];
  if (s.minimum !== undefined) out.push(s.minimum - 1, -1e308);
  if (s.maximum !== undefined) out.push(s.maximum + 1, 1e308, 2 ** 53 + 2);
  if (typesOf(s).includes('integer')) out.push(0.5);
  return out;
}

/** A JSON value of a type the schema does not take (undefined for free-shaped positions). */
function wrongType(s: JsonSchema, pick: number, root = false): unknown {
  if (isFree(s)) return undefined;
  const allowed = new Set(typesOf(s).map((t) => (t === 'integer' ? 'number' : t)));
  if (root) allowed.add('null');
  const candidates = [
    ['object', { x: 1 }],
    ['array', []],
    ['boolean', true],
    ['null', null],
    ['number', 7],
    ['string', 'text'],
  ].filter(([t]) => !allowed.has(t as string));
  return candidates.length ? candidates[pick % candidates.length]![1] : undefined;
}

type Node = { path: Array<string | number>; schema: JsonSchema; value: unknown };

function schemaAt(s: JsonSchema, v: unknown): JsonSchema {
  const options = s.anyOf ?? s.oneOf;
  if (!options) return s;
  const t = v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
  return options.find((o) => typesOf(o).some((x) => x === t || (x === 'integer' && t === 'number'))) ?? s;
}

/** Every position of a body value, with the schema that governs it. */
function nodesOf(value: unknown, schema: JsonSchema): Node[] {
  const out: Node[] = [];
  const walk = (v: unknown, s: JsonSchema, path: Array<string | number>) => {
    const own = schemaAt(s, v);
    out.push({ path, schema: own, value: v });
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, own.items ?? {}, [...path, i]));
    else if (v !== null && typeof v === 'object')
      for (const [k, x] of Object.entries(v))
        walk(x, own.properties?.[k] ?? (typeof own.additionalProperties === 'object' ? own.additionalProperties : {}), [
          ...path,
          k,
        ]);
  };
  walk(value, schema, []);
  return out;
}

export type HostileRequest = {
  method: string;
  url: string;
  headers: Record<string, string>;
  /** JSON text, for unsafe methods. */
  payload?: string;
  /** What was done, for a failure message. */
  applied: string[];
};

export type Skeleton = { body: unknown; params: Record<string, string>; query: Record<string, string> };

/** A request valid as far as its schemas tell: real ids, values in range, optional fields at random. */
export function skeletonArb(op: Operation, ids: IdFixtures): fc.Arbitrary<Skeleton> {
  const pathParams = op.params.filter((p) => p.in === 'path');
  const query = op.params.filter((p) => p.in === 'query');
  const asText = (p: Param) =>
    // Query numbers at their minimum: `wait` must not park the request for 30 s.
    (p.in === 'query' && typesOf(p.schema).some((t) => t === 'integer' || t === 'number')
      ? fc.constant(p.schema.minimum ?? 1)
      : validArb(p.schema, ids)
    ).map(String);
  return fc.record({
    body: op.body ? validArb(op.body, ids) : fc.constant(undefined),
    params: fc.record(Object.fromEntries(pathParams.map((p) => [p.name, asText(p)]))),
    query: fc.record(Object.fromEntries(query.map((p) => [p.name, asText(p)])), {
      requiredKeys: query.filter((p) => p.required).map((p) => p.name),
    }),
  });
}

/** Where a mutation may land in this request: each body position, then each declared parameter. */
export function targetsOf(op: Operation, sk: Skeleton): string[] {
  const unsafe = !['GET', 'HEAD', 'OPTIONS'].includes(op.method);
  const body = unsafe && op.body ? nodesOf(sk.body, op.body) : [];
  return [
    ...body.map((n) => `body${n.path.map((k) => `.${String(k)}`).join('')}`),
    ...op.params.map((p) => `${p.in} ${p.name}`),
  ];
}

/** Control characters and unpaired surrogates weigh three times the other kinds: they are what reaches storage. */
const WEIGHTED_KINDS = [...MUTATIONS, 'control', 'control'] as const;

export const mutationsArb: fc.Arbitrary<Mutation[]> = fc.array(
  fc.record({ kind: fc.constantFrom(...WEIGHTED_KINDS), target: fc.nat(), pick: fc.nat() }),
  { minLength: 1, maxLength: 3 },
);

/** The skeleton with the mutations applied, as a request to send. */
export function buildRequest(op: Operation, sk: Skeleton, mutations: Mutation[]): HostileRequest {
  const unsafe = !['GET', 'HEAD', 'OPTIONS'].includes(op.method);
  const root: { body: unknown } = { body: structuredClone(sk.body) };
  const params: Record<string, string> = Object.fromEntries(
    Object.entries(sk.params).map(([k, v]) => [k, encodeURIComponent(v)]),
  );
  const query: Array<[string, string]> = Object.entries(sk.query).map(([k, v]) => [
    encodeURIComponent(k),
    encodeURIComponent(v),
  ]);
  const headers: Record<string, string> = {};
  const applied: string[] = [];

  for (const m of mutations) {
    const bodyNodes = unsafe && op.body ? nodesOf(root.body, op.body) : [];
    const targets = [
      ...bodyNodes.map((n) => ({ part: 'body' as const, node: n })),
      ...op.params.map((p) => ({ part: p.in, param: p })),
    ];
    // No declared input at all: the change goes into an undeclared query parameter.
    const t = targets.length ? targets[m.target % targets.length]! : { part: 'query' as const, param: undefined };
    const hostile = HOSTILE_STRINGS[m.pick % HOSTILE_STRINGS.length]!;

    if (t.part === 'body') {
      const node = (t as { node: Node }).node;
      const set = (v: unknown) => {
        if (!node.path.length) root.body = v;
        else {
          let parent = root.body as Record<string | number, unknown>;
          for (const k of node.path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
          parent[node.path[node.path.length - 1]!] = v;
        }
      };
      // Key-level changes go to the nearest object at or above the target.
      const objectAt = (): Dupable => {
        for (let i = node.path.length; i >= 0; i--) {
          let v = root.body;
          for (const k of node.path.slice(0, i)) v = (v as Record<string | number, unknown>)[k];
          if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Raw)) return v as Dupable;
        }
        root.body = { value: root.body };
        return root.body as Dupable;
      };
      const where = `body${node.path.map((k) => `.${String(k)}`).join('')}`;
      let kind: MutationKind = m.kind;
      // `null` is how a client says "no body" to a route that takes none: not a wrong type there.
      const wrong = wrongType(node.schema, m.pick, node.path.length === 0);
      if (kind === 'type' && wrong === undefined) kind = 'deep';
      switch (kind) {
        case 'control':
          set(hostile);
          break;
        case 'long':
          set(LONG);
          break;
        case 'number': {
          const bad = badNumbers(node.schema);
          set(bad[m.pick % bad.length]);
          break;
        }
        case 'type':
          set(wrong);
          break;
        case 'deep':
          set(new Raw(DEEP));
          break;
        case 'unknownKey': {
          // A strict object refuses any new key; a map (features, a task payload) one with a control character.
          const o = objectAt();
          o.zz_unknown = 1;
          o['bad\u0001key'] = 1;
          break;
        }
        case 'duplicateKey': {
          const o = objectAt();
          const keys = Object.keys(o);
          const key = keys.length ? keys[m.pick % keys.length]! : 'zz';
          if (!(key in o)) o[key] = 1;
          o[DUPLICATES] = [...(o[DUPLICATES] ?? []), key];
          break;
        }
        case 'protoKey':
          Object.defineProperty(objectAt(), '__proto__', {
            value: { polluted: true },
            enumerable: true,
            writable: true,
            configurable: true,
          });
          break;
        case 'constructorKey':
          (objectAt() as Record<string, unknown>)['constructor'] = { prototype: { polluted: true } };
          break;
      }
      applied.push(`${kind} at ${where}`);
      continue;
    }

    const param = (t as { param?: Param }).param;
    const name = param?.name ?? 'zz';
    const nameEnc = encodeURIComponent(name);
    const numeric = ['-1', '1e400', '99999999999999999999', '0.5'][m.pick % 4]!;
    const value = {
      control: pctEncode(hostile),
      long: LONG,
      number: numeric,
      type: ['', 'abc', 'true', '[]'][m.pick % 4]!,
      deep: encodeURIComponent(DEEP),
    } as Record<MutationKind, string | undefined>;
    if (t.part === 'header') {
      // Node's HTTP parser refuses control characters in headers before the app; through inject
      // the app itself must refuse them.
      headers[name] = m.kind === 'long' ? LONG : hostile;
      applied.push(`${m.kind === 'long' ? 'long' : 'control'} in header ${name}`);
    } else if (t.part === 'path') {
      params[name] = value[m.kind] ?? pctEncode(hostile);
      applied.push(`${value[m.kind] ? m.kind : 'control'} in path ${name}`);
    } else {
      switch (m.kind) {
        case 'unknownKey':
          query.push(['zz_unknown', '1']);
          break;
        case 'duplicateKey':
          query.push(...query.filter(([k]) => k === nameEnc), [nameEnc, '1'], [nameEnc, '2']);
          break;
        case 'protoKey':
          query.push(['__proto__', 'x'], ['__proto__%5Bpolluted%5D', '1']);
          break;
        case 'constructorKey':
          query.push(['constructor', 'x'], ['constructor%5Bprototype%5D%5Bpolluted%5D', '1']);
          break;
        default: {
          const i = query.findIndex(([k]) => k === nameEnc);
          if (i >= 0) query.splice(i, 1);
          query.push([nameEnc, value[m.kind]!]);
        }
      }
      applied.push(`${m.kind} in query ${name}`);
    }
  }

  const path = op.path.replace(/\{(\w+)\}/g, (_, n: string) => params[n] ?? 'x');
  const qs = query.map(([k, v]) => `${k}=${v}`).join('&');
  return {
    method: op.method,
    url: qs ? `${path}?${qs}` : path,
    headers,
    ...(unsafe ? { payload: root.body === undefined ? '{}' : jsonText(root.body) } : {}),
    applied,
  };
}
