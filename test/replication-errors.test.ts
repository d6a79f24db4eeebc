// Server-side refusals map to typed errors with advice, on every version
// (the texts and SQLSTATEs differ between releases).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { selectedVersions, withPrimary, sleep, type PgServer } from './harness/index.ts';
import { until } from './helpers/until.ts';
import { ReplicationConnection, ReplicationError, parseConninfo, resolveConnOptions, parseLsn, type ReplicationStream } from '../src/replication/index.ts';

const versions = selectedVersions();
const last = versions[versions.length - 1]!;

function connect(server: PgServer, conninfo = '', extra: Partial<{ readTimeoutMs: number }> = {}): Promise<ReplicationConnection> {
  return ReplicationConnection.connect({ ...resolveConnOptions(parseConninfo(server.conninfo({ sslmode: 'disable' }) + ' ' + conninfo), {}), ...extra });
}

async function expectError(p: Promise<unknown>): Promise<ReplicationError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ReplicationError, `expected ReplicationError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a ReplicationError');
}

async function drain(stream: ReplicationStream): Promise<void> {
  for await (const _ of stream) {
    // errors surface as a throw from the iterator
  }
}

for (const version of versions) {
  test(`PG ${version}: NOT_REPLICATION_ROLE, TOO_MANY_WALSENDERS, WAL_REMOVED`, async () => {
    const conf = { max_wal_senders: 1, wal_keep_size: 0, max_wal_size: '32MB', min_wal_size: '32MB' };
    await withPrimary(version, { name: 'repl-errors', primaryConf: conf }, async ({ primary }) => {
      await primary.exec('create role plain_user login');
      const norepl = await expectError(connect(primary, 'user=plain_user'));
      assert.equal(norepl.code, 'NOT_REPLICATION_ROLE', norepl.message);
      assert.match(norepl.message, /ALTER ROLE "plain_user" REPLICATION/);
      assert.equal(norepl.retryable, false);

      // The refused backend gives its walsender slot back as it exits, a few ms
      // after the error reached us: until then the one slot is still taken.
      let holder: ReplicationConnection | undefined;
      await until('the refused backend to release the only walsender slot', async () => {
        try {
          holder = await connect(primary);
          return true;
        } catch (e) {
          if (e instanceof ReplicationError && e.code === 'TOO_MANY_WALSENDERS') return false;
          throw e;
        }
      });
      assert.ok(holder);
      // the only walsender is busy
      try {
        const busy = await expectError(connect(primary));
        assert.equal(busy.code, 'TOO_MANY_WALSENDERS', busy.message);
        assert.equal(busy.sqlstate, '53300');
        assert.equal(busy.retryable, true);
        assert.match(busy.message, /raise max_wal_senders/);

        // old WAL recycled away: segment 1 is gone
        for (let i = 0; i < 4; i++) {
          await primary.exec('create table if not exists w(x int); insert into w select generate_series(1, 1000)');
          await primary.switchWal();
        }
        await primary.exec('checkpoint');
        await primary.switchWal();
        await primary.exec('checkpoint');
        const sys = await holder.identifySystem();
        const stream = holder.startReplication({ startLsn: parseLsn('0/1000000'), timeline: sys.timeline });
        const removed = await expectError(drain(stream));
        assert.equal(removed.code, 'WAL_REMOVED', removed.message);
        assert.match(removed.message, /000000010000000000000001/);
        assert.match(removed.message, /wal_keep_size|replication slot/);
        // the walsender stays usable after the error
        const again = await holder.identifySystem();
        assert.equal(again.systemId, sys.systemId);
      } finally {
        await holder.close();
      }
    });
  });
}

const READ_TIMEOUT_MS = 2500;

test(`PG ${last}: a stalled walsender fails the stream with TIMEOUT; an idle one does not`, async () => {
  await withPrimary(last, { name: 'repl-timeout' }, async ({ primary }) => {
    const conn = await connect(primary, 'application_name=prefaulter_stall', { readTimeoutMs: READ_TIMEOUT_MS });
    try {
      const sys = await conn.identifySystem();
      const stream = conn.startReplication({ startLsn: sys.xlogpos, timeline: sys.timeline });
      const seen: { failure: unknown } = { failure: null };
      const reading = drain(stream).catch((e) => (seen.failure = e));
      const failureNow = (): unknown => seen.failure; // a call, so assertions do not narrow it for good
      // Idle: our status updates keep the walsender from sending keepalives, so
      // what arrives are the replies to our liveness probes (one per half read
      // timeout of silence). Four of them span more than two read timeouts.
      let received = 0;
      let last = conn.lastReceiveAt;
      await until('four receptions on the idle stream', () => {
        if (conn.lastReceiveAt !== last) [last, received] = [conn.lastReceiveAt, received + 1];
        return received >= 4 || failureNow() !== null;
      }, 30_000);
      assert.equal(failureNow(), null, 'the idle stream must not fail');
      // Pausing longer than the read timeout is the consumer's choice, not silence
      // (here the length of the pause is what is tested, not a guess at a delay).
      stream.pause();
      await sleep(READ_TIMEOUT_MS * 1.6);
      stream.resume();
      const resumedAt = conn.lastReceiveAt; // resume restarts the silence clock
      await until('a probe answered after the resume', () => conn.lastReceiveAt > resumedAt || failureNow() !== null, 30_000);
      assert.equal(failureNow(), null, 'a paused stream must not time out');
      const pid = await primary.scalar<number>(`select pid from pg_stat_replication where application_name = 'prefaulter_stall'`);
      process.kill(pid, 'SIGSTOP');
      try {
        await reading;
        const failure = failureNow();
        assert.ok(failure instanceof ReplicationError, String(failure));
        assert.equal(failure.code, 'TIMEOUT');
        assert.equal(failure.retryable, true);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
    } finally {
      await conn.close();
    }
  });
});

test(`PG ${last}: connection failures are CONNECT_FAILED`, async () => {
  await withPrimary(last, { name: 'repl-connfail' }, async ({ primary }) => {
    const port = primary.port;
    await primary.stop('fast');
    const e = await expectError(ReplicationConnection.connect(resolveConnOptions({ host: '127.0.0.1', port, user: 'postgres', sslmode: 'disable' }, {})));
    assert.equal(e.code, 'CONNECT_FAILED');
    assert.equal(e.retryable, true);
    assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
  });
});

test(`PG ${last}: a terminated walsender ends the iteration with CLOSED`, async () => {
  await withPrimary(last, { name: 'repl-term' }, async ({ primary }) => {
    const conn = await connect(primary, 'application_name=prefaulter_term');
    try {
      const sys = await conn.identifySystem();
      const stream = conn.startReplication({ startLsn: sys.xlogpos, timeline: sys.timeline });
      const reading = expectError(drain(stream));
      await until('the walsender in pg_stat_replication', async () =>
        (await primary.scalar<number>(`select count(*)::int from pg_stat_replication where application_name = 'prefaulter_term'`)) === 1);
      const killed = await primary.scalar<boolean>(`select pg_terminate_backend(pid) from pg_stat_replication where application_name = 'prefaulter_term'`);
      assert.equal(killed, true);
      const e = await reading;
      assert.equal(e.code, 'CLOSED', e.message);
      assert.equal(e.retryable, true);
      await assert.rejects(conn.identifySystem(), (x: unknown) => x instanceof ReplicationError && x.code === 'CLOSED');
    } finally {
      await conn.close();
    }
  });
});

test('a server that accepts but never answers fails the connect with TIMEOUT', async () => {
  const sockets: Socket[] = [];
  let closedByClient = 0;
  const server = createServer((s) => {
    sockets.push(s);
    s.on('error', () => {});
    s.on('close', () => closedByClient++);
    s.resume(); // read (and ignore) the startup or SSLRequest
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  try {
    for (const sslmode of ['disable', 'prefer'] as const) {
      const e = await expectError(ReplicationConnection.connect({ ...resolveConnOptions({ host: '127.0.0.1', port, user: 'u', sslmode }, {}), connectTimeoutMs: 300 }));
      assert.equal(e.code, 'TIMEOUT', e.message);
      assert.match(e.message, /connect_timeout/);
    }
    await until('the server to see both sockets closed', () => closedByClient >= 2);
    assert.equal(sockets.length, 2);
    assert.equal(closedByClient, 2, 'the client closed its sockets');
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  }
});
