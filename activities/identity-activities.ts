import type { EndLockoutInput, EndLockoutResult } from '../services/identity/login-service';
import type { ActivityServices } from './create-activities';

export type { EndLockoutInput, EndLockoutResult };

export function createIdentityActivities(services: Pick<ActivityServices, 'identity'>) {
  return {
    /** Ends a lock that has run out, once (services/identity/login-service.ts). */
    endAccountLockout: (input: EndLockoutInput): Promise<EndLockoutResult> =>
      services.identity.login.endAccountLockout(input),

    async deleteExpiredSessions(input: { now: string }): Promise<{ admin: number; customer: number }> {
      return services.identity.sessions.purgeExpired(new Date(input.now));
    },
  };
}

export type IdentityActivities = ReturnType<typeof createIdentityActivities>;
