import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, type Config } from '../config';
import { ensureDatabase, migrate } from '../db';
import { createAdmin } from '../cli/create-admin';
import { withServices } from '../cli/services';
import { readBuiltRelease } from '../cli/release';
import { buildAgentRelease } from './build-agent-manifest';
import { AppError } from '../services/errors';
import { AGENT_VERSION } from '../agent/version';
import { ensureKeys } from '../protocol';
import { findOrStartPostgres, withDatabase, type PostgresServer } from './stack/postgres';
import { portAnswers, waitFor } from './stack/ports';
import { startProcess, type ManagedProcess } from './stack/processes';
import { ensureSearchAttributes, splitAddress, startTemporalDevServer, temporalAnswers } from './stack/temporal';
import { findTemporalCli, ROOT } from './stack/tools';
import { ensureWebBuilt } from './stack/web';
import { ensureDevTls, type DevTls } from './stack/tls';
import { buildAgentManifest } from './build-agent-manifest';

const FIRST_ADMIN_EMAIL = 'admin@agentina.local';
const log = (line: string) => console.log(`  · ${line}`);
/** A path as short as it can be said from here (absolute when it is not under the current directory). */
const rel = (p: string) => {
  const r = path.relative(process.cwd(), p);
  return r && !r.startsWith('..') && !path.isAbsolute(r) ? r : p;
};

/** A word a POSIX shell reads back unchanged. */
const sh = (w: string) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`);

/** How to activate an agent against this stack from this checkout, as an unprivileged user. */
function agentLines(origin: string, devTls: DevTls | undefined): string[] {
  const bin = sh(rel(path.join(ROOT, 'bin', 'agentina-agent.js')));
  if (!origin.startsWith('https:'))
    return ['  Agent              needs HTTPS: start without AGENTINA_DEV_HTTP to get the local development CA'];
  const ca = devTls ? ` --ca ${sh(rel(devTls.caFile))}` : ' --ca <your CA certificate>';
  return [
    '  Agent              create an activation token in the UI, then as a non-root user here:',
    `    node ${bin} install --user --server ${origin}${ca} --token -`,
    `    node ${bin} run --user`,
    '                     (paste the token on stdin; --prefix DIR if that user has no home; docs/agent-install.md)',
  ];
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** `npm start`: PostgreSQL, Temporal (with Web UI), migrations, worker and API; Ctrl-C stops all. */
export async function main(): Promise<void> {
  const config: Config = loadConfig();
  const logDir = path.join(config.dataDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const started: Array<ManagedProcess | { name: string; stop(): Promise<void> }> = [];
  let stopping = false;

  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    console.log('\nStopping…');
    for (const p of [...started].reverse()) {
      await p.stop().catch((e: unknown) => console.error(`  could not stop ${p.name}: ${String(e)}`));
      log(`stopped ${p.name}`);
    }
    process.exit(code);
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => void stopAll(0));

  try {
    console.log('Starting Agentina…');
    const cli = findTemporalCli(log);
    log(`Temporal CLI: ${path.relative(ROOT, cli) || cli}`);

    const pg: PostgresServer = await findOrStartPostgres({
      databaseUrl: process.env.DATABASE_URL,
      dataDir: config.dataDir,
      log,
    });
    if (pg.source === 'embedded') started.push({ name: 'PostgreSQL (embedded)', stop: () => pg.stop() });
    const databaseUrl = process.env.DATABASE_URL ?? withDatabase(pg.adminUrl, 'agentina');
    await ensureDatabase(databaseUrl);
    const migrated = await migrate(databaseUrl);
    log(
      `PostgreSQL (${pg.source}): schema at version ${migrated.current}${migrated.applied.length ? `, applied ${migrated.applied.length}` : ''}`,
    );

    const { host, port } = splitAddress(config.temporal.address);
    if (await temporalAnswers(config.temporal.address)) {
      log(`Temporal already answers at ${config.temporal.address}; using it`);
      await ensureSearchAttributes(config.temporal.address, config.temporal.namespace);
    } else {
      if (await portAnswers(host, config.temporal.uiPort))
        throw new Error(`port ${config.temporal.uiPort} (TEMPORAL_UI_PORT) is taken by another program`);
      const temporal = await startTemporalDevServer({
        cli,
        host,
        port,
        namespace: config.temporal.namespace,
        uiPort: config.temporal.uiPort,
        dbFile: path.join(config.dataDir, 'temporal.db'),
        logFile: path.join(logDir, 'temporal.log'),
      });
      started.push(temporal);
      log(`Temporal dev server at ${config.temporal.address}`);
    }

    ensureKeys(config.keysDir);
    log(`signing keys in ${rel(config.keysDir)}/`);

    // The agent only talks HTTPS to a CA it pins, so the dev stack serves HTTPS by default.
    let devTls: DevTls | undefined;
    const tlsEnv: Record<string, string> = {};
    if (!config.tls && !config.devHttp) {
      devTls = ensureDevTls(config.dataDir, config.host);
      Object.assign(tlsEnv, { TLS_CERT_FILE: devTls.certFile, TLS_KEY_FILE: devTls.keyFile });
      log(`HTTPS with the local development CA in ${rel(devTls.dir)}/${devTls.created ? ' (created)' : ''}`);
    }
    // The source checkout's signed runtime manifest and trusted keys (dist/), so
    // bin/agentina-agent.js passes its integrity check against this stack's keys.
    buildAgentManifest({ keysDir: config.keysDir });

    let firstAdmin: { email: string; password: string } | undefined;
    const env = { ...process.env, DATABASE_URL: databaseUrl, ...tlsEnv };
    const appConfig = loadConfig(env);
    await withServices(appConfig, async (services) => {
      if ((await services.identity.accounts.countAdmins()) === 0) {
        const admin = await createAdmin(services.identity.accounts, { email: FIRST_ADMIN_EMAIL });
        firstAdmin = { email: admin.email, password: admin.oneTimePassword! };
      }
      // The agent build this checkout runs is published into the release repository, so
      // heartbeats are judged against a signed manifest from the very first agent.
      const built = buildAgentRelease({ keysDir: config.keysDir, outDir: path.join(config.dataDir, 'agent') });
      try {
        const published = await services.releases.publish(
          { kind: 'system', id: 'dev-stack' },
          readBuiltRelease(built.root),
        );
        log(
          `agent ${published.release.version} ${published.created ? 'published' : 'already published'} at /v1/dist (runtimeHash ${published.release.runtimeHash.slice(0, 12)}…)`,
        );
      } catch (e) {
        // A version is published once: a rebuild of the same version (new manifest) is not re-published.
        if (!(e instanceof AppError && e.code === 'CONFLICT')) throw e;
        log(`agent ${AGENT_VERSION} was published by an earlier start; bump agent/version.ts to publish this build`);
      }
    });

    if (await portAnswers(config.host === '0.0.0.0' ? '127.0.0.1' : config.host, config.port)) {
      throw new Error(`port ${config.port} (PORT) is taken by another program; set PORT to run a second stack`);
    }
    ensureWebBuilt(log);
    const bin = path.join(ROOT, 'bin', 'agentina.js');
    for (const name of ['worker', 'serve'] as const) {
      const logFile = path.join(logDir, `${name === 'serve' ? 'api' : name}.log`);
      const proc = startProcess(name === 'serve' ? 'API' : 'worker', process.execPath, [bin, name], {
        env,
        logFile,
        cwd: ROOT,
      });
      started.push(proc);
      void proc.exited.then((code) => {
        if (stopping) return;
        console.error(
          `\n${proc.name} exited unexpectedly (code ${code}). Last lines of ${path.relative(ROOT, logFile)}:\n${tail(logFile)}`,
        );
        void stopAll(1);
      });
    }
    const apiHost = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
    await waitFor('the API', () => portAnswers(apiHost, config.port), 60000, 200);

    const scheme = appConfig.tls ? 'https' : 'http';
    const origin = `${scheme}://${apiHost}:${config.port}`;
    const lines = [
      '',
      'Agentina is running.',
      `  Admin UI and API   ${origin}/      (API docs: /docs)`,
      `  Customer portal    ${origin}/portal`,
      `  Temporal Web       ${config.temporal.uiUrl}`,
      `  PostgreSQL         ${pg.source}, database "${new URL(databaseUrl).pathname.slice(1)}"`,
      `  Logs               ${rel(logDir)}/`,
    ];
    if (firstAdmin) {
      lines.push(
        `  First admin        ${firstAdmin.email}`,
        `  One-time password  ${firstAdmin.password}    (shown once; change it at first login)`,
      );
    }
    lines.push(...agentLines(origin, devTls), 'Press Ctrl-C to stop.', '');
    console.log(lines.join('\n'));
  } catch (err) {
    console.error(`\nnpm start failed: ${(err as Error).message}`);
    await stopAll(1);
  }
}
