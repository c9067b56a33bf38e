import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './tools';

const WEB = path.join(ROOT, 'web');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** Builds the admin UI and portal with Vite when web/dist is missing or older than its sources. */
export function ensureWebBuilt(log: (line: string) => void = () => undefined): void {
  const built = path.join(WEB, 'dist', 'index.html');
  // The UI also bundles what it imports from protocol/ (audit actions, canonical JSON, views).
  const sources = Math.max(
    newestMtime(path.join(WEB, 'src')),
    newestMtime(path.join(ROOT, 'protocol')),
    ...['index.html', 'portal.html', 'vite.config.mjs'].map((f) => statSync(path.join(WEB, f)).mtimeMs),
  );
  if (existsSync(built) && statSync(built).mtimeMs >= sources) return;
  log('building the web UI (vite)');
  const vite = path.join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
  const r = spawnSync(process.execPath, [vite, 'build', '--config', path.join(WEB, 'vite.config.mjs')], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`building the web UI failed:\n${(r.stderr || r.stdout).slice(-2000)}`);
}
