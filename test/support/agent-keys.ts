import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { formatEd25519Proof, PROOF_HEADER, proofMessage } from '../../protocol';

/**
 * The private keys of the agents tests create, so requests made "as the agent" carry the proof of
 * possession a real agent sends (protocol/agent-proof.ts). Tests that act as a thief leave the key
 * out (`'agentina-proof': undefined`) or send their own header.
 */
const byCredential = new Map<string, KeyObject>();
const byPublicKey = new Map<string, KeyObject>();

/** A fresh Ed25519 key pair for an agent, remembered by its public key (SPKI PEM). */
export function newAgentKey(): string {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  byPublicKey.set(pem, privateKey);
  return pem;
}

/** Binds a credential to the private key of the public key it was registered with. */
export function rememberAgentCredential(credential: string, publicKeyPem: string): void {
  const key = byPublicKey.get(publicKeyPem);
  if (key) byCredential.set(credential, key);
}

/** A rotated credential (a heartbeat answer's `nextCredential`) proves with the key of the one it replaced. */
export function rememberRotatedCredential(previous: string, next: string): void {
  const key = byCredential.get(previous);
  if (key) byCredential.set(next, key);
}

/** The private key (PKCS#8 PEM) of an agent credential, for a load generator in another process. */
export function agentKeyPemOf(credential: string): string {
  const key = byCredential.get(credential);
  if (!key) throw new Error('no key is known for this agent credential');
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** The proof header an agent holding `credential`'s key sends for this request. */
export function agentProofFor(
  credential: string,
  req: { method: string; url: string; body?: string },
  t = Date.now(),
): string {
  const key = byCredential.get(credential);
  if (!key) throw new Error('no key is known for this agent credential');
  return proofWithKey(key, req, t);
}

/** The same proof from the private key itself (a load generator in another process holds the PEM). */
export function proofWithKey(
  key: KeyObject,
  req: { method: string; url: string; body?: string },
  t = Date.now(),
): string {
  const bodySha256 = createHash('sha256')
    .update(req.body ?? '')
    .digest('hex');
  const message = proofMessage({ method: req.method, path: req.url, bodySha256, t });
  return formatEd25519Proof(t, sign(null, Buffer.from(message), key).toString('base64url'));
}

type InjectOptions = {
  method?: string;
  url?: string;
  headers?: Record<string, unknown>;
  payload?: unknown;
  query?: unknown;
};
const AGENT_BEARER = /^Bearer (agc_\S+)$/;

/**
 * Makes `app.inject` act as the agent whose credential a request carries: the body is serialized
 * here (the exact bytes the proof covers) and the proof header added, dated by the app's clock. A request that names its
 * own proof header (even as undefined) is sent as given. Credentials handed out by
 * POST /v1/agent/activate are bound to the key whose public half the request registered.
 */
export function actAsAgents<T extends { inject: (...args: never[]) => unknown }>(
  app: T,
  now: () => number = Date.now,
): T {
  const original = (
    app.inject as unknown as (o: InjectOptions) => Promise<{ statusCode: number; json(): unknown }>
  ).bind(app);
  const inject = async (opts: InjectOptions) => {
    const sent = withProof(opts, now());
    const res = await original(sent);
    if (sent.url === '/v1/agent/heartbeat' && res.statusCode === 200) {
      const next = (res.json() as { nextCredential?: { credential: string } }).nextCredential?.credential;
      const auth = (sent.headers ?? {}).authorization;
      const held = typeof auth === 'string' ? AGENT_BEARER.exec(auth)?.[1] : undefined;
      if (next && held) rememberRotatedCredential(held, next);
    }
    if (sent.url === '/v1/agent/activate' && res.statusCode === 200) {
      const credential = (res.json() as { credential?: string }).credential;
      const publicKey = (JSON.parse(String(sent.payload)) as { publicKey?: string }).publicKey;
      if (credential && publicKey) rememberAgentCredential(credential, publicKey);
    }
    return res;
  };
  (app as unknown as { inject: unknown }).inject = (opts?: unknown, ...rest: unknown[]) =>
    opts && typeof opts === 'object' && rest.length === 0
      ? inject(opts)
      : (original as (...a: unknown[]) => unknown)(opts, ...rest);
  return app;
}

function withProof(opts: InjectOptions, t: number): InjectOptions {
  const headers = { ...(opts.headers ?? {}) };
  let body: string | undefined;
  if (opts.payload !== undefined) {
    body =
      typeof opts.payload === 'string' || Buffer.isBuffer(opts.payload)
        ? String(opts.payload)
        : JSON.stringify(opts.payload);
    if (typeof opts.payload === 'object' && !Buffer.isBuffer(opts.payload) && !hasHeader(headers, 'content-type'))
      headers['content-type'] = 'application/json';
  }
  const sent: InjectOptions = { ...opts, headers, ...(body !== undefined ? { payload: body } : {}) };
  if (PROOF_HEADER in headers) {
    if (headers[PROOF_HEADER] === undefined) delete headers[PROOF_HEADER];
    return sent;
  }
  const auth = headers.authorization;
  const credential = typeof auth === 'string' ? AGENT_BEARER.exec(auth)?.[1] : undefined;
  if (!credential || !byCredential.has(credential) || opts.query !== undefined) return sent;
  const req = { method: opts.method ?? 'GET', url: opts.url ?? '/', ...(body !== undefined ? { body } : {}) };
  headers[PROOF_HEADER] = agentProofFor(credential, req, t);
  return sent;
}

const hasHeader = (headers: Record<string, unknown>, name: string) =>
  Object.keys(headers).some((k) => k.toLowerCase() === name);
