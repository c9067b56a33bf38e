import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config';
import { activationTokenSchema, offlineActivationRequestSchema, STATUS_FILE_MAX_DAYS, type Actor } from '../protocol';
import { withServices } from './services';

export const LICENSE_USAGE = `Usage: agentina license <command> [options]
  activate-offline --request FILE --token act_…|- --out FILE
      Turns an air-gapped agent's request file (agentina-agent activate --offline-request) into a
      signed response for that machine only, spending the activation token the request names.
      --token - reads the token from stdin (it never shows in the process list or any log).
  status-file --agent agt_… --valid-for 30d --out FILE
      Issues a signed status file bound to one agent, valid for 1-${STATUS_FILE_MAX_DAYS} days, which the agent
      imports (agentina-agent status --import FILE) to extend its offline grace. Audited.
  Output files are written 0600 and never overwrite an existing file.
`;

const OPERATOR: Actor = { kind: 'system', id: 'cli' };
type Out = (line: string) => void;

/** `30d` or `30` → 30 days; anything else (or out of 1-365) is null. */
export function parseValidFor(text: string): number | null {
  const m = /^(\d{1,4})d?$/.exec(text.trim());
  const days = m ? Number(m[1]) : NaN;
  return Number.isInteger(days) && days >= 1 && days <= STATUS_FILE_MAX_DAYS ? days : null;
}

function writeOnce(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
}

function readStdinToken(): string {
  return (readFileSync(0, 'utf8').split(/\r?\n/)[0] ?? '').trim();
}

export async function licenseCommand(
  args: string[],
  out: Out = console.log,
  err: Out = console.error,
  stdin: () => string = readStdinToken,
): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parseArgs({
    args: rest,
    options: {
      request: { type: 'string' },
      token: { type: 'string' },
      out: { type: 'string' },
      agent: { type: 'string' },
      'valid-for': { type: 'string' },
    },
    strict: true,
  });
  if (sub === 'activate-offline') {
    if (!values.request || !values.token || !values.out) {
      err(`license activate-offline needs --request, --token and --out\n\n${LICENSE_USAGE}`);
      return 2;
    }
    const token = activationTokenSchema.safeParse(values.token === '-' ? stdin() : values.token);
    if (!token.success) {
      err('license activate-offline: --token must be an act_ token (or - to read it from stdin)');
      return 2;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(values.request, 'utf8'));
    } catch (e) {
      err(`license activate-offline: cannot read ${values.request}: ${(e as Error).message}`);
      return 1;
    }
    const request = offlineActivationRequestSchema.safeParse(raw);
    if (!request.success) {
      err(`license activate-offline: ${values.request} is not an agentina offline activation request`);
      return 1;
    }
    const outFile = values.out;
    return withServices(loadConfig(), async (services) => {
      const response = await services.offlineActivation.respond({
        actor: OPERATOR,
        request: request.data,
        token: token.data,
        ip: '127.0.0.1',
      });
      writeOnce(outFile, response);
      out(`activated agent ${response.activation.agentId} for license ${response.binding.payload.licenseId}`);
      out(`response written to ${outFile}: carry it to the machine and run agentina-agent activate --offline-response`);
      return 0;
    });
  }
  if (sub === 'status-file') {
    const days = values['valid-for'] === undefined ? null : parseValidFor(values['valid-for']);
    if (!values.agent || !values.out || days === null) {
      err(
        `license status-file needs --agent, --out and --valid-for Nd (1-${STATUS_FILE_MAX_DAYS})\n\n${LICENSE_USAGE}`,
      );
      return 2;
    }
    const agentId = values.agent;
    const outFile = values.out;
    return withServices(loadConfig(), async (services) => {
      const file = await services.statusFiles.issue({ actor: OPERATOR, agentId, validForDays: days });
      writeOnce(outFile, file);
      out(
        `status file for agent ${agentId} (version ${file.status.payload.version}, good: ${file.status.payload.good})`,
      );
      out(`valid until ${file.validUntil}; written to ${outFile}`);
      return 0;
    });
  }
  err(LICENSE_USAGE);
  return 2;
}
