import {
  signedStatusSchema,
  statusFileSchema,
  statusFileValidUntil,
  verifyBatchableSignature,
  type KeySet,
  type SignedStatus,
} from '../protocol';
import { MAX_FUTURE_SKEW_MS } from './checks/status-check';
import { readCarriedFile } from './offline-activation';
import type { PrefixStore } from './prefix-store';
import { PREFIX_FILES, type ActivationRecord } from './settings';

/** A verified status file waiting for the running agent (it adopts it within one heartbeat period, or at start). */
export const IMPORTED_STATUS_FILE = 'status-import.json';

export type StatusImportOutcome =
  { ok: true; version: number; good: boolean; validUntil: string } | { ok: false; message: string };

/**
 * `agentina-agent status --import FILE`: the status file must be signed by a trusted license key,
 * bound to this agent and license, fresh (its window not over, not from the future) and not
 * older than the status answer the agent holds. It is then left for the agent, which judges it
 * once more exactly as an online answer (replay floor, grace) before its grace moves.
 */
export function importStatusFile(input: {
  store: PrefixStore;
  file: string;
  keys: KeySet;
  activation: ActivationRecord;
  now: Date;
}): StatusImportOutcome {
  const parsed = readCarriedFile(input.file, statusFileSchema, 'status file');
  if (!parsed.ok) return parsed;
  const { status } = parsed.value;
  const v = verifyBatchableSignature(status.payload, status.signature, input.keys);
  if (!v.ok) return { ok: false, message: `the status file's signature is rejected (${v.code})` };
  const p = status.payload;
  if (p.agentId !== input.activation.agentId || p.licenseId !== input.activation.licenseId)
    return {
      ok: false,
      message: `the status file is for agent ${p.agentId}, not this agent (${input.activation.agentId})`,
    };
  const t = input.now.getTime();
  const validUntil = statusFileValidUntil(p);
  if (t > validUntil.getTime())
    return { ok: false, message: `the status file expired at ${validUntil.toISOString()}; ask for a new one` };
  if (Date.parse(p.serverTime) - t > MAX_FUTURE_SKEW_MS)
    return { ok: false, message: `the status file is from ${p.serverTime}, ahead of this machine's clock` };
  for (const name of [PREFIX_FILES.status, IMPORTED_STATUS_FILE]) {
    const held = signedStatusSchema.safeParse(input.store.readJson(name));
    if (!held.success) continue;
    const h = held.data.payload;
    if (p.version < h.version || Date.parse(p.serverTime) < Date.parse(h.serverTime))
      return {
        ok: false,
        message: `the status file (version ${p.version}, ${p.serverTime}) is older than the status this agent holds (version ${h.version}, ${h.serverTime})`,
      };
  }
  input.store.writeJson(IMPORTED_STATUS_FILE, status);
  return { ok: true, version: p.version, good: p.good, validUntil: validUntil.toISOString() };
}

/**
 * The imported status waiting for the agent, taken once (the file is removed). It is returned as
 * it was found: the agent's status check parses and verifies it, and refuses an edited one as it
 * refuses a forged answer.
 */
export function takeImportedStatus(store: PrefixStore): SignedStatus | null {
  const raw = store.readJson(IMPORTED_STATUS_FILE);
  if (raw === null) return null;
  store.remove(IMPORTED_STATUS_FILE);
  return raw as SignedStatus;
}
