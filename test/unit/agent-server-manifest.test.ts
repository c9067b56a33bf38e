import { checkSignedManifest, runtimeHashOf } from '../../services/releases/releases-service';
import { canonicalJson, createKeySet, createSigner, generateKeyFile, type ReleaseManifest } from '../../protocol';
import { createHash } from 'node:crypto';

/** Release manifest checks: signature against the key set, runtime hash, safe paths, version parts. */
describe('checkSignedManifest', () => {
  const key = generateKeyFile('release-unit');
  const signer = createSigner(key);
  const keys = createKeySet([{ kid: key.kid, publicKeyPem: key.publicKeyPem }]);
  const files = [{ path: 'agent/index.js', sha256: 'a'.repeat(64), size: 10 }];
  const signed = (over: Partial<ReleaseManifest> = {}) => {
    const f = over.files ?? files;
    const manifest: ReleaseManifest = {
      kind: 'agentina.release/v1',
      version: '1.2.3',
      files: f,
      runtimeHash: runtimeHashOf(f),
      createdAt: '2026-11-01T00:00:00.000Z',
      ...over,
    };
    return { manifest, signature: signer.sign(manifest) };
  };

  it('runtimeHash is sha256 over the canonical JSON of files (what agents report)', () => {
    expect(runtimeHashOf(files)).toBe(createHash('sha256').update(canonicalJson(files)).digest('hex'));
  });

  it.each([
    ['1.2.3', { major: 1, minor: 2, patch: 3, prerelease: null }],
    ['10.0.1-rc.1', { major: 10, minor: 0, patch: 1, prerelease: 'rc.1' }],
    ['2.0.0+build.7', { major: 2, minor: 0, patch: 0, prerelease: null }],
  ])('accepts version %s', (version, parts) => {
    expect(checkSignedManifest(signed({ version }), keys)).toEqual({ ok: true, ...parts });
  });

  it('refuses a version part too large to order', () => {
    expect(checkSignedManifest(signed({ version: '99999999999.0.0' }), keys)).toMatchObject({
      ok: false,
      code: 'BAD_VERSION',
    });
  });

  it('refuses a manifest changed after signing', () => {
    const s = signed();
    expect(checkSignedManifest({ ...s, manifest: { ...s.manifest, version: '9.9.9' } }, keys)).toMatchObject({
      ok: false,
      code: 'BAD_SIGNATURE',
    });
  });

  it('refuses a key outside the set, even one with the same key id', () => {
    const rogue = createSigner({ ...generateKeyFile(key.kid) });
    const s = signed();
    expect(checkSignedManifest({ ...s, signature: rogue.sign(s.manifest) }, keys)).toMatchObject({
      ok: false,
      code: 'BAD_SIGNATURE',
    });
    const other = createSigner(generateKeyFile('release-other'));
    expect(checkSignedManifest({ ...s, signature: other.sign(s.manifest) }, keys)).toMatchObject({
      ok: false,
      code: 'UNKNOWN_KEY',
    });
  });

  it.each([
    ['/etc/passwd'],
    ['../x'],
    ['agent/../../x'],
    ['agent\\..\\x'],
    ['agent//x'],
    ['agent/./x'],
    ['agent/\u0000x'],
    ['agent/\nx'],
  ])('refuses the path %j', (p) => {
    expect(checkSignedManifest(signed({ files: [{ path: p, sha256: 'a'.repeat(64), size: 1 }] }), keys)).toMatchObject({
      ok: false,
      code: 'BAD_FILES',
    });
  });

  it('refuses a repeated path', () => {
    const f = [files[0]!, { ...files[0]!, sha256: 'b'.repeat(64) }];
    expect(checkSignedManifest(signed({ files: f }), keys)).toMatchObject({ ok: false, code: 'BAD_FILES' });
  });

  it('refuses a runtimeHash that does not match its files', () => {
    expect(checkSignedManifest(signed({ runtimeHash: 'c'.repeat(64) }), keys)).toMatchObject({
      ok: false,
      code: 'RUNTIME_HASH',
    });
  });
});
