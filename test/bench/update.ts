import { randomBytes } from 'node:crypto';
import { get } from 'node:http';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createJournal } from '../../agent/journal';
import { createPrefixStore } from '../../agent/prefix-store';
import { createUpdater } from '../../agent/updater';
import { buildApp } from '../../api/app';
import { WEB_DIST } from '../../api/web/routes';
import { createLogger } from '../../api/logger';
import { loadPurposeKeySet, loadPurposeSigner, systemClock } from '../../protocol';
import { findOrStartPostgres } from '../../scripts/stack/postgres';
import { freePort } from '../../scripts/stack/ports';
import { ROOT } from '../../scripts/stack/tools';
import { createTemporal } from '../../services/temporal';
import { createTestKeys } from '../support/activation-fixtures';
import { createTestServices, testConfig } from '../support/app';
import { createTestDatabase } from '../support/db';
import { makeRelease } from '../support/tuf';
import { measureRealAgentUpdate } from './update-agent';

/**
 * `npm run bench:update`: the agent's update path (tuf-js: timestamp → snapshot → targets → the
 * release tarball, hash-checked, unpacked, every file checked against its signed manifest,
 * `current` switched) against a plain HTTP download of the same tarball from the same server in
 * the same run; then N agents checking for an update at once (a check that finds nothing new)
 * against N plain GETs of the same files; metadata answers per second against a static file the
 * same server serves; then one real agent process updating itself (update-agent.ts). Options:
 * --rounds N (default 5), --agents N (default 200), --size-mb N (release size, default 2, about
 * the real bundle).
 */
function option(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : fallback;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return v;
}

/** A plain GET from a given loopback source address, body read and dropped (a 404 answers too: 2.root.json). */
function plainGet(url: string, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { localAddress }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      res.on('end', () =>
        (res.statusCode ?? 500) < 500 ? resolve(n) : reject(new Error(`${url}: ${res.statusCode}`)),
      );
    }).on('error', reject);
  });
}

/** N requests spread over `workers` clients (each from its own loopback address), every answer a 200: answers per second. */
async function answersPerS(url: string, total: number, workers: number, addressOf: (i: number) => string) {
  const each = Math.ceil(total / workers);
  const [ms] = await timed(() =>
    Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        for (let i = 0; i < each; i++)
          await new Promise<void>((resolve, reject) => {
            get(url, { localAddress: addressOf(w) }, (res) => {
              res.resume();
              res.on('end', () =>
                res.statusCode === 200 ? resolve() : reject(new Error(`${url}: ${res.statusCode}`)),
              );
            }).on('error', reject);
          });
      }),
    ),
  );
  return ((each * workers) / ms) * 1000;
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

async function timed<T>(f: () => Promise<T>): Promise<[number, T]> {
  const t = process.hrtime.bigint();
  const v = await f();
  return [Number(process.hrtime.bigint() - t) / 1e6, v];
}

export async function main(args: string[]): Promise<object> {
  const rounds = option(args, 'rounds', 5);
  const agents = option(args, 'agents', 200);
  const sizeMb = option(args, 'size-mb', 2);
  const log = (line: string) => console.log(`[bench:update] ${line}`);
  const work = mkdtempSync(path.join(tmpdir(), 'agentina-bench-update-'));
  const pg = await findOrStartPostgres({
    databaseUrl: process.env.DATABASE_URL,
    dataDir: path.join(ROOT, '.data', 'test'),
    log,
  });
  process.env.AGENTINA_TEST_PG_ADMIN_URL = pg.adminUrl;
  const db = await createTestDatabase('benchupdate');
  const keys = createTestKeys();
  const port = await freePort();
  const config = testConfig({ AGENTINA_KEYS_DIR: keys.dir, LOG_LEVEL: 'warn', PORT: String(port) });
  const temporal = createTemporal(config);
  const logger = createLogger('warn');
  const services = createTestServices({ config, pool: db.pool, temporal, clock: systemClock, logger });
  const app = await buildApp({ config, pool: db.pool, temporal, clock: systemClock, services, logger });
  let figures: Record<string, number | string>;
  try {
    await app.listen({ port, host: '127.0.0.1' });
    const dist = `http://127.0.0.1:${port}/v1/dist`;
    await services.releases.repository.init();
    // A release about the size of the real bundle; random bytes, so gzip cannot shrink it.
    const runtime = `#!/usr/bin/env node\n// ${randomBytes(sizeMb * 1024 * 1024).toString('base64')}\n`;
    const release = makeRelease(loadPurposeSigner(keys.dir, 'release'), '1.0.0', {
      'runtime/agentina-agent.js': runtime,
    });
    const [publishMs] = await timed(() => services.releases.publish({ kind: 'system', id: 'bench' }, release));
    log(`published 1.0.0 (${(release.tarball.length / 1048576).toFixed(2)} MiB tarball) in ${publishMs.toFixed(0)} ms`);
    const pinnedRoot = await (await fetch(`${dist}/metadata/1.root.json`)).text();
    const targets = await services.releases.repository.currentTargets();
    const tarballUrl = `${dist}/targets/${targets['agentina-agent-1.0.0.tar.gz']!.sha256}.agentina-agent-1.0.0.tar.gz`;
    const updaterIn = (dir: string, runningVersion = '0.9.0', localAddress?: string) =>
      createUpdater({
        ...(localAddress ? { localAddress } : {}),
        distUrl: dist,
        versionsDir: path.join(dir, 'versions'),
        pinnedRoot,
        releaseKeys: loadPurposeKeySet(keys.dir, 'release'),
        runningVersion,
        journal: createJournal({ store: createPrefixStore(dir), clock: systemClock }),
      });

    // 1. Discover and install, vs downloading the same bytes.
    const updateMs: number[] = [];
    const downloadMs: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const dir = mkdtempSync(path.join(work, 'agent-'));
      const [u, outcome] = await timed(() => updaterIn(dir).check(new Date()));
      if (outcome.outcome !== 'installed') throw new Error(`the update was not installed: ${JSON.stringify(outcome)}`);
      const [d] = await timed(async () => {
        const body = Buffer.from(await (await fetch(tarballUrl)).arrayBuffer());
        writeFileSync(path.join(dir, 'plain-download'), body);
      });
      updateMs.push(u);
      downloadMs.push(d);
      log(`round ${r + 1}: update ${u.toFixed(1)} ms, plain download ${d.toFixed(1)} ms`);
    }

    // 2. N agents asking at once whether there is anything new (each already runs 1.0.0, with no
    // metadata cached: root, timestamp, snapshot, targets and the key set, all verified), vs the
    // same files fetched plainly by N clients.
    const fleet = Array.from({ length: agents }, () => mkdtempSync(path.join(work, 'fleet-')));
    // Each agent from its own loopback address, as a fleet comes from many hosts (the API's
    // per-address rate limit applies to each, as in production).
    const addressOf = (i: number) => `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
    const updaters = fleet.map((dir, i) => updaterIn(dir, '1.0.0', addressOf(i)));
    const [checksMs, outcomes] = await timed(() => Promise.all(updaters.map((u) => u.check(new Date()))));
    const installedOrCurrent = outcomes.filter((o) => o.outcome === 'current').length;
    const ts = JSON.parse(await (await fetch(`${dist}/metadata/timestamp.json`)).text()) as {
      signed: { meta: Record<string, { version: number }> };
    };
    const snapVersion = ts.signed.meta['snapshot.json']!.version;
    const snap = JSON.parse(await (await fetch(`${dist}/metadata/${snapVersion}.snapshot.json`)).text()) as {
      signed: { meta: Record<string, { version: number }> };
    };
    const keysTarget = targets['agentina-keys.json'];
    const plainUrls = [
      `${dist}/metadata/2.root.json`,
      `${dist}/metadata/timestamp.json`,
      `${dist}/metadata/${snapVersion}.snapshot.json`,
      `${dist}/metadata/${snap.signed.meta['targets.json']!.version}.targets.json`,
      ...(keysTarget ? [`${dist}/targets/${keysTarget.sha256}.agentina-keys.json`] : []),
    ];
    const [getsMs] = await timed(() =>
      Promise.all(
        fleet.map(async (_, i) => {
          for (const u of plainUrls) await plainGet(u, addressOf(i));
        }),
      ),
    );
    log(
      `${agents} agents at once: ${checksMs.toFixed(0)} ms for their update checks, ` +
        `${getsMs.toFixed(0)} ms for the same ${plainUrls.length} files fetched plainly by each`,
    );
    // 3. Metadata answers per second (timestamp.json: read from PostgreSQL, the file every check
    // starts with) against a static file the same server serves (the admin UI's index.html).
    if (!existsSync(path.join(WEB_DIST, 'index.html'))) throw new Error('the web UI is not built: npm run build:web');
    const requests = agents * 10;
    const metadataPerS = await answersPerS(`${dist}/metadata/timestamp.json`, requests, 50, addressOf);
    const staticPerS = await answersPerS(`http://127.0.0.1:${port}/`, requests, 50, addressOf);
    log(
      `${requests} GETs by 50 clients: timestamp.json ${metadataPerS.toFixed(0)}/s, a static file ${staticPerS.toFixed(0)}/s`,
    );
    const update = median(updateMs);
    const download = median(downloadMs);
    figures = {
      bench: 'update',
      tarball_bytes: release.tarball.length,
      update_ms: round(update),
      plain_download_ms: round(download),
      update_vs_download_ratio: round(update / download, 2),
      publish_ms: round(publishMs),
      agents,
      fleet_checks_ms: round(checksMs),
      fleet_checks_ok: installedOrCurrent,
      fleet_checks_per_s: round((agents / checksMs) * 1000),
      plain_fetches_ms: round(getsMs),
      fleet_vs_plain_ratio: round(checksMs / getsMs, 2),
      metadata_answers_per_s: round(metadataPerS),
      static_file_answers_per_s: round(staticPerS),
      metadata_vs_static_ratio: round(metadataPerS / staticPerS, 2),
      rounds,
    };
  } finally {
    await app.close();
    await temporal.close();
    await db.drop();
    await pg.stop();
    keys.remove();
    rmSync(work, { recursive: true, force: true });
  }
  // 4. One real agent process updating itself, on its own stack (the API over HTTPS, Temporal).
  return { ...figures, ...(await measureRealAgentUpdate({ sizeMb, log })) };
}
