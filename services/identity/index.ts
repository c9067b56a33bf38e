import type { AppDeps } from '../../api/app';
import { createIdentityService } from './identity-service';
import { createLoginService } from './login-service';
import { createPasswordHasher } from './passwords';
import { createSessionService } from './session-service';

/** The identity services, built once from the app's dependencies and shared by its route groups. */
export function createIdentityServices(deps: Pick<AppDeps, 'pool' | 'clock' | 'temporal' | 'logger'>) {
  const sessions = createSessionService(deps);
  // One gate for every scrypt this process runs (logins, password changes, new accounts).
  const passwords = createPasswordHasher();
  return {
    sessions,
    login: createLoginService({ ...deps, sessions, passwords }),
    identity: createIdentityService({ ...deps, passwords }),
  };
}

export type IdentityServices = ReturnType<typeof createIdentityServices>;
