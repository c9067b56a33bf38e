import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { loadConfig } from '../config';
import { generatePurposeKey, KEY_PURPOSES, keyFilePaths, type KeyPurpose } from '../protocol';

export const KEYS_USAGE = `Usage: agentina keys generate [--purpose audit|license|release]
       agentina keys ensure

  With --purpose: makes a new active key for that purpose in AGENTINA_KEYS_DIR (mode 0600). A
  previous key is retired, its public half stays in <purpose>.pub.json so old signatures verify.
  Without --purpose, and \`keys ensure\` (idempotent, for deploy jobs): makes a key for every
  purpose that has none; never replaces one.
  Prints key ids and file paths, never private key material.
`;

function isPurpose(s: string): s is KeyPurpose {
  return (KEY_PURPOSES as readonly string[]).includes(s);
}

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
    err(`--purpose must be one of ${KEY_PURPOSES.join(', ')}`);
    return 2;
  }
  const { keysDir } = loadConfig();
  const purposes: KeyPurpose[] =
    values.purpose !== undefined
      ? [values.purpose]
      : KEY_PURPOSES.filter((p) => !existsSync(keyFilePaths(keysDir, p).privateKey));
  if (purposes.length === 0) {
    out(`every purpose already has a key in ${keysDir}; pass --purpose to rotate one`);
    return 0;
  }
  for (const purpose of purposes) {
    const kid = generatePurposeKey(keysDir, purpose);
    const paths = keyFilePaths(keysDir, purpose);
    out(`${purpose}: key id ${kid}`);
    out(`  private key: ${paths.privateKey} (0600)`);
    out(`  public keys: ${paths.publicSet} (give this to verifiers)`);
  }
  return 0;
}
