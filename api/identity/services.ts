import type { AppDeps } from '../app';
import { createIdentityService } from './identity-service';
import { createLoginService } from './login-service';
import { createSessionService } from './session-service';

/** The identity services, built once from the app's dependencies and shared by its route groups. */
export function createIdentityServices(deps: Pick<AppDeps, 'pool' | 'clock' | 'temporal' | 'logger'>) {
  const sessions = createSessionService(deps);
  return {
    sessions,
    login: createLoginService({ ...deps, sessions }),
    identity: createIdentityService(deps),
  };
}

export type IdentityServices = ReturnType<typeof createIdentityServices>;
