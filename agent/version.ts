/** The agent's release version; reported on activation and with every heartbeat. */
export const AGENT_VERSION = '0.1.0';
