import {
  auditCanonicalParts,
  auditHash,
  canonicalJson,
  checkpointToExportLine,
  createKeySet,
  createSigner,
  eventToExportLine,
  EXPORT_FORMAT,
  generateKeyFile,
  GENESIS_HASH,
  verifyAuditChain,
  verifyAuditExport,
  type AuditContent,
  type ChainCheckpoint,
  type ChainEvent,
  type CheckpointStatement,
} from '../../protocol';

const key = generateKeyFile('audit-test-1');
const signer = createSigner(key);
const keys = createKeySet([key]);
const stranger = createSigner(generateKeyFile('audit-stranger'));

function buildChain(n: number): ChainEvent[] {
  const events: ChainEvent[] = [];
  let prev = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const content: AuditContent = {
      seq,
      time: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
      actor: { kind: 'admin', id: 'adm_test' },
      action: 'license.renewed',
      subject: { kind: 'license', id: `lic_${seq}` },
      data: { n: seq, nested: { seq: 0, z: [1, 'two'] } },
      idempotencyKey: `k-${seq}`,
    };
    const hash = auditHash(prev, content);
    events.push({ ...content, prevHash: prev, hash });
    prev = hash;
  }
  return events;
}

function checkpoint(id: number, e: ChainEvent, by = signer): ChainCheckpoint {
  const statement: CheckpointStatement = { sequence: e.seq, hash: e.hash, time: '2026-01-02T00:00:00.000Z' };
  return { id, statement, signature: by.sign(statement) };
}

describe('auditCanonicalParts', () => {
  it('splits canonical JSON exactly around seq, even when data holds a "seq" key', () => {
    for (const e of buildChain(3)) {
      const { prevHash: _p, hash: _h, ...content } = e;
      const { seq: _s, ...rest } = content;
      const parts = auditCanonicalParts(rest);
      expect(parts.before + String(content.seq) + parts.after).toBe(canonicalJson(content));
    }
  });
});

describe('verifyAuditChain', () => {
  const chain = buildChain(30);
  const cps = [checkpoint(1, chain[9]!), checkpoint(2, chain[24]!)];

  it('accepts an intact chain and says how much is not yet signed', () => {
    const r = verifyAuditChain({ events: chain, checkpoints: cps, keys });
    expect(r).toMatchObject({
      ok: true,
      checkedFrom: 1,
      checkedThrough: 30,
      events: 30,
      unsignedTail: 5,
      checkpoints: { total: 2, valid: 2 },
    });
    expect(r.firstBreak).toBeUndefined();
  });

  it('names an edited row', () => {
    const tampered = chain.map((e) => (e.seq === 12 ? { ...e, data: { n: 999 } } : e));
    const r = verifyAuditChain({ events: tampered, checkpoints: cps, keys });
    expect(r).toMatchObject({ ok: false, checkedThrough: 11, firstBreak: { seq: 12, code: 'HASH_MISMATCH' } });
  });

  it('names the row after an edited row whose hash was recomputed', () => {
    const tampered = chain.map((e) => {
      if (e.seq !== 12) return e;
      const { prevHash, hash: _h, ...content } = e;
      const edited = { ...content, actor: { kind: 'system' as const, id: 'someone-else' } };
      return { ...edited, prevHash, hash: auditHash(prevHash, edited) };
    });
    expect(verifyAuditChain({ events: tampered, checkpoints: cps, keys }).firstBreak).toMatchObject({
      seq: 13,
      code: 'PREV_HASH_MISMATCH',
    });
  });

  it('names a deleted row', () => {
    const r = verifyAuditChain({ events: chain.filter((e) => e.seq !== 7), checkpoints: cps, keys });
    expect(r.firstBreak).toMatchObject({ seq: 7, code: 'SEQUENCE_GAP' });
  });

  it('catches rows cut from the end after a checkpoint', () => {
    const r = verifyAuditChain({ events: chain.slice(0, 20), checkpoints: cps, keys });
    expect(r).toMatchObject({
      ok: false,
      checkedThrough: 20,
      firstBreak: { seq: 21, code: 'TRUNCATED', checkpointId: 2 },
    });
  });

  it('catches a whole rewritten chain at the first checkpoint it contradicts', () => {
    const rewritten = buildChain(30).map((e) => e); // same content, so make it differ:
    let prev = GENESIS_HASH;
    const forged = rewritten.map((e) => {
      const { prevHash: _p, hash: _h, ...content } = e;
      const c = { ...content, data: { rewritten: true } };
      const hash = auditHash(prev, c);
      const row = { ...c, prevHash: prev, hash };
      prev = hash;
      return row;
    });
    expect(verifyAuditChain({ events: forged, checkpoints: cps, keys }).firstBreak).toMatchObject({
      seq: 10,
      code: 'CHECKPOINT_MISMATCH',
      checkpointId: 1,
    });
  });

  it('catches a forged checkpoint (valid shape, wrong signature)', () => {
    const forged: ChainCheckpoint = { ...checkpoint(3, chain[14]!), signature: { ...cps[0]!.signature } };
    const r = verifyAuditChain({ events: chain, checkpoints: [...cps, forged], keys });
    expect(r.firstBreak).toMatchObject({ seq: 15, code: 'CHECKPOINT_BAD_SIGNATURE', checkpointId: 3 });
  });

  it('catches a checkpoint signed by a key outside the public key set', () => {
    const r = verifyAuditChain({ events: chain, checkpoints: [...cps, checkpoint(3, chain[17]!, stranger)], keys });
    expect(r.firstBreak).toMatchObject({ seq: 18, code: 'CHECKPOINT_UNKNOWN_KEY', checkpointId: 3 });
  });

  it('reports the lowest broken sequence when several things are wrong', () => {
    const events = chain.filter((e) => e.seq !== 20);
    const r = verifyAuditChain({ events, checkpoints: [...cps, checkpoint(3, chain[4]!, stranger)], keys });
    expect(r.firstBreak).toMatchObject({ seq: 5, code: 'CHECKPOINT_UNKNOWN_KEY' });
  });

  it('verifies from a later sequence, trusting that row’s prev_hash', () => {
    const r = verifyAuditChain({ events: chain.slice(14), checkpoints: cps, keys, from: 15 });
    expect(r).toMatchObject({ ok: true, checkedFrom: 15, checkedThrough: 30, events: 16 });
  });

  it('catches a checkpoint event whose checkpoint was removed', () => {
    let prev = chain[chain.length - 1]!.hash;
    const content: AuditContent = {
      seq: 31,
      time: '2026-01-02T00:00:01.000Z',
      actor: { kind: 'workflow', id: 'agentina-audit-checkpoint-x' },
      action: 'audit.checkpoint_signed',
      subject: { kind: 'audit_checkpoint', id: '2' },
      data: { checkpointId: 2, sequence: 25, hash: chain[24]!.hash, kid: key.kid },
      idempotencyKey: 'cp-2',
    };
    const row = { ...content, prevHash: prev, hash: auditHash(prev, content) };
    prev = row.hash;
    expect(verifyAuditChain({ events: [...chain, row], checkpoints: cps, keys }).ok).toBe(true);
    expect(verifyAuditChain({ events: [...chain, row], checkpoints: [cps[0]!], keys }).firstBreak).toMatchObject({
      seq: 31,
      code: 'CHECKPOINT_MISSING',
    });
  });
});

describe('verifyAuditExport', () => {
  const chain = buildChain(12);
  const cps = [checkpoint(1, chain[9]!)];
  const lines = [
    JSON.stringify({
      type: 'header',
      format: EXPORT_FORMAT,
      version: 1,
      from: 1,
      exportedAt: '2026-01-03T00:00:00.000Z',
    }),
    ...cps.map(checkpointToExportLine),
    ...chain.map(eventToExportLine),
  ];

  it('accepts an untouched export', () => {
    expect(verifyAuditExport(lines, keys)).toMatchObject({
      ok: true,
      checkedThrough: 12,
      checkpoints: { total: 1, valid: 1 },
    });
  });

  it('catches an edited line', () => {
    const edited = lines.map((l) => l.replace('"lic_6"', '"lic_66"'));
    expect(verifyAuditExport(edited, keys).firstBreak).toMatchObject({ seq: 6, code: 'HASH_MISMATCH' });
  });

  it('catches a dropped line and a cut tail', () => {
    expect(
      verifyAuditExport(
        lines.filter((l) => !l.includes('"seq":4,')),
        keys,
      ).firstBreak,
    ).toMatchObject({ seq: 4, code: 'SEQUENCE_GAP' });
    expect(verifyAuditExport(lines.slice(0, lines.length - 5), keys).firstBreak).toMatchObject({
      seq: 8,
      code: 'TRUNCATED',
    });
  });

  it('refuses garbage and a missing header as malformed, never as ok', () => {
    expect(verifyAuditExport([...lines.slice(0, 5), '{not json', ...lines.slice(5)], keys).firstBreak).toMatchObject({
      code: 'MALFORMED_ROW',
    });
    expect(verifyAuditExport(lines.slice(1), keys)).toMatchObject({ ok: false, firstBreak: { code: 'MALFORMED_ROW' } });
    expect(verifyAuditExport([], keys).ok).toBe(false);
    const extra = lines.map((l, i) => (i === 4 ? l.replace('{"type":"event"', '{"type":"event","sneaky":1') : l));
    expect(verifyAuditExport(extra, keys).ok).toBe(false);
  });
});
