import { createKeySet, systemClock } from '../protocol';
import { createAgent } from './agent';
import { EXIT } from './cli-options';
import type { Layout } from './cli-args';
import { createSystemFingerprintSource, hashFingerprint } from './fingerprint-source';
import { createControlPlaneClient, createHttpsAgent } from './http-client';
import type { Installation } from './installation';
import type { Journal } from './journal';
import type { createAgentLogger } from './logger';
import type { PrefixStore } from './prefix-store';
import { UNPROTECTED_NOTICE, type ConfigSource } from './protected-config';
import { createRuntimeHasher } from './runtime-hash';
import { openSealKey } from './seal-key';
import { EXIT_UPDATED, watchForUpdates } from './self-update';
import { CONFIG_FILES } from './settings';
import type { AgentUpdater } from './updater';

/**
 * `agentina-agent run`'s agent in this process, once its installation is loaded and its code
 * checked: the seal key, the agent itself, the update watcher, and the stop on SIGTERM/SIGINT.
 * Returns EXIT_UPDATED when it stopped for an installed update, EXIT.ok when told to stop.
 */
export async function runAgentInProcess(input: {
  layout: Layout;
  store: PrefixStore;
  journal: Journal;
  source: ConfigSource | null;
  inst: Installation;
  integrity: { runtimeHash: string };
  logger: ReturnType<typeof createAgentLogger>;
  updater: AgentUpdater | null;
}): Promise<number> {
  const { layout, store, journal, source, inst, integrity, logger } = input;
  const delivered = input.updater?.deliveredKeys() ?? null;
  if (source) {
    const ignored = Object.values(CONFIG_FILES).filter((f) => store.exists(f));
    if (ignored.length > 0)
      logger.warn(
        { ignored, config: source.where },
        'configuration files in the state directory are ignored: the agent reads its configuration only from the root-owned directory',
      );
  } else logger.warn({ prefix: layout.state }, UNPROTECTED_NOTICE);
  const tls = { ...(inst.ca ? { ca: inst.ca } : {}) };
  const hasher = createRuntimeHasher();
  // A heartbeat answer naming a release not installed yet wakes the update watcher at once.
  const wake = new EventTarget();
  const fingerprintSource = createSystemFingerprintSource();
  const seal = await openSealKey({
    store,
    legacySecret: inst.credential,
    currentHashes: async () => hashFingerprint(inst.activation.salt, await fingerprintSource.read()),
  });
  if (seal.resealed.length > 0)
    journal.append('state.resealed', { files: seal.resealed, reason: 'the seal key moved off the credential' }, true);
  const agent = createAgent({
    store,
    client: createControlPlaneClient({
      server: inst.settings.server,
      tls,
      credential: inst.credential,
      agentKey: inst.agentKey,
    }),
    httpsAgent: createHttpsAgent(tls),
    fingerprintSource,
    clock: systemClock,
    logger,
    journal,
    settings: inst.settings,
    // The key set delivered through TUF (certified by the pinned root) replaces the pinned one.
    licenseKeys: delivered ? createKeySet(delivered.license) : inst.licenseKeys,
    activation: inst.activation,
    credential: inst.credential,
    sealKey: seal.key,
    // Hashed again over the files on disk at every heartbeat, not taken from the manifest checked at start.
    runtimeHash: () => hasher.current(),
    ...(input.updater
      ? {
          updateReport: () => input.updater?.report(),
          onUpdateDirective: (d) => {
            if (input.updater?.direct(d)) wake.dispatchEvent(new Event('wake'));
          },
        }
      : {}),
  });
  logger.info(
    {
      agentId: inst.activation.agentId,
      server: inst.settings.server,
      runtimeHash: integrity.runtimeHash,
      mode: layout.mode,
      config: source?.where ?? layout.state,
    },
    'agent starting',
  );
  await agent.start();
  const watching = new AbortController();
  const updated = input.updater
    ? watchForUpdates({
        updater: input.updater,
        everyS: inst.settings.updateCheckS,
        signal: watching.signal,
        logger,
        wake,
      })
    : new Promise<boolean>(() => undefined);
  const stopped = new Promise<boolean>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'stopping: no new tasks; the task in flight may finish');
      resolve(false);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  const restartForUpdate = await Promise.race([stopped, updated]);
  watching.abort();
  await agent.stop();
  logger.info(restartForUpdate ? 'agent stopped for its update' : 'agent stopped');
  return restartForUpdate ? EXIT_UPDATED : EXIT.ok;
}
