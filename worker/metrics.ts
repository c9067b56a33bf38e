import { createServer } from 'node:net';
import { Runtime } from '@temporalio/worker';
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import type { Config } from '../config';
import { startMetricsListener, type MetricsListener } from '../services/metrics-listener';
import { createMetrics, type LabelledValue, type Metrics } from '../services/metrics';
import { registerFleetGauges } from '../services/metrics-fleet';
import type { Services } from '../services';
import { startAuditVerifyWatch } from './audit-watch';
import type { ScheduleEntry } from './schedules';

/** How long one round of schedule descriptions serves the gauges of a scrape. */
const SHARED_READ_MS = 2000;

/** A loopback port nobody holds right now (the Temporal core binds it a moment later). */
async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Installs the Temporal SDK's core runtime with its Prometheus exporter on a loopback port of its
 * own, with conventional names (`temporal_…_total` counters, `_seconds` histograms); the worker's
 * /metrics then serves its text after the worker's own. Must run before the process's first
 * NativeConnection. Returns the exporter's URL.
 */
export async function installTemporalMetrics(): Promise<string> {
  const port = await freeLoopbackPort();
  Runtime.install({
    telemetryOptions: {
      metrics: {
        prometheus: {
          bindAddress: `127.0.0.1:${port}`,
          countersTotalSuffix: true,
          unitSuffix: true,
          useSecondsForDurations: true,
        },
      },
    },
  });
  return `http://127.0.0.1:${port}/metrics`;
}

/**
 * Per Schedule: seconds since its last action (a frozen schedule, paused or with its workflow
 * stuck and later runs skipped, only grows), its interval, and whether it is paused.
 */
export function registerScheduleGauges(metrics: Metrics, client: Client, entries: readonly ScheduleEntry[]): void {
  let last: { at: number; read: Promise<Array<{ id: string; ageS: number; paused: boolean }>> } | null = null;
  const describeAll = () => {
    const now = performance.now();
    if (!last || now - last.at > SHARED_READ_MS) {
      last = {
        at: now,
        read: Promise.all(
          entries.map(async (e) => {
            const d = await client.schedule.getHandle(e.id).describe();
            const taken = d.info.recentActions.at(-1)?.takenAt ?? d.info.createdAt;
            return { id: e.id, ageS: (Date.now() - taken.getTime()) / 1000, paused: d.state.paused };
          }),
        ),
      };
      last.read.catch(() => (last = null));
    }
    return last.read;
  };
  const each = (pick: (s: { id: string; ageS: number; paused: boolean }) => number) => async () =>
    (await describeAll()).map((s): LabelledValue => ({ labels: { schedule: s.id }, value: pick(s) }));
  metrics.labelledGauge(
    'agentina_schedule_last_action_age_seconds',
    'Seconds since the Schedule last started its workflow (since its creation if never)',
    ['schedule'],
    each((s) => s.ageS),
  );
  metrics.labelledGauge(
    'agentina_schedule_paused',
    '1 while the Schedule is paused',
    ['schedule'],
    each((s) => (s.paused ? 1 : 0)),
  );
  metrics.labelledGauge(
    'agentina_schedule_interval_seconds',
    'How often the Schedule is meant to act',
    ['schedule'],
    () => entries.map((e) => ({ labels: { schedule: e.id }, value: e.everyMs / 1000 })),
  );
}

/**
 * The worker process's /metrics on WORKER_METRICS_HOST:WORKER_METRICS_PORT (METRICS_TOKEN applies
 * as on the API's listener): process metrics, Schedule and fleet gauges, the audit verification,
 * and the Temporal SDK's worker metrics from `temporalMetricsUrl`.
 */
export async function startWorkerMetrics(input: {
  config: Config;
  listener: { host: string; port: number };
  services: Pick<Services, 'audit'>;
  pool: Parameters<typeof registerFleetGauges>[1]['pool'];
  client: Client;
  schedules: readonly ScheduleEntry[];
  temporalMetricsUrl: string | undefined;
  logger: Logger;
}): Promise<MetricsListener & { stopWatch(): void }> {
  const metrics = createMetrics({ processMetrics: true });
  registerScheduleGauges(metrics, input.client, input.schedules);
  registerFleetGauges(metrics, { pool: input.pool });
  const stopWatch = startAuditVerifyWatch({
    audit: input.services.audit,
    metrics,
    intervalMs: input.config.metrics.auditVerifyIntervalMs,
    logger: input.logger,
  });
  metrics.declareCounter(
    'agentina_temporal_metrics_unavailable_total',
    "Scrapes that could not read the Temporal SDK's metrics",
  );
  const temporal = async (): Promise<string> => {
    if (!input.temporalMetricsUrl) return '';
    try {
      const res = await fetch(input.temporalMetricsUrl, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`status ${res.status}`);
      return await res.text();
    } catch {
      metrics.inc(
        'agentina_temporal_metrics_unavailable_total',
        "Scrapes that could not read the Temporal SDK's metrics",
      );
      return '';
    }
  };
  const listener = await startMetricsListener({
    config: { ...input.config.metrics, listener: input.listener },
    metrics: {
      contentType: metrics.contentType,
      render: async () => {
        const core = await temporal();
        return `${await metrics.render()}${core ? `\n${core}` : ''}`;
      },
    },
  });
  return {
    ...listener,
    stopWatch,
  };
}
