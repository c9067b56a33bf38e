import type { WebhookEndpointRow } from '../../db/webhooks-repo';
import type { SecretKey } from '../../protocol';
import { createSealer } from '../sealed-values';

/** An endpoint's signing secrets: sealed at rest (bound to the endpoint's id), opened only to sign. */
export function createWebhookSecrets(keys: () => SecretKey[]) {
  const box = createSealer(keys, 'webhook signing secret');
  const sealSecret = (endpointId: string, secret: string) => box.seal(`webhook\n${endpointId}`, secret);
  const openSecret = (endpointId: string, sealed: string) => box.open(`webhook\n${endpointId}`, sealed);

  /** The secrets that sign at `now`: the current one, and the one before a rotation during its overlap. */
  function signingSecrets(endpoint: WebhookEndpointRow, now: Date): string[] {
    const secrets = [openSecret(endpoint.id, endpoint.secret_sealed)];
    if (
      endpoint.previous_secret_sealed &&
      endpoint.previous_secret_expires_at &&
      endpoint.previous_secret_expires_at > now
    )
      secrets.push(openSecret(endpoint.id, endpoint.previous_secret_sealed));
    return secrets;
  }

  return { sealSecret, signingSecrets };
}
