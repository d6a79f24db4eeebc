// Passwords as configured (password_file, PGPASSFILE) authenticate against a
// real server that demands SCRAM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { selectedVersions, withPrimary } from './harness/index.ts';
import { loadConfig, lookupPgpass, pgpassPath, resolvePassword, resolveReplicationPassword, type Config } from '../src/config/index.ts';

const version = selectedVersions().at(-1)!;

async function whoAmI(c: Config, password: string | undefined): Promise<string> {
  const sql = postgres({
    host: c.host, port: c.port, username: c.username, database: c.database, max: 1, connect_timeout: 5, onnotice: () => {},
    ...(password === undefined ? {} : { password }),
  });
  try {
    const [row] = await sql<{ u: string }[]>`select current_user as u`;
    return row!.u;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

test(`PG ${version}: password_file and PGPASSFILE passwords authenticate (scram-sha-256)`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgpf-secrets-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await withPrimary(version, {
    name: 'config-secrets',
    primaryConf: { password_encryption: 'scram-sha-256' },
    hba: ['host all app 127.0.0.1/32 scram-sha-256', 'local all app scram-sha-256'],
  }, async ({ primary }) => {
    // A password with the characters .pgpass has to escape.
    const password = 'p:ss\\w0rd';
    await primary.exec(`create role app login password '${password.replace(/'/g, "''")}'`);

    // password_file (a mounted secret, trailing newline), over TCP.
    const secret = join(dir, 'secret');
    writeFileSync(secret, password + '\n');
    const tcp = loadConfig({
      argv: ['--host', '127.0.0.1', '--port', String(primary.port), '--username', 'app', '--password-file', secret],
      env: { PGPASSWORD: 'stale-from-env' }, cwd: dir,
    }).config;
    assert.equal(resolvePassword(tcp, {}), password);
    assert.equal(await whoAmI(tcp, resolvePassword(tcp, {})), 'app');

    // PGPASSFILE, over the Unix socket: the socket directory is the host field.
    const escaped = password.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
    const pgpass = join(dir, 'pgpass');
    writeFileSync(pgpass, [
      '# comment line',
      `${primary.socketDir}:${primary.port}:otherdb:app:wrong`,
      `${primary.socketDir}:${primary.port}:*:app:${escaped}`,
      `*:*:replication:app:repl-secret`,
    ].join('\n') + '\n', { mode: 0o600 });
    const env = { PGPASSFILE: pgpass, PGHOST: primary.socketDir, PGPORT: String(primary.port), PGUSER: 'app' };
    const local = loadConfig({ argv: [], env, cwd: dir }).config;
    assert.equal(local.host, primary.socketDir);
    assert.equal(resolvePassword(local, env), password);
    assert.equal(await whoAmI(local, resolvePassword(local, env)), 'app');
    assert.equal(resolveReplicationPassword(local, { host: 'upstream.example', port: 5432, user: 'app' }, env), 'repl-secret');

    // Nothing matches: no password, and the server refuses.
    assert.equal(lookupPgpass({ host: '10.0.0.1', port: 5432, database: 'postgres', user: 'nobody' }, pgpassPath(env)), undefined);
    assert.equal(resolvePassword(local, {}), undefined, 'no PGPASSFILE, no ~/.pgpass entry');
    await assert.rejects(whoAmI(local, 'not-the-password'), /password authentication failed/);
  });
});
