/**
 * bench:revocation's agents, in a process of their own (10,000 parked requests need 10,000
 * sockets on each side, more than one process may open). Told over IPC which agents to be, each
 * learns its status version, then parks on GET /v1/agent/status as a real agent does (parking
 * again when a wait ends with no change). It reports "parked" once every request is sent, and
 * "done" with each agent's first changed answer: its body and the moment it arrived
 * (performance.timeOrigin + performance.now(), comparable with the parent's).
 */
import http from 'node:http';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { PROOF_HEADER } from '../../protocol';
import { proofWithKey } from '../support/agent-keys';

export type FleetOrder = {
  port: number;
  agents: Array<{ agentId: string; credential: string; key: number }>;
  keyPems: string[];
  /** Added to the parked request's query, e.g. `&license=1`. */
  extra: string;
};
export type FleetAnswer = { agentId: string; body: string; at: number };

const now = () => performance.timeOrigin + performance.now();

function run(order: FleetOrder): void {
  const keys: KeyObject[] = order.keyPems.map((pem) => createPrivateKey(pem));
  const httpAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  const get = (a: FleetOrder['agents'][number] & { address: string }, url: string) =>
    new Promise<string>((resolve, reject) => {
      const req = http.get(
        {
          host: '127.0.0.1',
          port: order.port,
          path: url,
          localAddress: a.address,
          agent: httpAgent,
          headers: {
            authorization: `Bearer ${a.credential}`,
            [PROOF_HEADER]: proofWithKey(keys[a.key]!, { method: 'GET', url }),
          },
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () =>
            res.statusCode === 200 ? resolve(body) : reject(new Error(`status ${res.statusCode}: ${body}`)),
          );
        },
      );
      req.on('error', reject);
    });
  const versionOf = (body: string) =>
    (JSON.parse(body) as { status: { payload: { version: number } } }).status.payload.version;

  // Each agent from its own loopback address, as each runs on its own machine (the API's failed-
  // authentication budget is per address and counts authentications in flight).
  const agents = order.agents.map((a, i) => ({ ...a, address: `127.0.${1 + Math.floor(i / 200)}.${(i % 200) + 1}` }));
  void (async () => {
    const since = new Map<string, number>();
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < agents.length) {
          const a = agents[next++]!;
          since.set(a.agentId, versionOf(await get(a, '/v1/agent/status')));
        }
      }),
    );
    const answers = agents.map(async (a): Promise<FleetAnswer> => {
      for (;;) {
        const body = await get(a, `/v1/agent/status?since=${since.get(a.agentId)}&wait=30${order.extra}`);
        const at = now();
        if ((JSON.parse(body) as { changed: boolean }).changed) return { agentId: a.agentId, body, at };
      }
    });
    process.send!({ kind: 'parked' });
    const settled = await Promise.allSettled(answers);
    const done = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = settled.flatMap((s) => (s.status === 'rejected' ? [String(s.reason)] : []));
    process.send!({ kind: 'done', answers: done, failed: failed.slice(0, 5), failures: failed.length }, () =>
      process.exit(0),
    );
  })().catch((err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exit(1);
  });
}

process.once('message', (order: FleetOrder) => run(order));
