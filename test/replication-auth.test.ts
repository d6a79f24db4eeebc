// Authentication and TLS against a real server: SCRAM, md5, cleartext, trust
// over a unix socket, sslmode semantics, and error messages without passwords.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectedVersions, withPrimary, serverUser, type PgServer } from './harness/index.ts';
import { ReplicationConnection, ReplicationError, parseConninfo, resolveConnOptions, type ConnOptions } from '../src/replication/index.ts';
import { makeCert } from './helpers/tls.ts';

const versions = selectedVersions();
const last = versions[versions.length - 1]!;

function opts(server: PgServer, conninfo: string): ConnOptions {
  return resolveConnOptions(parseConninfo(`host=127.0.0.1 port=${server.port} ${conninfo}`), {});
}

async function connectOk(server: PgServer, conninfo: string): Promise<ReplicationConnection> {
  const conn = await ReplicationConnection.connect(opts(server, conninfo));
  const sys = await conn.identifySystem();
  assert.equal(sys.timeline, 1);
  return conn;
}

async function connectErr(server: PgServer, conninfo: string): Promise<ReplicationError> {
  try {
    const c = await ReplicationConnection.connect(opts(server, conninfo));
    await c.close();
  } catch (e) {
    assert.ok(e instanceof ReplicationError, `expected ReplicationError, got ${String(e)}`);
    return e;
  }
  assert.fail(`connecting with "${conninfo.replace(/password=\S+/, 'password=***')}" should have failed`);
}

/** WAL [start, end) as streamed over one connection; pauses midway when asked. */
async function streamRange(server: PgServer, conninfo: string, start: bigint, end: bigint, pauseOnce: boolean): Promise<Buffer> {
  const conn = await ReplicationConnection.connect(opts(server, conninfo));
  try {
    assert.equal(conn.tls, conninfo.includes('sslmode=require'));
    const stream = conn.startReplication({ startLsn: start, timeline: 1, maxBufferedBytes: 64 * 1024 });
    const parts: Buffer[] = [];
    let next = start;
    const it = stream[Symbol.asyncIterator]();
    while (next < end) {
      const m = await it.next();
      assert.equal(m.done, false);
      if (m.value.type !== 'xlogdata') assert.fail('unexpected end of timeline');
      assert.equal(m.value.walStart, next);
      parts.push(Buffer.from(m.value.data));
      next += BigInt(m.value.data.length);
      if (pauseOnce && parts.length === 3) {
        stream.pause();
        await new Promise((r) => setTimeout(r, 300));
        stream.resume();
      }
    }
    await stream.close();
    return Buffer.concat(parts).subarray(0, Number(end - start));
  } finally {
    await conn.close();
  }
}

test(`PG ${last}: SCRAM, md5, cleartext, trust and TLS authenticate; failures are typed and never show the password`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pg-prefaulter-tls-'));
  chmodSync(dir, 0o755);
  try {
    const server = makeCert(dir, 'server');
    const other = makeCert(dir, 'other');
    const hba = [
      'host replication scram_user 127.0.0.1/32 scram-sha-256',
      'host replication md5_user 127.0.0.1/32 md5',
      'host replication pw_user 127.0.0.1/32 password',
      'hostssl replication tls_user 127.0.0.1/32 scram-sha-256',
      'hostnossl replication tls_user 127.0.0.1/32 reject',
      'host replication blocked_user 127.0.0.1/32 reject',
    ];
    const conf = { ssl: 'on', ssl_cert_file: server.crt, ssl_key_file: server.key };
    await withPrimary(last, { name: 'repl-auth', hba, primaryConf: conf }, async ({ primary }) => {
      await primary.exec(`set password_encryption = 'scram-sha-256';
        create role scram_user login replication password 'Scr4m-s3cret';
        create role pw_user login replication password 'cl3ar-s3cret';
        create role tls_user login replication password 'Tls-s3cret';
        create role blocked_user login replication;
        set password_encryption = 'md5';
        create role md5_user login replication password 'Md5-s3cret';`);

      // SCRAM-SHA-256 (the server offers SCRAM-SHA-256-PLUS too when TLS is on)
      for (const sslmode of ['disable', 'prefer']) {
        const c = await connectOk(primary, `user=scram_user password=Scr4m-s3cret sslmode=${sslmode}`);
        assert.equal(c.tls, sslmode === 'prefer');
        await c.close();
      }
      const md5 = await connectOk(primary, 'user=md5_user password=Md5-s3cret sslmode=disable');
      await md5.close();
      const clear = await connectOk(primary, 'user=pw_user password=cl3ar-s3cret sslmode=disable');
      await clear.close();
      // trust over the unix socket (TLS does not apply there)
      const unix = await ReplicationConnection.connect(resolveConnOptions({ host: primary.socketDir, port: primary.port, user: 'postgres', sslmode: 'require' }, {}));
      assert.equal(unix.tls, false);
      assert.equal((await unix.identifySystem()).timeline, 1);
      await unix.close();

      // wrong passwords: AUTH_FAILED, the password appears nowhere
      for (const user of ['scram_user', 'md5_user', 'pw_user']) {
        const e = await connectErr(primary, `user=${user} password=WrongPassw0rd sslmode=disable`);
        assert.equal(e.code, 'AUTH_FAILED', e.message);
        assert.equal(e.sqlstate, '28P01');
        assert.equal(e.retryable, false);
        assert.match(e.message, new RegExp(`password for user "${user}"`));
        assert.ok(!/WrongPassw0rd/.test(`${e.message} ${e.stack} ${JSON.stringify(e)}`), 'no password in the error');
      }
      const none = await connectErr(primary, 'user=scram_user sslmode=disable');
      assert.equal(none.code, 'AUTH_FAILED');
      assert.match(none.message, /none is set.*PGPASSWORD/);

      // TLS: require and verify-ca by address, verify-full by the certificate's host name
      for (const mode of ['require', 'verify-ca', 'verify-full host=localhost']) {
        const c = await connectOk(primary, `user=tls_user password=Tls-s3cret sslmode=${mode} sslrootcert=${server.crt}`);
        assert.equal(c.tls, true, mode);
        await c.close();
      }
      // verify-full checks the host name: 127.0.0.1 is not in the certificate
      const mismatch = await connectErr(primary, `user=tls_user password=Tls-s3cret sslmode=verify-full sslrootcert=${server.crt}`);
      assert.equal(mismatch.code, 'TLS_FAILED', mismatch.message);
      assert.match(mismatch.message, /127\.0\.0\.1/);
      // streaming over TLS (records split over many TLS reads, with a pause) gives the bytes a plain connection gives
      const probe = await connectOk(primary, 'user=postgres sslmode=disable');
      const sys = await probe.identifySystem();
      await probe.close();
      const start = sys.xlogpos - (sys.xlogpos % 8192n);
      await primary.exec(`create table big(id int, pad text); insert into big select g, md5(g::text) from generate_series(1, 30000) g`);
      const end = BigInt(await primary.scalar<string>(`select (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::text`));
      const viaTls = await streamRange(primary, `user=tls_user password=Tls-s3cret sslmode=require`, start, end, true);
      const viaPlain = await streamRange(primary, 'user=postgres sslmode=disable', start, end, false);
      assert.ok(viaTls.length > 1024 * 1024);
      assert.ok(viaTls.equals(viaPlain), 'TLS and plain streams carry the same WAL');

      // hostssl only: a plain connection is told to use TLS
      const plain = await connectErr(primary, 'user=tls_user password=Tls-s3cret sslmode=disable');
      assert.equal(plain.code, 'TLS_REQUIRED', plain.message);
      assert.match(plain.message, /sslmode=require/);
      // rejected with and without TLS: not a TLS problem
      const blocked = await connectErr(primary, 'user=blocked_user sslmode=disable');
      assert.equal(blocked.code, 'AUTH_FAILED', blocked.message);
      assert.match(blocked.message, /pg_hba\.conf rejects/);
      // sslmode=allow retries with TLS and gets in
      const allow = await connectOk(primary, 'user=tls_user password=Tls-s3cret sslmode=allow');
      assert.equal(allow.tls, true);
      await allow.close();
      // a certificate not signed by the given root fails verification
      const wrongCa = await connectErr(primary, `user=tls_user password=Tls-s3cret sslmode=verify-ca sslrootcert=${other.crt}`);
      assert.equal(wrongCa.code, 'TLS_FAILED', wrongCa.message);
      assert.ok(!/Tls-s3cret/.test(wrongCa.message));
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`PG ${last}: sslmode=require fails when the server has no TLS`, async () => {
  await withPrimary(last, { name: 'repl-nossl' }, async ({ primary }) => {
    const e = await connectErr(primary, 'user=postgres sslmode=require');
    assert.equal(e.code, 'TLS_FAILED');
    assert.match(e.message, /does not support SSL/);
    // prefer falls back to plain
    const c = await connectOk(primary, 'user=postgres sslmode=prefer');
    assert.equal(c.tls, false);
    await c.close();
  });
});

test(`PG ${last}: client certificate authentication (hostssl ... cert)`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pg-prefaulter-cert-'));
  chmodSync(dir, 0o755);
  const ssl = (args: string[]): void => void execFileSync('openssl', args, { stdio: 'ignore', cwd: dir });
  try {
    ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=test-ca', '-keyout', 'ca.key', '-out', 'ca.crt']);
    for (const [name, cn] of [['server', 'localhost'], ['client', 'cert_user']] as const) {
      ssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${name}.key`, '-out', `${name}.csr`]);
      writeFileSync(join(dir, `${name}.ext`), name === 'server' ? 'subjectAltName=DNS:localhost\n' : 'extendedKeyUsage=clientAuth\n');
      ssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`]);
    }
    const u = serverUser();
    for (const f of ['server.crt', 'server.key', 'ca.crt']) {
      if (u) chownSync(join(dir, f), u.uid, u.gid);
      chmodSync(join(dir, f), 0o600);
    }
    const conf = { ssl: 'on', ssl_cert_file: join(dir, 'server.crt'), ssl_key_file: join(dir, 'server.key'), ssl_ca_file: join(dir, 'ca.crt') };
    await withPrimary(last, { name: 'repl-cert', hba: ['hostssl replication cert_user 127.0.0.1/32 cert'], primaryConf: conf }, async ({ primary }) => {
      await primary.exec('create role cert_user login replication');
      const certs = `sslrootcert=${join(dir, 'ca.crt')} sslcert=${join(dir, 'client.crt')} sslkey=${join(dir, 'client.key')}`;
      const c = await connectOk(primary, `user=cert_user sslmode=verify-full host=localhost ${certs}`);
      assert.equal(c.tls, true);
      await c.close();
      // without the client certificate the server refuses
      const e = await connectErr(primary, `user=cert_user sslmode=verify-ca sslrootcert=${join(dir, 'ca.crt')} sslcert=/nonexistent sslkey=/nonexistent`);
      assert.equal(e.code, 'AUTH_FAILED', e.message);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
