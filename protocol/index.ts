export { canonicalJson, canonicalBytes, CanonicalJsonError } from './canonical-json';
export { createSigner, createKeySet, generateKeyFile, verifySignature, signEnvelope } from './signer';
export type { Signature, SignedEnvelope, Signer, KeySet, KeyFile, VerifyResult } from './signer';
export { writeNewKeyFile, readKeyFile, loadSigner, loadKeySet } from './key-files';
export { redactDeep, redactString, scrubFreeText, isSecretKey, REDACTED } from './redact';
export { systemClock, createFixedClock } from './clock';
export type { Clock } from './clock';
export { newId, newSecret, idSchema, ID_PREFIXES } from './ids';
export type { IdPrefix } from './ids';
export { auditHash, auditCanonicalParts, GENESIS_HASH, ACTOR_KINDS } from './audit-chain';
export type { Actor, ActorKind, Subject, AuditContent, CheckpointStatement } from './audit-chain';
export * from './schemas';
export * from './input';
export * from './fingerprint';
export * from './license';
export * from './license-terms';
export * from './agent-api';
export * from './batch-signature';
export * from './offline';
export * from './release-version';
export * from './agent-proof';
export * from './agent-credential';
export {
  KEY_PURPOSES,
  keyFilePaths,
  generatePurposeKey,
  ensureKeys,
  loadPurposeSigner,
  loadPurposeKeySet,
  readPublicKeySetFile,
  SECRET_PURPOSES,
  secretKeyFile,
  generateSecretKey,
  readSecretKeys,
  isSecretPurpose,
} from './keyring';
export type { KeyPurpose, PublicKeySetFile, SecretPurpose, SecretKey, AnyKeyPurpose } from './keyring';
export * from './audit-verify';
export * from './enums';
export * from './webhooks';
export { WEBHOOK_EVENTS, isWebhookEvent } from './audit-actions';
export type { WebhookEvent } from './audit-actions';
export * from './entitlements';
