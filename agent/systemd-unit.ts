import { AGENT_NODE_FLAGS, AGENT_PROCESS_ENV } from './process-tuning';

/**
 * The systemd unit the installer writes. The agent runs as its own system user with no
 * capabilities, a read-only view of the system (its state directory excepted), no access to home
 * directories, a private /tmp, and only the socket families HTTPS and local name resolution need.
 * `systemd-analyze security` rates it below 2.0 ("OK"); the test suite holds it there.
 */
export function systemdUnit(input: {
  node: string;
  entry: string;
  config: string;
  state: string;
  runtime: string;
  user: string;
}): string {
  const q = (s: string) => (/^[A-Za-z0-9_./:@+-]+$/.test(s) ? s : JSON.stringify(s));
  return `# Written by \`agentina-agent install\`; removed by \`agentina-agent uninstall\`.
[Unit]
Description=Agentina on-prem agent
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=${input.user}
Group=${input.user}
${Object.entries(AGENT_PROCESS_ENV)
  .map(([k, v]) => `Environment=${k}=${v}`)
  .join('\n')}
ExecStart=${q(input.node)} ${AGENT_NODE_FLAGS.join(' ')} ${q(input.entry)} run --config ${q(input.config)} --state ${q(input.state)}
Restart=on-failure
RestartSec=5s
# Let a task in flight drain (drain timeout, default 300 s) before SIGKILL.
TimeoutStopSec=330s
UMask=0077

# Filesystem: everything read-only but the state directory (which also holds versions/).
ProtectSystem=strict
ReadWritePaths=${q(input.state)}
ReadOnlyPaths=${q(input.config)} ${q(input.runtime)}
ProtectHome=yes
PrivateTmp=yes
PrivateMounts=yes
ProtectProc=invisible

# Privileges: none to start with, none to gain.
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
RestrictSUIDSGID=yes
PrivateUsers=yes
RemoveIPC=yes
KeyringMode=private

# Kernel and host: hands off.
ProtectClock=yes
ProtectHostname=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
LockPersonality=yes
RestrictRealtime=yes
RestrictNamespaces=yes
DevicePolicy=closed

# Network: HTTPS to the control plane (and allow-listed origins), local name resolution.
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX

# System calls: what a service needs, without privileged or resource-control calls.
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
`;
}
