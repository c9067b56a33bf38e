import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { activateAgent } from '../../agent/activation';
import { createAgent, type RunningAgent } from '../../agent/agent';
import { createStaticFingerprintSource, hashFingerprint, type RawFingerprint } from '../../agent/fingerprint-source';
import { openSealKey } from '../../agent/seal-key';
import { createControlPlaneClient, createHttpsAgent } from '../../agent/http-client';
import { loadInstallation } from '../../agent/installation';
import { createJournal, type Journal } from '../../agent/journal';
import { createAgentLogger } from '../../agent/logger';
import { createPrefixStore, type PrefixStore } from '../../agent/prefix-store';
import { userConfig } from '../../agent/protected-config';
import { agentSettingsSchema, type AgentSettings } from '../../agent/settings';
import type { Clock } from '../../protocol';
import type { FakeControlPlane, TestCert, TestKeys } from './agent-fakes';
import { createLogCapture } from './log-capture';

export const TEST_MACHINE: RawFingerprint = {
  baseboard: 'Acme B450 SN-77',
  disk: 'nvme0n1 Samsung 980 S777',
  cpu: 'AMD Ryzen 9',
  mac: '02:00:00:aa:bb:77',
  hostname: 'agent-host-7',
};

/** A clock that follows real time plus an offset the test can move (clock set back, etc.). */
export function createOffsetClock(): Clock & { offsetMs: number } {
  const c = { offsetMs: 0, now: () => new Date(Date.now() + c.offsetMs) };
  return c;
}

export type InProcessAgent = {
  agent: RunningAgent;
  store: PrefixStore;
  journal: Journal;
  source: ReturnType<typeof createStaticFingerprintSource>;
  clock: ReturnType<typeof createOffsetClock>;
  logs: ReturnType<typeof createLogCapture>;
  agentId: string;
  /** The credential as the agent holds it now (it rotates with every heartbeat). */
  readonly credential: string;
  /** Stops the agent and starts a new one over the same prefix (a process restart). */
  restart(whileStopped?: () => void): Promise<void>;
  stop(): Promise<void>;
};

/** What an in-process agent activates against: the fake control plane, or the real one (agent-stack). */
export type AgentTarget = Pick<FakeControlPlane, 'url' | 'origin'> & { issueToken(): string | Promise<string> };

/** Activates an agent against `server` and runs it inside the test process with a fake machine and clock. */
export async function startInProcessAgent(input: {
  server: AgentTarget;
  keys: Pick<TestKeys, 'trusted'>;
  cert: Pick<TestCert, 'cert'>;
  clock?: ReturnType<typeof createOffsetClock>;
  machine?: RawFingerprint;
  settings?: Partial<AgentSettings>;
  start?: boolean;
}): Promise<InProcessAgent> {
  const dir = mkdtempSync(path.join(tmpdir(), 'agentina-agent-'));
  const store = createPrefixStore(dir);
  const clock = input.clock ?? createOffsetClock();
  const source = createStaticFingerprintSource(input.machine ?? TEST_MACHINE);
  const journal = createJournal({ store, clock });
  const tls = { ca: input.cert.cert };
  const settings = agentSettingsSchema.parse({
    server: input.server.url,
    caPinned: true,
    drainTimeoutS: 30,
    statusWaitS: 2,
    taskWaitS: 1,
    httpGetAllow: [input.server.origin],
    ...input.settings,
  });
  const bootstrap = createControlPlaneClient({ server: input.server.url, tls });
  const outcome = await activateAgent({
    store,
    client: bootstrap,
    token: await input.server.issueToken(),
    settings,
    trustedKeys: input.keys.trusted,
    ca: input.cert.cert,
    fingerprintSource: source,
    clock,
    journal,
  });
  bootstrap.close();
  if (!outcome.ok) throw new Error(outcome.message);
  const inst = loadInstallation(store, userConfig(store));
  const logs = createLogCapture();
  const { key: sealKey } = await openSealKey({
    store,
    legacySecret: inst.credential,
    currentHashes: async () => hashFingerprint(inst.activation.salt, await source.read()),
  });
  // A restart reads the credential again: it rotated with the heartbeats.
  const credentialNow = () => loadInstallation(store, userConfig(store)).credential;
  const open = (credential = credentialNow()) =>
    createAgent({
      store,
      client: createControlPlaneClient({
        server: inst.settings.server,
        tls,
        credential,
        agentKey: inst.agentKey,
      }),
      httpsAgent: createHttpsAgent(tls),
      fingerprintSource: source,
      clock,
      logger: createAgentLogger('debug', logs.stream),
      journal,
      settings: inst.settings,
      licenseKeys: inst.licenseKeys,
      activation: inst.activation,
      credential,
      sealKey,
      runtimeHash: 'c'.repeat(64),
    });
  const handle: InProcessAgent = {
    agent: open(),
    store,
    journal,
    source,
    clock,
    logs,
    agentId: inst.activation.agentId,
    get credential() {
      return credentialNow();
    },
    async restart(whileStopped) {
      await handle.agent.stop();
      whileStopped?.();
      handle.agent = open();
      await handle.agent.start();
    },
    async stop() {
      await handle.agent.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (input.start !== false) await handle.agent.start();
  return handle;
}
