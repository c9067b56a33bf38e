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

  it('scrubs the password of a URL, whatever its scheme, and keeps the rest of the URL', () => {
    for (const [url, kept] of [
      ['postgres://agentina_app:s3cretPW1@db:5432/agentina', 'postgres://agentina_app:[REDACTED]@db:5432/agentina'],
      ['connect to redis://:s3cretPW1@cache:6379 failed', 'connect to redis://:[REDACTED]@cache:6379 failed'],
      ['https://user:s3cret@PW1@host/x?y=1', 'https://user:[REDACTED]@host/x?y=1'],
      ['"amqps://u:s3cretPW1@mq"', '"amqps://u:[REDACTED]@mq"'],
    ] as const) {
      expect(redactString(url)).toBe(kept);
    }
    // No userinfo: a port is not a password.
    expect(redactString('http://host:8080/path?x=1')).toBe('http://host:8080/path?x=1');
  });

  it('scrubs key=value, key: value and JSON-ish pairs whose key names a secret, whatever the case', () => {
    const planted = 's3cretPW1';
    const texts = [
      `password=${planted}`,
      `PASSWD=${planted}`,
      `pwd:${planted}`,
      `PGPASSWORD=${planted} psql`,
      `db_password = "${planted} with spaces"`,
      `newPassword => '${planted}'`,
      `token=${planted}`,
      `access_token=${planted}&page=2`,
      `X-Auth-Token: ${planted}`,
      `secret: ${planted}`,
      `client_secret=${planted}`,
      `api_key=${planted}`,
      `apikey=${planted}`,
      `X-Api-Key: ${planted}`,
      `Authorization: ${planted}`,
      `authorization: Token ${planted}`,
      `Proxy-Authorization: Basic ${planted}`,
      `credential=${planted}`,
      `credentials: ${planted}`,
      `{"password":"${planted}","user":"ann"}`,
      `{ "Api-Key" : "${planted}" }`,
      `{'secret': '${planted}'}`,
      `GET /v1/x?email=a@b.c&pwd=${planted}&page=2`,
    ];
    for (const t of texts) expect([t, redactString(t)]).toEqual([t, expect.not.stringContaining(planted)]);
    expect(redactString(`{"password":"${planted}","user":"ann"}`)).toBe('{"password":"[REDACTED]","user":"ann"}');
    expect(redactString(`access_token=${planted}&page=2`)).toBe('access_token=[REDACTED]&page=2');
  });

  it('leaves keys that only contain a secret word, and is stable on its own output', () => {
    for (const t of ['max_tokens=100', 'secret_name=foo', 'author: Jane', 'user=ann', 'passes: 3'])
      expect(redactString(t)).toBe(t);
    const once = redactString('password=x token: "y" Authorization: Bearer z postgres://a:b@c');
    expect(redactString(once)).toBe(once);
    expect(once).toBe('password=[REDACTED] token: "[REDACTED]" Authorization: [REDACTED] postgres://a:[REDACTED]@c');
  });

  it('takes linear time on hostile strings (repeated openings): 8× the input costs far less than 64×', () => {
    // A ratio of two sizes measured here and now, interleaved and best of five each, so a loaded
    // machine cannot fail it: a quadratic pattern makes the ratio about 64, a linear one about 8
    // (up to 12 as caches fill).
    const time = (text: string) => {
      const started = performance.now();
      redactString(text);
      return performance.now() - started;
    };
    for (const unit of ['a://', 'x://u:', 'password="', 'pwd:"\\', 'token: Token ', '-----BEGIN PRIVATE KEY-----']) {
      const small = unit.repeat(Math.ceil((64 * 1024) / unit.length));
      const large = unit.repeat(Math.ceil((512 * 1024) / unit.length));
      let fastSmall = Infinity;
      let fastLarge = Infinity;
      for (let i = 0; i < 5; i++) {
        fastSmall = Math.min(fastSmall, time(small));
        fastLarge = Math.min(fastLarge, time(large));
      }
      expect({ unit, superlinear: fastLarge / fastSmall > 32 }).toEqual({ unit, superlinear: false });
    }
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
