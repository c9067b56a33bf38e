import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, type Config } from '../config';
import { signedReleaseManifestSchema, type Actor } from '../protocol';
import { packTarGz, type TarEntry } from '../protocol/tar';
import type { Services } from '../services';
import { AppError } from '../services/errors';
import { rotateAction } from './release-rotation';
import { withServices } from './services';

export const RELEASE_USAGE = `Usage: agentina release init
       agentina release publish DIR
       agentina release yank VERSION [--reason TEXT]
       agentina release export DIR
       agentina release refresh [--force]
       agentina release keys
       agentina release rotate-root [--keys N] [--threshold K]
       agentina release rotate-targets

  init     creates the TUF repository (root, targets, snapshot, timestamp); needs the root keys
  publish  adds what \`npm run agent:build\` made in DIR (default dist/agent) as targets: a tarball
           of its files and its signed manifest (audited: release.published)
  yank     withdraws a version from the signed targets (audited: release.yanked)
  export   writes the repository as a static origin serves it: DIR/metadata, DIR/targets
  refresh  re-signs timestamp metadata if half its life is gone (--force: always; the
           agentina-tuf-timestamp schedule does this; audited: release.metadata_refreshed)
  keys     publishes the license and release public key sets as the signed target
           agentina-keys.json, which agents adopt on their next check (every publish does it
           too; audited: release.keys_published)
  rotate-root     writes root N+1 with N new root keys (default RELEASE_ROOT_KEYS), K of them
                  to sign (default RELEASE_ROOT_THRESHOLD), signed by the current root keys and
                  the new ones; the old key files are kept as tuf-root-<n>.key.retired-v<N>
                  (audited: release.root_rotated). Run where the root keys are.
  rotate-targets  a new targets key (key file), named by root N+1, which the current root keys
                  sign; the old file is kept as tuf-targets.key.retired-v<N> (audited)
`;

const OPERATOR: Actor = { kind: 'system', id: 'cli' };

/** The release in `dir`: its signed manifest and a tarball of its files (manifest order, then the extras). */
export function readBuiltRelease(dir: string) {
  const signed = signedReleaseManifestSchema.parse(
    JSON.parse(readFileSync(path.join(dir, 'agent-release.json'), 'utf8')),
  );
  const entries: TarEntry[] = signed.manifest.files.map((f) => ({
    path: f.path,
    mode: 0o755,
    body: readFileSync(path.join(dir, f.path)),
  }));
  for (const extra of ['agent-release.json', 'trusted-keys.json']) {
    try {
      entries.push({ path: extra, mode: 0o644, body: readFileSync(path.join(dir, extra)) });
    } catch {
      // trusted-keys.json is optional
    }
  }
  return { signed, tarball: packTarGz(entries) };
}

export async function releaseAction(
  services: Services,
  sub: string,
  rest: string[],
  out: (line: string) => void,
  config: Pick<Config, 'keysDir' | 'releases'> = loadConfig(),
): Promise<number> {
  const releases = services.releases;
  switch (sub) {
    case 'init': {
      const r = await releases.repository.init();
      out(
        r.created ? `release repository created (root keys ${r.rootKeyIds.join(', ')})` : 'release repository exists',
      );
      return 0;
    }
    case 'publish': {
      const dir = path.resolve(rest[0] ?? path.join('dist', 'agent'));
      const r = await releases.publish(OPERATOR, readBuiltRelease(dir));
      out(`${r.created ? 'published' : 'already published'} ${r.release.version} as ${r.release.tarballTarget}`);
      return 0;
    }
    case 'yank': {
      const { values, positionals } = parseArgs({
        args: rest,
        options: { reason: { type: 'string' } },
        allowPositionals: true,
        strict: true,
      });
      if (!positionals[0]) return -2;
      const r = await releases.yank(OPERATOR, positionals[0], values.reason);
      out(`yanked ${r.version}`);
      return 0;
    }
    case 'export': {
      if (!rest[0]) return -2;
      const dir = path.resolve(rest[0]);
      const files = await releases.repository.exportFiles();
      for (const [rel, body] of files) {
        mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
        writeFileSync(path.join(dir, rel), body);
      }
      out(`wrote ${files.length} files to ${dir}`);
      return 0;
    }
    case 'refresh': {
      const r = await releases.refreshMetadata(OPERATOR, { force: rest.includes('--force') });
      if (r.outcome === 'uninitialised')
        throw new AppError('UNAVAILABLE', 'The release repository is not initialised.');
      out(
        `${r.outcome === 'signed' ? 'signed' : 'kept'} timestamp version ${r.timestampVersion}, expires ${r.expires}`,
      );
      return 0;
    }
    case 'keys': {
      const r = await releases.publishKeySet(OPERATOR);
      out(r.published ? 'published the key set as agentina-keys.json' : 'the published key set is current');
      return 0;
    }
    case 'rotate-root':
    case 'rotate-targets':
      return rotateAction(services, config, sub === 'rotate-root' ? 'root' : 'targets', rest, OPERATOR, out);
    default:
      return -2;
  }
}

/** `agentina release <sub>`; returns the exit code. */
export async function releaseCommand(
  args: string[],
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
): Promise<number> {
  const [sub, ...rest] = args;
  if (
    !sub ||
    !['init', 'publish', 'yank', 'export', 'refresh', 'keys', 'rotate-root', 'rotate-targets'].includes(sub)
  ) {
    err(RELEASE_USAGE);
    return 2;
  }
  try {
    const config = loadConfig();
    const code = await withServices(config, (services) => releaseAction(services, sub, rest, out, config));
    if (code === -2) {
      err(RELEASE_USAGE);
      return 2;
    }
    return code;
  } catch (e) {
    if (e instanceof AppError) {
      err(`${e.code}: ${e.message}`);
      return 1;
    }
    throw e;
  }
}
