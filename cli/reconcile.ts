import { parseArgs } from 'node:util';
import { loadConfig } from '../config';
import type { ReconcileReport } from '../services/operations/reconcile-service';
import { withServices } from './services';

export const RECONCILE_USAGE = `Usage: agentina reconcile [--dry-run] [--json]
  Compares every license and agent row with its Temporal workflow: missing or ended, in another
  state, waiting for the wrong deadline, or grown past continue-as-new; and workflows left running
  for rows that say otherwise. Repairs each from the rows (ends the workflow, starts it again from
  the row) and audits every repair. --dry-run prints what it would repair and changes nothing.
  The worker runs it at start and on the agentina-reconcile Schedule. Exit 0 unless a repair failed.
`;

type Out = (line: string) => void;

export function describeReport(r: ReconcileReport): string[] {
  const lines = r.findings.map(
    (f) =>
      `${f.kind} ${f.id}: ${f.problem} (${f.detail})${r.dryRun ? ' - would repair' : f.repaired ? ' - repaired' : f.error ? ` - FAILED: ${f.error}` : ' - reported only'}`,
  );
  lines.push(
    `${r.dryRun ? 'dry run: ' : ''}${r.licenses} license(s) and ${r.agents} agent(s) checked in ${r.ms} ms; ${r.findings.length} out of step, ${r.repaired} repaired, ${r.failed} failed`,
  );
  return lines;
}

export async function reconcileCommand(args: string[], out: Out = console.log): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } },
    strict: true,
  });
  return withServices(loadConfig(), async (services) => {
    const report = await services.reconcile.run({ dryRun: values['dry-run'] === true });
    if (values.json) out(JSON.stringify(report));
    else for (const l of describeReport(report)) out(l);
    return report.failed > 0 ? 1 : 0;
  });
}
