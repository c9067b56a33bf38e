/** A small Prometheus text-format registry: counters and gauges, no external dependency. */
export type Labels = Record<string, string>;

export function createMetrics() {
  const counters = new Map<string, { help: string; values: Map<string, number> }>();
  const gauges = new Map<string, { help: string; read: () => number }>();

  const key = (labels: Labels) =>
    Object.keys(labels)
      .sort()
      .map((k) => `${k}="${String(labels[k]).replace(/["\\\n]/g, '_')}"`)
      .join(',');

  return {
    inc(name: string, help: string, labels: Labels = {}, by = 1): void {
      let c = counters.get(name);
      if (!c) counters.set(name, (c = { help, values: new Map() }));
      const k = key(labels);
      c.values.set(k, (c.values.get(k) ?? 0) + by);
    },
    gauge(name: string, help: string, read: () => number): void {
      gauges.set(name, { help, read });
    },
    render(): string {
      const out: string[] = [];
      for (const [name, c] of counters) {
        out.push(`# HELP ${name} ${c.help}`, `# TYPE ${name} counter`);
        for (const [k, v] of c.values) out.push(`${name}${k ? `{${k}}` : ''} ${v}`);
      }
      for (const [name, g] of gauges) {
        out.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`, `${name} ${g.read()}`);
      }
      return `${out.join('\n')}\n`;
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
