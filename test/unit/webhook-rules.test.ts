import { createAllowList, isPublicAddress, resolveTarget } from '../../services/webhooks/outbound-address';
import { signWebhook } from '../../services/webhooks/webhook-sender';
import { DAY_MS, expiryNotice } from '../../workflows/license-rules';

/** The pure parts of webhooks: which addresses are public, the signature, when an expiry notice is due. */
describe('outbound addresses', () => {
  it.each([
    '127.0.0.1',
    '127.255.255.254',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.0.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '224.0.0.1',
    '255.255.255.255',
    '::',
    '::1',
    'fe80::1',
    'fc00::1',
    'fd12:3456::1',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:a9fe:a9fe',
    '64:ff9b::a9fe:a9fe',
    '2002:7f00:1::',
    '2002:c0a8:101::1',
    'not-an-address',
  ])('%s is not public', (addr) => expect(isPublicAddress(addr)).toBe(false));

  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '2002:808:808::1'])(
    '%s is public',
    (addr) => expect(isPublicAddress(addr)).toBe(true),
  );

  it('the allow-list takes names, addresses and CIDR blocks; nothing else gets through', async () => {
    const allow = createAllowList(['hooks.internal', '10.0.0.0/8', '::1']);
    const resolveTo =
      (address: string, family = 4) =>
      async () => [{ address, family }];
    expect(await resolveTarget('hooks.internal', allow, resolveTo('192.168.1.1'))).toMatchObject({ ok: true });
    expect(await resolveTarget('other.example', allow, resolveTo('10.2.3.4'))).toMatchObject({ ok: true });
    expect(await resolveTarget('[::1]', allow)).toMatchObject({ ok: true, address: '::1', family: 6 });
    expect(await resolveTarget('other.example', allow, resolveTo('192.168.1.1'))).toMatchObject({ ok: false });
    expect(await resolveTarget('127.0.0.1', allow)).toMatchObject({ ok: false });
    const unresolvable = async () => {
      throw new Error('ENOTFOUND');
    };
    expect(await resolveTarget('nowhere.example', allow, unresolvable)).toMatchObject({ ok: false });
  });
});

describe('the Standard Webhooks signature', () => {
  it('matches the specification’s example', () => {
    // The example in the Standard Webhooks specification (secret, id, timestamp, body → signature).
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const body = '{"test": 2432232314}';
    expect(signWebhook([secret], 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, body)).toBe(
      'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    );
  });
});

describe('expiry notices', () => {
  const exp = '2027-03-01T00:00:00.000Z';
  const at = (daysBefore: number) => Date.parse(exp) - daysBefore * DAY_MS;
  const days = [30, 7, 1];

  it('fires each notice when its day comes, the nearest one when several are due', () => {
    expect(expiryNotice('active', exp, at(31), days, null)).toEqual({ due: null, nextAt: at(30) });
    expect(expiryNotice('active', exp, at(30), days, null)).toEqual({ due: 30, nextAt: at(7) });
    expect(expiryNotice('active', exp, at(29), days, { expiresAt: exp, daysBefore: 30 })).toEqual({
      due: null,
      nextAt: at(7),
    });
    expect(expiryNotice('active', exp, at(5), days, null)).toEqual({ due: 7, nextAt: at(1) });
    expect(expiryNotice('active', exp, at(0.5), days, { expiresAt: exp, daysBefore: 1 })).toEqual({
      due: null,
      nextAt: null,
    });
  });

  it('re-arms for a new expiry date, and says nothing for other states or past expiry', () => {
    const renewed = '2027-06-01T00:00:00.000Z';
    expect(expiryNotice('active', renewed, at(1), days, { expiresAt: exp, daysBefore: 1 }).due).toBeNull();
    expect(
      expiryNotice('active', renewed, Date.parse(renewed) - 2 * DAY_MS, days, { expiresAt: exp, daysBefore: 1 }).due,
    ).toBe(7);
    for (const state of ['grace', 'expired', 'suspended', 'revoked'] as const)
      expect(expiryNotice(state, exp, at(5), days, null)).toEqual({ due: null, nextAt: null });
    expect(expiryNotice('active', exp, at(-1), days, null)).toEqual({ due: null, nextAt: null });
    expect(expiryNotice('trial', exp, at(5), [], null)).toEqual({ due: null, nextAt: null });
  });
});
