import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

const ROOT = path.resolve(__dirname, '..', '..');

/** Lints a throw-away file at `relDir` with the project's own ESLint config. */
function lintProbe(relDir: string, code: string): string[] {
  const file = path.join(ROOT, relDir, `lint-probe-${randomBytes(4).toString('hex')}.ts`);
  writeFileSync(file, code);
  try {
    // ESLint loads its flat config with import(), which Jest's sandbox cannot do: run the CLI.
    const r = spawnSync(
      process.execPath,
      [path.join(ROOT, 'node_modules', 'eslint', 'bin', 'eslint.js'), '--format', 'json', file],
      { cwd: ROOT, encoding: 'utf8' },
    );
    const [result] = JSON.parse(r.stdout) as Array<{ messages: Array<{ ruleId: string | null; message: string }> }>;
    return (result?.messages ?? []).map((m) => `${m.ruleId ?? 'fatal'}: ${m.message}`);
  } finally {
    rmSync(file, { force: true });
  }
}

/** The lint is what keeps workflow code deterministic; prove it bites. */
describe('lint rules', () => {
  jest.setTimeout(60000);

  it('bans Node built-ins, pg, HTTP clients and server code in workflows/', async () => {
    const messages = lintProbe(
      'workflows',
      [
        "import { readFileSync } from 'node:fs';",
        "import crypto from 'crypto';",
        "import { Pool } from 'pg';",
        "import axios from 'axios';",
        "import { createPool } from '../db';",
        "import { buildApp } from '../api/app';",
        "import { createActivities } from '../activities';",
        'export const x = [readFileSync, crypto, Pool, axios, createPool, buildApp, createActivities];',
      ].join('\n'),
    );
    const restricted = messages.filter((m) => m.startsWith('no-restricted-imports'));
    expect(restricted).toHaveLength(7);
  });

  it('allows @temporalio/workflow and type-only imports of activities in workflows/', async () => {
    const messages = lintProbe(
      'workflows',
      [
        "import { sleep } from '@temporalio/workflow';",
        "import type { Activities } from '../activities';",
        'export async function wf(): Promise<Activities | undefined> { await sleep(1); return undefined; }',
      ].join('\n'),
    );
    expect(messages.filter((m) => m.startsWith('no-restricted-imports'))).toEqual([]);
  });

  // The layers (eslint.config.mjs): one probe per rule that must bite, and one that must not.
  it.each([
    ['services', "import { buildApp } from '../api/app';", true],
    ['services', "import { createActivities } from '../activities';", true],
    ['services', "import { createPool } from '../db';", false],
    ['api', "import { createPool } from '../db';", true],
    ['api', "import { createServices } from '../services';", false],
    ['activities', "import { createPool } from '../db/pool';", true],
    ['worker', "import { buildApp } from '../api/app';", true],
    ['worker', "import { createPool } from '../db/pool';", true],
    ['worker', "import { createServices } from '../services';", false],
    ['db', "import { createServices } from '../services';", true],
    ['protocol', "import { createPool } from '../db';", true],
    ['agent', "import { createServices } from '../services';", true],
    ['web/src', "import { createPool } from '../../db/pool';", true],
    ['web/src', "import { AUDIT_ACTIONS } from '../../db/audit-repo';", true],
    ['web/src', "import { LICENSE_STATES } from '../../protocol/enums';", false],
  ])('%s: %s → refused: %s', (dir, line, refused) => {
    const name = /import \{ (\w+) \}/.exec(line)![1];
    const messages = lintProbe(dir, `${line}\nexport const x = ${name};\n`);
    expect(messages.some((m) => m.startsWith('no-restricted-imports'))).toBe(refused);
  });

  it('makes a floating promise an error everywhere', async () => {
    const messages = lintProbe(
      'api',
      ['async function work(): Promise<void> {}', 'export function go(): void {', '  work();', '}'].join('\n'),
    );
    expect(messages.some((m) => m.startsWith('@typescript-eslint/no-floating-promises'))).toBe(true);
  });
});
