// Follower tracking against real servers: a streaming standby and its
// primary, for every selected major version (each cluster is cheap).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Follower } from '../src/follower/index.ts';
import { parseLsn } from '../src/lsn.ts';
import { selectedVersions, withCluster, sleep, type PgServer } from './harness/index.ts';

function connectTo(server: PgServer, user = 'postgres'): Promise<Follower> {
  return Follower.connect({ host: server.socketDir, port: server.port, user, database: 'postgres', applicationName: 'follower-test' });
}

async function until<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value ${String(v)}`);
    await sleep(50);
  }
}

for (const version of selectedVersions()) {
  test(`PG ${version}: follower status and facts on a standby and a primary`, async () => {
    await withCluster(version, { name: 'follower', tablespaces: ['ts_f'] }, async ({ primary, standby, tablespaceDir }) => {
      // A pg_monitor role is all the tracker needs (documented in follower.ts).
      await primary.exec(`create role watcher login; grant pg_monitor to watcher;`);
      await standby.waitForReplay(await primary.currentLsn());
      const f = await connectTo(standby, 'watcher');
      const p = await connectTo(primary, 'watcher');
      try {
        const s0 = await f.status();
        assert.equal(s0.inRecovery, true);
        assert.ok(s0.replayLsn !== null && s0.replayLsn > 0n);
        assert.ok(s0.receiveLsn !== null && s0.receiveLsn >= s0.replayLsn);
        assert.equal(s0.timeline, 1);
        assert.equal(s0.replayPaused, false);
        assert.equal(s0.walReceiverStatus, 'streaming');
        assert.ok(s0.upstream, 'upstream visible to a pg_monitor role');
        assert.equal(s0.upstream.host, '127.0.0.1');
        assert.equal(s0.upstream.port, primary.port);
        assert.equal(s0.upstream.user, 'postgres');
        assert.match(s0.upstream.conninfo, new RegExp(`port=${primary.port}`));

        // Writes on the primary move both positions forward.
        await primary.exec(`create table t as select g from generate_series(1, 5000) g`);
        const target = parseLsn(await primary.currentLsn());
        const s1 = await until('replay to advance', () => f.status(), (s) => (s.replayLsn ?? 0n) >= target);
        assert.ok(s1.replayLsn! > s0.replayLsn);
        assert.ok(s1.receiveLsn! >= target);
        assert.ok(s1.replayTimestamp instanceof Date);

        await standby.pauseReplay();
        const paused = await until('pause to show', () => f.status(), (s) => s.replayPaused);
        await primary.exec(`insert into t values (0)`);
        const after = parseLsn(await primary.currentLsn());
        const s2 = await until('receive while paused', () => f.status(), (s) => (s.receiveLsn ?? 0n) >= after);
        assert.equal(s2.replayPaused, true);
        assert.equal(s2.replayLsn, paused.replayLsn, 'replay does not move while paused');
        await standby.resumeReplay();
        await until('resume to show', () => f.status(), (s) => !s.replayPaused);

        const facts = await f.facts();
        assert.equal(facts.serverVersionNum, Number(await standby.scalar(`select current_setting('server_version_num')::int`)));
        assert.equal(Math.floor(facts.serverVersionNum / 10000), version);
        assert.equal(facts.blockSize, 8192);
        assert.equal(facts.walBlockSize, Number(await standby.scalar(`show wal_block_size`)));
        assert.equal(facts.segmentSize, 16 * 1024 * 1024);
        assert.equal(facts.dataDirectory, standby.dataDir);
        assert.ok(facts.catalogVersion > 200000000, `catalog version ${facts.catalogVersion}`);
        const tsOid = Number(await standby.scalar(`select oid::int from pg_tablespace where spcname = 'ts_f'`));
        // pg_tablespace_location reads the standby's own pg_tblspc link.
        assert.deepEqual([...facts.tablespaces], [[tsOid, tablespaceDir('ts_f', 'standby')]]);

        const ps = await p.status();
        assert.equal(ps.inRecovery, false);
        assert.equal(ps.replayLsn, null);
        assert.equal(ps.replayPaused, false);
        assert.equal(ps.upstream, null);
        assert.equal(ps.walReceiverStatus, null);
        assert.equal(ps.timeline, 1);
      } finally {
        await f.close();
        await p.close();
      }
    });
  });
}

test('connect to a server that is not there fails with a message naming it', async () => {
  await assert.rejects(
    Follower.connect({ host: '/nonexistent-socket-dir', port: 1, user: 'nobody', database: 'postgres', connectTimeoutMs: 1000 }),
    /cannot connect to the follower at socket \/nonexistent-socket-dir\/\.s\.PGSQL\.1/,
  );
});

const last = selectedVersions().at(-1)!;
test(`PG ${last}: status survives a follower restart and reports a promotion`, async () => {
  await withCluster(last, { name: 'follower-promote' }, async ({ primary, standby }) => {
    const f = await connectTo(standby);
    try {
      assert.equal((await f.status()).inRecovery, true);
      // Upstream gone: no WAL receiver, the timeline comes from the last checkpoint.
      await primary.stop('fast');
      const orphan = await until('the WAL receiver to go', () => f.status(), (s) => s.walReceiverStatus === null);
      assert.equal(orphan.inRecovery, true);
      assert.equal(orphan.upstream, null);
      assert.equal(orphan.timeline, 1);
      await standby.stop('fast');
      await assert.rejects(f.status(), /follower status query failed at socket .*\.s\.PGSQL\.\d+/);
      await standby.start();
      // postgres.js reconnects on the next query; the agent may also reconnect itself.
      const back = await until('reconnect', () => f.status().catch(() => null), (s) => s !== null);
      assert.equal(back!.inRecovery, true);
      await standby.promote();
      const s = await f.status();
      assert.equal(s.inRecovery, false);
      assert.equal(s.timeline, 2, 'the promoted node inserts on a new timeline');
      assert.equal(s.replayLsn, null);
      assert.equal(s.upstream, null);
    } finally {
      await f.close();
    }
  });
});
