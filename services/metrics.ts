import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * One process's Prometheus registry (prom-client). Metric names follow Prometheus's conventions:
 * `agentina_` prefix, counters end in `_total`, durations are `_seconds` histograms. The process
 * entry points ask for the default process metrics (CPU, memory, event loop, GC); apps built in
 * tests leave them out, since each set installs observers that live as long as the process.
 */
export type Labels = Record<string, string>;

/** Seconds: API answers take milliseconds, status long-polls park up to 30 s. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export type LabelledValue = { labels: Labels; value: number };

export function createMetrics(opts: { processMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (opts.processMetrics) collectDefaultMetrics({ register: registry });
  const counters = new Map<string, Counter>();
  const histograms = new Map<string, Histogram>();
  const collectErrors = new Counter({
    name: 'agentina_metrics_collect_errors_total',
    help: 'Gauges whose value could not be read at a scrape (the previous value was kept)',
    labelNames: ['metric'],
    registers: [registry],
  });

  /** A gauge read at each scrape: replaces one registered under the same name. */
  function replaceable(name: string): void {
    if (registry.getSingleMetric(name)) registry.removeSingleMetric(name);
  }

  return {
    registry,
    contentType: registry.contentType,

    /** Registers a counter before its first event, so a scrape lists it (alerts name it) from the start. */
    declareCounter(name: string, help: string, labelNames: string[] = []): void {
      if (counters.has(name)) return;
      counters.set(name, new Counter({ name, help, labelNames, registers: [registry] }));
    },

    /** Adds to a counter (created on first use, its label names from this first call). */
    inc(name: string, help: string, labels: Labels = {}, by = 1): void {
      let c = counters.get(name);
      if (!c) {
        c = new Counter({ name, help, labelNames: Object.keys(labels), registers: [registry] });
        counters.set(name, c);
      }
      c.inc(labels, by);
    },

    /** Records one observation in a histogram (created on first use). */
    observe(name: string, help: string, labels: Labels, value: number, buckets = DURATION_BUCKETS): void {
      let h = histograms.get(name);
      if (!h) {
        h = new Histogram({ name, help, labelNames: Object.keys(labels), buckets, registers: [registry] });
        histograms.set(name, h);
      }
      h.observe(labels, value);
    },

    /** A gauge without labels whose value is read at each scrape. */
    gauge(name: string, help: string, read: () => number | Promise<number>): void {
      replaceable(name);
      new Gauge({
        name,
        help,
        registers: [registry],
        async collect() {
          try {
            this.set(await read());
          } catch {
            collectErrors.inc({ metric: name });
          }
        },
      });
    },

    /** A gauge with labels, every series read at each scrape (series no longer read disappear). */
    labelledGauge(
      name: string,
      help: string,
      labelNames: string[],
      read: () => LabelledValue[] | Promise<LabelledValue[]>,
    ): void {
      replaceable(name);
      new Gauge({
        name,
        help,
        labelNames,
        registers: [registry],
        async collect() {
          try {
            const values = await read();
            this.reset();
            for (const v of values) this.set(v.labels, v.value);
          } catch {
            collectErrors.inc({ metric: name });
          }
        },
      });
    },

    /** The Prometheus text exposition of everything registered. */
    render(): Promise<string> {
      return registry.metrics();
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
