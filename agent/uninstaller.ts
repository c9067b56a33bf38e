import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { EXIT, processAliveOf, type Io } from './cli-options';
import { createControlPlaneClient } from './http-client';
import { loadConfig, readAgentKey } from './installation';
import { createPrefixStore } from './prefix-store';
import type { ConfigSource } from './protected-config';
import { PREFIX_FILES, SYSTEM_PATHS } from './settings';
import { lookupUser, systemActions } from './system-commands';
import { systemPaths, UNIT_NAME, writable } from './system-layout';

/** A plain reader of the configuration directory, for root (uninstall). */
function rootReader(dir: string): ConfigSource {
  return {
    mode: 'system',
    where: dir,
    readText: (name) => {
      try {
        return readFileSync(path.join(dir, name), 'utf8');
      } catch {
        return null;
      }
    },
    problemWith: () => null,
  };
}

/**
 * `agentina-agent uninstall` in system mode: deregisters the agent (its seat is freed; --force removes
 * anyway when that fails), then removes what the installer laid out (installer.ts) and its user.
 */
export async function uninstallSystem(input: { root: string | null; force: boolean }, io: Io): Promise<number> {
  const staging = input.root !== null;
  const { staged } = systemPaths(input.root);
  const present = [staged.unit, staged.runtime, staged.config, staged.state].filter((p) => existsSync(p));
  if (present.length === 0) {
    io.err(`agentina-agent: no system installation found${staging ? ` under ${input.root}` : ''}; nothing removed`);
    return EXIT.error;
  }
  const sys = systemActions(staging, io);
  const unitText = existsSync(staged.unit) ? readFileSync(staged.unit, 'utf8') : '';
  const serviceUser = /^User=(.+)$/m.exec(unitText)?.[1]?.trim() ?? SYSTEM_PATHS.user;
  const store = createPrefixStore(staged.state);
  if (staging) {
    const runtime = store.readJson(PREFIX_FILES.runtime) as { pid?: unknown; running?: unknown } | null;
    if (runtime?.running === true && typeof runtime.pid === 'number' && processAliveOf(runtime.pid)) {
      io.err(`agentina-agent: the agent is running (pid ${runtime.pid}); stop it first`);
      return EXIT.error;
    }
  }
  const credential = store.readText(PREFIX_FILES.credential)?.trim();
  const activation = store.readJson(PREFIX_FILES.activation) as { agentId?: string } | null;
  if (credential) {
    let failure: string | null = null;
    try {
      const config = loadConfig(rootReader(staged.config));
      const agentKey = readAgentKey(store);
      if (!agentKey) throw new Error(`the agent key under ${staged.state} is missing or damaged`);
      const client = createControlPlaneClient({
        server: config.settings.server,
        tls: { ...(config.ca ? { ca: config.ca } : {}) },
        credential,
        agentKey,
      });
      try {
        await client.deregister();
        io.out(`deregistered agent ${activation?.agentId ?? '(unknown id)'}: its license seat is free`);
      } finally {
        client.close();
      }
    } catch (err) {
      failure = (err as Error).message;
    }
    if (failure !== null) {
      if (!input.force) {
        io.err(
          `agentina-agent: could not deregister (${failure}); nothing was removed. Use --force to remove the installation anyway (the seat then stays taken until an administrator deregisters the agent).`,
        );
        return EXIT.error;
      }
      io.err(`agentina-agent: could not deregister (${failure}); removing the installation anyway (--force)`);
    }
  } else io.out('no activated agent found: nothing to deregister');
  sys.run('systemctl', ['disable', '--now', UNIT_NAME], { tolerate: true });
  for (const p of [staged.unit, staged.runtime, staged.config, staged.state]) {
    if (!existsSync(p)) continue;
    writable(p);
    rmSync(p, { recursive: true, force: true });
    io.out(`removed ${p}`);
  }
  sys.run('systemctl', ['daemon-reload'], { tolerate: true });
  if (staging || lookupUser(serviceUser)) sys.run('userdel', [serviceUser], { tolerate: true });
  io.out(`uninstalled${staging ? ` (staged under ${input.root})` : ''}`);
  return EXIT.ok;
}
