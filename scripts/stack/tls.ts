import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export type DevTls = { dir: string; caFile: string; certFile: string; keyFile: string; created: boolean };

const SERVER_DAYS = 397;

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** True when the certificate still has more than a week to run. */
function stillValid(certFile: string): boolean {
  try {
    openssl(['x509', '-in', certFile, '-noout', '-checkend', String(7 * 86400)]);
    return true;
  } catch {
    return false;
  }
}

/**
 * A local development CA and a server certificate it signed for localhost/127.0.0.1/::1 (plus
 * `host` when it is another name or address), made with the system openssl in `<dataDir>/tls`.
 * The agent demands HTTPS and pins a CA, so `npm start` serves HTTPS with these by default; the
 * CA's private key stays in that directory (0600) and signs nothing else. Reused across starts;
 * the server certificate is renewed when it has less than a week left.
 */
export function ensureDevTls(dataDir: string, host: string): DevTls {
  const dir = path.join(dataDir, 'tls');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const f = (name: string) => path.join(dir, name);
  const caFile = f('ca.pem');
  const caKey = f('ca-key.pem');
  const certFile = f('server.pem');
  const keyFile = f('server-key.pem');
  let created = false;
  if (!existsSync(caFile) || !existsSync(caKey) || !stillValid(caFile)) {
    rmSync(certFile, { force: true });
    openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '3650',
      '-keyout',
      caKey,
      '-out',
      caFile,
      '-subj',
      '/CN=Agentina local development CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE,pathlen:0',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    chmodSync(caKey, 0o600);
    created = true;
  }
  if (!existsSync(certFile) || !existsSync(keyFile) || !stillValid(certFile)) {
    const names = new Set(['DNS:localhost', 'IP:127.0.0.1', 'IP:::1']);
    if (host !== '0.0.0.0' && host !== '::') names.add(/^[\d.]+$|:/.test(host) ? `IP:${host}` : `DNS:${host}`);
    const csr = f('server.csr');
    const ext = f('server.ext');
    openssl([
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      csr,
      '-subj',
      '/CN=localhost',
    ]);
    chmodSync(keyFile, 0o600);
    writeFileSync(
      ext,
      `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${[...names].join(',')}\n`,
    );
    openssl([
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      caFile,
      '-CAkey',
      caKey,
      '-CAcreateserial',
      '-days',
      String(SERVER_DAYS),
      '-extfile',
      ext,
      '-out',
      certFile,
    ]);
    rmSync(csr, { force: true });
    rmSync(ext, { force: true });
    created = true;
  }
  // The agent runs as another user and reads the CA certificate (public) from here.
  chmodSync(dir, 0o755);
  chmodSync(caFile, 0o644);
  return { dir, caFile, certFile, keyFile, created };
}
