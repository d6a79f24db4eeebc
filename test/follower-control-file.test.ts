// pg_control read from disk against what the running server says of it
// (pg_control_*()), on a primary and a standby of every selected version; and
// the bad files an agent can meet: truncated, torn, of an unknown version,
// missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlFileError, parseControlFile, readControlFile, type ControlFile } from '../src/follower/control-file.ts';
import { crc32c } from '../src/wal/crc32c.ts';
import { parseLsn } from '../src/lsn.ts';
import { selectedVersions, withCluster, withPrimary, type PgServer } from './harness/index.ts';

type Row = Record<string, unknown>;

async function serverView(server: PgServer): Promise<{ cp: Row; rec: Row; sys: Row; init: Row }> {
  const [cp] = await server.query(`select * from pg_control_checkpoint()`);
  const [rec] = await server.query(`select * from pg_control_recovery()`);
  const [sys] = await server.query(`select pg_control_version, catalog_version_no, system_identifier::text, extract(epoch from pg_control_last_modified)::bigint::text as modified from pg_control_system()`);
  const [init] = await server.query(`select * from pg_control_init()`);
  const [params] = await server.query(
    `select current_setting('max_connections')::int as max_connections, current_setting('max_worker_processes')::int as max_worker_processes,
            current_setting('max_wal_senders')::int as max_wal_senders, current_setting('max_prepared_transactions')::int as max_prepared_xacts,
            current_setting('max_locks_per_transaction')::int as max_locks_per_xact`,
  );
  return { cp: cp!, rec: rec!, sys: sys!, init: { ...init!, ...params! } };
}

// The file and the SQL view must describe the same moment: read the view on
// both sides of the file and retry if a restartpoint moved it in between.
async function readConsistent(server: PgServer): Promise<{ file: ControlFile; view: Awaited<ReturnType<typeof serverView>> }> {
  for (let i = 0; i < 20; i++) {
    const before = await serverView(server);
    const file = await readControlFile(server.dataDir);
    const after = await serverView(server);
    if (JSON.stringify(before) === JSON.stringify(after)) return { file, view: after };
  }
  throw new Error('pg_control kept changing under the test');
}

function assertMatches(file: ControlFile, { cp, rec, sys, init }: Awaited<ReturnType<typeof serverView>>, version: number): void {
  assert.equal(file.majorVersion, version);
  assert.equal(file.pgControlVersion, sys.pg_control_version);
  assert.equal(file.catalogVersionNo, sys.catalog_version_no);
  assert.equal(file.systemIdentifier, BigInt(sys.system_identifier as string));
  assert.equal(Math.floor(file.time.getTime() / 1000), Number(sys.modified));
  assert.equal(file.checkPoint, parseLsn(cp.checkpoint_lsn as string));
  const c = file.checkPointCopy;
  assert.equal(c.redo, parseLsn(cp.redo_lsn as string));
  assert.equal(c.timeline, cp.timeline_id);
  assert.equal(c.prevTimeline, cp.prev_timeline_id);
  assert.equal(c.fullPageWrites, cp.full_page_writes);
  const [epoch, xid] = (cp.next_xid as string).split(':').map(BigInt);
  assert.equal(c.nextXid, (epoch! << 32n) | xid!);
  assert.equal(c.nextOid, cp.next_oid);
  assert.equal(String(c.nextMulti), String(cp.next_multixact_id));
  assert.equal(String(c.nextMultiOffset), String(cp.next_multi_offset));
  assert.equal(String(c.oldestXid), String(cp.oldest_xid));
  assert.equal(c.oldestXidDb, cp.oldest_xid_dbid);
  assert.equal(String(c.oldestActiveXid), String(cp.oldest_active_xid));
  assert.equal(String(c.oldestMulti), String(cp.oldest_multi_xid));
  assert.equal(c.oldestMultiDb, cp.oldest_multi_dbid);
  assert.equal(String(c.oldestCommitTsXid), String(cp.oldest_commit_ts_xid));
  assert.equal(String(c.newestCommitTsXid), String(cp.newest_commit_ts_xid));
  assert.equal(c.time.getTime(), (cp.checkpoint_time as Date).getTime());
  assert.equal(c.walLevel, version >= 17 ? 'replica' : null);
  assert.equal(file.minRecoveryPoint, parseLsn(rec.min_recovery_end_lsn as string));
  assert.equal(file.minRecoveryPointTli, rec.min_recovery_end_timeline);
  assert.equal(file.backupStartPoint, parseLsn(rec.backup_start_lsn as string));
  assert.equal(file.backupEndPoint, parseLsn(rec.backup_end_lsn as string));
  assert.equal(file.backupEndRequired, rec.end_of_backup_record_required);
  assert.equal(file.walLevel, 'replica');
  assert.equal(file.blcksz, init.database_block_size);
  assert.equal(file.relsegSize, init.blocks_per_segment);
  assert.equal(file.xlogBlcksz, init.wal_block_size);
  assert.equal(file.xlogSegSize, init.bytes_per_wal_segment);
  assert.equal(file.dataChecksumVersion, init.data_page_checksum_version);
  // The settings a standby must match (the cluster runs with the same ones on both sides).
  assert.equal(file.maxConnections, init.max_connections);
  assert.equal(file.maxWorkerProcesses, init.max_worker_processes);
  assert.equal(file.maxWalSenders, init.max_wal_senders);
  assert.equal(file.maxPreparedXacts, init.max_prepared_xacts);
  assert.equal(file.maxLocksPerXact, init.max_locks_per_xact);
  assert.equal(file.defaultCharSignedness, version >= 18 ? init.default_char_signedness : null);
}

for (const version of selectedVersions()) {
  test(`PG ${version}: pg_control read from disk equals pg_control_*() on a primary and a standby`, async () => {
    await withCluster(version, { name: 'control' }, async ({ primary, standby }) => {
      await primary.exec(`create table t as select g from generate_series(1, 1000) g; checkpoint;`);
      await standby.waitForReplay(await primary.currentLsn());
      await standby.exec(`checkpoint`); // a restartpoint: minRecoveryPoint and the checkpoint copy move

      const p = await readConsistent(primary);
      assertMatches(p.file, p.view, version);
      assert.equal(p.file.state, 'in production');
      assert.equal(p.file.minRecoveryPoint, 0n);

      const s = await readConsistent(standby);
      assertMatches(s.file, s.view, version);
      assert.equal(s.file.state, 'in archive recovery');
      assert.ok(s.file.minRecoveryPoint > 0n, 'a standby past a restartpoint has a minRecoveryPoint');
      assert.equal(s.file.systemIdentifier, p.file.systemIdentifier);
    });
  });
}

test('a truncated, torn, unknown-version or missing pg_control is a ControlFileError that says so', async () => {
  const version = selectedVersions()[0]!;
  await withPrimary(version, { name: 'control-bad' }, async ({ primary }) => {
    await primary.exec('checkpoint');
    const good = readFileSync(join(primary.dataDir, 'global', 'pg_control'));
    const dir = mkdtempSync(join(tmpdir(), 'pg-prefaulter-control-'));
    try {
      mkdirSync(join(dir, 'global'));
      copyFileSync(join(primary.dataDir, 'PG_VERSION'), join(dir, 'PG_VERSION'));
      const put = (bytes: Buffer) => writeFileSync(join(dir, 'global', 'pg_control'), bytes);
      const problem = async (): Promise<ControlFileError> => {
        const e = await readControlFile(dir, { retryDelayMs: 1 }).then(
          () => assert.fail('expected a ControlFileError'),
          (err: unknown) => err,
        );
        assert.ok(e instanceof ControlFileError, `not a ControlFileError: ${String(e)}`);
        return e;
      };

      put(good);
      assert.equal((await readControlFile(dir)).majorVersion, version);

      put(good.subarray(0, 200));
      let e = await problem();
      assert.equal(e.problem, 'short');
      assert.match(e.message, /200 bytes, too short/);

      const flipped = Buffer.from(good);
      flipped[40] ^= 0x01; // a bit of the redo pointer
      put(flipped);
      e = await problem();
      assert.equal(e.problem, 'torn');
      assert.match(e.message, /CRC-32C/);

      // Torn while PostgreSQL rewrites it (the end of a crash recovery rewrites it several times
      // within milliseconds): read again, 20 ms then 40 ms later; whole again at 30 ms, the third read has it.
      put(flipped);
      const rewritten = setTimeout(() => put(good), 30);
      try {
        assert.equal((await readControlFile(dir, { retryDelayMs: 20 })).majorVersion, version);
      } finally {
        clearTimeout(rewritten);
      }

      // A future format, correctly checksummed, is refused by its version.
      const future = Buffer.from(good);
      future.writeUInt32LE(1900, 8);
      const crcAt = version >= 18 ? 292 : 288;
      future.writeUInt32LE(crc32c(future, 0, crcAt), crcAt);
      put(future);
      e = await problem();
      assert.equal(e.problem, 'unknown-version');
      assert.match(e.message, /pg_control_version 1900.*upgrade pg-prefaulter/);

      // A PG_VERSION that disagrees: PGDATA replaced under us.
      put(good);
      writeFileSync(join(dir, 'PG_VERSION'), version >= 17 ? '13\n' : '17\n');
      e = await problem();
      assert.equal(e.problem, 'implausible');
      assert.equal(parseControlFile(good, 'x', version).majorVersion, version, 'the matching PG_VERSION parses');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const missing = await readControlFile(join(dir, 'nowhere')).catch((err: unknown) => err);
    assert.ok(missing instanceof ControlFileError);
    assert.equal(missing.problem, 'unreadable');
    assert.match(missing.message, /does not exist/);
  });
});
