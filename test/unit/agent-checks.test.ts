import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync, copyFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createFingerprintCheck } from '../../agent/checks/fingerprint-check';
import { createGraceCheck, GRACE_FILE, HIGH_WATER_FILE } from '../../agent/checks/grace-check';
import { createLicenseCheck } from '../../agent/checks/license-check';
import { createStatusCheck, MAX_STATUS_VERSION_LEAD } from '../../agent/checks/status-check';
import type { Check, CheckResult } from '../../agent/checks/check';
import { createGate, newerThan, type TerminalState } from '../../agent/enforcement';
import { createStaticFingerprintSource, hashFingerprint, type RawFingerprint } from '../../agent/fingerprint-source';
import { createPrefixStore } from '../../agent/prefix-store';
import {
  createFixedClock,
  createKeySet,
  createSigner,
  generateKeyFile,
  fingerprintCommitment,
  newId,
  newSecret,
  signLicense,
  type LicenseDocument,
  type SignedStatus,
  type StatusPayload,
} from '../../protocol';
import { makeTestKeys } from '../support/agent-fakes';

const T0 = new Date('2026-06-01T12:00:00.000Z');
const DAY = 86_400_000;
const MACHINE: RawFingerprint = {
  baseboard: 'Acme B450 SN-1',
  disk: 'nvme0n1 Samsung 980 S123',
  cpu: 'AMD Ryzen 7',
  mac: '02:00:00:aa:bb:cc',
  hostname: 'build-01',
};

const keys = makeTestKeys();
/** A key nobody pinned. */
const strangerKey = () => createSigner(generateKeyFile('stranger'));
const licenseKeys = createKeySet(keys.trusted.license);
const salt = 'salt_0123456789abcdef';
const recorded = hashFingerprint(salt, MACHINE);
const agentId = newId('agt');
const licenseId = newId('lic');
const dirs: string[] = [];
afterAll(() => {
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
  keys.remove();
});
function tempStore() {
  const d = mkdtempSync(path.join(tmpdir(), 'agentina-checks-'));
  dirs.push(d);
  return createPrefixStore(d);
}

function licenseDoc(over: Partial<LicenseDocument> = {}): LicenseDocument {
  return {
    kind: 'agentina.license/v1',
    licenseId,
    customerId: newId('cus'),
    plan: 'pro',
    features: {},
    maxAgents: 3,
    notBefore: new Date(T0.getTime() - DAY).toISOString(),
    expiresAt: new Date(T0.getTime() + 30 * DAY).toISOString(),
    graceDays: 7,
    issuedAt: T0.toISOString(),
    version: 1,
    agentId,
    fingerprintCommitment: fingerprintCommitment(salt, recorded),
    ...over,
  };
}
function status(over: Partial<StatusPayload> = {}, signer = keys.license): SignedStatus {
  const payload: StatusPayload = {
    kind: 'agentina.status/v1',
    licenseId,
    agentId,
    licenseState: 'active',
    agentStatus: 'active',
    good: true,
    version: 5,
    serverTime: T0.toISOString(),
    expiresAt: new Date(T0.getTime() + 30 * DAY).toISOString(),
    graceDays: 7,
    ...over,
  };
  return { payload, signature: signer.sign(payload) };
}
const codeOf = (r: CheckResult) => (r.ok ? 'OK' : r.code);

describe('check 1: license document', () => {
  const make = (license: unknown) =>
    createLicenseCheck({ keys: licenseKeys, agentId, licenseId, salt, recorded, license: license as never });

  it('passes an authentic document bound to this agent and machine, inside its window', async () => {
    expect(codeOf(await make(signLicense(keys.license, licenseDoc())).evaluate(T0))).toBe('OK');
  });

  it.each([
    ['missing', () => null, 'LICENSE_MISSING'],
    [
      'edited after signing (expiry pushed out)',
      () => ({
        ...signLicense(keys.license, licenseDoc()),
        document: { ...licenseDoc(), expiresAt: '2099-01-01T00:00:00.000Z' },
      }),
      'LICENSE_TAMPERED',
    ],
    ['signed by a key that is not pinned', () => signLicense(strangerKey(), licenseDoc()), 'LICENSE_TAMPERED'],
    [
      'with an unknown field smuggled in',
      () => ({ ...signLicense(keys.license, licenseDoc()), extra: 1 }),
      'LICENSE_TAMPERED',
    ],
    [
      'bound to another agent',
      () => signLicense(keys.license, licenseDoc({ agentId: newId('agt') })),
      'LICENSE_BINDING',
    ],
    [
      'bound to another machine',
      () => signLicense(keys.license, licenseDoc({ fingerprintCommitment: 'a'.repeat(64) })),
      'LICENSE_BINDING',
    ],
    [
      'for another license',
      () => signLicense(keys.license, licenseDoc({ licenseId: newId('lic') })),
      'LICENSE_BINDING',
    ],
    [
      'not yet valid',
      () => signLicense(keys.license, licenseDoc({ notBefore: new Date(T0.getTime() + DAY).toISOString() })),
      'LICENSE_NOT_YET_VALID',
    ],
    [
      'expired beyond its grace days',
      () => signLicense(keys.license, licenseDoc({ expiresAt: new Date(T0.getTime() - 8 * DAY).toISOString() })),
      'LICENSE_EXPIRED',
    ],
  ])('refuses a document %s', async (_name, doc, code) => {
    expect(codeOf(await make(doc()).evaluate(T0))).toBe(code);
  });

  it('accepts a renewal only if authentic, bound here and not older', async () => {
    const check = make(signLicense(keys.license, licenseDoc({ version: 2 })));
    expect(check.replace(signLicense(keys.license, licenseDoc({ version: 1 })))).toBe(false);
    expect(check.replace(signLicense(keys.license, licenseDoc({ version: 3, agentId: newId('agt') })))).toBe(false);
    expect(check.replace(signLicense(strangerKey(), licenseDoc({ version: 3 })))).toBe(false);
    expect(
      check.replace(
        signLicense(
          keys.license,
          licenseDoc({ version: 3, expiresAt: new Date(T0.getTime() + 400 * DAY).toISOString() }),
        ),
      ),
    ).toBe(true);
  });
});

describe('check 2: machine fingerprint', () => {
  const make = (raw: Partial<RawFingerprint>, threshold = 70) =>
    createFingerprintCheck({
      source: createStaticFingerprintSource({ ...MACHINE, ...raw }),
      salt,
      recorded,
      threshold,
    });

  it('passes on the activated machine', async () => {
    expect(codeOf(await make({}).evaluate(T0))).toBe('OK');
  });

  it.each(['baseboard', 'disk', 'cpu', 'mac', 'hostname'] as const)(
    'passes with one changed component (%s)',
    async (c) => {
      const check = make({ [c]: 'something else' });
      expect(codeOf(await check.evaluate(T0))).toBe('OK');
      expect((await check.current(T0)).changed).toEqual([c]);
    },
  );

  it('fails a moved install: three changed components', async () => {
    const check = make({ cpu: 'Intel Xeon', mac: '02:00:00:11:22:33', hostname: 'other-host' });
    expect(codeOf(await check.evaluate(T0))).toBe('FINGERPRINT_MISMATCH');
    expect((await check.current(T0)).score).toBe(55);
  });

  it('honours a configured threshold', async () => {
    expect(codeOf(await make({ hostname: 'renamed' }, 95).evaluate(T0))).toBe('FINGERPRINT_MISMATCH');
  });

  it('normalises case and whitespace before hashing', async () => {
    expect(codeOf(await make({ baseboard: '  ACME   b450 sn-1 ', hostname: 'BUILD-01' }, 100).evaluate(T0))).toBe('OK');
  });

  it('re-reads the machine once its last reading is older than the limit', async () => {
    const source = createStaticFingerprintSource(MACHINE);
    const check = createFingerprintCheck({ source, salt, recorded, threshold: 70, maxReadingAgeMs: 1000 });
    expect(codeOf(await check.evaluate(T0))).toBe('OK');
    source.set({ cpu: 'x', mac: 'y', hostname: 'z' });
    expect(codeOf(await check.evaluate(new Date(T0.getTime() + 2000)))).toBe('FINGERPRINT_MISMATCH');
  });
});

describe('check 3: last signed status', () => {
  const make = (initial: SignedStatus | null, maxAgeMs = 7 * DAY) =>
    createStatusCheck({ keys: licenseKeys, agentId, licenseId, maxAgeMs: () => maxAgeMs, initial });

  it('passes a fresh, authentic, good answer', async () => {
    expect(codeOf(await make(status()).evaluate(T0))).toBe('OK');
  });

  it.each([
    ['no answer yet', () => null, T0, 'STATUS_MISSING'],
    ['revoked', () => status({ licenseState: 'revoked', good: false }), T0, 'LICENSE_REVOKED'],
    ['suspended', () => status({ licenseState: 'suspended', good: false }), T0, 'LICENSE_SUSPENDED'],
    ['expired', () => status({ licenseState: 'expired', good: false }), T0, 'LICENSE_EXPIRED'],
    ['quarantined', () => status({ agentStatus: 'quarantined', good: false }), T0, 'AGENT_QUARANTINED'],
    ['too old', () => status(), new Date(T0.getTime() + 7 * DAY + 1000), 'STATUS_STALE'],
    [
      'more than 5 minutes in the future',
      () => status({ serverTime: new Date(T0.getTime() + 6 * 60_000).toISOString() }),
      T0,
      'STATUS_FROM_FUTURE',
    ],
    [
      'edited to say good',
      () => ({
        ...status({ licenseState: 'revoked', good: false }),
        payload: { ...status().payload },
        signature: status({ licenseState: 'revoked', good: false }).signature,
      }),
      T0,
      'STATUS_TAMPERED',
    ],
    ['signed by an unpinned key', () => status({}, strangerKey()), T0, 'STATUS_TAMPERED'],
  ])('fails when the held answer is %s', async (_n, s, at, code) => {
    expect(codeOf(await make(s()).evaluate(at))).toBe(code);
  });

  it('tolerates a server clock up to 5 minutes ahead', async () => {
    expect(
      codeOf(await make(status({ serverTime: new Date(T0.getTime() + 4 * 60_000).toISOString() })).evaluate(T0)),
    ).toBe('OK');
  });

  it('refuses a replayed older good answer after a revocation', async () => {
    const old = status({ version: 5 });
    const check = make(old);
    expect(
      check.accept(
        status({
          version: 6,
          licenseState: 'revoked',
          good: false,
          serverTime: new Date(T0.getTime() + 1000).toISOString(),
        }),
      ),
    ).toEqual({ accepted: true, changed: true });
    const replay = check.accept(old);
    expect(replay.accepted).toBe(false);
    expect(codeOf(await check.evaluate(T0))).toBe('LICENSE_REVOKED');
  });

  it('refuses an answer about another agent and one that is forged', () => {
    const check = make(status());
    expect(check.accept(status({ agentId: newId('agt'), version: 9 })).accepted).toBe(false);
    expect(check.accept(status({ version: 9 }, strangerKey())).accepted).toBe(false);
  });
});

describe('check 3: status versions and the persistent floor', () => {
  const make = (initial: SignedStatus | null, licenseVersion: number | null = 1) =>
    createStatusCheck({
      keys: licenseKeys,
      agentId,
      licenseId,
      maxAgeMs: () => 7 * DAY,
      initial,
      licenseVersion: () => licenseVersion,
    });

  it.each([
    ['one past the bound', 1 + MAX_STATUS_VERSION_LEAD + 1],
    ['a timestamp used as a version', 1_780_000_000_000],
    ['the largest safe integer', Number.MAX_SAFE_INTEGER],
  ])('refuses, and does not adopt, an authentic answer whose version is %s', async (_n, version) => {
    const check = make(status({ version: 5 }));
    const far = check.accept(status({ version, serverTime: new Date(T0.getTime() + 1000).toISOString() }));
    expect(far.accepted === false && far.reason).toMatch(/^implausible status/);
    expect(check.payload()!.version).toBe(5);
    // Had it been adopted, this revocation would have looked like a replay.
    const revoked = status({
      version: 6,
      licenseState: 'revoked',
      good: false,
      serverTime: new Date(T0.getTime() + 2000).toISOString(),
    });
    expect(check.accept(revoked)).toEqual({ accepted: true, changed: true });
    expect(codeOf(await check.evaluate(T0))).toBe('LICENSE_REVOKED');
  });

  it('accepts a version exactly at the bound, and judges a held answer beyond it implausible', async () => {
    expect(make(status({ version: 5 })).accept(status({ version: 1 + MAX_STATUS_VERSION_LEAD })).accepted).toBe(true);
    expect(codeOf(await make(status({ version: 1 + MAX_STATUS_VERSION_LEAD + 1 })).evaluate(T0))).toBe(
      'STATUS_IMPLAUSIBLE',
    );
  });

  it('after a restart, refuses a stored answer older than the newest one the record kept (STATUS_REPLAYED)', async () => {
    const oldGood = status({ version: 5 });
    const check = make(oldGood);
    check.setFloor({ version: 6, serverTime: new Date(T0.getTime() + 1000).toISOString() });
    expect(codeOf(await check.evaluate(T0))).toBe('STATUS_REPLAYED');
    expect(check.accept(status({ version: 5, serverTime: new Date(T0.getTime() + 5000).toISOString() })).accepted).toBe(
      false,
    );
    // Same version, older server time than the one kept: a replay as well.
    const sameVersion = make(status({ version: 6 }));
    sameVersion.setFloor({ version: 6, serverTime: new Date(T0.getTime() + 1000).toISOString() });
    expect(codeOf(await sameVersion.evaluate(T0))).toBe('STATUS_REPLAYED');
  });
});

describe('check 4: signed offline grace', () => {
  const credential = newSecret('agc');
  function make(store = tempStore(), raw: RawFingerprint = MACHINE, cred = credential) {
    const hashes = hashFingerprint(salt, raw);
    return { store, check: createGraceCheck({ store, sealKey: cred, currentHashes: async () => hashes }) };
  }

  it('passes until the deadline measured from the last server-signed time, then fails closed', async () => {
    const { check } = make();
    const { state: sealed } = await check.seal(T0, 7, T0);
    expect(sealed!.deadline).toBe(new Date(T0.getTime() + 7 * DAY).toISOString());
    expect(codeOf(await check.evaluate(new Date(T0.getTime() + 7 * DAY - 1000)))).toBe('OK');
    expect(codeOf(await check.evaluate(new Date(T0.getTime() + 7 * DAY + 1000)))).toBe('GRACE_EXPIRED');
  });

  it('refuses an edited file (deadline extended)', async () => {
    const { store, check } = make();
    await check.seal(T0, 7, T0);
    const file = JSON.parse(store.readText(GRACE_FILE)!);
    file.state.deadline = new Date(T0.getTime() + 70 * DAY).toISOString();
    store.writeJson(GRACE_FILE, file);
    expect(codeOf(await check.evaluate(T0))).toBe('GRACE_TAMPERED');
  });

  it('refuses a file copied to another machine (other fingerprint), and to another agent', async () => {
    const a = make();
    await a.check.seal(T0, 7, T0);
    const otherMachine = make(tempStore(), { ...MACHINE, baseboard: 'Other board', disk: 'other disk' });
    copyFileSync(a.store.resolve(GRACE_FILE), otherMachine.store.resolve(GRACE_FILE));
    expect(codeOf(await otherMachine.check.evaluate(T0))).toBe('GRACE_OTHER_MACHINE');
    // Claiming to be sealed for the other machine does not help: the seal then fails to verify.
    const forged = JSON.parse(readFileSync(otherMachine.store.resolve(GRACE_FILE), 'utf8'));
    const honest = make(tempStore(), { ...MACHINE, baseboard: 'Other board', disk: 'other disk' });
    await honest.check.seal(T0, 7, T0);
    forged.state.sealedFor = JSON.parse(readFileSync(honest.store.resolve(GRACE_FILE), 'utf8')).state.sealedFor;
    otherMachine.store.writeJson(GRACE_FILE, forged);
    expect(codeOf(await otherMachine.check.evaluate(T0))).toBe('GRACE_TAMPERED');
    const otherAgent = make(tempStore(), MACHINE, newSecret('agc'));
    copyFileSync(a.store.resolve(GRACE_FILE), otherAgent.store.resolve(GRACE_FILE));
    expect(codeOf(await otherAgent.check.evaluate(T0))).toBe('GRACE_TAMPERED');
  });

  it('does not extend the grace on restart', async () => {
    const { store, check } = make();
    await check.seal(T0, 7, T0);
    const before = readFileSync(store.resolve(GRACE_FILE), 'utf8');
    const restarted = make(store).check;
    const later = new Date(T0.getTime() + 3 * DAY);
    expect(codeOf(await restarted.evaluate(later))).toBe('OK');
    expect((await restarted.read(later))!.deadline).toBe(JSON.parse(before).state.deadline);
    const again = make(store).check;
    expect(codeOf(await again.evaluate(new Date(T0.getTime() + 7 * DAY + 1)))).toBe('GRACE_EXPIRED');
  });

  it('catches a clock set back beyond 5 minutes (tamper), tolerates less', async () => {
    const { check } = make();
    await check.seal(T0, 7, T0);
    const later = new Date(T0.getTime() + DAY);
    expect(codeOf(await check.evaluate(later))).toBe('OK');
    expect(codeOf(await check.evaluate(new Date(later.getTime() - 4 * 60_000)))).toBe('OK');
    expect(codeOf(await check.evaluate(new Date(later.getTime() - 6 * 60_000)))).toBe('CLOCK_ROLLBACK');
  });

  it('keeps the high-water mark across restarts, so a restart does not forgive a clock set back', async () => {
    const { store, check } = make();
    await check.seal(T0, 7, T0);
    expect(codeOf(await check.evaluate(new Date(T0.getTime() + 2 * DAY)))).toBe('OK');
    expect(codeOf(await make(store).check.evaluate(new Date(T0.getTime() + DAY)))).toBe('CLOCK_ROLLBACK');
  });

  it('fails closed when the file is deleted (no fresh grace)', async () => {
    const { store, check } = make();
    await check.seal(T0, 7, T0);
    unlinkSync(store.resolve(GRACE_FILE));
    expect(codeOf(await check.evaluate(T0))).toBe('GRACE_MISSING');
    expect(codeOf(await make(store).check.evaluate(T0))).toBe('GRACE_MISSING');
  });

  it('keeps an edited file as evidence and reports the tamper even when a fresh server time arrives', async () => {
    const { store, check } = make();
    await check.seal(T0, 7, T0);
    const file = JSON.parse(store.readText(GRACE_FILE)!);
    file.state.deadline = new Date(T0.getTime() + 70 * DAY).toISOString();
    store.writeJson(GRACE_FILE, file);
    const restarted = make(store).check;
    const r = await restarted.seal(new Date(T0.getTime() + 1000), 7, new Date(T0.getTime() + 1000));
    expect(r.tamper).toBe('GRACE_TAMPERED');
    expect(JSON.parse(store.readText(GRACE_FILE)!).state.deadline).toBe(file.state.deadline);
  });

  it('re-seals after a legitimate hardware change once a server-signed time arrives', async () => {
    const { store, check } = make();
    await check.seal(T0, 7, T0);
    const changed = make(store, { ...MACHINE, hostname: 'renamed' }).check;
    expect(codeOf(await changed.evaluate(T0))).toBe('GRACE_OTHER_MACHINE');
    expect((await changed.seal(T0, 7, T0)).tamper).toBeNull();
    expect(codeOf(await changed.evaluate(T0))).toBe('OK');
  });

  it('refuses an older copy of the file put back', async () => {
    const { store, check } = make();
    await check.seal(T0, 7, T0);
    const old = readFileSync(store.resolve(GRACE_FILE), 'utf8');
    expect(codeOf(await check.evaluate(new Date(T0.getTime() + DAY)))).toBe('OK');
    writeFileSync(store.resolve(GRACE_FILE), old);
    expect(codeOf(await check.evaluate(new Date(T0.getTime() + DAY)))).toBe('GRACE_REPLAYED');
  });
});

describe('check 4: the record kept in two places', () => {
  const credential = newSecret('agc');
  const hashes = hashFingerprint(salt, MACHINE);
  const make = (store = tempStore()) => ({
    store,
    check: createGraceCheck({ store, sealKey: credential, currentHashes: async () => hashes }),
  });
  const at = (ms: number) => new Date(T0.getTime() + ms);
  const copyOf = (store: ReturnType<typeof tempStore>, f: string) => readFileSync(store.resolve(f), 'utf8');

  it('a not-good answer never extends the deadline, whatever grace it names; a good one does', async () => {
    const { check } = make();
    await check.seal(T0, 7, T0);
    const deadline = (await check.read(T0))!.deadline;
    const r = await check.observe(
      {
        serverTime: at(3 * DAY),
        graceDays: 365,
        extend: false,
        status: { version: 9, serverTime: at(3 * DAY).toISOString() },
      },
      at(3 * DAY),
    );
    expect(r.state!.deadline).toBe(deadline);
    expect(r.state!.statusVersion).toBe(9);
    expect(codeOf(await check.evaluate(at(7 * DAY + 1000)))).toBe('GRACE_EXPIRED');
    await check.observe({ serverTime: at(4 * DAY), graceDays: 7, extend: true }, at(4 * DAY));
    expect((await check.read(at(4 * DAY)))!.deadline).toBe(at(11 * DAY).toISOString());
  });

  it('an older grace.json put back while the agent was stopped, the clock set back, is a replay', async () => {
    const { store, check } = make();
    await check.seal(T0, 7, T0);
    const old = copyOf(store, GRACE_FILE);
    expect(codeOf(await check.evaluate(at(DAY)))).toBe('OK');
    expect(codeOf(await check.evaluate(at(2 * DAY)))).toBe('OK');
    // A new process: nothing in memory. The old copy's own high-water mark is T0, so the clock
    // set back to T0 + 1 h passes its clock test; the counter kept in highwater.json does not.
    writeFileSync(store.resolve(GRACE_FILE), old);
    expect(codeOf(await make(store).check.evaluate(at(3_600_000)))).toBe('GRACE_REPLAYED');
  });

  it('an older highwater.json put back, or one removed, is a replay', async () => {
    const { store, check } = make();
    await check.seal(T0, 7, T0);
    const old = copyOf(store, HIGH_WATER_FILE);
    await check.evaluate(at(DAY));
    await check.evaluate(at(2 * DAY));
    writeFileSync(store.resolve(HIGH_WATER_FILE), old);
    expect(codeOf(await make(store).check.evaluate(at(2 * DAY)))).toBe('GRACE_REPLAYED');
    unlinkSync(store.resolve(HIGH_WATER_FILE));
    expect(codeOf(await make(store).check.evaluate(at(2 * DAY)))).toBe('GRACE_REPLAYED');
  });

  it('both files put back from different moments disagree: a replay', async () => {
    const { store, check } = make();
    await check.seal(T0, 7, T0);
    const oldGrace = copyOf(store, GRACE_FILE);
    await check.evaluate(at(DAY));
    await check.evaluate(at(2 * DAY));
    const midHw = copyOf(store, HIGH_WATER_FILE);
    await check.evaluate(at(3 * DAY));
    writeFileSync(store.resolve(GRACE_FILE), oldGrace);
    writeFileSync(store.resolve(HIGH_WATER_FILE), midHw);
    expect(codeOf(await make(store).check.evaluate(at(DAY)))).toBe('GRACE_REPLAYED');
  });

  it('an edited highwater.json (terminal state removed) fails its seal', async () => {
    const { store, check } = make();
    await check.seal(T0, 7, T0);
    const t = {
      code: 'LICENSE_REVOKED',
      check: 'status',
      detail: 'revoked',
      at: T0.toISOString(),
      failures: ['LICENSE_REVOKED'],
      permanent: true,
      statusVersion: 6,
      statusServerTime: T0.toISOString(),
    };
    await check.setTerminal(t, T0);
    expect((await make(store).check.snapshot(T0)).record!.terminal).toEqual(t);
    const f = JSON.parse(copyOf(store, HIGH_WATER_FILE));
    f.body.record.terminal = null;
    writeFileSync(store.resolve(HIGH_WATER_FILE), JSON.stringify(f));
    expect(codeOf(await make(store).check.evaluate(T0))).toBe('GRACE_TAMPERED');
  });

  it('a crash between the two writes (highwater.json written, grace.json not) is not a replay; the newer record wins', async () => {
    const { store, check } = make();
    await check.seal(T0, 7, T0);
    const before = copyOf(store, GRACE_FILE);
    await check.seal(at(DAY), 7, at(DAY));
    writeFileSync(store.resolve(GRACE_FILE), before);
    const restarted = make(store).check;
    expect(codeOf(await restarted.evaluate(at(DAY)))).toBe('OK');
    expect((await restarted.read(at(DAY)))!.deadline).toBe(at(8 * DAY).toISOString());
  });
});

describe('terminal states: permanent or not, and what ends them', () => {
  const t = (over: Partial<TerminalState>): TerminalState => ({
    code: 'LICENSE_SUSPENDED',
    check: 'status',
    detail: '',
    at: T0.toISOString(),
    failures: ['LICENSE_SUSPENDED'],
    permanent: false,
    statusVersion: 6,
    statusServerTime: T0.toISOString(),
    ...over,
  });
  const stubs = (code: string | null): Check[] =>
    (['license', 'fingerprint', 'status', 'grace'] as const).map((name) => ({
      name,
      evaluate: async () =>
        name === 'status' && code ? { ok: false as const, code, detail: code } : { ok: true as const },
    }));

  it.each([
    ['LICENSE_REVOKED', true],
    ['AGENT_DEREGISTERED', true],
    ['FINGERPRINT_MISMATCH', true],
    ['STATUS_TAMPERED', true],
    ['GRACE_REPLAYED', true],
    ['CLOCK_ROLLBACK', true],
    ['LICENSE_SUSPENDED', false],
    ['LICENSE_EXPIRED', false],
    ['AGENT_QUARANTINED', false],
    ['STATUS_STALE', false],
    ['GRACE_EXPIRED', false],
  ])('%s is permanent: %s', async (code, permanent) => {
    const gate = createGate({
      checks: stubs(code),
      clock: createFixedClock(T0),
      onTerminal: () => undefined,
      statusMark: () => ({ version: 6, serverTime: T0.toISOString() }),
    });
    const v = await gate.admit();
    expect(v.admitted === false && v.terminal).toMatchObject({ code, permanent, statusVersion: 6 });
    expect(gate.leave() === null).toBe(permanent);
    expect(gate.terminal() === null).toBe(!permanent);
  });

  it('a restored terminal state closes the gate although every check passes', async () => {
    const gate = createGate({ checks: stubs(null), clock: createFixedClock(T0), onTerminal: () => undefined });
    gate.restore(t({ code: 'LICENSE_REVOKED', permanent: true }));
    expect((await gate.admit()).admitted).toBe(false);
    expect(gate.leave()).toBeNull();
  });

  it('orders answers by version, then server time', () => {
    const held = t({});
    expect(newerThan({ version: 7, serverTime: T0.toISOString() }, held)).toBe(true);
    expect(newerThan({ version: 6, serverTime: new Date(T0.getTime() + 1).toISOString() }, held)).toBe(true);
    expect(newerThan({ version: 6, serverTime: T0.toISOString() }, held)).toBe(false);
    expect(newerThan({ version: 5, serverTime: new Date(T0.getTime() + DAY).toISOString() }, held)).toBe(false);
  });
});

describe('the gate: all four, every time', () => {
  function stub(name: Check['name'], results: CheckResult[]) {
    let i = 0;
    const calls = { n: 0 };
    const check: Check = {
      name,
      evaluate: async () => {
        calls.n++;
        return results[Math.min(i++, results.length - 1)]!;
      },
    };
    return { check, calls };
  }
  const ok: CheckResult = { ok: true };
  const bad = (code: string): CheckResult => ({ ok: false, code, detail: code });

  it.each(['license', 'fingerprint', 'status', 'grace'] as const)(
    'admits nothing when only %s fails',
    async (failing) => {
      const stubs = (['license', 'fingerprint', 'status', 'grace'] as const).map((n) =>
        stub(n, [n === failing ? bad(`${n.toUpperCase()}_FAIL`) : ok]),
      );
      const terminals: string[] = [];
      const gate = createGate({
        checks: stubs.map((s) => s.check),
        clock: createFixedClock(T0),
        onTerminal: (t) => terminals.push(t.code),
      });
      const v = await gate.admit();
      expect(v.admitted).toBe(false);
      expect(terminals).toEqual([`${failing.toUpperCase()}_FAIL`]);
      for (const s of stubs) expect(s.calls.n).toBe(1);
    },
  );

  it('consults every check on every admission: earlier successes never mask a later failure', async () => {
    const stubs = [
      stub('license', [ok]),
      stub('fingerprint', [ok]),
      stub('status', [ok]),
      stub('grace', [ok, ok, bad('GRACE_EXPIRED')]),
    ];
    const gate = createGate({
      checks: stubs.map((s) => s.check),
      clock: createFixedClock(T0),
      onTerminal: () => undefined,
    });
    expect((await gate.admit()).admitted).toBe(true);
    expect((await gate.admit()).admitted).toBe(true);
    expect((await gate.admit()).admitted).toBe(false);
    for (const s of stubs) expect(s.calls.n).toBe(3);
  });

  it('stays terminal: a check that passes again does not reopen the gate', async () => {
    const stubs = [
      stub('license', [ok]),
      stub('fingerprint', [bad('FINGERPRINT_MISMATCH'), ok]),
      stub('status', [ok]),
      stub('grace', [ok]),
    ];
    const gate = createGate({
      checks: stubs.map((s) => s.check),
      clock: createFixedClock(T0),
      onTerminal: () => undefined,
    });
    expect((await gate.admit()).admitted).toBe(false);
    const again = await gate.admit();
    expect(again.admitted === false && again.terminal.code).toBe('FINGERPRINT_MISMATCH');
  });

  it('refuses a gate built with fewer than four checks', async () => {
    const gate = createGate({
      checks: [stub('license', [ok]).check],
      clock: createFixedClock(T0),
      onTerminal: () => undefined,
    });
    expect((await gate.admit()).admitted).toBe(false);
  });

  it('with the real checks, each single failure is caught although the other three hold a recent success', async () => {
    const store = tempStore();
    mkdirSync(store.root, { recursive: true });
    const source = createStaticFingerprintSource(MACHINE);
    const clock = createFixedClock(T0);
    const credential = newSecret('agc');
    const license = createLicenseCheck({
      keys: licenseKeys,
      agentId,
      licenseId,
      salt,
      recorded,
      license: signLicense(keys.license, licenseDoc()),
    });
    const fingerprint = createFingerprintCheck({ source, salt, recorded, threshold: 70, maxReadingAgeMs: 0 });
    const st = createStatusCheck({ keys: licenseKeys, agentId, licenseId, maxAgeMs: () => 7 * DAY, initial: status() });
    const grace = createGraceCheck({
      store,
      sealKey: credential,
      currentHashes: async (now) => (await fingerprint.current(now)).hashes,
    });
    await grace.seal(T0, 7, T0);
    const fresh = () => createGate({ checks: [license, fingerprint, st, grace], clock, onTerminal: () => undefined });
    expect((await fresh().admit()).admitted).toBe(true);

    // Grace file removed: the three others just passed, the gate still refuses.
    const saved = store.readText(GRACE_FILE)!;
    unlinkSync(store.resolve(GRACE_FILE));
    let v = await fresh().admit();
    expect(v.admitted === false && v.terminal.code).toBe('GRACE_MISSING');
    store.writeText(GRACE_FILE, saved);
    expect((await fresh().admit()).admitted).toBe(true);

    // A revocation arrives: status fails although license, fingerprint and grace pass.
    st.accept(status({ version: 6, licenseState: 'revoked', good: false }));
    v = await fresh().admit();
    expect(v.admitted === false && v.terminal.failures).toEqual(['LICENSE_REVOKED']);
  });
});
