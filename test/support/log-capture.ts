import { Writable } from 'node:stream';

/** A stream that keeps every line written to it, so tests can read (and grep for secrets) what a logger wrote. */
export function createLogCapture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  return { lines, stream, text: () => lines.join('\n') };
}
