// Connection strings, environment defaults, pgpass and redaction (no server needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Framer } from '../src/replication/framer.ts';
import { lookupPgpass } from '../src/pgpass.ts';
import { parseConninfo, resolveConnOptions, redactConninfo, ReplicationError, classifyServerError, parseLsn, formatLsn } from '../src/replication/index.ts';

test('parseConninfo: key=value with spaces, quotes and escapes', () => {
  const o = parseConninfo(`host=db1.example port = 6543 user='repl user' password='it\\'s \\\\ secret' dbname=x application_name=pf sslmode=verify-full sslrootcert=/r.crt connect_timeout=5 replication=true keepalives=1`);
  assert.deepEqual(o, {
    host: 'db1.example',
    port: 6543,
    user: 'repl user',
    password: "it's \\ secret",
    dbname: 'x',
    applicationName: 'pf',
    sslmode: 'verify-full',
    sslrootcert: '/r.crt',
    connectTimeoutMs: 5000,
  });
  assert.deepEqual(parseConninfo(''), {});
  assert.equal(parseConninfo('host=a,b port=1,2').host, 'a');
  assert.equal(parseConninfo('connect_timeout=1').connectTimeoutMs, 2000, 'libpq raises timeouts below 2 s');
});

test('parseConninfo: postgres:// URIs', () => {
  assert.deepEqual(parseConninfo('postgresql://rep%40l:p%3Ass@[::1]:5433/db?sslmode=require&application_name=a+b'), {
    user: 'rep@l',
    password: 'p:ss',
    host: '::1',
    port: 5433,
    dbname: 'db',
    sslmode: 'require',
    applicationName: 'a b',
  });
  assert.deepEqual(parseConninfo('postgres://%2Fvar%2Frun%2Fpostgresql:5432'), { host: '/var/run/postgresql', port: 5432 });
  assert.deepEqual(parseConninfo('postgres://h/?host=%2Ftmp'), { host: '/tmp' });
});

test('parseConninfo: bad values name the key and never echo a password', () => {
  assert.throws(() => parseConninfo('port=abc'), /invalid value "abc" for "port"/);
  assert.throws(() => parseConninfo('port=70000'), /"port"/);
  assert.throws(() => parseConninfo('sslmode=maybe'), /"sslmode".*verify-full/);
  assert.throws(() => parseConninfo('connect_timeout=soon'), /"connect_timeout"/);
  assert.throws(() => parseConninfo("password='open"), (e: Error) => /unterminated/.test(e.message) && !/open/.test(e.message));
  assert.throws(() => parseConninfo('host'), /missing "=" after "host"/);
});

test('resolveConnOptions: defaults, environment and pgpass', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-pgpass-'));
  try {
    const pass = join(dir, 'pgpass');
    writeFileSync(pass, ['# comment', 'other:*:*:*:nope', 'db1:5432:replication:rep:s\\:cret', '*:*:*:fallback:fb', 'localhost:6000:*:sock:unix'].join('\n'));
    chmodSync(pass, 0o600);
    const o = resolveConnOptions({ host: 'db1', user: 'rep' }, { PGPASSFILE: pass });
    assert.equal(o.password, 's:cret');
    assert.equal(o.port, 5432);
    assert.equal(o.applicationName, 'pg_prefaulter');
    assert.equal(o.sslmode, 'prefer');
    assert.equal(o.connectTimeoutMs, 10000);
    assert.equal(lookupPgpass({ host: 'zzz', port: 1, database: 'replication', user: 'fallback' }, pass), 'fb');
    assert.equal(lookupPgpass({ host: '/run/postgresql', port: 6000, database: 'replication', user: 'sock' }, pass), 'unix', 'the default socket directory matches "localhost", as in libpq');
    assert.equal(lookupPgpass({ host: '/run/pg', port: 6000, database: 'replication', user: 'sock' }, pass), undefined, 'another socket directory does not');
    // explicit values win over the environment, environment over defaults
    const env = { PGHOST: 'envhost', PGPORT: '6000', PGUSER: 'envuser', PGPASSWORD: 'envpw', PGSSLMODE: 'require', PGAPPNAME: 'envapp', PGSSLROOTCERT: '/e.crt' };
    const e = resolveConnOptions({ user: 'me' }, env);
    assert.deepEqual(
      { host: e.host, port: e.port, user: e.user, password: e.password, sslmode: e.sslmode, app: e.applicationName, root: e.sslrootcert },
      { host: 'envhost', port: 6000, user: 'me', password: 'envpw', sslmode: 'require', app: 'envapp', root: '/e.crt' },
    );
    assert.throws(() => resolveConnOptions({}, { PGPORT: 'x' }), /PGPORT/);
    // a pgpass others can read is ignored, as libpq does
    chmodSync(pass, 0o644);
    assert.equal(resolveConnOptions({ host: 'db1', user: 'rep' }, { PGPASSFILE: pass }).password, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('redactConninfo hides passwords in both syntaxes', () => {
  assert.equal(redactConninfo("host=a password='x y\\' z' user=b"), 'host=a password=*** user=b');
  assert.equal(redactConninfo('password=abc host=a'), 'password=*** host=a');
  assert.equal(redactConninfo('postgres://u:secret@h:5/db?password=two&sslmode=require'), 'postgres://u:***@h:5/db?password=***&sslmode=require');
  assert.equal(redactConninfo('postgres://u@h/db'), 'postgres://u@h/db');
});

test('classifyServerError maps SQLSTATEs and texts to codes with advice', () => {
  const ctx = { user: 'rep', target: 'h:5432', tls: false };
  const c = (code: string, message: string): ReplicationError => classifyServerError({ code, message }, ctx);
  assert.equal(c('58P01', 'requested WAL segment 000000010000000000000001 has already been removed').code, 'WAL_REMOVED');
  assert.equal(c('XX000', 'requested WAL segment 000000010000000000000001 has already been removed').code, 'WAL_REMOVED');
  assert.equal(c('28P01', 'password authentication failed for user "rep"').code, 'AUTH_FAILED');
  assert.equal(c('28000', 'must be superuser or replication role to start walsender').code, 'NOT_REPLICATION_ROLE');
  assert.equal(c('42501', 'permission denied to start WAL sender').code, 'NOT_REPLICATION_ROLE');
  const senders = c('53300', 'number of requested standby connections exceeds max_wal_senders (currently 1)');
  assert.equal(senders.code, 'TOO_MANY_WALSENDERS');
  assert.equal(senders.retryable, true);
  assert.equal(c('53300', 'sorry, too many clients already').code, 'SERVER_ERROR');
  assert.equal(c('55000', 'recovery is in progress').code, 'PRIMARY_IN_RECOVERY');
  assert.equal(c('57P01', 'terminating connection due to administrator command').code, 'CLOSED');
  const other = c('XX000', 'something odd');
  assert.equal(other.code, 'SERVER_ERROR');
  assert.equal(other.sqlstate, 'XX000');
  assert.match(other.message, /^server h:5432: something odd: /);
});

test('LSN text form round-trips', () => {
  assert.equal(parseLsn('16/B374D848'), 0x16b374d848n);
  assert.equal(formatLsn(0x16b374d848n), '16/B374D848');
  assert.equal(formatLsn(0n), '0/0');
  assert.throws(() => parseLsn('16-B3'), /invalid LSN/);
});

test('Framer returns whole protocol messages however the bytes are split', () => {
  const msg = (code: string, body: Buffer): Buffer => {
    const b = Buffer.alloc(5 + body.length);
    b[0] = code.charCodeAt(0);
    b.writeUInt32BE(4 + body.length, 1);
    body.copy(b, 5);
    return b;
  };
  const frames = [msg('d', Buffer.alloc(0)), msg('d', Buffer.from('walwalwal')), msg('Z', Buffer.from('I')), msg('d', Buffer.alloc(70_000, 7)), msg('c', Buffer.alloc(0))];
  const wire = Buffer.concat(frames);
  for (const size of [1, 2, 3, 4, 5, 6, 7, 13, 4096, 65536, wire.length]) {
    const f = new Framer();
    const got: Buffer[] = [];
    for (let i = 0; i < wire.length; i += size) {
      f.push(wire.subarray(i, i + size));
      for (let m = f.next(); m; m = f.next()) got.push(Buffer.from(m));
    }
    assert.equal(f.pendingBytes, 0, `chunk size ${size}`);
    assert.deepEqual(got, frames, `chunk size ${size}`);
  }
  // a message inside one chunk is a view of it, not a copy
  const f = new Framer();
  f.push(wire);
  const first = f.next()!;
  assert.equal(first.buffer, wire.buffer);
  const bad = new Framer();
  bad.push(Buffer.from([0x64, 0xff, 0xff, 0xff, 0xff]));
  assert.throws(() => bad.next(), /message length .* is invalid/);
});
