import { execFileSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import path from 'node:path';
import type { SignedStatus } from '../../protocol';
import { testEnv } from './env';

/**
 * Which of `answers` an independent verifier accepts (test/support/python/batch_signature_interop.py:
 * RFC 9162 paths, RFC 8785 JSON and RFC 8032 Ed25519 in Python, none of Agentina's code).
 */
export function pythonVerifiesStatuses(publicKeyPem: string, answers: SignedStatus[]): boolean[] {
  // The raw key is the last 32 bytes of the SubjectPublicKeyInfo.
  const der = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
  const out = execFileSync('python3', [path.join(__dirname, 'python', 'batch_signature_interop.py')], {
    input: JSON.stringify({ publicKey: der.subarray(der.length - 32).toString('hex'), answers }),
    env: { ...process.env, PYTHONPATH: testEnv('AGENTINA_TEST_PYTHON_TUF') },
    timeout: 60_000,
    encoding: 'utf8',
  });
  return (JSON.parse(out.trim().split('\n').pop()!) as { valid: boolean[] }).valid;
}
