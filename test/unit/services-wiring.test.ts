import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
const PRODUCTION = ['api', 'services', 'activities', 'worker', 'cli', 'db', 'workflows', 'scripts'];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

/** `createServices()` wires every service once per process; nothing else constructs one. */
describe('services are wired in one place', () => {
  const files = PRODUCTION.flatMap((d) => sources(path.join(ROOT, d))).map((f) => ({
    file: path.relative(ROOT, f),
    // Comments may name a factory; only code counts.
    text: readFileSync(f, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/(^|[^:])\/\/.*$/gm, '$1'),
  }));

  it('only services/index.ts calls a service factory', () => {
    const factory = /\bcreate\w*(Service|Services|Listener|Waker|Transitions|Lookup)\s*\(/g;
    const calls = files.flatMap(({ file, text }) =>
      [...text.matchAll(factory)]
        .filter((m) => !/function\s+$/.test(text.slice(Math.max(0, m.index - 9), m.index)))
        .map((m) => `${file}: ${m[0]}`),
    );
    const outside = calls.filter(
      (c) => !c.startsWith('services/index.ts:') && !/^services\/process\.ts: createServices\(/.test(c),
    );
    expect(outside).toEqual([]);
  });

  it('createServices() is called by the three process entries, through openServices()', () => {
    const callers = files.filter(({ text }) =>
      /\bopenServices\s*\(/.test(text.replace(/export function openServices/, '')),
    );
    expect(callers.map((c) => c.file).sort()).toEqual(['api/server.ts', 'cli/services.ts', 'worker/index.ts']);
  });
});
