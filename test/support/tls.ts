import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A throw-away self-signed certificate for 127.0.0.1/localhost, made with the system openssl. */
export function makeSelfSignedCert(): { certFile: string; keyFile: string; dir: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'agentina-tls-'));
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  return { certFile, keyFile, dir };
}

/**
 * A throw-away CA with a server certificate for 127.0.0.1/localhost and a client certificate,
 * all signed by it (mTLS), made with the system openssl. Keys are 0600.
 */
export function makeTestCa(): {
  dir: string;
  caFile: string;
  server: { certFile: string; keyFile: string };
  client: { certFile: string; keyFile: string };
} {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'agentina-ca-'));
  const f = (name: string) => path.join(dir, name);
  const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl([
    'req',
    '-x509',
    ...ec,
    '-days',
    '2',
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.pem'),
    '-subj',
    '/CN=Agentina test CA',
  ]);
  for (const [name, ext] of [
    ['server', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth'],
    ['client', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    openssl(['req', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=agentina-${name}`]);
    writeFileSync(f(`${name}.ext`), `${ext}\n`);
    openssl([
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      f(`${name}.ext`),
      '-out',
      f(`${name}.pem`),
    ]);
  }
  return {
    dir,
    caFile: f('ca.pem'),
    server: { certFile: f('server.pem'), keyFile: f('server.key') },
    client: { certFile: f('client.pem'), keyFile: f('client.key') },
  };
}
