/**
 * The agent's command line: its usage text, the flags each command takes in each mode, and the
 * parser (`--name value`, `--name=value`, boolean flags; a flag may repeat, the last one counts).
 */
import { SYSTEM_PATHS } from './settings';

export const USAGE = `usage:
  Install (as root, once): a system user "agentina" (no login shell), the runtime read-only in
  /opt/agentina-agent/, trust anchors and check settings root-owned in /etc/agentina-agent/, the
  agent's state in /var/lib/agentina-agent/ (0700, with versions/), activation as "agentina",
  and a hardened systemd unit, enabled and started:
    agentina-agent install --server https://HOST --token act_…|- [--ca ca.pem] [--dist https://URL]
                           [--keys trusted-keys.json] [--threshold N] [--allow-http-get https://ORIGIN]…
                           [--drain-timeout S] [--max-status-age S] [--send-hostname]
                           [--tuf-root 1.root.json] [--root DIR] [--service-user NAME]
    agentina-agent install --server https://HOST --offline-request FILE --token-id tok_… [the same options]
      (air-gapped: installs as above, writes the activation request to FILE instead of redeeming a
      token, and enables the unit without starting it; see "Air-gapped sites" below)
      --root DIR  stage the installation under DIR (packaging, tests): nothing touches the real
                  system; the useradd/systemctl steps are printed, not run
      --tuf-root  the release repository's pinned TUF root (agentina release export writes it as
                  metadata/1.root.json); with it the agent updates itself from --dist (default
                  <server>/v1/dist) into the state's versions/, verified by TUF
  Uninstall (as root): deregisters the agent (frees its license seat), stops and removes the
  unit, the runtime, the configuration, the state and the user, and lists what it removed:
    agentina-agent uninstall [--force] [--root DIR]
      --force     remove everything even when the control plane cannot be told

  What the installer runs (as the agent's user):
    agentina-agent activate --token act_…|- [--config DIR] [--state DIR] [--send-hostname]
    agentina-agent run [--config DIR] [--state DIR]
    agentina-agent status [--config DIR] [--state DIR]
      --config DIR  root-owned configuration (default ${SYSTEM_PATHS.config}); the agent refuses
                    to start if it, a file in it or a parent directory is writable by its user
      --state DIR   the agent's own state (default ${SYSTEM_PATHS.state})

  Development mode (UNPROTECTED: everything lives in a prefix the calling user owns):
    agentina-agent install --user --server https://HOST --token act_…|- [--prefix DIR] [--keys FILE] [--ca FILE]
                           [--manifest FILE] [--tuf-root FILE] [--threshold N] [--allow-http-get https://ORIGIN]…
                           [--drain-timeout S] [--max-status-age S] [--send-hostname]
      (activate --user takes the same options)
    agentina-agent run --user [--prefix DIR]
    agentina-agent status --user [--prefix DIR]
    agentina-agent uninstall --user [--prefix DIR] [--force]

  Air-gapped sites (no route to the control plane; the token never reaches this machine):
    agentina-agent activate --offline-request FILE --token-id tok_… [--config DIR] [--state DIR]
      writes a request (public key, salted fingerprint, version, the token's public id; no
      secret, 0600) and keeps the pending key; an admin or the customer answers it with the
      token (agentina license activate-offline, the admin UI or the portal), then:
    agentina-agent activate --offline-response FILE [--config DIR] [--state DIR]
      verifies the response (signed by a trusted license key, bound to this machine's pending
      request and fingerprint) and completes the activation; the agent then runs on its grace
    agentina-agent status --import FILE [--config DIR] [--state DIR]
      a signed status file (agentina license status-file) for this agent: verified (signature,
      agent, window, not older than the status held) and adopted by the agent to extend its grace
    (with --user, --offline-request also takes --server, --keys, --ca as activate does)

  --token - reads the token from stdin, so it never shows in the process list.
  See docs/agent-install.md.`;

export type Args = { cmd: string | undefined; flags: Map<string, string[]> };
const SETTINGS_FLAGS = [
  'server',
  'token',
  'keys',
  'ca',
  'threshold',
  'allow-http-get',
  'drain-timeout',
  'max-status-age',
  'tuf-root',
];
/** Air-gapped activation: two steps, with a request and a response file carried by hand. */
const OFFLINE_FLAGS = ['offline-request', 'offline-response', 'token-id'];
export const KNOWN_FLAGS: Record<string, { user: readonly string[]; system: readonly string[] }> = {
  install: {
    user: ['user', 'prefix', 'manifest', 'send-hostname', ...SETTINGS_FLAGS],
    system: ['root', 'service-user', 'dist', 'send-hostname', 'offline-request', 'token-id', ...SETTINGS_FLAGS],
  },
  activate: {
    user: ['user', 'prefix', 'manifest', 'send-hostname', ...SETTINGS_FLAGS, ...OFFLINE_FLAGS],
    system: ['config', 'state', 'token', 'send-hostname', ...OFFLINE_FLAGS],
  },
  run: { user: ['user', 'prefix'], system: ['config', 'state'] },
  status: { user: ['user', 'prefix', 'import'], system: ['config', 'state', 'import'] },
  uninstall: { user: ['user', 'prefix', 'force'], system: ['root', 'force'] },
};
const BOOLEAN_FLAGS = new Set(['force', 'help', 'send-hostname', 'user']);

export function parseArgs(argv: string[]): Args | string {
  const [cmd, ...rest] = argv;
  const flags = new Map<string, string[]>();
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (!a.startsWith('--')) return `unexpected argument ${a}`;
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    let value: string;
    if (BOOLEAN_FLAGS.has(name)) value = 'true';
    else if (eq > 0) value = a.slice(eq + 1);
    else {
      const next = rest[i + 1];
      if (next === undefined) return `--${name} needs a value`;
      value = next;
      i++;
    }
    flags.set(name, [...(flags.get(name) ?? []), value]);
  }
  return { cmd, flags };
}

export const one = (a: Args, name: string) => a.flags.get(name)?.at(-1);

/** Where a command finds its configuration and state: system mode, or a development prefix (--user). */
export type Layout =
  { mode: 'user'; prefix: string; state: string } | { mode: 'system'; config: string; state: string };
