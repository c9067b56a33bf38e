import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A distribution mirror the attacker controls, on loopback, in front of the real control plane's
 * `/v1/dist`: by default it passes every file through; a rule serves other bytes for a path
 * (a replayed or forged file, tampered bytes) or an endless stream. It counts what it sent, so a
 * test can show a client stopped reading.
 */
export type MirrorAnswer = Buffer | string | { endless: Buffer };
export type MirrorRule = (file: string, upstream: () => Promise<Buffer>) => Promise<MirrorAnswer | undefined>;

const ENDLESS_CAP = 256 * 1024 * 1024;

export async function startHostileMirror(upstreamDist: string) {
  let rule: MirrorRule | null = null;
  let sent = 0;
  const requests: string[] = [];
  const fetchUpstream = async (file: string): Promise<Buffer> => {
    const res = await fetch(`${upstreamDist}/${file}`);
    if (!res.ok) throw Object.assign(new Error('upstream'), { status: res.status });
    return Buffer.from(await res.arrayBuffer());
  };
  async function endless(res: ServerResponse, prefix: Buffer): Promise<void> {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const filler = Buffer.alloc(64 * 1024, 0x20);
    let chunk: Buffer = prefix;
    // Bounded: stops when the client hangs up, or at 256 MiB.
    while (!res.destroyed && sent < ENDLESS_CAP) {
      sent += chunk.length;
      if (!res.write(chunk)) await new Promise((r) => res.once('drain', r).once('close', r));
      chunk = filler;
    }
    res.end();
  }
  const server = createServer((req, res) => {
    const file = (req.url ?? '/').replace(/^\/+/, '');
    requests.push(file);
    void (async () => {
      try {
        const answer = rule ? await rule(file, () => fetchUpstream(file)) : undefined;
        if (answer && typeof answer === 'object' && 'endless' in answer) return await endless(res, answer.endless);
        const body = answer === undefined ? await fetchUpstream(file) : Buffer.from(answer);
        sent += body.length;
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
        res.end(body);
      } catch (e) {
        res.writeHead((e as { status?: number }).status ?? 502);
        res.end();
      }
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    /** Replaces the attack (null: an honest mirror); resets the byte count. */
    attack(next: MirrorRule | null): void {
      rule = next;
      sent = 0;
      requests.length = 0;
    },
    sentBytes: () => sent,
    requests: () => [...requests],
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
