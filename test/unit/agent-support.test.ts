import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createBackoff } from '../../agent/backoff';
import { main as agentMain, parseArgs } from '../../agent/cli';
import { createJournal } from '../../agent/journal';
import { createAgentLogger } from '../../agent/logger';
import { createPrefixStore } from '../../agent/prefix-store';
import { createTaskHandlers } from '../../agent/task-handlers';
import { createHttpsAgent } from '../../agent/http-client';
import { createFixedClock, newSecret } from '../../protocol';
import { createLogCapture } from '../support/log-capture';

const ROOT = path.resolve(__dirname, '..', '..');
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir() {
  const d = mkdtempSync(path.join(tmpdir(), 'agentina-agent-unit-'));
  dirs.push(d);
  return d;
}

describe('prefix store', () => {
  it('writes atomically with 0600 files and 0700 directories, and refuses paths outside the prefix', () => {
    const store = createPrefixStore(tempDir());
    store.writeJson('a/b.json', { x: 1 });
    expect(statSync(store.resolve('a/b.json')).mode & 0o777).toBe(0o600);
    expect(statSync(store.resolve('a')).mode & 0o777).toBe(0o700);
    expect(store.readJson('a/b.json')).toEqual({ x: 1 });
    expect(() => store.writeText('../escape', 'x')).toThrow(/outside the agent prefix/);
    expect(() => store.resolve('/etc/passwd')).toThrow(/outside the agent prefix/);
    expect(readdirSync(store.resolve('a'))).toEqual(['b.json']);
  });
});

describe('journal', () => {
  it('appends redacted JSON lines and rotates, keeping a bounded number of files', () => {
    const store = createPrefixStore(tempDir());
    const journal = createJournal({
      store,
      clock: createFixedClock(new Date('2026-01-01T00:00:00Z')),
      maxBytes: 400,
      keep: 2,
    });
    const secret = newSecret('agc');
    for (let i = 0; i < 30; i++)
      journal.append('test.event', { i, credential: secret, note: `header Bearer ${secret} and ${secret}` });
    const files = readdirSync(store.resolve('journal')).sort();
    expect(files).toEqual(['journal.1.jsonl', 'journal.2.jsonl', 'journal.jsonl']);
    for (const f of files) {
      const text = readFileSync(store.resolve(`journal/${f}`), 'utf8');
      expect(text).not.toContain(secret);
      for (const line of text.split('\n').filter(Boolean))
        expect(JSON.parse(line)).toMatchObject({ event: 'test.event', at: '2026-01-01T00:00:00.000Z' });
      expect(statSync(store.resolve(`journal/${f}`)).mode & 0o777).toBe(0o600);
    }
    expect(journal.tail(1)[0]).toMatchObject({ i: 29, credential: '[REDACTED]' });
  });
});

describe('logger', () => {
  it('redacts secret keys, bearer values and prefixed secrets anywhere in a record, message included', () => {
    const cap = createLogCapture();
    const log = createAgentLogger('info', cap.stream);
    const secret = newSecret('act');
    log.info(
      { headers: { authorization: `Bearer ${secret}` }, payload: { note: `use ${secret}` }, token: secret },
      `activating with ${secret}`,
    );
    log.warn({ err: new Error(`bad token ${secret}`) }, 'failed');
    expect(cap.text()).not.toContain(secret);
    expect(cap.lines).toHaveLength(2);
  });
});

describe('backoff', () => {
  it('stays between 1 and 30 seconds, doubling its cap, and resets', () => {
    const hi = createBackoff({ random: () => 0.999999 });
    const seen = Array.from({ length: 10 }, () => hi.next());
    expect(seen.every((ms) => ms >= 1000 && ms <= 30_000)).toBe(true);
    expect(seen.slice(0, 6)).toEqual([1000, 2000, 4000, 8000, 16000, 30000]);
    const lo = createBackoff({ random: () => 0 });
    expect(Array.from({ length: 5 }, () => lo.next())).toEqual([1000, 1000, 1000, 1000, 1000]);
    hi.reset();
    expect(hi.next()).toBe(1000);
  });
});

describe('task handlers', () => {
  it('registers exactly echo, sleep and http.get', () => {
    expect([...createTaskHandlers().keys()].sort()).toEqual(['echo', 'http.get', 'sleep']);
  });

  it('http.get refuses origins off the allow-list and plain http, before any connection', async () => {
    const h = createTaskHandlers().get('http.get')!;
    const agent = createHttpsAgent({});
    const ctx = { signal: new AbortController().signal, httpGetAllow: ['https://allowed.example'], httpsAgent: agent };
    await expect(h.run({ url: 'https://evil.example/x' }, ctx)).rejects.toThrow(/allow-list/);
    await expect(h.run({ url: 'http://allowed.example/x' }, ctx)).rejects.toThrow(/allow-list/);
    await expect(h.run({ url: 'https://allowed.example.evil.example/' }, ctx)).rejects.toThrow(/allow-list/);
    agent.destroy();
  });
});

describe('command line', () => {
  it('parses flags, repeated flags and booleans; refuses stray arguments', () => {
    const a = parseArgs([
      'activate',
      '--server',
      'https://x',
      '--allow-http-get',
      'https://a',
      '--allow-http-get=https://b',
      '--force',
    ]);
    expect(typeof a !== 'string' && a.cmd).toBe('activate');
    expect(typeof a !== 'string' && a.flags.get('allow-http-get')).toEqual(['https://a', 'https://b']);
    expect(typeof a !== 'string' && a.flags.get('force')).toEqual(['true']);
    expect(parseArgs(['run', 'oops'])).toMatch(/unexpected argument/);
    expect(parseArgs(['run', '--prefix'])).toMatch(/needs a value/);
  });

  it('refuses flags a command does not take, and prints help without refusing root', async () => {
    const err: string[] = [];
    const out: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l), uid: 1000, readStdin: () => '' };
    expect(await agentMain(['run', '--prefx', '/tmp/x'], io)).toBe(2);
    expect(err.join('\n')).toMatch(/run does not take --prefx/);
    expect(await agentMain(['run', '--prefix', '/tmp/x'], io)).toBe(2);
    expect(err.join('\n')).toMatch(/--prefix is for the development mode: add --user/);
    expect(await agentMain(['--help'], { ...io, uid: 0 })).toBe(0);
    const help = out.join('\n');
    expect(help).toMatch(/agentina-agent install --server https:\/\/HOST --token act_…\|- \[--ca ca\.pem\] \[--dist/);
    expect(help).toMatch(/agentina-agent uninstall \[--force\] \[--root DIR\]/);
    expect(help).toMatch(/--root DIR +stage the installation/);
    expect(help).toMatch(/UNPROTECTED/);
  });
});

describe('lint: agent/ imports only protocol/ and npm packages', () => {
  jest.setTimeout(60_000);
  it('flags server imports and process.env in agent code', () => {
    // Linted from stdin under an existing agent file name: nothing is written into agent/.
    const code = [
      "import { loadConfig } from '../config';",
      "import { createPool } from '../db';",
      "import { buildApp } from '../api/app';",
      "import { createActivities } from '../activities';",
      "import type { Config } from '../config';",
      "import { Pool } from 'pg';",
      "import { Client } from '@temporalio/client';",
      "import { canonicalJson } from '../protocol';",
      'export const x = [loadConfig, createPool, buildApp, createActivities, Pool, Client, canonicalJson, process.env.HOME] as unknown as Config;',
    ].join('\n');
    const r = spawnSync(
      process.execPath,
      [
        path.join(ROOT, 'node_modules', 'eslint', 'bin', 'eslint.js'),
        '--format',
        'json',
        '--stdin',
        '--stdin-filename',
        path.join(ROOT, 'agent', 'cli.ts'),
      ],
      { cwd: ROOT, input: code, encoding: 'utf8' },
    );
    const [result] = JSON.parse(r.stdout) as Array<{
      messages: Array<{ ruleId: string | null; message: string; line: number }>;
    }>;
    const lines = (rule: string) =>
      result!.messages
        .filter((m) => m.ruleId === rule)
        .map((m) => m.line)
        .sort();
    expect(lines('no-restricted-imports')).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(lines('no-restricted-properties')).toEqual([9]);
  });
});
