import type { Actor, AdminRole, ServiceScope } from '../protocol';

/**
 * Who is calling. Services act on behalf of one of these;
 * the API resolves it from the request (api/auth/).
 *
 * `role` and `scopes` are what the credential resolvers read with the credential; the API's
 * access control (api/auth/access.ts) authorizes on them and refuses an admin or service
 * principal that lacks them. Services never authorize on them.
 */
export type Principal =
  | { kind: 'admin'; id: string; sessionId: string; role?: AdminRole }
  | { kind: 'customer'; id: string; customerId: string; sessionId: string }
  | { kind: 'service'; id: string; scopes?: readonly ServiceScope[] }
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
