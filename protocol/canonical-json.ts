/**
 * Canonical JSON: object keys sorted by UTF-16 code units, no insignificant whitespace,
 * numbers in ECMAScript shortest form (as JCS, RFC 8785, for the values we use). Anything that has
 * no single JSON spelling (undefined, NaN, Infinity, functions, symbols, bigint, cycles) is refused
 * rather than silently dropped, so two parties can never sign different bytes for one value.
 */
export class CanonicalJsonError extends Error {}

export function canonicalJson(value: unknown): string {
  return encode(value, new Set());
}

function encode(value: unknown, stack: Set<object>): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError('non-finite number has no JSON form');
      return JSON.stringify(value);
    case 'string':
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new CanonicalJsonError(`${typeof value} has no JSON form`);
  }
  const obj = value;
  if (stack.has(obj)) throw new CanonicalJsonError('cyclic value has no JSON form');
  stack.add(obj);
  try {
    if (Array.isArray(obj)) return `[${obj.map((v) => encode(v, stack)).join(',')}]`;
    if (obj instanceof Date) return JSON.stringify(obj.toISOString());
    const proto = Object.getPrototypeOf(obj) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      throw new CanonicalJsonError('only plain objects, arrays and Dates have a canonical form');
    }
    const entries = Object.keys(obj)
      .sort()
      .map((k) => {
        const v = (obj as Record<string, unknown>)[k];
        if (v === undefined) throw new CanonicalJsonError(`field ${k} is undefined`);
        return `${JSON.stringify(k)}:${encode(v, stack)}`;
      });
    return `{${entries.join(',')}}`;
  } finally {
    stack.delete(obj);
  }
}

/** The UTF-8 bytes that are signed and hashed (TextEncoder: the same in Node and the browser). */
export function canonicalBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(canonicalJson(value));
}
