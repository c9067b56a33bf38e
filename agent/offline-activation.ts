import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { z } from 'zod';
import {
  createKeySet,
  OFFLINE_REQUEST_FORMAT,
  offlineActivationRequestSchema,
  offlineActivationResponseSchema,
  offlineRequestDigest,
  verifySignature,
  type Clock,
  type OfflineActivationRequest,
} from '../protocol';
import { completeActivation, type ActivationOutcome } from './activation';
import { hashFingerprint, type FingerprintSource } from './fingerprint-source';
import type { Journal } from './journal';
import type { PrefixStore } from './prefix-store';
import type { AgentSettings, TrustedKeys } from './settings';
import { AGENT_VERSION } from './version';

/** The request this machine wrote and the private key behind it, kept (0600) until the response comes. */
export const PENDING_OFFLINE_FILE = 'offline-activation.json';
const pendingSchema = z.strictObject({ request: offlineActivationRequestSchema, privateKeyPem: z.string().max(4000) });

/**
 * Air-gapped activation, step 1: a fresh key pair and fingerprint salt, as online activation
 * picks them, written as a request file (no secret: the token's public id only) and kept as the
 * pending request in the state directory. A second request replaces the first: only the newest
 * one can be completed.
 */
export async function writeOfflineRequest(input: {
  store: PrefixStore;
  tokenId: string;
  out: string;
  fingerprintSource: FingerprintSource;
  clock: Clock;
  journal: Journal;
  sendHostname?: boolean;
}): Promise<OfflineActivationRequest> {
  const salt = randomBytes(24).toString('base64url');
  const components = hashFingerprint(salt, await input.fingerprintSource.read());
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const request = offlineActivationRequestSchema.parse({
    format: OFFLINE_REQUEST_FORMAT,
    requestId: randomBytes(24).toString('base64url'),
    tokenId: input.tokenId,
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    fingerprint: { salt, components },
    agentVersion: AGENT_VERSION,
    ...(input.sendHostname ? { hostnameHint: hostname().slice(0, 255) } : {}),
    createdAt: input.clock.now().toISOString(),
  });
  input.store.writeJson(PENDING_OFFLINE_FILE, {
    request,
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  });
  writeFileSync(input.out, `${JSON.stringify(request, null, 2)}\n`, { mode: 0o600 });
  chmodSync(input.out, 0o600);
  input.journal.append('agent.offline_request_written', { tokenId: request.tokenId, requestId: request.requestId });
  return request;
}

/** A file carried in by hand (a response, a status file), parsed with its schema; or why not. */
export function readCarriedFile<T>(
  file: string,
  schema: z.ZodType<T>,
  what: string,
): { ok: true; value: T } | { ok: false; message: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    return { ok: false, message: `cannot read ${file}: ${(err as Error).message}` };
  }
  const parsed = schema.safeParse(raw);
  return parsed.success
    ? { ok: true, value: parsed.data }
    : { ok: false, message: `${file} is not an agentina ${what}` };
}

/**
 * Air-gapped activation, step 2: the response must be signed by a license key this agent trusts
 * and bound to the pending request (its digest names this machine's public key, salted
 * fingerprint, token id and request id) and to the credential it carries; the license and status
 * inside are then checked exactly as an online answer. The pending request is spent on success.
 */
export async function completeOfflineActivation(input: {
  store: PrefixStore;
  file: string;
  settings: AgentSettings;
  trustedKeys: TrustedKeys;
  ca: string | undefined;
  clock: Clock;
  journal: Journal;
  configInPrefix: boolean;
  tufRoot?: string | null;
}): Promise<ActivationOutcome> {
  const pending = pendingSchema.safeParse(input.store.readJson(PENDING_OFFLINE_FILE));
  if (!pending.success)
    return { ok: false, message: 'no pending offline request on this machine: run activate --offline-request first' };
  const parsed = readCarriedFile(input.file, offlineActivationResponseSchema, 'offline activation response');
  if (!parsed.ok) return parsed;
  const { binding, activation } = parsed.value;
  const keys = createKeySet(input.trustedKeys.license);
  const signed = verifySignature(binding.payload, binding.signature, keys);
  if (!signed.ok) return { ok: false, message: `the response's binding signature is rejected (${signed.code})` };
  const b = binding.payload;
  if (b.requestDigest !== offlineRequestDigest(pending.data.request))
    return { ok: false, message: 'the response answers another request (another machine, or an older request)' };
  if (b.agentId !== activation.agentId || b.licenseId !== activation.license.document.licenseId)
    return { ok: false, message: 'the response names another agent or license than its binding' };
  if (createHash('sha256').update(activation.credential).digest('hex') !== b.credentialSha256)
    return { ok: false, message: 'the credential in the response is not the one its binding names' };
  const { request } = pending.data;
  const outcome = await completeActivation({
    store: input.store,
    res: activation,
    salt: request.fingerprint.salt,
    components: request.fingerprint.components,
    privateKeyPem: pending.data.privateKeyPem,
    server: input.settings.server,
    settings: input.settings,
    trustedKeys: input.trustedKeys,
    ca: input.ca,
    clock: input.clock,
    journal: input.journal,
    configInPrefix: input.configInPrefix,
    tufRoot: input.tufRoot ?? null,
    offline: true,
  });
  if (outcome.ok) input.store.remove(PENDING_OFFLINE_FILE);
  return outcome;
}
