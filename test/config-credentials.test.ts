// Which password each connection gets (src/credentials.ts, README
// "Credentials"), from real files as libpq reads them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { followerPassword, upstreamPassword } from '../src/credentials.ts';
import { resolveConnOptions } from '../src/replication/conninfo.ts';

test('the upstream never gets the follower password; replication keys, conninfo password, passfile=, PGPASSFILE in that order', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgpf-cred-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const patroniPass = join(dir, 'patroni-pgpass');
  writeFileSync(patroniPass, 'db1:5432:replication:replicator:from-passfile\n', { mode: 0o600 });
  const envPass = join(dir, 'env-pgpass');
  writeFileSync(envPass, '*:*:replication:replicator:from-PGPASSFILE\n*:*:postgres:monitor:follower-from-PGPASSFILE\n', { mode: 0o600 });
  const secret = join(dir, 'secret');
  writeFileSync(secret, 'from-secret-file\n');
  const env = { PGPASSWORD: 'follower-password', PGPASSFILE: envPass };
  const none = { replicationPassword: '', replicationPasswordFile: '' };
  const target = { host: 'db1', port: 5432, user: 'replicator' };

  assert.equal(upstreamPassword(none, { ...target, passfile: patroniPass }, env), 'from-passfile', 'passfile= beats PGPASSWORD and PGPASSFILE');
  assert.equal(upstreamPassword(none, target, env), 'from-PGPASSFILE', 'no passfile=: PGPASSFILE, never PGPASSWORD');
  assert.equal(upstreamPassword(none, target, { PGPASSWORD: 'follower-password', HOME: dir }), undefined, 'nothing for the upstream: no password, not the follower one');
  assert.equal(upstreamPassword(none, { ...target, password: 'inline', passfile: patroniPass }, env), 'inline', 'password= in the conninfo beats its passfile=');
  assert.equal(upstreamPassword({ ...none, replicationPasswordFile: secret }, { ...target, password: 'inline' }, env), 'from-secret-file');
  assert.equal(upstreamPassword({ replicationPassword: 'configured', replicationPasswordFile: secret }, target, env), 'configured');

  const follower = { host: '/run/postgresql', port: 5432, database: 'postgres', username: 'monitor', password: '', passwordFile: '' };
  assert.equal(followerPassword({ ...follower, password: 'follower-password' }, env), 'follower-password');
  assert.equal(followerPassword({ ...follower, passwordFile: secret }, env), 'from-secret-file');
  assert.equal(followerPassword(follower, env), 'follower-from-PGPASSFILE');

  // The bare libpq resolution (tests, tools) keeps libpq's order; the agent's mode leaves the password to it.
  assert.equal(resolveConnOptions({ host: 'db1', user: 'replicator' }, env).password, 'follower-password');
  assert.equal(resolveConnOptions({ host: 'db1', user: 'replicator', passfile: patroniPass }, {}).password, 'from-passfile');
  assert.equal(resolveConnOptions({ host: 'db1', user: 'replicator' }, env, 'given').password, undefined);
});
