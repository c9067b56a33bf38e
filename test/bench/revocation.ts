import { Client as PgClient } from 'pg';
import { statusResponseSchema, verifyBatchableSignature, verifySignedLicense } from '../../protocol';
import {
  inBatches,
  nowMs,
  quantile,
  startRevocationRig,
  type Agent,
  type Answer,
  type RevocationRig,
} from './revocation-rig';

/**
 * `npm run bench:revocation`: three runs on one stack (API, worker process, Temporal, PostgreSQL),
 * the agents parked on GET /v1/agent/status from a fleet process:
 * - the storm: `--agents` (1,000) agents, half on `--big-licenses` (2) licenses and half on licenses
 *   of one agent each; every license revoked through its workflow, 16 revokes at a time;
 * - the fan-out: `--fanout` (10,000) agents on ONE license, revoked once: first with the agents
 *   asking for batch signatures (this release's agent), then, as the baseline, a second license
 *   whose agents do not (each answer signed alone, as for older agents);
 * - the terms fan-out: `--terms-fanout` (1,000) agents on one license whose terms are edited
 *   (PATCH /v1/admin/licenses/:id); each agent holds document version 1 and must receive the new one.
 * Times run from sending the request (revoke call or PATCH) to each agent holding its signed answer;
 * the storm also reports them from the revoke call's reply and from the NOTIFY. 0 skips a run.
 */

/** Added to the parked request by agents of this release (see protocol/batch-signature.ts). */
const BATCH = '&signatures=batch';

/** Admins revoking at once; the workflow updates queue in Temporal beyond a handful. */
const REVOKE_CONCURRENCY = 16;

function option(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${name} must be an integer ≥ 0`);
  return v;
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);

/** The moment a bystander on its own connection heard each license's NOTIFY. */
async function notifyObserver(url: string): Promise<{ heard: Map<string, number>; end(): Promise<void> }> {
  const observer = new PgClient({ connectionString: url });
  await observer.connect();
  const heard = new Map<string, number>();
  observer.on('notification', (n) => {
    const notice = JSON.parse(n.payload ?? '{}') as { licenseId?: string };
    if (notice.licenseId && !heard.has(notice.licenseId)) heard.set(notice.licenseId, nowMs());
  });
  await observer.query('LISTEN agentina_status');
  return { heard, end: () => observer.end() };
}

/** An answer that says `revoked`, signed by the control plane. */
function revokedAnswer(rig: RevocationRig, a: Answer): boolean {
  const s = statusResponseSchema.parse(JSON.parse(a.body));
  return (
    s.changed &&
    s.status.payload.licenseState === 'revoked' &&
    s.status.payload.agentId === a.agent.agentId &&
    verifyBatchableSignature(s.status.payload, s.status.signature, rig.keySet).ok
  );
}

async function storm(rig: RevocationRig, agentCount: number, bigLicenses: number, log: (l: string) => void) {
  const bigShare = Math.floor(agentCount / 2);
  const plan: number[] = [];
  for (let i = 0; i < bigLicenses; i++)
    plan.push(Math.floor(bigShare / bigLicenses) + (i < bigShare % bigLicenses ? 1 : 0));
  while (plan.reduce((n, p) => n + p, 0) < agentCount) plan.push(1);
  const fleets: Array<{ licenseId: string; agents: Agent[] }> = [];
  await inBatches(plan, 32, async (n) => void fleets.push(await rig.licenseWithAgents(n)));
  log(
    `storm: ${fleets.length} licenses (${bigLicenses} with ${plan[0]} agents, the rest with 1), ${agentCount} agents`,
  );
  const { answers } = await rig.park(
    fleets.flatMap((f) => f.agents),
    BATCH,
  );
  const observer = await notifyObserver(rig.appUrl);
  const started = new Map<string, number>();
  const returned = new Map<string, number>();
  const t0 = nowMs();
  await inBatches(fleets, REVOKE_CONCURRENCY, async (f) => {
    started.set(f.licenseId, nowMs());
    await rig.licenses.revokeLicense(f.licenseId, rig.admin, 'bench: contract terminated');
    returned.set(f.licenseId, nowMs());
  });
  const seconds = (nowMs() - t0) / 1000;
  const results = (await answers).filter((a) => revokedAnswer(rig, a));
  await observer.end();
  const fromRequest = sorted(results.map((r) => r.at - started.get(r.agent.licenseId)!));
  const fromReply = sorted(results.map((r) => Math.max(0, r.at - returned.get(r.agent.licenseId)!)));
  const fromNotify = sorted(results.map((r) => Math.max(0, r.at - (observer.heard.get(r.agent.licenseId) ?? r.at))));
  const early = results.filter((r) => r.at < returned.get(r.agent.licenseId)!).length;
  log(
    `storm: ${results.length}/${agentCount} answered "revoked" (signed), ${early} before their revoke call returned; ${fleets.length} revokes in ${seconds.toFixed(2)} s`,
  );
  log(
    `storm: from the request p50 ${quantile(fromRequest, 0.5)} ms, p99 ${quantile(fromRequest, 0.99)} ms; from the reply p99 ${quantile(fromReply, 0.99)} ms; from the NOTIFY p99 ${quantile(fromNotify, 0.99)} ms`,
  );
  return {
    storm_agents: agentCount,
    storm_licenses: fleets.length,
    storm_answered: results.length,
    storm_revokes_per_s: Math.round((fleets.length / seconds) * 10) / 10,
    storm_p50_from_request_ms: quantile(fromRequest, 0.5),
    storm_p99_from_request_ms: quantile(fromRequest, 0.99),
    storm_p99_from_reply_ms: quantile(fromReply, 0.99),
    storm_p99_from_notify_ms: quantile(fromNotify, 0.99),
  };
}

/**
 * One license with `n` agents parked, revoked once. `batch`: the agents ask for batch signatures,
 * as this release's agent does; without it each answer is signed alone, as for older agents.
 */
async function fanout(rig: RevocationRig, n: number, batch: boolean, log: (l: string) => void) {
  const fleet = await rig.licenseWithAgents(n);
  const how = batch ? 'batch-signed' : 'signed one by one';
  log(`fan-out: one license with ${n} agents, answers ${how}`);
  const { answers } = await rig.park(fleet.agents, batch ? BATCH : '');
  const observer = await notifyObserver(rig.appUrl);
  const cpu0 = process.cpuUsage();
  const sent = nowMs();
  await rig.licenses.revokeLicense(fleet.licenseId, rig.admin, 'bench: contract terminated');
  const replied = nowMs() - sent;
  const settled = await answers;
  const cpu = process.cpuUsage(cpu0);
  const results = settled.filter((a) => revokedAnswer(rig, a));
  await observer.end();
  const ms = sorted(results.map((r) => r.at - sent));
  const notified = (observer.heard.get(fleet.licenseId) ?? sent) - sent;
  const cpuMs = Math.round((cpu.user + cpu.system) / 1000);
  const signatures = new Set(results.map((r) => statusResponseSchema.parse(JSON.parse(r.body)).status.signature.sig))
    .size;
  log(
    `fan-out (${how}): ${results.length}/${n} answered "revoked" (signed, each naming its agent) under ${signatures} signatures; from the request p50 ${quantile(ms, 0.5)} ms, p99 ${quantile(ms, 0.99)} ms, last ${quantile(ms, 1)} ms; the NOTIFY at ${notified.toFixed(0)} ms, the reply at ${replied.toFixed(0)} ms; the API process used ${cpuMs} ms of CPU`,
  );
  return {
    ms,
    cpuMs,
    answered: results.length,
    signatures,
    p50: quantile(ms, 0.5),
    p99: quantile(ms, 0.99),
    last: quantile(ms, 1),
    notify: Math.round(notified),
  };
}

async function termsFanout(rig: RevocationRig, n: number, log: (l: string) => void) {
  const fleet = await rig.licenseWithAgents(n);
  log(`terms fan-out: one license with ${n} agents, each holding document version 1`);
  const { answers } = await rig.park(fleet.agents, `&license=1${BATCH}`);
  const sent = nowMs();
  const r = await rig.app.inject({
    method: 'PATCH',
    url: `/v1/admin/licenses/${fleet.licenseId}`,
    headers: { ...rig.adminHeaders, 'content-type': 'application/json' },
    payload: { maxAgents: n + 1 },
  });
  if (r.statusCode !== 200) throw new Error(`PATCH answered ${r.statusCode}: ${r.body}`);
  const results = (await answers).filter((a) => {
    const s = statusResponseSchema.parse(JSON.parse(a.body));
    const doc = s.license && verifySignedLicense(s.license, rig.keySet);
    return (
      !!doc &&
      doc.ok &&
      doc.document.version > 1 &&
      doc.document.agentId === a.agent.agentId &&
      doc.document.maxAgents === n + 1
    );
  });
  const ms = sorted(results.map((x) => x.at - sent));
  log(
    `terms fan-out: ${results.length}/${n} hold the new signed, bound document; from the request p50 ${quantile(ms, 0.5)} ms, p99 ${quantile(ms, 0.99)} ms, last ${quantile(ms, 1)} ms`,
  );
  return {
    terms_fanout_agents: n,
    terms_fanout_answered: results.length,
    terms_fanout_p50_ms: quantile(ms, 0.5),
    terms_fanout_p99_ms: quantile(ms, 0.99),
    terms_fanout_last_ms: quantile(ms, 1),
  };
}

/**
 * The fan-out as this release's agents see it (batch), and as older agents do (one by one), in one
 * run: after a warm-up of each at 1,000 agents (the first fan-out also pays for compiling the
 * code it runs), in the order batch, one by one, one by one, batch, so neither is favoured by its
 * place; each figure is over both runs of its kind. The API's CPU time (its process, from the
 * revoke call to the last answer) is the steadier measure of what a fan-out costs.
 */
async function fanouts(rig: RevocationRig, n: number, log: (l: string) => void) {
  for (const batch of [true, false]) await fanout(rig, Math.min(n, 1000), batch, log);
  const b1 = await fanout(rig, n, true, log);
  const u1 = await fanout(rig, n, false, log);
  const u2 = await fanout(rig, n, false, log);
  const b2 = await fanout(rig, n, true, log);
  const batched = sorted([...b1.ms, ...b2.ms]);
  const alone = sorted([...u1.ms, ...u2.ms]);
  const cpuB = (b1.cpuMs + b2.cpuMs) / 2;
  const cpuU = (u1.cpuMs + u2.cpuMs) / 2;
  const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 100) / 100 : 0);
  return {
    fanout_agents: n,
    fanout_answered: Math.min(b1.answered, b2.answered),
    fanout_signatures: Math.max(b1.signatures, b2.signatures),
    fanout_p50_ms: quantile(batched, 0.5),
    fanout_p99_ms: quantile(batched, 0.99),
    fanout_last_ms: quantile(batched, 1),
    fanout_notify_ms: Math.max(b1.notify, b2.notify),
    fanout_api_cpu_ms: Math.round(cpuB),
    fanout_unbatched_answered: Math.min(u1.answered, u2.answered),
    fanout_unbatched_p99_ms: quantile(alone, 0.99),
    fanout_unbatched_api_cpu_ms: Math.round(cpuU),
    fanout_batched_vs_unbatched_p99: ratio(quantile(batched, 0.99), quantile(alone, 0.99)),
    fanout_batched_vs_unbatched_cpu: ratio(cpuB, cpuU),
  };
}

export async function main(args: string[]): Promise<object> {
  const agentCount = option(args, 'agents', 1000);
  const bigLicenses = Math.max(1, option(args, 'big-licenses', 2));
  const fanoutCount = option(args, 'fanout', 10000);
  const termsCount = option(args, 'terms-fanout', 1000);
  const log = (line: string) => console.log(`[bench:revocation] ${line}`);
  const rig = await startRevocationRig(log);
  try {
    return {
      bench: 'revocation',
      ...(agentCount ? await storm(rig, agentCount, bigLicenses, log) : {}),
      ...(fanoutCount ? await fanouts(rig, fanoutCount, log) : {}),
      ...(termsCount ? await termsFanout(rig, termsCount, log) : {}),
    };
  } finally {
    await rig.close();
  }
}
