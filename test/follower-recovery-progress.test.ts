// Recovery followed without SQL, on real servers of each selected version:
// the startup process's title on a hot standby, on a standby with
// hot_standby = off (recovering, refusing connections), none on a primary,
// the redo point after a crash, and the fallback when /proc shows nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findStartupProcess } from '../src/follower/startup-process.ts';
import { readRecoveryProgress, recoveryWindowEnd } from '../src/follower/recovery-progress.ts';
import { parseLsn } from '../src/lsn.ts';
import { selectedVersions, withCluster, withPrimary } from './harness/index.ts';
import { pollUntil, startUnready } from './helpers/unready-server.ts';

const SEG = 16 * 1024 * 1024;

for (const version of selectedVersions()) {
  test(`PG ${version}: the startup process and recovery progress read from PGDATA and /proc`, async () => {
    await withCluster(version, { name: 'recovery', standbyConf: { cluster_name: 'sb' } }, async ({ primary, standby }) => {
      // A primary: a postmaster without a startup process, accepting connections.
      const onPrimary = await findStartupProcess(primary.dataDir, { segmentSize: SEG });
      assert.equal(onPrimary.kind, 'none');
      assert.equal(onPrimary.postmaster?.status, 'ready');
      assert.equal(onPrimary.postmaster?.port, primary.port);
      assert.equal(onPrimary.postmaster?.socketDir, primary.socketDir);
      const pp = await readRecoveryProgress(primary.dataDir);
      assert.equal(pp.recovery, 'none');
      assert.equal(pp.acceptsConnections, true);
      assert.equal(pp.recovering, false);

      // A hot standby streaming: its startup process names the segment replayed.
      await primary.exec(`create table t (id int, pad text); insert into t select g, repeat('x', 200) from generate_series(1, 50000) g`);
      await standby.waitForReplay(await primary.currentLsn());
      const replay = parseLsn(await standby.scalar<string>('select pg_last_wal_replay_lsn()::text'));
      const hot = await findStartupProcess(standby.dataDir, { segmentSize: SEG });
      assert.equal(hot.kind, 'startup', JSON.stringify(hot, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
      assert.match(hot.title, /^postgres: sb: startup recovering [0-9A-F]{24}$/);
      assert.equal(hot.timeline, 1);
      assert.equal(hot.waiting, false);
      assert.ok(hot.segNo !== null && (replay / BigInt(SEG) - hot.segNo) ** 2n <= 1n, `title segment ${hot.segment} vs replay ${replay.toString(16)}`);
      assert.equal(hot.postmaster.status, 'ready', 'a consistent hot standby accepts connections');
      const hp = await readRecoveryProgress(standby.dataDir);
      assert.equal(hp.recovery, 'archive');
      assert.equal(hp.acceptsConnections, true, 'a hot standby hands over to SQL');
      assert.equal(hp.replaySource, 'startup-process');
      assert.equal(hp.segmentSize, SEG);
      assert.equal(hp.blockSize, 8192);

      // hot_standby = off: recovery runs and connections are refused for as
      // long as it does; the title follows replay segment by segment.
      await standby.stop('fast');
      standby.configure({ hot_standby: 'off' });
      const server = startUnready(standby);
      try {
        const first = await pollUntil(
          'the startup process with a segment, and the postmaster\'s status line',
          () => readRecoveryProgress(standby.dataDir),
          // postmaster.pid gets its status line (line 8) a moment after the other lines.
          (p) => p.startup.kind === 'startup' && p.startup.segment !== null && p.postmaster?.status != null,
        );
        assert.ok(first.postmaster?.status === 'starting' || first.postmaster?.status === 'standby', `status ${first.postmaster?.status}`);
        assert.equal(first.acceptsConnections, false);
        assert.equal(first.recovering, true);
        assert.equal(first.recovery, 'archive');
        assert.equal(first.progressVisible, true);
        assert.equal(first.replaySource, 'startup-process');
        assert.equal(first.timeline, 1);
        assert.ok(first.replayLsn >= first.control.checkPointCopy.redo - BigInt(SEG));
        const before = first.replayLsn;
        await primary.exec(`insert into t select g, repeat('y', 200) from generate_series(1, 10000) g`);
        await primary.switchWal();
        await primary.exec(`insert into t values (0, 'after the switch')`);
        const target = parseLsn(await primary.currentLsn());
        const moved = await pollUntil(
          'replay to open the next segment',
          () => readRecoveryProgress(standby.dataDir),
          (p) => p.replayLsn / BigInt(SEG) === target / BigInt(SEG),
        );
        assert.ok(moved.replayLsn > before);
        assert.equal(moved.acceptsConnections, false);

        // Without the processes in view (another PID namespace), the redo point and a reason.
        const emptyProc = mkdtempSync(join(tmpdir(), 'pg-prefaulter-noproc-'));
        try {
          const blind = await readRecoveryProgress(standby.dataDir, { procDir: emptyProc });
          assert.equal(blind.startup.kind, 'not-visible');
          assert.equal(blind.progressVisible, false);
          assert.equal(blind.replaySource, 'redo-point');
          assert.equal(blind.replayLsn, blind.control.checkPointCopy.redo);
          assert.equal(blind.recovering, true);
          assert.match(blind.notVisibleReason ?? '', /shareProcessNamespace/);
          assert.equal(recoveryWindowEnd(blind, 1 << 20), blind.control.checkPointCopy.redo + (1n << 20n), 'a bounded window from the redo point');
          assert.equal(recoveryWindowEnd(moved, 1 << 20), moved.replayLsn + BigInt(SEG) + (1n << 20n), 'the whole segment replay is in, and more');
        } finally {
          rmSync(emptyProc, { recursive: true, force: true });
        }
      } finally {
        await server.kill();
      }

      // A primary killed without a shutdown checkpoint: crash recovery from its redo point.
      await primary.exec('checkpoint');
      const redoBefore = parseLsn(await primary.scalar<string>('select redo_lsn::text from pg_control_checkpoint()'));
      await primary.exec(`insert into t select g, 'z' from generate_series(1, 1000) g`);
      await primary.stop('immediate');
      const crashed = await readRecoveryProgress(primary.dataDir);
      assert.equal(crashed.control.state, 'in production');
      assert.equal(crashed.postmaster, null);
      assert.equal(crashed.recovery, 'crash');
      assert.equal(crashed.recovering, false, 'not running yet');
      assert.equal(crashed.replaySource, 'redo-point');
      assert.equal(crashed.replayLsn, redoBefore);
      assert.equal(crashed.timeline, 1);
    });
  });
}

for (const version of selectedVersions()) {
  test(`PG ${version}: crash recovery of a primary seen from PGDATA and /proc before it accepts connections`, async () => {
    await withPrimary(version, { name: 'crash', primaryConf: { full_page_writes: 'off', max_wal_size: '4GB', checkpoint_timeout: '1h' } }, async ({ primary }) => {
      await primary.exec(`create table c (id int, pad text); checkpoint;`);
      const redo = parseLsn(await primary.scalar<string>('select redo_lsn::text from pg_control_checkpoint()'));
      // Enough WAL (~3 segments) that replay takes a while and opens several segments.
      await primary.exec(`insert into c select g, repeat('p', 500) from generate_series(1, 80000) g`);
      const end = parseLsn(await primary.currentLsn());
      await primary.stop('immediate');
      const server = startUnready(primary);
      try {
        const seen = await pollUntil(
          'the startup process in crash recovery',
          () => readRecoveryProgress(primary.dataDir),
          (p) => p.startup.kind === 'startup' || p.acceptsConnections,
          60_000,
          2,
        );
        if (seen.acceptsConnections) {
          // Recovery finished between two polls: only what stays true afterwards can be checked.
          assert.equal(seen.recovery, 'none');
          return;
        }
        assert.equal(seen.recovery, 'crash');
        assert.equal(seen.recovering, true);
        assert.equal(seen.postmasterAlive, true);
        assert.equal(seen.acceptsConnections, false);
        // "shutting down": the end-of-recovery checkpoint, while the startup process waits for it.
        assert.ok(['in production', 'in crash recovery', 'shutting down'].includes(seen.control.state), seen.control.state);
        assert.equal(seen.control.checkPointCopy.redo, redo);
        assert.equal(seen.timeline, 1);
        assert.ok(seen.replayLsn >= redo && seen.replayLsn <= end, 'between the redo point and the end of WAL');
        const done = await pollUntil('the end of crash recovery', () => readRecoveryProgress(primary.dataDir), (p) => p.acceptsConnections, 60_000);
        assert.equal(done.startup.kind, 'none');
        assert.equal(done.recovery, 'none');
        assert.equal(done.control.state, 'in production');
        assert.ok(done.control.checkPointCopy.redo > redo, 'the end-of-recovery checkpoint');
      } finally {
        await server.kill();
      }
    });
  });
}
