import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  activateRequestSchema,
  ensureKeys,
  fingerprintCommitment,
  loadPurposeSigner,
  readPublicKeySetFile,
  heartbeatRequestSchema,
  newId,
  newSecret,
  signLicense,
  taskResultRequestSchema,
  type ActivateRequest,
  type AgentTask,
  type HeartbeatRequest,
  type LicenseState,
  type SignedLicense,
  type SignedStatus,
  type Signer,
  type TaskResultRequest,
} from '../../protocol';
import { makeSelfSignedCert as makeCertFiles } from './tls';

/**
 * A small in-test control plane speaking the /v1/agent/* protocol schemas over HTTPS with a
 * self-signed certificate: the fake through a dependency that the agent's own tests run against.
 * (The end-to-end test uses the real API, worker and Temporal.)
 */
/** Polls `probe` until it gives a truthy value (returned) or `timeoutMs` passes (thrown). */
export async function waitUntil<T>(
  what: string,
  probe: () => T | undefined | null | false,
  timeoutMs = 20_000,
  stepMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export type TestCert = { key: string; cert: string; dir: string };

/** A throw-away self-signed certificate for 127.0.0.1/localhost, as PEM text (the files are removed). */
export function makeSelfSignedCert(): TestCert {
  const made = makeCertFiles();
  const out = { key: readFileSync(made.keyFile, 'utf8'), cert: readFileSync(made.certFile, 'utf8'), dir: made.dir };
  rmSync(made.dir, { recursive: true, force: true });
  return out;
}

export type TestKeys = {
  /** A keys directory (license + release purposes), as the control plane and the release build use. */
  dir: string;
  license: Signer;
  release: Signer;
  trusted: {
    license: Array<{ kid: string; publicKeyPem: string }>;
    release: Array<{ kid: string; publicKeyPem: string }>;
  };
  remove(): void;
};

export function makeTestKeys(): TestKeys {
  const dir = mkdtempSync(path.join(tmpdir(), 'agentina-agent-keys-'));
  ensureKeys(dir, ['license', 'release']);
  const pub = (purpose: 'license' | 'release') =>
    readPublicKeySetFile(dir, purpose).keys.map(({ kid, publicKeyPem }) => ({ kid, publicKeyPem }));
  return {
    dir,
    license: loadPurposeSigner(dir, 'license'),
    release: loadPurposeSigner(dir, 'release'),
    trusted: { license: pub('license'), release: pub('release') },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

type FakeAgent = {
  agentId: string;
  credentialHash: string;
  salt: string;
  commitment: string;
  status: 'active' | 'quarantined' | 'offline' | 'deregistered';
  statusVersion: number;
  activation: ActivateRequest;
};
type FakeTask = AgentTask & { state: 'queued' | 'leased' | 'done'; result?: TaskResultRequest; agentId?: string };
type Waiter = () => void;

export type FakeControlPlane = Awaited<ReturnType<typeof startFakeControlPlane>>;

export async function startFakeControlPlane(input: {
  keys: TestKeys;
  cert: TestCert;
  tlsMaxVersion?: 'TLSv1.2' | 'TLSv1.3';
  graceDays?: number;
  now?: () => Date;
  /** The features signed into every license document it hands out (default: none, a pre-entitlements document). */
  features?: Record<string, boolean | number | string>;
}) {
  const now = input.now ?? (() => new Date());
  const licenseId = newId('lic');
  const customerId = newId('cus');
  const tokens = new Set<string>();
  const agents = new Map<string, FakeAgent>();
  const tasks: FakeTask[] = [];
  const heartbeats: Array<{ agentId: string; body: HeartbeatRequest }> = [];
  const requests: Array<{ method: string; url: string; headers: Record<string, unknown> }> = [];
  const httpGets: Array<{ url: string; headers: Record<string, unknown> }> = [];
  let waiters: Waiter[] = [];
  let licenseState: LicenseState = 'active';
  let licenseVersion = 1;
  let reason: string | undefined;
  let serverTimeOffsetMs = 0;
  let freeze = false;
  let sendBadSignature = false;
  const graceDays = input.graceDays ?? 7;
  const expiresAt = new Date(now().getTime() + 30 * 86_400_000).toISOString();
  const notBefore = new Date(now().getTime() - 86_400_000).toISOString();

  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  let versionBoost = 0;
  const versionOf = (a: FakeAgent) => licenseVersion + a.statusVersion + versionBoost;

  function signedStatus(a: FakeAgent): SignedStatus {
    const good =
      ['trial', 'active', 'grace'].includes(licenseState) && (a.status === 'active' || a.status === 'offline');
    const payload = {
      kind: 'agentina.status/v1' as const,
      licenseId,
      agentId: a.agentId,
      licenseState,
      agentStatus: a.status,
      good,
      version: versionOf(a),
      serverTime: new Date(now().getTime() + serverTimeOffsetMs).toISOString(),
      expiresAt,
      graceDays,
      ...(reason ? { reason } : {}),
    };
    const signature = input.keys.license.sign(payload);
    if (sendBadSignature) signature.sig = Buffer.from(randomBytes(64)).toString('base64');
    return { payload, signature };
  }

  function licenseFor(a: FakeAgent): SignedLicense {
    return signLicense(input.keys.license, {
      kind: 'agentina.license/v1',
      licenseId,
      customerId,
      plan: 'test',
      features: input.features ?? {},
      maxAgents: 5,
      notBefore,
      expiresAt,
      graceDays,
      issuedAt: now().toISOString(),
      version: licenseVersion,
      agentId: a.agentId,
      fingerprintCommitment: a.commitment,
    });
  }

  const send = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  let refusals = 0;
  const error = (res: ServerResponse, status: number, code: string) => {
    if (status === 503) refusals++;
    send(res, status, { error: { code, message: code.toLowerCase(), requestId: 'req_fake' } });
  };

  async function readBody(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    return text ? JSON.parse(text) : undefined;
  }

  function authAgent(req: IncomingMessage): FakeAgent | null {
    const h = req.headers.authorization;
    if (!h?.startsWith('Bearer ')) return null;
    const hash = sha(h.slice(7));
    for (const a of agents.values()) if (a.credentialHash === hash && a.status !== 'deregistered') return a;
    return null;
  }

  function park(waitS: number, ready: () => boolean, req: IncomingMessage): Promise<void> {
    if (ready() || waitS <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, waitS * 1000);
      function done() {
        clearTimeout(timer);
        waiters = waiters.filter((w) => w !== check);
        resolve();
      }
      function check() {
        if (ready()) done();
        else waiters.push(check);
      }
      waiters.push(check);
      req.on('close', done);
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://fake');
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: { ...req.headers } });
    if (url.pathname.startsWith('/data/')) {
      httpGets.push({ url: req.url ?? '', headers: { ...req.headers } });
      // Echoes the request headers back, so a secret sent in a header comes back in the task result.
      return send(res, 200, { hello: 'from the allow-listed origin', path: url.pathname, headers: req.headers });
    }
    if (req.method === 'POST' && url.pathname === '/v1/agent/activate') {
      const body = activateRequestSchema.safeParse(await readBody(req));
      if (!body.success) return error(res, 400, 'VALIDATION');
      if (!tokens.delete(body.data.token)) return error(res, 401, 'TOKEN_INVALID');
      const credential = newSecret('agc');
      const a: FakeAgent = {
        agentId: newId('agt'),
        credentialHash: sha(credential),
        salt: body.data.fingerprint.salt,
        commitment: fingerprintCommitment(body.data.fingerprint.salt, body.data.fingerprint.components),
        status: 'active',
        statusVersion: 0,
        activation: body.data,
      };
      agents.set(a.agentId, a);
      return send(res, 201, {
        agentId: a.agentId,
        credential,
        license: licenseFor(a),
        status: signedStatus(a),
        heartbeatIntervalS: 5,
      });
    }
    const a = authAgent(req);
    if (!a) return error(res, 401, 'UNAUTHENTICATED');
    if (req.method === 'GET' && url.pathname === '/v1/agent/status') {
      const since = url.searchParams.has('since') ? Number(url.searchParams.get('since')) : undefined;
      const wait = Math.min(Number(url.searchParams.get('wait') ?? 0), 30);
      await park(since === undefined ? 0 : wait, () => !freeze && versionOf(a) > since!, req);
      if (freeze) return error(res, 503, 'UNAVAILABLE');
      return send(res, 200, { status: signedStatus(a), changed: since === undefined || versionOf(a) > since });
    }
    if (freeze) return error(res, 503, 'UNAVAILABLE');
    if (req.method === 'GET' && url.pathname === '/v1/agent/revocations') {
      // No bad news to record: an empty page, signed, at the cursor asked for.
      const since = Number(url.searchParams.get('since') ?? 0);
      const payload = {
        kind: 'agentina.revocations/v1',
        items: [],
        nextCursor: since,
        serverTime: now().toISOString(),
      };
      return send(res, 200, { payload, signature: input.keys.license.sign(payload) });
    }
    if (req.method === 'POST' && url.pathname === '/v1/agent/heartbeat') {
      const body = heartbeatRequestSchema.safeParse(await readBody(req));
      if (!body.success) return error(res, 400, 'VALIDATION');
      heartbeats.push({ agentId: a.agentId, body: body.data });
      wake();
      return send(res, 200, { status: signedStatus(a), heartbeatIntervalS: 5 });
    }
    if (req.method === 'GET' && url.pathname === '/v1/agent/tasks/next') {
      const wait = Math.min(Number(url.searchParams.get('wait') ?? 0), 30);
      const mine = (x: FakeTask) => x.state === 'queued' && (!x.agentId || x.agentId === a.agentId);
      await park(wait, () => tasks.some(mine), req);
      const t = tasks.find(mine);
      if (!t || res.destroyed) return send(res, 200, { task: null });
      t.state = 'leased';
      wake();
      return send(res, 200, { task: { id: t.id, kind: t.kind, payload: t.payload, leaseExpiresAt: t.leaseExpiresAt } });
    }
    const m = /^\/v1\/agent\/tasks\/([^/]+)\/result$/.exec(url.pathname);
    if (req.method === 'POST' && m) {
      const t = tasks.find((x) => x.id === decodeURIComponent(m[1]!));
      if (!t) return error(res, 404, 'NOT_FOUND');
      const body = taskResultRequestSchema.safeParse(await readBody(req));
      if (!body.success) return error(res, 400, 'VALIDATION');
      t.state = 'done';
      t.result = body.data;
      wake();
      return send(res, 200, { ok: true });
    }
    if (req.method === 'POST' && url.pathname === '/v1/agent/deregister') {
      a.status = 'deregistered';
      a.statusVersion++;
      wake();
      return send(res, 200, { ok: true });
    }
    return error(res, 404, 'NOT_FOUND');
  }

  const server: Server = createServer(
    { key: input.cert.key, cert: input.cert.cert, minVersion: 'TLSv1.2', maxVersion: input.tlsMaxVersion ?? 'TLSv1.3' },
    (req, res) => {
      handle(req, res).catch(() => {
        if (!res.headersSent) error(res, 500, 'INTERNAL');
      });
    },
  );
  const tlsErrors: string[] = [];
  server.on('tlsClientError', (err) => tlsErrors.push(err.message));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;

  return {
    url: `https://127.0.0.1:${port}`,
    origin: `https://127.0.0.1:${port}`,
    licenseId,
    agents,
    tasks,
    heartbeats,
    requests,
    httpGets,
    tlsErrors,
    issueToken(): string {
      const t = newSecret('act');
      tokens.add(t);
      return t;
    },
    setLicenseState(state: LicenseState, why?: string): void {
      licenseState = state;
      reason = why;
      licenseVersion++;
      wake();
    },
    setAgentStatus(agentId: string, status: FakeAgent['status'], why?: string): void {
      const ag = agents.get(agentId)!;
      ag.status = status;
      ag.statusVersion++;
      reason = why;
      wake();
    },
    /** Unreachable: every request but a parked one is answered 503. */
    setOffline(off: boolean): void {
      freeze = off;
      wake();
    },
    /** How many requests were answered 503 while offline. */
    refusals: () => refusals,
    setServerTimeOffset(ms: number): void {
      serverTimeOffsetMs = ms;
    },
    setBadSignatures(on: boolean): void {
      sendBadSignature = on;
    },
    /** Adds `n` to every status version it signs (a signer gone wrong); wakes the long-polls. */
    setVersionBoost(n: number): void {
      versionBoost = n;
      wake();
    },
    signedStatusFor: (agentId: string) => signedStatus(agents.get(agentId)!),
    /** Queues a task, for one agent when `agentId` is given (else for whichever asks first). */
    enqueue(kind: string, payload: Record<string, unknown>, agentId?: string): string {
      const id = newId('tsk');
      tasks.push({
        id,
        kind,
        payload,
        leaseExpiresAt: new Date(now().getTime() + 300_000).toISOString(),
        state: 'queued',
        ...(agentId ? { agentId } : {}),
      });
      wake();
      return id;
    },
    task: (id: string) => tasks.find((t) => t.id === id),
    waitFor: waitUntil,
    async close(): Promise<void> {
      wake();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
