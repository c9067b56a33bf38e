import type { ActivityServices } from './create-activities';

/** What the scheduled run returns to its workflow: counts only (ids stay in the audit and the log). */
export type ReconcileSummary = { licenses: number; agents: number; found: number; repaired: number; failed: number };

export function createReconcileActivities(services: Pick<ActivityServices, 'reconcile'>) {
  return {
    /** Rows ⇄ workflows, repairing from the rows (services/operations/reconcile-service.ts). */
    async reconcileLifecycles(): Promise<ReconcileSummary> {
      const r = await services.reconcile.run({ dryRun: false });
      return {
        licenses: r.licenses,
        agents: r.agents,
        found: r.findings.length,
        repaired: r.repaired,
        failed: r.failed,
      };
    },
  };
}

export type ReconcileActivities = ReturnType<typeof createReconcileActivities>;
