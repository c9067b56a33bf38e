/**
 * Every workflow the Agentina worker runs, bundled once by the worker. Deterministic code only:
 * the lint bans Node built-ins, I/O clients and imports from activities/, db/ and api/.
 */
export * from './license-lifecycle';
export * from './account-lockout';
export * from './audit-checkpoint';
export * from './agent-quarantine';
export * from './agent-offline-sweep';
export * from './reconcile';
export * from './release-metadata-refresh';
export * from './webhook-delivery';
export * from './agent-seat-reclaim';
