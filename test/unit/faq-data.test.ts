import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import {
  activateRequestSchema,
  offlineActivationRequestSchema,
  heartbeatRequestSchema,
  nextTaskQuerySchema,
  PROOF_HEADER,
  revocationsQuerySchema,
  statusQuerySchema,
  taskResultRequestSchema,
} from '../../protocol';

/**
 * docs/faq.md answers "what data is collected?" with a table of every field the agent sends. The
 * table is checked against the protocol schemas: a field added to a request without a row, or a
 * row for a field that no longer exists, fails here.
 */
const SENT: Record<string, z.ZodType> = {
  'POST /v1/agent/activate': activateRequestSchema,
  'GET /v1/agent/status': statusQuerySchema,
  'GET /v1/agent/revocations': revocationsQuerySchema,
  'POST /v1/agent/heartbeat': heartbeatRequestSchema,
  'GET /v1/agent/tasks/next': nextTaskQuerySchema,
  'POST /v1/agent/tasks/:id/result': taskResultRequestSchema,
  /** Carried by hand from an air-gapped machine (agentina-agent activate --offline-request). */
  'offline request file': offlineActivationRequestSchema,
};
const HEADERS = ['authorization', PROOF_HEADER];

/** Dotted paths of every field, objects opened (optional ones too), anything else a leaf. */
function fieldsOf(schema: z.ZodType, prefix = ''): string[] {
  const inner = schema instanceof z.ZodOptional ? (schema.unwrap() as z.ZodType) : schema;
  if (!(inner instanceof z.ZodObject)) return [prefix];
  return Object.entries(inner.shape as Record<string, z.ZodType>).flatMap(([k, v]) =>
    fieldsOf(v, prefix ? `${prefix}.${k}` : k),
  );
}

function faqRows(): string[] {
  const text = readFileSync(path.join(__dirname, '..', '..', 'docs', 'faq.md'), 'utf8');
  const section = text.split('## What data is collected?')[1]!.split('\n## ')[0]!;
  return section
    .split('\n')
    .map((line) => /^\|\s*`?([^|`]+?)`?\s*\|\s*`([^`]+)`\s*\|/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => `${m[1]!.trim()} ${m[2]}`);
}

describe('docs/faq.md: what data is collected', () => {
  const rows = faqRows();
  const expected = [
    ...Object.entries(SENT).flatMap(([request, schema]) => fieldsOf(schema).map((f) => `${request} ${f}`)),
    ...HEADERS.map((h) => `every request after activation ${h}`),
  ];

  it('has a row for every field the agent sends', () => {
    expect(expected.filter((f) => !rows.includes(f))).toEqual([]);
  });

  it('has no row for a field the agent does not send', () => {
    expect(rows.filter((r) => !expected.includes(r))).toEqual([]);
  });

  it('reads nested fields: the fingerprint is five hashes and a salt', () => {
    expect(expected).toContain('POST /v1/agent/activate fingerprint.components.mac');
    expect(expected).toContain('POST /v1/agent/heartbeat fingerprint.hostname');
    expect(expected.length).toBeGreaterThan(25);
  });
});
