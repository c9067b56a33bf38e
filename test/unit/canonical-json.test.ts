import { canonicalJson, CanonicalJsonError } from '../../protocol';

describe('canonicalJson', () => {
  it('sorts keys at every depth and drops whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: 'x' } })).toBe(
      '{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}',
    );
  });

  it('gives one spelling for values that compare equal whatever the insertion order', () => {
    const a = { x: 1, y: [true, null], z: 'é' };
    const b = { z: 'é', y: [true, null], x: 1 };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
  });

  it('writes numbers in shortest round-trip form', () => {
    expect(canonicalJson([1.0, 0.1, -0, 1e21, 2 ** 53])).toBe('[1,0.1,0,1e+21,9007199254740992]');
  });

  it('escapes strings as JSON does, including control characters and unicode', () => {
    expect(canonicalJson({ s: 'a"b\\c\n\u0001😀' })).toBe('{"s":"a\\"b\\\\c\\n\\u0001😀"}');
  });

  it('writes Dates as ISO strings', () => {
    expect(canonicalJson({ t: new Date('2026-01-02T03:04:05.006Z') })).toBe('{"t":"2026-01-02T03:04:05.006Z"}');
  });

  it.each([
    ['undefined field', { a: undefined }],
    ['NaN', { a: Number.NaN }],
    ['Infinity', [Number.POSITIVE_INFINITY]],
    ['bigint', { a: BigInt(1) }],
    ['function', { a: () => 1 }],
    ['class instance', { a: new Map() }],
  ])('refuses a value with no single JSON spelling: %s', (_name, value) => {
    expect(() => canonicalJson(value)).toThrow(CanonicalJsonError);
  });

  it('refuses cycles instead of recursing forever', () => {
    const a: Record<string, unknown> = {};
    a.self = a;
    expect(() => canonicalJson(a)).toThrow(/cyclic/);
  });

  it('accepts a repeated (non-cyclic) reference', () => {
    const shared = { k: 1 };
    expect(canonicalJson({ a: shared, b: shared })).toBe('{"a":{"k":1},"b":{"k":1}}');
  });
});
