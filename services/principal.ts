import type { Actor } from '../protocol';

/**
 * Who is calling. Services act on behalf of one of these;
 * the API resolves it from the request (api/auth/).
 */
export type Principal =
  | { kind: 'admin'; id: string; sessionId: string }
  | { kind: 'customer'; id: string; customerId: string; sessionId: string }
  | { kind: 'service'; id: string }
  | { kind: 'agent'; id: string; licenseId: string; customerId: string };

/** The operator at a shell running `agentina`: not an admin (there may be none yet), so `system`. */
export type CliCaller = { kind: 'cli' };
export const CLI_CALLER: CliCaller = { kind: 'cli' };

/** The audit actor for a principal: service accounts are `system`, never an operator. */
export function actorOf(p: Principal | CliCaller): Actor {
  switch (p.kind) {
    case 'cli':
      return { kind: 'system', id: 'cli' };
    case 'admin':
      return { kind: 'admin', id: p.id };
    case 'customer':
      return { kind: 'customer', id: p.id };
    case 'service':
      return { kind: 'system', id: p.id };
    case 'agent':
      return { kind: 'agent', id: p.id };
  }
}
