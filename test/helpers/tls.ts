// TLS material for tests: a self-signed certificate made with openssl.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import { serverUser } from '../harness/index.ts';

/** A self-signed certificate for the name localhost (not the IP), readable by the server user only. */
export function makeCert(dir: string, name: string): { crt: string; key: string } {
  const crt = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost', '-keyout', key, '-out', crt,
  ], { stdio: 'ignore' });
  const u = serverUser();
  for (const f of [crt, key]) {
    if (u) chownSync(f, u.uid, u.gid);
    chmodSync(f, 0o600);
  }
  return { crt, key };
}
