import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { testEnv } from './env';

async function run(args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await promisify(execFile)(
    'python3',
    [path.join(__dirname, 'python', 'totp_interop.py'), ...args],
    { env: { ...process.env, PYTHONPATH: testEnv('AGENTINA_TEST_PYTHON_PYOTP') }, timeout: 30_000 },
  );
  return JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

/** The code pyotp (the reference implementation) computes from our otpauth URI at `at`. */
export async function pyotpCode(uri: string, at: Date): Promise<string> {
  return String((await run(['code', uri, String(Math.floor(at.getTime() / 1000))])).code);
}

/** Whether pyotp accepts `code` for our otpauth URI at exactly `at`'s time step. */
export async function pyotpVerifies(uri: string, code: string, at: Date): Promise<boolean> {
  return (await run(['verify', uri, code, String(Math.floor(at.getTime() / 1000))])).valid === true;
}
