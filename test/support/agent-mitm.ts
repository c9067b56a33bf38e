import { createServer, request, type Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

/** What the man in the middle does with an answer: drop it, or pass a (rewritten) body. */
export type MitmVerdict = { drop: true } | { body: Buffer | string };

/**
 * A man in the middle between the agent and the control plane, holding the API's own certificate
 * and key (the strongest network attacker: one the pinned CA does not stop). `onRequest` may cut a
 * request before it reaches the control plane; `onAnswer` sees each answer and may drop it after
 * the control plane acted on the request, or rewrite its body.
 */
export async function startMitm(input: {
  upstream: string;
  cert: { cert: string; key: string };
  onRequest?: (req: IncomingMessage) => 'cut' | undefined;
  onAnswer?: (req: IncomingMessage, answer: { status: number; body: Buffer }) => MitmVerdict | undefined;
}): Promise<{ url: string; sockets: Set<Socket>; close(): Promise<void> }> {
  const upstream = new URL(input.upstream);
  const sockets = new Set<Socket>();
  const proxy: Server = createServer(
    { cert: input.cert.cert, key: input.cert.key, minVersion: 'TLSv1.3' },
    (req, res) => {
      if (input.onRequest?.(req) === 'cut') {
        req.socket.destroy();
        return;
      }
      const out = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          path: req.url,
          method: req.method,
          headers: req.headers,
          ca: input.cert.cert,
        },
        (answer) => {
          const chunks: Buffer[] = [];
          answer.on('data', (c: Buffer) => chunks.push(c));
          answer.on('end', () => {
            const verdict = input.onAnswer?.(req, { status: answer.statusCode ?? 502, body: Buffer.concat(chunks) });
            if (verdict && 'drop' in verdict) return void req.socket.destroy();
            const body = verdict && 'body' in verdict ? verdict.body : Buffer.concat(chunks);
            const headers = { ...answer.headers, 'content-length': String(Buffer.byteLength(body)) };
            res.writeHead(answer.statusCode ?? 502, headers).end(body);
          });
        },
      );
      out.on('error', () => res.destroy());
      req.pipe(out);
    },
  );
  proxy.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(proxy.address() as { port: number }).port}`,
    sockets,
    async close() {
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    },
  };
}
