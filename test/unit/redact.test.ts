import { newSecret, redactDeep, redactString, REDACTED } from '../../protocol';

describe('redaction policy', () => {
  it('replaces values under secret-looking keys at any depth', () => {
    const out = redactDeep({
      user: 'ann',
      password: 'hunter2hunter2',
      nested: { deeper: [{ apiKey: 'k', accessToken: 't', client_secret: 's' }] },
    });
    expect(out).toEqual({
      user: 'ann',
      password: REDACTED,
      nested: { deeper: [{ apiKey: REDACTED, accessToken: REDACTED, client_secret: REDACTED }] },
    });
  });

  it('scrubs prefixed secrets, bearer credentials and secret query parameters inside strings', () => {
    const act = newSecret('act');
    const svc = newSecret('svc');
    const s = redactString(`GET /v1/x?token=abc123&page=2 Authorization: Bearer ${svc} redeem ${act}`);
    expect(s).not.toContain(act);
    expect(s).not.toContain(svc);
    expect(s).not.toContain('abc123');
    expect(s).toContain('page=2');
  });

  it('scrubs secret assignments in free text, such as a driver error message', () => {
    const s = redactString('connect failed: password=hunter2hunter2 user=ann; token: "abc def" ok');
    expect(s).not.toMatch(/hunter2|abc def/);
    expect(s).toContain('user=ann');
  });

  it('scrubs PEM private keys', () => {
    const s = redactString('key: -----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY----- end');
    expect(s).toBe(`key: ${REDACTED} end`);
  });

  it('does not mutate its input', () => {
    const input = { password: 'x', list: ['a'] };
    redactDeep(input);
    expect(input).toEqual({ password: 'x', list: ['a'] });
  });

  it('stops at a depth limit instead of walking a hostile object forever', () => {
    let deep: Record<string, unknown> = { v: 1 };
    for (let i = 0; i < 50; i++) deep = { next: deep };
    expect(JSON.stringify(redactDeep(deep))).toContain('[Truncated]');
  });
});
