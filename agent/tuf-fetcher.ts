import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type Agent } from 'node:https';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Fetcher } from 'tuf-js';
import { DownloadHTTPError, DownloadLengthMismatchError } from 'tuf-js/dist/error';

/**
 * How tuf-js reaches the distribution origin. Every response is streamed with the length TUF
 * allows for it (the signed length of a target, a fixed cap for metadata) and cut off past it, so
 * a mirror that sends endless data costs at most that many bytes. Downloads go to a temporary file
 * inside the agent's own versions directory (never the system's temporary directory) that is
 * removed once the handler (TUF's hash check and copy) is done. Redirects are not followed.
 *
 * The origin may be plain HTTP (a CDN or mirror): TUF verifies every byte against the pinned root,
 * so the transport adds confidentiality of what is downloaded, not integrity.
 */
export type TufFetcherOptions = {
  tmpDir: string;
  httpsAgent?: Agent;
  timeoutMs?: number;
  /** The source address to connect from (hosts with several addresses; the fleet benchmark). */
  localAddress?: string;
};

function get(url: string, opts: TufFetcherOptions): Promise<IncomingMessage> {
  const u = new URL(url);
  const send = u.protocol === 'https:' ? httpsRequest : u.protocol === 'http:' ? httpRequest : null;
  if (!send) return Promise.reject(new Error(`unsupported distribution URL ${u.protocol}`));
  return new Promise((resolve, reject) => {
    const r = send(
      u,
      {
        method: 'GET',
        timeout: opts.timeoutMs ?? 30_000,
        ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
        ...(u.protocol === 'https:' && opts.httpsAgent ? { agent: opts.httpsAgent } : {}),
      },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          res.resume();
          reject(new DownloadHTTPError(`the distribution origin answered ${status}`, status));
          return;
        }
        resolve(res);
      },
    );
    r.on('timeout', () =>
      r.destroy(new Error(`no answer from the distribution origin within ${opts.timeoutMs ?? 30_000} ms`)),
    );
    r.on('error', reject);
    r.end();
  });
}

/** Streams the body to `sink`, refusing past `maxLength` bytes (TUF's endless-data defence). */
async function stream(url: string, maxLength: number, opts: TufFetcherOptions, sink: (c: Buffer) => void) {
  const res = await get(url, opts);
  let received = 0;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      received += chunk.length;
      if (received > maxLength)
        throw new DownloadLengthMismatchError(
          `${path.basename(new URL(url).pathname)} is longer than ${maxLength} bytes`,
        );
      sink(chunk);
    }
  } finally {
    res.destroy();
  }
}

export function createTufFetcher(opts: TufFetcherOptions): Fetcher {
  return {
    async downloadBytes(url: string, maxLength: number): Promise<Buffer> {
      const chunks: Buffer[] = [];
      await stream(url, maxLength, opts, (c) => chunks.push(c));
      return Buffer.concat(chunks);
    },
    async downloadFile<T>(url: string, maxLength: number, handler: (file: string) => Promise<T>): Promise<T> {
      mkdirSync(opts.tmpDir, { recursive: true, mode: 0o700 });
      const file = path.join(opts.tmpDir, `download-${randomBytes(8).toString('hex')}`);
      const fd = openSync(file, 'wx', 0o600);
      try {
        try {
          await stream(url, maxLength, opts, (c) => writeSync(fd, c));
        } finally {
          closeSync(fd);
        }
        return await handler(file);
      } finally {
        rmSync(file, { force: true });
      }
    },
  };
}
