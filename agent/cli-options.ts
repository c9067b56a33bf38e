import { readFileSync } from 'node:fs';
import path from 'node:path';
import { activationTokenSchema } from '../protocol';
import { agentSettingsSchema, type AgentSettings } from './settings';

/** What the command line shares between its commands: exit codes, I/O, and option parsing. */
export const EXIT = { ok: 0, error: 1, usage: 2, integrity: 3, root: 4, unprotected: 5 } as const;

export type Io = { out(line: string): void; err(line: string): void; uid: number; readStdin(): string };
export const defaultIo: Io = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`${l}\n`),
  uid: typeof process.getuid === 'function' ? process.getuid() : -1,
  readStdin: () => readFileSync(0, 'utf8'),
};

/** Settings from the command line (install, and activate --user). */
export function settingsFromFlags(
  flags: Map<string, string[]>,
): { ok: true; settings: AgentSettings } | { ok: false; message: string } {
  const get = (name: string) => flags.get(name)?.at(-1);
  const num = (name: string) => (get(name) === undefined ? undefined : Number(get(name)));
  const manifestFlag = get('manifest');
  const parsed = agentSettingsSchema.safeParse({
    server: get('server'),
    caPinned: flags.has('ca'),
    ...(num('threshold') !== undefined ? { fingerprintThreshold: num('threshold') } : {}),
    ...(num('drain-timeout') !== undefined ? { drainTimeoutS: num('drain-timeout') } : {}),
    ...(num('max-status-age') !== undefined ? { maxStatusAgeS: num('max-status-age') } : {}),
    httpGetAllow: flags.get('allow-http-get') ?? [],
    ...(manifestFlag ? { manifestFile: path.resolve(manifestFlag) } : {}),
    ...(get('dist') ? { distUrl: get('dist') } : {}),
  });
  if (!parsed.success)
    return {
      ok: false,
      message: `invalid option: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    };
  if (!new URL(parsed.data.server).protocol.startsWith('https'))
    return { ok: false, message: '--server must be an https:// URL' };
  if (parsed.data.distUrl && !parsed.data.distUrl.startsWith('https://'))
    return { ok: false, message: '--dist must be an https:// URL' };
  return { ok: true, settings: parsed.data };
}

/** The act_ token from --token (or stdin with `--token -`), or a message why not. */
export function tokenFrom(flags: Map<string, string[]>, readStdin: () => string): string | { error: string } {
  let token = flags.get('token')?.at(-1);
  if (!token) return { error: 'needs --token' };
  if (token === '-') token = readStdin().trim();
  if (!activationTokenSchema.safeParse(token).success) return { error: '--token must be an act_ activation token' };
  return token;
}

/** Whether a process (another user's too) is alive. */
export function processAliveOf(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
