import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { loadConfig } from '../config';
import {
  generatePurposeKey,
  generateSecretKey,
  isSecretPurpose,
  KEY_PURPOSES,
  keyFilePaths,
  SECRET_PURPOSES,
  secretKeyFile,
  type AnyKeyPurpose,
} from '../protocol';

const ALL_PURPOSES: readonly AnyKeyPurpose[] = [...KEY_PURPOSES, ...SECRET_PURPOSES];

export const KEYS_USAGE = `Usage: agentina keys generate [--purpose ${ALL_PURPOSES.join('|')}]
       agentina keys ensure

  With --purpose: makes a new active key for that purpose in AGENTINA_KEYS_DIR (mode 0600). A
  previous signing key is retired, its public half stays in <purpose>.pub.json so old signatures
  verify; a previous secret (update-origin, task-secrets) stays in <purpose>.secret.json so what
  it sealed still opens. API and worker must read the same keys directory.
  Without --purpose, and \`keys ensure\` (idempotent, for deploy jobs): makes a key for every
  purpose that has none; never replaces one.
  Prints key ids and file paths, never private key material.
`;

function isPurpose(s: string): s is AnyKeyPurpose {
  return (ALL_PURPOSES as readonly string[]).includes(s);
}

const exists = (dir: string, p: AnyKeyPurpose): boolean =>
  existsSync(isSecretPurpose(p) ? secretKeyFile(dir, p) : keyFilePaths(dir, p).privateKey);

/** `agentina keys <sub>`; returns the exit code. */
export async function keysCommand(
  args: string[],
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'generate' && sub !== 'ensure') {
    err(KEYS_USAGE);
    return 2;
  }
  const { values } = parseArgs({
    args: rest,
    options: sub === 'generate' ? { purpose: { type: 'string' } } : {},
    strict: true,
  }) as { values: { purpose?: string } };
  if (values.purpose !== undefined && !isPurpose(values.purpose)) {
    err(`--purpose must be one of ${ALL_PURPOSES.join(', ')}`);
    return 2;
  }
  const { keysDir } = loadConfig();
  const purposes: AnyKeyPurpose[] =
    values.purpose !== undefined ? [values.purpose] : ALL_PURPOSES.filter((p) => !exists(keysDir, p));
  if (purposes.length === 0) {
    out(`every purpose already has a key in ${keysDir}; pass --purpose to rotate one`);
    return 0;
  }
  for (const purpose of purposes) {
    if (isSecretPurpose(purpose)) {
      out(`${purpose}: secret id ${generateSecretKey(keysDir, purpose)}`);
      out(`  secrets: ${secretKeyFile(keysDir, purpose)} (0600; the API and worker read it, nobody else)`);
      continue;
    }
    const kid = generatePurposeKey(keysDir, purpose);
    const paths = keyFilePaths(keysDir, purpose);
    out(`${purpose}: key id ${kid}`);
    out(`  private key: ${paths.privateKey} (0600)`);
    out(`  public keys: ${paths.publicSet} (give this to verifiers)`);
  }
  return 0;
}
